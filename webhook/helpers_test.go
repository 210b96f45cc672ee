package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/webhook/pss"
)

// syncBuffer is an audit log the test can read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []AuditRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []AuditRecord
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var r AuditRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			panic(err)
		}
		out = append(out, r)
	}
	return out
}

type testServer struct {
	*Server
	url    string
	caFile string
	http   *http.Client
	audit  *syncBuffer
}

// startServer runs a real webhook on 127.0.0.1 over TLS with a fresh
// self-signed CA and store, its policy the built-in Wasm pack.
func startServer(t testing.TB, mutate func(*Config)) *testServer {
	t.Helper()
	dir := t.TempDir()
	certs, err := GenerateSelfSigned(filepath.Join(dir, "tls"), []string{"127.0.0.1", "localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	audit := &syncBuffer{}
	cfg := Config{
		Addr:     "127.0.0.1:0",
		CertFile: certs.CertFile, KeyFile: certs.KeyFile,
		StorePath:   filepath.Join(dir, "vigil.db"),
		DefaultMode: Mode{Action: Audit, Level: pss.Baseline},
		NamespaceModes: map[string]Mode{
			"prod":    {Action: Enforce, Level: pss.Restricted},
			"staging": {Action: Audit, Level: pss.Restricted},
		},
		AuditLog: audit,
		// The production policy: the built-in Wasm pack. Tests of the
		// native checks set Rules to nil.
		Rules: sharedPack(t),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second close: %v", err)
		}
	})
	pem, _ := os.ReadFile(certs.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &testServer{
		Server: s, url: "https://" + s.Addr().String(), caFile: certs.CAFile, audit: audit,
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 64,
		}},
	}
}

func (ts *testServer) post(t testing.TB, path string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := ts.http.Post(ts.url+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (ts *testServer) get(t testing.TB, path string) (int, []byte) {
	t.Helper()
	resp, err := ts.http.Get(ts.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type reviewOut struct {
	Response struct {
		UID     string `json:"uid"`
		Allowed bool   `json:"allowed"`
		Status  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"status"`
		Warnings         []string          `json:"warnings"`
		AuditAnnotations map[string]string `json:"auditAnnotations"`
	} `json:"response"`
}

// admit posts a review and decodes a 200 answer.
func (ts *testServer) admit(t testing.TB, body []byte) reviewOut {
	t.Helper()
	code, b := ts.post(t, "/validate", body)
	if code != 200 {
		t.Fatalf("status %d: %s", code, b)
	}
	var out reviewOut
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return out
}

type req struct {
	uid, kind, group, ns, name, op, user string
	dryRun                               bool
	object                               string // JSON
	oldObject                            string // JSON, for DELETE and UPDATE
}

func (r req) json() []byte {
	if r.uid == "" {
		r.uid = "uid-" + r.name
	}
	if r.op == "" {
		r.op = "CREATE"
	}
	if r.user == "" {
		r.user = "alice"
	}
	version := "v1"
	m := map[string]any{
		"apiVersion": "admission.k8s.io/v1",
		"kind":       "AdmissionReview",
		"request": map[string]any{
			"uid":       r.uid,
			"kind":      map[string]string{"group": r.group, "version": version, "kind": r.kind},
			"resource":  map[string]string{"group": r.group, "version": version, "resource": strings.ToLower(r.kind) + "s"},
			"namespace": r.ns,
			"name":      r.name,
			"operation": r.op,
			"userInfo":  map[string]any{"username": r.user, "groups": []string{"system:authenticated"}},
			"object":    json.RawMessage(r.object),
			"dryRun":    r.dryRun,
		},
	}
	if r.oldObject != "" {
		m["request"].(map[string]any)["oldObject"] = json.RawMessage(r.oldObject)
	}
	if r.object == "" {
		delete(m["request"].(map[string]any), "object")
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// Realistic objects.
const (
	privilegedPod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"root","namespace":"%s"},
	 "spec":{"hostPID":true,"containers":[{"name":"sh","image":"busybox","command":["sh"],
	 "securityContext":{"privileged":true}}]}}`

	restrictedDeployment = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"prod"},
	 "spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},
	 "spec":{"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},
	 "containers":[{"name":"app","image":"registry.example.com/web:IMAGE","command":["/app/web"],"args":["--port=8080"],
	 "ports":[{"containerPort":8080}],"env":[{"name":"DB","value":"postgres://db.prod.svc:5432/web"}],
	 "securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"readOnlyRootFilesystem":true}}]}}}}`
)
