package enforce

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestAuditStoreReport(t *testing.T) {
	s, err := OpenAuditStore(filepath.Join(t.TempDir(), "sub", "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	put := func(d time.Duration, wl, rule, comm, obj string, denied bool) {
		if err := s.Put(StoredRecord{Time: t0.Add(d), Workload: wl, Rule: rule, Kind: "exec", Action: "block",
			Mode: "audit", Denied: denied, Comm: comm, Object: obj}); err != nil {
			t.Fatal(err)
		}
	}
	put(-48*time.Hour, "shop/web", "no-shell", "sh", "/bin/sh", false) // before the window
	put(0, "shop/web", "no-shell", "bash", "/bin/sh", false)
	put(time.Hour, "shop/web", "no-shell", "bash", "/bin/sh", false)
	put(2*time.Hour, "shop/web", "no-shell", "python", "/bin/sh", false)
	put(3*time.Hour, "shop/web", "no-shell", "perl", "/bin/sh", false)
	put(time.Minute, "shop/web", "no-curl", "sh", "curl", false)
	put(time.Minute, "shop/web", "no-curl", "sh", "curl", true) // enforced: not a would-have
	put(time.Second, "pay/api", "no-egress", "app", "10.0.0.1:443", false)

	recs, err := s.Since(t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 7 {
		t.Fatalf("Since returned %d records", len(recs))
	}
	rep := ReportWouldBlock(recs)
	if len(rep) != 2 || rep[0].Workload != "pay/api" || rep[1].Workload != "shop/web" {
		t.Fatalf("report %+v", rep)
	}
	web := rep[1].Entries
	if len(web) != 2 || web[0].Rule != "no-shell" || web[0].Count != 4 || web[1].Count != 1 {
		t.Fatalf("web entries %+v", web)
	}
	if !web[0].FirstSeen.Equal(t0) || !web[0].LastSeen.Equal(t0.Add(3*time.Hour)) || len(web[0].Examples) != 3 {
		t.Errorf("no-shell row %+v", web[0])
	}
	if err := s.Close(); err != nil || s.Close() != nil {
		t.Error("close twice")
	}
}

func TestParseSince(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"7d": 7 * 24 * time.Hour, "36h": 36 * time.Hour, "1d12h": 36 * time.Hour, "90m": 90 * time.Minute, "0d": 0,
	} {
		if got, err := ParseSince(in); err != nil || got != want {
			t.Errorf("ParseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "d", "-1d", "7x", "1.5d", "7d-1h"} {
		if _, err := ParseSince(bad); !errors.Is(err, ErrBadSince) {
			t.Errorf("ParseSince(%q) = %v, want ErrBadSince", bad, err)
		}
	}
}
