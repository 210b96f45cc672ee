package guard

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/baseline"
	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/guard/profile"
	"github.com/vigilsec/vigil/webhook"
	"github.com/vigilsec/vigil/webhook/store"
)

func TestWorkloadFromPodName(t *testing.T) {
	for _, tc := range []struct{ pod, rev, want string }{
		{"web-7d4b9c6f5-x2k9p", "7d4b9c6f5", "Deployment/web"},
		{"shop-api-59f8c7b6d4-abcde", "59f8c7b6d4", "Deployment/shop-api"},
		{"web-7d4b9c6f5-x2k9p", "other", "Pod/web-7d4b9c6f5-x2k9p"}, // hash does not match the label
		{"db-0", "db-6b8f9d7c5", "StatefulSet/db"},
		{"db-12", "db-6b8f9d7c5", "StatefulSet/db"},
		{"db-x", "db-6b8f9d7c5", "Pod/db-x"},
		{"debug", "", "Pod/debug"},
		{"a-b-c", "", "Pod/a-b-c"},
	} {
		if got := workloadFromPodName(tc.pod, tc.rev); got != tc.want {
			t.Errorf("workloadFromPodName(%q, %q) = %q, want %q", tc.pod, tc.rev, got, tc.want)
		}
	}
}

func TestPullProfilesSeedsDetectionAndWorkloads(t *testing.T) {
	now := time.Now()
	exp := profile.Expected{Key: profile.Key{Namespace: "shop", Workload: "Deployment/web", Container: "nginx", Revision: "7d4b9c6f5"},
		Image: "nginx:1.25", Executables: []string{"/usr/sbin/nginx"}, AdmittedAt: now}
	win := profile.ReleaseWindow{Workload: profile.WorkloadKey{Namespace: "shop", Workload: "Deployment/web"}, Revision: "7d4b9c6f5",
		Opened: now.Add(-time.Minute), Closes: now.Add(time.Hour), User: "alice", Changed: []string{"image"}}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/profiles":
			if r.URL.Query().Get("since") != "0" {
				json.NewEncoder(w).Encode(webhook.ProfilesPage{Next: 1})
				return
			}
			json.NewEncoder(w).Encode(webhook.ProfilesPage{Next: 1, Profiles: []store.StoredProfile{{Seq: 1, Expected: exp}}})
		case "/v1/windows":
			json.NewEncoder(w).Encode(webhook.WindowsPage{Windows: []store.StoredWindow{{Seq: 1, ReleaseWindow: win}}})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	c, err := webhook.NewClient(srv.URL, ca)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := baseline.OpenStore(filepath.Join(t.TempDir(), "b.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	det, err := baseline.New(baseline.Config{}, st, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	g := &Guard{detector: det, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	g.pullProfiles(context.Background(), c)
	if g.profileErrors.Load() != 0 {
		t.Fatalf("%d profile errors", g.profileErrors.Load())
	}
	if _, ok := det.Profile(exp.Key); !ok {
		t.Fatal("detector was not seeded from the webhook profile")
	}
	// A pod of that revision whose runtime named no owner is attributed.
	e := &event.Event{K8s: event.K8s{Namespace: "shop", Pod: "web-7d4b9c6f5-zz9zz", Revision: "7d4b9c6f5"}}
	g.fillWorkload(e)
	if e.K8s.Workload != "Deployment/web" {
		t.Fatalf("workload %q", e.K8s.Workload)
	}
}
