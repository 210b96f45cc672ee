package enforce

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	enforcebpf "github.com/vigilsec/vigil/bpf/enforce"
	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/event"
)

// Config configures the enforcer.
type Config struct {
	Modes ModeConfig
	// Require lists backends without which the enforcer refuses to start
	// (`require: [lsm]`), instead of degrading along the ladder.
	Require []Backend
	// Disable lists backends not to use even when they probe active; it
	// lets an operator (and the tests) pin a node to a lower rung.
	Disable []Backend
	// GuardPID is never acted on; 0 means this process.
	GuardPID int
	// PinPath, when set, pins the kernel objects on bpffs so enforcement
	// continues (fail-closed) while the guard is down. Empty: fail-open.
	PinPath string
	// ProtectedNamespaces are never enforced; nil means kube-system and
	// vigil-system.
	ProtectedNamespaces []string
	// FanotifyDeadline bounds every fanotify answer; past it the event is
	// allowed and counted. 0 means 250ms.
	FanotifyDeadline time.Duration
	// Cgroup2Root is the cgroup v2 mount; "" finds it.
	Cgroup2Root string
	// AuditDB, when set, persists every decision record there (bbolt) for
	// `vigil report would-block`; DefaultAuditDB is the usual path.
	AuditDB string
	// OnRecord receives every decision record, from every backend. It is
	// called from one goroutine per backend and must not block for long.
	OnRecord func(Record)
}

// Workload is one enforced unit: a container, identified by the cgroup v2
// directory its processes run in.
//
// # Notes
//
// The kernel matches the caller's own cgroup exactly, not its ancestors: a
// pod with several containers is applied once per container cgroup.
type Workload struct {
	Namespace string
	Name      string
	// CgroupPath is the workload's cgroup v2 directory.
	CgroupPath string
	// Root is the workload's filesystem root as seen from the guard, used
	// to resolve rule paths ("" = host "/").
	Root string
}

// Key is "namespace/name".
func (w Workload) Key() string { return w.Namespace + "/" + w.Name }

// slot identifies one applied unit: replicas of a workload share Key but
// each container has its own cgroup and its own entries.
func (w Workload) slot() string { return w.Key() + "@" + w.CgroupPath }

// NetMatch is a CIDR with an optional port (0 = any).
type NetMatch struct {
	Prefix netip.Prefix
	Port   uint16
}

// Rule is a deny decision expressible as data, compiled into the kernel.
type Rule struct {
	Name   string
	Action alert.Action // ActionBlock or ActionKill
	// ExecPaths are executables or directories (prefixes) that may not run.
	ExecPaths []string
	// ExecNames are executable file names (basename, at most 15 bytes).
	ExecNames []string
	// OpenPaths are files or directories (prefixes) that may not be opened.
	OpenPaths []string
	Connect   []NetMatch
	Bind      []NetMatch
	// Deny lists privileged operations: KindPtrace, KindMount,
	// KindModuleLoad, KindSetuid (BPF-LSM only).
	Deny []event.Kind
}

// Enforcer owns every backend on this node.
type Enforcer struct {
	cfg      Config
	resolver *Resolver
	report   Report
	k        *kernel
	fan      *fanotify
	cg2      string

	mu        sync.RWMutex
	workloads map[string]*applied // by slot (Key@cgroup)
	byID      map[uint32]string   // workload id -> key
	byCgroup  map[uint64]uint32
	rules     map[uint32]string // rule id -> name
	ruleIDs   map[string]uint32
	nextWl    uint32
	fanTgts   map[string][]fanTarget
	locks     map[string]*ExecLock // desired exec locks, by slot

	decodeErrs atomic.Uint64
	store      *AuditStore
	storeCh    chan StoredRecord
	storeDrops atomic.Uint64
	storeErrs  atomic.Uint64

	wg        sync.WaitGroup
	storeWG   sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

type applied struct {
	id      uint32
	w       Workload
	cgID    uint64
	entries []func() error // map deletions undoing this workload
	lock    *lockState     // exec lock in force, nil when unlocked
}

// ErrUncovered reports a rule kind in enforce mode that no active backend
// on this node can carry out.
var ErrUncovered = errors.New("no active backend covers rule")

// New probes every backend, loads the active ones along the ladder, and
// starts the record readers. When a required backend is inactive it
// returns ErrBackendRequired (and ErrLSMUnavailable for lsm).
func New(cfg Config) (*Enforcer, error) {
	if cfg.GuardPID == 0 {
		cfg.GuardPID = os.Getpid()
	}
	if cfg.ProtectedNamespaces == nil {
		cfg.ProtectedNamespaces = []string{"kube-system", "vigil-system"}
	}
	if cfg.FanotifyDeadline == 0 {
		cfg.FanotifyDeadline = 250 * time.Millisecond
	}
	if cfg.OnRecord == nil {
		cfg.OnRecord = func(Record) {}
	}
	res, err := NewResolver(cfg.Modes)
	if err != nil {
		return nil, err
	}
	cg2 := cfg.Cgroup2Root
	if cg2 == "" {
		var err error
		if cg2, err = FindCgroup2(); err != nil {
			return nil, err
		}
	}
	e := &Enforcer{cfg: cfg, resolver: res, cg2: cg2, workloads: map[string]*applied{},
		byID: map[uint32]string{}, byCgroup: map[uint64]uint32{}, rules: map[uint32]string{},
		ruleIDs: map[string]uint32{}, fanTgts: map[string][]fanTarget{}, locks: map[string]*ExecLock{}}
	if cfg.AuditDB != "" {
		st, err := OpenAuditStore(cfg.AuditDB)
		if err != nil {
			return nil, err
		}
		e.store, e.storeCh = st, make(chan StoredRecord, 4096)
		e.storeWG.Add(1)
		go e.persist()
	}
	if err := e.probeAndLoad(); err != nil {
		e.Close()
		return nil, err
	}
	if err := e.report.Require(cfg.Require); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

func (e *Enforcer) disabled(b Backend) bool { return slices.Contains(e.cfg.Disable, b) }

// probeAndLoad runs each backend's real probe and keeps what works.
func (e *Enforcer) probeAndLoad() error {
	lsms, lsmErr := ActiveLSMs()
	e.report.LSMs = lsms
	set := func(b Backend, covers []string, err error) {
		s := Status{Backend: b, Active: err == nil}
		if err != nil {
			s.Reason = err.Error()
		} else {
			s.Covers = covers
		}
		e.report.Backends = append(e.report.Backends, s)
	}
	off := errors.New("disabled by config")

	k, err := newKernel(kernelConfig{GuardPID: uint32(e.cfg.GuardPID), PinPath: e.cfg.PinPath})
	if err != nil {
		// Without maps no kernel backend can run; record it on every rung.
		for _, b := range []Backend{BackendLSM, BackendCgroupSock, BackendExecKill} {
			set(b, nil, err)
		}
	} else {
		e.k = k
		// LSM.
		switch {
		case e.disabled(BackendLSM):
			set(BackendLSM, nil, off)
		case lsmErr != nil:
			set(BackendLSM, nil, fmt.Errorf("%w: %w", ErrLSMUnavailable, lsmErr))
		case !slices.Contains(strings.Split(lsms, ","), "bpf"):
			set(BackendLSM, nil, fmt.Errorf("%w: bpf not among active LSMs (%s)", ErrLSMUnavailable, lsms))
		default:
			set(BackendLSM, []string{"exec", "open", "connect", "ptrace", "mount", "module_load", "setuid"}, k.loadLSM())
		}
	}
	lsm := e.report.Active(BackendLSM)

	// fanotify is probed for real even under LSM (status shows it), but it
	// only carries decisions when LSM is inactive.
	var fanErr error
	if e.disabled(BackendFanotify) {
		fanErr = off
	} else if fanErr = probeFanotify(); fanErr == nil && !lsm {
		e.fan, fanErr = newFanotify(e.cfg.GuardPID, e.cfg.FanotifyDeadline,
			func(pid int32) (uint64, error) { return procCgroupID(e.cg2, pid) },
			e.workloadByCgroup, e.emit)
	}
	set(BackendFanotify, coverIf(!lsm, "exec (block)", "open"), fanErr)

	if e.k != nil {
		var cgErr error
		if e.disabled(BackendCgroupSock) {
			cgErr = off
		} else {
			cgErr = e.k.loadCgroup(lsm)
		}
		covers := []string{"connect", "sendmsg", "bind"}
		if lsm {
			covers = covers[1:] // the LSM socket_connect hook decides connects
		}
		set(BackendCgroupSock, covers, cgErr)
		var exErr error
		if e.disabled(BackendExecKill) {
			exErr = off
		} else {
			exErr = e.k.loadExecKill(lsm, e.fan == nil)
		}
		exCovers := []string{"exec (kill)", "exec lock (kill)"}
		if lsm {
			// BPF-LSM denies exec; this rung stays live for the one lock
			// check LSM cannot make (argv[0] of a multi-call binary).
			exCovers = []string{"exec lock argv[0] (kill)"}
		}
		set(BackendExecKill, exCovers, exErr)
	}
	var pErr error
	if e.disabled(BackendPidfd) {
		pErr = off
	} else {
		pErr = probePidfd()
	}
	set(BackendPidfd, []string{"verdict kill"}, pErr)
	slices.SortFunc(e.report.Backends, func(a, b Status) int { return int(a.Backend) - int(b.Backend) })

	if e.k != nil {
		e.wg.Add(1)
		go e.readRecords()
	}
	return nil
}

func coverIf(ok bool, what ...string) []string {
	if !ok {
		return []string{"standby (BPF-LSM covers it)"}
	}
	return what
}

// Report returns the probe results for this node.
func (e *Enforcer) Report() Report { return e.report }

// Resolver returns the mode resolver.
func (e *Enforcer) Resolver() *Resolver { return e.resolver }

func (e *Enforcer) workloadByCgroup(cg uint64) (uint32, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	id, ok := e.byCgroup[cg]
	return id, ok
}

func (e *Enforcer) emit(r Record) {
	e.mu.RLock()
	r.Workload = e.byID[r.WorkloadID]
	r.Rule = e.rules[r.RuleID]
	e.mu.RUnlock()
	e.record(r)
}

// record hands a named record to the caller and to the audit store.
func (e *Enforcer) record(r Record) {
	if e.store != nil {
		select {
		case e.storeCh <- r.Stored(time.Now(), monotonicNs()):
		default:
			// The store is behind; never stall a decision path on disk.
			e.storeDrops.Add(1)
		}
	}
	e.cfg.OnRecord(r)
}

// persist writes records in batches: one transaction per burst.
func (e *Enforcer) persist() {
	defer e.storeWG.Done()
	for r := range e.storeCh {
		batch := []StoredRecord{r}
	drain:
		for len(batch) < 512 {
			select {
			case r, ok := <-e.storeCh:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		if err := e.store.PutBatch(batch); err != nil {
			e.storeErrs.Add(uint64(len(batch)))
		}
	}
}

func (e *Enforcer) readRecords() {
	defer e.wg.Done()
	for {
		rec, err := e.k.reader.Read()
		if err != nil {
			if errors.Is(err, ringbuf.ErrClosed) {
				return
			}
			e.decodeErrs.Add(1)
			continue
		}
		r, err := DecodeRecord(rec.RawSample)
		if err != nil {
			e.decodeErrs.Add(1)
			continue
		}
		e.emit(r)
	}
}

// ProtectedError says why a workload may not be enforced.
func (e *Enforcer) protected(w Workload) error {
	if slices.Contains(e.cfg.ProtectedNamespaces, w.Namespace) {
		return fmt.Errorf("%w: namespace %s is a system namespace", ErrProtected, w.Namespace)
	}
	own, err := procCgroupID(e.cg2, int32(e.cfg.GuardPID))
	if err == nil {
		if cg, err := CgroupID(w.CgroupPath); err == nil && cg == own {
			return fmt.Errorf("%w: cgroup %s holds the guard", ErrProtected, w.CgroupPath)
		}
	}
	if filepath.Clean(w.CgroupPath) == filepath.Clean(e.cg2) {
		return fmt.Errorf("%w: the root cgroup holds the host", ErrProtected)
	}
	return nil
}

func (e *Enforcer) ruleID(name string) uint32 {
	if id, ok := e.ruleIDs[name]; ok {
		return id
	}
	id := uint32(len(e.ruleIDs) + 1)
	e.ruleIDs[name] = id
	e.rules[id] = name
	return id
}

// Apply compiles a workload's rules into the kernel maps (and fanotify
// marks), replacing what was applied for it before. Rules whose effective
// mode is off are skipped. An exec lock set with Lock is kept.
func (e *Enforcer) Apply(w Workload, rules []Rule) (err error) {
	if err := e.protected(w); err != nil {
		return err
	}
	if e.k == nil {
		return errors.New("kernel enforcement unavailable")
	}
	cgID, err := CgroupID(w.CgroupPath)
	if err != nil {
		return err
	}
	if err := e.removeSlot(w); err != nil {
		return err
	}
	e.mu.Lock()
	e.nextWl++
	a := &applied{id: e.nextWl, w: w, cgID: cgID}
	e.workloads[w.slot()] = a
	e.byID[a.id] = w.Key()
	e.mu.Unlock()
	defer func() {
		// A half-applied policy is worse than none: undo it. A policy
		// that applied but is partly uncovered stays (the caller decides).
		if err != nil && !errors.Is(err, ErrUncovered) {
			err = errors.Join(err, e.removeSlot(w))
		}
	}()

	lsm := e.report.Active(BackendLSM)
	var fan []fanTarget
	var uncovered []string
	for _, r := range rules {
		mode := e.resolver.Mode(w.Namespace, w.Name, r.Name)
		if mode == alert.ModeOff {
			continue
		}
		if r.Action != alert.ActionBlock && r.Action != alert.ActionKill {
			return fmt.Errorf("rule %s: action %s is not enforceable in the kernel", r.Name, r.Action)
		}
		e.mu.Lock()
		v := enforcebpf.LsmVerdict{Rule: e.ruleID(r.Name), Mode: uint8(mode), Action: uint8(r.Action)}
		e.mu.Unlock()
		fv := verdict{rule: v.Rule, mode: mode, action: r.Action}
		for _, p := range r.ExecPaths {
			t, err := e.resolve(w, p)
			if err != nil {
				return fmt.Errorf("rule %s: %w", r.Name, err)
			}
			if err := e.putInode(a, event.KindExec, t, v); err != nil {
				return err
			}
			if !lsm && r.Action == alert.ActionBlock && e.fan != nil {
				t.workload, t.kind, t.v = a.id, event.KindExec, fv
				fan = append(fan, t)
			}
		}
		for _, n := range r.ExecNames {
			if len(n) == 0 || len(n) > 15 || strings.Contains(n, "/") {
				return fmt.Errorf("rule %s: exec name %q must be a file name of 1-15 bytes", r.Name, n)
			}
			var k enforcebpf.LsmNameKey
			k.Workload = a.id
			for i := 0; i < len(n); i++ {
				k.Name[i] = int8(n[i])
			}
			nv := v
			if !lsm && r.Action == alert.ActionBlock {
				// fanotify marks inodes and cannot match a name, so without
				// BPF-LSM a name "block" is carried out by the exec_kill
				// rung, as a kill; the record says so.
				if !e.report.Active(BackendExecKill) {
					uncovered = append(uncovered, r.Name+": exec name")
				}
				nv.Action = uint8(alert.ActionKill)
			}
			if err := e.put(a, e.k.maps["name_deny"], k, nv); err != nil {
				return err
			}
		}
		for _, p := range r.OpenPaths {
			t, err := e.resolve(w, p)
			if err != nil {
				return fmt.Errorf("rule %s: %w", r.Name, err)
			}
			if err := e.putInode(a, event.KindOpen, t, v); err != nil {
				return err
			}
			if !lsm {
				if e.fan == nil {
					uncovered = append(uncovered, r.Name+": open")
					continue
				}
				t.workload, t.kind, t.v = a.id, event.KindOpen, fv
				fan = append(fan, t)
			}
		}
		for kind, ms := range map[event.Kind][]NetMatch{event.KindConnect: r.Connect, event.KindBind: r.Bind} {
			for _, m := range ms {
				if err := e.putNet(a, kind, m, v); err != nil {
					return fmt.Errorf("rule %s: %w", r.Name, err)
				}
			}
			// sendmsg and bind are decided by the sock_addr programs even
			// with BPF-LSM, whose socket_connect hook covers connect only.
			if len(ms) > 0 {
				if !e.report.Active(BackendCgroupSock) {
					if !lsm || kind == event.KindBind {
						uncovered = append(uncovered, r.Name+": "+kind.String())
					}
					continue
				}
				if err := e.k.attachCgroup(w.CgroupPath); err != nil {
					return err
				}
			}
		}
		for _, kind := range r.Deny {
			switch kind {
			case event.KindPtrace, event.KindMount, event.KindModuleLoad, event.KindSetuid:
			default:
				return fmt.Errorf("rule %s: %s cannot be denied by kind", r.Name, kind)
			}
			k := enforcebpf.LsmPrivKey{Workload: a.id, Kind: uint32(kind)}
			if err := e.put(a, e.k.maps["priv_deny"], k, v); err != nil {
				return err
			}
			if !lsm {
				uncovered = append(uncovered, r.Name+": "+kind.String())
			}
		}
	}
	if e.fan != nil {
		e.mu.Lock()
		e.fanTgts[w.slot()] = fan
		var all []fanTarget
		for _, ts := range e.fanTgts {
			all = append(all, ts...)
		}
		e.mu.Unlock()
		if err := e.fan.setTargets(all); err != nil {
			return err
		}
	}
	e.mu.RLock()
	l := e.locks[w.slot()]
	e.mu.RUnlock()
	if l != nil {
		if err := e.writeLock(a, w, *l, nil); err != nil {
			return err
		}
	}
	// The cgroup goes live last, once every entry is in place.
	if err := e.k.maps["workloads"].Put(cgID, a.id); err != nil {
		return fmt.Errorf("register workload cgroup: %w", err)
	}
	e.mu.Lock()
	e.byCgroup[cgID] = a.id
	e.mu.Unlock()
	if len(uncovered) > 0 {
		return fmt.Errorf("%w on this node: %s", ErrUncovered, strings.Join(uncovered, ", "))
	}
	return nil
}

func (e *Enforcer) put(a *applied, m *ebpf.Map, k, v any) error {
	if err := m.Put(k, v); err != nil {
		return fmt.Errorf("update %s: %w", m, err)
	}
	a.entries = append(a.entries, func() error { return m.Delete(k) })
	return nil
}

func (e *Enforcer) putInode(a *applied, kind event.Kind, t fanTarget, v enforcebpf.LsmVerdict) error {
	k := enforcebpf.LsmInodeKey{Workload: a.id, Kind: uint32(kind), Dev: kernelDev(t.dev), Ino: t.ino}
	return e.put(a, e.k.maps["inode_deny"], k, v)
}

func (e *Enforcer) putNet(a *applied, kind event.Kind, m NetMatch, v enforcebpf.LsmVerdict) error {
	if !m.Prefix.IsValid() {
		return errors.New("invalid CIDR")
	}
	p := m.Prefix.Masked()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	k := enforcebpf.LsmNetKey{Prefixlen: uint32(64 + bits), Workload: a.id, Kind: uint16(kind), Port: m.Port,
		Addr: netip.AddrFrom16(p.Addr().As16()).As16()}
	return e.put(a, e.k.maps["net_deny"], k, v)
}

// kernelDev converts a userspace st_dev to the kernel's internal dev_t
// (MAJOR<<20 | MINOR), which is what sb->s_dev holds.
func kernelDev(dev uint64) uint64 {
	return uint64(unix.Major(dev))<<20 | uint64(unix.Minor(dev))
}

// resolve stats a rule path inside the workload's root.
func (e *Enforcer) resolve(w Workload, p string) (fanTarget, error) {
	if !filepath.IsAbs(p) {
		return fanTarget{}, fmt.Errorf("path %q is not absolute", p)
	}
	host := filepath.Join(w.Root, p)
	if w.Root == "" {
		host = filepath.Clean(p)
	}
	var st unix.Stat_t
	if err := unix.Stat(host, &st); err != nil {
		return fanTarget{}, fmt.Errorf("resolve %s: %w", host, err)
	}
	return fanTarget{path: host, dir: st.Mode&unix.S_IFMT == unix.S_IFDIR, dev: st.Dev, ino: st.Ino}, nil
}

// Remove undoes Apply and Lock for a workload. Removing an unknown
// workload is a no-op.
func (e *Enforcer) Remove(w Workload) error {
	e.mu.Lock()
	delete(e.locks, w.slot())
	e.mu.Unlock()
	return e.removeSlot(w)
}

// removeSlot undoes what Apply wrote for a workload; its desired lock
// stays for the next Apply.
func (e *Enforcer) removeSlot(w Workload) error {
	e.mu.Lock()
	a := e.workloads[w.slot()]
	if a == nil {
		e.mu.Unlock()
		return nil
	}
	delete(e.workloads, w.slot())
	delete(e.byCgroup, a.cgID)
	delete(e.fanTgts, w.slot())
	e.mu.Unlock()
	var errs []error
	if err := e.k.maps["workloads"].Delete(a.cgID); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		errs = append(errs, err)
	}
	for _, undo := range a.entries {
		if err := undo(); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, e.dropLock(a))
	errs = append(errs, e.k.detachCgroup(a.w.CgroupPath))
	return errors.Join(errs...)
}

// Kill is the last rung: a verdict kill from userspace for a decision no
// kernel backend could make (e.g. a Wasm rule's verdict). pid and
// startTicks name the process; the effective mode decides whether it is
// killed or recorded as "would have killed".
func (e *Enforcer) Kill(w Workload, rule string, pid uint32, startTicks uint64) (Record, error) {
	mode := e.resolver.Mode(w.Namespace, w.Name, rule)
	r := Record{KTimeNs: monotonicNs(), Backend: BackendPidfd, Kind: event.KindExec, Action: alert.ActionKill,
		Mode: mode, PID: pid, Workload: w.Key(), Rule: rule, Comm: procComm(int32(pid))}
	if err := e.protected(w); err != nil {
		return r, err
	}
	if pid <= 1 || int(pid) == e.cfg.GuardPID || isKernelThread(int(pid)) {
		return r, fmt.Errorf("%w: pid %d", ErrProtected, pid)
	}
	if mode == alert.ModeOff {
		return r, nil
	}
	if mode == alert.ModeEnforce {
		if !e.report.Active(BackendPidfd) {
			return r, fmt.Errorf("%w: pidfd", ErrBackendRequired)
		}
		if err := killVerified(int(pid), startTicks); err != nil {
			return r, err
		}
		r.Denied = true
	}
	e.record(r)
	return r, nil
}

// isKernelThread reports whether pid is a kernel thread (PF_KTHREAD in
// /proc/<pid>/stat flags, field 9).
func isKernelThread(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 7 {
		return false
	}
	var flags uint64
	fmt.Sscan(f[6], &flags)
	return flags&0x00200000 != 0
}

// Counters returns the kernel and fanotify decision counters.
func (e *Enforcer) Counters() (Counters, FanotifyCounters, error) {
	var fc FanotifyCounters
	if e.fan != nil {
		fc = e.fan.counters()
	}
	if e.k == nil {
		return Counters{}, fc, nil
	}
	c, err := e.k.counters()
	c.DecodeErrors = e.decodeErrs.Load()
	c.AuditDrops = e.storeDrops.Load()
	c.AuditWriteErrors = e.storeErrs.Load()
	return c, fc, err
}

// Close shuts down in this order (the Enforcer must not be used after): fanotify first (pending events are
// allowed by the kernel), then the ring buffer reader, then programs and
// maps, and last the audit store, once every producer has stopped. With a
// pin path, the pinned set keeps enforcing after Close.
func (e *Enforcer) Close() error {
	e.closeOnce.Do(func() {
		var errs []error
		if e.fan != nil {
			errs = append(errs, e.fan.Close())
		}
		if e.k != nil {
			errs = append(errs, e.k.Close())
		}
		e.wg.Wait()
		// Every producer has stopped: flush the store last.
		if e.store != nil {
			close(e.storeCh)
			e.storeWG.Wait()
			errs = append(errs, e.store.Close())
		}
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}

// ActiveLSMs reads /sys/kernel/security/lsm, mounting securityfs first
// when it is not mounted (a bare host or a guest's /init).
func ActiveLSMs() (string, error) {
	const p = "/sys/kernel/security/lsm"
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		if merr := unix.Mount("securityfs", "/sys/kernel/security", "securityfs", 0, ""); merr != nil {
			return "", fmt.Errorf("mount securityfs: %w", merr)
		}
		b, err = os.ReadFile(p)
	}
	if err != nil {
		return "", fmt.Errorf("read active LSMs: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// FindCgroup2 returns the cgroup v2 mount: /sys/fs/cgroup on a unified
// host, /sys/fs/cgroup/unified on a hybrid one.
func FindCgroup2() (string, error) {
	for _, p := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p, nil
		}
	}
	return "", errors.New("no cgroup v2 mount found")
}
