package sensor

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/guard/event"
)

func TestSetIDs(t *testing.T) {
	c := startSensor(t, Config{})
	pid := runHelper(t, "", "ids")
	c.waitExit(t, pid)
	var got []*event.Event
	for _, e := range c.all(func(e *event.Event) bool {
		return e.Proc.PID == pid && (e.Kind == event.KindSetuid || e.Kind == event.KindSetgid)
	}) {
		got = append(got, e)
	}
	want := []struct {
		kind event.Kind
		op   string
		ids  [3]int64
	}{
		{event.KindSetgid, "setgid", [3]int64{2000, -1, -1}},
		{event.KindSetgid, "setregid", [3]int64{2001, 2002, -1}},
		{event.KindSetgid, "setresgid", [3]int64{2003, 2004, -1}},
		{event.KindSetuid, "setreuid", [3]int64{1001, -1, -1}},
		{event.KindSetuid, "setresuid", [3]int64{1002, 1003, -1}},
		{event.KindSetuid, "setuid", [3]int64{1002, -1, -1}},
	}
	if len(got) != len(want) {
		t.Fatalf("%d set*id events, want %d", len(got), len(want))
	}
	for i, w := range want {
		e := got[i]
		if e.Kind != w.kind || e.Priv.Op != w.op || e.Priv.IDs != w.ids || e.Ret != 0 {
			t.Errorf("event %d: %v %s %v ret %d; want %v %s %v", i, e.Kind, e.Priv.Op, e.Priv.IDs, e.Ret, w.kind, w.op, w.ids)
		}
	}
	// Records are taken at syscall exit: the ids are already changed.
	if u := got[len(got)-1].Proc; u.UID != 1002 || u.EUID != 1002 || u.GID != 2003 || u.EGID != 2004 {
		t.Errorf("after the last setuid: uid %d euid %d gid %d egid %d", u.UID, u.EUID, u.GID, u.EGID)
	}
}

func TestCapset(t *testing.T) {
	c := startSensor(t, Config{})
	pid := runHelper(t, "", "capset")
	e := c.waitFor(t, "capset", of(event.KindCapset, pid))
	if e.Priv.Caps != [3]uint64{1 << 10, 1<<10 | 1<<21, 0} || e.Ret != 0 {
		t.Errorf("caps %#x ret %d", e.Priv.Caps, e.Ret)
	}
}

func TestPtrace(t *testing.T) {
	c := startSensor(t, Config{})
	cmd := helperCmd("", "ptrace")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	target, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	e := c.waitFor(t, "ptrace", of(event.KindPtrace, uint32(cmd.Process.Pid)))
	if e.Priv.Request != unix.PTRACE_ATTACH || e.Priv.TargetPID != uint32(target) || e.Ret != 0 {
		t.Errorf("ptrace %+v ret %d, want attach to %d", e.Priv, e.Ret, target)
	}
}

func TestMountUnshare(t *testing.T) {
	c := startSensor(t, Config{})
	dir := t.TempDir()
	pid := runHelper(t, "", "mount", dir)
	u := c.waitFor(t, "unshare", of(event.KindUnshare, pid))
	if u.Priv.Flags != unix.CLONE_NEWNS || u.Ret != 0 {
		t.Errorf("unshare %+v ret %d", u.Priv, u.Ret)
	}
	m := c.waitFor(t, "mount", func(e *event.Event) bool { return of(event.KindMount, pid)(e) && e.Priv.FSType == "tmpfs" })
	if m.Priv.Source != "vigil-src" || m.Priv.Target != dir || m.Priv.Flags != unix.MS_NOSUID || m.Ret != 0 {
		t.Errorf("mount %+v ret %d", m.Priv, m.Ret)
	}
	um := c.waitFor(t, "umount", of(event.KindUmount, pid))
	if um.Priv.Target != dir || um.Priv.Flags != unix.MNT_DETACH || um.Priv.Op != "umount2" {
		t.Errorf("umount %+v", um.Priv)
	}
}

func TestSetns(t *testing.T) {
	c := startSensor(t, Config{})
	pid := runHelper(t, "", "setns")
	e := c.waitFor(t, "setns", of(event.KindSetns, pid))
	if e.Priv.Flags != unix.CLONE_NEWNET || e.Ret != 0 {
		t.Errorf("setns %+v ret %d", e.Priv, e.Ret)
	}
}

func TestModuleLoadAttempts(t *testing.T) {
	c := startSensor(t, Config{})
	bogus := filepath.Join(t.TempDir(), "bogus.ko")
	if err := os.WriteFile(bogus, []byte("not an ELF module"), 0o600); err != nil {
		t.Fatal(err)
	}
	pid := runHelper(t, "", "module", bogus)
	c.waitExit(t, pid)
	var sawInit, sawFinit bool
	for _, e := range c.all(of(event.KindModuleLoad, pid)) {
		if e.Ret >= 0 {
			t.Errorf("%s succeeded?", e.Priv.Op)
		}
		switch e.Priv.Op {
		case "init_module":
			sawInit = true
		case "finit_module":
			sawFinit = true
			if real, _ := filepath.EvalSymlinks(bogus); e.Priv.Name != real {
				t.Errorf("finit_module name %q, want %q", e.Priv.Name, real)
			}
		}
	}
	if !sawInit || !sawFinit {
		t.Errorf("init_module seen %v, finit_module seen %v", sawInit, sawFinit)
	}
}
