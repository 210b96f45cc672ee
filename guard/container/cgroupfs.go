package container

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrNoCgroup2 means no cgroup2 hierarchy is mounted: a pure cgroup v1 host,
// where the kernel's cgroup id does not name container cgroups.
var ErrNoCgroup2 = errors.New("no cgroup2 mount")

// FindCgroup2Mount returns the mount point of the cgroup2 hierarchy listed
// in mountinfo (the format of /proc/self/mountinfo): /sys/fs/cgroup on a
// pure v2 host, /sys/fs/cgroup/unified on a hybrid one.
func FindCgroup2Mount(mountinfo io.Reader) (string, error) {
	sc := bufio.NewScanner(mountinfo)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		m, ok := parseMountinfoLine(sc.Text())
		if ok && m.fsType == "cgroup2" {
			return m.mountPoint, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	return "", ErrNoCgroup2
}

// Cgroup2Mount reads /proc/self/mountinfo and returns the cgroup2 mount.
func Cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("open mountinfo: %w", err)
	}
	defer f.Close()
	return FindCgroup2Mount(f)
}

type mountEntry struct {
	mountPoint, fsType string
}

// parseMountinfoLine reads one line of proc(5) mountinfo:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
//
// The optional fields end at "-"; the mount point is octal-escaped.
func parseMountinfoLine(line string) (mountEntry, bool) {
	fields := strings.Fields(line)
	if len(fields) < 7 {
		return mountEntry{}, false
	}
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || sep+1 >= len(fields) {
		return mountEntry{}, false
	}
	return mountEntry{mountPoint: unescapeOctal(fields[4]), fsType: fields[sep+1]}, true
}

// unescapeOctal undoes the kernel's \ooo escaping of space, tab, newline
// and backslash in mountinfo paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ProcCgroup is the parsed content of /proc/<pid>/cgroup.
type ProcCgroup struct {
	// Unified is the cgroup2 path (the "0::" line); empty if none.
	Unified string
	// V1 maps each v1 controller list (e.g. "cpu,cpuacct", "name=systemd")
	// to its path.
	V1 map[string]string
}

// ErrBadProcCgroup marks malformed /proc/<pid>/cgroup content.
var ErrBadProcCgroup = errors.New("malformed /proc/<pid>/cgroup")

// ParseProcCgroup parses /proc/<pid>/cgroup lines of the form
// "hierarchy-id:controllers:path".
func ParseProcCgroup(b []byte) (ProcCgroup, error) {
	var pc ProcCgroup
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		id, rest, ok1 := bytes.Cut(line, []byte{':'})
		ctrl, path, ok2 := bytes.Cut(rest, []byte{':'})
		if !ok1 || !ok2 || len(path) == 0 || path[0] != '/' {
			return ProcCgroup{}, fmt.Errorf("%w: line %q", ErrBadProcCgroup, line)
		}
		if _, err := strconv.ParseUint(string(id), 10, 32); err != nil {
			return ProcCgroup{}, fmt.Errorf("%w: hierarchy id %q", ErrBadProcCgroup, id)
		}
		if string(id) == "0" && len(ctrl) == 0 {
			pc.Unified = string(path)
			continue
		}
		if pc.V1 == nil {
			pc.V1 = make(map[string]string)
		}
		pc.V1[string(ctrl)] = string(path)
	}
	return pc, nil
}

// ContainerPath picks the path that best identifies pc's container: the
// cgroup2 path, else the name=systemd or first v1 path that names one.
func (pc ProcCgroup) ContainerPath() string {
	if pc.Unified != "" && pc.Unified != "/" {
		return pc.Unified
	}
	if p, ok := pc.V1["name=systemd"]; ok && ParsePath(p).IsContainer() {
		return p
	}
	for _, p := range pc.V1 {
		if ParsePath(p).IsContainer() {
			return p
		}
	}
	return pc.Unified
}

// CgroupID returns the cgroup2 id of the directory at path: its inode,
// which is what bpf_get_current_cgroup_id reports for tasks in it.
func CgroupID(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat cgroup %s: %w", path, err)
	}
	return st.Ino, nil
}

// walkCgroups maps the id of every cgroup under root to its path relative
// to root (with a leading "/"). Cgroups that vanish mid-walk are skipped.
func walkCgroups(root string) (map[uint64]string, error) {
	ids := make(map[uint64]string, 256)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != root {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed between readdir and stat
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		rel := strings.TrimPrefix(path, root)
		if rel == "" {
			rel = "/"
		}
		ids[st.Ino] = rel
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk cgroup2 %s: %w", root, err)
	}
	return ids, nil
}
