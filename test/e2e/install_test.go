//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/profile"
	"github.com/vigilsec/vigil/internal/cluster"
	"github.com/vigilsec/vigil/internal/privtest"
	webhookapi "github.com/vigilsec/vigil/webhook"
	"github.com/vigilsec/vigil/webhook/store"
)

const (
	installNS   = "vigil-system"
	installRef  = "vigil.local/vigil:e2e"
	workloadNS  = "install-e2e"
	workloadPod = "victim"
	enforceNS   = "install-enforce"
	shellRule   = "Terminal shell in container"
	mountRule   = "Mount launched in privileged container"
)

// TestInstall installs the Helm chart's rendered manifests into a real
// cluster (kube-apiserver, kubelet and kubectl of one release, Debian's
// containerd) and checks the install end to end: a pod runs, the guard
// attributes the pod's events to it, `kubectl exec` of a shell raises the
// shell alert in audit (staging), and in production the shell is killed.
func TestInstall(t *testing.T) {
	privtest.RequireRoot(t)
	start := time.Now()
	root := repoRoot(t)
	helm := helmBin(t, root)
	img := vigilImage(t, root)
	t.Logf("timing: vigil binary and image %s", time.Since(start).Round(time.Millisecond))

	st := time.Now()
	c := cluster.StartT(t, cluster.Options{
		Node: true, Scheduler: true, ControllerManager: true,
		ImageArchives: []string{img},
		Logf:          t.Logf,
	})
	t.Logf("timing: cluster %s (etcd %s, apiserver %s, node %s)",
		time.Since(st).Round(time.Millisecond), c.Timings.Etcd, c.Timings.APIServer, c.Timings.Node)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	for _, ns := range []string{installNS, workloadNS, enforceNS} {
		if err := c.EnsureNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}

	// Staging: audit everywhere.
	st = time.Now()
	render := func(preset string, extra ...string) string {
		args := []string{"template", "vigil", filepath.Join(root, "deploy/helm/vigil"),
			"--namespace", installNS, "--include-crds",
			"-f", filepath.Join(root, "deploy/helm/vigil", preset),
			"--set", "image.repository=vigil.local/vigil,image.tag=e2e,image.pullPolicy=Never",
			"--set", "webhook.replicas=1",
			// The harness's containerd listens inside the cluster dir, not
			// at the default /run/containerd/containerd.sock.
			"--set", "guard.containerdSocket=" + filepath.Join(c.Dir, "node", "run", "containerd.sock"),
			// This VM has no CAP_SYS_RESOURCE in its bounding set, so runc
			// cannot grant it; kernel 6.18 charges BPF memory to the
			// memcg, so the guard does not need it here.
			"--set-json", `guard.capabilities=["BPF","PERFMON","SYS_ADMIN","SYS_PTRACE","NET_ADMIN","KILL","DAC_READ_SEARCH"]`,
		}
		args = append(args, extra...)
		out, err := exec.CommandContext(ctx, helm, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("helm template: %v\n%s", err, out)
		}
		return string(out)
	}
	// failurePolicy Fail: an API server that cannot reach the webhook
	// through its Service refuses pods instead of silently admitting them.
	if err := c.Apply(ctx, render("values-staging.yaml",
		"--set", "webhook.failurePolicy=Fail",
		"--set-json", `webhook.pss.namespaces={"`+enforceNS+`":{"mode":"enforce"}}`)); err != nil {
		t.Fatal(err)
	}
	guard := waitComponent(ctx, t, c, "guard", "")
	webhook := waitComponent(ctx, t, c, "webhook", "")
	t.Logf("timing: staging install Ready %s (guard pod %s, webhook pod %s)",
		time.Since(st).Round(time.Millisecond), guard, webhook)

	// 0. In-cluster admission: the API server calls the chart's webhook
	// through its Service (at the endpoint's pod IP, see internal/cluster)
	// with the chart's self-generated TLS. A privileged pod in the enforce
	// namespace is denied; a compliant Deployment is admitted and the
	// webhook records its expected behavior.
	st = time.Now()
	inClusterAdmission(ctx, t, c, webhook)
	t.Logf("timing: in-cluster admission checks %s", time.Since(st).Round(time.Millisecond))

	// 1. A pod runs. Its command writes below /etc, which the standard
	// pack's "Write below etc" rule reports, so the guard has an event of
	// the pod's own to attribute.
	st = time.Now()
	err := c.Apply(ctx, `apiVersion: v1
kind: Pod
metadata:
  name: `+workloadPod+`
  namespace: `+workloadNS+`
spec:
  nodeName: `+c.NodeName+`
  terminationGracePeriodSeconds: 0
  containers:
  - name: sh
    image: `+cluster.BusyboxImage+`
    imagePullPolicy: Never
    command: ["sh", "-c", "echo e2e > /etc/vigil-e2e-marker; exec sleep 3600"]
`)
	if err != nil {
		t.Fatal(err)
	}
	pod, err := c.WaitPodReady(ctx, workloadNS, workloadPod)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: workload pod Ready %s", time.Since(st).Round(time.Millisecond))
	var ctrID string
	for _, cs := range pod.Status.ContainerStatuses {
		ctrID = strings.TrimPrefix(cs.ContainerID, "containerd://")
	}
	if ctrID == "" {
		t.Fatal("workload pod has no container id")
	}

	// 2. The guard attributes the pod's events to it.
	st = time.Now()
	// The pod's sandbox (pause) raises alerts of its own; this one must
	// come from the workload container.
	a := waitAlert(ctx, t, c, guard, func(a guardAlert) bool {
		return a.Event["k8s.pod"] == workloadPod && a.Rule != shellRule && a.Event["container.id"] == ctrID
	})
	if a.Event["k8s.ns"] != workloadNS {
		t.Errorf("alert %q: k8s.ns = %v, want %s", a.Rule, a.Event["k8s.ns"], workloadNS)
	}
	t.Logf("timing: attributed alert %q after %s", a.Rule, time.Since(st).Round(time.Millisecond))
	// The pod is unprivileged: its container cannot mount, so the mount
	// rule must stay quiet for it (it once fired on the runtime's own
	// set-up mounts inside the new container's cgroup).
	for _, a := range guardAlerts(ctx, c, guard) {
		if a.Rule == mountRule && a.Event["k8s.pod"] == workloadPod {
			js, _ := json.Marshal(a.Event)
			t.Errorf("%q fired for the unprivileged pod: %s", mountRule, js)
		}
	}

	// 3. kubectl exec of a shell raises the alert, audited in staging.
	st = time.Now()
	if out, err := c.Kubectl(ctx, "exec", "-n", workloadNS, workloadPod, "--", "sh", "-c", "echo hi"); err != nil || strings.TrimSpace(out) != "hi" {
		t.Fatalf("kubectl exec: %v: %q", err, out)
	}
	a = waitAlert(ctx, t, c, guard, func(a guardAlert) bool {
		return a.Rule == shellRule && a.Event["k8s.pod"] == workloadPod
	})
	if a.Event["k8s.ns"] != workloadNS || a.Mode != "audit" || a.Taken {
		t.Errorf("staging shell alert: ns %v, mode %q, taken %v; want %s, audit, not taken", a.Event["k8s.ns"], a.Mode, a.Taken, workloadNS)
	}
	t.Logf("timing: staging shell alert after %s (action %q, taken %v)", time.Since(st).Round(time.Millisecond), a.Action, a.Taken)

	// 4. Production: the same chart with the enforcing preset and the shell
	// rule set to kill. The API server cannot reach the webhook Service
	// here (no kube-proxy), so the production preset's failurePolicy Fail
	// would refuse every pod; Ignore keeps that out of this test.
	st = time.Now()
	if err := c.Apply(ctx, render("values-production.yaml",
		"--set-json", `actions={"`+shellRule+`":"kill"}`,
		"--set", "webhook.failurePolicy=Ignore")); err != nil {
		t.Fatal(err)
	}
	guard = waitComponent(ctx, t, c, "guard", guard)
	t.Logf("timing: production guard %s Ready %s", guard, time.Since(st).Round(time.Millisecond))
	// The restarted guard resolved the containers already running (the
	// workload and its sandbox at least) before its sensors started.
	logs, err := c.Kubectl(ctx, "logs", "-n", installNS, guard)
	if err != nil {
		t.Fatal(err)
	}
	warm := warmRE.FindStringSubmatch(logs)
	if warm == nil {
		t.Fatalf("production guard logged no warm-up line:\n%s", lastLines(logs, 30))
	}
	t.Logf("production guard start-up: %s", warm[0])
	if n, _ := strconv.Atoi(warm[2]); n < 2 || warm[4] != "0" {
		t.Errorf("warm-up resolved %s of %s containers with %s pending; want the pod's two, none pending", warm[2], warm[1], warm[4])
	}

	// No warm-up exec here: the restarted guard resolves the containers
	// already running before its sensors start (container.Resolver.Warm),
	// so the very first alert of the running pod must name it.
	st = time.Now()
	// `read x` holds the shell while stdin stays open and empty, so only
	// the guard can end it. Stdin is closed once the kill alert is logged:
	// a shell that survived would then exit 1 from read's EOF, not 137.
	cmd := exec.CommandContext(ctx, c.KubectlBin, "--kubeconfig", c.Kubeconfig,
		"exec", "-i", "-n", workloadNS, workloadPod, "--", "sh", "-c", "read x")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	var out strings.Builder
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pr, &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	a = waitAlert(ctx, t, c, guard, func(a guardAlert) bool {
		return a.Rule == shellRule && a.Event["container.id"] == ctrID && a.Mode == "enforce"
	})
	killed := time.Since(st)
	pw.Close()
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 137 {
		t.Errorf("kubectl exec of a held shell: %v (want exit 137, killed)\n%s", err, out.String())
	}
	if !a.Taken || a.Action != "kill" {
		t.Errorf("production shell alert: action %q, taken %v; want kill, taken", a.Action, a.Taken)
	}
	if a.Event["k8s.pod"] != workloadPod || a.Event["k8s.ns"] != workloadNS {
		t.Errorf("production shell alert: k8s.pod %v, k8s.ns %v; want %s/%s", a.Event["k8s.pod"], a.Event["k8s.ns"], workloadNS, workloadPod)
	}
	t.Logf("timing: production shell kill alert after %s, exec returned %v (%s)", killed.Round(time.Millisecond), err, strings.TrimSpace(out.String()))
	t.Logf("timing: total %s", time.Since(start).Round(time.Millisecond))
}

// inClusterAdmission checks the chart's admission path end to end; webhook
// names the webhook pod.
func inClusterAdmission(ctx context.Context, t *testing.T, c *cluster.Cluster, webhookPod string) {
	t.Helper()
	privileged := `apiVersion: v1
kind: Pod
metadata:
  name: privileged
  namespace: ` + enforceNS + `
spec:
  nodeName: ` + c.NodeName + `
  containers:
  - name: sh
    image: ` + cluster.BusyboxImage + `
    imagePullPolicy: Never
    command: ["sleep", "3600"]
    securityContext: {privileged: true}
`
	// The Endpoints of a just-Ready webhook pod reach the API server's
	// informer within a moment; until then the call fails (failurePolicy
	// Fail), so server-side dry runs, which record nothing, probe for it.
	deadline := time.Now().Add(90 * time.Second)
	for attempt := 1; ; attempt++ {
		_, err := c.KubectlStdin(ctx, privileged, "apply", "--dry-run=server", "-f", "-")
		if err != nil && strings.Contains(err.Error(), "denied the request") {
			t.Logf("admission: webhook reachable through its Service after %d dry run(s)", attempt)
			break
		}
		if err == nil {
			t.Fatal("admission: privileged pod admitted in an enforce namespace (dry run)")
		}
		if time.Now().After(deadline) {
			t.Fatalf("admission: webhook not reachable through its Service: %v\nwebhook log:\n%s", err, webhookLog(ctx, c, webhookPod))
		}
		t.Logf("admission: dry run %d: %v (retrying)", attempt, err)
		time.Sleep(2 * time.Second)
	}
	err := c.Apply(ctx, privileged)
	if err == nil || !strings.Contains(err.Error(), "denied the request") || !strings.Contains(err.Error(), "privileged") {
		t.Fatalf("admission: privileged pod in %s: %v; want a denial naming privileged", enforceNS, err)
	}
	t.Logf("admission: privileged pod denied: %s", lastLines(err.Error(), 3))
	if out, err := c.Kubectl(ctx, "get", "pod", "-n", enforceNS, "privileged", "--ignore-not-found", "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("admission: denied pod exists: %q, %v", out, err)
	}

	// A compliant Deployment: admitted, rolled out, and profiled.
	err = c.Apply(ctx, `apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  namespace: `+enforceNS+`
spec:
  replicas: 1
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: app
        image: `+cluster.BusyboxImage+`
        imagePullPolicy: Never
        command: ["sleep", "3600"]
`)
	if err != nil {
		t.Fatalf("admission: compliant Deployment refused: %v", err)
	}
	if out, err := c.Kubectl(ctx, "rollout", "status", "-n", enforceNS, "deployment/shop", "--timeout=90s"); err != nil {
		t.Fatalf("admission: compliant Deployment did not roll out: %v\n%s", err, out)
	}
	hash, err := c.Kubectl(ctx, "get", "rs", "-n", enforceNS, "-l", "app=shop", "-o", "jsonpath={.items[0].metadata.labels.pod-template-hash}")
	if err != nil || hash == "" {
		t.Fatalf("admission: replica set hash %q: %v", hash, err)
	}
	ps := webhookProfiles(ctx, t, c, webhookPod)
	want := profile.Key{Namespace: enforceNS, Workload: "Deployment/shop", Container: "app", Revision: hash}
	var found *store.StoredProfile
	for i := range ps {
		if ps[i].Key == want {
			found = &ps[i]
		}
	}
	if found == nil {
		t.Fatalf("admission: no profile %+v among the webhook's %d: %+v", want, len(ps), ps)
	}
	if !slices.Contains(found.Executables, "sleep") {
		t.Errorf("admission: profile executables %v, want the command sleep", found.Executables)
	}
	t.Logf("admission: Deployment admitted, profile %s/%s:%s@%s recorded (executables %v)",
		want.Namespace, want.Workload, want.Container, want.Revision, found.Executables)
}

// webhookProfiles reads the webhook's /v1/profiles at its pod IP, trusting
// the CA the chart generated and verifying the Service name it was issued
// for, as the API server does.
func webhookProfiles(ctx context.Context, t *testing.T, c *cluster.Cluster, webhookPod string) []store.StoredProfile {
	t.Helper()
	ip, err := c.Kubectl(ctx, "get", "pod", "-n", installNS, webhookPod, "-o", "jsonpath={.status.podIP}")
	if err != nil || ip == "" {
		t.Fatalf("webhook pod IP %q: %v", ip, err)
	}
	caB64, err := c.Kubectl(ctx, "get", "secret", "-n", installNS, "vigil-webhook-tls", "-o", `jsonpath={.data.ca\.crt}`)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := base64.StdEncoding.DecodeString(caB64)
	if err != nil {
		t.Fatalf("ca.crt: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.crt: no certificate")
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "vigil-webhook." + installNS + ".svc", MinVersion: tls.VersionTLS12},
	}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+net.JoinHostPort(ip, "8443")+"/v1/profiles?since=0", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("webhook profiles: %v", err)
	}
	defer resp.Body.Close()
	var page webhookapi.ProfilesPage
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook profiles: status %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatalf("webhook profiles: %v", err)
	}
	return page.Profiles
}

func webhookLog(ctx context.Context, c *cluster.Cluster, pod string) string {
	out, _ := c.Kubectl(ctx, "logs", "-n", installNS, pod)
	return lastLines(out, 30)
}

// warmRE matches the guard's start-up line about the containers it found
// running (guard.New, slog text format).
var warmRE = regexp.MustCompile(`msg="running containers resolved" containers=(\d+) with_metadata=(\d+) unknown=(\d+) pending=(\d+) took=(\S+)`)

// guardAlert is the part of the guard's JSON alert line the test checks.
type guardAlert struct {
	Rule   string         `json:"rule"`
	Mode   string         `json:"mode"`
	Action string         `json:"action"`
	Taken  bool           `json:"taken"`
	Event  map[string]any `json:"event"`
}

// waitAlert polls the guard pod's log until an alert matches.
func waitAlert(ctx context.Context, t *testing.T, c *cluster.Cluster, guardPod string, match func(guardAlert) bool) guardAlert {
	t.Helper()
	var logs string
	for {
		out, err := c.Kubectl(ctx, "logs", "-n", installNS, guardPod)
		if err == nil {
			logs = out
			sc := bufio.NewScanner(strings.NewReader(out))
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var a guardAlert
				if json.Unmarshal(sc.Bytes(), &a) == nil && a.Rule != "" && match(a) {
					return a
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no matching alert in guard %s's log:\n%s", guardPod, lastLines(logs, 40))
		case <-time.After(time.Second):
		}
	}
}

// guardAlerts returns the alerts in the guard pod's log so far.
func guardAlerts(ctx context.Context, c *cluster.Cluster, guardPod string) []guardAlert {
	out, err := c.Kubectl(ctx, "logs", "-n", installNS, guardPod)
	if err != nil {
		return nil
	}
	var as []guardAlert
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var a guardAlert
		if json.Unmarshal(sc.Bytes(), &a) == nil && a.Rule != "" {
			as = append(as, a)
		}
	}
	return as
}

// waitComponent waits for the one pod of a chart component to be Ready and
// returns its name; not, when set, names a pod being replaced.
func waitComponent(ctx context.Context, t *testing.T, c *cluster.Cluster, component, not string) string {
	t.Helper()
	sel := "app.kubernetes.io/instance=vigil,app.kubernetes.io/component=" + component
	var last string
	for {
		out, err := c.Kubectl(ctx, "get", "pods", "-n", installNS, "-l", sel,
			"-o", `jsonpath={range .items[*]}{.metadata.name}{" "}{.metadata.deletionTimestamp}{"\n"}{end}`)
		last = out
		if err == nil {
			var names []string
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				f := strings.Fields(l)
				if len(f) == 1 && f[0] != not {
					names = append(names, f[0])
				}
			}
			if len(names) == 1 {
				if _, err := c.WaitPodReady(ctx, installNS, names[0]); err != nil {
					logs, _ := c.Kubectl(ctx, "logs", "-n", installNS, names[0])
					t.Fatalf("%s pod %s: %v\nlog:\n%s", component, names[0], err, lastLines(logs, 40))
				}
				return names[0]
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %s pod (last listing %q, err %v)\ncontroller-manager:\n%s", component, last, err, c.Logs("kube-controller-manager", 20))
		case <-time.After(time.Second):
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func helmBin(t *testing.T, root string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(root, "scripts/helm-bin.sh")).Output()
	if err != nil {
		t.Fatalf("scripts/helm-bin.sh: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// vigilImage builds Vigil's image the way `make image` does
// (scripts/image.sh: a static vigil, the standard and admission packs from
// `make rules`, packed by cmd/vigil-image) and returns the tarball, which
// the cluster imports as it is.
func vigilImage(t *testing.T, root string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "vigil-image.tar")
	cmd := exec.Command(filepath.Join(root, "scripts/image.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "IMAGE_OUT="+out, "IMAGE_REF="+installRef)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/image.sh: %v\n%s", err, b)
	}
	return out
}
