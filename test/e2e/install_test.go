//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/cluster"
	"github.com/vigilsec/vigil/internal/privtest"
)

const (
	installNS   = "vigil-system"
	installRef  = "vigil.local/vigil:e2e"
	workloadNS  = "install-e2e"
	workloadPod = "victim"
	shellRule   = "Terminal shell in container"
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
		Images: []cluster.Image{img},
		Logf:   t.Logf,
	})
	t.Logf("timing: cluster %s (etcd %s, apiserver %s, node %s)",
		time.Since(st).Round(time.Millisecond), c.Timings.Etcd, c.Timings.APIServer, c.Timings.Node)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	for _, ns := range []string{installNS, workloadNS} {
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
	if err := c.Apply(ctx, render("values-staging.yaml")); err != nil {
		t.Fatal(err)
	}
	guard := waitComponent(ctx, t, c, "guard", "")
	webhook := waitComponent(ctx, t, c, "webhook", "")
	t.Logf("timing: staging install Ready %s (guard pod %s, webhook pod %s)",
		time.Since(st).Round(time.Millisecond), guard, webhook)

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

	// The restarted guard learns a running container's pod from the
	// runtime on the container's first event (asynchronously, see
	// guard/container.Resolver); a non-shell exec makes that happen
	// before the shell, so the kill alert can name the pod.
	if _, err := c.Kubectl(ctx, "exec", "-n", workloadNS, workloadPod, "--", "true"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)

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

// vigilImage builds a static vigil and packs the image layout deploy/README.md
// asks for: the binary at /usr/local/bin/vigil, the standard pack under
// /usr/share/vigil/rules and the admission pack under
// /usr/share/vigil/admission (both from `make rules`).
func vigilImage(t *testing.T, root string) cluster.Image {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vigil")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/vigil")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build vigil: %v\n%s", err, out)
	}
	img := cluster.NewStaticBinaryImage(installRef, bin, "/usr/local/bin/vigil")
	std := filepath.Join(root, "wasm-rules/build/standard.wasm")
	if _, err := os.Stat(std); err != nil {
		t.Fatalf("%v: run make rules first", err)
	}
	img.Files = append(img.Files, cluster.ImageFile{Path: "/usr/share/vigil/rules/standard.wasm", Source: std, Mode: 0o644})
	adm, err := filepath.Glob(filepath.Join(root, "wasm-rules/build/admission/*"))
	if err != nil || len(adm) == 0 {
		t.Fatalf("no admission pack in wasm-rules/build/admission (%v): run make rules first", err)
	}
	for _, f := range adm {
		img.Files = append(img.Files, cluster.ImageFile{Path: "/usr/share/vigil/admission/" + filepath.Base(f), Source: f, Mode: 0o644})
	}
	return img
}
