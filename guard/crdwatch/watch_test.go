package crdwatch

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/vigilsec/vigil/guard/baseline"
	"github.com/vigilsec/vigil/guard/profile"
	"github.com/vigilsec/vigil/webhook/crd"
)

// sink records what the watcher hands to detection. The real detector
// behind a real API server is test/e2e's TestWorkloadProfileCRD; this
// covers the event handling an informer drives (fake client).
type sink struct {
	mu      sync.Mutex
	seeds   []profile.Key
	windows []profile.ReleaseWindow
}

func (s *sink) Seed(p profile.Expected) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seeds = append(s.seeds, p.Key)
}

func (s *sink) SetWindows(ws []profile.ReleaseWindow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.windows = ws
}

func (s *sink) Profiles() []baseline.Summary { return nil }

func (s *sink) snapshot() ([]profile.Key, []profile.ReleaseWindow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]profile.Key(nil), s.seeds...), append([]profile.ReleaseWindow(nil), s.windows...)
}

func object(t *testing.T, rev string, gen int64, containers ...string) *unstructured.Unstructured {
	t.Helper()
	var ps []profile.Expected
	wk := profile.WorkloadKey{Namespace: "shop", Workload: "Deployment/web"}
	for _, c := range containers {
		ps = append(ps, profile.Expected{Key: profile.Key{Namespace: "shop", Workload: wk.Workload, Container: c, Revision: rev}})
	}
	w := &profile.ReleaseWindow{Workload: wk, Revision: rev, Opened: time.Unix(100, 0).UTC(), Closes: time.Unix(200, 0).UTC()}
	o := crd.FromProfiles(wk, rev, ps, w)
	o.Metadata.UID, o.Metadata.Generation = "uid-"+rev, gen
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	return u
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSeedsOncePerGeneration: every container of every object is seeded,
// windows follow the objects, status-only updates (same generation) do
// not re-seed, a spec change does, and invalid objects are skipped and
// counted.
func TestSeedsOncePerGeneration(t *testing.T) {
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{crd.GVR: crd.Kind + "List"}, object(t, "r1", 1, "app", "init"))
	s := &sink{}
	w, err := New(Config{Client: client, Node: "n1", StatusInterval: time.Hour}, s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	defer w.Close()
	waitFor(t, "the first object", func() bool { k, _ := s.snapshot(); return len(k) == 2 })
	res := client.Resource(crd.GVR).Namespace("shop")

	// A status write: same generation.
	u := object(t, "r1", 1, "app", "init")
	u.Object["status"] = map[string]any{"nodes": []any{map[string]any{"node": "n2"}}}
	if _, err := res.Update(ctx, u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A second revision, and an invalid object.
	if _, err := res.Create(ctx, object(t, "r2", 1, "app"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bad := object(t, "r3", 1, "app")
	bad.Object["spec"].(map[string]any)["workload"] = "web"
	if _, err := res.Create(ctx, bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second revision and the invalid object", func() bool {
		k, _ := s.snapshot()
		return len(k) == 3 && w.Stats().Invalid == 1
	})
	// A spec change bumps the generation: re-seed.
	if _, err := res.Update(ctx, object(t, "r1", 2, "app", "init", "sidecar"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the re-seed", func() bool { k, _ := s.snapshot(); return len(k) == 6 })
	keys, windows := s.snapshot()
	if st := w.Stats(); st.Seeded != 3 || st.Invalid != 1 {
		t.Errorf("stats %+v: want 3 seeds (r1, r2, r1 again), 1 invalid", st)
	}
	if keys[2] != (profile.Key{Namespace: "shop", Workload: "Deployment/web", Container: "app", Revision: "r2"}) {
		t.Errorf("third seed %+v, want r2's app", keys[2])
	}
	if len(windows) != 2 || windows[0].Workload.Workload != "Deployment/web" {
		t.Errorf("windows %+v: want r1's and r2's", windows)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
