//go:build soak

package guard_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard"
	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/baseline"
	"github.com/vigilsec/vigil/guard/config"
	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/guard/profile"
	"github.com/vigilsec/vigil/internal/privtest"
)

// Soak settings. The learning window and stabilization period are the
// guard's shipped defaults (config.Default: baseline.learningWindow 5m,
// baseline.stableAfter 2m): a profile is ready once it learned for the
// window and then saw no new behavior for the stabilization period. A
// shorter window is not honest for postgres, whose checkpointer first runs
// five minutes after start; see BENCHMARKS.md ("Behavior soak").
var (
	soakLearn  = config.Default().Baseline.LearningWindow.Std()
	soakStable = config.Default().Baseline.StableAfter.Std()
)

const (
	readyGoal   = 10 * time.Minute
	defaultSoak = 10 * time.Minute
	// Rate anomalies need this many learned minutes (baseline.Config's
	// MinRateMinutes default), with this floor and k (RateFloor, RateK).
	minRateMinutes = 10
	execRateFloor  = 60
	rateK          = 6
)

// soakDuration is the normal-load phase: 10 minutes, or VIGIL_SOAK (e.g.
// "2m") for a developer's quick run.
func soakDuration(t *testing.T) time.Duration {
	v := os.Getenv("VIGIL_SOAK")
	if v == "" {
		return defaultSoak
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("VIGIL_SOAK=%q: want a duration like 2m", v)
	}
	return d
}

// soakRecorder keeps the alerts about the soak's containers and counts
// events per container; the guard sees the whole host (other tests'
// containers included), which is counted but not kept.
type soakRecorder struct {
	mu       sync.Mutex
	ids      map[string]string // container id → server name
	alerts   []*alert.Alert
	events   map[string]uint64
	total    uint64
	profKeys map[string]string // FormatKey → server name
}

func (r *soakRecorder) watch(id, name string) {
	r.mu.Lock()
	r.ids[id] = name
	r.mu.Unlock()
}

func (r *soakRecorder) setKey(k profile.Key, name string) {
	r.mu.Lock()
	r.profKeys[baseline.FormatKey(k)] = name
	r.mu.Unlock()
}

// serverOf names the soak server an alert is about, "" for none.
func (r *soakRecorder) serverOf(a *alert.Alert) string {
	if a.Event != nil {
		if n := r.ids[a.Event.Container.ID]; n != "" {
			return n
		}
	}
	if k, ok := a.Fields["baseline.profile"].(string); ok {
		return r.profKeys[k]
	}
	return ""
}

// onAlert keeps every alert: a container's first events arrive before
// runctest.Start returns its id, so alerts are attributed when read.
func (r *soakRecorder) onAlert(a *alert.Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.alerts = append(r.alerts, a)
}

func (r *soakRecorder) onEvent(e *event.Event) {
	r.mu.Lock()
	r.total++
	if e.Container.ID != "" {
		if _, ok := r.ids[e.Container.ID]; ok {
			r.events[e.Container.ID]++
		}
	}
	r.mu.Unlock()
}

// since returns the soak alerts raised at or after t.
func (r *soakRecorder) since(t time.Time) []*alert.Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*alert.Alert
	for _, a := range r.alerts {
		if !a.Time.Before(t) && r.serverOf(a) != "" {
			out = append(out, a)
		}
	}
	return out
}

// othersCount counts alerts about anything but the soak's servers (the
// guard sees the whole host, other tests' containers included).
func (r *soakRecorder) othersCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, a := range r.alerts {
		if r.serverOf(a) == "" {
			n++
		}
	}
	return n
}

func (r *soakRecorder) describe(a *alert.Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s %s/%s %s: %s", r.serverOf(a), a.Time.UTC().Format("15:04:05"), a.Source, a.Rule, a.Priority, a.Message)
	if e := a.Event; e != nil {
		fmt.Fprintf(&b, "\n      evidence: %s pid %d %s exe=%s args=%q file=%s net=%s", e.Kind, e.Proc.PID, e.Proc.Name,
			e.Proc.Exe, e.Proc.Args, e.File.Path, e.Net.Dst)
		for i, an := range e.Proc.Ancestors {
			if i == 3 {
				break
			}
			fmt.Fprintf(&b, " <- %s(%s)", an.Name, an.Exe)
		}
	}
	return b.String()
}

// waitFor waits up to d for a soak alert raised after t matching pred.
func (r *soakRecorder) waitFor(t *testing.T, after time.Time, d time.Duration, what string, pred func(*alert.Alert) bool) *alert.Alert {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, a := range r.since(after) {
			if pred(a) {
				return a
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	var seen []string
	for _, a := range r.since(after) {
		seen = append(seen, "  "+r.describe(a))
	}
	t.Errorf("no alert for %s within %v; alerts since the injection:\n%s", what, d, strings.Join(seen, "\n"))
	return nil
}

func startSoakGuard(t *testing.T, rec *soakRecorder) *guard.Guard {
	t.Helper()
	return runTestGuard(t, func(c *config.Config) { c.Environment = config.Staging }, rec.onAlert, rec.onEvent) // audit mode
}

// TestSoakRealServers is issue #6's real-server test: Debian's nginx,
// redis and postgres, each in a runc container, under load from 127.0.0.1.
// They learn until their profiles are ready (the time from container start
// to ready is the "time to a usable baseline"), then run soakDuration of
// normal load, which must raise no alert at all, behavior or rule. Then a
// shell, a new outbound peer and an exec burst are injected and each must
// be flagged on the right workload, with the right category, at or above
// the behavior-alert floor.
func TestSoakRealServers(t *testing.T) {
	privtest.RequireRoot(t)
	soak := soakDuration(t)
	rec := &soakRecorder{ids: map[string]string{}, events: map[string]uint64{}, profKeys: map[string]string{}}
	g := startSoakGuard(t, rec)
	floor := alert.Notice // config.Default's baseline.minPriority
	t.Logf("guard running (audit mode, standard pack); learning window %v, stable after %v; soak %v", soakLearn, soakStable, soak)

	passwd := soakPasswd(t)
	servers := []*server{startNginx(t, passwd), startRedis(t, passwd), startPostgres(t, passwd)}
	for _, s := range servers {
		rec.watch(s.ctr.ID, s.name)
		t.Logf("%s: container %s (init pid %d) serving", s.name, s.ctr.ID, s.ctr.InitPID)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.load(ctx, &s.stats)
		}()
	}

	// Phase 1: learning, until every server's profile is ready.
	keys := map[string]profile.Key{}
	ready := map[string]time.Duration{}
	first := time.Now()
	lastLog := time.Time{}
	for len(ready) < len(servers) {
		for _, s := range servers {
			for _, sum := range g.Profiles() {
				if sum.Key.Container != s.ctr.ID && sum.Key.Workload != "Container/"+s.ctr.ID {
					continue
				}
				if _, ok := keys[s.name]; !ok {
					keys[s.name] = sum.Key
					rec.setKey(sum.Key, s.name)
				}
				if _, ok := ready[s.name]; !ok && sum.State != baseline.StateLearning {
					ready[s.name] = sum.ReadyAt.Sub(s.started)
					t.Logf("%s: profile %s ready after %v (%d behaviors, last new behavior %v after start)", s.name,
						baseline.FormatKey(sum.Key), ready[s.name].Round(time.Second), sum.Behaviors, sum.LastNew.Sub(s.started).Round(time.Second))
				}
			}
		}
		if time.Since(first) > readyGoal+time.Minute {
			for _, sum := range g.Profiles() {
				t.Logf("profile %s: %s, last new behavior %s", baseline.FormatKey(sum.Key), sum.State, sum.LastNew.Format(time.RFC3339))
			}
			for _, a := range rec.since(first) {
				t.Log(rec.describe(a))
			}
			t.Fatalf("not every profile ready after %v: ready %v", readyGoal+time.Minute, ready)
		}
		if time.Since(lastLog) >= 30*time.Second {
			lastLog = time.Now()
			t.Logf("learning: %v elapsed, %d/%d profiles ready, %d alerts so far", time.Since(first).Round(time.Second),
				len(ready), len(servers), len(rec.since(first)))
		}
		time.Sleep(time.Second)
	}
	for _, s := range servers {
		if ready[s.name] > readyGoal {
			t.Errorf("%s: time to a usable baseline %v, goal ≤ %v", s.name, ready[s.name], readyGoal)
		}
	}
	learnAlerts := rec.since(first)
	// Deploying and starting a stock server must not alert either: a rule
	// that fires on nginx dropping privileges or postgres forking backends
	// is a false positive on every node that runs them.
	for _, a := range learnAlerts {
		t.Errorf("alert while learning: %s", rec.describe(a))
	}

	// Phase 2: the soak. Normal load must raise nothing.
	soakStart := time.Now()
	rec.mu.Lock()
	evStart := map[string]uint64{}
	for id, n := range rec.events {
		evStart[id] = n
	}
	totalStart := rec.total
	rec.mu.Unlock()
	minutes := int((soak + time.Minute - 1) / time.Minute)
	for m := 1; time.Since(soakStart) < soak; m++ {
		wait := time.Until(soakStart.Add(time.Duration(m) * time.Minute))
		if end := time.Until(soakStart.Add(soak)); end < wait {
			wait = end
		}
		time.Sleep(wait)
		got := rec.since(soakStart)
		var load []string
		for _, s := range servers {
			load = append(load, s.name+": "+s.stats.String())
		}
		t.Logf("soak minute %d/%d: %d alerts so far; load %s", m, minutes, len(got), strings.Join(load, "; "))
		for _, a := range got {
			t.Logf("  %s", rec.describe(a))
		}
	}
	soakEnd := time.Now()
	soakAlerts := rec.since(soakStart)
	for _, a := range soakAlerts {
		t.Errorf("alert under normal load: %s", rec.describe(a))
	}
	rec.mu.Lock()
	elapsed := soakEnd.Sub(soakStart).Seconds()
	evRate := map[string]float64{}
	for _, s := range servers {
		evRate[s.name] = float64(rec.events[s.ctr.ID]-evStart[s.ctr.ID]) / elapsed
	}
	hostRate := float64(rec.total-totalStart) / elapsed
	rec.mu.Unlock()
	others := rec.othersCount()
	for _, s := range servers {
		if s.stats.ok.Load() == 0 {
			t.Errorf("%s: the load generator completed nothing: %s", s.name, s.stats.String())
		}
	}
	if servers[0].stats.notFound.Load() == 0 {
		t.Error("nginx: the load produced no 404s")
	}

	// Measurements: per-profile memory and events/s.
	t.Logf("RESULTS (soak %v, learning window %v, stable after %v):", soak.Round(time.Second), soakLearn, soakStable)
	t.Logf("  %-9s %-14s %-10s %-12s %-12s %-10s %s", "server", "time-to-ready", "behaviors", "heap B/prof", "disk B/prof", "events/s", "load")
	for _, s := range servers {
		p, ok := g.Profile(keys[s.name])
		if !ok {
			t.Fatalf("%s: profile %s vanished", s.name, baseline.FormatKey(keys[s.name]))
		}
		heap, disk := profileMemory(t, p)
		t.Logf("  %-9s %-14v %-10d %-12d %-12d %-10.1f %s", s.name, ready[s.name].Round(time.Second), len(p.Behaviors()),
			heap, disk, evRate[s.name], s.stats.String())
	}
	for _, s := range servers {
		p, _ := g.Profile(keys[s.name])
		var bs []string
		for _, b := range p.Behaviors() {
			bs = append(bs, b.String())
		}
		t.Logf("  %s learned: %s", s.name, strings.Join(bs, " "))
	}
	st := g.BaselineStats()
	t.Logf("  whole host: %.0f events/s through the guard during the soak; detector %+v; %d alerts about other workloads ignored",
		hostRate, st, others)
	if st.Dropped != 0 {
		t.Errorf("detector dropped %d deviations", st.Dropped)
	}

	// Phase 3: deviations.
	byName := map[string]*server{}
	for _, s := range servers {
		byName[s.name] = s
	}
	isBaseline := func(s *server, rule string) func(*alert.Alert) bool {
		return func(a *alert.Alert) bool {
			return a.Source == "baseline" && a.Rule == rule && a.Fields["baseline.profile"] == baseline.FormatKey(keys[s.name]) &&
				a.Event != nil && a.Event.Container.ID == s.ctr.ID
		}
	}
	checkFloor := func(a *alert.Alert, what string) {
		if a != nil && a.Priority > floor {
			t.Errorf("%s flagged at %s, below the floor %s", what, a.Priority, floor)
		}
		if a != nil {
			t.Logf("flagged %s: %s", what, rec.describe(a))
		}
	}

	// A shell in nginx.
	nginx := byName["nginx"]
	inject := time.Now()
	if out, err := nginx.ctr.Exec("sh", "-c", "id; ls /srv/www >/dev/null; echo done"); err != nil {
		t.Errorf("shell in nginx: %v %s", err, out)
	}
	a := rec.waitFor(t, inject, 30*time.Second, "a shell in nginx", func(a *alert.Alert) bool {
		return isBaseline(nginx, "baseline.new_exec")(a) && a.Event.Proc.Name == "sh"
	})
	checkFloor(a, "shell in nginx (behavior)")
	a = rec.waitFor(t, inject, 30*time.Second, "the standard pack's shell rule in nginx", func(a *alert.Alert) bool {
		return a.Source == "rule" && a.Rule == "Terminal shell in container" && a.Event != nil && a.Event.Container.ID == nginx.ctr.ID
	})
	checkFloor(a, "shell in nginx (rule)")

	// A new outbound peer from redis.
	redis := byName["redis"]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	peer := ln.Addr().String()
	inject = time.Now()
	if out, err := redis.ctr.Exec("nc", "-w", "2", "127.0.0.1", fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)); err != nil {
		t.Logf("nc from redis: %v %s (the connect is what matters)", err, out)
	}
	a = rec.waitFor(t, inject, 30*time.Second, "a new peer from redis", func(a *alert.Alert) bool {
		return isBaseline(redis, "baseline.new_egress")(a) && a.Fields["baseline.behavior"] == "connect:"+peer
	})
	checkFloor(a, "new peer from redis")

	// An exec burst in postgres: enough execs in one minute to clear the
	// learned exec-rate threshold twice over. A rate finding needs
	// minRateMinutes of learned minutes; a short VIGIL_SOAK waits for them.
	pg := byName["postgres"]
	for waitRates := time.Now(); ; {
		p, _ := g.Profile(keys[pg.name])
		d, _ := p.RateDist("exec")
		if d.N >= minRateMinutes {
			break
		}
		if time.Since(waitRates) > minRateMinutes*time.Minute+2*time.Minute {
			t.Fatalf("postgres: exec rate learned over only %d minutes after waiting %v", d.N, time.Since(waitRates).Round(time.Second))
		}
		t.Logf("postgres: exec rate learned over %d minutes; waiting for %d before the burst", d.N, minRateMinutes)
		time.Sleep(30 * time.Second)
	}
	p, _ := g.Profile(keys[pg.name])
	d, _ := p.RateDist("exec")
	n := 2*int(d.Threshold(execRateFloor, rateK)) + 50
	// Start early in a minute so the burst lands in one minute's count.
	if s := time.Now().Second(); s > 30 {
		time.Sleep(time.Duration(61-s) * time.Second)
	}
	inject = time.Now()
	t.Logf("postgres: exec burst of %d (learned exec rate mean %.1f/min, max %d, threshold %.0f)", n, d.Mean, d.Max, d.Threshold(execRateFloor, rateK))
	if out, err := pg.ctr.Exec("sh", "-c", fmt.Sprintf("i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done; echo done", n)); err != nil {
		t.Errorf("exec burst in postgres: %v %s", err, out)
	}
	a = rec.waitFor(t, inject, 150*time.Second, "an exec burst in postgres", func(a *alert.Alert) bool {
		return isBaseline(pg, "baseline.rate_anomaly")(a) && a.Fields["baseline.behavior"] == "rate:exec"
	})
	checkFloor(a, "exec burst in postgres")

	var all []string
	for _, a := range rec.since(soakEnd) {
		all = append(all, "  "+rec.describe(a))
	}
	sort.Strings(all)
	t.Logf("every alert raised by the injections:\n%s", strings.Join(all, "\n"))
}

// profileMemory returns the heap a decoded copy of p holds (what the
// detector keeps per profile once loaded from the store) and its encoded
// size on disk.
func profileMemory(t *testing.T, p *baseline.Profile) (heap, disk int) {
	// Many copies, because the guard allocates concurrently.
	const n = 1000
	b := p.Encode()
	keep := make([]*baseline.Profile, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range keep {
		q, err := baseline.DecodeProfile(b)
		if err != nil {
			t.Fatalf("decode %s: %v", baseline.FormatKey(p.Key), err)
		}
		keep[i] = q
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	return int(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n, len(b)
}
