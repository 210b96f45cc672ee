package baseline

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"sort"
	"strconv"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/guard/profile"
)

// Config tunes learning and scoring. Zero fields take the defaults noted.
type Config struct {
	// MinLearn is the shortest learning window of a first revision (30m);
	// StableAfter is how long no new behavior must appear before the
	// profile is ready (10m); MaxLearn forces ready regardless (24h).
	MinLearn, StableAfter, MaxLearn time.Duration
	// InheritedMinLearn and InheritedStableAfter apply to a revision that
	// inherited its predecessor's profile and learns only the difference
	// (5m each).
	InheritedMinLearn, InheritedStableAfter time.Duration
	// RevisionGrace is how long after admission a revision that inherited
	// its predecessor's profile counts as young and its deviations are
	// scored down (48h). A first revision is never young once ready.
	RevisionGrace time.Duration
	// Mode is the guard's mode; in audit mode an exec outside a locked
	// profile yields a "would have blocked" alert.
	Mode alert.Mode
	// Location is the time zone for hours of activity (UTC).
	Location *time.Location
	// RateFloor is the smallest per-minute fork or exec count that can be
	// anomalous (60); LoadRateFloor the same for connect and open (600),
	// which scale with request load while process creation does not;
	// (60); RateK the number of standard deviations above the mean (6);
	// MinRateMinutes how many learned minutes a distribution needs (10).
	RateFloor      uint32
	LoadRateFloor  uint32
	RateK          float64
	MinRateMinutes uint32
	// ComboWindow is how close in time deviations must be to combine (15m);
	// ComboMinBurst how many consecutive anomalous fork/exec minutes make a
	// sustained burst (3).
	ComboWindow   time.Duration
	ComboMinBurst int
	// KeepInfo disables folding informational deviations into the profile.
	KeepInfo bool
	// FlushEvery is how often Tick writes changed profiles to the store (30s).
	FlushEvery time.Duration
	// MaxDeviations bounds open deviations kept for deduplication (10000);
	// beyond it new deviations are dropped and counted.
	MaxDeviations int
	// KeepRevisions is how many revisions per workload container keep a
	// profile (3); older ones without running containers are deleted.
	KeepRevisions int
	// DeviationTTL is how long a deviation that stopped recurring is kept
	// for deduplication (24h); a recurrence after that alerts afresh.
	DeviationTTL time.Duration
	// Weights are the scoring constants (DefaultWeights).
	Weights *Weights
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.MinLearn, 30*time.Minute)
	def(&c.StableAfter, 10*time.Minute)
	def(&c.MaxLearn, 24*time.Hour)
	def(&c.InheritedMinLearn, 5*time.Minute)
	def(&c.InheritedStableAfter, 5*time.Minute)
	def(&c.RevisionGrace, 48*time.Hour)
	def(&c.ComboWindow, 15*time.Minute)
	def(&c.FlushEvery, 30*time.Second)
	def(&c.DeviationTTL, 24*time.Hour)
	if c.KeepRevisions == 0 {
		c.KeepRevisions = 3
	}
	if c.Location == nil {
		c.Location = time.UTC
	}
	if c.RateFloor == 0 {
		c.RateFloor = 60
	}
	if c.LoadRateFloor == 0 {
		c.LoadRateFloor = 600
	}
	if c.RateK == 0 {
		c.RateK = 6
	}
	if c.MinRateMinutes == 0 {
		c.MinRateMinutes = 10
	}
	if c.ComboMinBurst == 0 {
		c.ComboMinBurst = 3
	}
	if c.MaxDeviations == 0 {
		c.MaxDeviations = 10000
	}
	if c.Weights == nil {
		w := DefaultWeights()
		c.Weights = &w
	}
	return c
}

// Errors callers decide on.
var (
	ErrNotReady = errors.New("profile is still learning")
	ErrClosed   = errors.New("detector closed")
)

// Stats counts what the detector did; nothing is dropped without a count.
type Stats struct {
	Events     uint64 // events observed
	Ignored    uint64 // host events, not attributable to a workload
	Learned    uint64 // behaviors folded into profiles (learning and info)
	Deviations uint64 // deviations opened
	Alerts     uint64 // alerts returned (new or escalated)
	Repeats    uint64 // repeats folded into an existing deviation
	Dropped    uint64 // deviations dropped because MaxDeviations was reached
	FlushErr   uint64 // failed store writes
	Pruned     uint64 // old revisions' profiles deleted
	Expired    uint64 // deviations forgotten after DeviationTTL
}

// Summary describes one profile for listings.
type Summary struct {
	Key       profile.Key `json:"key"`
	State     State       `json:"state"`
	Parent    string      `json:"parent,omitempty"`
	Created   time.Time   `json:"created"`
	ReadyAt   time.Time   `json:"ready_at,omitzero"`
	LastNew   time.Time   `json:"last_new"`
	Behaviors int         `json:"behaviors"`
	Learned   uint64      `json:"learned"`
	Events    uint64      `json:"events"`
}

// Summarize describes p for listings.
func Summarize(p *Profile) Summary {
	return Summary{Key: p.Key, State: p.State, Parent: p.Parent, Created: p.Created,
		ReadyAt: p.ReadyAt, LastNew: p.LastNew, Behaviors: len(p.Behaviors()),
		Learned: p.Learned, Events: p.Events}
}

// Detector learns per-revision profiles from events and scores deviations.
// It is safe for concurrent use.
type Detector struct {
	mu       sync.Mutex
	cfg      Config
	w        *Weights
	store    *Store
	now      func() time.Time
	closed   bool
	profs    map[profile.Key]*Profile
	dirty    map[profile.Key]struct{}
	windows  []profile.ReleaseWindow
	insts    map[string]*instance
	devs     map[devKey]*deviation
	dns      *lru.Cache[netip.Addr, string]
	flushed  time.Time
	flushErr error
	stats    Stats
}

type devKey struct {
	key profile.Key
	b   Behavior
}

// deviation is one open (workload revision, new behavior) finding: the
// unit of deduplication.
type deviation struct {
	b           Behavior
	first, last time.Time
	count       uint64
	// minutes counts the distinct minutes in which the behavior was seen:
	// persistence is recurrence over time, and one sweep that touches many
	// files of one pattern (a checkpoint unlinking relation files) is one
	// occurrence, not many.
	minutes     uint64
	lastMinute  int64
	f           Factors
	prio        alert.Priority
	emitted     bool
	emittedPrio alert.Priority
	learned     bool
	ev          *event.Event // the first event, as evidence
	detail      string
	dropped     bool // exec of a memfd or upper-layer file
	block       bool // exec outside a locked profile
}

// instance is one running container of a profile: per-minute counters and
// burst streaks are per instance so replicas do not add up.
type instance struct {
	key     profile.Key
	p       *Profile
	noK8s   bool // keyed without Kubernetes context (yet)
	cgroup  uint64
	minute  int64
	counts  [numRates]uint32
	streak  [numRates]int
	lastAno [numRates]time.Time
	last    time.Time
	// sampleAt is the count at which the current minute becomes
	// anomalous; the event that reaches it is kept as the rate's evidence.
	sampleAt [numRates]uint32
	sample   [numRates]*event.Event
}

// count bumps rate r and keeps the event that made the minute anomalous.
func (in *instance) count(r int, ev *event.Event) {
	in.counts[r]++
	if in.counts[r] == in.sampleAt[r] {
		c := *ev
		in.sample[r] = &c
	}
}

// New returns a detector that keeps its profiles in store (nil for memory
// only) and loads those already there. now supplies time for calls that
// carry none (nil: time.Now); events carry their own.
//
// # Notes
//
// The detector does not own store: Close flushes to it, the caller closes it.
func New(cfg Config, store *Store, now func() time.Time) (*Detector, error) {
	cfg = cfg.withDefaults()
	if now == nil {
		now = time.Now
	}
	dns, err := lru.New[netip.Addr, string](4096)
	if err != nil {
		return nil, fmt.Errorf("dns cache: %w", err)
	}
	d := &Detector{cfg: cfg, w: cfg.Weights, store: store, now: now,
		profs: map[profile.Key]*Profile{}, dirty: map[profile.Key]struct{}{},
		insts: map[string]*instance{}, devs: map[devKey]*deviation{}, dns: dns}
	if store != nil {
		ps, err := store.List()
		if err != nil {
			return nil, fmt.Errorf("load profiles: %w", err)
		}
		for _, p := range ps {
			d.profs[p.Key] = p
		}
	}
	d.flushed = now()
	return d, nil
}

// Seed folds a container's manifest-derived expected behavior into its
// revision's profile, creating it (inheriting the predecessor's) if needed.
func (d *Detector) Seed(exp profile.Expected) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := exp.AdmittedAt
	if t.IsZero() {
		t = d.now()
	}
	p := d.profileFor(exp.Key, t)
	p.seed(&exp)
	d.dirty[p.Key] = struct{}{}
}

// SetWindows replaces the known release windows (the webhook's current
// list).
func (d *Detector) SetWindows(ws []profile.ReleaseWindow) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.windows = append(d.windows[:0], ws...)
	for _, p := range d.profs {
		if w := d.windowFor(p.Key); w != nil && p.AdmittedAt.IsZero() {
			p.AdmittedAt = w.Opened
			d.dirty[p.Key] = struct{}{}
		}
	}
}

// NoteDNS tells the detector that name resolved to addrs, so connections
// to them match egress declared by DNS name.
func (d *Detector) NoteDNS(name string, addrs ...netip.Addr) {
	for _, a := range addrs {
		d.dns.Add(a.Unmap(), name)
	}
}

// windowFor returns the latest release window that admitted k's revision.
func (d *Detector) windowFor(k profile.Key) *profile.ReleaseWindow {
	var best *profile.ReleaseWindow
	for i := range d.windows {
		w := &d.windows[i]
		if w.Workload.Namespace == k.Namespace && w.Workload.Workload == k.Workload && w.Revision == k.Revision {
			if best == nil || w.Opened.After(best.Opened) {
				best = w
			}
		}
	}
	return best
}

// profileFor returns k's profile, creating it on first sight. A new
// revision inherits its predecessor's profile: the one the release window
// names, else the newest profile of the same workload container. That is
// also how canaries teach a rollout: the first pods of a revision create
// and train the profile every later replica shares.
func (d *Detector) profileFor(k profile.Key, t time.Time) *Profile {
	if p := d.profs[k]; p != nil {
		return p
	}
	var prev *Profile
	w := d.windowFor(k)
	if w != nil && w.PrevRevision != "" {
		pk := k
		pk.Revision = w.PrevRevision
		prev = d.profs[pk]
	}
	if prev == nil {
		for _, q := range d.profs {
			if q.Key.Namespace == k.Namespace && q.Key.Workload == k.Workload &&
				q.Key.Container == k.Container && q.Key.Revision != k.Revision &&
				(prev == nil || q.Created.After(prev.Created)) {
				prev = q
			}
		}
	}
	var p *Profile
	if prev != nil {
		p = prev.inherit(k, t)
	} else {
		p = newProfile(k, t)
	}
	if w != nil {
		p.AdmittedAt = w.Opened
	}
	d.profs[k] = p
	d.dirty[k] = struct{}{}
	d.prune(k)
	return p
}

// prune deletes the oldest revisions of k's workload container beyond
// KeepRevisions, except revisions that still have running containers.
func (d *Detector) prune(k profile.Key) {
	var revs []*Profile
	for _, q := range d.profs {
		if q.Key.Namespace == k.Namespace && q.Key.Workload == k.Workload && q.Key.Container == k.Container {
			revs = append(revs, q)
		}
	}
	if len(revs) <= d.cfg.KeepRevisions {
		return
	}
	running := map[profile.Key]bool{}
	for _, in := range d.insts {
		running[in.key] = true
	}
	sort.Slice(revs, func(i, j int) bool { return revs[i].Created.After(revs[j].Created) })
	for _, q := range revs[d.cfg.KeepRevisions:] {
		if running[q.Key] || q.Key == k {
			continue
		}
		delete(d.profs, q.Key)
		delete(d.dirty, q.Key)
		for dk := range d.devs {
			if dk.key == q.Key {
				delete(d.devs, dk)
			}
		}
		if d.store != nil {
			if err := d.store.Delete(q.Key); err != nil {
				d.stats.FlushErr++
				d.flushErr = err
			}
		}
		d.stats.Pruned++
	}
}

const (
	oWronly = 0x1
	oRdwr   = 0x2
	oCreat  = 0x40
	oTrunc  = 0x200
	oAppend = 0x400
)

// Observe feeds one event and returns the alerts it raises: at most one per
// new (revision, behavior), plus one whenever a deviation's priority rises.
func (d *Detector) Observe(ev *event.Event) []alert.Alert {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.stats.Events++
	t := ev.Time
	if t.IsZero() {
		t = d.now()
	}
	// A container's profile key never changes, so the instance caches its
	// profile and the hot path hashes one string, not four.
	// The key is recomputed when Kubernetes context arrives after the
	// container's first events (the pod resolver can lag the sensor).
	in := d.insts[ev.Container.ID]
	if in == nil || d.profs[in.key] != in.p || (in.noK8s && ev.K8s.Workload != "") {
		k, ok := keyOf(ev)
		if !ok {
			d.stats.Ignored++
			return nil
		}
		if in == nil {
			in = &instance{minute: t.Unix() / 60}
			d.insts[ev.Container.ID] = in
		}
		in.key, in.noK8s = k, ev.K8s.Workload == ""
		in.p = d.profileFor(k, t)
	}
	p := in.p
	if ev.Proc.CgroupID != 0 {
		in.cgroup = ev.Proc.CgroupID
	}
	in.last = t
	var out []alert.Alert
	out = d.rollover(out, in, p, t)
	p.Events++

	switch ev.Kind {
	case event.KindFork:
		in.count(rateFork, ev)
	case event.KindExec:
		in.count(rateExec, ev)
		exe := ev.Proc.Exe
		if exe == "" && len(ev.Proc.Args) > 0 {
			exe = ev.Proc.Args[0]
		}
		if exe == "" {
			break
		}
		dropped := ev.Proc.ExeMemfd || ev.Proc.ExeUpper
		if _, ok := p.Execs[exe]; !ok {
			if !p.hasExec(exe) {
				// A new executable: its edge is part of the same finding
				// (the alert's event carries the ancestry) and is learned
				// or accepted with it, not alerted on separately.
				out = d.novel(out, p, Behavior{CatExec, exe}, ev, t, dropped)
				break
			}
			// Known by its bare name from the manifest: record the path,
			// which is what an exec allow-list needs.
			p.Execs[exe] = struct{}{}
			d.dirty[p.Key] = struct{}{}
		}
		out = d.observeName(out, p, exe, ev, t, dropped)
		if len(ev.Proc.Ancestors) > 0 {
			parent := ev.Proc.Ancestors[0].Exe
			if parent == "" {
				parent = ev.Proc.Ancestors[0].Name
			}
			var buf [256]byte
			e := append(append(append(buf[:0], parent...), '>'), exe...)
			if _, ok := p.Edges[string(e)]; !ok {
				out = d.novel(out, p, Behavior{CatEdge, string(e)}, ev, t, false)
			}
		}
	case event.KindOpen:
		in.count(rateOpen, ev)
		fp := ev.File.Path
		if fp == "" {
			break
		}
		if fp[0] != '/' {
			fp = path.Join(ev.Proc.Cwd, fp)
		}
		if ev.File.Flags&(oWronly|oRdwr|oCreat|oTrunc|oAppend) != 0 {
			if !p.Writes.Match(fp) {
				out = d.novel(out, p, Behavior{CatWrite, GeneralizePath(fp)}, ev, t, false)
			}
		} else if !p.Reads.Match(fp) {
			out = d.novel(out, p, Behavior{CatRead, GeneralizePath(fp)}, ev, t, false)
		}
	case event.KindUnlink, event.KindRename, event.KindLink, event.KindSymlink, event.KindChmod:
		for _, fp := range [2]string{ev.File.Path, ev.File.NewPath} {
			if fp == "" {
				continue
			}
			if fp[0] != '/' {
				fp = path.Join(ev.Proc.Cwd, fp)
			}
			if !p.Writes.Match(fp) {
				out = d.novel(out, p, Behavior{CatWrite, GeneralizePath(fp)}, ev, t, false)
			}
		}
	case event.KindConnect:
		in.count(rateConnect, ev)
		dst := ev.Net.Dst
		if !dst.IsValid() || dst.Addr().IsUnspecified() {
			break
		}
		dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
		name, _ := d.dns.Get(dst.Addr())
		if !p.hasPeer(dst, name) {
			out = d.novel(out, p, Behavior{CatConnect, dst.String()}, ev, t, false)
		}
	case event.KindListen, event.KindBind:
		port := ev.Net.Src.Port()
		if port == 0 || (ev.Kind == event.KindBind && ev.Net.SockType != 2) {
			break // an ephemeral bind, or a stream socket (its listen reports it)
		}
		proto := uint16(6)
		if ev.Kind == event.KindBind {
			proto = 17
		}
		if _, ok := p.Listen[listenKey(proto, port)]; !ok {
			out = d.novel(out, p, Behavior{CatListen, protoName(proto) + "/" + strconv.Itoa(int(port))}, ev, t, false)
		}
	case event.KindSetuid, event.KindSetgid, event.KindCapset, event.KindPtrace,
		event.KindMount, event.KindUmount, event.KindUnshare, event.KindSetns,
		event.KindModuleLoad, event.KindMemfd, event.KindPacketSocket, event.KindDupSocket:
		op := ev.Kind.String()
		if _, ok := p.Priv[op]; !ok {
			out = d.novel(out, p, Behavior{CatPriv, op}, ev, t, false)
		}
	}
	d.stats.Alerts += uint64(len(out))
	return out
}

// novel handles a behavior outside p: learn it while learning, else open or
// update its deviation and alert when it is new or its priority rose.
//
// # Notes
//
// An exec of a memfd or of a file written into the container after it
// started (overlay upper layer) is never learned silently, not even while
// learning: drop-and-exec is how payloads run, and learning it would make
// the profile bless the payload.
func (d *Detector) novel(out []alert.Alert, p *Profile, b Behavior, ev *event.Event, t time.Time, dropped bool) []alert.Alert {
	if p.State == StateLearning && p.Parent == "" && !dropped {
		d.learnWith(p, b, ev, t)
		return out
	}
	dk := devKey{p.Key, b}
	dv := d.devs[dk]
	if dv == nil {
		if len(d.devs) >= d.cfg.MaxDeviations {
			d.stats.Dropped++
			return out
		}
		evc := *ev
		dv = &deviation{b: b, first: t, ev: &evc, dropped: dropped,
			block: lockedExec(p, b) && d.cfg.Mode == alert.ModeAudit}
		d.devs[dk] = dv
		d.stats.Deviations++
	} else {
		d.stats.Repeats++
	}
	dv.seen(t)
	d.score(p, dv, t)
	if p.State == StateLearning {
		// An inherited revision still learning its difference: learn what
		// scores informational (a release explains it), alert on the rest.
		if dv.prio == alert.Informational && !dv.dropped {
			delete(d.devs, dk)
			d.learnWith(p, b, ev, t)
			return out
		}
	} else if dv.prio == alert.Informational && dv.f.Release < 1 && !d.cfg.KeepInfo && !lockedExec(p, b) && !dv.dropped && !dv.learned {
		// Benign enough, and explained by a release (the day-after-release
		// diagnostic): fold it in, but record it so the operator sees what
		// was learned. Unexplained info-level findings stay open.
		d.learnWith(p, b, ev, t)
		dv.learned = true
	}
	return d.emit(out, p, dv)
}

// execNamesOf returns the names an exec event ran its program by, as the
// exec lock checks them: the last component of proc.exec_path, and that
// of argv[0] (one leading '-', a login shell's, dropped), which a
// multi-call binary picks its behaviour from. Busybox running an applet
// in a child execs /proc/self/exe with argv[0] "sleep": "exe" is allowed
// for every allowed file and not a name, "sleep" is. Events without
// proc.exec_path (an older sensor, a recording) have argv[0] only.
//
// The names come back in an array, so the hot path (every exec) does not
// allocate; the first n are set.
func execNamesOf(ev *event.Event) (names [2]string, n int) {
	if ev == nil || ev.Kind != event.KindExec {
		return names, 0
	}
	if x := nameOf(ev.Proc.ExecPath); x != "" && x != reexecName {
		names[n] = x
		n++
	}
	if len(ev.Proc.Args) > 0 {
		x := nameOf(ev.Proc.Args[0])
		if len(x) > 1 && x[0] == '-' {
			x = x[1:]
		}
		if x != "" && x != reexecName && (n == 0 || names[0] != x) {
			names[n] = x
			n++
		}
	}
	return names, n
}

// observeName checks the name a known executable ran under. A new name of
// a file whose names are tracked is a new behavior, scored like a new
// executable: busybox as wget is not busybox as sh. A name the manifest
// gives a program is recorded for the file silently, as the manifest's
// bare executables are. An executable whose names are not tracked (learned
// before they were recorded) gets them while its profile learns, and is
// left alone after.
func (d *Detector) observeName(out []alert.Alert, p *Profile, exe string, ev *event.Event, t time.Time, dropped bool) []alert.Alert {
	tracked := p.tracksNames(exe)
	names, k := execNamesOf(ev)
	for _, name := range names[:k] {
		if _, ok := p.ExecNames[exe][name]; ok {
			continue
		}
		switch {
		case p.hasExecName(exe, name) || (!tracked && p.State == StateLearning):
			if p.addExecName(exe, name) {
				d.dirty[p.Key] = struct{}{}
			}
		case tracked:
			out = d.novel(out, p, Behavior{CatExecName, ExecName(exe, name)}, ev, t, dropped)
		}
	}
	return out
}

// lockedExec reports whether b is an exec outside p's final allow-list:
// the kernel denies it (or records that it would have), so it is never
// folded in silently, release or not; only an accept changes a lock.
func lockedExec(p *Profile, b Behavior) bool {
	return p.State == StateLocked && (b.Cat == CatExec || b.Cat == CatExecName)
}

// seen records one sighting at t.
func (dv *deviation) seen(t time.Time) {
	dv.count++
	dv.last = t
	if m := t.Unix() / 60; dv.minutes == 0 || m != dv.lastMinute {
		dv.minutes++
		dv.lastMinute = m
	}
}

// edgeOf returns the exec edge of an exec event, "" without ancestry.
func edgeOf(ev *event.Event) string {
	if ev == nil || ev.Kind != event.KindExec || len(ev.Proc.Ancestors) == 0 {
		return ""
	}
	parent := ev.Proc.Ancestors[0].Exe
	if parent == "" {
		parent = ev.Proc.Ancestors[0].Name
	}
	exe := ev.Proc.Exe
	if exe == "" && len(ev.Proc.Args) > 0 {
		exe = ev.Proc.Args[0]
	}
	return parent + ">" + exe
}

// learnWith folds b into p, and for a new executable also the exec edge
// and the name of the event that introduced it.
func (d *Detector) learnWith(p *Profile, b Behavior, ev *event.Event, t time.Time) {
	d.learn(p, b, t)
	if b.Cat != CatExec {
		return
	}
	if e := edgeOf(ev); e != "" {
		d.learn(p, Behavior{CatEdge, e}, t)
	}
	names, k := execNamesOf(ev)
	for _, n := range names[:k] {
		d.learn(p, Behavior{CatExecName, ExecName(b.Value, n)}, t)
	}
}

func (d *Detector) learn(p *Profile, b Behavior, t time.Time) {
	if grew, _ := p.Add(b); grew {
		d.stats.Learned++
		if p.State == StateLearning {
			p.LastNew = t
		}
		d.dirty[p.Key] = struct{}{}
	}
}

// score recomputes dv's factors and priority at time t.
func (d *Detector) score(p *Profile, dv *deviation, t time.Time) {
	w := d.w
	windowOpen := false
	if win := d.windowFor(p.Key); win != nil {
		windowOpen = win.Open(t)
	}
	admitted := p.AdmittedAt
	if admitted.IsZero() {
		admitted = p.Created
	}
	// Only a revision that inherited a predecessor's profile is young: its
	// release explains the difference. A first revision's deploy-time
	// novelty is what its learning window absorbed; once it is ready,
	// nothing released explains a new behavior, and discounting it for
	// RevisionGrace would fold a shell in a freshly learned container into
	// its profile as informational.
	age := time.Duration(-1)
	if p.Parent != "" {
		age = t.Sub(admitted)
	}
	share, known := p.HourActivity(t.In(d.cfg.Location).Hour())
	dv.f = Factors{
		Novelty:     w.novelty(dv.b, dv.dropped),
		Release:     w.releaseFactor(windowOpen, age, d.cfg.RevisionGrace),
		Hour:        w.hourFactor(share, known),
		Persistence: w.persistence(dv.minutes, dv.last.Sub(dv.first)),
	}
	dv.f.compute()
	dv.prio = PriorityFor(dv.f.Score)
}

// emit appends dv's alert when it was never emitted or its priority rose.
func (d *Detector) emit(out []alert.Alert, p *Profile, dv *deviation) []alert.Alert {
	if dv.emitted && dv.prio >= dv.emittedPrio {
		return out
	}
	dv.emitted, dv.emittedPrio = true, dv.prio
	return append(out, d.alertFor(p, dv))
}

var ruleNames = [...]string{
	CatExec: "baseline.new_exec", CatEdge: "baseline.new_exec_edge",
	CatRead: "baseline.new_file_read", CatWrite: "baseline.new_file_write",
	CatConnect: "baseline.new_egress", CatListen: "baseline.new_listen",
	CatPriv: "baseline.new_privilege_op", CatRate: "baseline.rate_anomaly",
	CatCombo: "baseline.combination", CatExecName: "baseline.new_exec_name",
}

func (d *Detector) alertFor(p *Profile, dv *deviation) alert.Alert {
	k := p.Key
	f := dv.f
	msg := fmt.Sprintf("%s outside baseline of %s (%s, score %.2f = novelty %.2f × release %.2f × hour %.2f × persistence %.2f; seen %d× since %s)",
		dv.b, FormatKey(k), p.State, f.Score, f.Novelty, f.Release, f.Hour, f.Persistence, dv.count, dv.first.UTC().Format(time.RFC3339))
	if dv.b.Cat == CatCombo {
		msg = fmt.Sprintf("%s in %s: %s; score %.2f", dv.b, FormatKey(k), dv.detail, f.Score)
	} else if dv.detail != "" {
		msg += "; " + dv.detail
	}
	if dv.learned {
		msg += "; folded into the baseline"
	}
	a := alert.Alert{
		Time: dv.last, Rule: ruleNames[dv.b.Cat], Priority: dv.prio, Message: msg,
		Tags: []string{"baseline", dv.b.Cat.String()}, Source: "baseline",
		Mode: d.cfg.Mode, Action: alert.ActionAlert, Event: dv.ev,
		Count: dv.count, FirstSeen: dv.first, LastSeen: dv.last,
		Fields: map[string]any{
			"baseline.behavior": dv.b.String(), "baseline.profile": FormatKey(k),
			"baseline.state": p.State.String(), "baseline.score": f.Score,
			"baseline.novelty": f.Novelty, "baseline.release": f.Release,
			"baseline.hour": f.Hour, "baseline.persistence": f.Persistence,
			"baseline.count": dv.count, "baseline.learned": dv.learned,
		},
	}
	if dv.learned {
		a.Tags = append(a.Tags, "learned")
	}
	if dv.block {
		a.Rule = "baseline.exec_not_allowed"
		a.Action = alert.ActionBlock
		// Audit mode only: in enforce mode the enforcer denies in the
		// kernel and reports its own block; this is the audit twin, what
		// a locked profile would have denied.
		a.Taken = false
	}
	if win := d.windowFor(k); win != nil {
		a.Deploy = &alert.DeployContext{Workload: k.Namespace + "/" + k.Workload, Revision: k.Revision,
			User: win.User, AdmittedAt: win.Opened, WindowOpen: win.Open(dv.last),
			Changed: append([]string(nil), win.Changed...)}
	} else if !p.AdmittedAt.IsZero() {
		a.Deploy = &alert.DeployContext{Workload: k.Namespace + "/" + k.Workload, Revision: k.Revision, AdmittedAt: p.AdmittedAt}
	}
	return a
}

// rollover closes in's finished minute: folds its counts into the learned
// distributions, or, for a ready profile, flags counts above them.
func (d *Detector) rollover(out []alert.Alert, in *instance, p *Profile, t time.Time) []alert.Alert {
	m := t.Unix() / 60
	if m <= in.minute {
		return out
	}
	end := time.Unix((in.minute+1)*60, 0).UTC()
	anomalous := false
	var total uint64
	for r := 0; r < numRates; r++ {
		c := in.counts[r]
		dist := &p.Rates[r]
		if p.State != StateLearning && dist.N >= d.cfg.MinRateMinutes &&
			float64(c) > d.threshold(r, dist) {
			in.streak[r]++
			in.lastAno[r] = end
			out = d.rateDeviation(out, p, in, r, c, end)
			anomalous = true
			continue
		}
		in.streak[r] = 0
		dist.Add(c)
		total += uint64(c)
	}
	// Hours of activity learn from normal minutes only, like the rates: an
	// attacker's burst must not make its own hour look busy.
	h := time.Unix(in.minute*60, 0).In(d.cfg.Location).Hour()
	p.HoursSeen |= 1 << h
	if !anomalous {
		p.Hours[h] += total
	}
	// Idle minutes count as zeros, but only a few: an instance that went
	// away must not drag the mean to zero.
	gap := m - in.minute - 1
	if gap > 10 {
		gap = 10
	}
	for ; gap > 0; gap-- {
		for r := 0; r < numRates; r++ {
			in.streak[r] = 0
			p.Rates[r].Add(0)
		}
	}
	for r := 0; r < numRates; r++ {
		in.sample[r] = nil
		in.sampleAt[r] = 0
		if p.State != StateLearning && p.Rates[r].N >= d.cfg.MinRateMinutes {
			in.sampleAt[r] = uint32(d.threshold(r, &p.Rates[r])) + 1
		}
	}
	in.counts = [numRates]uint32{}
	in.minute = m
	d.dirty[p.Key] = struct{}{}
	return out
}

func (d *Detector) threshold(r int, dist *Dist) float64 {
	if r == rateConnect || r == rateOpen {
		return dist.Threshold(d.cfg.LoadRateFloor, d.cfg.RateK)
	}
	return dist.Threshold(d.cfg.RateFloor, d.cfg.RateK)
}

func (d *Detector) rateDeviation(out []alert.Alert, p *Profile, in *instance, r int, c uint32, t time.Time) []alert.Alert {
	b := Behavior{CatRate, rateNames[r]}
	dk := devKey{p.Key, b}
	dv := d.devs[dk]
	if dv == nil {
		if len(d.devs) >= d.cfg.MaxDeviations {
			d.stats.Dropped++
			return out
		}
		dv = &deviation{b: b, first: t.Add(-time.Minute), ev: in.sample[r]}
		d.devs[dk] = dv
		d.stats.Deviations++
	}
	if dv.ev == nil {
		dv.ev = in.sample[r]
	}
	dist := &p.Rates[r]
	dv.seen(t)
	dv.detail = fmt.Sprintf("%d %s/min vs learned mean %.1f (threshold %.0f, z %.1f), %d consecutive minutes",
		c, rateNames[r], dist.Mean, d.threshold(r, dist), dist.Z(c), in.streak[r])
	d.score(p, dv, t)
	return d.emit(out, p, dv)
}

// Tick advances time: closes finished minutes (rate anomalies), evaluates
// combinations, moves profiles from learning to ready, and flushes changed
// profiles to the store. Call it every few seconds; replays call it with
// their own clock.
func (d *Detector) Tick(now time.Time) []alert.Alert {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	var out []alert.Alert
	for id, in := range d.insts {
		p := d.profs[in.key]
		if p == nil {
			delete(d.insts, id)
			continue
		}
		out = d.rollover(out, in, p, now)
		if now.Sub(in.last) > time.Hour {
			delete(d.insts, id)
		}
	}
	out = d.combos(out, now)
	for dk, dv := range d.devs {
		if now.Sub(dv.last) > d.cfg.DeviationTTL {
			delete(d.devs, dk)
			d.stats.Expired++
		}
	}
	for _, p := range d.profs {
		d.advance(p, now)
	}
	if now.Sub(d.flushed) >= d.cfg.FlushEvery {
		d.flushLocked(now)
	}
	d.stats.Alerts += uint64(len(out))
	return out
}

// advance moves a learning profile to ready once it has learned for its
// minimum window and no new behavior appeared for the stabilization period.
func (d *Detector) advance(p *Profile, now time.Time) {
	if p.State != StateLearning {
		return
	}
	minLearn, stable := d.cfg.MinLearn, d.cfg.StableAfter
	if p.Parent != "" {
		minLearn, stable = d.cfg.InheritedMinLearn, d.cfg.InheritedStableAfter
	}
	age := now.Sub(p.Created)
	if (age >= minLearn && now.Sub(p.LastNew) >= stable) || age >= d.cfg.MaxLearn {
		p.State = StateReady
		p.ReadyAt = now
		d.dirty[p.Key] = struct{}{}
	}
}

// combos raises a combination deviation for a profile with a sustained
// fork/exec burst together with new egress or a new privilege operation
// within ComboWindow. Each alone can be a load spike or a one-off; together
// they are the shape of an intrusion (a foothold calling out while it runs
// tools), so they score as one finding above either.
func (d *Detector) combos(out []alert.Alert, now time.Time) []alert.Alert {
	burst := map[profile.Key]*deviation{}
	for _, in := range d.insts {
		for _, r := range [2]int{rateFork, rateExec} {
			if in.streak[r] < d.cfg.ComboMinBurst || now.Sub(in.lastAno[r]) > d.cfg.ComboWindow {
				continue
			}
			dv := d.devs[devKey{in.key, Behavior{CatRate, rateNames[r]}}]
			if dv != nil && (burst[in.key] == nil || dv.f.Score > burst[in.key].f.Score) {
				burst[in.key] = dv
			}
		}
	}
	for k, bdv := range burst {
		var partner *deviation
		for dk, dv := range d.devs {
			if dk.key != k || (dk.b.Cat != CatConnect && dk.b.Cat != CatPriv) || dv.learned ||
				now.Sub(dv.last) > d.cfg.ComboWindow {
				continue
			}
			if partner == nil || dv.f.Score > partner.f.Score {
				partner = dv
			}
		}
		if partner == nil {
			continue
		}
		p := d.profs[k]
		b := Behavior{CatCombo, partner.b.Cat.String() + "+" + bdv.b.Value + "_burst"}
		dk := devKey{k, b}
		cdv := d.devs[dk]
		if cdv == nil {
			if len(d.devs) >= d.cfg.MaxDeviations {
				d.stats.Dropped++
				continue
			}
			first := partner.first
			if bdv.first.Before(first) {
				first = bdv.first
			}
			cdv = &deviation{b: b, first: first, ev: partner.ev}
			d.devs[dk] = cdv
			d.stats.Deviations++
		}
		cdv.count++
		cdv.last = now
		score := d.w.combine(partner.f.Score, bdv.f.Score)
		cdv.f = Factors{Novelty: score, Release: 1, Hour: 1, Persistence: 1, Score: score}
		cdv.prio = PriorityFor(score)
		cdv.detail = fmt.Sprintf("%s (score %.2f) together with %s (score %.2f: %s); combined = %.2f × (1 − (1−%.2f)(1−%.2f))",
			partner.b, partner.f.Score, bdv.b, bdv.f.Score, bdv.detail, d.w.ComboBoost, partner.f.Score, bdv.f.Score)
		out = d.emit(out, p, cdv)
	}
	return out
}

// Accept folds a reviewed behavior into k's profile and closes its
// deviation, so it stops alerting. Rate and combination findings only close.
func (d *Detector) Accept(k profile.Key, b Behavior) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	p := d.profs[k]
	if p == nil {
		return fmt.Errorf("accept %s: %s: %w", b, FormatKey(k), ErrNotFound)
	}
	grew, err := p.Add(b)
	if err != nil {
		return fmt.Errorf("accept %s: %w", b, err)
	}
	if dv := d.devs[devKey{k, b}]; dv != nil && b.Cat == CatExec {
		// The program was accepted as it ran: from its parent, under
		// its name.
		if e := edgeOf(dv.ev); e != "" {
			p.Add(Behavior{CatEdge, e})
		}
		names, k := execNamesOf(dv.ev)
		for _, n := range names[:k] {
			p.Add(Behavior{CatExecName, ExecName(b.Value, n)})
		}
	}
	if grew && b.Cat == CatExec && !p.tracksNames(b.Value) {
		// Accepted before it ran (or under no name): the path's own.
		p.addExecName(b.Value, nameOf(b.Value))
	}
	delete(d.devs, devKey{k, b})
	d.dirty[k] = struct{}{}
	if d.store != nil {
		if err := d.store.Put(p); err != nil {
			return fmt.Errorf("accept %s: persist: %w", b, err)
		}
		delete(d.dirty, k)
	}
	return nil
}

// Lock moves a ready profile to locked: its exec allow-list is final and
// execs outside it are block verdicts (audit: "would have blocked").
func (d *Detector) Lock(k profile.Key) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.profs[k]
	if p == nil {
		return fmt.Errorf("lock %s: %w", FormatKey(k), ErrNotFound)
	}
	if p.State == StateLearning {
		return fmt.Errorf("lock %s: %w", FormatKey(k), ErrNotReady)
	}
	p.State = StateLocked
	d.dirty[k] = struct{}{}
	return nil
}

// AllowedExecs returns the executable allow-list of a ready or locked
// profile.
func (d *Detector) AllowedExecs(k profile.Key) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.profs[k]
	if p == nil {
		return nil, fmt.Errorf("allowed execs %s: %w", FormatKey(k), ErrNotFound)
	}
	if p.State == StateLearning {
		return nil, fmt.Errorf("allowed execs %s: %w", FormatKey(k), ErrNotReady)
	}
	return p.AllowedExecs(), nil
}

// ExecAllowList maps each running container's cgroup id to the allow-list
// of its locked profile: what the enforcer writes into its BPF maps.
func (d *Detector) ExecAllowList() map[uint64][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[uint64][]string{}
	for _, in := range d.insts {
		if p := d.profs[in.key]; p != nil && p.State == StateLocked && in.cgroup != 0 {
			out[in.cgroup] = p.AllowedExecs()
		}
	}
	return out
}

// Profiles summarizes every profile, sorted by key.
func (d *Detector) Profiles() []Summary {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Summary, 0, len(d.profs))
	for _, p := range d.profs {
		out = append(out, Summarize(p))
	}
	sort.Slice(out, func(i, j int) bool { return FormatKey(out[i].Key) < FormatKey(out[j].Key) })
	return out
}

// Profile returns a copy of k's profile.
func (d *Detector) Profile(k profile.Key) (*Profile, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.profs[k]
	if p == nil {
		return nil, false
	}
	c := p.inherit(k, p.Created)
	c.Parent, c.State, c.Since, c.LastNew, c.ReadyAt, c.AdmittedAt, c.Learned =
		p.Parent, p.State, p.Since, p.LastNew, p.ReadyAt, p.AdmittedAt, p.Learned
	return c, true
}

// Deviations returns the current alert of every open deviation, with its
// counters, most severe first.
func (d *Detector) Deviations() []alert.Alert {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]alert.Alert, 0, len(d.devs))
	for dk, dv := range d.devs {
		if p := d.profs[dk.key]; p != nil {
			out = append(out, d.alertFor(p, dv))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Priority != out[j].Priority {
			return out[i].Priority < out[j].Priority
		}
		return out[i].FirstSeen.Before(out[j].FirstSeen)
	})
	return out
}

// Stats returns the counters.
func (d *Detector) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// FlushErr returns the last error writing to the store, nil if the last
// write succeeded. Tick flushes in the background of the guard's loop and
// has no error return, so the guard polls this (and Stats().FlushErr).
func (d *Detector) FlushErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.flushErr
}

// Flush writes changed profiles to the store now.
func (d *Detector) Flush() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.flushLocked(d.now())
}

func (d *Detector) flushLocked(now time.Time) error {
	d.flushed = now
	if d.store == nil || len(d.dirty) == 0 {
		return nil
	}
	ps := make([]*Profile, 0, len(d.dirty))
	for k := range d.dirty {
		if p := d.profs[k]; p != nil {
			ps = append(ps, p)
		}
	}
	if err := d.store.Put(ps...); err != nil {
		d.stats.FlushErr++
		d.flushErr = err
		return fmt.Errorf("flush profiles: %w", err)
	}
	d.flushErr = nil
	clear(d.dirty)
	return nil
}

// Close flushes profiles and stops the detector. It is safe to call twice;
// it does not close the store.
func (d *Detector) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	return d.flushLocked(d.now())
}
