package enforce

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/internal/privtest"
)

// suiteModes puts every "audit-*" rule in audit mode; everything else
// inherits the production preset (enforce).
var suiteModes = ModeConfig{
	Preset: PresetProduction,
	Rules: map[string]alert.Mode{
		"audit-exec": alert.ModeAudit, "audit-open": alert.ModeAudit,
		"audit-connect": alert.ModeAudit, "audit-kill": alert.ModeAudit,
		"audit-lock": alert.ModeAudit,
	},
}

func newTestEnforcer(t *testing.T, cfg Config) (*Enforcer, *recorder) {
	t.Helper()
	rec := &recorder{}
	cfg.OnRecord = rec.add
	if cfg.Modes.Preset == "" {
		cfg.Modes = suiteModes
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("new enforcer: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := e.Close(); err != nil {
			t.Errorf("second close: %v", err)
		}
	})
	return e, rec
}

func workload(t *testing.T, name string) Workload {
	return Workload{Namespace: "test", Name: name, CgroupPath: testCgroup(t)}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// enforceSuite runs the same real actions through whichever backends the
// enforcer picked: exec, open and connect, each in enforce mode and as an
// audit twin. want names the backend each kind must be decided by.
func enforceSuite(t *testing.T, e *Enforcer, rec *recorder, want map[event.Kind]Backend, execErrno syscall.Errno) {
	dir := t.TempDir()

	t.Run("exec deny runs zero instructions", func(t *testing.T) {
		w := workload(t, "exec-deny")
		prog, marker := writeMarkerProgram(t, dir, "denied-exec")
		if err := e.Apply(w, []Rule{{Name: "no-exec", Action: alert.ActionBlock, ExecPaths: []string{prog}}}); err != nil {
			t.Fatal(err)
		}
		err := runBounded(t, inCgroup(t, w.CgroupPath, prog))
		if !errors.Is(err, execErrno) {
			t.Fatalf("exec of denied program: err = %v, want %v", err, execErrno)
		}
		time.Sleep(50 * time.Millisecond)
		if exists(marker) {
			t.Fatal("denied program ran: marker file exists")
		}
		r := rec.wait(t, "exec deny", func(r Record) bool { return r.Rule == "no-exec" })
		if !r.Denied || r.Mode != alert.ModeEnforce || r.Backend != want[event.KindExec] || r.Workload != w.Key() {
			t.Errorf("record %+v", r)
		}
		// The same program outside the workload is not affected.
		if err := exec_(prog); err != nil || !exists(marker) {
			t.Errorf("program outside the workload: err=%v marker=%v", err, exists(marker))
		}
	})

	t.Run("exec audit twin runs and records", func(t *testing.T) {
		w := workload(t, "exec-audit")
		prog, marker := writeMarkerProgram(t, dir, "audited-exec")
		if err := e.Apply(w, []Rule{{Name: "audit-exec", Action: alert.ActionBlock, ExecPaths: []string{prog}}}); err != nil {
			t.Fatal(err)
		}
		if err := runBounded(t, inCgroup(t, w.CgroupPath, prog)); err != nil {
			t.Fatalf("audited exec failed: %v", err)
		}
		if !exists(marker) {
			t.Fatal("audited program did not run")
		}
		r := rec.wait(t, "exec audit", func(r Record) bool { return r.Rule == "audit-exec" })
		if r.Denied || r.Mode != alert.ModeAudit || r.Backend != want[event.KindExec] {
			t.Errorf("record %+v", r)
		}
		if a := r.Alert(); a.WouldHave() != "would have blocked" || a.Mode != alert.ModeAudit {
			t.Errorf("alert %q mode %v", a.WouldHave(), a.Mode)
		}
	})

	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("hunter2"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("open deny returns no bytes", func(t *testing.T) {
		w := workload(t, "open-deny")
		if err := e.Apply(w, []Rule{{Name: "no-secret", Action: alert.ActionBlock, OpenPaths: []string{secret}}}); err != nil {
			t.Fatal(err)
		}
		if got := helper(t, w.CgroupPath, "open", secret); got != "errno EPERM" {
			t.Fatalf("denied open: %q, want errno EPERM", got)
		}
		r := rec.wait(t, "open deny", func(r Record) bool { return r.Rule == "no-secret" })
		if !r.Denied || r.Backend != want[event.KindOpen] || r.Kind != event.KindOpen {
			t.Errorf("record %+v", r)
		}
		// The guard itself still reads the file.
		if b, err := os.ReadFile(secret); err != nil || string(b) != "hunter2" {
			t.Errorf("guard read: %q %v", b, err)
		}
	})

	t.Run("open deny covers a directory prefix", func(t *testing.T) {
		w := workload(t, "open-prefix")
		sub := filepath.Join(dir, "keys")
		os.Mkdir(sub, 0o700)
		key := filepath.Join(sub, "id_rsa")
		os.WriteFile(key, []byte("key"), 0o600)
		if err := e.Apply(w, []Rule{{Name: "no-keys", Action: alert.ActionBlock, OpenPaths: []string{sub}}}); err != nil {
			t.Fatal(err)
		}
		if got := helper(t, w.CgroupPath, "open", key); got != "errno EPERM" {
			t.Fatalf("open under denied prefix: %q", got)
		}
		if got := helper(t, w.CgroupPath, "open", secret); got != "ok 7" {
			t.Fatalf("open outside the prefix: %q", got)
		}
	})

	t.Run("open audit twin reads and records", func(t *testing.T) {
		w := workload(t, "open-audit")
		if err := e.Apply(w, []Rule{{Name: "audit-open", Action: alert.ActionBlock, OpenPaths: []string{secret}}}); err != nil {
			t.Fatal(err)
		}
		if got := helper(t, w.CgroupPath, "open", secret); got != "ok 7" {
			t.Fatalf("audited open: %q", got)
		}
		r := rec.wait(t, "open audit", func(r Record) bool { return r.Rule == "audit-open" })
		if r.Denied || r.Mode != alert.ModeAudit {
			t.Errorf("record %+v", r)
		}
	})

	t.Run("connect deny never reaches the listener", func(t *testing.T) {
		w := workload(t, "connect-deny")
		ln := newListener(t)
		if err := e.Apply(w, []Rule{{Name: "no-egress", Action: alert.ActionBlock,
			Connect: []NetMatch{{Prefix: netip.MustParsePrefix("127.0.0.0/8"), Port: ln.port()}}}}); err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", ln.port())
		if got := helper(t, w.CgroupPath, "connect", addr); got != "errno EPERM" {
			t.Fatalf("denied connect: %q", got)
		}
		r := rec.wait(t, "connect deny", func(r Record) bool { return r.Rule == "no-egress" })
		if !r.Denied || r.Backend != want[event.KindConnect] || r.Port != ln.port() || r.Addr.String() != "127.0.0.1" {
			t.Errorf("record %+v", r)
		}
		if n := ln.accepts.Load(); n != 0 {
			t.Fatalf("listener accepted %d connections", n)
		}
		// Other ports stay reachable from the workload.
		other := newListener(t)
		if got := helper(t, w.CgroupPath, "connect", fmt.Sprintf("127.0.0.1:%d", other.port())); got != "ok connected" {
			t.Fatalf("connect to an allowed port: %q", got)
		}
	})

	t.Run("bind deny", func(t *testing.T) {
		w := workload(t, "bind-deny")
		free := newListener(t)
		port := free.port()
		free.ln.Close() // a port that was free a moment ago
		if err := e.Apply(w, []Rule{{Name: "no-listen", Action: alert.ActionBlock,
			Bind: []NetMatch{{Prefix: netip.MustParsePrefix("127.0.0.0/8"), Port: port}}}}); err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if got := helper(t, w.CgroupPath, "bind", addr); got != "errno EPERM" {
			t.Fatalf("denied bind: %q", got)
		}
		r := rec.wait(t, "bind deny", func(r Record) bool { return r.Rule == "no-listen" })
		if !r.Denied || r.Backend != BackendCgroupSock || r.Kind != event.KindBind || r.Port != port {
			t.Errorf("record %+v", r)
		}
		if got := helper(t, testCgroup(t), "bind", addr); got != "ok bound" {
			t.Fatalf("bind outside the workload: %q", got)
		}
	})

	t.Run("connect audit twin connects and records", func(t *testing.T) {
		w := workload(t, "connect-audit")
		ln := newListener(t)
		if err := e.Apply(w, []Rule{{Name: "audit-connect", Action: alert.ActionBlock,
			Connect: []NetMatch{{Prefix: netip.MustParsePrefix("127.0.0.1/32")}}}}); err != nil {
			t.Fatal(err)
		}
		if got := helper(t, w.CgroupPath, "connect", fmt.Sprintf("127.0.0.1:%d", ln.port())); got != "ok connected" {
			t.Fatalf("audited connect: %q", got)
		}
		rec.wait(t, "connect audit", func(r Record) bool { return r.Rule == "audit-connect" && !r.Denied })
		deadline := time.Now().Add(2 * time.Second)
		for ln.accepts.Load() != 1 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := ln.accepts.Load(); n != 1 {
			t.Fatalf("listener accepted %d, want 1", n)
		}
	})
}

func exec_(prog string) error {
	p, err := os.StartProcess(prog, []string{prog}, &os.ProcAttr{})
	if err != nil {
		return err
	}
	st, err := p.Wait()
	if err != nil {
		return err
	}
	if !st.Success() {
		return fmt.Errorf("exit %v", st)
	}
	return nil
}

// TestHostLadder runs the suite on this host, where BPF-LSM is not
// available: exec and open go to fanotify, connect to cgroup sock_addr.
func TestHostLadder(t *testing.T) {
	privtest.RequireBTF(t)
	if inGuest() {
		t.Skip("host ladder test; the guest runs TestLSM")
	}
	e, rec := newTestEnforcer(t, Config{})
	rep := e.Report()
	t.Logf("backends:\n%s", rep)
	if rep.Active(BackendLSM) {
		t.Skip("this kernel has BPF-LSM; TestLSM covers it")
	}
	for _, b := range []Backend{BackendFanotify, BackendCgroupSock, BackendExecKill, BackendPidfd} {
		if !rep.Active(b) {
			t.Fatalf("backend %s inactive on a kernel that supports it: %s", b, rep.Status(b).Reason)
		}
	}
	enforceSuite(t, e, rec, map[event.Kind]Backend{
		event.KindExec: BackendFanotify, event.KindOpen: BackendFanotify, event.KindConnect: BackendCgroupSock,
	}, syscall.EPERM)
	c, fc, err := e.Counters()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel counters %+v, fanotify %+v", c, fc)
	if c.Denied == 0 || c.WouldDeny == 0 || fc.Denied == 0 || fc.Audited == 0 {
		t.Errorf("counters did not move: %+v %+v", c, fc)
	}
	if c.RingbufDrops != 0 || fc.Timeouts != 0 {
		t.Errorf("drops or timeouts: %+v %+v", c, fc)
	}
}

// TestExecKill proves the in-kernel SIGKILL backend: a "kill" verdict on
// exec kills the task before the new image runs an instruction.
func TestExecKill(t *testing.T) {
	privtest.RequireBTF(t)
	e, rec := newTestEnforcer(t, Config{})
	if e.Report().Active(BackendLSM) {
		t.Skip("exec_kill is on standby when BPF-LSM is active")
	}
	if !e.Report().Active(BackendExecKill) {
		t.Fatalf("exec_kill inactive: %s", e.Report().Status(BackendExecKill).Reason)
	}
	dir := t.TempDir()

	w := workload(t, "kill")
	prog, marker := writeMarkerProgram(t, dir, "killed")
	if err := e.Apply(w, []Rule{{Name: "kill-exec", Action: alert.ActionKill, ExecNames: []string{"killed"}}}); err != nil {
		t.Fatal(err)
	}
	err := runBounded(t, inCgroup(t, w.CgroupPath, prog))
	var ee interface{ Sys() any }
	if !errors.As(err, &ee) {
		t.Fatalf("exec of kill-listed program: %v, want killed", err)
	}
	if ws := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("status %v, want SIGKILL", ws)
	}
	if exists(marker) {
		t.Fatal("killed program ran an instruction: marker exists")
	}
	r := rec.wait(t, "exec kill", func(r Record) bool { return r.Rule == "kill-exec" })
	if !r.Denied || r.Backend != BackendExecKill || r.Action != alert.ActionKill || r.Name != "killed" {
		t.Errorf("record %+v", r)
	}

	// Without BPF-LSM a name-based "block" can only be carried out as a
	// kill (fanotify matches inodes, not names); the record says "kill".
	wb := workload(t, "block-by-name")
	prog3, marker3 := writeMarkerProgram(t, dir, "blockedbyname")
	if err := e.Apply(wb, []Rule{{Name: "block-name", Action: alert.ActionBlock, ExecNames: []string{"blockedbyname"}}}); err != nil {
		t.Fatal(err)
	}
	if err := runBounded(t, inCgroup(t, wb.CgroupPath, prog3)); err == nil || exists(marker3) {
		t.Fatalf("name-blocked program ran: err=%v marker=%v", err, exists(marker3))
	}
	r = rec.wait(t, "block by name", func(r Record) bool { return r.Rule == "block-name" })
	if !r.Denied || r.Action != alert.ActionKill || r.Backend != BackendExecKill {
		t.Errorf("record %+v", r)
	}

	wa := workload(t, "kill-audit")
	prog2, marker2 := writeMarkerProgram(t, dir, "audited")
	if err := e.Apply(wa, []Rule{{Name: "audit-kill", Action: alert.ActionKill, ExecPaths: []string{prog2}}}); err != nil {
		t.Fatal(err)
	}
	if err := runBounded(t, inCgroup(t, wa.CgroupPath, prog2)); err != nil {
		t.Fatalf("audited exec: %v", err)
	}
	if !exists(marker2) {
		t.Fatal("audited program did not run")
	}
	r = rec.wait(t, "exec kill audit", func(r Record) bool { return r.Rule == "audit-kill" })
	if r.Denied || r.Mode != alert.ModeAudit || r.Alert().Action != alert.ActionKill {
		t.Errorf("record %+v", r)
	}
}

// TestRequireLSM: `require: [lsm]` refuses to start on a node without
// BPF-LSM instead of degrading.
func TestRequireLSM(t *testing.T) {
	privtest.RequireBTF(t)
	lsms, err := ActiveLSMs()
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Modes: suiteModes, Require: []Backend{BackendLSM}})
	if strings.Contains(lsms, "bpf") && err == nil {
		e.Close()
		return // a BPF-LSM kernel: requirement met
	}
	if !errors.Is(err, ErrBackendRequired) || !errors.Is(err, ErrLSMUnavailable) {
		t.Fatalf("New with require lsm on %q: %v", lsms, err)
	}
	// A disabled backend that is required also refuses.
	_, err = New(Config{Modes: suiteModes, Disable: []Backend{BackendCgroupSock}, Require: []Backend{BackendCgroupSock}})
	if !errors.Is(err, ErrBackendRequired) || errors.Is(err, ErrLSMUnavailable) {
		t.Fatalf("required but disabled cgroup_sock: %v", err)
	}
}

func TestProtected(t *testing.T) {
	privtest.RequireBTF(t)
	e, _ := newTestEnforcer(t, Config{})
	if err := e.Apply(Workload{Namespace: "kube-system", Name: "coredns", CgroupPath: testCgroup(t)}, nil); !errors.Is(err, ErrProtected) {
		t.Errorf("kube-system workload: %v", err)
	}
	if err := e.Apply(Workload{Namespace: "x", Name: "root", CgroupPath: e.cg2}, nil); !errors.Is(err, ErrProtected) {
		t.Errorf("root cgroup: %v", err)
	}
	own, _ := os.ReadFile("/proc/self/cgroup")
	for _, l := range strings.Split(string(own), "\n") {
		if rest, ok := strings.CutPrefix(l, "0::"); ok {
			if err := e.Apply(Workload{Namespace: "x", Name: "guard", CgroupPath: filepath.Join(e.cg2, rest)}, nil); !errors.Is(err, ErrProtected) {
				t.Errorf("guard's own cgroup: %v", err)
			}
		}
	}
	w := Workload{Namespace: "x", Name: "y"}
	if _, err := e.Kill(w, "r", 1, 0); !errors.Is(err, ErrProtected) {
		t.Errorf("kill pid 1: %v", err)
	}
	if _, err := e.Kill(w, "r", uint32(os.Getpid()), 0); !errors.Is(err, ErrProtected) {
		t.Errorf("kill the guard: %v", err)
	}
	if _, err := e.Kill(w, "r", 2, 0); !errors.Is(err, ErrProtected) { // kthreadd
		t.Errorf("kill a kernel thread: %v", err)
	}
}

// TestApplyErrors: bad rules get clear errors and leave nothing behind; a
// rule no active backend covers is reported with ErrUncovered.
func TestApplyErrors(t *testing.T) {
	privtest.RequireBTF(t)
	e, _ := newTestEnforcer(t, Config{Disable: []Backend{BackendLSM, BackendFanotify}})
	w := workload(t, "bad")
	for _, tc := range []struct {
		name string
		rule Rule
		want string
	}{
		{"missing path", Rule{Name: "r", Action: alert.ActionBlock, ExecPaths: []string{"/nonexistent/vigil"}}, "no such file"},
		{"relative path", Rule{Name: "r", Action: alert.ActionBlock, OpenPaths: []string{"etc/shadow"}}, "not absolute"},
		{"long name", Rule{Name: "r", Action: alert.ActionBlock, ExecNames: []string{"a-very-long-program-name"}}, "1-15 bytes"},
		{"alert action", Rule{Name: "r", Action: alert.ActionAlert, ExecNames: []string{"sh"}}, "not enforceable"},
		{"bad kind", Rule{Name: "r", Action: alert.ActionBlock, Deny: []event.Kind{event.KindOpen}}, "cannot be denied by kind"},
		{"bad cidr", Rule{Name: "r", Action: alert.ActionBlock, Connect: []NetMatch{{}}}, "invalid CIDR"},
	} {
		err := e.Apply(w, []Rule{tc.rule})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
		cg, _ := CgroupID(w.CgroupPath)
		var id uint32
		if e.k.maps["workloads"].Lookup(cg, &id) == nil || len(e.workloads) != 0 {
			t.Errorf("%s: failed Apply left the workload registered", tc.name)
		}
	}
	err := e.Apply(w, []Rule{{Name: "open", Action: alert.ActionBlock, OpenPaths: []string{"/etc/hostname"}}})
	if !errors.Is(err, ErrUncovered) {
		t.Errorf("open rule without LSM or fanotify: %v", err)
	}
	if err := e.Remove(w); err != nil {
		t.Error(err)
	}
}

// TestAuditPersisted: with AuditDB set, audit-mode decisions land in the
// store and the would-block report shows them per workload.
func TestAuditPersisted(t *testing.T) {
	privtest.RequireBTF(t)
	db := filepath.Join(t.TempDir(), "audit.db")
	e, err := New(Config{Modes: suiteModes, AuditDB: db})
	if err != nil {
		t.Fatal(err)
	}
	w := workload(t, "persisted")
	ln := newListener(t)
	if err := e.Apply(w, []Rule{{Name: "audit-connect", Action: alert.ActionBlock,
		Connect: []NetMatch{{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Port: ln.port()}}}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := helper(t, w.CgroupPath, "connect", fmt.Sprintf("127.0.0.1:%d", ln.port())); got != "ok connected" {
			t.Fatalf("audited connect: %q", got)
		}
	}
	time.Sleep(100 * time.Millisecond) // let the ring buffer reader catch up
	c, _, err := e.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if c.AuditDrops != 0 || c.AuditWriteErrors != 0 {
		t.Errorf("counters %+v", c)
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
	row := rep[0].Entries[0]
	if row.Rule != "audit-connect" || row.Count != 3 || row.Kind != "connect" || row.Action != "block" ||
		!strings.Contains(row.Examples[0], fmt.Sprintf("127.0.0.1:%d", ln.port())) {
		t.Errorf("row %+v", row)
	}
}
