package container

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/internal/runctest"
)

// fakeTree is a directory laid out like a cgroup2 mount. The Resolver only
// walks directories and reads inodes, so a plain tree exercises the same
// code as the real mount, with any path shape.
type fakeTree struct {
	root, states string
}

func newFakeTree(t *testing.T) *fakeTree {
	t.Helper()
	ft := &fakeTree{root: t.TempDir(), states: t.TempDir()}
	if err := os.WriteFile(filepath.Join(ft.root, "cgroup.procs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return ft
}

// mkdir creates a cgroup dir and returns its id.
func (ft *fakeTree) mkdir(t *testing.T, path string) uint64 {
	t.Helper()
	dir := filepath.Join(ft.root, path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	id, err := CgroupID(dir)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// runcState writes a state.json like runc's for a container at path.
func (ft *fakeTree) runcState(t *testing.T, sub, id, path string) {
	t.Helper()
	dir := filepath.Join(ft.states, sub, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	js := fmt.Sprintf(`{"id":%q,"cgroup_paths":{"":%q},"config":{"cgroups":{"path":%q}}}`, id, ft.root+path, path)
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (ft *fakeTree) resolver(t *testing.T, cfg Config) *Resolver {
	t.Helper()
	cfg.Cgroup2Root = ft.root
	cfg.ProcRoot = t.TempDir()
	if cfg.StateRoots == nil {
		cfg.StateRoots = []StateRoot{
			{Dir: filepath.Join(ft.states, "runc"), Runtime: RuntimeRunc, Depth: 1},
			{Dir: filepath.Join(ft.states, "containerd"), Runtime: RuntimeContainerd, Depth: 2},
		}
	}
	if cfg.MinRescan == 0 {
		cfg.MinRescan = time.Nanosecond
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
		if err := r.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
	return r
}

func enrich(r *Resolver, cgid uint64) *event.Event {
	ev := &event.Event{Kind: event.KindOpen, Proc: event.Process{CgroupID: cgid}}
	r.Enrich(ev)
	return ev
}

func TestResolverPathShapes(t *testing.T) {
	ft := newFakeTree(t)
	k8s := ft.mkdir(t, "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"+uidU+".slice/cri-containerd-"+cid+".scope")
	cgfs := ft.mkdir(t, "/kubepods/besteffort/pod"+uid+"/"+cid2)
	docker := ft.mkdir(t, "/system.slice/docker-"+cid2+".scope")
	host := ft.mkdir(t, "/system.slice/sshd.service")
	plain := ft.mkdir(t, "/mybox")
	ctrd := ft.mkdir(t, "/default/web")
	ft.runcState(t, "runc", "mybox", "/mybox")
	ft.runcState(t, "containerd/k8s.io", cid2, "/kubepods/besteffort/pod"+uid+"/"+cid2)
	ft.runcState(t, "containerd/default", "web", "/default/web")
	r := ft.resolver(t, Config{})

	tests := []struct {
		name string
		id   uint64
		want event.Container
		pod  string
	}{
		{"k8s systemd containerd", k8s, event.Container{ID: cid, Runtime: RuntimeContainerd}, uid},
		{"k8s cgroupfs runtime from state dir", cgfs, event.Container{ID: cid2, Runtime: RuntimeContainerd}, uid},
		{"docker", docker, event.Container{ID: cid2, Runtime: RuntimeDocker}, ""},
		{"host", host, event.Container{}, ""},
		{"plain runc from state dir", plain, event.Container{ID: "mybox", Runtime: RuntimeRunc}, ""},
		{"ctr run from containerd state dir", ctrd, event.Container{ID: "web", Runtime: RuntimeContainerd}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := enrich(r, tt.id)
			if ev.Container != tt.want || ev.K8s.PodUID != tt.pod {
				t.Fatalf("got %+v pod %q; want %+v pod %q", ev.Container, ev.K8s.PodUID, tt.want, tt.pod)
			}
		})
	}
	rec := r.Lookup(ctrd, 0)
	if rec.Namespace != "default" {
		t.Fatalf("containerd namespace %q", rec.Namespace)
	}
	st := r.Stats()
	if st.Unresolved != 0 || st.HostEvents != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Nothing placeholder-like ever appears.
	for _, tt := range tests {
		ev := enrich(r, tt.id)
		if strings.Contains(fmt.Sprintf("%+v %+v", ev.Container, ev.K8s), "<NA>") {
			t.Fatal("placeholder in output")
		}
	}
}

func TestResolverRescanOnMissAndPrune(t *testing.T) {
	ft := newFakeTree(t)
	r := ft.resolver(t, Config{})
	scans := r.Stats().Rescans

	// A container created after the first walk is found by a rescan.
	id := ft.mkdir(t, "/system.slice/docker-"+cid+".scope")
	if ev := enrich(r, id); ev.Container.ID != cid {
		t.Fatalf("new container not found: %+v", ev.Container)
	}
	if r.Stats().Rescans != scans+1 {
		t.Fatalf("rescans %d, want %d", r.Stats().Rescans, scans+1)
	}
	// Cached: no further walk.
	enrich(r, id)
	if st := r.Stats(); st.Rescans != scans+1 || st.CacheHits == 0 {
		t.Fatalf("second lookup rescanned: %+v", st)
	}
	// Removed cgroups are pruned on the next walk.
	if err := os.Remove(filepath.Join(ft.root, "/system.slice/docker-"+cid+".scope")); err != nil {
		t.Fatal(err)
	}
	enrich(r, 999999999) // unknown id forces a walk
	r.mu.RLock()
	_, still := r.records[id]
	nmeta := len(r.metas)
	r.mu.RUnlock()
	if still || nmeta != 0 {
		t.Fatalf("vanished cgroup kept: record %v, metas %d", still, nmeta)
	}
	if r.Stats().Unresolved != 1 {
		t.Fatalf("unknown id not counted: %+v", r.Stats())
	}
}

func TestResolverRateLimit(t *testing.T) {
	ft := newFakeTree(t)
	clk := &manualClock{now: time.Unix(1e9, 0)}
	r := ft.resolver(t, Config{MinRescan: time.Second, Now: clk.Now})
	clk.Add(2 * time.Second)
	enrich(r, 1) // unknown: uses up this interval's walk
	id := ft.mkdir(t, "/docker/"+cid)
	if ev := enrich(r, id); ev.Container.ID != "" {
		t.Fatal("walk was not rate-limited")
	}
	if r.Stats().RescanLimited == 0 {
		t.Fatal("rate limit not counted")
	}
	clk.Add(2 * time.Second)
	if ev := enrich(r, id); ev.Container.ID != cid {
		t.Fatalf("after the interval: %+v", ev.Container)
	}
}

// A runc container's init runs in its cgroup before runc writes
// state.json; events from that window must not pin the cgroup as "host".
func TestResolverRecheckBeforeStateWritten(t *testing.T) {
	ft := newFakeTree(t)
	clk := &manualClock{now: time.Unix(1e9, 0)}
	r := ft.resolver(t, Config{MinRescan: 100 * time.Millisecond, Now: clk.Now})
	id := ft.mkdir(t, "/late")
	clk.Add(time.Second)
	if ev := enrich(r, id); ev.Container.ID != "" {
		t.Fatal("container before state.json")
	}
	ft.runcState(t, "runc", "late", "/late")
	clk.Add(time.Second)
	if ev := enrich(r, id); ev.Container.ID != "late" || ev.Container.Runtime != RuntimeRunc {
		t.Fatalf("after state.json: %+v", ev.Container)
	}
}

type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *manualClock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// slowSource answers after release is closed, to show Enrich never waits.
type slowSource struct {
	release chan struct{}
	calls   atomic.Int32
	known   map[string]Metadata
}

func (s *slowSource) Name() string { return "slow" }
func (s *slowSource) Close() error { return nil }
func (s *slowSource) Lookup(ctx context.Context, info PathInfo) (Metadata, error) {
	s.calls.Add(1)
	select {
	case <-s.release:
	case <-ctx.Done():
		return Metadata{}, ctx.Err()
	}
	m, ok := s.known[info.ID]
	if !ok {
		return Metadata{}, ErrNotFound
	}
	return m, nil
}

func TestResolverAsyncMetadata(t *testing.T) {
	ft := newFakeTree(t)
	known := ft.mkdir(t, "/system.slice/docker-"+cid+".scope")
	unknown := ft.mkdir(t, "/system.slice/docker-"+cid2+".scope")
	src := &slowSource{release: make(chan struct{}), known: map[string]Metadata{
		cid: {Name: "web", Image: "nginx:1.27", ImageDigest: "sha256:" + cid2},
	}}
	r := ft.resolver(t, Config{Sources: []MetadataSource{src}, RetryAfter: time.Hour})

	start := time.Now()
	ev := enrich(r, known)
	if time.Since(start) > time.Second {
		t.Fatal("Enrich waited for the metadata source")
	}
	if ev.Container.ID != cid || ev.Container.Image != "" {
		t.Fatalf("first event: %+v", ev.Container)
	}
	if r.Stats().MetaPending != 1 {
		t.Fatalf("pending not counted: %+v", r.Stats())
	}
	enrich(r, unknown)
	close(src.release)
	waitFor(t, func() bool { st := r.Stats(); return st.MetaFound == 1 && st.MetaNotFound == 1 })

	ev = enrich(r, known)
	if ev.Container != (event.Container{ID: cid, Runtime: RuntimeDocker, Name: "web", Image: "nginx:1.27", ImageDigest: "sha256:" + cid2}) {
		t.Fatalf("after lookup: %+v", ev.Container)
	}
	ev = enrich(r, unknown)
	if ev.Container.Name != "" || r.Stats().MetaMissing != 1 {
		t.Fatalf("unknown container: %+v, %+v", ev.Container, r.Stats())
	}
	// Not retried before RetryAfter, and never more than one lookup each.
	time.Sleep(50 * time.Millisecond)
	if n := src.calls.Load(); n != 2 {
		t.Fatalf("source called %d times, want 2", n)
	}
}

func TestResolverQueueDrops(t *testing.T) {
	ft := newFakeTree(t)
	src := &slowSource{release: make(chan struct{})}
	defer close(src.release)
	r := ft.resolver(t, Config{Sources: []MetadataSource{src}, QueueSize: 1})
	for i := 0; i < 5; i++ {
		id := ft.mkdir(t, fmt.Sprintf("/docker/%064x", i+1))
		enrich(r, id)
	}
	// One lookup in flight, one queued, the rest dropped and counted.
	waitFor(t, func() bool { return r.Stats().QueueDrops >= 3 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeCRI serves the CRI RuntimeService's ListContainers and
// PodSandboxStatus over a real gRPC unix socket, answering like containerd's
// CRI plugin does for a pod.
type fakeCRI struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	containers []*runtimeapi.Container
	sandboxes  map[string]*runtimeapi.PodSandboxStatus
}

func (f *fakeCRI) ListContainers(_ context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	var out []*runtimeapi.Container
	for _, c := range f.containers {
		// containerd matches the id filter by prefix.
		if strings.HasPrefix(c.Id, req.GetFilter().GetId()) {
			out = append(out, c)
		}
	}
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}

func (f *fakeCRI) PodSandboxStatus(_ context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	st, ok := f.sandboxes[req.GetPodSandboxId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "sandbox %q not found", req.GetPodSandboxId())
	}
	return &runtimeapi.PodSandboxStatusResponse{Status: st}, nil
}

func TestCRISource(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cri.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	digest := "sha256:" + cid2
	runtimeapi.RegisterRuntimeServiceServer(srv, &fakeCRI{
		containers: []*runtimeapi.Container{
			{
				Id: cid, PodSandboxId: "sb1",
				Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
				Image:    &runtimeapi.ImageSpec{Image: "registry.example/shop/app:v2"},
				ImageRef: "registry.example/shop/app@" + digest,
				Labels: map[string]string{
					"io.kubernetes.pod.name": "app-7d4b9c-x2x9z", "io.kubernetes.pod.namespace": "shop",
					"io.kubernetes.pod.uid": uid, "io.kubernetes.container.name": "app",
				},
			},
		},
		sandboxes: map[string]*runtimeapi.PodSandboxStatus{
			"sb1": {Id: "sb1", Labels: map[string]string{"app": "shop", "pod-template-hash": "7d4b9c"}},
		},
	})
	go srv.Serve(lis)
	defer srv.Stop()

	ft := newFakeTree(t)
	id := ft.mkdir(t, "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"+uidU+".slice/cri-containerd-"+cid+".scope")
	other := ft.mkdir(t, "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"+uidU+".slice/cri-containerd-"+cid2+".scope")
	src := NewCRISource(sock)
	r := ft.resolver(t, Config{Sources: []MetadataSource{src}})
	enrich(r, id)
	enrich(r, other)
	waitFor(t, func() bool { st := r.Stats(); return st.MetaFound == 1 && st.MetaNotFound == 1 })

	ev := enrich(r, id)
	wantC := event.Container{ID: cid, Runtime: RuntimeContainerd, Name: "app", Image: "registry.example/shop/app:v2", ImageDigest: digest}
	wantK := event.K8s{PodUID: uid, Namespace: "shop", Pod: "app-7d4b9c-x2x9z", ContainerName: "app", Revision: "7d4b9c"}
	if ev.Container != wantC || ev.K8s != wantK {
		t.Fatalf("got %+v %+v\nwant %+v %+v", ev.Container, ev.K8s, wantC, wantK)
	}
	if st := r.Stats(); st.MetaErrors != 0 {
		t.Fatalf("errors: %+v", st)
	}
}

func TestCRISourceUnreachableIsCounted(t *testing.T) {
	ft := newFakeTree(t)
	id := ft.mkdir(t, "/docker/"+cid)
	r := ft.resolver(t, Config{Sources: []MetadataSource{NewCRISource(filepath.Join(t.TempDir(), "absent.sock"))}, LookupTimeout: 200 * time.Millisecond})
	enrich(r, id)
	waitFor(t, func() bool { st := r.Stats(); return st.MetaErrors == 1 && st.MetaNotFound == 1 })
	if ev := enrich(r, id); ev.Container.ID != cid || ev.Container.Image != "" {
		t.Fatalf("got %+v", ev.Container)
	}
}

// TestRealRuncContainer maps a real runc container's cgroup id, as the
// kernel reports it for a process inside, to the container.
func TestRealRuncContainer(t *testing.T) {
	c := runctest.Start(t, runctest.Options{})
	r, err := New(Config{MinRescan: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	// A process started inside after the resolver's first walk.
	cmd := c.Command(context.Background(), "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var inner int
	waitFor(t, func() bool {
		pids, _ := c.Pids()
		for _, p := range pids {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p)); strings.HasPrefix(string(b), "sleep\x0030") {
				inner = p
			}
		}
		return inner != 0
	})
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", inner))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := ParseProcCgroup(b)
	if err != nil {
		t.Fatal(err)
	}
	kernelID, err := CgroupID(filepath.Join(r.Cgroup2Root(), pc.Unified))
	if err != nil || kernelID != c.CgroupID {
		t.Fatalf("process cgroup id %d (%v), container %d", kernelID, err, c.CgroupID)
	}

	ev := &event.Event{Kind: event.KindExec, Proc: event.Process{PID: uint32(inner), CgroupID: kernelID}}
	r.Enrich(ev)
	if ev.Container.ID != c.ID || ev.Container.Runtime != RuntimeRunc {
		t.Fatalf("got %+v, want id %s runtime runc", ev.Container, c.ID)
	}
	// The /proc fallback (no cgroup id from the kernel) agrees.
	ev = &event.Event{Kind: event.KindOpen, Proc: event.Process{PID: uint32(inner)}}
	r.Enrich(ev)
	if ev.Container.ID != c.ID || ev.Container.Runtime != RuntimeRunc {
		t.Fatalf("pid fallback: %+v", ev.Container)
	}
	if r.Stats().PidFallbacks == 0 {
		t.Fatal("pid fallback not counted")
	}
	// The test process itself is on the host.
	self := &event.Event{Proc: event.Process{PID: uint32(os.Getpid())}}
	r.Enrich(self)
	if self.Container.ID != "" {
		t.Fatalf("host process resolved to %+v", self.Container)
	}
}

func BenchmarkEnrichHit(b *testing.B) {
	root := b.TempDir()
	os.WriteFile(filepath.Join(root, "cgroup.procs"), nil, 0o644)
	dir := filepath.Join(root, "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"+uidU+".slice/cri-containerd-"+cid+".scope")
	os.MkdirAll(dir, 0o755)
	id, _ := CgroupID(dir)
	r, err := New(Config{Cgroup2Root: root, StateRoots: []StateRoot{}})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	ev := &event.Event{Proc: event.Process{CgroupID: id}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r.Enrich(ev)
	}
	if ev.Container.ID != cid {
		b.Fatal("not resolved")
	}
}

func TestDetectSources(t *testing.T) {
	dir := t.TempDir()
	ctrd := filepath.Join(dir, "containerd.sock")
	lis, err := net.Listen("unix", ctrd)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	plain := filepath.Join(dir, "crio.sock")
	os.WriteFile(plain, nil, 0o644) // a file, not a socket
	var names []string
	for _, s := range DetectSources(ctrd, plain) {
		names = append(names, s.Name())
		s.Close()
	}
	want := []string{"cri:" + ctrd, "containerd:" + ctrd}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("sources %v, want %v", names, want)
	}
}
