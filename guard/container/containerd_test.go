package container

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/internal/privtest"
	"github.com/vigilsec/vigil/internal/runctest"
)

// TestRealContainerd runs Debian's containerd as a private daemon, imports
// a hand-built OCI image of busybox-static, starts a container with
// `ctr run -d`, and checks that the resolver maps the container's cgroup to
// it and fills image, digest and name from containerd's API.
func TestRealContainerd(t *testing.T) {
	privtest.RequireRoot(t)
	for _, tool := range []string{"/usr/bin/containerd", "/usr/bin/ctr", "/usr/bin/containerd-shim-runc-v2", runctest.RuncPath, runctest.BusyboxPath} {
		privtest.RequireTool(t, tool)
	}
	d := startContainerd(t, "")

	const image = "docker.io/vigil/busybox:test"
	tarball, manifestDigest, _ := buildOCIImage(t, image)
	d.ctr(t, "images", "import", tarball)

	id := "vigil-ctr-" + randHex(5)
	d.ctr(t, "run", "-d", image, id, "sleep", "100000")
	t.Cleanup(func() {
		d.ctrQuiet("task", "kill", "-s", "KILL", id)
		for i := 0; i < 100; i++ {
			if d.ctrQuiet("task", "delete", id) == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		d.ctrQuiet("containers", "delete", id)
		// ctr's default cgroup parent is the namespace; remove it if empty.
		for _, dir := range []string{"unified/default", "cpu/default", "memory/default", "pids/default", "systemd/default",
			"blkio/default", "cpuacct/default", "cpuset/default", "devices/default", "freezer/default", "default"} {
			syscall.Rmdir(filepath.Join("/sys/fs/cgroup", dir))
		}
	})

	pid := d.taskPID(t, id)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := ParseProcCgroup(b)
	if err != nil {
		t.Fatal(err)
	}
	// Sources as DetectSources orders them: CRI first, which does not know
	// `ctr` containers and must say so cleanly, then containerd's API.
	r, err := New(Config{MinRescan: time.Millisecond, Sources: []MetadataSource{NewCRISource(d.sock), NewContainerdSource(d.sock)}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cgid, err := CgroupID(filepath.Join(r.Cgroup2Root(), pc.Unified))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("container %s: pid %d cgroup %s id %d", id, pid, pc.Unified, cgid)

	ev := &event.Event{Kind: event.KindOpen, Proc: event.Process{PID: uint32(pid), CgroupID: cgid}}
	r.Enrich(ev)
	if ev.Container.ID != id || ev.Container.Runtime != RuntimeContainerd {
		t.Fatalf("got %+v, want id %s runtime containerd (cgroup %s)", ev.Container, id, pc.Unified)
	}
	if rec := r.Lookup(cgid, 0); rec.Namespace != "default" {
		t.Fatalf("namespace %q, want default", rec.Namespace)
	}
	waitFor(t, func() bool { return r.Stats().MetaFound+r.Stats().MetaNotFound > 0 })
	ev = &event.Event{Kind: event.KindOpen, Proc: event.Process{PID: uint32(pid), CgroupID: cgid}}
	r.Enrich(ev)
	want := event.Container{ID: id, Runtime: RuntimeContainerd, Name: id, Image: image, ImageDigest: manifestDigest}
	if ev.Container != want {
		t.Fatalf("got  %+v\nwant %+v\nstats %+v", ev.Container, want, r.Stats())
	}
	if st := r.Stats(); st.MetaErrors != 0 || st.MetaFound != 1 {
		t.Fatalf("CRI or containerd lookup errored: %+v", st)
	}
	if ev.K8s != (event.K8s{}) {
		t.Fatalf("non-pod container got k8s context %+v", ev.K8s)
	}

	// A guard starting now: Warm resolves the running container through
	// containerd's List before its first event.
	r2, err := New(Config{MinRescan: time.Millisecond, Sources: []MetadataSource{NewCRISource(d.sock), NewContainerdSource(d.sock)}})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := r2.Warm(ctx)
	t.Logf("warm: %s", res)
	ev = &event.Event{Kind: event.KindExec, Proc: event.Process{PID: uint32(pid), CgroupID: cgid}}
	r2.Enrich(ev)
	if ev.Container != want || r2.Stats().MetaPending != 0 {
		t.Fatalf("first event after warm-up: %+v, want %+v; stats %+v", ev.Container, want, r2.Stats())
	}
	if m, _ := r2.Lookup(cgid, 0).Metadata(); m.Source != "containerd:"+d.sock {
		t.Fatalf("answered by %q, want containerd", m.Source)
	}
}

type containerdDaemon struct {
	sock string
	cmd  *exec.Cmd
}

// startContainerd starts containerd with its root, state and sockets under
// a temp dir. Its CRI plugin serves on the same socket; with no kubelet it
// knows no containers, which the test uses to check CRI's not-found path.
func startContainerd(t *testing.T, sandboxImage string) *containerdDaemon {
	t.Helper()
	// Unix socket paths must stay under 108 bytes; t.TempDir can be long.
	dir, err := os.MkdirTemp("", "vctrd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &containerdDaemon{sock: filepath.Join(dir, "c.sock")}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), d.sock, filepath.Join(dir, "t.sock"),
		sandboxImage, filepath.Join(dir, "cni-bin"), filepath.Join(dir, "cni-conf"))
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command("/usr/bin/containerd", "--config", cfgPath)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { d.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-done
		}
		logf.Close()
		killShims(t, d.sock)
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("containerd log:\n%s", lastLines(string(b), 30))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for d.ctrQuiet("version") != nil {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("containerd did not come up:\n%s", lastLines(string(b), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return d
}

func (d *containerdDaemon) ctr(t *testing.T, args ...string) string {
	t.Helper()
	return d.ctrNS(t, "default", args...)
}

func (d *containerdDaemon) ctrNS(t *testing.T, ns string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/usr/bin/ctr", append([]string{"-a", d.sock, "-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (d *containerdDaemon) ctrQuiet(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "/usr/bin/ctr", append([]string{"-a", d.sock, "-n", "default"}, args...)...).Run()
}

// taskPID returns the host pid of the container's task from `ctr task ls`.
func (d *containerdDaemon) taskPID(t *testing.T, id string) int {
	t.Helper()
	var pid int
	waitFor(t, func() bool {
		for _, line := range strings.Split(d.ctr(t, "task", "ls"), "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 && f[0] == id && f[2] == "RUNNING" {
				fmt.Sscanf(f[1], "%d", &pid)
			}
		}
		return pid > 0
	})
	return pid
}

// buildOCIImage writes an OCI image-layout tarball holding one layer of
// busybox-static plus its applet links, named name, and returns its path,
// its manifest digest (what containerd's image store reports) and its config
// digest (the image id, what CRI reports for an image without a registry
// digest).
func buildOCIImage(t *testing.T, name string) (path, manifestDigest, configDigest string) {
	t.Helper()
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	bb, err := os.ReadFile(runctest.BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	mustTar := func(h *tar.Header, body []byte) {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin/", "etc/", "tmp/", "proc/", "sys/", "dev/"} {
		mustTar(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755}, nil)
	}
	mustTar(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb))}, bb)
	for _, a := range []string{"sh", "sleep", "cat", "id", "ls"} {
		mustTar(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}, nil)
	}
	passwd := []byte("root:x:0:0:root:/root:/bin/sh\n")
	mustTar(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644, Size: int64(len(passwd))}, passwd)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}

	blobs := map[string][]byte{}
	put := func(b []byte) (string, int) {
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		blobs[d] = b
		return d, len(b)
	}
	layerDigest, layerSize := put(layer.Bytes())
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Cmd": []string{"sleep", "1000000"}, "Env": []string{"PATH=/bin"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	})
	cfgDigest, cfgSize := put(cfg)
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfgDigest, "size": cfgSize},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layerDigest, "size": layerSize}},
	})
	manifestDigest, manifestSize := put(manifest)
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"manifests": []any{map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifestDigest, "size": manifestSize,
			"platform":    map[string]any{"architecture": "amd64", "os": "linux"},
			"annotations": map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "test"},
		}},
	})

	path = filepath.Join(t.TempDir(), "image.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := tar.NewWriter(f)
	write := func(name string, b []byte) {
		if err := out.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b))}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	write("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	write("index.json", index)
	for d, b := range blobs {
		write("blobs/sha256/"+strings.TrimPrefix(d, "sha256:"), b)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path, manifestDigest, cfgDigest
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// killShims kills containerd shims still serving this test's daemon (they
// outlive containerd by design) and removes their runc state, so a failed
// test leaves no containers behind. A shim is ours when its -address is our
// socket, a unique temp path.
func killShims(t *testing.T, sock string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), "containerd-shim") {
			continue
		}
		args := strings.Split(string(b), "\x00")
		var ns, id, addr string
		for i := 0; i+1 < len(args); i++ {
			switch args[i] {
			case "-namespace":
				ns = args[i+1]
			case "-id":
				id = args[i+1]
			case "-address":
				addr = args[i+1]
			}
		}
		if addr != sock {
			continue
		}
		t.Logf("killing leftover shim for %s/%s", ns, id)
		var pid int
		fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid)
		if ns != "" && id != "" {
			exec.Command(runctest.RuncPath, "--root", filepath.Join("/run/containerd/runc", ns), "delete", "--force", id).Run()
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
}
