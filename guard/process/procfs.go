package process

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// ErrBadProcFile marks /proc content that does not parse. Processes that
// exit mid-read produce short or empty files, so callers treat it like a
// vanished process.
var ErrBadProcFile = errors.New("malformed /proc file")

// ProcStat is what Vigil reads from /proc/<pid>/stat.
type ProcStat struct {
	Comm  string
	State byte
	PPID  uint32
	// StartTicks is the start time in clock ticks (USER_HZ) since boot.
	StartTicks uint64
}

// ParseStat parses /proc/<pid>/stat. The comm field is wrapped in
// parentheses and may itself contain spaces and parentheses, so it is
// delimited by the first "(" and the last ")".
func ParseStat(b []byte) (ProcStat, error) {
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return ProcStat{}, fmt.Errorf("%w: stat has no comm", ErrBadProcFile)
	}
	st := ProcStat{Comm: string(b[open+1 : closing])}
	// Fields after comm, 1-based from state (field 3 of proc(5)).
	rest := bytes.Fields(b[closing+1:])
	// state(3) ppid(4) ... starttime(22) → rest[0], rest[1], rest[19].
	if len(rest) < 20 || len(rest[0]) != 1 {
		return ProcStat{}, fmt.Errorf("%w: stat has %d fields after comm", ErrBadProcFile, len(rest))
	}
	st.State = rest[0][0]
	ppid, err := strconv.ParseUint(string(rest[1]), 10, 32)
	if err != nil {
		return ProcStat{}, fmt.Errorf("%w: ppid: %w", ErrBadProcFile, err)
	}
	start, err := strconv.ParseUint(string(rest[19]), 10, 64)
	if err != nil {
		return ProcStat{}, fmt.Errorf("%w: starttime: %w", ErrBadProcFile, err)
	}
	st.PPID, st.StartTicks = uint32(ppid), start
	return st, nil
}

// IDs are the real and effective uid and gid of a process.
type IDs struct {
	UID, EUID, GID, EGID uint32
}

// ParseStatus reads the Uid and Gid lines of /proc/<pid>/status
// ("Uid:\treal\teffective\tsaved\tfs").
func ParseStatus(b []byte) (IDs, error) {
	var ids IDs
	var seenU, seenG bool
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		var real, eff *uint32
		switch {
		case bytes.HasPrefix(line, []byte("Uid:")):
			real, eff, seenU = &ids.UID, &ids.EUID, true
		case bytes.HasPrefix(line, []byte("Gid:")):
			real, eff, seenG = &ids.GID, &ids.EGID, true
		default:
			continue
		}
		f := bytes.Fields(line[4:])
		if len(f) < 2 {
			return IDs{}, fmt.Errorf("%w: status line %q", ErrBadProcFile, line)
		}
		for i, dst := range []*uint32{real, eff} {
			v, err := strconv.ParseUint(string(f[i]), 10, 32)
			if err != nil {
				return IDs{}, fmt.Errorf("%w: status id: %w", ErrBadProcFile, err)
			}
			*dst = uint32(v)
		}
	}
	if !seenU || !seenG {
		return IDs{}, fmt.Errorf("%w: status lacks Uid/Gid", ErrBadProcFile)
	}
	return ids, nil
}

// ParseCmdline splits /proc/<pid>/cmdline (NUL-terminated arguments) into
// at most maxArgs arguments; truncated reports whether more were dropped.
func ParseCmdline(b []byte, maxArgs int) (args []string, truncated bool) {
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil, false
	}
	n := bytes.Count(b, []byte{0}) + 1
	if n > maxArgs {
		n, truncated = maxArgs, true
	}
	args = make([]string, 0, n)
	for len(args) < n {
		var a []byte
		a, b, _ = bytes.Cut(b, []byte{0})
		args = append(args, string(a))
	}
	return args, truncated
}

// parseUnifiedCgroup returns the "0::" path of /proc/<pid>/cgroup.
func parseUnifiedCgroup(b []byte) string {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if p, ok := bytes.CutPrefix(line, []byte("0::")); ok {
			return string(p)
		}
	}
	return ""
}

// procReader reads processes from a /proc tree.
type procReader struct {
	root        string // "/proc"
	cgroup2Root string // "" = do not resolve cgroup ids
	maxArgs     int
}

// ErrNoProcess means the pid does not exist (or exited mid-read).
var ErrNoProcess = errors.New("no such process")

// read builds an entry for pid from /proc. Only stat is required; the other
// files are best effort because kernel threads and zombies lack them.
func (r procReader) read(pid uint32) (*entry, error) {
	dir := filepath.Join(r.root, strconv.FormatUint(uint64(pid), 10))
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return nil, ErrNoProcess
		}
		return nil, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	st, err := ParseStat(b)
	if err != nil {
		return nil, err
	}
	e := &entry{
		pid: pid, ppid: st.PPID, start: st.StartTicks, name: st.Comm,
		loginUID: noLoginUID, fromProc: true,
	}
	if b, err := os.ReadFile(filepath.Join(dir, "status")); err == nil {
		if ids, err := ParseStatus(b); err == nil {
			e.uid, e.euid, e.gid, e.egid = ids.UID, ids.EUID, ids.GID, ids.EGID
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		e.args, _ = ParseCmdline(b, r.maxArgs)
	}
	e.exe, _ = os.Readlink(filepath.Join(dir, "exe"))
	e.cwd, _ = os.Readlink(filepath.Join(dir, "cwd"))
	if b, err := os.ReadFile(filepath.Join(dir, "loginuid")); err == nil {
		if v, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 32); err == nil {
			e.loginUID = uint32(v)
		}
	}
	if r.cgroup2Root != "" {
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup")); err == nil {
			if p := parseUnifiedCgroup(b); p != "" {
				var sb syscall.Stat_t
				if syscall.Stat(filepath.Join(r.cgroup2Root, p), &sb) == nil {
					e.cgroupID = sb.Ino
				}
			}
		}
	}
	return e, nil
}

// cwd reads the current directory of pid, "" if unreadable.
func (r procReader) cwd(pid uint32) string {
	s, _ := os.Readlink(filepath.Join(r.root, strconv.FormatUint(uint64(pid), 10), "cwd"))
	return s
}

// pids lists the numeric entries of the /proc root.
func (r procReader) pids() ([]uint32, error) {
	ents, err := os.ReadDir(r.root)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", r.root, err)
	}
	out := make([]uint32, 0, len(ents))
	for _, d := range ents {
		if v, err := strconv.ParseUint(d.Name(), 10, 32); err == nil && d.IsDir() {
			out = append(out, uint32(v))
		}
	}
	return out, nil
}

// findCgroup2 returns the cgroup2 mount point listed in a mountinfo file,
// or "" if none. (guard/container has the full parser; this package stays
// free of its runtime-API dependencies.)
func findCgroup2(mountinfo string) string {
	b, err := os.ReadFile(mountinfo)
	if err != nil {
		return ""
	}
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		pre, post, ok := bytes.Cut(line, []byte(" - "))
		if !ok || !bytes.HasPrefix(post, []byte("cgroup2 ")) {
			continue
		}
		if f := bytes.Fields(pre); len(f) >= 5 && !bytes.Contains(f[4], []byte{'\\'}) {
			return string(f[4])
		}
	}
	return ""
}
