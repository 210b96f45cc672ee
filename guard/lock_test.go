package guard_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/baseline"
	"github.com/vigilsec/vigil/guard/config"
	"github.com/vigilsec/vigil/guard/enforce"
	"github.com/vigilsec/vigil/guard/profile"
	"github.com/vigilsec/vigil/internal/runctest"
)

// TestProfileLockInContainer: with baseline.lock, a runc container's
// profile learns, becomes ready and is locked in the kernel. The workload
// is a busybox shell loop (`sh -c 'sleep; cat'`), so the one file
// /bin/busybox is learned under the names sh, sleep and cat, and the lock
// allows exactly those: the loop and the learned commands keep running,
// while other applets of the same file (wget, nc, vi: the attacker's
// toolbox), run directly or from the shell, and a copy of busybox under a
// learned-looking name are killed at exec in production and recorded as
// "would have killed" in staging.
func TestProfileLockInContainer(t *testing.T) {
	for _, tc := range []struct {
		env  string
		mode alert.Mode
	}{{config.Production, alert.ModeEnforce}, {config.Staging, alert.ModeAudit}} {
		t.Run(string(tc.env), func(t *testing.T) {
			// The loop starts once the guard watches (/go appears), so
			// the guard sees its shell exec'd, as it would in a cluster.
			loop := "while :; do sleep 1; cat /proc/uptime > /tmp/beat; done"
			ctr := runctest.Start(t, runctest.Options{Args: []string{"sh", "-c",
				"while [ ! -e /go ]; do sleep 1; done; exec sh -c '" + loop + "'"}})
			rec, g := startGuardG(t, func(c *config.Config) {
				c.Environment = tc.env
				c.Baseline.Lock = true
				c.Baseline.LearningWindow = config.Duration(2 * time.Second)
				c.Baseline.StableAfter = config.Duration(2 * time.Second)
				// Other suites run containers on this host at the same
				// time: lock this test's container only (a runc container
				// outside Kubernetes is workload "/<id>").
				c.Modes.Rules = map[string]config.ModeName{
					enforce.DefaultLockRule:                      "off",
					"/" + ctr.ID + ":" + enforce.DefaultLockRule: config.ModeName(tc.mode.String()),
				}
			})
			bin := filepath.Join(ctr.Rootfs, "tmp/bin")
			if err := os.MkdirAll(bin, 0o755); err != nil {
				t.Fatal(err)
			}
			bb, err := os.ReadFile(runctest.BusyboxPath)
			if err != nil {
				t.Fatal(err)
			}
			// A copy named like a learned program: another file.
			if err := os.WriteFile(filepath.Join(bin, "cat"), bb, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(ctr.Rootfs, "go"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			// Learn: the loop, and the same commands run from outside.
			for i := 0; i < 3; i++ {
				if out, err := ctr.Exec("sh", "-c", "sleep 0; cat /proc/self/comm"); err != nil {
					t.Fatalf("sh while learning: %v: %s", err, out)
				}
				if out, err := ctr.Exec("cat", "/proc/self/comm"); err != nil {
					t.Fatalf("cat while learning: %v: %s", err, out)
				}
			}
			deadline := time.Now().Add(40 * time.Second)
			for g.LockStats().Pushed == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("no exec lock in force after 40s: %+v", g.LockStats())
				}
				time.Sleep(100 * time.Millisecond)
			}
			if st := g.LockStats(); st.Errors != 0 {
				t.Fatalf("lock errors: %+v", st)
			}

			// Learned names keep working, directly and from the shell.
			if out, err := ctr.Exec("cat", "/proc/self/comm"); err != nil || strings.TrimSpace(string(out)) != "cat" {
				t.Fatalf("learned cat under the lock: %v: %q", err, out)
			}
			if out, err := ctr.Exec("sh", "-c", "sleep 0; cat /proc/self/comm"); err != nil || strings.TrimSpace(string(out)) != "cat" {
				t.Fatalf("learned sh, sleep, cat under the lock: %v: %q", err, out)
			}

			killed := func(err error) bool {
				var ee interface{ ExitCode() int }
				return errors.As(err, &ee) && ee.ExitCode() == 137
			}
			check := func(what, name string, args ...string) {
				t.Helper()
				seen := map[*alert.Alert]bool{}
				rec.mu.Lock()
				for _, a := range rec.alerts {
					seen[a] = true
				}
				rec.mu.Unlock()
				out, err := ctr.Exec(args...)
				if tc.mode == alert.ModeEnforce {
					if !killed(err) {
						t.Fatalf("%s in a locked container: err=%v out=%q, want exit 137", what, err, out)
					}
				} else if killed(err) {
					t.Fatalf("%s in audit mode was killed: %v", what, err)
				}
				a := rec.waitAlert(t, "profile lock for "+what, func(a *alert.Alert) bool {
					return !seen[a] && a.Rule == enforce.DefaultLockRule && a.Event != nil && a.Event.Container.ID == ctr.ID &&
						a.Fields["file.name"] == name
				})
				if a.Mode != tc.mode || a.Action != alert.ActionKill || a.Taken != (tc.mode == alert.ModeEnforce) ||
					a.Backend != enforce.BackendExecKill.String() {
					t.Fatalf("%s: alert %+v", what, a)
				}
				t.Logf("%s: %s: %s", tc.env, what, a.Message)
			}
			// Other applets of the learned file, by their links.
			check("wget", "wget", "wget", "--help")
			check("nc", "nc", "nc", "--help")
			check("vi", "vi", "vi", "--help")
			// From the learned shell: busybox runs the applet by
			// re-executing itself with argv[0] "wget".
			check("wget from sh", "wget", "sh", "-c", "wget --help")

			// Nothing learned was denied, not even as a "would have".
			rec.mu.Lock()
			for _, a := range rec.alerts {
				if a.Rule == enforce.DefaultLockRule && a.Event != nil && a.Event.Container.ID == ctr.ID {
					switch a.Fields["file.name"] {
					case "sh", "sleep", "cat", "exe":
						t.Errorf("learned program denied: %s", a.Message)
					}
				}
			}
			rec.mu.Unlock()
			check("copied busybox as cat", "cat", "/tmp/bin/cat", "/dev/null")

			// The workload itself was never hurt: its loop still beats.
			beat := func() string {
				b, _ := os.ReadFile(filepath.Join(ctr.Rootfs, "tmp/beat"))
				return strings.TrimSpace(string(b))
			}
			b1 := beat()
			time.Sleep(2500 * time.Millisecond)
			if b2 := beat(); b1 == "" || b2 == "" || b1 == b2 {
				t.Fatalf("the workload's loop stopped under the lock: beat %q then %q", b1, b2)
			}
		})
	}
}

// TestLockedProfileFromStore: a profile locked offline (what `vigil
// baseline lock` writes) is put in force when the guard starts, without
// baseline.lock: the container's first events after start bring it in.
func TestLockedProfileFromStore(t *testing.T) {
	ctr := runctest.Start(t, runctest.Options{})
	bin := filepath.Join(ctr.Rootfs, "tmp/bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(runctest.BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "touch"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	// A runc container outside Kubernetes, with no image: its profile
	// key is Container/<id>:<id>@"".
	k := profile.Key{Workload: "Container/" + ctr.ID, Container: ctr.ID}
	s, err := baseline.OpenStore(filepath.Join(state, "baseline.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	d, err := baseline.New(baseline.Config{}, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Seeded paths are allowed as the names they say: busybox as
	// busybox and cat (which the test runs below), no other applet.
	d.Seed(profile.Expected{Key: k, Executables: []string{"/bin/busybox", "/bin/cat"}})
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	p, err := s.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	p.State = baseline.StateLocked
	if err := s.Put(p); err != nil {
		t.Fatal(err)
	}
	s.Close()

	rec, g := startGuardG(t, func(c *config.Config) {
		c.Environment = config.Production
		c.StateDir = state
		c.Modes.Rules = map[string]config.ModeName{
			enforce.DefaultLockRule:                      "off",
			"/" + ctr.ID + ":" + enforce.DefaultLockRule: "enforce",
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for g.LockStats().Pushed == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("stored lock not put in force after 30s: %+v", g.LockStats())
		}
		// Any event of the container tells the guard its cgroup.
		if out, err := ctr.Exec("cat", "/proc/self/comm"); err != nil {
			t.Fatalf("cat: %v: %s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	out, err := ctr.Exec("/tmp/bin/touch", "/tmp/payload.ran")
	var ee interface{ ExitCode() int }
	if !errors.As(err, &ee) || ee.ExitCode() != 137 {
		t.Fatalf("copied program under a stored lock: err=%v out=%q, want exit 137", err, out)
	}
	if _, err := os.Stat(filepath.Join(ctr.Rootfs, "tmp/payload.ran")); err == nil {
		t.Fatal("copied program ran")
	}
	a := rec.waitAlert(t, "profile lock", func(a *alert.Alert) bool {
		return a.Rule == enforce.DefaultLockRule && a.Event != nil && a.Event.Container.ID == ctr.ID
	})
	if a.Mode != alert.ModeEnforce || !a.Taken {
		t.Fatalf("alert %+v", a)
	}
}
