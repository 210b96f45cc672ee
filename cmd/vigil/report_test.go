package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/enforce"
)

func TestWouldBlockReport(t *testing.T) {
	db := filepath.Join(t.TempDir(), "audit.db")
	s, err := enforce.OpenAuditStore(db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for i, r := range []enforce.StoredRecord{
		{Time: now.Add(-8 * 24 * time.Hour), Workload: "shop/web", Rule: "old", Kind: "exec", Action: "block", Comm: "sh", Object: "/bin/sh"},
		{Time: now.Add(-2 * time.Hour), Workload: "shop/web", Rule: "no-shell", Kind: "exec", Action: "kill", Comm: "bash", Object: "/bin/sh"},
		{Time: now.Add(-time.Hour), Workload: "shop/web", Rule: "no-shell", Kind: "exec", Action: "kill", Comm: "bash", Object: "/bin/sh"},
		{Time: now.Add(-time.Hour), Workload: "shop/web", Rule: "no-shell", Kind: "exec", Action: "kill", Denied: true, Comm: "bash", Object: "/bin/sh"},
	} {
		if err := s.Put(r); err != nil {
			t.Fatal(i, err)
		}
	}
	s.Close()
	var out bytes.Buffer
	if err := runWouldBlock(context.Background(), reportConfig{DB: db, Since: "7d", Out: &out, Now: func() time.Time { return now }}); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"shop/web: 2 actions", "no-shell", "would have killed", "x2", "bash -> /bin/sh"} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "old") {
		t.Errorf("report includes records outside --since:\n%s", got)
	}
	if err := runWouldBlock(context.Background(), reportConfig{DB: db, Since: "7x", Out: &out, Now: time.Now}); err == nil {
		t.Error("bad --since accepted")
	}
}
