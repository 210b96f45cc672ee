package container

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/internal/privtest"
	"github.com/vigilsec/vigil/internal/runctest"
)

// criPod is a pod started through containerd's CRI plugin.
type criPod struct {
	sock, image, imageID string
	podUID, cid          string
	pid                  int
	unified              string // the container's cgroup2 path
}

// startCRIPod creates a pod through containerd's CRI plugin the way the
// kubelet does (RunPodSandbox, CreateContainer, StartContainer with the
// kubelet's labels and a kubepods cgroup parent) and registers its removal.
func startCRIPod(t *testing.T) criPod {
	t.Helper()
	privtest.RequireRoot(t)
	for _, tool := range []string{"/usr/bin/containerd", "/usr/bin/ctr", "/usr/bin/containerd-shim-runc-v2", runctest.RuncPath, runctest.BusyboxPath} {
		privtest.RequireTool(t, tool)
	}
	const image = "docker.io/vigil/busybox:test"
	d := startContainerd(t, image)
	tarball, _, imageID := buildOCIImage(t, image)
	d.ctrNS(t, "k8s.io", "images", "import", tarball)

	conn, err := grpc.NewClient("unix://"+d.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the pod's cleanups, so it runs after them: they
	// need the connection.
	t.Cleanup(func() { conn.Close() })
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	podUID := "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
	// A unique top level keeps this test's kubepods tree apart from a
	// kubelet that may run on the same machine.
	top := "/vigil-cri-" + randHex(4)
	parent := top + "/kubepods/besteffort/pod" + podUID
	t.Cleanup(func() {
		for _, root := range []string{"unified", "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", ""} {
			base := filepath.Join("/sys/fs/cgroup", root)
			for _, p := range []string{parent, top + "/kubepods/besteffort", top + "/kubepods", top} {
				syscall.Rmdir(filepath.Join(base, p))
			}
		}
	})
	podLabels := map[string]string{
		"io.kubernetes.pod.name": "shop-7d4b9c-x2x9z", "io.kubernetes.pod.namespace": "shop",
		"io.kubernetes.pod.uid": podUID, "app": "shop", "pod-template-hash": "7d4b9c",
	}
	sbConfig := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "shop-7d4b9c-x2x9z", Namespace: "shop", Uid: podUID},
		Labels:   podLabels,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: parent,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				// Host network: no CNI needed.
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
			},
		},
	}
	sb, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbConfig})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	sbID := sb.GetPodSandboxId()
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := rt.StopPodSandbox(c, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sbID}); err != nil {
			t.Errorf("StopPodSandbox: %v", err)
		}
		if _, err := rt.RemovePodSandbox(c, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sbID}); err != nil {
			t.Errorf("RemovePodSandbox: %v", err)
		}
	})
	created, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: sbID,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
			Image:    &runtimeapi.ImageSpec{Image: image},
			Command:  []string{"sleep", "100000"},
			Labels: map[string]string{
				"io.kubernetes.pod.name": "shop-7d4b9c-x2x9z", "io.kubernetes.pod.namespace": "shop",
				"io.kubernetes.pod.uid": podUID, "io.kubernetes.container.name": "app",
			},
		},
		SandboxConfig: sbConfig,
	})
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	cid := created.GetContainerId()
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := rt.StopContainer(c, &runtimeapi.StopContainerRequest{ContainerId: cid, Timeout: 0}); err != nil {
			t.Errorf("StopContainer: %v", err)
		}
		if _, err := rt.RemoveContainer(c, &runtimeapi.RemoveContainerRequest{ContainerId: cid}); err != nil {
			t.Errorf("RemoveContainer: %v", err)
		}
	})
	if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cid}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}

	// The shim's runc keeps the container's state where real nodes have it.
	b, err := os.ReadFile(filepath.Join("/run/containerd/runc/k8s.io", cid, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Pid int `json:"init_process_pid"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Pid == 0 {
		t.Fatalf("runc state of %s: %v", cid, err)
	}
	cg, err := os.ReadFile(filepath.Join("/proc", itoa(st.Pid), "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := ParseProcCgroup(cg)
	if err != nil {
		t.Fatal(err)
	}
	return criPod{sock: d.sock, image: image, imageID: imageID, podUID: podUID, cid: cid, pid: st.Pid, unified: pc.Unified}
}

// TestRealContainerdCRIPod checks that the resolver maps a real CRI pod
// container's cgroup to the pod and fills names, image and revision
// through CRI on the container's first events.
func TestRealContainerdCRIPod(t *testing.T) {
	p := startCRIPod(t)
	r, err := New(Config{MinRescan: time.Millisecond, Sources: []MetadataSource{NewCRISource(p.sock), NewContainerdSource(p.sock)}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cgid, err := CgroupID(filepath.Join(r.Cgroup2Root(), p.unified))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pod container %s: pid %d cgroup %s", p.cid[:12], p.pid, p.unified)

	ev := &event.Event{Kind: event.KindOpen, Proc: event.Process{PID: uint32(p.pid), CgroupID: cgid}}
	r.Enrich(ev)
	if ev.Container.ID != p.cid || ev.Container.Runtime != RuntimeContainerd || ev.K8s.PodUID != p.podUID {
		t.Fatalf("got %+v %+v; want id %s runtime containerd pod %s", ev.Container, ev.K8s, p.cid, p.podUID)
	}
	waitFor(t, func() bool { s := r.Stats(); return s.MetaFound+s.MetaNotFound > 0 })
	ev = &event.Event{Kind: event.KindOpen, Proc: event.Process{PID: uint32(p.pid), CgroupID: cgid}}
	r.Enrich(ev)
	wantC, wantK := p.want()
	if ev.Container != wantC || ev.K8s != wantK {
		t.Fatalf("got  %+v %+v\nwant %+v %+v\nstats %+v", ev.Container, ev.K8s, wantC, wantK, r.Stats())
	}
	if s := r.Stats(); s.MetaErrors != 0 {
		t.Fatalf("lookup errors: %+v", s)
	}
	if src, _ := r.Lookup(cgid, 0).Metadata(); src.Source != "cri:"+p.sock {
		t.Fatalf("answered by %q, want the CRI source", src.Source)
	}
}

// TestRealWarmCRIPod is the guard-restart case: the pod runs first, then a
// resolver starts and warms up, and the container's very first event
// carries the pod's names without waiting for the asynchronous lookup.
func TestRealWarmCRIPod(t *testing.T) {
	p := startCRIPod(t)
	r, err := New(Config{MinRescan: time.Millisecond, Sources: []MetadataSource{NewCRISource(p.sock), NewContainerdSource(p.sock)}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := r.Warm(ctx)
	t.Logf("warm: %s", res)
	// The pod's container and its sandbox (pause) at least; other
	// containers on the machine may add to both counts.
	if res.Containers < 2 || res.Resolved < 2 || res.Pending != 0 {
		t.Fatalf("warm: %+v", res)
	}
	cgid, err := CgroupID(filepath.Join(r.Cgroup2Root(), p.unified))
	if err != nil {
		t.Fatal(err)
	}
	lookups := r.Stats().MetaLookups
	ev := &event.Event{Kind: event.KindExec, Proc: event.Process{PID: uint32(p.pid), CgroupID: cgid}}
	r.Enrich(ev)
	wantC, wantK := p.want()
	if ev.Container != wantC || ev.K8s != wantK {
		t.Fatalf("first event after warm-up:\ngot  %+v %+v\nwant %+v %+v\nstats %+v", ev.Container, ev.K8s, wantC, wantK, r.Stats())
	}
	st := r.Stats()
	if st.MetaPending != 0 || st.MetaLookups != lookups || st.WarmTimeouts != 0 {
		t.Fatalf("first event was not served from the warmed cache: %+v", st)
	}
	// One List answered the CRI containers.
	if m, _ := r.Lookup(cgid, 0).Metadata(); m.Source != "cri:"+p.sock {
		t.Fatalf("answered by %q, want the CRI source", m.Source)
	}
}

// want is what a fully attributed event of the pod's container carries. An
// imported image has no registry (repo) digest, so CRI's ImageRef is the
// image id; a pulled image would give repo@sha256:<manifest>.
func (p criPod) want() (event.Container, event.K8s) {
	return event.Container{ID: p.cid, Runtime: RuntimeContainerd, Name: "app", Image: p.image, ImageDigest: p.imageID},
		event.K8s{PodUID: p.podUID, Namespace: "shop", Pod: "shop-7d4b9c-x2x9z", ContainerName: "app", Revision: "7d4b9c"}
}

func itoa(n int) string {
	return string(appendInt(nil, n))
}

func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}
