package enforce

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/internal/privtest"
)

// TestGuardDownFailOpen: by default, enforcement ends with the guard.
// Fanotify groups die with their fd (the kernel allows pending and future
// events) and unpinned programs detach when their links close.
func TestGuardDownFailOpen(t *testing.T) {
	privtest.RequireBTF(t)
	e, err := New(Config{Modes: suiteModes})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	w := workload(t, "fail-open")
	prog, marker := writeMarkerProgram(t, dir, "failopen")
	ln := newListener(t)
	if err := e.Apply(w, []Rule{{Name: "deny", Action: alert.ActionBlock, ExecPaths: []string{prog},
		Connect: []NetMatch{{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Port: ln.port()}}}}); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ln.port())
	if got := helper(t, w.CgroupPath, "connect", addr); got != "errno EPERM" {
		t.Fatalf("while up: %q", got)
	}
	if err := runBounded(t, inCgroup(t, w.CgroupPath, prog)); err == nil || exists(marker) {
		t.Fatalf("while up, exec allowed: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if got := helper(t, w.CgroupPath, "connect", addr); got != "ok connected" {
		t.Fatalf("guard down, default: connect %q, want fail-open", got)
	}
	if err := runBounded(t, inCgroup(t, w.CgroupPath, prog)); err != nil || !exists(marker) {
		t.Fatalf("guard down, default: exec err=%v marker=%v, want fail-open", err, exists(marker))
	}
}

// TestGuardDownPinnedFailClosed: with a pin path the kernel objects stay
// on bpffs, so the workload stays denied while the guard is down, until
// Unpin.
func TestGuardDownPinnedFailClosed(t *testing.T) {
	privtest.RequireBTF(t)
	pin := bpffsDir(t)
	e, err := New(Config{Modes: suiteModes, PinPath: filepath.Join(pin, "vigil")})
	if err != nil {
		t.Fatal(err)
	}
	w := workload(t, "fail-closed")
	ln := newListener(t)
	if err := e.Apply(w, []Rule{{Name: "deny", Action: alert.ActionBlock,
		Connect: []NetMatch{{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Port: ln.port()}}}}); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ln.port())
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if got := helper(t, w.CgroupPath, "connect", addr); got != "errno EPERM" {
		t.Fatalf("guard down, pinned: connect %q, want fail-closed EPERM", got)
	}
	if n := ln.accepts.Load(); n != 0 {
		t.Fatalf("listener accepted %d", n)
	}
	if err := Unpin(filepath.Join(pin, "vigil")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := helper(t, w.CgroupPath, "connect", addr)
		if got == "ok connected" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Unpin: connect %q", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// bpffsDir mounts a private bpffs instance for the test.
func bpffsDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// TestFanotifyDeadline: a decision slower than the deadline is answered
// "allow", counted, and recorded as not denied; nothing hangs.
func TestFanotifyDeadline(t *testing.T) {
	privtest.RequireBTF(t)
	e, rec := newTestEnforcer(t, Config{FanotifyDeadline: 50 * time.Millisecond})
	if e.fan == nil {
		t.Skip("fanotify is on standby (BPF-LSM active)")
	}
	e.fan.slow = 2 * time.Second
	secret := filepath.Join(t.TempDir(), "slow")
	os.WriteFile(secret, []byte("abc"), 0o600)
	w := workload(t, "deadline")
	if err := e.Apply(w, []Rule{{Name: "slow", Action: alert.ActionBlock, OpenPaths: []string{secret}}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if got := helper(t, w.CgroupPath, "open", secret); got != "ok 3" {
		t.Fatalf("open past the deadline: %q, want default-allow", got)
	}
	answered := time.Since(start)
	rec.mu.Lock()
	early := len(rec.recs)
	rec.mu.Unlock()
	if early != 0 {
		t.Fatalf("the open returned only after the slow decision (%v)", answered)
	}
	r := rec.wait(t, "late decision", func(r Record) bool { return r.Rule == "slow" })
	if r.Denied {
		t.Errorf("late decision recorded as denied: %+v", r)
	}
	_, fc, _ := e.Counters()
	if fc.Timeouts == 0 {
		t.Errorf("timeouts not counted: %+v", fc)
	}
	t.Logf("open answered in %v (incl. helper start) with a %v deadline and a %v decision", answered, e.cfg.FanotifyDeadline, e.fan.slow)
}

// TestPidfdKill: the userspace verdict kill signals the intended process
// and refuses a pid whose start time does not match (pid reuse).
func TestPidfdKill(t *testing.T) {
	privtest.RequireBTF(t)
	e, rec := newTestEnforcer(t, Config{})
	cg := testCgroup(t)
	start := func() *exec.Cmd {
		cmd := inCgroup(t, cg, os.Args[0])
		cmd.Env = append(os.Environ(), "VIGIL_ENFORCE_HELPER=sleep")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	w := Workload{Namespace: "test", Name: "pidfd", CgroupPath: cg}

	victim := start()
	ticks, err := ProcStartTicks(victim.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Kill(w, "kill-it", uint32(victim.Process.Pid), ticks+1); !errors.Is(err, ErrProcessChanged) {
		t.Fatalf("kill with a stale start time: %v", err)
	}
	if err := victim.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("victim died after a refused kill: %v", err)
	}
	r, err := e.Kill(w, "kill-it", uint32(victim.Process.Pid), ticks)
	if err != nil {
		t.Fatal(err)
	}
	ws, _ := victim.Process.Wait()
	if st := ws.Sys().(syscall.WaitStatus); !st.Signaled() || st.Signal() != syscall.SIGKILL {
		t.Fatalf("victim status %v", ws)
	}
	if !r.Denied || r.Backend != BackendPidfd {
		t.Errorf("record %+v", r)
	}

	survivor := start()
	ticks, _ = ProcStartTicks(survivor.Process.Pid)
	r, err = e.Kill(w, "audit-kill", uint32(survivor.Process.Pid), ticks)
	if err != nil || r.Denied || r.Mode != alert.ModeAudit {
		t.Fatalf("audit kill: %+v %v", r, err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := survivor.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("audit mode killed the process: %v", err)
	}
	rec.wait(t, "audit kill record", func(r Record) bool { return r.Rule == "audit-kill" && !r.Denied })
}

func TestStartTicks(t *testing.T) {
	if got := StartTicks(12_345_678_901); got != 1234 {
		t.Errorf("StartTicks = %d", got)
	}
	if _, err := ProcStartTicks(os.Getpid()); err != nil {
		t.Error(err)
	}
	if _, err := ProcStartTicks(1 << 30); !errors.Is(err, ErrProcessGone) {
		t.Errorf("missing pid: %v", err)
	}
}
