package guard

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/vigilsec/vigil/guard/baseline"
	"github.com/vigilsec/vigil/guard/container"
	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/guard/profile"
	"github.com/vigilsec/vigil/webhook"
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

// Profiles summarizes every behavior profile, sorted by key (state, ready
// time, behaviors learned); nil when behavior detection is disabled.
func (g *Guard) Profiles() []baseline.Summary {
	if g.detector == nil {
		return nil
	}
	return g.detector.Profiles()
}

// Profile returns a copy of k's behavior profile.
func (g *Guard) Profile(k profile.Key) (*baseline.Profile, bool) {
	if g.detector == nil {
		return nil, false
	}
	return g.detector.Profile(k)
}

// BaselineStats returns the behavior detector's counters.
func (g *Guard) BaselineStats() baseline.Stats {
	if g.detector == nil {
		return baseline.Stats{}
	}
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
