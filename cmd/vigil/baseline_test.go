package main

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/baseline"
	"github.com/vigilsec/vigil/guard/profile"
)

func runVigil(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestBaselineCLI(t *testing.T) {
	db := filepath.Join(t.TempDir(), "baseline.db")
	s, err := baseline.OpenStore(db, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	k := profile.Key{Namespace: "shop", Workload: "Deployment/web", Container: "nginx", Revision: "7d9f"}
	d, err := baseline.New(baseline.Config{}, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Seed(profile.Expected{Key: k, Executables: []string{"/usr/sbin/nginx"}, ListenPorts: []profile.Port{{Port: 80, Proto: "TCP"}}})
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// While the store is held (a running guard), the CLI refuses clearly.
	if _, err := runVigil(t, "baseline", "--db", db, "list"); !errors.Is(err, baseline.ErrStoreLocked) {
		t.Fatalf("list on a held store: %v", err)
	}
	s.Close()

	out, err := runVigil(t, "baseline", "--db", db, "list")
	if err != nil || !strings.Contains(out, "shop/Deployment/web:nginx@7d9f") || !strings.Contains(out, "learning") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	key := baseline.FormatKey(k)
	out, err = runVigil(t, "baseline", "--db", db, "accept", key, "exec:/usr/bin/curl", "listen:tcp/80")
	if err != nil || !strings.Contains(out, "accepted exec:/usr/bin/curl") || !strings.Contains(out, "already in profile: listen:tcp/80") {
		t.Fatalf("accept: %v\n%s", err, out)
	}
	out, err = runVigil(t, "baseline", "--db", db, "show", key)
	if err != nil || !strings.Contains(out, "exec:/usr/bin/curl\n") || !strings.Contains(out, "exec:/usr/sbin/nginx\n") {
		t.Fatalf("show: %v\n%s", err, out)
	}
	out, err = runVigil(t, "baseline", "--db", db, "--json", "show", key)
	if err != nil || !strings.Contains(out, `"exec:/usr/bin/curl"`) {
		t.Fatalf("show --json: %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"accept", key, "bogus:/x"},
		{"accept", "not-a-key", "exec:/x"},
		{"show", "shop/Deployment/web:nginx@nope"},
	} {
		if _, err := runVigil(t, append([]string{"baseline", "--db", db}, args...)...); err == nil {
			t.Errorf("%v succeeded", args)
		}
	}
	if _, err := runVigil(t, "baseline", "--db", filepath.Join(t.TempDir(), "missing.db"), "list"); err == nil {
		t.Error("list of a missing store succeeded")
	}
}

// TestBaselineLockCLI: lock refuses a learning profile, locks a ready one
// (the state a restarted guard loads), and unlock makes it ready again.
func TestBaselineLockCLI(t *testing.T) {
	db := filepath.Join(t.TempDir(), "baseline.db")
	s, err := baseline.OpenStore(db, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	k := profile.Key{Namespace: "shop", Workload: "Deployment/web", Container: "nginx", Revision: "7d9f"}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d, err := baseline.New(baseline.Config{}, s, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	d.Seed(profile.Expected{Key: k, Executables: []string{"/usr/sbin/nginx"}})
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	key := baseline.FormatKey(k)
	if _, err := runVigil(t, "baseline", "--db", db, "lock", key); !errors.Is(err, baseline.ErrNotReady) {
		t.Fatalf("lock of a learning profile: %v", err)
	}

	s, err = baseline.OpenStore(db, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	p.State = baseline.StateReady
	if err := s.Put(p); err != nil {
		t.Fatal(err)
	}
	s.Close()
	state := func() baseline.State {
		t.Helper()
		s, err := baseline.OpenStore(db, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		p, err := s.Get(k)
		if err != nil {
			t.Fatal(err)
		}
		return p.State
	}
	out, err := runVigil(t, "baseline", "--db", db, "lock", key)
	if err != nil || !strings.Contains(out, "locked "+key+": 1 executables allowed") || state() != baseline.StateLocked {
		t.Fatalf("lock: %v %q state %v", err, out, state())
	}
	if out, err := runVigil(t, "baseline", "--db", db, "lock", key); err != nil || !strings.Contains(out, "already locked") {
		t.Fatalf("second lock: %v %q", err, out)
	}
	if out, err := runVigil(t, "baseline", "--db", db, "unlock", key); err != nil || !strings.Contains(out, "unlocked") || state() != baseline.StateReady {
		t.Fatalf("unlock: %v %q state %v", err, out, state())
	}
	if _, err := runVigil(t, "baseline", "--db", db, "lock", "shop/Deployment/web:nginx@nope"); err == nil {
		t.Error("lock of a missing profile succeeded")
	}
}
