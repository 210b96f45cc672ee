package guard

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/dynamic"

	"github.com/vigilsec/vigil/guard/baseline"
	"github.com/vigilsec/vigil/guard/config"
	"github.com/vigilsec/vigil/guard/container"
	"github.com/vigilsec/vigil/guard/crdwatch"
	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/guard/profile"
	"github.com/vigilsec/vigil/webhook"
	"github.com/vigilsec/vigil/webhook/crd"
)

// workloads maps a pod's (namespace, revision) to the workload the webhook
// admitted it under, so events of pods whose runtime metadata names no owner
// (CRI carries none) still reach the right behavior profile.
type workloads struct {
	mu sync.RWMutex
	m  map[[2]string]string
}

func (w *workloads) get(ns, rev string) (string, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	v, ok := w.m[[2]string{ns, rev}]
	return v, ok
}

func (w *workloads) put(ns, rev, workload string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = make(map[[2]string]string)
	}
	w.m[[2]string{ns, rev}] = workload
}

// fillWorkload names the owning workload of a pod's event: from the
// webhook's admitted profiles first, else from the controllers' naming
// conventions, checked against the pod's revision label so a pod that
// merely looks like a ReplicaSet child is not misattributed.
func (g *Guard) fillWorkload(e *event.Event) {
	k := &e.K8s
	if k.Workload != "" || k.Pod == "" {
		return
	}
	if k.Revision != "" {
		if wl, ok := g.admitted.get(k.Namespace, k.Revision); ok {
			k.Workload = wl
			return
		}
	}
	k.Workload = workloadFromPodName(k.Pod, k.Revision)
}

// workloadFromPodName applies the controllers' naming: a Deployment's pod
// is <deploy>-<pod-template-hash>-<5 chars>; a StatefulSet's pod is
// <sts>-<ordinal> with revision <sts>-<hash>. Anything else is a bare pod.
func workloadFromPodName(pod, rev string) string {
	if rev != "" {
		if i := strings.LastIndexByte(pod, '-'); i > 0 {
			base := pod[:i]
			if j := strings.LastIndexByte(base, '-'); j > 0 && base[j+1:] == rev && len(pod)-i-1 == 5 {
				return "Deployment/" + base[:j]
			}
			if strings.HasPrefix(rev, base+"-") && allDigits(pod[i+1:]) {
				return "StatefulSet/" + base
			}
		}
	}
	return "Pod/" + pod
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// syncProfiles polls the webhook's local API for expected-behavior profiles
// and release windows, seeding behavior detection with them.
func (g *Guard) syncProfiles(ctx context.Context, c *webhook.Client) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		g.pullProfiles(ctx, c)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (g *Guard) pullProfiles(ctx context.Context, c *webhook.Client) {
	ps, err := c.Poll(ctx)
	if err != nil {
		if ctx.Err() == nil {
			g.profileErrors.Add(1)
			g.log.Warn("poll webhook profiles", "err", err)
		}
		return
	}
	ws, err := c.Windows(ctx, 0, true)
	if err != nil && ctx.Err() == nil {
		g.profileErrors.Add(1)
		g.log.Warn("poll release windows", "err", err)
	}
	windows := make([]profile.ReleaseWindow, 0, len(ws))
	for _, w := range ws {
		windows = append(windows, w.ReleaseWindow)
	}
	g.detMu.Lock()
	defer g.detMu.Unlock()
	for _, p := range ps {
		g.admitted.put(p.Key.Namespace, p.Key.Revision, p.Key.Workload)
		if g.detector != nil {
			g.detector.Seed(p.Expected)
		}
	}
	if g.detector != nil && err == nil {
		g.detector.SetWindows(windows)
	}
}

// newCRDWatch builds the WorkloadProfile watcher of the crd profiles
// source; Run starts it.
func (g *Guard) newCRDWatch(b config.Baseline) (*crdwatch.Watcher, error) {
	rc, err := crd.RESTConfig(b.Kubeconfig)
	if err != nil {
		return nil, err
	}
	rc.UserAgent = "vigil-guard"
	dc, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	node := b.NodeName
	if node == "" {
		node = os.Getenv("NODE_NAME")
	}
	if node == "" {
		if node, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("node name: %w", err)
		}
	}
	return crdwatch.New(crdwatch.Config{Client: dc, Node: node, StatusInterval: b.StatusInterval.Std(), Logger: g.log}, crdSink{g})
}

// crdSink hands the watcher's profiles to the detector under the guard's
// detector lock, and remembers which workload each revision belongs to.
type crdSink struct{ g *Guard }

func (s crdSink) Seed(p profile.Expected) {
	s.g.admitted.put(p.Key.Namespace, p.Key.Revision, p.Key.Workload)
	s.g.detMu.Lock()
	defer s.g.detMu.Unlock()
	if s.g.detector != nil {
		s.g.detector.Seed(p)
	}
}

func (s crdSink) SetWindows(ws []profile.ReleaseWindow) {
	s.g.detMu.Lock()
	defer s.g.detMu.Unlock()
	if s.g.detector != nil {
		s.g.detector.SetWindows(ws)
	}
}

func (s crdSink) Profiles() []baseline.Summary {
	s.g.detMu.Lock()
	defer s.g.detMu.Unlock()
	if s.g.detector == nil {
		return nil
	}
	return s.g.detector.Profiles()
}

// Profiles summarizes every behavior profile, sorted by key (state, ready
// time, behaviors learned); nil when behavior detection is disabled.
func (g *Guard) Profiles() []baseline.Summary {
	if g.detector == nil {
		return nil
	}
	g.detMu.Lock()
	defer g.detMu.Unlock()
	return g.detector.Profiles()
}

// Profile returns a copy of k's behavior profile.
func (g *Guard) Profile(k profile.Key) (*baseline.Profile, bool) {
	if g.detector == nil {
		return nil, false
	}
	g.detMu.Lock()
	defer g.detMu.Unlock()
	return g.detector.Profile(k)
}

// BaselineStats returns the behavior detector's counters.
func (g *Guard) BaselineStats() baseline.Stats {
	if g.detector == nil {
		return baseline.Stats{}
	}
	g.detMu.Lock()
	defer g.detMu.Unlock()
	return g.detector.Stats()
}

// seedVolumes seeds the profile of a container run outside Kubernetes with
// its writable volumes, once per container. The runtime's bundle declares
// them as a pod's volumeMounts do (the webhook seeds those), and a server's
// own files churn there in patterns no learning window sees in full:
// postgres unlinks relation files two checkpoints after a truncate and
// marks WAL segments done as they fill, minutes to hours apart.
func (g *Guard) seedVolumes(e *event.Event) {
	id := e.Container.ID
	if id == "" || e.K8s.Pod != "" || e.K8s.Workload != "" ||
		(e.Container.Runtime != container.RuntimeRunc && e.Container.Runtime != container.RuntimeDocker) {
		return // Kubernetes pods are seeded from their manifest
	}
	if g.volSeeded.Contains(id) {
		return
	}
	g.volSeeded.Add(id, struct{}{})
	vols, err := container.WritableMounts(container.DefaultStateRoots(), id)
	if err != nil || len(vols) == 0 {
		return
	}
	if k, ok := baseline.KeyOf(e); ok {
		g.detector.Seed(profile.Expected{Key: k, WritablePaths: vols})
	}
}
