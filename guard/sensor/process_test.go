package sensor

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/guard/event"
)

// nsInode returns the inode of /proc/self/ns/<name>.
func nsInode(t *testing.T, name string) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/"+name, &st); err != nil {
		t.Fatal(err)
	}
	return uint32(st.Ino)
}

// testCgroup creates a cgroup v2 directory and returns an open fd for
// CLONE_INTO_CGROUP and its id (the directory's inode).
func testCgroup(t *testing.T) (int, uint64) {
	t.Helper()
	root := "/sys/fs/cgroup/unified"
	var sfs unix.Statfs_t
	if err := unix.Statfs(root, &sfs); err != nil || sfs.Type != unix.CGROUP2_SUPER_MAGIC {
		root = "/sys/fs/cgroup"
		if err := unix.Statfs(root, &sfs); err != nil || sfs.Type != unix.CGROUP2_SUPER_MAGIC {
			t.Fatalf("no cgroup2 hierarchy at /sys/fs/cgroup/unified or /sys/fs/cgroup")
		}
	}
	dir := filepath.Join(root, "vigil-sensor-test-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return fd, st.Ino
}

func TestExec(t *testing.T) {
	c := startSensor(t, Config{})
	// The child runs as uid 1234, so its cwd must be reachable by anyone.
	dir, err := os.MkdirTemp("", "vigil-exec-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cgfd, cgid := testCgroup(t)

	// A pty becomes the child's controlling terminal.
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pts.Close()
	var ptsStat unix.Stat_t
	if err := unix.Fstat(int(pts.Fd()), &ptsStat); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command("/bin/true", "alpha", "beta gamma", "")
	cmd.Dir = dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential:  &syscall.Credential{Uid: 1234, Gid: 5678},
		Setsid:      true,
		Setctty:     true,
		Ctty:        0,
		UseCgroupFD: true,
		CgroupFD:    cgfd,
	}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := uint32(cmd.Process.Pid)
	e := c.waitFor(t, "exec", of(event.KindExec, pid))

	exe, _ := filepath.EvalSymlinks("/bin/true")
	if e.Proc.Exe != exe {
		t.Errorf("exe %q, want %q", e.Proc.Exe, exe)
	}
	if want := []string{"/bin/true", "alpha", "beta gamma", ""}; !reflect.DeepEqual(e.Proc.Args, want) {
		t.Errorf("args %q, want %q", e.Proc.Args, want)
	}
	if e.Proc.ArgsTruncated || e.Proc.ExeMemfd || e.Proc.ExeUpper {
		t.Errorf("unexpected flags: %+v", e.Proc)
	}
	realDir, _ := filepath.EvalSymlinks(dir)
	if e.Proc.Cwd != realDir {
		t.Errorf("cwd %q, want %q", e.Proc.Cwd, realDir)
	}
	if p := e.Proc; p.UID != 1234 || p.EUID != 1234 || p.GID != 5678 || p.EGID != 5678 {
		t.Errorf("ids uid=%d euid=%d gid=%d egid=%d", p.UID, p.EUID, p.GID, p.EGID)
	}
	if e.Proc.PPID != uint32(os.Getpid()) || e.Proc.TID != pid {
		t.Errorf("ppid %d tid %d, want %d %d", e.Proc.PPID, e.Proc.TID, os.Getpid(), pid)
	}
	if e.Proc.CgroupID != cgid {
		t.Errorf("cgroup id %d, want %d", e.Proc.CgroupID, cgid)
	}
	if e.Proc.TTY != uint32(ptsStat.Rdev) {
		t.Errorf("tty %#x, want %#x", e.Proc.TTY, ptsStat.Rdev)
	}
	if e.Proc.PidNS != nsInode(t, "pid") || e.Proc.MntNS != nsInode(t, "mnt") {
		t.Errorf("ns pid=%d mnt=%d", e.Proc.PidNS, e.Proc.MntNS)
	}
	if lu, _ := os.ReadFile("/proc/self/loginuid"); strconv.FormatUint(uint64(e.Proc.LoginUID), 10) != strings.TrimSpace(string(lu)) {
		t.Errorf("loginuid %d, want %s", e.Proc.LoginUID, lu)
	}
	if e.Proc.Name != "true" {
		t.Errorf("comm %q", e.Proc.Name)
	}
	if d := time.Since(e.Time); d < 0 || d > 30*time.Second {
		t.Errorf("event time %v is %v from now", e.Time, d)
	}
	if e.Proc.StartTime == 0 || e.KTimeNs < e.Proc.StartTime {
		t.Errorf("start time %d, ktime %d", e.Proc.StartTime, e.KTimeNs)
	}

	// The fork that made the child is the test process's own activity and
	// is ignored; TestForkAndExitCodes covers fork. The exit carries the
	// exec's start time: pid plus start time is the process key.
	x := c.waitExit(t, pid)
	if x.Proc.ExitCode != 0 || x.Proc.StartTime != e.Proc.StartTime {
		t.Errorf("exit code %d start %d", x.Proc.ExitCode, x.Proc.StartTime)
	}
}

func TestExecArgsTruncated(t *testing.T) {
	c := startSensor(t, Config{})
	long := strings.Repeat("x", 5000)
	cmd := exec.Command("/bin/true", "first", long)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	e := c.waitFor(t, "exec", of(event.KindExec, uint32(cmd.Process.Pid)))
	if !e.Proc.ArgsTruncated {
		t.Fatal("args not marked truncated")
	}
	if len(e.Proc.Args) != 3 || e.Proc.Args[1] != "first" || !strings.HasPrefix(long, e.Proc.Args[2]) {
		t.Fatalf("args %d: %.40q", len(e.Proc.Args), e.Proc.Args)
	}
	if n := len(strings.Join(e.Proc.Args, "\x00")); n != 4095 {
		t.Fatalf("kept %d argv bytes, want the documented bound 4095", n)
	}
}

func TestForkAndExitCodes(t *testing.T) {
	c := startSensor(t, Config{})
	cmd := exec.Command("/bin/sh", "-c", "/bin/true; exit 7")
	if err := cmd.Run(); err == nil {
		t.Fatal("sh exited 0")
	}
	sh := uint32(cmd.Process.Pid)
	if x := c.waitExit(t, sh); x.Proc.ExitCode != 7 {
		t.Errorf("exit code %d, want 7", x.Proc.ExitCode)
	}
	f := c.waitFor(t, "fork by sh", func(e *event.Event) bool { return e.Kind == event.KindFork && e.Proc.PPID == sh })
	if f.Proc.PID == sh || f.Proc.PID != f.Proc.TID {
		t.Errorf("fork pid %d tid %d", f.Proc.PID, f.Proc.TID)
	}
	ex := c.waitFor(t, "exec of the forked child", of(event.KindExec, f.Proc.PID))
	if ex.Proc.Args[0] != "/bin/true" || ex.Proc.PPID != sh {
		t.Errorf("child exec %q ppid %d", ex.Proc.Args, ex.Proc.PPID)
	}

	kill := exec.Command("/bin/sh", "-c", "kill -9 $$")
	kill.Run()
	if x := c.waitExit(t, uint32(kill.Process.Pid)); x.Proc.ExitCode != -9 {
		t.Errorf("killed exit code %d, want -9", x.Proc.ExitCode)
	}
}

func TestExecMemfd(t *testing.T) {
	c := startSensor(t, Config{})
	pid := runHelper(t, "", "memfd")
	m := c.waitFor(t, "memfd_create", of(event.KindMemfd, pid))
	if m.Priv.Op != "memfd_create" || m.Priv.Name != "vigil-test" || m.Ret < 3 {
		t.Errorf("memfd event %+v ret %d", m.Priv, m.Ret)
	}
	e := c.waitFor(t, "exec from the memfd", func(e *event.Event) bool {
		return of(event.KindExec, pid)(e) && len(e.Proc.Args) > 0 && e.Proc.Args[0] == "true"
	})
	if !e.Proc.ExeMemfd {
		t.Errorf("exe %q not flagged as memfd", e.Proc.Exe)
	}
	if !strings.HasPrefix(e.Proc.Exe, "/memfd:vigil-test") {
		t.Errorf("exe %q", e.Proc.Exe)
	}
	if !reflect.DeepEqual(e.Proc.Args, []string{"true", "from-memfd"}) {
		t.Errorf("args %q", e.Proc.Args)
	}
}

// TestExecOverlayUpper execs from a real overlayfs: a binary of the lower
// layer is not flagged, one written through the mount (so it lives in the
// upper layer) is.
func TestExecOverlayUpper(t *testing.T) {
	c := startSensor(t, Config{})
	base := t.TempDir()
	lower, upper, work, merged := filepath.Join(base, "lower"), filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{lower, upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lower, "fromlower"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(merged, "dropped"), bin, 0o755); err != nil {
		t.Fatal(err)
	}

	for name, wantUpper := range map[string]bool{"fromlower": false, "dropped": true} {
		cmd := exec.Command(filepath.Join(merged, name))
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		e := c.waitFor(t, "exec "+name, of(event.KindExec, uint32(cmd.Process.Pid)))
		if e.Proc.ExeUpper != wantUpper {
			t.Errorf("%s: exe_upper %v, want %v", name, e.Proc.ExeUpper, wantUpper)
		}
		if want := filepath.Join(merged, name); e.Proc.Exe != want {
			t.Errorf("exe %q, want %q", e.Proc.Exe, want)
		}
	}
}

// TestExecPath checks proc.exec_path, the name an exec lock matches: the
// path given to execve even when it is a symlink named differently from its
// target (a busybox applet), and the interpreter as named on a #! line.
func TestExecPath(t *testing.T) {
	c := startSensor(t, Config{})
	dir := t.TempDir()
	applet := filepath.Join(dir, "applet")
	if err := os.Symlink("/bin/true", applet); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(applet)
	cmd.Args = []string{"argv0-differs"}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	e := c.waitFor(t, "exec through a symlink", of(event.KindExec, uint32(cmd.Process.Pid)))
	exe, _ := filepath.EvalSymlinks("/bin/true")
	if e.Proc.Exe != exe || e.Proc.ExecPath != applet {
		t.Errorf("exe %q exec_path %q, want %q %q", e.Proc.Exe, e.Proc.ExecPath, exe, applet)
	}

	interp := filepath.Join(dir, "myshell")
	if err := os.Symlink("/bin/sh", interp); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!"+interp+"\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(script)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	e = c.waitFor(t, "exec of a #! script", of(event.KindExec, uint32(cmd.Process.Pid)))
	sh, _ := filepath.EvalSymlinks("/bin/sh")
	if e.Proc.Exe != sh || e.Proc.ExecPath != interp {
		t.Errorf("script: exe %q exec_path %q, want %q %q", e.Proc.Exe, e.Proc.ExecPath, sh, interp)
	}
}
