package container

import (
	"context"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/internal/runctest"
)

// listSource is a Lister that also counts per-container lookups, so a test
// can tell the one-call path from the per-container one.
type listSource struct {
	all     map[string]Metadata
	lookups int
}

func (s *listSource) Name() string { return "list" }
func (s *listSource) Close() error { return nil }
func (s *listSource) List(context.Context) (map[string]Metadata, error) {
	return s.all, nil
}
func (s *listSource) Lookup(_ context.Context, info PathInfo) (Metadata, error) {
	s.lookups++
	if m, ok := s.all[info.ID]; ok {
		return m, nil
	}
	return Metadata{}, ErrNotFound
}

func TestWarmListsOnceAndFallsBack(t *testing.T) {
	ft := newFakeTree(t)
	known := ft.mkdir(t, "/system.slice/docker-"+cid+".scope")
	ft.mkdir(t, "/system.slice/docker-"+cid2+".scope")
	ft.mkdir(t, "/user.slice")
	src := &listSource{all: map[string]Metadata{cid: {Name: "web", Image: "nginx:1.27"}}}
	r := ft.resolver(t, Config{Sources: []MetadataSource{src}, RetryAfter: time.Hour})

	res := r.Warm(context.Background())
	if res.Containers != 2 || res.Resolved != 1 || res.NotFound != 1 || res.Pending != 0 {
		t.Fatalf("warm: %+v", res)
	}
	// The listed container needs no lookup; the unlisted one gets one.
	if src.lookups != 1 {
		t.Fatalf("per-container lookups %d, want 1 (the container List missed)", src.lookups)
	}
	ev := enrich(r, known)
	if ev.Container.Name != "web" || ev.Container.Image != "nginx:1.27" {
		t.Fatalf("first event after warm-up: %+v", ev.Container)
	}
	if st := r.Stats(); st.MetaPending != 0 || st.Rescans != 2 {
		t.Fatalf("first event not served from the warmed cache: %+v", st)
	}
}

func TestWarmTimeoutIsCountedAndHandedOver(t *testing.T) {
	ft := newFakeTree(t)
	id := ft.mkdir(t, "/system.slice/docker-"+cid+".scope")
	src := &slowSource{release: make(chan struct{}), known: map[string]Metadata{cid: {Name: "web", Image: "nginx:1.27"}}}
	r := ft.resolver(t, Config{Sources: []MetadataSource{src}})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := r.Warm(ctx)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Warm ignored its deadline: %s", took)
	}
	if res.Containers != 1 || res.Pending != 1 || res.Resolved != 0 {
		t.Fatalf("warm: %+v", res)
	}
	if st := r.Stats(); st.WarmTimeouts != 1 || st.MetaNotFound != 0 {
		t.Fatalf("timeout not counted as such: %+v", st)
	}
	// The background worker finishes what Warm could not.
	close(src.release)
	waitFor(t, func() bool { return r.Stats().MetaFound == 1 })
	if ev := enrich(r, id); ev.Container.Name != "web" {
		t.Fatalf("after hand-over: %+v", ev.Container)
	}
}

// TestRealRuncWarm starts a real runc container before the resolver: after
// Warm, the container's first event resolves from the cache, without a
// rescan on the event path.
func TestRealRuncWarm(t *testing.T) {
	c := runctest.Start(t, runctest.Options{})
	r, err := New(Config{MinRescan: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res := r.Warm(context.Background())
	if res.Containers < 1 {
		t.Fatalf("warm found no containers: %+v", res)
	}
	before := r.Stats()
	ev := &event.Event{Kind: event.KindExec, Proc: event.Process{PID: uint32(c.InitPID), CgroupID: c.CgroupID}}
	r.Enrich(ev)
	if ev.Container.ID != c.ID || ev.Container.Runtime != RuntimeRunc {
		t.Fatalf("first event: %+v, want id %s runtime runc", ev.Container, c.ID)
	}
	after := r.Stats()
	if after.CacheHits != before.CacheHits+1 || after.Rescans != before.Rescans || after.PidFallbacks != before.PidFallbacks {
		t.Fatalf("first event was not a cache hit: before %+v after %+v", before, after)
	}
}
