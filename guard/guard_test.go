package guard_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard"
	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/config"
	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/internal/privtest"
	"github.com/vigilsec/vigil/internal/runctest"
)

// packDir is where `make rules` puts the standard pack.
const packDir = "../wasm-rules/build"

// logWriter sends the guard's warnings to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

type recorder struct {
	mu     sync.Mutex
	alerts []*alert.Alert
	events []*event.Event
}

func (r *recorder) onAlert(a *alert.Alert) {
	r.mu.Lock()
	r.alerts = append(r.alerts, a)
	r.mu.Unlock()
}

func (r *recorder) onEvent(e *event.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// waitAlert waits for an alert matching pred.
func (r *recorder) waitAlert(t *testing.T, what string, pred func(*alert.Alert) bool) *alert.Alert {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, a := range r.alerts {
			if pred(a) {
				r.mu.Unlock()
				return a
			}
		}
		r.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var seen []string
	for _, a := range r.alerts {
		seen = append(seen, a.Rule)
	}
	t.Fatalf("no alert %s; saw %d alerts: %v", what, len(r.alerts), seen)
	return nil
}

func startGuard(t *testing.T, mutate func(*config.Config)) *recorder {
	t.Helper()
	rec, _ := startGuardG(t, mutate)
	return rec
}

// startGuardG is startGuard that also returns the running guard.
func startGuardG(t *testing.T, mutate func(*config.Config)) (*recorder, *guard.Guard) {
	t.Helper()
	rec := &recorder{}
	return rec, runTestGuard(t, mutate, rec.onAlert, rec.onEvent)
}

// runTestGuard runs a guard with the standard pack, no metrics listener and
// no dedup, delivering alerts and events to the callbacks; it is stopped
// and closed in the test's cleanup.
func runTestGuard(t *testing.T, mutate func(*config.Config), onAlert func(*alert.Alert), onEvent func(*event.Event)) *guard.Guard {
	t.Helper()
	privtest.RequireBTF(t)
	privtest.RequireTool(t, filepath.Join(packDir, "standard.wasm"))
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	cfg.Rules.Dir = packDir
	cfg.Rules.CacheDir = filepath.Join(os.TempDir(), "vigil-test-wazero-cache")
	cfg.Metrics.Listen = ""
	cfg.Output.DedupWindow = 0
	off := false
	cfg.Output.Stdout = &off
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := guard.New(ctx, guard.Options{Config: cfg, Stdout: io.Discard, OnAlert: onAlert, OnEvent: onEvent,
		Log: slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		cancel()
		t.Fatalf("guard.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("guard.Run: %v", err)
		}
		if err := g.Close(); err != nil {
			t.Errorf("guard.Close: %v", err)
		}
	})
	time.Sleep(300 * time.Millisecond) // let the reader goroutine start
	return g
}

// TestAuditInRuncContainer runs a shell that reads /etc/shadow inside a real
// runc container and checks that the guard attributes every event to the
// container and raises the pack's alerts without acting (audit mode).
func TestAuditInRuncContainer(t *testing.T) {
	rec := startGuard(t, func(c *config.Config) { c.Environment = config.Staging })
	ctr := runctest.Start(t, runctest.Options{})
	started := time.Now()
	out, err := ctr.Exec("sh", "-c", "cat /etc/shadow >/dev/null && echo done")
	if err != nil || !strings.Contains(string(out), "done") {
		t.Fatalf("exec in container: %v %s", err, out)
	}
	inCtr := func(a *alert.Alert) bool {
		return a.Event != nil && a.Event.Container.ID == ctr.ID
	}
	shell := rec.waitAlert(t, "Terminal shell in container", func(a *alert.Alert) bool {
		return inCtr(a) && a.Rule == "Terminal shell in container"
	})
	if shell.Mode != alert.ModeAudit || shell.Taken {
		t.Errorf("audit mode acted: mode %v taken %v", shell.Mode, shell.Taken)
	}
	if shell.Event.Container.Runtime != "runc" || shell.Event.Proc.CgroupID != ctr.CgroupID {
		t.Errorf("container attribution: runtime %q cgroup %d want runc %d", shell.Event.Container.Runtime, shell.Event.Proc.CgroupID, ctr.CgroupID)
	}
	if len(shell.Event.Proc.Ancestors) == 0 {
		t.Error("shell alert carries no ancestry")
	}
	rd := rec.waitAlert(t, "Read sensitive file untrusted", func(a *alert.Alert) bool {
		return inCtr(a) && a.Rule == "Read sensitive file untrusted"
	})
	if rd.Event.File.Path != "/etc/shadow" || rd.Event.Proc.Name != "cat" {
		t.Errorf("sensitive read: path %q proc %q", rd.Event.File.Path, rd.Event.Proc.Name)
	}
	if rd.Event.Proc.Ancestors[0].Name != "sh" {
		t.Errorf("cat's parent is %q, want sh", rd.Event.Proc.Ancestors[0].Name)
	}

	// Every event from the container's processes carries its identity. (Plain
	// runc writes the state that names a container only after its init ran,
	// so its set-up events and the init's own exec, which races with the
	// state write, are not asserted; runtimes with self-describing cgroup
	// paths have no such gap.)
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/pid", ctr.InitPID), &st); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	n := 0
	for _, e := range rec.events {
		if e.Proc.CgroupID == ctr.CgroupID && uint64(e.Proc.PidNS) == st.Ino && e.Time.After(started) && int(e.Proc.PID) != ctr.InitPID {
			n++
			if e.Container.ID != ctr.ID {
				t.Errorf("%s event of %s in container cgroup attributed to %q", e.Kind, e.Proc.Name, e.Container.ID)
			}
		}
	}
	if n < 3 {
		t.Errorf("only %d events seen from the container", n)
	}
}

// TestEnforceKillsShellInContainer sets the shell rule to kill in production
// mode and checks the shell is killed and the alert says so.
func TestEnforceKillsShellInContainer(t *testing.T) {
	rec := startGuard(t, func(c *config.Config) {
		c.Environment = config.Production
		c.Actions = map[string]string{"Terminal shell in container": "kill"}
	})
	ctr := runctest.Start(t, runctest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// `read` is a shell builtin: the shell has no child that could outlive
	// it and hold runc's stdio open. The test never writes to stdin.
	cmd := ctr.Command(ctx, "sh", "-c", "read x; echo survived")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	// A file, not a pipe: the orphaned `sleep` keeps a pipe open after the
	// shell dies, and Wait would wait for it.
	outFile, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()
	cmd.Stdout, cmd.Stderr = outFile, outFile
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := rec.waitAlert(t, "killed shell", func(a *alert.Alert) bool {
		return a.Rule == "Terminal shell in container" && a.Event.Container.ID == ctr.ID
	})
	if a.Mode != alert.ModeEnforce || a.Action != alert.ActionKill || !a.Taken || a.WouldHave() != "killed" {
		t.Fatalf("alert mode %v action %v taken %v (%v)", a.Mode, a.Action, a.Taken, a.Fields["vigil.enforce_error"])
	}
	// The killed shell is gone within a bound.
	gone := false
	for i := 0; i < 100 && !gone; i++ {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", a.Event.Proc.PID))
		gone = err != nil || strings.Contains(string(b), ") Z ")
		time.Sleep(20 * time.Millisecond)
	}
	if !gone {
		t.Fatalf("shell pid %d still alive 2 s after the kill", a.Event.Proc.PID)
	}
	err = cmd.Wait()
	if out, _ := os.ReadFile(outFile.Name()); strings.Contains(string(out), "survived") {
		t.Fatalf("shell survived enforce mode: %s", out)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("shell exited without error: %v", err)
	}
	if time.Since(start) > 15*time.Second {
		t.Fatalf("shell ran %v before it died", time.Since(start))
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
		t.Logf("runc exec ended with %v after %v", ws, time.Since(start).Round(time.Millisecond))
	}
}

// TestAuditRecordsWouldHaveKilled: the same rule and action in staging
// records "would have killed" and leaves the shell alone.
func TestAuditRecordsWouldHaveKilled(t *testing.T) {
	rec := startGuard(t, func(c *config.Config) {
		c.Environment = config.Staging
		c.Actions = map[string]string{"Terminal shell in container": "kill"}
	})
	ctr := runctest.Start(t, runctest.Options{})
	out, err := ctr.Exec("sh", "-c", "sleep 1; echo survived")
	if err != nil || !strings.Contains(string(out), "survived") {
		t.Fatalf("audit mode killed the shell: %v %s", err, out)
	}
	a := rec.waitAlert(t, "would-have-killed shell", func(a *alert.Alert) bool {
		return a.Rule == "Terminal shell in container" && a.Event.Container.ID == ctr.ID
	})
	if a.Mode != alert.ModeAudit || a.Taken || a.WouldHave() != "would have killed" {
		t.Fatalf("alert mode %v taken %v outcome %q", a.Mode, a.Taken, a.WouldHave())
	}
}

// TestFastPathPolicyInContainer compiles an open deny and a connect deny
// into the kernel for one runc container: the kernel refuses them without
// waiting for userspace, the host is unaffected, and audit mode only records.
func TestFastPathPolicyInContainer(t *testing.T) {
	for _, env := range []string{config.Production, config.Staging} {
		t.Run(env, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var accepts atomic.Int32
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					accepts.Add(1)
					c.Close()
				}
			}()
			port := ln.Addr().(*net.TCPAddr).Port
			ctr := runctest.Start(t, runctest.Options{HostNetwork: true})
			rec := startGuard(t, func(c *config.Config) {
				c.Environment = env
				c.Policies = []config.Policy{{
					Name: "no-shadow-no-exfil", Action: "block",
					Match:     config.PolicyMatch{Container: ctr.ID},
					OpenPaths: []string{"/etc/shadow"},
					Connect:   []string{fmt.Sprintf("127.0.0.1:%d", port)},
				}}
			})
			// Any event from the container makes the guard apply its policy,
			// asynchronously: retry until the kernel decides.
			want := "blocked"
			if env == config.Staging {
				want = "would have blocked"
			}
			decided := func(kind event.Kind) bool {
				rec.mu.Lock()
				defer rec.mu.Unlock()
				for _, a := range rec.alerts {
					if a.Rule == "no-shadow-no-exfil" && a.Event != nil && a.Event.Kind == kind && a.WouldHave() == want {
						return true
					}
				}
				return false
			}
			deadline := time.Now().Add(15 * time.Second)
			var out []byte
			for {
				out, err = ctr.Exec("cat", "/etc/shadow")
				if env == config.Production && err != nil {
					break
				}
				if env == config.Staging && err != nil {
					t.Fatalf("audit mode denied the open: %v %q", err, out)
				}
				if env == config.Staging && decided(event.KindOpen) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no decision on the open of /etc/shadow after 15 s: %s", out)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if env == config.Production {
				if !strings.Contains(string(out), "not permitted") || strings.Contains(string(out), "root:") {
					t.Fatalf("denied open: want EPERM and no bytes, got %q", out)
				}
			} else if !strings.Contains(string(out), "root:") {
				t.Fatalf("audit mode returned no bytes: %q", out)
			}
			// The host's own open of the same path is untouched.
			if _, err := os.ReadFile("/etc/shadow"); err != nil {
				t.Fatalf("host open denied: %v", err)
			}
			before := accepts.Load()
			out, err = ctr.Exec("sh", "-c", fmt.Sprintf("echo x | nc 127.0.0.1 %d && echo connected", port))
			time.Sleep(200 * time.Millisecond)
			if env == config.Production {
				if err == nil || strings.Contains(string(out), "connected") || accepts.Load() != before {
					t.Fatalf("connect not denied: %v %q accepts %d→%d", err, out, before, accepts.Load())
				}
			} else if accepts.Load() == before {
				t.Fatalf("audit mode denied the connect: %v %q", err, out)
			}
			for _, kind := range []event.Kind{event.KindOpen, event.KindConnect} {
				a := rec.waitAlert(t, want+" "+kind.String(), func(a *alert.Alert) bool {
					return a.Rule == "no-shadow-no-exfil" && a.Event != nil && a.Event.Kind == kind && a.WouldHave() == want
				})
				if a.Event.Container.ID != ctr.ID {
					t.Errorf("%s decision attributed to container %q", kind, a.Event.Container.ID)
				}
				t.Logf("%s: %s via %s", kind, a.WouldHave(), a.Backend)
			}
		})
	}
}
