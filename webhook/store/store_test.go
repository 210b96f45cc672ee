package store

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/profile"
)

func rollout(rev, image string, controller bool, now time.Time) Rollout {
	wk := profile.WorkloadKey{Namespace: "shop", Workload: "Deployment/web"}
	return Rollout{
		Workload: wk, Revision: rev, Aspects: map[string]string{"image": image, "env": "e"},
		Profiles: []profile.Expected{
			{Key: profile.Key{Namespace: "shop", Workload: "Deployment/web", Container: "app", Revision: rev}, Image: image},
			{Key: profile.Key{Namespace: "shop", Workload: "Deployment/web", Container: "side", Revision: rev}, Image: "side"},
		},
		User: "alice", Now: now, Window: 30 * time.Minute, Controller: controller,
	}
}

func TestRecordLifecycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1700000000, 0).UTC()

	res, err := s.Record(rollout("r1", "web:1", true, t0))
	if err != nil || !res.Recorded || res.Window == nil || res.Window.PrevRevision != "" {
		t.Fatalf("first rollout: %+v %v", res, err)
	}
	// The same template again (the Deployment's pods, a re-apply): nothing.
	if res, _ := s.Record(rollout("r1", "web:1", false, t0.Add(time.Minute))); res.Recorded || res.Window != nil {
		t.Fatalf("repeat recorded: %+v", res)
	}
	// A new image: new profiles, a window naming what changed.
	res, _ = s.Record(rollout("r2", "web:2", true, t0.Add(time.Hour)))
	if !res.Recorded || res.Window == nil || res.Window.PrevRevision != "r1" || !reflect.DeepEqual(res.Window.Changed, []string{"image"}) ||
		res.Window.User != "alice" || !res.Window.Closes.Equal(t0.Add(time.Hour+30*time.Minute)) {
		t.Fatalf("second rollout: %+v %+v", res, res.Window)
	}
	// An old ReplicaSet's pod during the rollout is not a release.
	if res, _ := s.Record(rollout("r1", "web:1", false, t0.Add(time.Hour))); res.Recorded || res.Window != nil {
		t.Fatalf("old pod opened a window: %+v", res)
	}
	// A rollback of the controller is a release, but the profiles exist.
	res, _ = s.Record(rollout("r1", "web:1", true, t0.Add(2*time.Hour)))
	if res.Recorded || res.Window == nil || res.Window.PrevRevision != "r2" {
		t.Fatalf("rollback: %+v", res)
	}

	ps, next, err := s.Profiles(0, 0)
	if err != nil || len(ps) != 4 || next != 2 {
		t.Fatalf("profiles: %d next %d err %v", len(ps), next, err)
	}
	if ps[0].Seq != 1 || ps[2].Seq != 2 || ps[2].Image != "web:2" {
		t.Fatalf("profiles %+v", ps)
	}
	// Paging never splits a rollout: limit 1 still returns both of rollout 1.
	ps, next, _ = s.Profiles(0, 1)
	if len(ps) != 2 || next != 1 {
		t.Fatalf("page: %d next %d", len(ps), next)
	}
	ps, _, _ = s.Profiles(next, 1)
	if len(ps) != 2 || ps[0].Seq != 2 {
		t.Fatalf("second page: %+v", ps)
	}

	ws, _ := s.Windows(0, false, time.Time{})
	if len(ws) != 3 {
		t.Fatalf("%d windows", len(ws))
	}
	open, _ := s.Windows(0, true, t0.Add(2*time.Hour+time.Minute))
	if len(open) != 1 || open[0].Revision != "r1" {
		t.Fatalf("open windows %+v", open)
	}

	if err := s.SetNamespaceMode("shop", "enforce:restricted"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := s.Record(rollout("r3", "x", true, t0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("record after close: %v", err)
	}

	// Everything survives a restart, including what is latest.
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if res, _ := s.Record(rollout("r1", "web:1", true, t0)); res.Window != nil {
		t.Fatal("state lost across reopen: latest revision forgotten")
	}
	modes, _ := s.NamespaceModes()
	if modes["shop"] != "enforce:restricted" {
		t.Fatalf("modes %v", modes)
	}
}
