// Package process owns Vigil's process table: who every pid is (name,
// executable, arguments, working directory, ids, cgroup) and who its
// ancestors are. Sensors report only what the kernel knows at the moment of
// an event; the table remembers exec-time facts so that a later open or
// connect from the same process can say which program did it and what
// spawned it.
//
// Entries are keyed by pid and start time, so a reused pid never inherits a
// dead process's identity. Exited processes linger briefly because events
// drained from the ring buffer after an exit must still resolve.
package process

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/vigilsec/vigil/guard/event"
)

// Defaults for Config.
const (
	// DefaultMaxAncestors bounds Proc.Ancestors. Eight links reach from a
	// container's shell back through its runtime shim on a typical node
	// while keeping per-event cost and alert size small.
	DefaultMaxAncestors = 8
	DefaultCapacity     = 1 << 17
	DefaultLinger       = 5 * time.Second
	DefaultMaxArgs      = 64
)

// Linux fixes USER_HZ at 100 for the /proc ABI, so start times in /proc
// are in 10 ms ticks.
const tickNs = 1e9 / 100

// noLoginUID is the kernel's "unset" audit login uid.
const noLoginUID = 0xffffffff

// Config tunes a Table. The zero value is valid.
type Config struct {
	// Capacity bounds the number of processes kept (default 131072); the
	// least recently seen are evicted first.
	Capacity int
	// MaxAncestors bounds Proc.Ancestors (default DefaultMaxAncestors).
	MaxAncestors int
	// Linger keeps exited processes resolvable this long (default 5s).
	Linger time.Duration
	// MaxArgs bounds arguments read from /proc (default 64).
	MaxArgs int
	// ProcRoot is the /proc mount (default "/proc").
	ProcRoot string
	// Cgroup2Root is the cgroup2 mount, used to derive cgroup ids of
	// processes read from /proc; empty means find it in mountinfo, and none
	// found means such processes carry cgroup id 0. The guard passes the
	// container resolver's mount so both agree.
	Cgroup2Root string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Stats are the table's counters.
type Stats struct {
	Entries       int    // processes in the table now
	Lookups       uint64 // events enriched
	Hits          uint64 // event's process found in the table
	ProcReads     uint64 // misses resolved from /proc
	ProcMisses    uint64 // misses /proc could not resolve either (already gone)
	ParentReads   uint64 // ancestors resolved from /proc
	ParentMissing uint64 // ancestry chains cut short by an unknown parent
	Evictions     uint64 // entries evicted for capacity
	Expired       uint64 // exited entries removed after lingering
	ClockAdopted  uint64 // /proc entries matched despite a start-time mismatch
}

// Key identifies one process over time: pid plus start time in clock ticks.
type Key struct {
	PID   uint32
	Start uint64
}

// entry is one process. Fields are guarded by Table.mu.
type entry struct {
	pid, ppid uint32
	start     uint64 // clock ticks since boot
	// parent links to the process that forked this one, as seen at fork
	// time. The link survives the parent's exit and reparenting on purpose:
	// a daemonised shell still shows the server that spawned it.
	parent *entry

	name, exe, cwd string
	args           []string
	argsTruncated  bool
	uid, gid       uint32
	euid, egid     uint32
	loginUID       uint32
	cgroupID       uint64
	exitedAt       int64 // unix nanos, 0 while running
	fromProc       bool  // built from /proc (start time on the boottime clock)
}

func (e *entry) key() Key { return Key{e.pid, e.start} }

// Table is the process table. It is safe for concurrent use; every method
// takes one mutex, so callers on the event path should use one goroutine
// per CPU at most.
type Table struct {
	cfg  Config
	proc procReader

	mu     sync.Mutex
	lru    *simplelru.LRU[Key, *entry]
	byPID  map[uint32]*entry // the newest generation of each pid
	linger []*entry          // exited entries in exit order

	evictions                                                        uint64 // under mu (callback)
	lookups, hits, procReads, procMisses, parentReads, parentMissing atomic.Uint64
	expired, clockAdopted                                            atomic.Uint64
}

// New returns an empty table. Call Bootstrap to load running processes.
func New(cfg Config) (*Table, error) {
	if cfg.Capacity <= 0 {
		cfg.Capacity = DefaultCapacity
	}
	if cfg.MaxAncestors <= 0 {
		cfg.MaxAncestors = DefaultMaxAncestors
	}
	if cfg.Linger <= 0 {
		cfg.Linger = DefaultLinger
	}
	if cfg.MaxArgs <= 0 {
		cfg.MaxArgs = DefaultMaxArgs
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.Cgroup2Root == "" {
		cfg.Cgroup2Root = findCgroup2("/proc/self/mountinfo")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	t := &Table{
		cfg:   cfg,
		proc:  procReader{root: cfg.ProcRoot, cgroup2Root: cfg.Cgroup2Root, maxArgs: cfg.MaxArgs},
		byPID: make(map[uint32]*entry, min(cfg.Capacity, 4096)),
	}
	lru, err := simplelru.NewLRU[Key, *entry](cfg.Capacity, t.onEvict)
	if err != nil {
		return nil, fmt.Errorf("process table: %w", err)
	}
	t.lru = lru
	return t, nil
}

func (t *Table) onEvict(_ Key, e *entry) {
	t.evictions++
	if t.byPID[e.pid] == e {
		delete(t.byPID, e.pid)
	}
}

// Bootstrap loads every process currently in /proc and links parents. It
// returns how many were loaded. Processes that exit mid-scan are skipped.
func (t *Table) Bootstrap() (int, error) {
	pids, err := t.proc.pids()
	if err != nil {
		return 0, err
	}
	loaded := make([]*entry, 0, len(pids))
	for _, pid := range pids {
		e, err := t.proc.read(pid)
		if err != nil {
			if errors.Is(err, ErrNoProcess) || errors.Is(err, ErrBadProcFile) {
				continue
			}
			return 0, err
		}
		loaded = append(loaded, e)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range loaded {
		t.insertLocked(e)
	}
	for _, e := range loaded {
		if p := t.byPID[e.ppid]; p != nil && p != e && p.start <= e.start {
			e.parent = p
		}
	}
	return len(loaded), nil
}

// insertLocked adds e as the newest generation of its pid.
func (t *Table) insertLocked(e *entry) {
	t.lru.Add(e.key(), e)
	t.byPID[e.pid] = e
}

// Enrich updates the table from ev (fork, exec, exit) and fills what the
// table knows into ev.Proc: Exe, Args, Cwd when the sensor left them empty,
// PPID and CgroupID when zero, and Ancestors (nearest first, at most
// MaxAncestors).
func (t *Table) Enrich(ev *event.Event) {
	t.lookups.Add(1)
	p := &ev.Proc
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Now().UnixNano()
	t.expireLocked(now)

	var e *entry
	switch ev.Kind {
	case event.KindFork:
		e = t.forkLocked(p)
	case event.KindExec:
		e = t.execLocked(p)
	default:
		e = t.findLocked(p.PID, p.StartTime)
		if ev.Kind == event.KindExit && e != nil && e.exitedAt == 0 {
			e.exitedAt = now
			t.linger = append(t.linger, e)
		}
	}
	if e == nil {
		p.Ancestors = p.Ancestors[:0]
		return
	}
	if p.Exe == "" {
		p.Exe = e.exe
	}
	if len(p.Args) == 0 {
		p.Args, p.ArgsTruncated = e.args, e.argsTruncated
	}
	if p.Cwd == "" {
		p.Cwd = e.cwd
	}
	if p.Name == "" {
		p.Name = e.name
	}
	if p.PPID == 0 {
		p.PPID = e.ppid
	}
	if p.CgroupID == 0 {
		p.CgroupID = e.cgroupID
	}
	p.Ancestors = t.ancestorsLocked(e, p.Ancestors[:0])
}

// findLocked returns the process (pid, startNs), reading /proc on a miss.
// startNs 0 means "whichever process has this pid now".
func (t *Table) findLocked(pid uint32, startNs uint64) *entry {
	if pid == 0 {
		return nil
	}
	ticks := startNs / tickNs
	if startNs != 0 {
		if e, ok := t.lru.Get(Key{pid, ticks}); ok {
			t.hits.Add(1)
			return e
		}
	}
	if e := t.byPID[pid]; e != nil {
		switch {
		case startNs == 0 || absDiff(e.start, ticks) <= 1:
			// ±1 tick: the kernel truncates ns to ticks for /proc.
			t.lru.Get(e.key())
			t.hits.Add(1)
			return e
		case e.fromProc && e.exitedAt == 0:
			// /proc reports start_boottime; a sensor reading start_time
			// (monotonic) differs by time spent suspended. A running
			// /proc-built entry for this pid is the same process unless
			// its exit was missed, which the sensor counts as a drop.
			t.clockAdopted.Add(1)
			t.lru.Get(e.key())
			t.hits.Add(1)
			return e
		}
	}
	e, err := t.proc.read(pid)
	if err != nil {
		t.procMisses.Add(1)
		return nil
	}
	if startNs != 0 && absDiff(e.start, ticks) > 1 {
		// A different process now has this pid; the one the event is
		// about is gone. (Sensors must report start_boottime, the clock
		// /proc uses; with start_time the two differ by time suspended.)
		t.procMisses.Add(1)
		return nil
	}
	t.procReads.Add(1)
	if p := t.byPID[e.ppid]; p != nil && p.start <= e.start {
		e.parent = p
	}
	t.insertLocked(e)
	return e
}

// forkLocked records a new process. The child inherits the parent's
// executable, arguments, working directory and cgroup until it execs.
func (t *Table) forkLocked(p *event.Process) *entry {
	parent := t.findLocked(p.PPID, 0)
	// Per-CPU ring buffers can deliver the child's exec before its fork;
	// the exec already made the entry, which must not be overwritten with
	// the parent's program.
	if e, ok := t.lru.Get(Key{p.PID, p.StartTime / tickNs}); ok && p.StartTime != 0 {
		if e.parent == nil && parent != nil && parent != e {
			e.parent = parent
		}
		return e
	}
	e := &entry{
		pid: p.PID, ppid: p.PPID, start: p.StartTime / tickNs, parent: parent,
		name: p.Name, uid: p.UID, gid: p.GID, euid: p.EUID, egid: p.EGID,
		loginUID: p.LoginUID, cgroupID: p.CgroupID,
	}
	if parent != nil {
		e.exe, e.args, e.argsTruncated, e.cwd = parent.exe, parent.args, parent.argsTruncated, parent.cwd
		if e.name == "" {
			e.name = parent.name
		}
		if e.cgroupID == 0 {
			e.cgroupID = parent.cgroupID
		}
	}
	t.insertLocked(e)
	return e
}

// execLocked updates (or creates) the process with the new program.
func (t *Table) execLocked(p *event.Process) *entry {
	e := t.findLocked(p.PID, p.StartTime)
	if e == nil {
		e = &entry{pid: p.PID, ppid: p.PPID, start: p.StartTime / tickNs}
		if par := t.findLocked(p.PPID, 0); par != nil && (p.StartTime == 0 || par.start <= e.start) {
			e.parent = par
			e.cwd = par.cwd
		}
		t.insertLocked(e)
	}
	if p.Name != "" {
		e.name = p.Name
	}
	e.exe, e.args, e.argsTruncated = p.Exe, p.Args, p.ArgsTruncated
	if p.Cwd != "" {
		e.cwd = p.Cwd
	} else if cwd := t.proc.cwd(p.PID); cwd != "" {
		// exec does not change the cwd, but the process may have called
		// chdir since fork, which no sensor reports.
		e.cwd = cwd
	}
	if p.PPID != 0 {
		e.ppid = p.PPID
	}
	e.uid, e.gid, e.euid, e.egid, e.loginUID = p.UID, p.GID, p.EUID, p.EGID, p.LoginUID
	if p.CgroupID != 0 {
		e.cgroupID = p.CgroupID
	}
	return e
}

// ancestorsLocked appends e's parent chain, nearest first.
func (t *Table) ancestorsLocked(e *entry, out []event.Ancestor) []event.Ancestor {
	if cap(out) == 0 && (e.parent != nil || e.ppid != 0) {
		out = make([]event.Ancestor, 0, t.cfg.MaxAncestors)
	}
	cur := e
	for len(out) < t.cfg.MaxAncestors {
		par := cur.parent
		if par == nil {
			if cur.ppid == 0 || cur.pid == 1 {
				break // reached the root of the tree
			}
			par = t.resolveParentLocked(cur)
			if par == nil {
				t.parentMissing.Add(1)
				break
			}
		}
		out = append(out, event.Ancestor{PID: par.pid, Name: par.name, Exe: par.exe})
		cur = par
	}
	return out
}

// resolveParentLocked finds cur's parent by ppid, in the table or /proc,
// and links it. A candidate younger than cur is a reused pid, not the
// parent.
func (t *Table) resolveParentLocked(cur *entry) *entry {
	par := t.byPID[cur.ppid]
	if par == nil || par.start > cur.start {
		e, err := t.proc.read(cur.ppid)
		if err != nil || e.start > cur.start {
			return nil
		}
		t.parentReads.Add(1)
		if gp := t.byPID[e.ppid]; gp != nil && gp.start <= e.start {
			e.parent = gp
		}
		t.insertLocked(e)
		par = e
	}
	if par == cur {
		return nil
	}
	cur.parent = par
	return par
}

// expireLocked drops exited entries that have lingered long enough.
func (t *Table) expireLocked(now int64) {
	n := 0
	for _, e := range t.linger {
		if now-e.exitedAt < int64(t.cfg.Linger) {
			break
		}
		n++
		if cur, ok := t.lru.Peek(e.key()); ok && cur == e {
			t.lru.Remove(e.key())
			t.evictions-- // not a capacity eviction
		}
		if t.byPID[e.pid] == e {
			delete(t.byPID, e.pid)
		}
		t.expired.Add(1)
	}
	if n > 0 {
		clear(t.linger[:n])
		t.linger = t.linger[n:]
	}
}

// Len returns the number of processes in the table.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}

// Stats returns a snapshot of the counters.
func (t *Table) Stats() Stats {
	t.mu.Lock()
	n, ev := t.lru.Len(), t.evictions
	t.mu.Unlock()
	return Stats{
		Entries: n, Lookups: t.lookups.Load(), Hits: t.hits.Load(),
		ProcReads: t.procReads.Load(), ProcMisses: t.procMisses.Load(),
		ParentReads: t.parentReads.Load(), ParentMissing: t.parentMissing.Load(),
		Evictions: ev, Expired: t.expired.Load(), ClockAdopted: t.clockAdopted.Load(),
	}
}

// Close releases the table's memory. The table holds no kernel objects or
// goroutines; Close exists so the guard can shut every stage down the same
// way. It is safe to call twice.
func (t *Table) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lru.Purge()
	t.byPID = map[uint32]*entry{}
	t.linger = nil
	return nil
}

func absDiff(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}
