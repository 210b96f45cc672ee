package enforce

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	enforcebpf "github.com/vigilsec/vigil/bpf/enforce"
)

// kernelConfig configures the shared kernel state.
type kernelConfig struct {
	GuardPID uint32
	// PinPath, when set, pins maps and links on bpffs so enforcement keeps
	// running (fail-closed) after the guard exits.
	PinPath string
}

// kernel owns the shared maps and the three BPF objects. One set of
// programs serves every workload; per-workload decisions live in maps.
type kernel struct {
	maps     map[string]*ebpf.Map
	lsm      *enforcebpf.LsmObjects
	cg       *enforcebpf.CgroupObjects
	exk      *enforcebpf.ExecKillObjects
	links    []link.Link
	mu       sync.Mutex
	cgLinks  map[string][]link.Link // by cgroup path
	pinPath  string
	guardPID uint32
	reader   *ringbuf.Reader
	closeOne sync.Once
	closeErr error
}

var sharedMaps = []string{"workloads", "inode_deny", "name_deny", "net_deny", "priv_deny", "exec_lock", "exec_allow",
	"records", "counters"}

// newKernel creates the shared maps and the record reader. Programs are
// loaded one backend at a time (loadCgroup, loadExecKill, loadLSM) so that
// the probe can tell which rung failed and why.
func newKernel(cfg kernelConfig) (k *kernel, err error) {
	k = &kernel{maps: map[string]*ebpf.Map{}, cgLinks: map[string][]link.Link{}, pinPath: cfg.PinPath, guardPID: cfg.GuardPID}
	defer func() {
		if err != nil {
			k.Close()
		}
	}()
	spec, err := enforcebpf.LoadCgroup()
	if err != nil {
		return nil, fmt.Errorf("load cgroup spec: %w", err)
	}
	if cfg.PinPath != "" {
		// A previous guard's pinned objects keep enforcing until now;
		// replace them rather than stack a second set of programs.
		if err := os.RemoveAll(cfg.PinPath); err != nil {
			return nil, fmt.Errorf("remove stale pins: %w", err)
		}
		if err := os.MkdirAll(cfg.PinPath, 0o700); err != nil {
			return nil, fmt.Errorf("create pin dir: %w", err)
		}
	}
	for _, name := range sharedMaps {
		m, err := ebpf.NewMap(spec.Maps[name])
		if err != nil {
			return nil, fmt.Errorf("create map %s: %w", name, err)
		}
		k.maps[name] = m
		if cfg.PinPath != "" {
			if err := m.Pin(filepath.Join(cfg.PinPath, "map_"+name)); err != nil {
				return nil, fmt.Errorf("pin map %s: %w", name, err)
			}
		}
	}
	k.reader, err = ringbuf.NewReader(k.maps["records"])
	if err != nil {
		return nil, fmt.Errorf("open record ring buffer: %w", err)
	}
	return k, nil
}

func (k *kernel) opts() *ebpf.CollectionOptions {
	return &ebpf.CollectionOptions{MapReplacements: k.maps}
}

// loadCgroup loads the sock_addr programs; they attach per workload cgroup.
// With BPF-LSM deciding connects, the connect programs stand aside.
func (k *kernel) loadCgroup(lsmCoversConnect bool) error {
	spec, err := enforcebpf.LoadCgroup()
	if err != nil {
		return fmt.Errorf("load cgroup spec: %w", err)
	}
	if err := setConst(spec, "guard_tgid", k.guardPID); err != nil {
		return err
	}
	if err := setConst(spec, "lsm_covers_connect", boolU32(lsmCoversConnect)); err != nil {
		return err
	}
	objs := new(enforcebpf.CgroupObjects)
	if err := spec.LoadAndAssign(objs, k.opts()); err != nil {
		return fmt.Errorf("load cgroup sock_addr programs: %w", err)
	}
	k.cg = objs
	return nil
}

// loadExecKill loads and attaches the exec SIGKILL tracepoint. killBlocks
// makes it kill on "block" verdicts too, for nodes with neither LSM nor
// fanotify. With lsmActive the BPF-LSM hook decides deny lists and exec
// locks, and this program only checks argv[0] of multi-call binaries in
// locked workloads (see exec_kill.c).
func (k *kernel) loadExecKill(lsmActive, killBlocks bool) error {
	spec, err := enforcebpf.LoadExecKill()
	if err != nil {
		return fmt.Errorf("load exec_kill spec: %w", err)
	}
	if err := setConst(spec, "guard_tgid", k.guardPID); err != nil {
		return err
	}
	if err := setConst(spec, "kill_blocks", boolU32(killBlocks)); err != nil {
		return err
	}
	if err := setConst(spec, "lsm_active", boolU32(lsmActive)); err != nil {
		return err
	}
	objs := new(enforcebpf.ExecKillObjects)
	if err := spec.LoadAndAssign(objs, k.opts()); err != nil {
		return fmt.Errorf("load exec_kill program: %w", err)
	}
	k.exk = objs
	l, err := link.AttachTracing(link.TracingOptions{Program: objs.VigilExecKill})
	if err != nil {
		return fmt.Errorf("attach sched_process_exec: %w", err)
	}
	return k.keep(l, "exec_kill")
}

func boolU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// loadLSM loads and attaches every BPF-LSM hook; any failure makes the
// whole rung unavailable (a partial LSM set would be a silent gap).
func (k *kernel) loadLSM() error {
	spec, err := enforcebpf.LoadLsm()
	if err != nil {
		return fmt.Errorf("load lsm spec: %w", err)
	}
	if err := setConst(spec, "guard_tgid", k.guardPID); err != nil {
		return err
	}
	objs := new(enforcebpf.LsmObjects)
	if err := spec.LoadAndAssign(objs, k.opts()); err != nil {
		if errors.Is(err, unix.EPERM) {
			// cilium/ebpf suggests raising MEMLOCK on any EPERM; with memcg
			// accounting (5.11+) the cause is the kernel refusing the
			// program type (e.g. runtime code patching is forbidden).
			return fmt.Errorf("%w: kernel refused LSM programs with EPERM (runtime code patching forbidden?)", ErrLSMUnavailable)
		}
		return fmt.Errorf("%w: load lsm programs: %w", ErrLSMUnavailable, err)
	}
	k.lsm = objs
	var ls []link.Link
	for _, h := range []struct {
		name string
		prog *ebpf.Program
	}{
		{"bprm_check", objs.VigilBprmCheck}, {"file_open", objs.VigilFileOpen},
		{"socket_connect", objs.VigilSocketConnect}, {"ptrace", objs.VigilPtrace},
		{"sb_mount", objs.VigilSbMount}, {"module_request", objs.VigilModuleRequest},
		{"kernel_read_file", objs.VigilKernelReadFile}, {"task_fix_setuid", objs.VigilTaskFixSetuid},
	} {
		l, err := link.AttachLSM(link.LSMOptions{Program: h.prog})
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return fmt.Errorf("%w: attach lsm %s: %w", ErrLSMUnavailable, h.name, err)
		}
		ls = append(ls, l)
	}
	for i, l := range ls {
		if err := k.keep(l, fmt.Sprintf("lsm_%d", i)); err != nil {
			return err
		}
	}
	return nil
}

func setConst(spec *ebpf.CollectionSpec, name string, val uint32) error {
	v, ok := spec.Variables[name]
	if !ok {
		return fmt.Errorf("bpf object lacks %s", name)
	}
	if err := v.Set(val); err != nil {
		return fmt.Errorf("set %s: %w", name, err)
	}
	return nil
}

func (k *kernel) keep(l link.Link, name string) error {
	k.links = append(k.links, l)
	if k.pinPath != "" {
		if err := l.Pin(filepath.Join(k.pinPath, "link_"+name)); err != nil {
			return fmt.Errorf("pin link %s: %w", name, err)
		}
	}
	return nil
}

var cgroupAttaches = []struct {
	name   string
	attach ebpf.AttachType
	prog   func(*enforcebpf.CgroupObjects) *ebpf.Program
}{
	{"connect4", ebpf.AttachCGroupInet4Connect, func(o *enforcebpf.CgroupObjects) *ebpf.Program { return o.VigilConnect4 }},
	{"connect6", ebpf.AttachCGroupInet6Connect, func(o *enforcebpf.CgroupObjects) *ebpf.Program { return o.VigilConnect6 }},
	{"sendmsg4", ebpf.AttachCGroupUDP4Sendmsg, func(o *enforcebpf.CgroupObjects) *ebpf.Program { return o.VigilSendmsg4 }},
	{"sendmsg6", ebpf.AttachCGroupUDP6Sendmsg, func(o *enforcebpf.CgroupObjects) *ebpf.Program { return o.VigilSendmsg6 }},
	{"bind4", ebpf.AttachCGroupInet4Bind, func(o *enforcebpf.CgroupObjects) *ebpf.Program { return o.VigilBind4 }},
	{"bind6", ebpf.AttachCGroupInet6Bind, func(o *enforcebpf.CgroupObjects) *ebpf.Program { return o.VigilBind6 }},
}

// attachCgroup attaches the shared sock_addr programs to one workload's
// cgroup v2 directory. Attaching twice is a no-op.
func (k *kernel) attachCgroup(path string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cg == nil {
		return errors.New("cgroup sock_addr programs not loaded")
	}
	if _, ok := k.cgLinks[path]; ok {
		return nil
	}
	var ls []link.Link
	for _, a := range cgroupAttaches {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: path, Attach: a.attach, Program: a.prog(k.cg)})
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return fmt.Errorf("attach %s to %s: %w", a.name, path, err)
		}
		if k.pinPath != "" {
			name := "cg_" + strings.NewReplacer("/", "_").Replace(strings.Trim(path, "/")) + "_" + a.name
			if err := l.Pin(filepath.Join(k.pinPath, name)); err != nil {
				l.Close()
				for _, l := range ls {
					l.Close()
				}
				return fmt.Errorf("pin %s: %w", name, err)
			}
		}
		ls = append(ls, l)
	}
	k.cgLinks[path] = ls
	return nil
}

// detachCgroup removes the programs from a cgroup, including pins.
func (k *kernel) detachCgroup(path string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	var errs []error
	for _, l := range k.cgLinks[path] {
		if k.pinPath != "" {
			errs = append(errs, l.Unpin())
		}
		errs = append(errs, l.Close())
	}
	delete(k.cgLinks, path)
	return errors.Join(errs...)
}

// counters sums the per-CPU counters.
func (k *kernel) counters() (Counters, error) {
	var c Counters
	for slot, dst := range []*uint64{&c.RingbufDrops, &c.Denied, &c.WouldDeny, &c.SkippedSelf} {
		var per []uint64
		if err := k.maps["counters"].Lookup(uint32(slot), &per); err != nil {
			return c, fmt.Errorf("read counter %d: %w", slot, err)
		}
		for _, v := range per {
			*dst += v
		}
	}
	return c, nil
}

// Counters are the kernel backends' decision counts, summed over CPUs.
type Counters struct {
	RingbufDrops uint64 `json:"ringbuf_drops"`
	Denied       uint64 `json:"denied"`
	WouldDeny    uint64 `json:"would_deny"`
	SkippedSelf  uint64 `json:"skipped_self"`
	// DecodeErrors counts ring buffer samples userspace could not read.
	DecodeErrors uint64 `json:"decode_errors"`
	// AuditDrops counts records not persisted because the store was
	// behind; AuditWriteErrors those whose write failed.
	AuditDrops       uint64 `json:"audit_drops"`
	AuditWriteErrors uint64 `json:"audit_write_errors"`
}

// Close detaches everything the guard attached. Pinned objects stay in
// the kernel (fail-closed) until Unpin removes them.
func (k *kernel) Close() error {
	k.closeOne.Do(func() {
		var errs []error
		if k.reader != nil {
			errs = append(errs, k.reader.Close())
		}
		k.mu.Lock()
		for p, ls := range k.cgLinks {
			for _, l := range ls {
				errs = append(errs, l.Close())
			}
			delete(k.cgLinks, p)
		}
		k.mu.Unlock()
		for _, l := range k.links {
			errs = append(errs, l.Close())
		}
		if k.lsm != nil {
			errs = append(errs, k.lsm.Close())
		}
		if k.cg != nil {
			errs = append(errs, k.cg.Close())
		}
		if k.exk != nil {
			errs = append(errs, k.exk.Close())
		}
		for _, m := range k.maps {
			errs = append(errs, m.Close())
		}
		k.closeErr = errors.Join(errs...)
	})
	return k.closeErr
}

// Unpin removes a pinned enforcement set left by a guard started with a
// pin path, which detaches it (the kernel frees objects with no pins and
// no fds).
func Unpin(pinPath string) error {
	if err := os.RemoveAll(pinPath); err != nil {
		return fmt.Errorf("unpin %s: %w", pinPath, err)
	}
	return nil
}

// CgroupID returns the cgroup v2 id (the directory's inode number) of a
// cgroup directory, as bpf_get_current_cgroup_id reports it.
func CgroupID(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat cgroup %s: %w", path, err)
	}
	return st.Ino, nil
}
