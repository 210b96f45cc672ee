package baseline

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/guard/profile"
)

// execAs feeds an exec of exe by the path execPath (a busybox applet link,
// say), as the sensor reports it, from a parent running parent.
func (r *webReplay) execAs(p *pod, at time.Time, parent, exe, execPath string, args ...string) {
	e := r.ev(p, event.KindExec, at)
	e.Proc.Exe, e.Proc.ExecPath = exe, execPath
	e.Proc.Args = append([]string{filepath.Base(execPath)}, args...)
	e.Proc.Name = filepath.Base(execPath)
	e.Proc.Ancestors = []event.Ancestor{{Name: filepath.Base(parent), Exe: parent}}
	r.feed(e)
}

func entryNames(t *testing.T, d *Detector, k profile.Key, exe string) []string {
	t.Helper()
	p, ok := d.Profile(k)
	if !ok {
		t.Fatalf("no profile %s", FormatKey(k))
	}
	for _, e := range p.AllowedExecNames() {
		if e.Path == exe {
			return e.Names
		}
	}
	t.Fatalf("%s not in the allow-list", exe)
	return nil
}

// TestExecNamesLearnedAndNewNameIsNewBehavior: while learning, busybox runs
// as sh, sleep and cat; once ready, those names stay quiet, while busybox
// as wget (the attacker's toolbox in the same file) is a new behavior,
// scored like a new executable and deduplicated per (file, name).
func TestExecNamesLearnedAndNewNameIsNewBehavior(t *testing.T) {
	r := newWebReplay(t, Config{})
	r.d.Seed(webExpected("r1", r.now))
	p := &pod{id: "c0ffee01", cgroup: 7001, rev: "r1", name: "web-r1-a", pid: 1000}
	r.start(p, r.now)
	for _, n := range []string{"sh", "sleep", "cat"} {
		r.execAs(p, r.now, busybox, busybox, "/bin/"+n)
	}
	r.run(r.now.Add(time.Hour))
	r.now = day0.Add(5*24*time.Hour + 14*time.Hour)
	r.run(r.now.Add(time.Minute))
	r.requireQuiet("learning")
	k := webKey("r1")
	if pr, _ := r.d.Profile(k); pr.State != StateReady {
		t.Fatalf("profile %s, want ready", pr.State)
	}
	// busybox is also run by its own path in the replay's probes.
	if got, want := entryNames(t, r.d, k, busybox), []string{"busybox", "cat", "sh", "sleep"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("busybox names %v, want %v", got, want)
	}

	for _, n := range []string{"sh", "sleep", "cat"} {
		r.execAs(p, r.now, busybox, busybox, "/usr/bin/"+n) // another directory, same name
	}
	r.execAs(p, r.now, "/docker-entrypoint.sh", nginx, "/proc/self/exe") // a re-exec
	r.requireQuiet("learned names")

	r.execAs(p, r.now, busybox, busybox, "/bin/wget", "http://203.0.113.9/x")
	r.execAs(p, r.now.Add(time.Second), busybox, busybox, "/usr/bin/wget", "http://203.0.113.9/y")
	as := r.take()
	if len(as) != 1 || as[0].Rule != "baseline.new_exec_name" {
		t.Fatalf("busybox as wget: alerts %+v, want one baseline.new_exec_name", as)
	}
	devs := r.d.Deviations()
	if len(devs) != 1 || devs[0].Count != 2 || devs[0].Fields["baseline.behavior"] != "exec_name:wget@/bin/busybox" {
		t.Fatalf("deviations %+v", devs)
	}
	// Scored like a new executable at the same moment.
	r.execAs(p, r.now.Add(time.Second), busybox, "/usr/bin/wget", "/usr/bin/wget")
	ex := r.take()
	if len(ex) != 1 || ex[0].Rule != "baseline.new_exec" {
		t.Fatalf("new exec: alerts %+v", ex)
	}
	if ex[0].Priority != as[0].Priority || ex[0].Fields["baseline.novelty"] != as[0].Fields["baseline.novelty"] {
		t.Errorf("new name %s novelty %s, new exec %s novelty %s", as[0].Priority, as[0].Fields["baseline.novelty"],
			ex[0].Priority, ex[0].Fields["baseline.novelty"])
	}
	r.execAs(p, r.now.Add(2*time.Second), busybox, busybox, "/bin/nc", "-e", "/bin/sh")
	if as := r.take(); len(as) != 1 || as[0].Rule != "baseline.new_exec_name" {
		t.Fatalf("busybox as nc: alerts %+v", as)
	}
	if got := entryNames(t, r.d, k, busybox); len(got) != 4 {
		t.Fatalf("deviations were learned: busybox names %v", got)
	}

	// Accepting the name folds it in.
	b, err := ParseBehavior("exec_name:wget@/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.d.Accept(k, b); err != nil {
		t.Fatal(err)
	}
	r.execAs(p, r.now.Add(3*time.Second), busybox, busybox, "/bin/wget")
	r.requireQuiet("accepted name")
	if got, want := entryNames(t, r.d, k, busybox), []string{"busybox", "cat", "sh", "sleep", "wget"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("busybox names after accept %v, want %v", got, want)
	}
	for _, bad := range []string{"exec_name:wget", "exec_name:wget@relative", "exec_name:wget@/not/known"} {
		b, err := ParseBehavior(bad)
		if err == nil {
			err = r.d.Accept(k, b)
		}
		if !errors.Is(err, ErrBadBehavior) {
			t.Errorf("accept %s: %v, want ErrBadBehavior", bad, err)
		}
	}
}

// TestAcceptExecAcceptsItsName: accepting a new executable accepts the name
// it ran under (a link to it), so the lock allows the program as it ran.
func TestAcceptExecAcceptsItsName(t *testing.T) {
	r := readyWeb(t, Config{})
	p := r.pods[0]
	r.execAs(p, r.now, nginx, "/usr/local/bin/report", "/usr/local/bin/rep")
	if len(r.take()) == 0 {
		t.Fatal("no alert for a new exec")
	}
	k := webKey("r1")
	if err := r.d.Accept(k, Behavior{CatExec, "/usr/local/bin/report"}); err != nil {
		t.Fatal(err)
	}
	if got := entryNames(t, r.d, k, "/usr/local/bin/report"); !reflect.DeepEqual(got, []string{"rep"}) {
		t.Fatalf("names %v, want [rep]", got)
	}
	r.execAs(p, r.now.Add(time.Minute), nginx, "/usr/local/bin/report", "/usr/local/bin/rep")
	r.requireQuiet("accepted exec")
	r.execAs(p, r.now.Add(time.Minute), nginx, "/usr/local/bin/report", "/usr/local/bin/other")
	if as := r.take(); len(as) != 1 || as[0].Rule != "baseline.new_exec_name" {
		t.Fatalf("accepted exec under another name: %+v", as)
	}
}

// TestSeededNamesAndArgv0Fallback: names the manifest runs programs by
// (command, probes) are known for any file, and are recorded for the file
// they turn out to be; an event without proc.exec_path (an older sensor)
// is named by argv[0].
func TestSeededNamesAndArgv0Fallback(t *testing.T) {
	r := readyWeb(t, Config{})
	p := r.pods[0]
	k := webKey("r1")
	// webExpected's probe runs "/bin/sh -c wget ...": "sh" is seeded.
	pr, _ := r.d.Profile(k)
	if _, ok := pr.ExecNames[""]["sh"]; !ok {
		t.Fatalf("seeded names %v lack sh", pr.ExecNames[""])
	}
	e := r.ev(p, event.KindExec, r.now)
	e.Proc.Exe, e.Proc.Args = busybox, []string{"sh", "-c", "true"} // no ExecPath
	e.Proc.Ancestors = []event.Ancestor{{Name: "sh", Exe: sh}}
	r.feed(e)
	r.requireQuiet("seeded name, by argv[0]")
	if got := entryNames(t, r.d, k, busybox); !contains(got, "sh") {
		t.Fatalf("seeded name not recorded for the file: %v", got)
	}
	e = r.ev(p, event.KindExec, r.now)
	e.Proc.Exe, e.Proc.Args = busybox, []string{"nc", "-l"}
	e.Proc.Ancestors = []event.Ancestor{{Name: "sh", Exe: sh}}
	r.feed(e)
	if as := r.take(); len(as) != 1 || as[0].Fields["baseline.behavior"] != "exec_name:nc@/bin/busybox" {
		t.Fatalf("new name by argv[0]: %+v", as)
	}
	// A login shell's argv[0] is its name with a '-'.
	e = r.ev(p, event.KindExec, r.now)
	e.Proc.Exe, e.Proc.ExecPath, e.Proc.Args = busybox, "/bin/sh", []string{"-sh"}
	e.Proc.Ancestors = []event.Ancestor{{Name: "sh", Exe: sh}}
	r.feed(e)
	r.requireQuiet("login shell")
	// Busybox runs an applet in a child by re-executing itself: the
	// applet is argv[0], which the lock checks for a multi-call binary.
	e = r.ev(p, event.KindExec, r.now)
	e.Proc.Exe, e.Proc.ExecPath, e.Proc.Args = busybox, "/proc/self/exe", []string{"vi", "/etc/passwd"}
	e.Proc.Ancestors = []event.Ancestor{{Name: "sh", Exe: sh}}
	r.feed(e)
	if as := r.take(); len(as) != 1 || as[0].Fields["baseline.behavior"] != "exec_name:vi@/bin/busybox" {
		t.Fatalf("applet by re-exec: %+v", as)
	}
}

// TestLockedAuditNewNameWouldBlock: in audit mode, a new name of a file in
// a locked profile is a would-have-blocked exec, like a new file.
func TestLockedAuditNewNameWouldBlock(t *testing.T) {
	r := readyWeb(t, Config{Mode: alert.ModeAudit})
	if err := r.d.Lock(webKey("r1")); err != nil {
		t.Fatal(err)
	}
	r.execAs(r.pods[0], r.now, sh, busybox, "/bin/vi")
	as := r.take()
	if len(as) != 1 || as[0].Rule != "baseline.exec_not_allowed" || as[0].Action != alert.ActionBlock || as[0].Taken {
		t.Fatalf("alerts %+v", as)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestLoadVersion1Profile loads a store written by the guard before exec
// names were recorded (testdata/profile-v1.db, made by that version's
// Detector and Store): it loads, tracks no names, keeps its state, and
// goes on learning names for a revision that learns.
func TestLoadVersion1Profile(t *testing.T) {
	src, err := os.Open("testdata/profile-v1.db")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(t.TempDir(), "baseline.db")
	dst, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	s, err := OpenStore(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := profile.Key{Namespace: "shop", Workload: "Deployment/web", Container: "web", Revision: "v1"}
	p, err := s.Get(k)
	if err != nil {
		t.Fatalf("load version 1 profile: %v", err)
	}
	if p.State != StateLocked || !p.Seeded {
		t.Fatalf("state %s seeded %v", p.State, p.Seeded)
	}
	want := []ExecEntry{{Path: "/app/server"}, {Path: "/bin/busybox"}, {Path: "/bin/sh"}}
	if got := p.AllowedExecNames(); !reflect.DeepEqual(got, want) {
		t.Fatalf("entries %+v, want %+v (no names tracked)", got, want)
	}
	// The manifest's names are a v2 notion: none in a v1 record.
	if len(p.ExecNames) != 0 {
		t.Fatalf("names %v", p.ExecNames)
	}
	// Rewritten, it is a version 2 record with the same behaviors.
	q, err := DecodeProfile(p.Encode())
	if err != nil || !reflect.DeepEqual(p.Behaviors(), q.Behaviors()) {
		t.Fatalf("v1 profile re-encoded: %v", err)
	}
	if b := p.Encode(); b[0] != encVersion {
		t.Fatalf("encoded as version %d", b[0])
	}

	// A detector on the old store: the locked profile's untracked names
	// raise nothing; its executables keep alerting as before.
	d, err := New(Config{}, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ev := func(exe, execPath string) *event.Event {
		return &event.Event{Kind: event.KindExec, Time: time.Now(),
			Proc:      event.Process{PID: 9, Exe: exe, ExecPath: execPath, Args: []string{filepath.Base(execPath)}, CgroupID: 42},
			Container: event.Container{ID: "c1"},
			K8s:       event.K8s{Namespace: k.Namespace, Workload: k.Workload, ContainerName: k.Container, Revision: k.Revision}}
	}
	if as := d.Observe(ev("/bin/busybox", "/bin/wget")); len(as) != 0 {
		t.Fatalf("untracked names alerted: %+v", as)
	}
	if as := d.Observe(ev("/tmp/x", "/tmp/x")); len(as) != 1 || as[0].Rule != "baseline.exec_not_allowed" && as[0].Rule != "baseline.new_exec" {
		t.Fatalf("new exec in an old locked profile: %+v", as)
	}
}

// TestLockedProfileNeverLearnsExecsSilently: right after a release (when a
// benign-looking novelty is folded in), a locked profile still learns no
// executable and no name by itself: the kernel lock is final until an
// accept, or an attacker's first denied try would open it for the second.
func TestLockedProfileNeverLearnsExecsSilently(t *testing.T) {
	r := readyWeb(t, Config{Mode: alert.ModeEnforce})
	k := webKey("r1")
	if err := r.d.Lock(k); err != nil {
		t.Fatal(err)
	}
	r.d.SetWindows([]profile.ReleaseWindow{{Workload: profile.WorkloadKey{Namespace: k.Namespace, Workload: k.Workload},
		Revision: k.Revision, Opened: r.now.Add(-time.Minute), Closes: r.now.Add(time.Hour)}})
	for i := 0; i < 3; i++ {
		r.execAs(r.pods[0], r.now.Add(time.Duration(i)*time.Second), sh, busybox, "/bin/wget")
		r.execAs(r.pods[0], r.now.Add(time.Duration(i)*time.Second), sh, "/usr/bin/wget", "/usr/bin/wget")
	}
	if got := entryNames(t, r.d, k, busybox); contains(got, "wget") {
		t.Fatalf("locked profile learned a name: %v", got)
	}
	if pr, _ := r.d.Profile(k); pr.hasExec("/usr/bin/wget") {
		t.Fatal("locked profile learned an executable")
	}
	if n := len(r.d.Deviations()); n != 2 {
		t.Fatalf("%d deviations, want 2 open", n)
	}
}
