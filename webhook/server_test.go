package webhook

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestEnforceAuditAndRecordOverTLS(t *testing.T) {
	ts := startServer(t, nil)

	// enforce:restricted denies, naming every violated check.
	out := ts.admit(t, req{kind: "Pod", ns: "prod", name: "root", object: fmt.Sprintf(privilegedPod, "prod")}.json())
	if out.Response.Allowed || out.Response.Status == nil || out.Response.Status.Code != 403 {
		t.Fatalf("privileged pod in prod: %+v", out.Response)
	}
	msg := out.Response.Status.Message
	for _, want := range []string{"restricted:latest", "host namespaces (hostPID=true)", "privileged", "allowPrivilegeEscalation != false", "runAsNonRoot != true", "seccompProfile"} {
		if !strings.Contains(msg, want) {
			t.Errorf("deny message lacks %q: %s", want, msg)
		}
	}
	if out.Response.UID != "uid-root" {
		t.Errorf("uid %q", out.Response.UID)
	}

	// audit:restricted allows with warnings and an audit record.
	out = ts.admit(t, req{kind: "Pod", ns: "staging", name: "root", object: fmt.Sprintf(privilegedPod, "staging")}.json())
	if !out.Response.Allowed || len(out.Response.Warnings) < 4 || out.Response.AuditAnnotations["pss-violations"] == "" {
		t.Fatalf("privileged pod in staging: %+v", out.Response)
	}
	recs := ts.audit.lines()
	if len(recs) != 2 || recs[0].Verdict != Denied || recs[1].Verdict != Warned || recs[1].Namespace != "staging" || len(recs[1].Violations) == 0 {
		t.Fatalf("audit records %+v", recs)
	}

	// The staging pod was admitted, so it is recorded as its own workload.
	c, err := NewClient(ts.url, ts.caFile)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if ps, err := c.Poll(ctx); err != nil || len(ps) != 1 || ps[0].Key.Workload != "Pod/root" || ps[0].Key.Namespace != "staging" {
		t.Fatalf("staging pod profile %+v %v", ps, err)
	}
	w0, _ := c.Windows(ctx, 0, true)

	// A compliant Deployment is admitted and recorded, with a window.
	dep := strings.Replace(restrictedDeployment, "IMAGE", "1.0", 1)
	out = ts.admit(t, req{kind: "Deployment", group: "apps", ns: "prod", name: "web", object: dep}.json())
	if !out.Response.Allowed || len(out.Response.Warnings) != 0 {
		t.Fatalf("restricted deployment: %+v", out.Response)
	}
	ps, err := c.Poll(ctx)
	if err != nil || len(ps) != 1 {
		t.Fatalf("poll: %d profiles, %v", len(ps), err)
	}
	p := ps[0]
	if p.Key.Workload != "Deployment/web" || p.Key.Container != "app" || p.Image != "registry.example.com/web:1.0" ||
		!reflect.DeepEqual(p.Executables, []string{"/app/web"}) || len(p.Egress) != 1 || p.Egress[0].Host != "db.prod.svc" {
		t.Fatalf("profile %+v", p)
	}
	ws, err := c.Windows(ctx, w0[0].Seq, true)
	if err != nil || len(ws) != 1 || ws[0].User != "alice" || ws[0].PrevRevision != "" {
		t.Fatalf("windows %+v %v", ws, err)
	}

	// Re-applying the same template (a scale) records nothing new.
	scaled := strings.Replace(dep, `"replicas":3`, `"replicas":5`, 1)
	ts.admit(t, req{kind: "Deployment", group: "apps", ns: "prod", name: "web", op: "UPDATE", object: scaled}.json())
	if ps, _ := c.Poll(ctx); len(ps) != 0 {
		t.Fatalf("scale recorded %d profiles", len(ps))
	}

	// A new image is a rollout: new profiles, and a window saying what
	// changed and who did it.
	v2 := strings.Replace(restrictedDeployment, "IMAGE", "2.0", 1)
	ts.admit(t, req{kind: "Deployment", group: "apps", ns: "prod", name: "web", op: "UPDATE", user: "bob", object: v2}.json())
	ps, _ = c.Poll(ctx)
	if len(ps) != 1 || ps[0].Image != "registry.example.com/web:2.0" {
		t.Fatalf("rollout profiles %+v", ps)
	}
	ws, _ = c.Windows(ctx, ws[0].Seq, true)
	if len(ws) != 1 || ws[0].User != "bob" || !reflect.DeepEqual(ws[0].Changed, []string{"image"}) || ws[0].PrevRevision == "" {
		t.Fatalf("rollout window %+v", ws)
	}

	// A pod of the new ReplicaSet (named and labelled by the pod-template
	// hash) maps back to the Deployment's recorded revision and adds
	// nothing. (object's TestPodTemplateHashMatchesController pins the hash
	// to kube-controller-manager's.)
	rev := ps[0].Key.Revision
	pod := fmt.Sprintf(`{"metadata":{"name":"web-%[1]s-x1","namespace":"prod","labels":{"app":"web","pod-template-hash":"%[1]s"},
	  "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-%[1]s","uid":"u","controller":true}]},
	  "spec":{"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},
	  "containers":[{"name":"app","image":"registry.example.com/web:2.0","securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}`, rev)
	out = ts.admit(t, req{kind: "Pod", ns: "prod", name: "", object: pod}.json())
	if !out.Response.Allowed {
		t.Fatalf("replica pod denied: %+v", out.Response)
	}
	if ps, _ := c.Poll(ctx); len(ps) != 0 {
		t.Fatalf("pod of a recorded revision recorded %d profiles", len(ps))
	}
}

func TestDryRunRecordsNothing(t *testing.T) {
	ts := startServer(t, nil)
	dep := strings.Replace(restrictedDeployment, "IMAGE", "1.0", 1)
	for _, r := range []req{
		{kind: "Deployment", group: "apps", ns: "prod", name: "web", object: dep, dryRun: true},
		{kind: "Pod", ns: "staging", name: "root", object: fmt.Sprintf(privilegedPod, "staging"), dryRun: true},
		{kind: "ConfigMap", ns: "prod", name: "cm", object: `{"data":{}}`, dryRun: true},
		{kind: "Namespace", name: "team", object: `{"metadata":{"name":"team","labels":{"vigil.dev/mode":"enforce"}}}`, dryRun: true},
	} {
		ts.admit(t, r.json())
	}
	// Dry-run denials still deny: that is what --dry-run=server is for.
	out := ts.admit(t, req{kind: "Pod", ns: "prod", name: "root", object: fmt.Sprintf(privilegedPod, "prod"), dryRun: true}.json())
	if out.Response.Allowed {
		t.Fatal("dry run bypassed enforcement")
	}
	ps, _, err := ts.store.Profiles(0, 0)
	if err != nil || len(ps) != 0 {
		t.Fatalf("dry run recorded %d profiles (%v)", len(ps), err)
	}
	ws, _ := ts.store.Windows(0, false, time.Time{})
	modes, _ := ts.store.NamespaceModes()
	if len(ws) != 0 || len(modes) != 0 || len(ts.audit.lines()) != 0 {
		t.Fatalf("dry run left windows %v, modes %v, audit %v", ws, modes, ts.audit.lines())
	}
	// The same Deployment for real is recorded: the dry run did not
	// poison the "already seen" state.
	ts.admit(t, req{kind: "Deployment", group: "apps", ns: "prod", name: "web", object: dep}.json())
	if ps, _, _ := ts.store.Profiles(0, 0); len(ps) != 1 {
		t.Fatalf("real admission after dry run recorded %d profiles", len(ps))
	}
}

func TestBadInput(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxBodyBytes = 64 << 10 })
	valid := req{kind: "Pod", ns: "default", name: "p", object: `{"spec":{"containers":[{"name":"a","image":"b"}]}}`}
	for _, tc := range []struct {
		name string
		body string
		code int
		want string
	}{
		{"malformed json", `{"apiVersion":`, 400, "malformed JSON"},
		{"not json", "hello", 400, "malformed JSON"},
		{"empty body", "", 400, "malformed JSON"},
		{"json array", `[1,2]`, 400, "malformed JSON"},
		{"empty object", `{}`, 400, "want apiVersion admission.k8s.io/v1"},
		{"old api version", `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}`, 400, "admission.k8s.io/v1beta1"},
		{"wrong kind", `{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}`, 400, "kind AdmissionReview"},
		{"no request", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, 400, "no request"},
		{"no uid", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}`, 400, "no uid"},
		{"pod object not a pod", string(req{kind: "Pod", ns: "d", name: "p", object: `{"spec":7}`}.json()), 400, "decode pod"},
		{"deployment object wrong type", string(req{kind: "Deployment", ns: "d", name: "p", object: `{"spec":{"template":[]}}`}.json()), 400, "decode deployment"},
		{"oversized body", `{"apiVersion":"` + strings.Repeat("x", 80<<10) + `"}`, 413, "exceeds"},
		{"unknown kind", string(req{kind: "ConfigMap", ns: "d", name: "c", object: `{"data":{"a":"b"}}`}.json()), 200, `"allowed":true`},
		{"valid", string(valid.json()), 200, `"allowed":true`},
	} {
		code, body := ts.post(t, "/validate", []byte(tc.body))
		if code != tc.code || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %s; want %d containing %q", tc.name, code, body, tc.code, tc.want)
		}
	}
	if code, _ := ts.get(t, "/validate"); code != 405 {
		t.Errorf("GET /validate: %d", code)
	}
	if code, _ := ts.get(t, "/nope"); code != 404 {
		t.Errorf("unknown path: %d", code)
	}
	if code, _ := ts.get(t, "/v1/profiles?since=-1"); code != 400 {
		t.Errorf("bad since: %d", code)
	}
	// The unknown kind left an audit record.
	var unknown int
	for _, r := range ts.audit.lines() {
		if r.Reason == "unknown_kind" && r.Kind == "ConfigMap" {
			unknown++
		}
	}
	if unknown != 1 {
		t.Errorf("%d unknown-kind audit records", unknown)
	}
	// Decode errors are counted.
	_, m := ts.get(t, "/metrics")
	for _, want := range []string{`vigil_webhook_decode_errors_total{reason="review"} 9`, `vigil_webhook_decode_errors_total{reason="object"} 2`,
		`vigil_webhook_decode_errors_total{reason="too_large"} 1`, `vigil_webhook_request_duration_seconds_bucket`,
		`vigil_webhook_requests_total{kind="ConfigMap"`} {
		if want == `vigil_webhook_requests_total{kind="ConfigMap"` {
			if strings.Contains(string(m), want) {
				t.Errorf("unbounded kind label in metrics")
			}
			continue
		}
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, b := ts.get(t, p); code != 200 || string(b) != "ok" {
			t.Errorf("%s: %d %s", p, code, b)
		}
	}
}

// Slow or half-open clients hold a connection each but never a worker the
// API server needs: good requests keep flowing, and the slow connections are
// cut at the read timeout.
func TestSlowClientsDoNotBlockOthers(t *testing.T) {
	// Long enough that a request stuck behind a slow client would show.
	const readTimeout = 5 * time.Second
	ts := startServer(t, func(c *Config) { c.ReadTimeout = readTimeout })
	addr := ts.Addr().String()
	var slow []net.Conn
	defer func() {
		for _, c := range slow {
			c.Close()
		}
	}()
	// Half-open TCP (no TLS handshake at all).
	for range 20 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		slow = append(slow, c)
	}
	// TLS done, HTTP headers trickling.
	tcfg := ts.http.Transport.(*http.Transport).TLSClientConfig
	var tlsSlow []*tls.Conn
	for range 20 {
		c, err := tls.Dial("tcp", addr, tcfg)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
		tlsSlow = append(tlsSlow, c)
		slow = append(slow, c)
	}
	body := req{kind: "Pod", ns: "default", name: "p", object: `{"spec":{"containers":[{"name":"a","image":"b"}]}}`}.json()
	start := time.Now()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { ts.admit(t, body) })
	}
	wg.Wait()
	// Blocked behind the slow clients they would wait out the read
	// timeout; served independently they finish well before it.
	if d := time.Since(start); d > readTimeout-time.Second {
		t.Errorf("50 requests took %v beside 40 slow clients", d)
	}
	// The trickling connections are answered (408 or closed) once the read
	// timeout passes, not held forever.
	for _, c := range tlsSlow {
		c.SetReadDeadline(start.Add(readTimeout + 3*time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil && !strings.Contains(line, "408") && !strings.Contains(line, "400") {
			t.Errorf("slow client got %q", line)
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("slow client still held %v after the read timeout", 3*time.Second)
		}
	}
}

func TestNamespaceLabelsSetMode(t *testing.T) {
	ts := startServer(t, nil)
	pod := fmt.Sprintf(privilegedPod, "team")
	if out := ts.admit(t, req{kind: "Pod", ns: "team", name: "root", object: pod}.json()); !out.Response.Allowed {
		t.Fatal("default audit mode denied")
	}
	ns := `{"metadata":{"name":"team","labels":{"vigil.dev/mode":"enforce","vigil.dev/level":"baseline"}}}`
	ts.admit(t, req{kind: "Namespace", name: "team", object: ns}.json())
	out := ts.admit(t, req{kind: "Pod", ns: "team", name: "root", object: pod}.json())
	if out.Response.Allowed || !strings.Contains(out.Response.Status.Message, "baseline:latest") {
		t.Fatalf("labelled enforce: %+v", out.Response)
	}
	// Config pins win over labels.
	ts.admit(t, req{kind: "Namespace", name: "prod", object: `{"metadata":{"name":"prod","labels":{"vigil.dev/mode":"off"}}}`}.json())
	if out := ts.admit(t, req{kind: "Pod", ns: "prod", name: "root", object: fmt.Sprintf(privilegedPod, "prod")}.json()); out.Response.Allowed {
		t.Fatal("label overrode the configured enforce mode")
	}
	// A bad label value warns and changes nothing.
	out = ts.admit(t, req{kind: "Namespace", name: "team", op: "UPDATE", object: `{"metadata":{"name":"team","labels":{"vigil.dev/mode":"loud"}}}`}.json())
	if !out.Response.Allowed || len(out.Response.Warnings) != 1 {
		t.Fatalf("bad label: %+v", out.Response)
	}
	if out := ts.admit(t, req{kind: "Pod", ns: "team", name: "root", object: pod}.json()); out.Response.Allowed {
		t.Fatal("bad label reset the mode")
	}
}

// Pods that a StatefulSet (or DaemonSet, Job) creates carry labels their
// template lacks, so their own hash never matches the controller's
// revision: they must not open a window per pod.
func TestControllerPodsFollowTheirController(t *testing.T) {
	ts := startServer(t, nil)
	sts := `{"metadata":{"name":"db","namespace":"data"},"spec":{"serviceName":"db","selector":{"matchLabels":{"app":"db"}},
	  "template":{"metadata":{"labels":{"app":"db"}},"spec":{"containers":[{"name":"pg","image":"postgres:17"}]}}}}`
	pod := func(i int) string {
		return fmt.Sprintf(`{"metadata":{"name":"db-%[1]d","namespace":"data","labels":{"app":"db","controller-revision-hash":"db-5d8","statefulset.kubernetes.io/pod-name":"db-%[1]d"},
		  "ownerReferences":[{"apiVersion":"apps/v1","kind":"StatefulSet","name":"db","uid":"u","controller":true}]},
		  "spec":{"containers":[{"name":"pg","image":"postgres:17"}]}}`, i)
	}
	// First seen through its pods (the webhook came up after the
	// StatefulSet): the first pod records the workload, the rest add nothing.
	for i := range 3 {
		ts.admit(t, req{kind: "Pod", ns: "data", name: fmt.Sprintf("db-%d", i), object: pod(i)}.json())
	}
	ps, _, _ := ts.store.Profiles(0, 0)
	ws, _ := ts.store.Windows(0, false, time.Time{})
	if len(ps) != 1 || len(ws) != 1 || ps[0].Key.Workload != "StatefulSet/db" {
		t.Fatalf("first sight through pods: %d profiles %d windows %+v", len(ps), len(ws), ps)
	}
	// The StatefulSet itself is admitted (an update): one rollout; its pods
	// again add nothing.
	ts.admit(t, req{kind: "StatefulSet", group: "apps", ns: "data", name: "db", op: "UPDATE", object: sts}.json())
	for i := range 3 {
		ts.admit(t, req{kind: "Pod", ns: "data", name: fmt.Sprintf("db-%d", i), object: pod(i)}.json())
	}
	ws, _ = ts.store.Windows(0, false, time.Time{})
	if len(ws) != 2 || ws[1].Workload.Workload != "StatefulSet/db" {
		t.Fatalf("windows after the StatefulSet update: %+v", ws)
	}
}
