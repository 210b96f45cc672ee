package webhook

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/webhook/crd"
)

// applyLog is a crd.Applier that records what the real crd.Writer would
// send to the API server (test/e2e's TestWorkloadProfileCRD sends it to a
// real one).
type applyLog struct {
	mu    sync.Mutex
	calls []applied
}

type applied struct {
	manager string
	obj     crd.Object
}

func (a *applyLog) Apply(_ context.Context, _, _, manager string, body []byte) error {
	var o crd.Object
	if err := json.Unmarshal(body, &o); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, applied{manager, o})
	return nil
}

func (a *applyLog) wait(t *testing.T, n int) []applied {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		a.mu.Lock()
		got := append([]applied(nil), a.calls...)
		a.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) != n {
				t.Fatalf("%d applies, want %d: %+v", len(got), n, got)
			}
			return got
		}
		time.Sleep(time.Millisecond)
	}
}

// TestProfilesBackend: admitted revisions reach the CRD writer (containers,
// then the window; a rollback as a window alone), dry runs never do, and a
// restarted webhook re-queues its store.
func TestProfilesBackend(t *testing.T) {
	store := filepath.Join(t.TempDir(), "vigil.db")
	log := &applyLog{}
	w := crd.NewWriter(log, crd.WriterConfig{})
	defer w.Close()
	ts := startServer(t, func(c *Config) { c.Rules, c.StorePath, c.Profiles = nil, store, w })
	dep := func(img string) string { return strings.Replace(restrictedDeployment, "IMAGE", img, 1) }
	deploy := func(img, op string, dry bool) {
		ts.admit(t, req{kind: "Deployment", group: "apps", ns: "prod", name: "web", object: dep(img), op: op, dryRun: dry}.json())
	}

	deploy("1.0", "CREATE", true)
	time.Sleep(50 * time.Millisecond)
	log.wait(t, 0)

	deploy("1.0", "CREATE", false)
	got := log.wait(t, 2)
	rev1 := got[0].obj.Spec.Revision
	if got[0].manager != crd.ManagerProfile || len(got[0].obj.Spec.Containers) != 1 || got[0].obj.Spec.Containers[0].Image != "registry.example.com/web:1.0" {
		t.Errorf("first apply %+v: want the app container by %s", got[0], crd.ManagerProfile)
	}
	if got[1].manager != crd.ManagerWindow || got[1].obj.Spec.ReleaseWindow == nil || got[1].obj.Spec.ReleaseWindow.User != "alice" {
		t.Errorf("second apply %+v: want alice's window by %s", got[1], crd.ManagerWindow)
	}
	// The same template again (a ReplicaSet, a re-apply) writes nothing.
	deploy("1.0", "UPDATE", false)
	deploy("2.0", "UPDATE", false)
	got = log.wait(t, 4)
	if rw := got[3].obj.Spec.ReleaseWindow; rw == nil || rw.PrevRevision != rev1 || rw.Changed[0] != "image" {
		t.Errorf("update window %+v: want prev %s, image changed", rw, rev1)
	}
	rev2 := got[2].obj.Spec.Revision
	deploy("1.0", "UPDATE", false) // rollback: a window, no containers
	got = log.wait(t, 5)
	if r := got[4]; r.manager != crd.ManagerWindow || r.obj.Spec.Revision != rev1 || len(r.obj.Spec.Containers) != 0 || r.obj.Spec.ReleaseWindow.PrevRevision != rev2 {
		t.Errorf("rollback apply %+v: want rev1's window alone, prev %s", r, rev2)
	}

	// Restart on the same store: both revisions are queued again, each
	// with its containers and latest window.
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	log2 := &applyLog{}
	w2 := crd.NewWriter(log2, crd.WriterConfig{})
	defer w2.Close()
	cfg := ts.cfg
	cfg.Addr, cfg.Profiles = "127.0.0.1:0", w2
	s2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got = log2.wait(t, 4)
	byRev := map[string][]applied{}
	for _, a := range got {
		byRev[a.obj.Spec.Revision] = append(byRev[a.obj.Spec.Revision], a)
	}
	for _, rev := range []string{rev1, rev2} {
		as := byRev[rev]
		if len(as) != 2 || len(as[0].obj.Spec.Containers) != 1 || as[1].obj.Spec.ReleaseWindow == nil {
			t.Errorf("resync of %s: %+v", rev, as)
		}
	}
	if rw := byRev[rev1][1].obj.Spec.ReleaseWindow; rw.PrevRevision != rev2 {
		t.Errorf("resync of %s sent window %+v, want the rollback's (prev %s)", rev1, rw, rev2)
	}
}
