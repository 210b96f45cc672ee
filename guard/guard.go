// Package guard assembles the node guard: eBPF sensors feed a process table
// and container resolver, whose enriched events go to the Wasm rules and to
// behavior detection; verdicts go through the enforcer (kill, block, or
// "would have" in audit mode) and alerts through deduplication to the
// outputs.
//
// The start-up order is: metrics, enforcement probe (so `require: [lsm]`
// fails before anything else loads), process table bootstrap, container
// resolver, rules, behavior detection, outputs, and the sensors last, so no
// event arrives before its consumers exist. Close undoes it in reverse.
package guard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/baseline"
	"github.com/vigilsec/vigil/guard/config"
	"github.com/vigilsec/vigil/guard/container"
	"github.com/vigilsec/vigil/guard/crdwatch"
	"github.com/vigilsec/vigil/guard/enforce"
	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/guard/metrics"
	"github.com/vigilsec/vigil/guard/output"
	"github.com/vigilsec/vigil/guard/process"
	"github.com/vigilsec/vigil/guard/rules"
	"github.com/vigilsec/vigil/guard/sensor"
	"github.com/vigilsec/vigil/webhook"
)

// Options are the guard's run-time inputs besides the config file.
type Options struct {
	Config config.Config
	// Stdout receives JSON lines (alerts, and events with Config.Output.Events).
	Stdout io.Writer
	Log    *slog.Logger
	// OnAlert, when set, sees every alert after deduplication (tests, record).
	OnAlert func(*alert.Alert)
	// OnEvent, when set, sees every enriched event (vigil record).
	OnEvent func(*event.Event)
	// NoEnforce skips the enforcer entirely (vigil record).
	NoEnforce bool
}

// Guard is a running node guard.
type Guard struct {
	opt  Options
	cfg  config.Config
	log  *slog.Logger
	mode alert.Mode

	metrics    *metrics.Server
	enforcer   *enforce.Enforcer
	modes      *enforce.Resolver
	procs      *process.Table
	containers *container.Resolver
	rules      *rules.Engine
	bstore     *baseline.Store
	detector   *baseline.Detector
	out        *output.Fanout
	dedup      *output.Dedup
	sensor     *sensor.Sensor
	events     *output.JSONLines

	queue        chan *event.Event
	queueDropped atomic.Uint64
	detMu        sync.Mutex // the detector is not safe for concurrent use
	alerts       atomic.Uint64
	killErrors   atomic.Uint64
	batchLatency prometheus.Histogram

	// Profiles from the webhook (profiles.go).
	profiles      *webhook.Client
	crdWatch      *crdwatch.Watcher
	admitted      workloads
	profileErrors atomic.Uint64
	baselineQuiet atomic.Uint64 // behavior alerts below MinPriority
	baselineFloor alert.Priority
	volSeeded     *lru.Cache[string, struct{}] // containers whose volumes seeded their profile

	// Fast-path policies (policy.go).
	policies     []enforce.Rule
	seenCgroups  map[uint64]struct{}
	applyQ       chan applyReq
	applied      atomic.Uint64
	applyErrors  atomic.Uint64
	applyDropped atomic.Uint64

	// Profile locks (lock.go).
	locks       lockState
	lockMu      sync.Mutex
	lockTargets map[uint64]enforce.Workload // cgroup id -> workload
	lockPushes  atomic.Uint64
	lockErrors  atomic.Uint64

	closeOnce sync.Once
	closeErr  error
}

// QueueDepth bounds events waiting between the sensor reader and the
// pipeline; a full queue drops the event for userspace analysis (counted in
// vigil_pipeline_dropped_total). In-kernel enforcement never depends on it.
const QueueDepth = 65536

// containerWarmWait bounds how long start-up waits for the runtimes to
// describe the containers already running; what is left is resolved in the
// background and counted (vigil_container_warm_timeouts_total).
const containerWarmWait = 5 * time.Second

// New builds every component. On error, everything built so far is closed.
func New(ctx context.Context, opt Options) (g *Guard, err error) {
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if opt.Stdout == nil {
		opt.Stdout = os.Stdout
	}
	cfg := opt.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g = &Guard{opt: opt, cfg: cfg, log: opt.Log, mode: cfg.DefaultMode(), queue: make(chan *event.Event, QueueDepth),
		batchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_rules_batch_seconds",
			Help:    "Wall time to evaluate one batch of events in every subscribed module.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12),
		})}
	defer func() {
		if err != nil {
			g.Close()
			g = nil
		}
	}()

	// Parsed once here rather than for every behavior alert.
	g.baselineFloor = alert.Notice
	if p, err := alert.ParsePriority(cfg.Baseline.MinPriority); err == nil {
		g.baselineFloor = p
	}
	g.policies = compilePolicies(cfg.Policies)
	g.seenCgroups = make(map[uint64]struct{})
	g.applyQ = make(chan applyReq, 1024)
	g.locks = lockState{seen: map[uint64]enforce.Workload{}, pushed: map[uint64]string{}}
	g.lockTargets = map[uint64]enforce.Workload{}

	modeCfg := modeConfig(cfg)
	if g.modes, err = enforce.NewResolver(modeCfg); err != nil {
		return g, fmt.Errorf("modes: %w", err)
	}

	// 1. Metrics first, so a failing start-up is still observable.
	g.metrics = metrics.New()
	if cfg.Metrics.Listen != "" {
		if err := g.metrics.Listen(cfg.Metrics.Listen); err != nil {
			return g, err
		}
	}

	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return g, fmt.Errorf("state dir: %w", err)
	}

	// 2. Enforcement: probe the ladder; honour `require`.
	if !opt.NoEnforce && g.mode != alert.ModeOff {
		var req []enforce.Backend
		for _, r := range cfg.Require {
			b, err := enforce.ParseBackend(r)
			if err != nil {
				return g, fmt.Errorf("require: %w", err)
			}
			req = append(req, b)
		}
		ecfg := enforce.Config{Modes: modeCfg, ProtectedNamespaces: cfg.SystemNamespaces, OnRecord: g.onEnforceRecord,
			AuditDB: filepath.Join(cfg.StateDir, "audit.db")}
		if g.mode != alert.ModeEnforce {
			req = nil // `require` guards enforce mode only
		}
		ecfg.Require = req
		if cfg.FailClosed {
			ecfg.PinPath = "/sys/fs/bpf/vigil"
		}
		if g.enforcer, err = enforce.New(ecfg); err != nil {
			return g, fmt.Errorf("enforcement: %w", err)
		}
		rep := g.enforcer.Report()
		g.log.Info("enforcement backends probed", "report", rep.String())
		for _, c := range rep.Collectors() {
			_ = g.metrics.Registry.Register(c)
		}
	}

	// 3. Context: containers (which finds the cgroup2 mount), then the
	// process table, bootstrapped from /proc.
	if g.containers, err = container.New(container.Config{Sources: container.DetectSources("", "")}); err != nil {
		return g, fmt.Errorf("container resolver: %w", err)
	}
	if g.procs, err = process.New(process.Config{Cgroup2Root: g.containers.Cgroup2Root()}); err != nil {
		return g, fmt.Errorf("process table: %w", err)
	}
	n, err := g.procs.Bootstrap()
	if err != nil {
		return g, fmt.Errorf("bootstrap process table: %w", err)
	}
	g.log.Info("process table bootstrapped", "processes", n)
	// Containers that were running before this (re)start are resolved
	// now, before the sensors deliver, so their first alerts name the pod.
	// The wait is bounded: a slow runtime delays start-up, never stops it.
	wctx, wcancel := context.WithTimeout(ctx, containerWarmWait)
	wr := g.containers.Warm(wctx)
	wcancel()
	g.log.Info("running containers resolved", "containers", wr.Containers, "with_metadata", wr.Resolved,
		"unknown", wr.NotFound, "pending", wr.Pending, "took", wr.Took.Round(time.Millisecond).String())

	// 4. Rules.
	if cfg.Rules.Dir != "" {
		var pins map[string]string
		if cfg.Rules.Pinning {
			pins = make(map[string]string, len(cfg.Rules.Pins))
			for k, v := range cfg.Rules.Pins {
				pins[k] = v[len("sha256:"):]
			}
		}
		if _, err := os.Stat(cfg.Rules.Dir); err != nil {
			return g, fmt.Errorf("rules dir: %w", err)
		}
		var unchecked []string
		for _, d := range cfg.Rules.Unchecked {
			unchecked = append(unchecked, d[len("sha256:"):])
		}
		// The first start compiles every module to native code (seconds for
		// a Go-built one); say so, so a slow start is not mistaken for a hang.
		g.log.Info("loading rules (first load compiles to native code, then cached)", "dir", cfg.Rules.Dir, "cache", cfg.Rules.CacheDir)
		rulesStart := time.Now()
		g.rules, err = rules.New(ctx, rules.Config{Unchecked: unchecked,
			Dir: cfg.Rules.Dir, CacheDir: cfg.Rules.CacheDir, Timeout: cfg.Rules.Timeout.Std(),
			MemoryLimit: uint64(cfg.Rules.MemoryLimitMiB) << 20, Pins: pins,
			ReloadInterval: cfg.Rules.ReloadInterval.Std(), Logger: g.log.With("component", "rules"),
		})
		if err != nil {
			return g, fmt.Errorf("rules: %w", err)
		}
		st := g.rules.Stats()
		g.log.Info("rules loaded", "modules", len(st.Modules), "quarantined", st.Quarantined,
			"took", time.Since(rulesStart).Round(time.Millisecond).String())
	}

	// 5. Behavior detection.
	if !cfg.Baseline.Disabled {
		path := cfg.Baseline.Store
		if path == "" {
			path = filepath.Join(cfg.StateDir, "baseline.db")
		}
		if g.bstore, err = baseline.OpenStore(path, 5*time.Second); err != nil {
			return g, fmt.Errorf("baseline store: %w", err)
		}
		bcfg := baseline.Config{Mode: g.mode}
		if d := cfg.Baseline.LearningWindow.Std(); d > 0 {
			bcfg.MinLearn = d
		}
		if d := cfg.Baseline.StableAfter.Std(); d > 0 {
			bcfg.StableAfter = d
		}
		if g.detector, err = baseline.New(bcfg, g.bstore, time.Now); err != nil {
			return g, fmt.Errorf("baseline: %w", err)
		}
		if g.volSeeded, err = lru.New[string, struct{}](4096); err != nil {
			return g, fmt.Errorf("baseline: %w", err)
		}
	}

	if u := cfg.Baseline.ProfilesURL; u != "" {
		if g.profiles, err = webhook.NewClient(u, cfg.Baseline.ProfilesCA); err != nil {
			return g, fmt.Errorf("profiles: %w", err)
		}
	}
	if cfg.Baseline.ProfilesSource == "crd" {
		if g.crdWatch, err = g.newCRDWatch(cfg.Baseline); err != nil {
			return g, fmt.Errorf("profiles: %w", err)
		}
	}

	// 6. Outputs.
	var sinks []output.Sink
	if cfg.Output.Stdout == nil || *cfg.Output.Stdout {
		sinks = append(sinks, output.NewJSONLines(opt.Stdout))
	}
	if f := cfg.Output.File; f != nil {
		maxB := f.MaxSizeMiB << 20
		if maxB == 0 {
			maxB = 100 << 20
		}
		s, err := output.NewJSONFile(f.Path, maxB, f.Keep)
		if err != nil {
			return g, err
		}
		sinks = append(sinks, s)
	}
	if h := cfg.Output.Falcosidekick; h != nil {
		sinks = append(sinks, output.NewSidekick(h.URL, h.Timeout.Std(), h.Retries))
	}
	if s := cfg.Output.Syslog; s != nil {
		sl, err := output.NewSyslog(s.Network, s.Address)
		if err != nil {
			return g, err
		}
		sinks = append(sinks, sl)
	}
	g.out = output.NewFanout(cfg.Output.QueueDepth, sinks...)
	g.dedup = output.NewDedup(cfg.Output.DedupWindow.Std(), 0)
	if cfg.Output.Events {
		g.events = output.NewJSONLines(opt.Stdout)
	}

	// 7. Sensors last.
	var interest []sensor.Interest
	if len(cfg.Sensor.OpenAlways)+len(cfg.Sensor.OpenWrites) > 0 {
		interest = sensor.DefaultInterest()
		for _, p := range cfg.Sensor.OpenAlways {
			interest = append(interest, sensor.Interest{Prefix: p, Mode: sensor.ReportAlways})
		}
		for _, p := range cfg.Sensor.OpenWrites {
			interest = append(interest, sensor.Interest{Prefix: p, Mode: sensor.ReportWrites})
		}
	}
	if g.sensor, err = sensor.New(sensor.Config{RingBufferBytes: int(cfg.Sensor.RingBufferMiB) << 20, Interest: interest}); err != nil {
		return g, fmt.Errorf("sensors: %w", err)
	}
	g.registerMetrics()
	return g, nil
}

// modeConfig maps the file's mode settings onto the enforcer's resolver.
func modeConfig(cfg config.Config) enforce.ModeConfig {
	mc := enforce.ModeConfig{Preset: enforce.PresetStaging}
	if cfg.DefaultMode() == alert.ModeEnforce {
		mc.Preset = enforce.PresetProduction
	}
	conv := func(in map[string]config.ModeName) map[string]alert.Mode {
		if len(in) == 0 {
			return nil
		}
		out := make(map[string]alert.Mode, len(in))
		for k, v := range in {
			m, _ := alert.ParseMode(string(v))
			out[k] = m
		}
		return out
	}
	mc.Namespaces = conv(cfg.Modes.Namespaces)
	mc.Workloads = conv(cfg.Modes.Workloads)
	mc.Rules = conv(cfg.Modes.Rules)
	return mc
}

// Run processes events until ctx ends. It returns nil on a clean stop.
func (g *Guard) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	if g.profiles != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.syncProfiles(ctx, g.profiles)
		}()
	}
	if g.crdWatch != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.crdWatch.Run(ctx)
		}()
	}
	wg.Add(3)
	go func() {
		defer wg.Done()
		errc <- g.pipeline(ctx)
	}()
	go func() {
		defer wg.Done()
		if g.enforcer != nil {
			g.policyWorker(ctx.Done())
		}
	}()
	go func() {
		defer wg.Done()
		g.ticker(ctx)
	}()
	g.metrics.SetReady(func() error { return nil })
	g.log.Info("guard running", "mode", g.mode.String())
	err := g.sensor.Run(ctx, g.onEvent)
	cancel()
	wg.Wait()
	close(errc)
	for e := range errc {
		if e != nil && err == nil {
			err = e
		}
	}
	if errors.Is(err, sensor.ErrClosed) {
		err = nil
	}
	return err
}

// onEvent runs on the sensor's reader goroutine: enrichment must see
// fork/exec/exit in kernel order, so it happens here, then the event is
// handed to the pipeline without blocking.
func (g *Guard) onEvent(e *event.Event) {
	g.procs.Enrich(e)
	g.containers.Enrich(e)
	g.fillWorkload(e)
	g.notePolicies(e)
	g.noteLockTarget(e)
	select {
	case g.queue <- e:
	default:
		g.queueDropped.Add(1)
	}
}

// pipeline evaluates events in batches: one Wasm call per module per batch
// amortizes the call and deadline costs. A batch is whatever is queued, up
// to maxBatch, so latency stays low when the rate is low.
func (g *Guard) pipeline(ctx context.Context) error {
	const maxBatch = 256
	batch := make([]*event.Event, 0, maxBatch)
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-g.queue:
			batch = append(batch[:0], e)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case e := <-g.queue:
				batch = append(batch, e)
			default:
				break fill
			}
		}
		g.process(ctx, batch)
	}
}

func (g *Guard) process(ctx context.Context, batch []*event.Event) {
	if g.opt.OnEvent != nil || g.events != nil {
		for _, e := range batch {
			if g.opt.OnEvent != nil {
				g.opt.OnEvent(e)
			}
			if g.events != nil {
				_ = g.events.WriteEvent(e)
			}
		}
	}
	if g.rules != nil && g.mode != alert.ModeOff {
		start := time.Now()
		verdicts, err := g.rules.Evaluate(ctx, batch)
		g.batchLatency.Observe(time.Since(start).Seconds())
		if err != nil && ctx.Err() == nil {
			g.log.Warn("rule evaluation", "err", err)
		}
		for i := range verdicts {
			v := &verdicts[i]
			if v.Observation || v.Event < 0 || v.Event >= len(batch) {
				continue
			}
			g.onVerdict(batch[v.Event], v)
		}
	}
	if g.detector != nil {
		g.detMu.Lock()
		for _, e := range batch {
			g.seedVolumes(e)
			for _, a := range g.detector.Observe(e) {
				g.emitBaseline(&a)
			}
		}
		g.detMu.Unlock()
	}
}

// workloadOf names the enforcement unit an event belongs to.
func workloadOf(e *event.Event) enforce.Workload {
	w := enforce.Workload{Namespace: e.K8s.Namespace, Name: e.K8s.Workload}
	if w.Name == "" {
		w.Name = e.Container.Name
	}
	if w.Name == "" {
		w.Name = e.Container.ID
	}
	return w
}

// onVerdict turns a rule verdict into an alert, acting on it per the
// effective mode.
func (g *Guard) onVerdict(e *event.Event, v *rules.Verdict) {
	name := ""
	var tags []string
	if v.Rule != nil {
		name, tags = v.Rule.Name, v.Rule.Tags
	}
	w := workloadOf(e)
	mode := g.modes.Mode(w.Namespace, w.Name, name)
	action := v.Action
	if s, ok := g.cfg.Actions[name]; ok {
		action, _ = config.ParseAction(s)
	}
	if mode == alert.ModeOff || action == alert.ActionAllow {
		return
	}
	a := &alert.Alert{
		Time: e.Time, Rule: name, Priority: v.Priority, Message: v.Message, Tags: tags,
		Source: "rule", Mode: mode, Action: action, Fields: v.FieldValues(e), Event: e,
	}
	if action == alert.ActionKill || action == alert.ActionBlock {
		g.act(a, w, e)
	}
	g.emit(a)
}

// act carries out a kill or block verdict that userspace reached. The
// action already happened in the kernel (userspace sees events after the
// fact), so both become a verified pidfd kill of the process; decisions that
// must stop the action itself belong in the in-kernel fast path.
func (g *Guard) act(a *alert.Alert, w enforce.Workload, e *event.Event) {
	a.Backend = enforce.BackendPidfd.String()
	if g.enforcer == nil {
		return
	}
	if e.Proc.PID == 0 {
		return
	}
	rec, err := g.enforcer.Kill(w, a.Rule, e.Proc.PID, e.Proc.StartTime/1e7)
	a.Mode = rec.Mode
	a.Taken = rec.Denied
	if err != nil {
		g.killErrors.Add(1)
		if a.Fields == nil {
			a.Fields = map[string]any{}
		}
		a.Fields["vigil.enforce_error"] = err.Error()
	}
}

// onEnforceRecord receives in-kernel and fanotify decisions (the enforcer
// persists them for `vigil report would-block`).
func (g *Guard) onEnforceRecord(r enforce.Record) {
	if r.Backend == enforce.BackendPidfd {
		return // already reported by onVerdict
	}
	a := r.Alert()
	// Give the decision the same context as every other alert: process
	// ancestry, container, pod.
	e := &event.Event{Kind: r.Kind, Time: time.Now(),
		Proc: event.Process{PID: r.PID, TID: r.TID, Name: r.Comm, CgroupID: r.CgroupID}}
	switch r.Kind {
	case event.KindExec, event.KindOpen:
		e.File.Path = r.Path
		if e.File.Path == "" {
			e.File.Path = r.Name
		}
	case event.KindConnect, event.KindBind:
		e.Net.Dst = netip.AddrPortFrom(r.Addr, r.Port)
	}
	if g.procs != nil {
		g.procs.Enrich(e)
	}
	if g.containers != nil {
		g.containers.Enrich(e)
	}
	a.Event = e
	a.Time = e.Time
	g.emit(&a)
}

// emitBaseline delivers a behavior alert unless it is below the configured
// floor (it was still learned and counted by the detector).
func (g *Guard) emitBaseline(a *alert.Alert) {
	if a.Priority > g.baselineFloor {
		g.baselineQuiet.Add(1)
		return
	}
	g.emit(a)
}

// emit deduplicates and delivers one alert.
func (g *Guard) emit(a *alert.Alert) {
	if a.Time.IsZero() {
		a.Time = time.Now()
	}
	if !g.dedup.Admit(a, a.Time) {
		return
	}
	g.alerts.Add(1)
	if g.opt.OnAlert != nil {
		g.opt.OnAlert(a)
	}
	if g.out != nil {
		g.out.Send(a)
	}
}

// ticker drives time-based work: dedup summaries and the detector's
// persistence and burst escalations.
func (g *Guard) ticker(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, a := range g.dedup.Flush(now) {
				g.alerts.Add(1)
				if g.opt.OnAlert != nil {
					g.opt.OnAlert(a)
				}
				g.out.Send(a)
			}
			if g.detector != nil {
				g.detMu.Lock()
				as := g.detector.Tick(now)
				g.detMu.Unlock()
				for i := range as {
					g.emitBaseline(&as[i])
				}
				g.syncLocks()
			}
		}
	}
}

// Close stops everything in reverse start-up order. Safe to call twice.
func (g *Guard) Close() error {
	g.closeOnce.Do(func() {
		var errs []error
		add := func(err error) {
			if err != nil {
				errs = append(errs, err)
			}
		}
		if g.sensor != nil {
			add(g.sensor.Close())
		}
		if g.out != nil {
			add(g.out.Close())
		}
		// The watcher feeds the detector: it stops first.
		if g.crdWatch != nil {
			add(g.crdWatch.Close())
		}
		if g.detector != nil {
			add(g.detector.Close())
		}
		if g.profiles != nil {
			add(g.profiles.Close())
		}
		if g.bstore != nil {
			add(g.bstore.Close())
		}
		if g.rules != nil {
			add(g.rules.Close())
		}
		if g.containers != nil {
			add(g.containers.Close())
		}
		if g.procs != nil {
			add(g.procs.Close())
		}
		if g.enforcer != nil {
			add(g.enforcer.Close())
		}
		if g.metrics != nil {
			add(g.metrics.Close())
		}
		g.closeErr = errors.Join(errs...)
	})
	return g.closeErr
}
