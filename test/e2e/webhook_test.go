//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vigilsec/vigil/guard/profile"
	"github.com/vigilsec/vigil/internal/cluster"
	"github.com/vigilsec/vigil/internal/privtest"
	"github.com/vigilsec/vigil/webhook"
	"github.com/vigilsec/vigil/webhook/store"
)

// Namespaces of TestWebhookAdmission. The enforce one is pinned by flag,
// the audit one configured through its labels, so both ways the webhook
// learns a namespace's mode are exercised against the real API server.
const (
	nsEnforce = "e2e-enforce"
	nsAudit   = "e2e-audit"
)

// restrictedReasons are the reasons (pss.Violation.Reason) a container
// without any securityContext fails at the restricted level; both the
// denial message and the audit warnings must name each one.
var restrictedReasons = []string{
	"allowPrivilegeEscalation != false",
	"unrestricted capabilities",
	"runAsNonRoot != true",
	"seccompProfile",
}

// TestWebhookAdmission runs `vigil webhook` as a child process behind a real
// kube-apiserver (ValidatingWebhookConfiguration with a url clientConfig)
// and drives it with the cluster's kubectl: enforce denies, audit admits
// with warnings, profiles and release windows are recorded under the
// pod-template hash the real Deployment controller computes, dry runs record
// nothing, and the webhook keeps answering across an API server restart.
func TestWebhookAdmission(t *testing.T) {
	privtest.RequireRoot(t)
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	timing := func(what string, since time.Time) {
		t.Logf("timing: %-44s %s", what, time.Since(since).Round(time.Millisecond))
	}

	// Build the binary while the cluster comes up: both take seconds.
	dir := t.TempDir()
	bin := filepath.Join(dir, "vigil")
	root := repoRoot(t)
	built := make(chan error, 1)
	go func() {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/vigil")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			err = fmt.Errorf("go build ./cmd/vigil: %w\n%s", err, out)
		}
		built <- err
	}()
	st := time.Now()
	// The controller-manager runs the real Deployment controller: the
	// ReplicaSet it creates carries the pod-template-hash label, the oracle
	// for the revision the webhook recorded.
	c := cluster.StartT(t, cluster.Options{ControllerManager: true})
	t.Logf("cluster: etcd %s, apiserver %s, total %s", c.Timings.Etcd, c.Timings.APIServer, c.Timings.Total)
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	timing("cluster up and vigil built", st)

	st = time.Now()
	wh := startWebhook(t, bin, dir)
	timing("webhook healthy", st)

	// Namespaces first: the enforce one needs no webhook (a pin), and the
	// probe below needs it to exist.
	if err := c.EnsureNamespace(ctx, nsEnforce); err != nil {
		t.Fatal(err)
	}

	st = time.Now()
	registerWebhook(t, ctx, c, wh)
	// The API server picks configurations up through an informer; a pod
	// that restricted forbids is denied once the webhook is in the path.
	if err := waitDenied(ctx, c, pod(nsEnforce, "probe"), true); err != nil {
		t.Fatal(err)
	}
	timing("webhook registered and in the admission path", st)

	// The audit namespace goes through the webhook's namespaces entry,
	// which is how it learns the labels.
	st = time.Now()
	if err := c.Apply(ctx, `apiVersion: v1
kind: Namespace
metadata:
  name: `+nsAudit+`
  labels: {vigil.dev/mode: audit, vigil.dev/level: restricted}
`); err != nil {
		t.Fatal(err)
	}
	// Not EnsureNamespace: its Create of the now existing namespace fails
	// with AlreadyExists only after validating admission, and the webhook
	// learns the (absent) labels of that rejected request, dropping the
	// mode. The default ServiceAccount is all the controller's pods need
	// (the controller-manager may have created it already).
	if _, err := c.Client.CoreV1().ServiceAccounts(nsAudit).Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	timing("audit namespace created", st)
	// The webhook says it learned the mode in its audit log.
	if !slices.ContainsFunc(auditRecords(t, wh.auditLog), func(r webhook.AuditRecord) bool {
		return r.Reason == "namespace_mode" && r.Kind == "Namespace" && r.Name == nsAudit && r.Mode == "audit:restricted"
	}) {
		t.Fatalf("no namespace_mode audit record for %s with mode audit:restricted:\n%s", nsAudit, tail(wh.auditLog, 20))
	}

	client, err := webhook.NewClient(wh.url, wh.caFile)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if ps, err := client.Poll(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("profiles before any workload: %d, %v; want none", len(ps), err)
	}

	// 1. The same violating Deployment in both namespaces.
	t.Run("EnforceDenies", func(t *testing.T) {
		st := time.Now()
		r := kubectl(ctx, c, deployment(nsEnforce, "web", "1.4.2"), "apply", "-f", "-")
		timing("enforce: apply (denied)", st)
		if r.err == nil {
			t.Fatalf("restricted-violating Deployment admitted in enforce namespace:\n%s", r)
		}
		for _, want := range append([]string{
			`admission webhook "pods.vigil.dev" denied the request`,
			`deployment "web" violates PodSecurity "restricted:latest"`,
		}, restrictedReasons...) {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("denial does not say %q:\n%s", want, r.stderr)
			}
		}
		t.Logf("denial: %s", strings.TrimSpace(r.stderr))
		_, err := c.Client.AppsV1().Deployments(nsEnforce).Get(ctx, "web", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			t.Fatalf("denied Deployment exists anyway (get: %v)", err)
		}
	})
	// Every other pod-template owner the configuration registers reaches
	// the webhook and is denied the same way.
	t.Run("EveryOwnerReviewed", func(t *testing.T) {
		for _, kind := range []string{"StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"} {
			st := time.Now()
			r := kubectl(ctx, c, owner(kind, nsEnforce), "apply", "-f", "-")
			timing("enforce: apply "+kind+" (denied)", st)
			want := `admission webhook "pods.vigil.dev" denied the request: vigil: ` + strings.ToLower(kind) + ` "owned" violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false`
			if r.err == nil || !strings.Contains(r.stderr, want) {
				t.Errorf("%s: want denied with %q:\n%s", kind, want, r)
			}
		}
	})
	t.Run("AuditWarns", func(t *testing.T) {
		st := time.Now()
		r := kubectl(ctx, c, deployment(nsAudit, "web", "1.4.2"), "apply", "-f", "-")
		timing("audit: apply (admitted with warnings)", st)
		if r.err != nil {
			t.Fatalf("audit namespace denied the Deployment: %s", r)
		}
		warnings := warningLines(r.stderr)
		if len(warnings) != len(restrictedReasons) {
			t.Errorf("got %d warnings, want %d (one per violated restricted check):\n%s", len(warnings), len(restrictedReasons), r.stderr)
		}
		for _, reason := range restrictedReasons {
			if !slices.ContainsFunc(warnings, func(w string) bool {
				return strings.Contains(w, `would violate PodSecurity "restricted:latest": `+reason)
			}) {
				t.Errorf("no warning for %q:\n%s", reason, r.stderr)
			}
		}
		if !strings.Contains(r.stdout, "deployment.apps/web created") {
			t.Errorf("kubectl did not report the Deployment created:\n%s", r)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// 2. The admitted Deployment's expected behavior, keyed by the hash
	// the Deployment controller gives its ReplicaSet.
	var rev1 string
	t.Run("ProfileRecorded", func(t *testing.T) {
		st := time.Now()
		hash, err := waitTemplateHash(ctx, c, nsAudit, "web")
		if err != nil {
			t.Fatal(err)
		}
		timing("controller created the ReplicaSet", st)
		ps, err := client.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The ReplicaSet (and its pods, Pending without a node) went
		// through the webhook too; being the same revision, they must
		// have recorded nothing more.
		if len(ps) != 2 {
			t.Fatalf("want 2 profiles (init container and web), got %d: %+v", len(ps), ps)
		}
		for _, p := range ps {
			if p.Key.Namespace != nsAudit || p.Key.Workload != "Deployment/web" {
				t.Errorf("profile for %s %s, want %s Deployment/web", p.Key.Namespace, p.Key.Workload, nsAudit)
			}
			if p.Key.Revision != hash {
				t.Errorf("container %s: revision %q, but the Deployment controller's pod-template-hash is %q", p.Key.Container, p.Key.Revision, hash)
			}
		}
		rev1 = hash
		web := findProfile(t, ps, "web")
		checkWebProfile(t, web, "1.4.2")
		migrate := findProfile(t, ps, "migrate")
		if want := []string{"/bin/migrate"}; !slices.Equal(migrate.Executables, want) {
			t.Errorf("init container executables %q, want %q", migrate.Executables, want)
		}

		ws, err := client.Windows(ctx, 0, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) != 1 {
			t.Fatalf("want 1 open release window, got %d: %+v", len(ws), ws)
		}
		w := ws[0]
		if w.Workload != (profile.WorkloadKey{Namespace: nsAudit, Workload: "Deployment/web"}) || w.Revision != hash || w.PrevRevision != "" {
			t.Errorf("window %+v, want %s Deployment/web revision %s with no previous revision", w.ReleaseWindow, nsAudit, hash)
		}
		if w.User != "vigil-e2e-admin" {
			t.Errorf("window user %q, want the requester vigil-e2e-admin (the admin kubeconfig's CN)", w.User)
		}
		if now := time.Now(); !w.Open(now) || w.Closes.Sub(w.Opened) != 10*time.Minute {
			t.Errorf("window %s..%s: want open now (%s) and 10m long (--release-window)", w.Opened, w.Closes, now)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// 3. Dry runs are evaluated but record nothing.
	t.Run("DryRunRecordsNothing", func(t *testing.T) {
		st := time.Now()
		r := kubectl(ctx, c, deployment(nsAudit, "api", "2.0.0"), "apply", "--dry-run=server", "-f", "-")
		timing("audit: dry-run apply of a new Deployment", st)
		if r.err != nil || len(warningLines(r.stderr)) != len(restrictedReasons) || !strings.Contains(r.stdout, "(server dry run)") {
			t.Errorf("dry run in audit namespace: want admitted with %d warnings:\n%s", len(restrictedReasons), r)
		}
		// A changed template of the existing workload would open a window
		// if it were real.
		r = kubectl(ctx, c, deployment(nsAudit, "web", "9.9.9"), "apply", "--dry-run=server", "-f", "-")
		if r.err != nil || !strings.Contains(r.stdout, "(server dry run)") {
			t.Errorf("dry-run update of web: %s", r)
		}
		r = kubectl(ctx, c, deployment(nsEnforce, "api", "2.0.0"), "apply", "--dry-run=server", "-f", "-")
		if r.err == nil || !strings.Contains(r.stderr, "denied the request") {
			t.Errorf("dry run in enforce namespace: want denied:\n%s", r)
		}
		if ps, err := client.Poll(ctx); err != nil || len(ps) != 0 {
			t.Errorf("dry runs recorded %d profiles (err %v), want none: %+v", len(ps), err, ps)
		}
		if ws, err := client.Windows(ctx, 0, false); err != nil || len(ws) != 1 {
			t.Errorf("release windows after dry runs: %d (err %v), want still 1", len(ws), err)
		}
		if _, err := c.Client.AppsV1().Deployments(nsAudit).Get(ctx, "api", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("dry-run Deployment api exists (get: %v)", err)
		}
		// The controller's ReplicaSet and pods write audit records of
		// their own meanwhile; "api" only ever went in as a dry run.
		for _, r := range auditRecords(t, wh.auditLog) {
			if r.Name == "api" {
				t.Errorf("dry run wrote an audit record: %+v", r)
			}
		}
	})

	// 4. An API server restart: the webhook still evaluates what follows.
	t.Run("SurvivesAPIServerRestart", func(t *testing.T) {
		st := time.Now()
		if err := c.RestartAPIServer(ctx); err != nil {
			t.Fatal(err)
		}
		timing("API server restart", st)
		st = time.Now()
		if err := waitDenied(ctx, c, pod(nsEnforce, "probe-after-restart"), false); err != nil {
			t.Fatal(err)
		}
		timing("first denial after the restart", st)
		st = time.Now()
		r := kubectl(ctx, c, deployment(nsAudit, "web", "1.4.3"), "apply", "-f", "-")
		timing("audit: apply of a new image after the restart", st)
		if r.err != nil || len(warningLines(r.stderr)) != len(restrictedReasons) || !strings.Contains(r.stdout, "deployment.apps/web configured") {
			t.Fatalf("update after restart: want configured with %d warnings:\n%s", len(restrictedReasons), r)
		}
		hash, err := waitTemplateHash(ctx, c, nsAudit, "web", rev1)
		if err != nil {
			t.Fatal(err)
		}
		ps, err := client.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 2 {
			t.Fatalf("want 2 profiles for the new revision, got %d: %+v", len(ps), ps)
		}
		web := findProfile(t, ps, "web")
		if web.Key.Revision != hash {
			t.Errorf("new revision %q, controller's pod-template-hash %q", web.Key.Revision, hash)
		}
		checkWebProfile(t, web, "1.4.3")
		ws, err := client.Windows(ctx, 0, true)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(ws, func(w store.StoredWindow) bool { return w.Revision == hash })
		if len(ws) != 2 || i < 0 {
			t.Fatalf("want 2 open windows, one for %s: %+v", hash, ws)
		}
		if w := ws[i]; w.PrevRevision != rev1 || !slices.Equal(w.Changed, []string{"image"}) || w.User != "vigil-e2e-admin" {
			t.Errorf("window %+v: want prev %s, changed [image], user vigil-e2e-admin", w.ReleaseWindow, rev1)
		}
	})

	// 5. Health and metrics over the same TLS port.
	t.Run("HealthAndMetrics", func(t *testing.T) {
		body, err := wh.get(ctx, "/healthz")
		if err != nil || strings.TrimSpace(body) != "ok" {
			t.Errorf("/healthz: %q, %v", body, err)
		}
		text, err := wh.get(ctx, "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		m := parseMetrics(text)
		// Exactly two revisions of one workload were really admitted.
		for _, name := range []string{"vigil_webhook_recorded_revisions_total", "vigil_webhook_release_windows_total"} {
			if got := m.sum(name); got != 2 {
				t.Errorf("%s = %v, want 2", name, got)
			}
		}
		if got := m.sum("vigil_webhook_store_errors_total"); got != 0 {
			t.Errorf("store errors: %v", got)
		}
		// Denied: the enforce apply and its dry run, plus the probes.
		if got, min := m.sum("vigil_webhook_requests_total", `kind="Deployment"`, `verdict="denied"`), 2.0; got < min {
			t.Errorf("denied Deployment reviews %v, want >= %v", got, min)
		}
		if got := m.sum("vigil_webhook_requests_total", `kind="Pod"`, `verdict="denied"`); got < 2 {
			t.Errorf("denied Pod reviews %v, want >= 2 (one probe before and one after the restart)", got)
		}
		// Warned: web 1.4.2, api dry run, web 9.9.9 dry run, web 1.4.3,
		// plus the controller's own updates (its revision annotation).
		if got := m.sum("vigil_webhook_requests_total", `kind="Deployment"`, `verdict="warned"`); got < 4 {
			t.Errorf("warned Deployment reviews %v, want >= 4", got)
		}
		if got := m.sum("vigil_webhook_requests_total", `kind="ReplicaSet"`, `verdict="warned"`); got < 2 {
			t.Errorf("warned ReplicaSet reviews %v, want >= 2 (one per revision, from the Deployment controller)", got)
		}
		if got := m.sum("vigil_webhook_requests_total", `kind="Namespace"`); got < 1 {
			t.Errorf("Namespace reviews %v, want >= 1", got)
		}
		if got := m.sum("vigil_webhook_request_duration_seconds_count"); got < m.sum("vigil_webhook_requests_total")-m.sum("vigil_webhook_requests_total", `verdict="skipped"`) {
			t.Errorf("latency histogram counted %v reviews, fewer than the decided ones", got)
		}
		t.Logf("reviews by kind/verdict: %s", m.summary("vigil_webhook_requests_total"))
		t.Logf("webhook decision latency: %d reviews, mean %s",
			int(m.sum("vigil_webhook_request_duration_seconds_count")),
			time.Duration(m.sum("vigil_webhook_request_duration_seconds_sum")/m.sum("vigil_webhook_request_duration_seconds_count")*1e9))
	})
	timing("whole test", t0)
}

// repoRoot is the module root, two levels above this package.
func repoRoot(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(filepath.Dir(wd))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found above %s: %v", wd, err)
	}
	return root
}

// webhookProc is a running `vigil webhook`.
type webhookProc struct {
	url, caFile, auditLog string
	http                  *http.Client
}

func (w *webhookProc) get(ctx context.Context, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.url+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return string(b), err
}

// startWebhook runs `vigil webhook --self-signed` with the built-in Wasm PSS
// pack on a free loopback port; see runWebhook.
func startWebhook(t *testing.T, bin, dir string) *webhookProc {
	t.Helper()
	// The request path evaluates the built-in PSS pack in Wasm; `make rules`
	// (run by `make test` before the e2e) builds it.
	pack, err := filepath.Abs("../../wasm-rules/build/admission")
	if err != nil {
		t.Fatal(err)
	}
	privtest.RequireTool(t, filepath.Join(pack, "pss.wasm"))
	// Generous: the webhook compiles the Wasm pack at start (cached on disk
	// after the first run), which is slow on a loaded 2-core VM.
	return runWebhook(t, bin, dir, 120*time.Second,
		"--admission-rules="+pack, "--admission-rules-cache="+filepath.Join(os.TempDir(), "vigil-e2e-wazero-cache"),
		"--namespace-mode="+nsEnforce+"=enforce:restricted")
}

// runWebhook runs `vigil webhook --self-signed` on a free loopback port with
// a store, an audit log and default mode audit:baseline in dir, plus extra
// flags, and waits up to ready for /healthz over TLS verified against the
// generated CA. The process is stopped (SIGTERM, then SIGKILL) in the
// test's cleanup.
func runWebhook(t *testing.T, bin, dir string, ready time.Duration, extra ...string) *webhookProc {
	t.Helper()
	port := freePort(t)
	tlsDir := filepath.Join(dir, "tls")
	w := &webhookProc{
		url:      "https://127.0.0.1:" + strconv.Itoa(port),
		caFile:   filepath.Join(tlsDir, "ca.crt"),
		auditLog: filepath.Join(dir, "audit.jsonl"),
	}
	logPath := filepath.Join(dir, "webhook.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"webhook",
		"--addr=127.0.0.1:" + strconv.Itoa(port),
		"--self-signed", "--self-signed-dir=" + tlsDir, "--self-signed-hosts=127.0.0.1,localhost",
		"--store=" + filepath.Join(dir, "webhook.db"),
		"--audit-log=" + w.auditLog,
		"--release-window=10m",
		"--default-mode=audit:baseline",
	}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("webhook exit after SIGTERM: %v", err)
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("webhook ignored SIGTERM for 10s; killed")
		}
		logf.Close()
		if t.Failed() {
			t.Logf("webhook log:\n%s", tail(logPath, 40))
			t.Logf("webhook audit log:\n%s", tail(w.auditLog, 40))
		}
	})

	deadline := time.Now().Add(ready)
	for {
		select {
		case err := <-exited:
			exited <- err // for the cleanup, which waits on it too
			t.Fatalf("webhook exited: %v\n%s", err, tail(logPath, 40))
		default:
		}
		if w.http == nil {
			if pem, err := os.ReadFile(w.caFile); err == nil {
				pool := x509.NewCertPool()
				if pool.AppendCertsFromPEM(pem) {
					w.http = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
						TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
					}}
				}
			}
		}
		if w.http != nil {
			if body, err := w.get(t.Context(), "/healthz"); err == nil && strings.TrimSpace(body) == "ok" {
				return w
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook not healthy on %s after %v\n%s", w.url, ready, tail(logPath, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// registerWebhook points a ValidatingWebhookConfiguration at the webhook:
// pods and every pod-template owner, plus namespaces (for the mode labels).
// failurePolicy Fail, so a webhook that is not answering shows up as
// errors instead of silently admitted objects.
func registerWebhook(t *testing.T, ctx context.Context, c *cluster.Cluster, w *webhookProc) {
	t.Helper()
	pem, err := os.ReadFile(w.caFile)
	if err != nil {
		t.Fatal(err)
	}
	ca := base64.StdEncoding.EncodeToString(pem)
	url := w.url + "/validate"
	err = c.Apply(ctx, `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: vigil-e2e}
webhooks:
- name: pods.vigil.dev
  admissionReviewVersions: [v1]
  sideEffects: NoneOnDryRun
  failurePolicy: Fail
  timeoutSeconds: 10
  matchPolicy: Equivalent
  namespaceSelector:
    matchExpressions:
    - {key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system]}
  rules:
  - apiGroups: [""]
    apiVersions: [v1]
    operations: [CREATE, UPDATE]
    resources: [pods]
  - apiGroups: [apps]
    apiVersions: [v1]
    operations: [CREATE, UPDATE]
    resources: [deployments, replicasets, statefulsets, daemonsets]
  - apiGroups: [batch]
    apiVersions: [v1]
    operations: [CREATE, UPDATE]
    resources: [jobs, cronjobs]
  clientConfig: {url: "`+url+`", caBundle: `+ca+`}
- name: namespaces.vigil.dev
  admissionReviewVersions: [v1]
  sideEffects: NoneOnDryRun
  failurePolicy: Fail
  timeoutSeconds: 10
  objectSelector:
    matchExpressions:
    - {key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system, default, kube-public, kube-node-lease]}
  rules:
  - apiGroups: [""]
    apiVersions: [v1]
    operations: [CREATE, UPDATE]
    resources: [namespaces]
  clientConfig: {url: "`+url+`", caBundle: `+ca+`}
`)
	if err != nil {
		t.Fatal(err)
	}
}

// waitDenied creates obj until the webhook denies it. Right after the
// configuration is created the API server may not have loaded it yet (an
// informer), so with loading set an admitted object is deleted and the
// create retried; otherwise — after a restart, where the API server waits
// for its webhook informer before admitting anything — an admitted object
// is a failure.
func waitDenied(ctx context.Context, c *cluster.Cluster, obj string, loading bool) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := kubectl(ctx, c, obj, "create", "-f", "-")
		switch {
		case r.err == nil && !loading:
			return fmt.Errorf("restricted-violating object admitted in %s (webhook not consulted):\n%s", nsEnforce, r)
		case r.err == nil:
			if d := kubectl(ctx, c, obj, "delete", "--wait=false", "-f", "-"); d.err != nil {
				return fmt.Errorf("delete object admitted before the webhook loaded: %s", d)
			}
		case strings.Contains(r.stderr, `admission webhook "pods.vigil.dev" denied the request`):
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no webhook denial within 60s; last: %s", r)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitTemplateHash waits for the Deployment controller to create the
// ReplicaSet of ns/name's current template (one whose hash is not in old)
// and returns its pod-template-hash label.
func waitTemplateHash(ctx context.Context, c *cluster.Cluster, ns, name string, old ...string) (string, error) {
	deadline := time.Now().Add(90 * time.Second)
	for {
		rss, err := c.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err == nil {
			for _, rs := range rss.Items {
				h := rs.Labels["pod-template-hash"]
				if h != "" && !slices.Contains(old, h) && rs.Name == name+"-"+h {
					return h, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no new ReplicaSet for %s/%s within 90s (list err %v)\n%s", ns, name, err, c.Logs("kube-controller-manager", 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func findProfile(t *testing.T, ps []store.StoredProfile, container string) store.StoredProfile {
	t.Helper()
	i := slices.IndexFunc(ps, func(p store.StoredProfile) bool { return p.Key.Container == container })
	if i < 0 {
		t.Fatalf("no profile for container %s", container)
	}
	return ps[i]
}

// checkWebProfile compares the web container's profile with deployment().
func checkWebProfile(t *testing.T, p store.StoredProfile, version string) {
	t.Helper()
	if want := "registry.example/shop/web:" + version; p.Image != want {
		t.Errorf("image %q, want %q", p.Image, want)
	}
	if want := []string{"/bin/httpd", "/bin/check"}; !sameSet(p.Executables, want) {
		t.Errorf("executables %q, want %q (command[0] and the exec probe)", p.Executables, want)
	}
	if !slices.ContainsFunc(p.Commands, func(c []string) bool {
		return slices.Equal(c, []string{"/bin/httpd", "-f", "-p", "8080"})
	}) {
		t.Errorf("commands %q lack the entrypoint argv", p.Commands)
	}
	if want := []profile.Port{{Port: 8080, Proto: "TCP", Name: "http"}, {Port: 9090, Proto: "UDP", Name: "stats"}}; !slices.Equal(p.ListenPorts, want) {
		t.Errorf("listen ports %+v, want %+v", p.ListenPorts, want)
	}
	if !slices.ContainsFunc(p.Egress, func(e profile.Egress) bool { return e.Host == "db.e2e-audit" && e.Port == 5432 }) {
		t.Errorf("egress %+v lacks db.e2e-audit:5432 from DATABASE_URL", p.Egress)
	}
	if p.Privilege.RunAsNonRoot || p.Privilege.AllowPrivilegeEscalation != nil {
		t.Errorf("privilege %+v: the manifest sets no securityContext", p.Privilege)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// deployment violates restricted (no securityContext at all) and declares
// what checkWebProfile expects: command, exec probe, ports, an egress URL.
func deployment(ns, name, version string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata: {name: ` + name + `, namespace: ` + ns + `}
spec:
  replicas: 1
  selector: {matchLabels: {app: ` + name + `}}
  template:
    metadata: {labels: {app: ` + name + `}}
    spec:
      initContainers:
      - name: migrate
        image: registry.example/shop/migrate:1
        command: [/bin/migrate, --up]
      containers:
      - name: web
        image: registry.example/shop/web:` + version + `
        command: [/bin/httpd, -f, -p, "8080"]
        env:
        - {name: DATABASE_URL, value: "postgres://db.e2e-audit:5432/shop"}
        - {name: LOG_LEVEL, value: debug}
        ports:
        - {name: http, containerPort: 8080}
        - {name: stats, containerPort: 9090, protocol: UDP}
        readinessProbe:
          exec: {command: [/bin/check, --ready]}
`
}

// owner is a pod-template owner of kind whose pod restricted forbids.
func owner(kind, ns string) string {
	podSpec := `
      restartPolicy: RESTART
      containers:
      - {name: c, image: ` + cluster.BusyboxImage + `, command: [sleep, "1"]}
`
	restart := "Always"
	if kind == "Job" || kind == "CronJob" {
		restart = "Never"
	}
	podSpec = strings.Replace(podSpec, "RESTART", restart, 1)
	head := "apiVersion: apps/v1\nkind: " + kind + "\nmetadata: {name: owned, namespace: " + ns + "}\n"
	tmpl := "  template:\n    metadata: {labels: {app: owned}}\n    spec:" + podSpec
	sel := "  selector: {matchLabels: {app: owned}}\n"
	switch kind {
	case "Job":
		return strings.Replace(head, "apps/v1", "batch/v1", 1) + "spec:\n" + tmpl
	case "CronJob":
		// One level deeper: spec.jobTemplate.spec.template.
		indented := strings.ReplaceAll(tmpl, "\n  ", "\n      ")
		return strings.Replace(head, "apps/v1", "batch/v1", 1) + "spec:\n  schedule: \"*/5 * * * *\"\n  jobTemplate:\n    spec:\n    " + indented
	case "StatefulSet":
		return head + "spec:\n  serviceName: owned\n" + sel + tmpl
	}
	return head + "spec:\n" + sel + tmpl
}

// pod is a bare pod restricted forbids (no securityContext).
func pod(ns, name string) string {
	return `apiVersion: v1
kind: Pod
metadata: {name: ` + name + `, namespace: ` + ns + `}
spec:
  containers:
  - {name: c, image: ` + cluster.BusyboxImage + `, command: [sleep, "1"]}
`
}

// kubectlResult keeps stdout and stderr apart: kubectl prints admission
// warnings ("Warning: ...") on stderr even when the request succeeds.
type kubectlResult struct {
	stdout, stderr string
	err            error
}

func (r kubectlResult) String() string {
	return fmt.Sprintf("err=%v\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
}

func kubectl(ctx context.Context, c *cluster.Cluster, stdin string, args ...string) kubectlResult {
	cmd := exec.CommandContext(ctx, c.KubectlBin, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &stdout, &stderr, strings.NewReader(stdin)
	err := cmd.Run()
	return kubectlResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

func warningLines(stderr string) []string {
	var out []string
	for l := range strings.Lines(stderr) {
		if strings.HasPrefix(l, "Warning: ") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func auditRecords(t *testing.T, path string) []webhook.AuditRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []webhook.AuditRecord
	for l := range strings.Lines(string(b)) {
		var r webhook.AuditRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("audit log line %q: %v", l, err)
		}
		out = append(out, r)
	}
	return out
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// metrics is a Prometheus text exposition: series (name plus labels) to
// value.
type metrics map[string]float64

func parseMetrics(text string) metrics {
	m := metrics{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err == nil {
			m[l[:i]] = v
		}
	}
	return m
}

// sum adds the series of metric name whose labels contain every one of
// labels (`key="value"`).
func (m metrics) sum(name string, labels ...string) float64 {
	var s float64
	for series, v := range m {
		n, ls, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		if !slices.ContainsFunc(labels, func(l string) bool { return !strings.Contains(ls, l) }) {
			s += v
		}
	}
	return s
}

func (m metrics) summary(name string) string {
	var out []string
	for series, v := range m {
		if strings.HasPrefix(series, name+"{") {
			out = append(out, fmt.Sprintf("%s=%v", strings.TrimPrefix(series, name), v))
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}
