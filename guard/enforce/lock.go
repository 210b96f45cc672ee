package enforce

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	enforcebpf "github.com/vigilsec/vigil/bpf/enforce"
	"github.com/vigilsec/vigil/guard/alert"
)

// DefaultLockRule names the decisions an exec lock makes, in records and
// alerts and for mode overrides (`modes.rules: {"Profile lock": audit}`).
const DefaultLockRule = "Profile lock"

// allowArgv0 matches ALLOW_ARGV0 in bpf/enforce/enforce.h.
const allowArgv0 = 1

// aliasDirs are where an image keeps the names its programs are run by;
// ExecLock.Aliases looks there for other names of an allowed file.
var aliasDirs = []string{"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"}

// ExecLock is a workload's exec allow-list: once in force, an exec of
// anything else is denied (BPF-LSM: EPERM before the new image exists;
// without it: SIGKILL before the new image runs an instruction), or in
// audit mode recorded as "would have denied".
//
// # Notes
//
// An entry is the pair (file, name): the file a path resolves to inside
// the workload's root (device and inode, after symlinks) and the path's
// last component, which must be the last component of the path the
// workload passes to execve (or names on a #! line). Busybox and many real
// images reach one file under many names, so a file alone would allow every
// applet; a name alone would allow any file copied in under that name.
// A file reached by more than one name (several allowed names, a symlink
// named differently from its target, or hard links) is taken for a
// multi-call binary that picks its behaviour from argv[0], so the exec_kill
// rung also requires argv[0]'s last component to be an allowed name of it.
// A multi-call binary installed as one plain file is not recognised.
//
// Every allowed file is also allowed under the name "exe", the last
// component of /proc/self/exe, so programs that re-execute themselves keep
// working. A #! script is not checked itself; its interpreter is, under the
// name the #! line gives it, as with any exec.
//
// Names are matched on their first 15 bytes, like exec name deny entries.
// An exec through a file descriptor (fexecve: "/dev/fd/3") or through a
// path longer than 511 bytes has no usable name and is denied.
type ExecLock struct {
	// Rule names the lock's decisions; "" means DefaultLockRule. The
	// effective mode is resolved for it like for any rule.
	Rule string
	// Action is ActionBlock (the default: EPERM under BPF-LSM, a kill on
	// the exec_kill rung) or ActionKill (also kills the caller under LSM).
	Action alert.Action
	// Paths are the allowed executables, absolute paths inside the
	// workload's root. Paths the image does not hold are skipped: nothing
	// can run from them until the file appears, and then it is denied.
	Paths []string
	// Aliases also allows every name in the image's bin directories that
	// resolves to the same file as one of Paths (or as an entry of Execs
	// without Names). With a busybox image that is every applet, so a lock
	// learned from behavior uses Execs instead; Aliases suits a list of
	// paths written by hand (/bin/sh meaning "the shell, whatever the
	// image calls it").
	Aliases bool
	// Execs are allowed executables with the names they may be run by:
	// Path resolves to the file (/bin/busybox), and only Names (sh, cat)
	// are allowed for it, not the file's own name unless listed. This is
	// what a learned profile knows. An entry without Names stands for an
	// executable whose names were not learned: it is allowed under its own
	// name and, as with Aliases, every name the image's bin directories
	// give it.
	Execs []ExecAllow
}

// ExecAllow is one executable of an ExecLock and the names it may be
// executed by (last components of the exec'd path, e.g. "sh" for /bin/sh).
type ExecAllow struct {
	Path  string
	Names []string
}

func (l ExecLock) rule() string {
	if l.Rule == "" {
		return DefaultLockRule
	}
	return l.Rule
}

// lockState is what a lock wrote into the kernel for one applied slot.
type lockState struct {
	keys map[enforcebpf.LsmExecAllowKey]uint32
}

// Lock puts l in force for w (one container cgroup), replacing any lock
// it had. The allow-list is written before the lock verdict, and stale
// entries are deleted after it, so a lock update never denies an exec that
// both the old and the new list allow. The lock survives Apply for the same
// workload and ends with Unlock or Remove. A lock whose effective mode is
// off is not written (and an existing one is lifted).
func (e *Enforcer) Lock(w Workload, l ExecLock) error {
	if err := e.protected(w); err != nil {
		return err
	}
	if e.k == nil {
		return errors.New("kernel enforcement unavailable")
	}
	if l.Action == 0 {
		l.Action = alert.ActionBlock
	}
	if l.Action != alert.ActionBlock && l.Action != alert.ActionKill {
		return fmt.Errorf("exec lock: action %s is not enforceable in the kernel", l.Action)
	}
	mode := e.resolver.Mode(w.Namespace, w.Name, l.rule())
	if mode == alert.ModeOff {
		return e.Unlock(w)
	}
	// Audit needs a backend as much as enforce does: the would-deny
	// records come from the same programs.
	if !e.report.Active(BackendLSM) && !e.report.Active(BackendExecKill) {
		return fmt.Errorf("%w on this node: %s: exec lock", ErrUncovered, l.rule())
	}
	keys, err := resolveAllow(w, l)
	if err != nil {
		return fmt.Errorf("exec lock %s: %w", w.Key(), err)
	}
	e.mu.Lock()
	l2 := l
	e.locks[w.slot()] = &l2
	a := e.workloads[w.slot()]
	e.mu.Unlock()
	if a == nil {
		// Not enforced yet: register the cgroup with no deny rules; Apply
		// writes the lock before the cgroup goes live.
		return e.Apply(w, nil)
	}
	return e.writeLock(a, w, l, keys)
}

// writeLock writes l's allow entries and verdict for applied slot a. keys
// may be nil, then they are resolved here.
func (e *Enforcer) writeLock(a *applied, w Workload, l ExecLock, keys map[enforcebpf.LsmExecAllowKey]uint32) error {
	if keys == nil {
		var err error
		if keys, err = resolveAllow(w, l); err != nil {
			return fmt.Errorf("exec lock %s: %w", w.Key(), err)
		}
	}
	if l.Action == 0 {
		l.Action = alert.ActionBlock
	}
	mode := e.resolver.Mode(w.Namespace, w.Name, l.rule())
	e.mu.Lock()
	v := enforcebpf.LsmVerdict{Rule: e.ruleID(l.rule()), Mode: uint8(mode), Action: uint8(l.Action)}
	e.mu.Unlock()
	allow, lockMap := e.k.maps["exec_allow"], e.k.maps["exec_lock"]
	// The id is per applied slot, so keys are rewritten with it.
	cur := map[enforcebpf.LsmExecAllowKey]uint32{}
	for k, f := range keys {
		k.Workload = a.id
		cur[k] = f
		if err := allow.Put(k, f); err != nil {
			return fmt.Errorf("update exec_allow: %w", err)
		}
	}
	if err := lockMap.Put(a.id, v); err != nil {
		return fmt.Errorf("update exec_lock: %w", err)
	}
	var errs []error
	if a.lock != nil {
		for k := range a.lock.keys {
			if _, ok := cur[k]; ok {
				continue
			}
			if err := allow.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, err)
			}
		}
	}
	e.mu.Lock()
	a.lock = &lockState{keys: cur}
	e.mu.Unlock()
	return errors.Join(errs...)
}

// Unlock lifts w's exec lock: the verdict goes first, so no exec is
// denied while the allow-list is being deleted. Unlocking a workload that
// is not locked is a no-op.
func (e *Enforcer) Unlock(w Workload) error {
	e.mu.Lock()
	delete(e.locks, w.slot())
	a := e.workloads[w.slot()]
	e.mu.Unlock()
	if a == nil {
		return nil
	}
	return e.dropLock(a)
}

func (e *Enforcer) dropLock(a *applied) error {
	e.mu.Lock()
	st := a.lock
	a.lock = nil
	e.mu.Unlock()
	if st == nil {
		return nil
	}
	var errs []error
	if err := e.k.maps["exec_lock"].Delete(a.id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		errs = append(errs, err)
	}
	for k := range st.keys {
		if err := e.k.maps["exec_allow"].Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Locked reports whether w has an exec lock in force, and its allow-list
// size (entries, i.e. (file, name) pairs).
func (e *Enforcer) Locked(w Workload) (bool, int) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	a := e.workloads[w.slot()]
	if a == nil || a.lock == nil {
		return false, 0
	}
	return true, len(a.lock.keys)
}

// resolveAllow turns a lock's paths into allow entries (workload id 0; the
// caller sets it), resolving inside the workload's root.
func resolveAllow(w Workload, l ExecLock) (map[enforcebpf.LsmExecAllowKey]uint32, error) {
	root := w.Root
	if root == "" {
		root = "/"
	}
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", root, err)
	}
	defer unix.Close(rfd)

	type file struct{ dev, ino uint64 }
	names := map[file]map[string]bool{}
	multi := map[file]bool{}
	add := func(f file, name string) {
		if len(name) > 15 {
			name = name[:15]
		}
		if names[f] == nil {
			names[f] = map[string]bool{}
		}
		names[f][name] = true
	}
	// aliased are the files whose other names in the image are allowed.
	aliased := map[file]bool{}
	entries := make([]ExecAllow, 0, len(l.Paths)+len(l.Execs))
	for _, p := range l.Paths {
		entries = append(entries, ExecAllow{Path: p})
	}
	entries = append(entries, l.Execs...)
	for i, x := range entries {
		p := x.Path
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("path %q is not absolute", p)
		}
		name := path.Base(p)
		if name == "/" || name == "." {
			return nil, fmt.Errorf("path %q names no file", p)
		}
		for _, n := range x.Names {
			if n == "" || n == "." || n == ".." || strings.ContainsRune(n, '/') {
				return nil, fmt.Errorf("path %q: name %q is not a file name", p, n)
			}
		}
		st, target, err := statInRoot(rfd, p)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("resolve %s in %s: %w", p, root, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return nil, fmt.Errorf("resolve %s in %s: not a regular file", p, root)
		}
		f := file{kernelDev(st.Dev), st.Ino}
		ns := x.Names
		if len(ns) == 0 {
			ns = []string{name}
			if l.Aliases || i >= len(l.Paths) {
				aliased[f] = true
			}
		}
		for _, n := range ns {
			add(f, n)
			if n != target {
				// Run under a name that is not the file's own (a
				// symlink named differently): a multi-call binary.
				multi[f] = true
			}
		}
		if st.Nlink > 1 {
			// Hard linked: the file has more than one name.
			multi[f] = true
		}
	}
	if len(aliased) > 0 {
		for _, dir := range aliasDirs {
			ents, err := readDirInRoot(rfd, dir)
			if err != nil {
				continue // the image has no such directory
			}
			for _, n := range ents {
				st, _, err := statInRoot(rfd, dir+"/"+n)
				if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
					continue
				}
				f := file{kernelDev(st.Dev), st.Ino}
				if aliased[f] {
					add(f, n)
				}
			}
		}
	}
	out := map[enforcebpf.LsmExecAllowKey]uint32{}
	for f, ns := range names {
		var flags uint32
		if multi[f] || len(ns) > 1 {
			flags = allowArgv0
		}
		// A program that re-executes itself through /proc/self/exe (Go
		// daemons, runtimes) execs a path named "exe": allowed for files
		// that are allowed anyway, not counted as another name.
		ns["exe"] = true
		for n := range ns {
			k := enforcebpf.LsmExecAllowKey{Dev: f.dev, Ino: f.ino}
			for i := 0; i < len(n); i++ {
				k.Name[i] = int8(n[i])
			}
			out[k] = flags
		}
	}
	return out, nil
}

// statInRoot stats p as the workload would see it: absolute symlinks and
// ".." resolve inside the root (openat2 RESOLVE_IN_ROOT), not on the host.
// It also returns the last component of the file the path resolved to.
func statInRoot(rfd int, p string) (unix.Stat_t, string, error) {
	var st unix.Stat_t
	fd, err := unix.Openat2(rfd, p, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	if err != nil {
		return st, "", err
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil {
		return st, "", err
	}
	target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return st, "", err
	}
	return st, path.Base(target), nil
}

// readDirInRoot lists a directory inside the root.
func readDirInRoot(rfd int, dir string) ([]string, error) {
	fd, err := unix.Openat2(rfd, dir, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	return f.Readdirnames(-1)
}
