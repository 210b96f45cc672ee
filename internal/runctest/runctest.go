// Package runctest runs real containers for tests: Debian's runc 1.1.5 with a
// busybox-static root filesystem, built into an OCI bundle under t.TempDir.
//
// Each container gets a unique id and its own single-level cgroup path, so
// tests may start containers in parallel without sharing any parent cgroup
// that one test could remove while another creates it. Everything is torn
// down on t.Cleanup: the container is killed and deleted and its cgroup
// directories are removed from every hierarchy.
//
// # Notes
//
//   - runc runs with its default state root (/run/runc), as on a real node,
//     so code that scans runc state dirs finds test containers unchanged.
//   - On a hybrid cgroup host (v1 controllers + cgroup2 at
//     /sys/fs/cgroup/unified) runc with cgroupsPath also creates the cgroup in
//     the unified hierarchy, which is what bpf_get_current_cgroup_id reports.
//     On a pure v2 host that path is directly under /sys/fs/cgroup.
//   - crun does not work on the hybrid layout; this package uses runc only.
package runctest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/privtest"
)

// Tool paths. Debian installs runc in /usr/sbin and busybox-static as
// /bin/busybox.
const (
	RuncPath    = "/usr/sbin/runc"
	BusyboxPath = "/bin/busybox"
)

// cgroupPrefix starts every test cgroup name so leftovers are recognisable.
const cgroupPrefix = "vigil-runctest-"

// Options tunes a test container. The zero value runs `sleep 100000` as the
// init process in fresh namespaces with runc's default capabilities.
type Options struct {
	// Args is the init process; default ["sleep", "100000"].
	Args []string
	// HostNetwork shares the host network namespace (so 127.0.0.1 servers
	// started by the test are reachable from inside).
	HostNetwork bool
	// Caps adds capabilities (e.g. "CAP_SETUID") to every capability set.
	Caps []string
	// Files adds files to the root filesystem: path inside the container →
	// content. Parent directories are created.
	Files map[string]string
	// User runs the init process and Exec calls as this uid/gid (default 0).
	UID, GID uint32
	// Mounts adds bind mounts of host paths and fresh tmpfs mounts, in
	// order, so a test can run a real server from the host's package files
	// (e.g. /usr read-only) with a writable data directory.
	Mounts []Mount
	// Symlinks adds symlinks to the root filesystem: path inside the
	// container → target, e.g. "lib" → "usr/lib" for a merged-/usr host.
	Symlinks map[string]string
}

// Mount is one mount in a test container.
type Mount struct {
	// Dest is the absolute path inside the container; its mount point is
	// created in the root filesystem (a file when Source is a file).
	Dest string
	// Source is the host path to bind; empty mounts a fresh tmpfs.
	Source   string
	ReadOnly bool
}

// Container is a running test container.
type Container struct {
	// ID is the runc container id.
	ID string
	// Bundle is the OCI bundle directory (config.json, rootfs/).
	Bundle string
	// Rootfs is the container's root filesystem on the host.
	Rootfs string
	// InitPID is the host pid of the container's init process.
	InitPID int
	// CgroupsPath is the cgroupsPath from config.json, e.g.
	// "/vigil-runctest-1a2b3c".
	CgroupsPath string
	// Cgroup2Dir is the absolute cgroup2 directory of the container.
	Cgroup2Dir string
	// CgroupID is the cgroup2 id of the container: the inode of Cgroup2Dir,
	// the value bpf_get_current_cgroup_id returns for its tasks.
	CgroupID uint64

	uid, gid uint32
}

// Start builds a bundle, runs the container detached and registers its
// teardown with t.Cleanup. It fails t on any error.
func Start(t testing.TB, opts Options) *Container {
	t.Helper()
	privtest.RequireRoot(t)
	privtest.RequireTool(t, RuncPath)
	privtest.RequireTool(t, BusyboxPath)

	reapOnce.Do(reapOrphans)

	id := cgroupPrefix + randomHex(6)
	c := &Container{
		ID:          id,
		Bundle:      t.TempDir(),
		CgroupsPath: "/" + id,
		uid:         opts.UID,
		gid:         opts.GID,
	}
	c.Rootfs = filepath.Join(c.Bundle, "rootfs")
	if err := buildRootfs(c.Rootfs, opts.Files); err != nil {
		t.Fatalf("runctest: build rootfs: %v", err)
	}
	if err := addMountPoints(c.Rootfs, opts.Mounts, opts.Symlinks); err != nil {
		t.Fatalf("runctest: build rootfs: %v", err)
	}
	if err := writeConfig(c.Bundle, c.CgroupsPath, opts); err != nil {
		t.Fatalf("runctest: write config: %v", err)
	}
	// Registered before run so a half-started container is still removed.
	t.Cleanup(func() {
		if err := c.teardown(); err != nil {
			t.Errorf("runctest: teardown %s: %v", c.ID, err)
		}
	})

	logf, err := os.Create(filepath.Join(c.Bundle, "init.log"))
	if err != nil {
		t.Fatalf("runctest: %v", err)
	}
	defer logf.Close()
	// runc -d hands its stdio to the container's init; files (not pipes)
	// keep Wait from blocking until the container exits.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, RuncPath, "run", "-d", "--bundle", c.Bundle, c.ID)
	cmd.Stdin = nil
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(logf.Name())
		t.Fatalf("runctest: runc run %s: %v\n%s", c.ID, err, out)
	}

	st, err := state(c.ID)
	if err != nil {
		t.Fatalf("runctest: %v", err)
	}
	c.InitPID = st.Pid

	c.Cgroup2Dir, err = cgroup2Dir(c.InitPID)
	if err != nil {
		t.Fatalf("runctest: %v", err)
	}
	var sb syscall.Stat_t
	if err := syscall.Stat(c.Cgroup2Dir, &sb); err != nil {
		t.Fatalf("runctest: stat cgroup2 dir: %v", err)
	}
	c.CgroupID = sb.Ino
	return c
}

// Command returns an unstarted `runc exec` of args inside c, for tests that
// need the process running in the background or its pid.
func (c *Container) Command(ctx context.Context, args ...string) *exec.Cmd {
	full := []string{"exec", "--user", fmt.Sprintf("%d:%d", c.uid, c.gid), c.ID}
	full = append(full, args...)
	return exec.CommandContext(ctx, RuncPath, full...)
}

// Exec runs args inside c and returns combined output. It gives up after
// 30 s.
func (c *Container) Exec(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := c.Command(ctx, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("runc exec %v in %s: %w: %s", args, c.ID, err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Pids returns the host pids currently in the container's cgroup.
func (c *Container) Pids() ([]int, error) {
	b, err := os.ReadFile(filepath.Join(c.Cgroup2Dir, "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("read cgroup.procs: %w", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		var p int
		if _, err := fmt.Sscanf(f, "%d", &p); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, nil
}

func (c *Container) teardown() error {
	var errs []error
	if _, err := state(c.ID); err == nil {
		// Kill can race with an init that already exited; delete --force
		// covers both cases, so only its error matters.
		_ = exec.Command(RuncPath, "kill", c.ID, "KILL").Run()
		if out, err := exec.Command(RuncPath, "delete", "--force", c.ID).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("runc delete: %w: %s", err, bytes.TrimSpace(out)))
		}
	}
	// runc removes the cgroups it created, but a failed start can leave them.
	// rmdir only removes empty cgroups, so this never touches live tasks.
	for _, dir := range cgroupDirs(c.CgroupsPath) {
		if err := removeCgroup(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeCgroup removes an (empty) cgroup dir, retrying briefly while the
// kernel finishes reaping the last task.
func removeCgroup(dir string) error {
	var err error
	for i := 0; i < 50; i++ {
		err = syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("rmdir %s: %w", dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("rmdir %s: %w", dir, err)
}

// cgroupDirs lists the directories that cgroupsPath maps to in every mounted
// cgroup hierarchy (v1 controllers and the v2 unified mount).
func cgroupDirs(cgroupsPath string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(fields) || len(fields) < 5 {
			continue
		}
		if typ := fields[sep+1]; typ == "cgroup" || typ == "cgroup2" {
			dirs = append(dirs, filepath.Join(fields[4], cgroupsPath))
		}
	}
	return dirs
}

// reapOnce runs reapOrphans once per test binary.
var reapOnce sync.Once

// reapOrphans removes test containers left behind by a test binary that was
// killed before its cleanups ran (a timeout, ^C). A container is an orphan
// when its bundle directory is gone; bundles of tests running right now in
// other binaries still exist, so they are left alone.
func reapOrphans() {
	out, err := exec.Command(RuncPath, "list", "-f", "json").Output()
	if err != nil {
		return
	}
	var list []struct {
		ID     string `json:"id"`
		Bundle string `json:"bundle"`
	}
	if json.Unmarshal(out, &list) != nil {
		return
	}
	for _, c := range list {
		if !strings.HasPrefix(c.ID, cgroupPrefix) || c.Bundle == "" {
			continue
		}
		if _, err := os.Stat(c.Bundle); !errors.Is(err, os.ErrNotExist) {
			continue
		}
		_ = exec.Command(RuncPath, "delete", "--force", c.ID).Run()
		for _, dir := range cgroupDirs("/" + c.ID) {
			_ = removeCgroup(dir)
		}
	}
}

type runcState struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"`
}

func state(id string) (runcState, error) {
	var st runcState
	out, err := exec.Command(RuncPath, "state", id).Output()
	if err != nil {
		return st, fmt.Errorf("runc state %s: %w", id, err)
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("decode runc state: %w", err)
	}
	if st.Pid <= 0 {
		return st, fmt.Errorf("runc state %s: no init pid (status %q)", id, st.Status)
	}
	return st, nil
}

// cgroup2Dir returns the absolute cgroup2 directory of pid, from its "0::"
// line in /proc/<pid>/cgroup and the cgroup2 mount point.
func cgroup2Dir(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", fmt.Errorf("read cgroup of %d: %w", pid, err)
	}
	var rel string
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			rel = p
		}
	}
	if rel == "" {
		return "", fmt.Errorf("pid %d has no cgroup2 membership", pid)
	}
	mnt := ""
	for _, d := range cgroupDirs("/") {
		if fi, err := os.Stat(filepath.Join(d, "cgroup.controllers")); err == nil && !fi.IsDir() {
			mnt = d
		}
	}
	if mnt == "" {
		return "", errors.New("no cgroup2 mount")
	}
	return filepath.Join(mnt, rel), nil
}

// buildRootfs lays out a busybox-static root filesystem with every applet as
// a symlink, a passwd/shadow pair and a writable /tmp.
func buildRootfs(root string, files map[string]string) error {
	for _, d := range []string{"bin", "sbin", "etc", "tmp", "proc", "sys", "dev", "root", "usr/bin", "usr/sbin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	// os.ModeSticky, not 0o1000: os.Chmod ignores raw permission bits
	// above 0o777.
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o777|os.ModeSticky); err != nil {
		return err
	}
	if err := copyFile(BusyboxPath, filepath.Join(root, "bin/busybox"), 0o755); err != nil {
		return err
	}
	list, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	base := map[string]string{
		"etc/passwd":   "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":    "root:x:0:\nnogroup:x:65534:\n",
		"etc/shadow":   "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
		"etc/hostname": "runctest\n",
		"etc/hosts":    "127.0.0.1 localhost\n",
	}
	for p, content := range base {
		if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(root, "etc/shadow"), 0o600); err != nil {
		return err
	}
	for p, content := range files {
		dst := filepath.Join(root, filepath.Clean("/"+p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, []byte(content), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// addMountPoints creates the symlinks and, for each mount, its mount point:
// a directory, or an empty file where the bound host path is a file.
func addMountPoints(root string, mounts []Mount, links map[string]string) error {
	for p, target := range links {
		dst := filepath.Join(root, filepath.Clean("/"+p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return fmt.Errorf("symlink %s: %w", p, err)
		}
	}
	for _, m := range mounts {
		if !filepath.IsAbs(m.Dest) {
			return fmt.Errorf("mount destination %q is not absolute", m.Dest)
		}
		dst := filepath.Join(root, filepath.Clean(m.Dest))
		if m.Source == "" {
			// runc gives a tmpfs the mode of its mount point, not the
			// mode= option: make it world-writable and sticky like /tmp,
			// so servers running as their own user can write to it.
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(dst, 0o777|os.ModeSticky); err != nil {
				return err
			}
			continue
		}
		dir := true
		if m.Source != "" {
			fi, err := os.Stat(m.Source)
			if err != nil {
				return fmt.Errorf("mount source: %w", err)
			}
			dir = fi.IsDir()
		}
		if dir {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		f.Close()
	}
	return nil
}

// ociMounts renders mounts as OCI config entries.
func ociMounts(mounts []Mount) []any {
	out := make([]any, 0, len(mounts))
	for _, m := range mounts {
		if m.Source == "" {
			opts := []any{"nosuid", "nodev"}
			if m.ReadOnly {
				opts = append(opts, "ro")
			}
			out = append(out, map[string]any{"destination": m.Dest, "type": "tmpfs", "source": "tmpfs", "options": opts})
			continue
		}
		opts := []any{"rbind", "nosuid", "nodev"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		} else {
			opts = append(opts, "rw")
		}
		out = append(out, map[string]any{"destination": m.Dest, "type": "bind", "source": m.Source, "options": opts})
	}
	return out
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// writeConfig starts from `runc spec` (runc's own defaults for this version)
// and adjusts only what tests need.
func writeConfig(bundle, cgroupsPath string, opts Options) error {
	if out, err := exec.Command(RuncPath, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		return fmt.Errorf("runc spec: %w: %s", err, out)
	}
	path := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("decode runc spec: %w", err)
	}
	args := opts.Args
	if len(args) == 0 {
		args = []string{"sleep", "100000"}
	}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = args
	proc["user"] = map[string]any{"uid": opts.UID, "gid": opts.GID}
	if len(opts.Caps) > 0 {
		caps := proc["capabilities"].(map[string]any)
		for set, v := range caps {
			list := v.([]any)
			for _, c := range opts.Caps {
				list = append(list, c)
			}
			caps[set] = list
		}
	}
	spec["root"] = map[string]any{"path": "rootfs", "readonly": false}
	if len(opts.Mounts) > 0 {
		spec["mounts"] = append(spec["mounts"].([]any), ociMounts(opts.Mounts)...)
	}
	linux := spec["linux"].(map[string]any)
	linux["cgroupsPath"] = cgroupsPath
	if opts.HostNetwork {
		var kept []any
		for _, ns := range linux["namespaces"].([]any) {
			if ns.(map[string]any)["type"] != "network" {
				kept = append(kept, ns)
			}
		}
		linux["namespaces"] = kept
	}
	out, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o644)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}
