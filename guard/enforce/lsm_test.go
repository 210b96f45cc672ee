package enforce

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/internal/privtest"
)

// TestLSM runs the enforcement suite on the BPF-LSM rung. This host's
// kernel refuses LSM programs, so scripts/vmtest.sh boots a Debian 6.1
// kernel with lsm=...,bpf in QEMU and runs this test as the guest's /init.
// In the guest a missing "bpf" LSM is a failure, never a skip.
func TestLSM(t *testing.T) {
	privtest.RequireBTF(t)
	lsms, err := ActiveLSMs()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(","+lsms+",", ",bpf,") {
		if inGuest() {
			t.Fatalf("bpf is not among the guest's active LSMs: %q", lsms)
		}
		t.Skipf("bpf not among active LSMs (%s); make vmtest runs this test", lsms)
	}
	e, rec := newTestEnforcer(t, Config{})
	rep := e.Report()
	t.Logf("backends:\n%s", rep)
	if !rep.Active(BackendLSM) {
		if inGuest() {
			t.Fatalf("BPF-LSM inactive in the guest: %s", rep.Status(BackendLSM).Reason)
		}
		t.Skipf("this host refuses LSM programs: %s", rep.Status(BackendLSM).Reason)
	}
	if e.fan != nil {
		t.Error("fanotify carries decisions although BPF-LSM is active")
	}
	enforceSuite(t, e, rec, map[event.Kind]Backend{
		event.KindExec: BackendLSM, event.KindOpen: BackendLSM, event.KindConnect: BackendLSM,
	}, syscall.EPERM)

	for _, tc := range []struct {
		kind   event.Kind
		helper string
		arg    string
		want   string // helper output under the deny
	}{
		{event.KindMount, "mount", t.TempDir(), "errno EPERM"},
		{event.KindPtrace, "ptrace", "", "errno EPERM"},
		{event.KindSetuid, "setuid", "", "errno EPERM"},
		// The module request is denied inside socket(), which then fails
		// with EAFNOSUPPORT as for any missing module: the record proves it.
		{event.KindModuleLoad, "modreq", "", "errno EAFNOSUPPORT"},
	} {
		t.Run(tc.kind.String()+" deny", func(t *testing.T) {
			w := workload(t, tc.kind.String()+"-deny")
			rule := "no-" + tc.kind.String()
			if err := e.Apply(w, []Rule{{Name: rule, Action: alert.ActionBlock, Deny: []event.Kind{tc.kind}}}); err != nil {
				t.Fatal(err)
			}
			var args []string
			if tc.arg != "" {
				args = append(args, tc.arg)
			}
			if got := helper(t, w.CgroupPath, tc.helper, args...); got != tc.want {
				t.Fatalf("denied %s: %q, want %q", tc.kind, got, tc.want)
			}
			rec.wait(t, rule, func(r Record) bool { return r.Rule == rule && r.Denied && r.Kind == tc.kind })
			// The same action outside the workload is untouched.
			if tc.kind == event.KindPtrace {
				if got := helper(t, testCgroup(t), tc.helper, args...); got != "ok" {
					t.Fatalf("%s outside the workload: %q", tc.kind, got)
				}
			}
		})
	}

	t.Run("kill verdict kills the exec caller", func(t *testing.T) {
		w := workload(t, "lsm-kill")
		prog, marker := writeMarkerProgram(t, t.TempDir(), "lsmkill")
		if err := e.Apply(w, []Rule{{Name: "lsm-kill", Action: alert.ActionKill, ExecPaths: []string{prog}}}); err != nil {
			t.Fatal(err)
		}
		cmd := inCgroup(t, w.CgroupPath, os.Args[0], prog)
		cmd.Env = append(os.Environ(), "VIGIL_ENFORCE_HELPER=exec")
		err := runBounded(t, cmd)
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("exec caller survived a kill verdict: %v", err)
		}
		if ws := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("status %v, want SIGKILL", ws)
		}
		if exists(marker) {
			t.Fatal("kill-listed program ran")
		}
	})
}
