//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/vigilsec/vigil/guard/baseline"
	"github.com/vigilsec/vigil/guard/crdwatch"
	"github.com/vigilsec/vigil/guard/profile"
	"github.com/vigilsec/vigil/internal/cluster"
	"github.com/vigilsec/vigil/internal/privtest"
	"github.com/vigilsec/vigil/webhook"
	"github.com/vigilsec/vigil/webhook/crd"
	"github.com/vigilsec/vigil/webhook/store"
)

const nsCRD = "e2e-crd"

// TestWorkloadProfileCRD runs `vigil webhook --profiles-backend crd` behind
// a real kube-apiserver with the WorkloadProfile CRD from deploy/ applied:
// a Deployment created with kubectl becomes a WorkloadProfile carrying the
// revision the real Deployment controller computes, the containers'
// expected behavior (the same as the local API serves) and the release
// window; the guard's watcher (guard/crdwatch, feeding a real
// baseline.Detector) receives it and its status write lands. Then the
// webhook's API server connection hangs (a TCP proxy stops forwarding):
// admission still answers promptly, and the new revision's object is
// written once the connection recovers.
func TestWorkloadProfileCRD(t *testing.T) {
	privtest.RequireRoot(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	t0 := time.Now()
	timing := func(what string) { t.Logf("timing: %-40s %s", what, time.Since(t0).Round(time.Millisecond)) }

	dir := t.TempDir()
	bin := filepath.Join(dir, "vigil")
	root := repoRoot(t)
	built := make(chan error, 1)
	go func() {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/vigil")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			err = &buildError{err, string(out)}
		}
		built <- err
	}()
	c := cluster.StartT(t, cluster.Options{ControllerManager: true})
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	timing("cluster up and vigil built")

	crdYAML, err := os.ReadFile(filepath.Join(root, "deploy", "webhook", "crd-workloadprofile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, string(crdYAML)); err != nil {
		t.Fatal(err)
	}
	if out, err := c.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=30s", "crd/workloadprofiles.vigil.dev"); err != nil {
		t.Fatalf("CRD not established: %v\n%s", err, out)
	}
	timing("CRD established")

	// The webhook reaches the API server through a proxy the test can
	// hang; kubectl and the guard's watcher go direct.
	px := startProxy(t, strings.TrimPrefix(c.Server, "https://"))
	kc := filepath.Join(dir, "webhook.kubeconfig")
	kb, err := os.ReadFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kb), c.Server) {
		t.Fatalf("kubeconfig does not name %s", c.Server)
	}
	if err := os.WriteFile(kc, []byte(strings.ReplaceAll(string(kb), c.Server, "https://"+px.addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	wh := startCRDWebhook(t, bin, dir, kc)
	registerWebhook(t, ctx, c, wh)
	if err := c.EnsureNamespace(ctx, nsCRD); err != nil {
		t.Fatal(err)
	}
	timing("webhook serving and registered")

	dc, err := dynamic.NewForConfig(c.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	client, err := webhook.NewClient(wh.url, wh.caFile)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	// 1. A Deployment becomes a WorkloadProfile. The webhook registration
	// takes effect through the API server's informer, so apply until the
	// webhook has recorded the revision.
	var rev1 string
	deadline := time.Now().Add(30 * time.Second)
	for {
		if r := kubectl(ctx, c, deployment(nsCRD, "web", "1.4.2"), "apply", "-f", "-"); r.err != nil {
			t.Fatalf("apply: %s", r)
		}
		if rev1, err = waitTemplateHash(ctx, c, nsCRD, "web"); err != nil {
			t.Fatal(err)
		}
		if ps, err := client.Poll(ctx); err == nil && slices.ContainsFunc(ps, func(p store.StoredProfile) bool { return p.Key.Revision == rev1 }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook recorded no profile for revision %s", rev1)
		}
		// Not yet in the admission path: start over.
		if _, err := c.Kubectl(ctx, "-n", nsCRD, "delete", "deployment", "web", "--wait=true"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	obj1 := waitObject(t, ctx, dc, nsCRD, crd.Name("Deployment/web", rev1), 30*time.Second)
	timing("WorkloadProfile written")
	if obj1.Spec.Workload != "Deployment/web" || obj1.Spec.Revision != rev1 {
		t.Errorf("spec identity %s@%s, want Deployment/web@%s (the controller's pod-template-hash)", obj1.Spec.Workload, obj1.Spec.Revision, rev1)
	}
	gotPs, gotW := obj1.Profiles()
	var names []string
	for _, p := range gotPs {
		names = append(names, p.Key.Container)
	}
	if !sameSet(names, []string{"migrate", "web"}) {
		t.Errorf("containers %v, want migrate and web", names)
	}
	web := gotPs[slices.IndexFunc(gotPs, func(p profile.Expected) bool { return p.Key.Container == "web" })]
	checkWebProfile(t, storedOf(web), "1.4.2")
	// The object carries exactly what the local API serves from bbolt.
	client.SetNext(0)
	local, err := client.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range gotPs {
		i := slices.IndexFunc(local, func(l store.StoredProfile) bool { return l.Key == p.Key })
		if i < 0 {
			t.Errorf("%+v: not on the local API", p.Key)
			continue
		}
		lp := local[i].Expected
		lp.AdmittedAt = lp.AdmittedAt.UTC()
		if !reflect.DeepEqual(lp, p) {
			a, _ := json.Marshal(lp)
			b, _ := json.Marshal(p)
			t.Errorf("%s: the object differs from the local API:\nlocal %s\ncrd   %s", p.Key.Container, a, b)
		}
	}
	if gotW == nil {
		t.Fatal("no release window on the object")
	}
	if gotW.User == "" || gotW.PrevRevision != "" || !gotW.Closes.Equal(gotW.Opened.Add(10*time.Minute)) {
		t.Errorf("window %+v: want the requester, no predecessor, 10m long", gotW)
	}
	t.Logf("object %s/%s: %d containers, window by %q until %s", nsCRD, obj1.Metadata.Name, len(gotPs), gotW.User, gotW.Closes.Format(time.RFC3339))

	// 2. The guard's watcher seeds a real detector and writes the status.
	bst, err := baseline.OpenStore(filepath.Join(dir, "baseline.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer bst.Close()
	det, err := baseline.New(baseline.Config{}, bst, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	wat, err := crdwatch.New(crdwatch.Config{Client: dc, Node: "e2e-node", StatusInterval: 300 * time.Millisecond}, det)
	if err != nil {
		t.Fatal(err)
	}
	wdone := make(chan struct{})
	go func() { defer close(wdone); wat.Run(ctx) }()
	defer func() { wat.Close(); <-wdone }()
	waitSeeded(t, det, profile.Key{Namespace: nsCRD, Workload: "Deployment/web", Container: "web", Revision: rev1})
	timing("guard watcher seeded the detector")
	st := waitStatus(t, ctx, dc, nsCRD, obj1.Metadata.Name, "e2e-node")
	timing("guard status written")
	if len(st.Containers) != 2 {
		t.Fatalf("status containers %+v, want migrate and web", st.Containers)
	}
	for _, cs := range st.Containers {
		if cs.State != "learning" || cs.Behaviors == 0 || cs.FirstSeen.IsZero() || !cs.ReadyAt.IsZero() {
			t.Errorf("status %+v: want learning, seeded behaviors, first seen, not ready", cs)
		}
	}
	// Status writes do not bump the generation: no re-seeding, and no
	// further writes while nothing changed.
	time.Sleep(time.Second)
	if s := wat.Stats(); s.Seeded != 1 || s.StatusWrites != 1 || s.StatusErrors != 0 || s.Invalid != 0 {
		t.Errorf("watcher stats %+v: want one seed, one status write, no errors", s)
	}

	// 3. The webhook's API server hangs. Admission must still answer,
	// promptly, and the revision is written after recovery.
	px.setDown(true)
	start := time.Now()
	if r := kubectl(ctx, c, deployment(nsCRD, "web", "1.4.3"), "apply", "-f", "-"); r.err != nil {
		t.Fatalf("apply with the webhook's API connection down: %s", r)
	}
	admitted := time.Since(start)
	rev2, err := waitTemplateHash(ctx, c, nsCRD, "web", rev1)
	if err != nil {
		t.Fatal(err)
	}
	if admitted > 5*time.Second {
		t.Errorf("admission took %s with the webhook's API server connection hung", admitted)
	}
	name2 := crd.Name("Deployment/web", rev2)
	// One apply timed out against the hung connection (2s) and is queued
	// for a retry.
	waitMetric(t, ctx, wh, "vigil_webhook_crd_writes_total", `result="retry"`, 1, 20*time.Second)
	if _, err := dc.Resource(crd.GVR).Namespace(nsCRD).Get(ctx, name2, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("revision %s written while the webhook's API connection was down (get: %v)", rev2, err)
	}
	m := webhookMetrics(t, ctx, wh)
	if m.sum("vigil_webhook_crd_queue_depth") < 1 {
		t.Errorf("queue depth %v while down, want the pending revision", m.sum("vigil_webhook_crd_queue_depth"))
	}
	t.Logf("down: admission %s, retries %v, queue %v", admitted.Round(time.Millisecond),
		m.sum("vigil_webhook_crd_writes_total", `result="retry"`), m.sum("vigil_webhook_crd_queue_depth"))
	timing("admitted with the API connection down")
	px.setDown(false)
	up := time.Now()
	obj2 := waitObject(t, ctx, dc, nsCRD, name2, 45*time.Second)
	t.Logf("written %s after the connection recovered", time.Since(up).Round(time.Millisecond))
	timing("written after recovery")
	w2 := obj2.Spec.ReleaseWindow
	if w2 == nil || w2.PrevRevision != rev1 || !slices.Contains(w2.Changed, "image") {
		t.Errorf("window after the update %+v: want prevRevision %s and image changed", w2, rev1)
	}
	waitSeeded(t, det, profile.Key{Namespace: nsCRD, Workload: "Deployment/web", Container: "web", Revision: rev2})
	if m := webhookMetrics(t, ctx, wh); m.sum("vigil_webhook_crd_dropped_total") != 0 || m.sum("vigil_webhook_crd_writes_total", `result="failed"`) != 0 {
		t.Errorf("drops %v, failed %v: want none", m.sum("vigil_webhook_crd_dropped_total"), m.sum("vigil_webhook_crd_writes_total", `result="failed"`))
	}
	timing("done")
}

type buildError struct {
	err error
	out string
}

func (b *buildError) Error() string { return "go build ./cmd/vigil: " + b.err.Error() + "\n" + b.out }

func storedOf(p profile.Expected) store.StoredProfile { return store.StoredProfile{Expected: p} }

// waitObject waits for the object to exist with its release window (the
// webhook's second apply).
func waitObject(t *testing.T, ctx context.Context, dc dynamic.Interface, ns, name string, limit time.Duration) *crd.Object {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		u, err := dc.Resource(crd.GVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			b, err := u.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			o, err := crd.Decode(b)
			if err != nil {
				t.Fatalf("object %s/%s: %v", ns, name, err)
			}
			if o.Spec.ReleaseWindow != nil {
				return o
			}
		}
		if (err != nil && !apierrors.IsNotFound(err)) || time.Now().After(deadline) {
			t.Fatalf("WorkloadProfile %s/%s not written within %s: %v", ns, name, limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitStatus(t *testing.T, ctx context.Context, dc dynamic.Interface, ns, name, node string) crd.NodeStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		o := waitObject(t, ctx, dc, ns, name, time.Second)
		if o.Status != nil {
			if i := slices.IndexFunc(o.Status.Nodes, func(n crd.NodeStatus) bool { return n.Node == node }); i >= 0 {
				return o.Status.Nodes[i]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no status entry for node %s on %s/%s: %+v", node, ns, name, o.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitSeeded(t *testing.T, det *baseline.Detector, k profile.Key) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, ok := det.Profile(k); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("detector not seeded with %+v; has %+v", k, det.Profiles())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func webhookMetrics(t *testing.T, ctx context.Context, wh *webhookProc) metrics {
	t.Helper()
	text, err := wh.get(ctx, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return parseMetrics(text)
}

func waitMetric(t *testing.T, ctx context.Context, wh *webhookProc, name, label string, min float64, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		m := webhookMetrics(t, ctx, wh)
		if m.sum(name, label) >= min {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s{%s} did not reach %v within %s: %s", name, label, min, limit, m.summary(name))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startCRDWebhook runs `vigil webhook` with the CRD backend and the native
// checks (this test is about storage, not the Wasm pack).
func startCRDWebhook(t *testing.T, bin, dir, kubeconfig string) *webhookProc {
	t.Helper()
	return runWebhook(t, bin, dir, 30*time.Second, "--admission-rules=native",
		"--profiles-backend=crd", "--kubeconfig="+kubeconfig, "--crd-request-timeout=2s")
}

// proxy forwards TCP to the API server. Down, it holds new connections
// open without forwarding (an API server that hangs, the hardest case
// for a client) and cuts the ones it was forwarding.
type proxy struct {
	addr, target string
	ln           net.Listener

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.setDown(true) // cut everything
	})
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns[c] = struct{}{}
		down := p.down
		p.mu.Unlock()
		if down {
			continue // held: the client waits for its TLS handshake
		}
		go p.forward(c)
	}
}

func (p *proxy) forward(c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[u] = struct{}{}
	p.mu.Unlock()
	go func() { io.Copy(u, c); u.Close() }()
	io.Copy(c, u)
	c.Close()
}

// setDown switches the mode and cuts every connection, forwarded or held,
// so clients notice at once and reconnect into the new mode.
func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}
