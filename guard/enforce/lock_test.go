package enforce

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/internal/privtest"
	"github.com/vigilsec/vigil/internal/runctest"
)

// lockLayout is a multi-call layout like busybox's, built from the marker
// ELF so that "it ran" is exact: bin/multi is one file that creates the
// marker with its first instructions; bin/cat, bin/sleep and bin/sh are
// symlinks to it; other/cat is a copy (another inode, an allowed name).
type lockLayout struct {
	bin, other, marker string
}

func newLockLayout(t *testing.T) lockLayout {
	t.Helper()
	dir := t.TempDir()
	l := lockLayout{bin: filepath.Join(dir, "bin"), other: filepath.Join(dir, "other")}
	for _, d := range []string{l.bin, l.other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	prog, marker := writeMarkerProgram(t, l.bin, "multi")
	l.marker = marker
	for _, n := range []string{"cat", "sleep", "sh"} {
		if err := os.Symlink("multi", filepath.Join(l.bin, n)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(prog)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.other, "cat"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	return l
}

// run execs path with argv[0] inside cgroup and reports the outcome and
// whether the program ran an instruction (the marker exists).
func (l lockLayout) run(t *testing.T, cgroup, path, argv0 string) (error, bool) {
	t.Helper()
	os.Remove(l.marker)
	cmd := inCgroup(t, cgroup, path)
	cmd.Args[0] = argv0
	err := runBounded(t, cmd)
	return err, exists(l.marker)
}

func killed(err error) bool {
	var ee interface{ Sys() any }
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// lockSuite locks a workload to {cat, sleep} and checks every way around
// it, through whichever backend the enforcer picked: BPF-LSM denies with
// EPERM (the exec fails, nothing runs), exec_kill kills with SIGKILL before
// the new image's first instruction. The argv[0] check of a multi-call
// binary is exec_kill's on both rungs. The audit twin lets everything run
// and records what the lock would have denied.
func lockSuite(t *testing.T, e *Enforcer, rec *recorder, backend Backend) {
	l := newLockLayout(t)
	allow := []string{filepath.Join(l.bin, "cat"), filepath.Join(l.bin, "sleep")}
	denied := func(t *testing.T, err error, b Backend) bool {
		if b == BackendLSM {
			return errors.Is(err, syscall.EPERM)
		}
		return killed(err)
	}

	w := workload(t, "locked")
	if err := e.Lock(w, ExecLock{Paths: allow}); err != nil {
		t.Fatal(err)
	}
	if ok, n := e.Locked(w); !ok || n != 3 {
		t.Fatalf("Locked = %v, %d entries; want true, 3 (cat, sleep, exe)", ok, n)
	}
	// #! scripts: the script is not a program; its interpreter is checked
	// under the name the #! line gives it.
	scripts := t.TempDir()
	for _, interp := range []string{"cat", "sh"} {
		body := "#!" + filepath.Join(l.bin, interp) + "\n"
		if err := os.WriteFile(filepath.Join(scripts, "via-"+interp), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, path, argv0 string
		allowed           bool
		by                Backend // the rung that must deny
		recName           string
	}{
		{"allowed name", filepath.Join(l.bin, "cat"), "cat", true, 0, ""},
		{"allowed full path argv0", filepath.Join(l.bin, "sleep"), filepath.Join(l.bin, "sleep"), true, 0, ""},
		{"login-style argv0", filepath.Join(l.bin, "cat"), "-cat", true, 0, ""},
		{"same inode, unlisted name", filepath.Join(l.bin, "sh"), "sh", false, backend, "sh"},
		{"same inode, its own name", filepath.Join(l.bin, "multi"), "multi", false, backend, "multi"},
		{"allowed name, other inode", filepath.Join(l.other, "cat"), "cat", false, backend, "cat"},
		{"script with an allowed interpreter", filepath.Join(scripts, "via-cat"), "via-cat", true, 0, ""},
		{"script with an unlisted interpreter", filepath.Join(scripts, "via-sh"), "via-sh", false, backend, "sh"},
		// busybox runs the applet argv[0] names: allowed path, argv[0] sh.
		{"allowed path, argv0 of an unlisted applet", filepath.Join(l.bin, "cat"), "sh", false, BackendExecKill, "sh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err, ran := l.run(t, w.CgroupPath, tc.path, tc.argv0)
			if tc.allowed {
				if err != nil || !ran {
					t.Fatalf("allowed exec: err=%v ran=%v", err, ran)
				}
				return
			}
			if !denied(t, err, tc.by) {
				t.Fatalf("exec of %s (argv0 %q): err=%v, want denied by %s", tc.path, tc.argv0, err, tc.by)
			}
			if ran {
				t.Fatal("denied program ran an instruction: marker exists")
			}
			r := rec.wait(t, tc.name, func(r Record) bool {
				return r.Rule == DefaultLockRule && r.Workload == w.Key() && r.Name == tc.recName && r.Backend == tc.by
			})
			if !r.Denied || r.Mode != alert.ModeEnforce {
				t.Errorf("record %+v", r)
			}
		})
	}

	// Updates: widening lets sh run; narrowing denies sleep; unlock lifts it.
	if err := e.Lock(w, ExecLock{Paths: append(allow, filepath.Join(l.bin, "sh"))}); err != nil {
		t.Fatal(err)
	}
	if err, ran := l.run(t, w.CgroupPath, filepath.Join(l.bin, "sh"), "sh"); err != nil || !ran {
		t.Fatalf("sh after it was allowed: err=%v ran=%v", err, ran)
	}
	if err := e.Lock(w, ExecLock{Paths: allow[:1]}); err != nil {
		t.Fatal(err)
	}
	if err, ran := l.run(t, w.CgroupPath, filepath.Join(l.bin, "sleep"), "sleep"); !denied(t, err, backend) || ran {
		t.Fatalf("sleep after the list narrowed: err=%v ran=%v", err, ran)
	}
	// Deny rules applied later keep the lock.
	if err := e.Apply(w, []Rule{{Name: "unrelated", Action: alert.ActionBlock, ExecNames: []string{"nothing"}}}); err != nil {
		t.Fatal(err)
	}
	if err, ran := l.run(t, w.CgroupPath, filepath.Join(l.bin, "sh"), "sh"); !denied(t, err, backend) || ran {
		t.Fatalf("lock lost by Apply: err=%v ran=%v", err, ran)
	}
	if err := e.Unlock(w); err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.Locked(w); ok {
		t.Fatal("still locked after Unlock")
	}
	if err, ran := l.run(t, w.CgroupPath, filepath.Join(l.other, "cat"), "cat"); err != nil || !ran {
		t.Fatalf("exec after unlock: err=%v ran=%v", err, ran)
	}

	// Precise entries, what a learned profile pushes: the file under the
	// names it ran by, not its own name unless listed, and not its other
	// links. An entry without names is allowed under its own name.
	wp := workload(t, "locked-precise")
	multi := filepath.Join(l.bin, "multi")
	if err := e.Lock(wp, ExecLock{Execs: []ExecAllow{{Path: multi, Names: []string{"cat", "sleep"}}}}); err != nil {
		t.Fatal(err)
	}
	if ok, n := e.Locked(wp); !ok || n != 3 {
		t.Fatalf("precise Locked = %v, %d entries; want true, 3 (cat, sleep, exe)", ok, n)
	}
	for _, tc := range []struct {
		path, argv0 string
		allowed     bool
	}{
		{filepath.Join(l.bin, "cat"), "cat", true},
		{filepath.Join(l.bin, "sleep"), "sleep", true},
		{filepath.Join(l.bin, "sh"), "sh", false},
		{multi, "multi", false},
		{filepath.Join(l.bin, "cat"), "sh", false}, // argv[0] check
		{filepath.Join(l.other, "cat"), "cat", false},
	} {
		err, ran := l.run(t, wp.CgroupPath, tc.path, tc.argv0)
		if tc.allowed && (err != nil || !ran) {
			t.Fatalf("precise lock, allowed %s (argv0 %q): err=%v ran=%v", tc.path, tc.argv0, err, ran)
		}
		if !tc.allowed && (err == nil || ran) {
			t.Fatalf("precise lock, denied %s (argv0 %q): err=%v ran=%v", tc.path, tc.argv0, err, ran)
		}
	}
	if err := e.Lock(wp, ExecLock{Execs: []ExecAllow{{Path: multi}}}); err != nil {
		t.Fatal(err)
	}
	if err, ran := l.run(t, wp.CgroupPath, multi, "multi"); err != nil || !ran {
		t.Fatalf("entry without names, own name: err=%v ran=%v", err, ran)
	}
	if err, ran := l.run(t, wp.CgroupPath, filepath.Join(l.bin, "sh"), "sh"); err == nil || ran {
		t.Fatalf("entry without names, a link outside the bin dirs: err=%v ran=%v", err, ran)
	}
	if err := e.Lock(wp, ExecLock{Execs: []ExecAllow{{Path: multi, Names: []string{"a/b"}}}}); err == nil {
		t.Fatal("a name with a slash was accepted")
	}
	if err := e.Remove(wp); err != nil {
		t.Fatal(err)
	}

	// A locked program that re-executes itself through /proc/self/exe.
	wr := workload(t, "locked-reexec")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Lock(wr, ExecLock{Paths: []string{self}}); err != nil {
		t.Fatal(err)
	}
	if got := helper(t, wr.CgroupPath, "reexec"); got != "ok reexec" {
		t.Fatalf("re-exec through /proc/self/exe in a locked workload: %q", got)
	}

	// The audit twin: everything runs, the lock's would-deny is recorded.
	wa := workload(t, "locked-audit")
	if err := e.Lock(wa, ExecLock{Rule: "audit-lock", Paths: allow}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(l.bin, "sh"), filepath.Join(l.other, "cat")} {
		if err, ran := l.run(t, wa.CgroupPath, p, filepath.Base(p)); err != nil || !ran {
			t.Fatalf("audit-mode exec of %s: err=%v ran=%v", p, err, ran)
		}
	}
	r := rec.wait(t, "audit lock", func(r Record) bool {
		return r.Rule == "audit-lock" && r.Workload == wa.Key() && r.Name == "sh" && r.Backend == backend
	})
	if r.Denied || r.Mode != alert.ModeAudit {
		t.Errorf("audit record %+v", r)
	}
	if a := r.Alert(); a.Taken || a.Mode != alert.ModeAudit || !strings.Contains(a.Message, "would have") {
		t.Errorf("audit alert %+v", a)
	}
}

// TestExecLock runs the lock suite on this host's exec_kill rung (no
// BPF-LSM here; TestLSMExecLock runs it in the QEMU guest).
func TestExecLock(t *testing.T) {
	privtest.RequireBTF(t)
	e, rec := newTestEnforcer(t, Config{})
	if e.Report().Active(BackendLSM) {
		t.Skip("BPF-LSM is active; TestLSMExecLock covers it")
	}
	if !e.Report().Active(BackendExecKill) {
		t.Fatalf("exec_kill inactive: %s", e.Report().Status(BackendExecKill).Reason)
	}
	lockSuite(t, e, rec, BackendExecKill)
}

// TestLSMExecLock runs the lock suite on the BPF-LSM rung in the guest.
func TestLSMExecLock(t *testing.T) {
	privtest.RequireBTF(t)
	e, rec := newTestEnforcer(t, Config{})
	if !e.Report().Active(BackendLSM) {
		if inGuest() {
			t.Fatalf("BPF-LSM inactive in the guest: %s", e.Report().Status(BackendLSM).Reason)
		}
		t.Skipf("no BPF-LSM here (%s); make vmtest runs this test", e.Report().Status(BackendLSM).Reason)
	}
	if !e.Report().Active(BackendExecKill) {
		t.Fatalf("exec_kill inactive beside LSM: %s", e.Report().Status(BackendExecKill).Reason)
	}
	lockSuite(t, e, rec, BackendLSM)
}

// TestLockErrors: bad lock input gets a clear error.
func TestLockErrors(t *testing.T) {
	privtest.RequireBTF(t)
	e, _ := newTestEnforcer(t, Config{})
	w := workload(t, "lock-errors")
	for _, tc := range []struct {
		l    ExecLock
		want string
	}{
		{ExecLock{Paths: []string{"bin/cat"}}, "not absolute"},
		{ExecLock{Paths: []string{"/"}}, "names no file"},
		{ExecLock{Paths: []string{os.TempDir()}}, "not a regular file"},
		{ExecLock{Action: alert.ActionAlert, Paths: []string{"/bin/sh"}}, "not enforceable"},
	} {
		if err := e.Lock(w, tc.l); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Lock(%+v) = %v, want %q", tc.l, err, tc.want)
		}
	}
	if ok, _ := e.Locked(w); ok {
		t.Error("a failed Lock left the workload locked")
	}
}

// TestRuncExecLock locks a real runc container (busybox-static, every
// applet a symlink to /bin/busybox) to {sleep, cat}: cat runs; sh, wget and
// a program copied in under the name cat are killed at exec (exit 137)
// before running an instruction; the audit twin runs them all and records.
func TestRuncExecLock(t *testing.T) {
	privtest.RequireBTF(t)
	if inGuest() {
		t.Skip("no runc in the guest")
	}
	e, rec := newTestEnforcer(t, Config{Disable: []Backend{BackendLSM}})
	for _, tc := range []struct {
		rule    string
		enforce bool
	}{{DefaultLockRule, true}, {"audit-lock", false}} {
		t.Run(tc.rule, func(t *testing.T) {
			c := runctest.Start(t, runctest.Options{})
			// A copied program under an allowed name: the marker ELF, so
			// "it ran" is exact.
			if err := os.WriteFile(filepath.Join(c.Rootfs, "tmp/cat"), markerELF("/tmp/cat.ran"), 0o755); err != nil {
				t.Fatal(err)
			}
			w := Workload{Namespace: "runc", Name: c.ID, CgroupPath: c.Cgroup2Dir, Root: filepath.Join("/proc", strconv.Itoa(c.InitPID), "root")}
			if err := e.Lock(w, ExecLock{Rule: tc.rule, Paths: []string{"/bin/sleep", "/bin/cat"}}); err != nil {
				t.Fatal(err)
			}
			if out, err := c.Exec("cat", "/proc/self/comm"); err != nil || strings.TrimSpace(string(out)) != "cat" {
				t.Fatalf("allowed cat: %v: %q", err, out)
			}
			for _, args := range [][]string{{"sh", "-c", "touch /tmp/sh.ran"}, {"wget", "-q", "-O", "/tmp/wget.ran", "http://127.0.0.1:1/"}, {"/tmp/cat"}} {
				out, err := c.Exec(args...)
				marker := filepath.Join(c.Rootfs, "tmp", filepath.Base(args[0])+".ran")
				if tc.enforce {
					var ee interface{ ExitCode() int }
					if !errors.As(err, &ee) || ee.ExitCode() != 137 {
						t.Fatalf("%v in a locked container: err=%v out=%q, want exit 137", args, err, out)
					}
					if exists(marker) {
						t.Fatalf("%v ran an instruction: %s exists", args, marker)
					}
				} else if args[0] != "wget" && (err != nil || !exists(marker)) {
					// wget fails to connect either way; it ran if a record says so.
					t.Fatalf("%v in audit mode: err=%v out=%q marker=%v", args, err, out, exists(marker))
				}
				name := filepath.Base(args[0])
				r := rec.wait(t, strings.Join(args, " "), func(r Record) bool {
					return r.Rule == tc.rule && r.Workload == w.Key() && r.Name == name
				})
				if r.Denied != tc.enforce || r.Backend != BackendExecKill || r.Action != alert.ActionKill {
					t.Errorf("record %+v", r)
				}
			}
		})
	}
}

// TestLockAuditReport: what an audit-mode lock would have denied reaches
// the audit store and the would-block report (the promotion evidence).
func TestLockAuditReport(t *testing.T) {
	privtest.RequireBTF(t)
	db := filepath.Join(t.TempDir(), "audit.db")
	e, err := New(Config{Modes: suiteModes, AuditDB: db})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	l := newLockLayout(t)
	w := workload(t, "lock-report")
	if err := e.Lock(w, ExecLock{Rule: "audit-lock", Paths: []string{filepath.Join(l.bin, "cat")}}); err != nil {
		t.Fatal(err)
	}
	// exec_kill carries a lock out as a kill; BPF-LSM as a block.
	action := "kill"
	if e.Report().Active(BackendLSM) {
		action = "block"
	}
	for range 2 {
		if err, ran := l.run(t, w.CgroupPath, filepath.Join(l.bin, "sh"), "sh"); err != nil || !ran {
			t.Fatalf("audit-mode exec: err=%v ran=%v", err, ran)
		}
	}
	time.Sleep(100 * time.Millisecond) // let the ring buffer reader catch up
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := OpenAuditStore(db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs, err := s.Since(time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	rep := ReportWouldBlock(recs)
	if len(rep) != 1 || rep[0].Workload != w.Key() || len(rep[0].Entries) != 1 {
		t.Fatalf("report %+v from %+v", rep, recs)
	}
	if row := rep[0].Entries[0]; row.Rule != "audit-lock" || row.Count != 2 || row.Kind != "exec" || row.Action != action {
		t.Errorf("row %+v", row)
	}
}
