package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilsec/vigil/guard/event"
)

// Config tunes a Resolver. The zero value works on a standard node.
type Config struct {
	// Cgroup2Root is the cgroup2 mount; empty means find it in
	// /proc/self/mountinfo.
	Cgroup2Root string
	// ProcRoot is where /proc is mounted (default "/proc").
	ProcRoot string
	// StateRoots are runc state dirs for plain runc containers (default
	// DefaultStateRoots()).
	StateRoots []StateRoot
	// MinRescan bounds how often a cache miss may trigger a full walk of the
	// cgroup2 tree and the state roots (default 250ms).
	MinRescan time.Duration
	// Sources are asked in order for names and images; none means no
	// metadata (cgroup-derived fields are still filled).
	Sources []MetadataSource
	// QueueSize bounds pending metadata lookups (default 256); a full queue
	// drops the request, counted, and it is retried on a later event.
	QueueSize int
	// LookupTimeout bounds one source lookup (default 2s).
	LookupTimeout time.Duration
	// RetryAfter is how long a container whose lookup found nothing waits
	// before it is looked up again (default 5s).
	RetryAfter time.Duration
	// Now is the clock (default time.Now); tests replace it.
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.ProcRoot == "" {
		c.ProcRoot = "/proc"
	}
	if c.StateRoots == nil {
		c.StateRoots = DefaultStateRoots()
	}
	if c.MinRescan == 0 {
		c.MinRescan = 250 * time.Millisecond
	}
	if c.QueueSize == 0 {
		c.QueueSize = 256
	}
	if c.LookupTimeout == 0 {
		c.LookupTimeout = 2 * time.Second
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = 5 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Stats are the Resolver's counters. Every event that leaves without full
// context is counted in exactly one miss counter.
type Stats struct {
	Events        uint64 // events seen by Enrich
	HostEvents    uint64 // events from host (non-container) cgroups
	CacheHits     uint64 // cgroup id found in the cache
	Rescans       uint64 // full walks of the cgroup2 tree
	RescanLimited uint64 // misses that could not rescan (rate limit)
	PidFallbacks  uint64 // resolved via /proc/<pid>/cgroup
	Unresolved    uint64 // cgroup id unknown even after rescan and fallback
	BadStateFiles uint64 // unreadable or malformed runc state.json

	MetaPending    uint64 // container events emitted before metadata arrived
	MetaMissing    uint64 // container events whose lookup found nothing
	MetaIncomplete uint64 // container events with metadata lacking image or name
	MetaLookups    uint64 // lookups run by the worker
	MetaFound      uint64
	MetaNotFound   uint64 // no source knew the container
	MetaErrors     uint64 // source errors (timeouts, connection failures)
	QueueDrops     uint64 // lookups dropped because the queue was full

	// WarmTimeouts are containers Warm could not resolve before its
	// deadline (handed to the worker); WarmErrors are failed start-up walks.
	WarmTimeouts uint64
	WarmErrors   uint64
}

// Record is what the Resolver knows about one cgroup.
type Record struct {
	CgroupID uint64
	// Path is relative to the cgroup2 mount, e.g. "/system.slice/x.scope".
	Path string
	PathInfo
	meta *metaEntry // nil on the host

	// A cgroup that looks like the host's may be a runc container whose
	// state.json is not written yet (its init runs before runc saves
	// state), so such records are rebuilt a few times before they are
	// trusted. recheckAt is unix nanos; rechecks counts down.
	recheckAt atomic.Int64
	rechecks  atomic.Int32
}

// hostRechecks is how many times a host-looking record is rebuilt, and
// firstRecheck the delay before the first time; each later delay doubles.
// Plain runc writes its state file only after the container's init runs, so
// the first events of a new container look like host events: rechecking
// after 10, 20, 40 ... ms (about 10 s in all) attributes a `runc exec`
// arriving a few milliseconds later to its container.
const (
	hostRechecks = 10
	firstRecheck = 10 * time.Millisecond
)

// Metadata returns the container's runtime metadata once the background
// lookup has completed.
func (r *Record) Metadata() (Metadata, bool) {
	if r.meta == nil {
		return Metadata{}, false
	}
	m := r.meta.meta.Load()
	if m == nil {
		return Metadata{}, false
	}
	return *m, true
}

// Lookup states of a metaEntry.
const (
	metaIdle int32 = iota
	metaQueued
	metaDone
	metaFailed
)

// metaEntry holds one container's metadata, shared by all its cgroups.
type metaEntry struct {
	info    PathInfo
	meta    atomic.Pointer[Metadata]
	state   atomic.Int32
	retryAt atomic.Int64 // unix nanos, for metaFailed
}

// Resolver maps cgroup ids to containers and pods. It is safe for
// concurrent use. Enrich never waits on a runtime API: metadata is fetched
// by one background goroutine and appears on later events.
type Resolver struct {
	cfg Config

	mu      sync.RWMutex
	records map[uint64]*Record    // cgroup id → record, for ids seen in events
	paths   map[uint64]string     // last walk: cgroup id → path
	states  map[string]stateEntry // last scan: cgroup path → runc state
	stateID map[string]stateEntry // last scan: container id → runc state
	metas   map[string]*metaEntry // container id → metadata

	scanMu   sync.Mutex // serialises rescans
	lastScan atomic.Int64
	// lastStateScan rate-limits the cheap state-roots-only scan rechecks use.
	lastStateScan atomic.Int64

	queue     chan *metaEntry
	ctx       context.Context // cancelled by Close, parent of lookups
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	stats struct {
		events, host, hits, rescans, limited, pidFallbacks, unresolved, badState atomic.Uint64
		pending, missing, incomplete, lookups, found, notFound, errs, drops      atomic.Uint64
		warmTimeouts, warmErrs                                                   atomic.Uint64
	}
}

// New returns a Resolver and starts its metadata worker. The first cgroup
// walk happens here so the first events hit the cache.
func New(cfg Config) (*Resolver, error) {
	cfg.defaults()
	if cfg.Cgroup2Root == "" {
		root, err := Cgroup2Mount()
		if err != nil {
			return nil, fmt.Errorf("container resolver: %w", err)
		}
		cfg.Cgroup2Root = root
	}
	if _, err := os.Stat(filepath.Join(cfg.Cgroup2Root, "cgroup.procs")); err != nil {
		return nil, fmt.Errorf("container resolver: %s is not a cgroup2 mount: %w", cfg.Cgroup2Root, err)
	}
	r := &Resolver{
		cfg:     cfg,
		records: make(map[uint64]*Record),
		metas:   make(map[string]*metaEntry),
		queue:   make(chan *metaEntry, cfg.QueueSize),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if err := r.rescan(true); err != nil {
		return nil, err
	}
	r.wg.Add(1)
	go r.worker()
	return r, nil
}

// Close stops the metadata worker and closes the sources. It is safe to
// call twice.
func (r *Resolver) Close() error {
	var errs []error
	r.closeOnce.Do(func() {
		r.cancel()
		r.wg.Wait()
		for _, s := range r.cfg.Sources {
			if err := s.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", s.Name(), err))
			}
		}
	})
	return errors.Join(errs...)
}

// Cgroup2Root returns the cgroup2 mount the Resolver walks.
func (r *Resolver) Cgroup2Root() string { return r.cfg.Cgroup2Root }

// Enrich fills ev.Container and ev.K8s from ev.Proc.CgroupID (or, when the
// kernel gave none or it is unknown, from /proc/<pid>/cgroup). Fields that
// are not known yet stay empty and are counted; they are never filled with
// placeholders.
func (r *Resolver) Enrich(ev *event.Event) {
	r.stats.events.Add(1)
	rec := r.Lookup(ev.Proc.CgroupID, ev.Proc.PID)
	if rec == nil || !rec.IsContainer() {
		if rec != nil {
			r.stats.host.Add(1)
		}
		return
	}
	ev.Container.ID = rec.ID
	ev.Container.Runtime = rec.Runtime
	ev.K8s.PodUID = rec.PodUID

	me := rec.meta
	m := me.meta.Load()
	if m == nil {
		switch me.state.Load() {
		case metaFailed:
			r.stats.missing.Add(1)
		default:
			r.stats.pending.Add(1)
		}
		r.request(me)
		return
	}
	ev.Container.Name = m.Name
	ev.Container.Image = m.Image
	ev.Container.ImageDigest = m.ImageDigest
	if ev.K8s.PodUID == "" {
		ev.K8s.PodUID = m.PodUID
	}
	ev.K8s.Pod = m.PodName
	ev.K8s.Namespace = m.PodNamespace
	ev.K8s.ContainerName = m.ContainerName
	ev.K8s.Revision = m.Revision
	if m.Image == "" || m.Name == "" || (ev.K8s.PodUID != "" && m.PodName == "") {
		r.stats.incomplete.Add(1)
	}
}

// Lookup returns the record for a cgroup id, rescanning (rate-limited) on a
// miss and falling back to /proc/<pid>/cgroup. It returns nil when nothing
// resolves; that is counted.
func (r *Resolver) Lookup(cgroupID uint64, pid uint32) *Record {
	if cgroupID != 0 {
		r.mu.RLock()
		rec := r.records[cgroupID]
		r.mu.RUnlock()
		if rec != nil {
			r.stats.hits.Add(1)
			if !rec.IsContainer() && rec.rechecks.Load() > 0 {
				return r.recheck(rec)
			}
			return rec
		}
		if rec := r.fromPaths(cgroupID); rec != nil {
			return rec
		}
		if err := r.rescan(false); err == nil {
			if rec := r.fromPaths(cgroupID); rec != nil {
				return rec
			}
		}
	}
	if pid != 0 {
		if rec := r.fromPid(cgroupID, pid); rec != nil {
			r.stats.pidFallbacks.Add(1)
			return rec
		}
	}
	r.stats.unresolved.Add(1)
	return nil
}

// recheck rebuilds a host-looking record once its recheck time has come,
// after a (rate-limited) rescan of the state roots.
func (r *Resolver) recheck(rec *Record) *Record {
	now := r.cfg.Now().UnixNano()
	if now < rec.recheckAt.Load() {
		return rec
	}
	r.rescanStates()
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur := r.records[rec.CgroupID]; cur != rec {
		if cur != nil {
			return cur
		}
		return rec
	}
	fresh := r.buildLocked(rec.CgroupID, rec.Path)
	if !fresh.IsContainer() {
		left := rec.rechecks.Load() - 1
		fresh.rechecks.Store(left)
		delay := firstRecheck << (hostRechecks - left)
		fresh.recheckAt.Store(r.cfg.Now().Add(delay).UnixNano())
	}
	r.records[rec.CgroupID] = fresh
	return fresh
}

// fromPaths builds and caches the record for an id the last walk saw.
func (r *Resolver) fromPaths(id uint64) *Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec := r.records[id]; rec != nil {
		return rec
	}
	path, ok := r.paths[id]
	if !ok {
		return nil
	}
	rec := r.buildLocked(id, path)
	r.records[id] = rec
	return rec
}

// fromPid resolves through /proc/<pid>/cgroup. The record is cached under
// cgroupID only when that id is the inode of the path /proc reports, so a
// task that moved cgroups since the event cannot poison the cache.
func (r *Resolver) fromPid(cgroupID uint64, pid uint32) *Record {
	b, err := os.ReadFile(filepath.Join(r.cfg.ProcRoot, fmt.Sprint(pid), "cgroup"))
	if err != nil {
		return nil
	}
	pc, err := ParseProcCgroup(b)
	if err != nil {
		return nil
	}
	path := pc.ContainerPath()
	if path == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	id := uint64(0)
	if pc.Unified == path {
		if got, err := CgroupID(filepath.Join(r.cfg.Cgroup2Root, path)); err == nil {
			id = got
		}
	}
	if id != 0 {
		if rec := r.records[id]; rec != nil {
			return rec
		}
	}
	rec := r.buildLocked(id, path)
	if id != 0 && id == cgroupID {
		r.records[id] = rec
	}
	return rec
}

// buildLocked derives a record from a path: the parser first, then runc
// state dirs for containers whose path says nothing (plain runc, ctr).
func (r *Resolver) buildLocked(id uint64, path string) *Record {
	rec := &Record{CgroupID: id, Path: path, PathInfo: ParsePath(path)}
	if !rec.IsContainer() {
		if st, ok := r.states[path]; ok {
			rec.Runtime, rec.ID, rec.Namespace = st.Runtime, st.ID, st.Namespace
		}
	} else if rec.Runtime == "" || (rec.Runtime == RuntimeContainerd && rec.Namespace == "") {
		// kubepods with the cgroupfs driver: the state dir names the runtime.
		if st, ok := r.stateID[rec.ID]; ok {
			rec.Runtime, rec.Namespace = st.Runtime, st.Namespace
		}
	}
	if !rec.IsContainer() && path != "/" {
		rec.rechecks.Store(hostRechecks)
		rec.recheckAt.Store(r.cfg.Now().Add(firstRecheck).UnixNano())
	}
	if rec.IsContainer() {
		me := r.metas[rec.ID]
		if me == nil {
			me = &metaEntry{info: rec.PathInfo}
			r.metas[rec.ID] = me
		}
		rec.meta = me
	}
	return rec
}

// rescan walks the cgroup2 tree and the runc state roots and swaps in the
// result; records of vanished cgroups and containers are dropped. Unless
// forced it runs at most once per MinRescan; a call within that interval
// returns errRateLimited.
func (r *Resolver) rescan(force bool) error {
	now := r.cfg.Now().UnixNano()
	if !force && now-r.lastScan.Load() < int64(r.cfg.MinRescan) {
		r.stats.limited.Add(1)
		return errRateLimited
	}
	r.scanMu.Lock()
	defer r.scanMu.Unlock()
	// Another caller may have rescanned while this one waited.
	if !force && now-r.lastScan.Load() < int64(r.cfg.MinRescan) {
		return nil
	}
	r.lastScan.Store(now)
	r.stats.rescans.Add(1)

	paths, err := walkCgroups(r.cfg.Cgroup2Root)
	if err != nil {
		return err
	}
	entries, bad := scanStateRoots(r.cfg.StateRoots, r.cfg.Cgroup2Root)
	r.stats.badState.Add(uint64(bad))
	states := make(map[string]stateEntry, len(entries))
	stateID := make(map[string]stateEntry, len(entries))
	for _, e := range entries {
		if e.CgroupPath != "" {
			states[e.CgroupPath] = e
		}
		stateID[e.ID] = e
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	r.paths, r.states, r.stateID = paths, states, stateID
	live := make(map[string]bool)
	for id, rec := range r.records {
		if p, ok := paths[id]; !ok || p != rec.Path {
			delete(r.records, id)
			continue
		}
		if rec.IsContainer() {
			live[rec.ID] = true
		}
	}
	for cid := range r.metas {
		if !live[cid] {
			delete(r.metas, cid)
		}
	}
	return nil
}

var errRateLimited = errors.New("rescan rate-limited")

// rescanStates re-reads only the runc state roots (no cgroup walk), at most
// once per firstRecheck: cheap enough for rechecking young host-looking
// cgroups, which is how plain runc containers get attributed.
func (r *Resolver) rescanStates() {
	now := r.cfg.Now().UnixNano()
	last := r.lastStateScan.Load()
	if now-last < int64(firstRecheck) || !r.lastStateScan.CompareAndSwap(last, now) {
		return
	}
	entries, bad := scanStateRoots(r.cfg.StateRoots, r.cfg.Cgroup2Root)
	r.stats.badState.Add(uint64(bad))
	r.mu.Lock()
	defer r.mu.Unlock()
	states := make(map[string]stateEntry, len(entries))
	stateID := make(map[string]stateEntry, len(entries))
	for _, e := range entries {
		if e.CgroupPath != "" {
			states[e.CgroupPath] = e
		}
		stateID[e.ID] = e
	}
	r.states, r.stateID = states, stateID
}

// request queues a metadata lookup for me unless one is queued, done, or
// failed recently.
func (r *Resolver) request(me *metaEntry) {
	if len(r.cfg.Sources) == 0 {
		return
	}
	switch me.state.Load() {
	case metaQueued, metaDone:
		return
	case metaFailed:
		if r.cfg.Now().UnixNano() < me.retryAt.Load() {
			return
		}
	}
	prev := me.state.Load()
	if prev == metaQueued || prev == metaDone || !me.state.CompareAndSwap(prev, metaQueued) {
		return
	}
	select {
	case r.queue <- me:
	default:
		me.state.Store(prev)
		r.stats.drops.Add(1)
	}
}

func (r *Resolver) worker() {
	defer r.wg.Done()
	for {
		select {
		case <-r.ctx.Done():
			return
		case me := <-r.queue:
			r.fetch(me)
		}
	}
}

func (r *Resolver) fetch(me *metaEntry) { r.fetchCtx(r.ctx, me) }

// fetchCtx asks each source in turn. It returns false, leaving me for the
// caller to requeue, when parent ended before an answer.
func (r *Resolver) fetchCtx(parent context.Context, me *metaEntry) bool {
	if parent.Err() != nil {
		return false
	}
	r.stats.lookups.Add(1)
	for _, src := range r.cfg.Sources {
		ctx, cancel := context.WithTimeout(parent, r.cfg.LookupTimeout)
		m, err := src.Lookup(ctx, me.info)
		cancel()
		switch {
		case err == nil:
			if m.Source == "" {
				m.Source = src.Name()
			}
			me.meta.Store(&m)
			me.state.Store(metaDone)
			r.stats.found.Add(1)
			return true
		case parent.Err() != nil:
			return false
		case errors.Is(err, ErrNotFound):
		default:
			r.stats.errs.Add(1)
		}
	}
	r.stats.notFound.Add(1)
	me.retryAt.Store(r.cfg.Now().Add(r.cfg.RetryAfter).UnixNano())
	me.state.Store(metaFailed)
	return true
}

// Stats returns a snapshot of the counters.
func (r *Resolver) Stats() Stats {
	s := &r.stats
	return Stats{
		Events: s.events.Load(), HostEvents: s.host.Load(), CacheHits: s.hits.Load(),
		Rescans: s.rescans.Load(), RescanLimited: s.limited.Load(),
		PidFallbacks: s.pidFallbacks.Load(), Unresolved: s.unresolved.Load(),
		BadStateFiles: s.badState.Load(),
		MetaPending:   s.pending.Load(), MetaMissing: s.missing.Load(), MetaIncomplete: s.incomplete.Load(),
		MetaLookups: s.lookups.Load(), MetaFound: s.found.Load(), MetaNotFound: s.notFound.Load(),
		MetaErrors: s.errs.Load(), QueueDrops: s.drops.Load(),
		WarmTimeouts: s.warmTimeouts.Load(), WarmErrors: s.warmErrs.Load(),
	}
}
