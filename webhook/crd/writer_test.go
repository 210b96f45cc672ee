package crd

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/vigilsec/vigil/guard/profile"
)

// recorder is an Applier whose answers a test scripts: the queue logic
// (ordering, merging, drops, backoff) is what is under test here; the real
// API server's side is test/e2e's TestWorkloadProfileCRD.
type recorder struct {
	mu    sync.Mutex
	calls []call
	fail  func(c call) error
	gate  chan struct{} // when set, each Apply waits for a receive
	seen  chan call
}

type call struct {
	ns, name, manager string
	obj               Object
}

func (r *recorder) Apply(ctx context.Context, ns, name, manager string, body []byte) error {
	var o Object
	if err := json.Unmarshal(body, &o); err != nil {
		return err
	}
	c := call{ns, name, manager, o}
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var err error
	if r.fail != nil {
		err = r.fail(c)
	}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	if r.seen != nil {
		r.seen <- c
	}
	return err
}

func (r *recorder) snapshot() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

func exp(ns, wl, rev, c string) profile.Expected {
	return profile.Expected{Key: profile.Key{Namespace: ns, Workload: wl, Container: c, Revision: rev}, Image: "img:" + rev}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWriterManagers(t *testing.T) {
	r := &recorder{seen: make(chan call, 16)}
	w := NewWriter(r, WriterConfig{})
	defer w.Close()
	wk := profile.WorkloadKey{Namespace: "ns", Workload: "Deployment/web"}
	win := &profile.ReleaseWindow{Workload: wk, Revision: "r1", Opened: time.Unix(10, 0), Closes: time.Unix(20, 0), User: "bob"}
	w.Enqueue(wk, "r1", []profile.Expected{exp("ns", "Deployment/web", "r1", "app")}, win)
	a, b := <-r.seen, <-r.seen
	if a.manager != ManagerProfile || len(a.obj.Spec.Containers) != 1 || a.obj.Spec.ReleaseWindow != nil {
		t.Errorf("first apply: %s containers=%d window=%v; want the containers alone by %s", a.manager, len(a.obj.Spec.Containers), a.obj.Spec.ReleaseWindow, ManagerProfile)
	}
	if b.manager != ManagerWindow || len(b.obj.Spec.Containers) != 0 || b.obj.Spec.ReleaseWindow == nil || b.obj.Spec.ReleaseWindow.User != "bob" {
		t.Errorf("second apply: %s %+v; want the window alone by %s", b.manager, b.obj.Spec, ManagerWindow)
	}
	for _, c := range []call{a, b} {
		if c.ns != "ns" || c.name != "deployment-web-r1" || c.obj.Spec.Workload != "Deployment/web" || c.obj.Spec.Revision != "r1" {
			t.Errorf("apply addressed %s/%s with %+v", c.ns, c.name, c.obj.Spec)
		}
	}
	// A rollback to a known revision: the window alone.
	w.Enqueue(wk, "r1", nil, win)
	if c := <-r.seen; c.manager != ManagerWindow || len(c.obj.Spec.Containers) != 0 {
		t.Errorf("window-only update: %s with %d containers", c.manager, len(c.obj.Spec.Containers))
	}
	if got := testutil.ToFloat64(w.writes.WithLabelValues("ok")); got != 2 {
		t.Errorf("ok writes %v, want 2 (one per queued revision)", got)
	}
}

// TestWriterDropsWhenFull: with the API server stuck, the queue holds
// QueueSize revisions, merges updates of queued ones, and counts the rest
// as dropped without ever blocking Enqueue.
func TestWriterDropsWhenFull(t *testing.T) {
	r := &recorder{gate: make(chan struct{})}
	w := NewWriter(r, WriterConfig{QueueSize: 3})
	defer w.Close()
	wk := func(i int) profile.WorkloadKey {
		return profile.WorkloadKey{Namespace: "ns", Workload: "Deployment/w" + string(rune('a'+i))}
	}
	enq := func(i int, rev string) bool {
		return w.Enqueue(wk(i), rev, []profile.Expected{exp("ns", wk(i).Workload, rev, "c")}, nil)
	}
	// The first is taken by the writer and blocks in Apply.
	enq(0, "r")
	waitFor(t, "the writer to take the first revision", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.order) == 0 && w.inflight == 1
	})
	start := time.Now()
	for i := 1; i <= 3; i++ {
		if !enq(i, "r") {
			t.Fatalf("revision %d dropped with room in the queue", i)
		}
	}
	if enq(4, "r") || enq(5, "r") {
		t.Fatal("queue over its size accepted a revision")
	}
	if !enq(2, "r") {
		t.Fatal("an update of a queued revision was dropped; it must merge")
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Enqueue took %s with the API server stuck", d)
	}
	if got := testutil.ToFloat64(w.depth); got != 4 {
		t.Errorf("queue depth %v with the API server stuck, want 4 (3 queued, 1 in flight)", got)
	}
	if got := testutil.ToFloat64(w.dropped); got != 2 {
		t.Errorf("dropped %v, want 2", got)
	}
	close(r.gate)
	waitFor(t, "the queue to drain", func() bool { return len(r.snapshot()) == 4 })
	var names []string
	for _, c := range r.snapshot() {
		names = append(names, c.obj.Spec.Workload)
	}
	want := []string{"Deployment/wa", "Deployment/wb", "Deployment/wc", "Deployment/wd"}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("applied %v, want %v in order", names, want)
		}
	}
}

// TestWriterRetries: transient failures are retried with growing backoff
// and the containers are not re-sent once written; a rejected object is
// counted and not retried.
func TestWriterRetries(t *testing.T) {
	var failures int
	r := &recorder{seen: make(chan call, 64)}
	r.fail = func(c call) error {
		if c.obj.Spec.Workload == "Deployment/bad" {
			return apierrors.NewInvalid(schema.GroupKind{Group: Group, Kind: Kind}, c.name, nil)
		}
		if c.manager == ManagerWindow && failures < 3 {
			failures++
			return errors.New("connection refused")
		}
		return nil
	}
	w := NewWriter(r, WriterConfig{MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond})
	defer w.Close()
	bad := profile.WorkloadKey{Namespace: "ns", Workload: "Deployment/bad"}
	w.Enqueue(bad, "r", []profile.Expected{exp("ns", bad.Workload, "r", "c")}, nil)
	wk := profile.WorkloadKey{Namespace: "ns", Workload: "Deployment/web"}
	win := &profile.ReleaseWindow{Workload: wk, Revision: "r", Opened: time.Unix(1, 0), Closes: time.Unix(2, 0)}
	w.Enqueue(wk, "r", []profile.Expected{exp("ns", wk.Workload, "r", "c")}, win)
	waitFor(t, "the window to land", func() bool { return testutil.ToFloat64(w.writes.WithLabelValues("ok")) == 1 })
	var profileApplies, windowApplies, badApplies int
	for _, c := range r.snapshot() {
		switch {
		case c.obj.Spec.Workload == "Deployment/bad":
			badApplies++
		case c.manager == ManagerProfile:
			profileApplies++
		default:
			windowApplies++
		}
	}
	if badApplies != 1 || profileApplies != 1 || windowApplies != 4 {
		t.Errorf("applies: bad %d (want 1), containers %d (want 1), window %d (want 4)", badApplies, profileApplies, windowApplies)
	}
	if got := testutil.ToFloat64(w.writes.WithLabelValues("retry")); got != 3 {
		t.Errorf("retries %v, want 3", got)
	}
	if got := testutil.ToFloat64(w.writes.WithLabelValues("failed")); got != 1 {
		t.Errorf("failed %v, want 1", got)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkEnqueue is what the crd backend adds to an admission that
// records a new revision (the rich fixture's containers and a window).
// The API server is stuck, so the writer's goroutine (which would
// marshal and apply) takes no CPU from the measurement.
func BenchmarkEnqueue(b *testing.B) {
	wk, rev, ps := richProfiles(b)
	win := &profile.ReleaseWindow{Workload: wk, Revision: rev, Opened: time.Unix(1, 0), Closes: time.Unix(2, 0)}
	stuck := &recorder{gate: make(chan struct{})}
	w := NewWriter(stuck, WriterConfig{QueueSize: 1 << 24})
	defer w.Close()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w.Enqueue(wk, rev+strconv.Itoa(i), ps, win)
	}
}
