package sensor

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	bpfsensor "github.com/vigilsec/vigil/bpf/sensor"
	"github.com/vigilsec/vigil/guard/event"
)

// fileTestDir returns a fresh directory with symlinks resolved, so the
// paths the kernel reports can be compared byte for byte.
func fileTestDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestOpenPrefilter(t *testing.T) {
	dir := fileTestDir(t)
	secret := filepath.Join(dir, "secret")
	plain := filepath.Join(dir, "plain")
	watched := filepath.Join(dir, "watched")
	for _, p := range []string{secret, plain} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(watched, 0o755); err != nil {
		t.Fatal(err)
	}
	interest := append(DefaultInterest(),
		Interest{Prefix: secret, Mode: ReportAlways},
		Interest{Prefix: watched + "/", Mode: ReportWrites},
		Interest{Prefix: dir + "/missing/", Mode: ReportAlways},
	)
	c := startSensor(t, Config{Interest: interest})
	before, err := c.s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// The guard's own opens are ignored in the kernel.
	if err := openLoop(secret, 1); err != nil {
		t.Fatal(err)
	}

	rdonly := strconv.Itoa(unix.O_RDONLY)
	creat := strconv.Itoa(unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC)

	// Read of an always-report file, by a relative name: the kernel reports
	// the resolved absolute path.
	pid := runHelper(t, dir, "open", "secret", rdonly)
	e := c.waitFor(t, "open secret", ofPath(event.KindOpen, pid, secret))
	if e.File.Flags&unix.O_ACCMODE != unix.O_RDONLY || e.Ret < 3 {
		t.Errorf("flags %#o ret %d", e.File.Flags, e.Ret)
	}

	// Read-only opens of ordinary files and of write-watched files are
	// filtered in the kernel; a write under the watched prefix is not.
	pids := []uint32{
		runHelper(t, dir, "open", plain, rdonly),
		runHelper(t, dir, "open", filepath.Join(watched, "new"), creat),
		runHelper(t, dir, "open", filepath.Join(watched, "new"), rdonly),
		runHelper(t, dir, "openat2", watched, "viaopenat2"),
		runHelper(t, dir, "open-missing", filepath.Join(dir, "missing", "nofile")),
		runHelper(t, "/", "open", "/etc/shadow", rdonly),
	}
	for _, p := range pids {
		c.waitExit(t, p)
	}
	if got := c.all(ofPath(event.KindOpen, pids[0], plain)); len(got) != 0 {
		t.Errorf("read-only open of an ordinary file reached userspace: %+v", got[0].File)
	}
	w := c.waitFor(t, "write open", ofPath(event.KindOpen, pids[1], filepath.Join(watched, "new")))
	if w.File.Flags&(unix.O_CREAT|unix.O_WRONLY) != unix.O_CREAT|unix.O_WRONLY || w.File.Mode != 0o640 {
		t.Errorf("write open flags %#o mode %#o", w.File.Flags, w.File.Mode)
	}
	if got := c.all(ofPath(event.KindOpen, pids[2], filepath.Join(watched, "new"))); len(got) != 0 {
		t.Errorf("read-only open under a writes-only prefix reached userspace")
	}
	o2 := c.waitFor(t, "openat2", ofPath(event.KindOpen, pids[3], filepath.Join(watched, "viaopenat2")))
	if o2.File.Flags&unix.O_CREAT == 0 || o2.File.Mode != 0o600 {
		t.Errorf("openat2 flags %#o mode %#o", o2.File.Flags, o2.File.Mode)
	}
	m := c.waitFor(t, "failed open", ofPath(event.KindOpen, pids[4], filepath.Join(dir, "missing", "nofile")))
	if m.Ret != -int64(unix.ENOENT) {
		t.Errorf("failed open ret %d", m.Ret)
	}
	c.waitFor(t, "open /etc/shadow", ofPath(event.KindOpen, pids[5], "/etc/shadow"))
	if got := c.all(ofPath(event.KindOpen, uint32(os.Getpid()), secret)); len(got) != 0 {
		t.Errorf("the sensor reported its own process")
	}

	// open(2) and creat(2), the pre-openat syscalls.
	lp := runHelper(t, dir, "open-legacy", watched)
	c.waitExit(t, lp)
	legacy := c.all(ofPath(event.KindOpen, lp, filepath.Join(watched, "viacreat")))
	if len(legacy) != 2 {
		t.Fatalf("%d events for creat(2) and open(2), want 2", len(legacy))
	}
	if cr := legacy[0].File; cr.Flags != unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC || cr.Mode != 0o600 {
		t.Errorf("creat flags %#o mode %#o", cr.Flags, cr.Mode)
	}
	if op := legacy[1].File; op.Flags != unix.O_WRONLY|unix.O_APPEND {
		t.Errorf("open(2) flags %#o", op.Flags)
	}

	after, err := c.s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if after.Kinds[event.KindOpen].Filtered < before.Kinds[event.KindOpen].Filtered+2 {
		t.Errorf("filtered opens went from %d to %d; the two read-only opens were not counted",
			before.Kinds[event.KindOpen].Filtered, after.Kinds[event.KindOpen].Filtered)
	}

	// SetInterest swaps the list: the plain file is now always reported,
	// the secret no longer is.
	if err := c.s.SetInterest([]Interest{{Prefix: plain, Mode: ReportAlways}}); err != nil {
		t.Fatal(err)
	}
	p1 := runHelper(t, dir, "open", plain, rdonly)
	p2 := runHelper(t, dir, "open", secret, rdonly)
	c.waitFor(t, "open plain after SetInterest", ofPath(event.KindOpen, p1, plain))
	c.waitExit(t, p2)
	if got := c.all(ofPath(event.KindOpen, p2, secret)); len(got) != 0 {
		t.Errorf("removed interest still reported")
	}
}

func TestSetInterestRejectsBadEntries(t *testing.T) {
	for _, in := range []Interest{
		{Prefix: "relative/", Mode: ReportAlways},
		{Prefix: "/x", Mode: 0},
		{Prefix: "/x", Mode: 8},
		{Prefix: "/a\x00b", Mode: ReportAlways},
		{Prefix: "/" + string(make([]byte, 300)), Mode: ReportAlways},
	} {
		if _, err := interestKey(in); err == nil {
			t.Errorf("interestKey(%q, %d): no error", in.Prefix, in.Mode)
		}
	}
	k, err := interestKey(Interest{Prefix: "/etc/shadow", Mode: ReportAlways})
	if err != nil || k.Prefixlen != 12*8 || k.Path[11] != 0 {
		t.Errorf("exact file key: %v prefixlen %d", err, k.Prefixlen)
	}
	k, err = interestKey(Interest{Prefix: "/etc/", Mode: ReportWrites})
	if err != nil || k.Prefixlen != 5*8 {
		t.Errorf("directory key: %v prefixlen %d", err, k.Prefixlen)
	}
}

func TestFileNamespaceOps(t *testing.T) {
	c := startSensor(t, Config{})
	dir := fileTestDir(t)
	pid := runHelper(t, dir, "files")
	c.waitExit(t, pid)
	p := func(n string) string { return filepath.Join(dir, n) }

	type want struct {
		kind          event.Kind
		path, newPath string
		flags, mode   uint32
	}
	for _, w := range []want{
		{event.KindRename, p("a"), p("a2"), 0, 0},
		{event.KindRename, p("a2"), p("a3"), unix.RENAME_NOREPLACE, 0},
		{event.KindLink, p("a3"), p("l1"), 0, 0},
		{event.KindLink, p("a3"), p("l2"), 0, 0},
		{event.KindSymlink, "/target/one", p("s1"), 0, 0},
		{event.KindSymlink, "../target/two", p("s2"), 0, 0},
		{event.KindUnlink, p("l1"), "", 0, 0},
		{event.KindUnlink, p("l2"), "", 0, 0},
		{event.KindChmod, p("b"), "", 0, 0o4755},
		{event.KindChmod, p("b"), "", 0, 0o2750},
		{event.KindChmod, p("b"), "", 0, 0o6711}, // fchmod, path from the fd
	} {
		got := c.all(func(e *event.Event) bool {
			return e.Kind == w.kind && e.Proc.PID == pid && e.File.Path == w.path && e.File.NewPath == w.newPath && e.File.Mode == w.mode
		})
		if len(got) != 1 {
			t.Errorf("%v %q -> %q mode %#o: %d events, want 1", w.kind, w.path, w.newPath, w.mode, len(got))
			continue
		}
		if got[0].File.Flags != w.flags || got[0].Ret != 0 {
			t.Errorf("%v %q: flags %#x ret %d", w.kind, w.path, got[0].File.Flags, got[0].Ret)
		}
	}
	if got := c.all(func(e *event.Event) bool {
		return e.Kind == event.KindChmod && e.Proc.PID == pid && e.File.Mode == 0o755
	}); len(got) != 0 {
		t.Errorf("chmod without setuid/setgid was reported")
	}
}

// TestOpenVerdictCache checks that the kernel caches prefilter verdicts per
// opened file, and that a rename invalidates them: a file moved under an
// always-report prefix is reported on its next read even though its dentry,
// mount and inode are unchanged.
func TestOpenVerdictCache(t *testing.T) {
	dir := fileTestDir(t)
	vault := filepath.Join(dir, "vault")
	if err := os.Mkdir(vault, 0o755); err != nil {
		t.Fatal(err)
	}
	x := filepath.Join(dir, "x")
	if err := os.WriteFile(x, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(x, &st); err != nil {
		t.Fatal(err)
	}
	c := startSensor(t, Config{Interest: []Interest{{Prefix: vault + "/", Mode: ReportAlways}}})
	rdonly := strconv.Itoa(unix.O_RDONLY)

	p1 := runHelper(t, dir, "open", x, rdonly)
	c.waitExit(t, p1)
	if got := c.all(ofPath(event.KindOpen, p1, x)); len(got) != 0 {
		t.Fatalf("uninteresting open reported")
	}
	var k bpfsensor.SensorVerdictKey
	var v bpfsensor.SensorVerdict
	cached := false
	for it := c.s.objs.Verdicts.Iterate(); it.Next(&k, &v); {
		if k.Ino == st.Ino {
			cached = true
			if v.Want != 0 {
				t.Errorf("cached verdict for %s wants %d, want 0", x, v.Want)
			}
		}
	}
	if !cached {
		t.Fatalf("no cached verdict for inode %d", st.Ino)
	}

	// The rename is the test process's own, which is not reported but must
	// still invalidate the cache.
	moved := filepath.Join(vault, "x")
	if err := os.Rename(x, moved); err != nil {
		t.Fatal(err)
	}
	p2 := runHelper(t, dir, "open", moved, rdonly)
	c.waitFor(t, "open of the moved file", ofPath(event.KindOpen, p2, moved))
}

// TestDeepPathIsMarkedAndReported opens a file 40 directories deep: the walk
// keeps the deepest 32 components, marks the cut, and reports the open even
// though no interest matches, because a cut path cannot be judged.
func TestDeepPathIsMarkedAndReported(t *testing.T) {
	dir := fileTestDir(t)
	deep := dir
	var parts []string
	for range 40 {
		deep = filepath.Join(deep, "d")
		parts = append(parts, "d")
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	leaf := filepath.Join(deep, "leaf")
	if err := os.WriteFile(leaf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	parts = append(parts, "leaf")
	c := startSensor(t, Config{Interest: []Interest{{Prefix: "/nonexistent/", Mode: ReportAlways}}})
	pid := runHelper(t, deep, "open", "leaf", strconv.Itoa(unix.O_RDONLY))
	want := "…/" + filepath.Join(parts[len(parts)-32:]...)
	e := c.waitFor(t, "deep open", ofPath(event.KindOpen, pid, want))
	if e.Ret < 3 {
		t.Errorf("ret %d", e.Ret)
	}
}

// TestIgnoreSelf toggles the kernel's ignore list for the test process: its
// opens are reported only while it is not ignored.
func TestIgnoreSelf(t *testing.T) {
	dir := fileTestDir(t)
	c := startSensor(t, Config{Interest: []Interest{{Prefix: dir + "/", Mode: ReportAlways}}})
	self := uint32(os.Getpid())
	open := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := openLoop(p, 1); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hidden1 := open("hidden1") // ignored by default (Config.ReportSelf false)
	if err := c.s.Unignore(self); err != nil {
		t.Fatal(err)
	}
	seen := open("seen")
	c.waitFor(t, "own open while not ignored", ofPath(event.KindOpen, self, seen))
	if err := c.s.Ignore(self); err != nil {
		t.Fatal(err)
	}
	hidden2 := open("hidden2")
	if err := c.s.Unignore(self); err != nil {
		t.Fatal(err)
	}
	marker := open("marker")
	c.waitFor(t, "marker", ofPath(event.KindOpen, self, marker))
	for _, p := range []string{hidden1, hidden2} {
		if got := c.all(ofPath(event.KindOpen, self, p)); len(got) != 0 {
			t.Errorf("open of %s reported while ignored", p)
		}
	}
}
