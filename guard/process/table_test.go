package process

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/internal/runctest"
)

// fakeClock is a settable clock for linger tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// newSynthetic returns a table whose /proc is an empty dir, so only events
// feed it and every miss is a real miss.
func newSynthetic(t testing.TB, cfg Config) (*Table, *fakeClock) {
	t.Helper()
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	cfg.ProcRoot = t.TempDir()
	cfg.Cgroup2Root = "/nonexistent"
	cfg.Now = clk.Now
	tab, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tab.Close() })
	return tab, clk
}

// sec converts seconds since boot to a sensor start time in ns.
func sec(s uint64) uint64 { return s * 1e9 }

func fork(pid, ppid uint32, start uint64, name string) *event.Event {
	return &event.Event{Kind: event.KindFork, Proc: event.Process{PID: pid, TID: pid, PPID: ppid, StartTime: start, Name: name, CgroupID: 77}}
}

func execEv(pid, ppid uint32, start uint64, exe string, args ...string) *event.Event {
	return &event.Event{Kind: event.KindExec, Proc: event.Process{PID: pid, TID: pid, PPID: ppid, StartTime: start, Name: filepath.Base(exe), Exe: exe, Args: args, Cwd: "/srv"}}
}

func open(pid uint32, start uint64) *event.Event {
	return &event.Event{Kind: event.KindOpen, Proc: event.Process{PID: pid, TID: pid, StartTime: start}, File: event.File{Path: "/etc/shadow"}}
}

func ancestry(ev *event.Event) string {
	var s []string
	for _, a := range ev.Proc.Ancestors {
		s = append(s, fmt.Sprintf("%d:%s", a.PID, a.Exe))
	}
	return strings.Join(s, " ")
}

func TestForkExecOpenAncestry(t *testing.T) {
	tab, _ := newSynthetic(t, Config{})
	// init(1) → containerd-shim(100) → nginx(200) → sh(300) → cat(400)
	steps := []*event.Event{
		execEv(1, 0, sec(1), "/sbin/init"),
		fork(100, 1, sec(2), "init"), execEv(100, 1, sec(2), "/usr/bin/containerd-shim", "shim", "-id", "x"),
		fork(200, 100, sec(3), "shim"), execEv(200, 100, sec(3), "/usr/sbin/nginx", "nginx", "-g", "daemon off;"),
		fork(300, 200, sec(4), "nginx"), execEv(300, 200, sec(4), "/bin/sh", "sh", "-c", "cat /etc/shadow"),
		fork(400, 300, sec(5), "sh"),
	}
	for _, ev := range steps {
		tab.Enrich(ev)
	}
	// Before exec, the forked child is still the shell program.
	ev := open(400, sec(5))
	tab.Enrich(ev)
	if ev.Proc.Exe != "/bin/sh" || !reflect.DeepEqual(ev.Proc.Args, []string{"sh", "-c", "cat /etc/shadow"}) || ev.Proc.Cwd != "/srv" {
		t.Fatalf("forked child before exec: exe %q args %q cwd %q", ev.Proc.Exe, ev.Proc.Args, ev.Proc.Cwd)
	}
	tab.Enrich(execEv(400, 300, sec(5), "/bin/cat", "cat", "/etc/shadow"))

	ev = open(400, sec(5))
	tab.Enrich(ev)
	if ev.Proc.Exe != "/bin/cat" || ev.Proc.Args[1] != "/etc/shadow" || ev.Proc.PPID != 300 || ev.Proc.CgroupID != 77 {
		t.Fatalf("open event not enriched: %+v", ev.Proc)
	}
	want := "300:/bin/sh 200:/usr/sbin/nginx 100:/usr/bin/containerd-shim 1:/sbin/init"
	if got := ancestry(ev); got != want {
		t.Fatalf("ancestors = %q, want %q", got, want)
	}
	if ev.Proc.Ancestors[0].Name != "sh" {
		t.Fatalf("nearest ancestor name %q", ev.Proc.Ancestors[0].Name)
	}
	// An exec event keeps the sensor's own fields.
	ex := execEv(400, 300, sec(5), "/bin/cat", "cat")
	tab.Enrich(ex)
	if !reflect.DeepEqual(ex.Proc.Args, []string{"cat"}) || len(ex.Proc.Ancestors) != 4 {
		t.Fatalf("exec event: %+v", ex.Proc)
	}
}

// Events from different CPUs can arrive out of order: a child's exec may
// be read before its fork.
func TestExecBeforeFork(t *testing.T) {
	tab, _ := newSynthetic(t, Config{})
	tab.Enrich(execEv(1, 0, sec(1), "/sbin/init"))
	tab.Enrich(fork(50, 1, sec(2), "init"))
	tab.Enrich(execEv(50, 1, sec(2), "/usr/sbin/sshd"))
	tab.Enrich(execEv(60, 50, sec(3), "/bin/bash", "bash", "-i"))
	tab.Enrich(fork(60, 50, sec(3), "sshd"))
	ev := open(60, sec(3))
	tab.Enrich(ev)
	if ev.Proc.Exe != "/bin/bash" || ev.Proc.Args[1] != "-i" {
		t.Fatalf("late fork overwrote exec: exe %q args %q", ev.Proc.Exe, ev.Proc.Args)
	}
	if got := ancestry(ev); got != "50:/usr/sbin/sshd 1:/sbin/init" {
		t.Fatalf("ancestors = %q", got)
	}
}

func TestAncestorBound(t *testing.T) {
	tab, _ := newSynthetic(t, Config{MaxAncestors: 3})
	tab.Enrich(execEv(1, 0, sec(1), "/sbin/init"))
	for pid := uint32(2); pid < 20; pid++ {
		tab.Enrich(fork(pid, pid-1, sec(uint64(pid)), "p"))
		tab.Enrich(execEv(pid, pid-1, sec(uint64(pid)), fmt.Sprintf("/bin/p%d", pid)))
	}
	ev := open(19, sec(19))
	tab.Enrich(ev)
	if got := ancestry(ev); got != "18:/bin/p18 17:/bin/p17 16:/bin/p16" {
		t.Fatalf("bounded ancestors = %q", got)
	}
}

func TestPidReuse(t *testing.T) {
	tab, clk := newSynthetic(t, Config{Linger: 2 * time.Second})
	tab.Enrich(execEv(1, 0, sec(1), "/sbin/init"))
	tab.Enrich(fork(500, 1, sec(10), "init"))
	tab.Enrich(execEv(500, 1, sec(10), "/usr/bin/old"))
	tab.Enrich(&event.Event{Kind: event.KindExit, Proc: event.Process{PID: 500, StartTime: sec(10)}})

	// pid 500 is reused by a new process while the old one lingers.
	tab.Enrich(fork(500, 1, sec(20), "init"))
	tab.Enrich(execEv(500, 1, sec(20), "/usr/bin/new"))

	late := open(500, sec(10)) // drained late from the ring buffer
	tab.Enrich(late)
	if late.Proc.Exe != "/usr/bin/old" {
		t.Fatalf("late event of the exited process resolved to %q", late.Proc.Exe)
	}
	cur := open(500, sec(20))
	tab.Enrich(cur)
	if cur.Proc.Exe != "/usr/bin/new" {
		t.Fatalf("new process resolved to %q", cur.Proc.Exe)
	}
	// After lingering, the old generation is gone and the new one stays.
	clk.Add(3 * time.Second)
	late = open(500, sec(10))
	tab.Enrich(late)
	if late.Proc.Exe != "" {
		t.Fatalf("expired process still resolves: %q", late.Proc.Exe)
	}
	cur = open(500, sec(20))
	tab.Enrich(cur)
	if cur.Proc.Exe != "/usr/bin/new" {
		t.Fatalf("new process lost after expiry: %q", cur.Proc.Exe)
	}
	st := tab.Stats()
	if st.Expired != 1 || st.ProcMisses == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestExitedParentStillInAncestry(t *testing.T) {
	tab, clk := newSynthetic(t, Config{Linger: time.Second})
	tab.Enrich(execEv(1, 0, sec(1), "/sbin/init"))
	tab.Enrich(fork(10, 1, sec(2), "init"))
	tab.Enrich(execEv(10, 1, sec(2), "/usr/bin/python3"))
	tab.Enrich(fork(11, 10, sec(3), "python3"))
	tab.Enrich(execEv(11, 10, sec(3), "/bin/sh"))
	// The server exits; the shell is reparented to init (ppid 1 in events)
	// but its lineage still names the server, also after expiry.
	tab.Enrich(&event.Event{Kind: event.KindExit, Proc: event.Process{PID: 10, StartTime: sec(2)}})
	clk.Add(2 * time.Second)
	ev := open(11, sec(3))
	ev.Proc.PPID = 1
	tab.Enrich(ev)
	if got := ancestry(ev); got != "10:/usr/bin/python3 1:/sbin/init" {
		t.Fatalf("ancestors = %q", got)
	}
}

func TestMissingParentIsCounted(t *testing.T) {
	tab, _ := newSynthetic(t, Config{})
	tab.Enrich(fork(900, 800, sec(5), "orphan"))
	ev := open(900, sec(5))
	tab.Enrich(ev)
	if len(ev.Proc.Ancestors) != 0 || ev.Proc.Name != "orphan" {
		t.Fatalf("orphan: %+v", ev.Proc)
	}
	if st := tab.Stats(); st.ParentMissing == 0 {
		t.Fatalf("missing parent not counted: %+v", st)
	}
	// An unknown process is a counted miss, and the event is left alone.
	ev = open(12345, sec(9))
	tab.Enrich(ev)
	if ev.Proc.Exe != "" || len(ev.Proc.Ancestors) != 0 {
		t.Fatalf("unknown pid filled: %+v", ev.Proc)
	}
}

func TestCapacityEviction(t *testing.T) {
	tab, _ := newSynthetic(t, Config{Capacity: 100})
	for pid := uint32(1); pid <= 300; pid++ {
		tab.Enrich(fork(pid, 0, sec(uint64(pid)), "p"))
	}
	st := tab.Stats()
	if st.Entries != 100 || st.Evictions != 200 {
		t.Fatalf("stats after overflow: %+v", st)
	}
	ev := open(300, sec(300))
	tab.Enrich(ev)
	if ev.Proc.Name != "p" {
		t.Fatal("most recent process evicted")
	}
}

func TestConcurrentEnrich(t *testing.T) {
	tab, _ := newSynthetic(t, Config{Capacity: 1000})
	tab.Enrich(execEv(1, 0, sec(1), "/sbin/init"))
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				pid := uint32(2 + w*10000 + i)
				tab.Enrich(fork(pid, 1, sec(uint64(pid)), "w"))
				tab.Enrich(open(pid, sec(uint64(pid))))
				tab.Enrich(&event.Event{Kind: event.KindExit, Proc: event.Process{PID: pid, StartTime: sec(uint64(pid))}})
			}
		}(w)
	}
	wg.Wait()
	if n := tab.Len(); n > 1000 {
		t.Fatalf("table grew past capacity: %d", n)
	}
}

// TestRealProc resolves a real child process through /proc: bootstrap, then
// a miss for a process started afterwards.
func TestRealProc(t *testing.T) {
	tab, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	n, err := tab.Bootstrap()
	if err != nil || n < 2 {
		t.Fatalf("bootstrap: %d, %v", n, err)
	}
	self := open(uint32(os.Getpid()), 0)
	tab.Enrich(self)
	exe, _ := os.Executable()
	if self.Proc.Exe != exe {
		t.Fatalf("self exe %q, want %q", self.Proc.Exe, exe)
	}
	if len(self.Proc.Ancestors) == 0 || self.Proc.Ancestors[0].PID != uint32(os.Getppid()) {
		t.Fatalf("self ancestors %+v, ppid %d", self.Proc.Ancestors, os.Getppid())
	}

	cmd := exec.Command("/bin/sleep", "30")
	cmd.Dir = "/tmp"
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	// Start returns once the child's exec closed the CLOEXEC status pipe,
	// which the kernel does before it sets up the new argv: wait for it.
	for i := 0; i < 200; i++ {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid)); len(b) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := ParseStat(stat)
	if err != nil {
		t.Fatal(err)
	}
	ev := open(uint32(cmd.Process.Pid), ps.StartTicks*tickNs)
	tab.Enrich(ev)
	if ev.Proc.Exe != "/usr/bin/sleep" && ev.Proc.Exe != "/bin/sleep" {
		t.Fatalf("child exe %q", ev.Proc.Exe)
	}
	if !reflect.DeepEqual(ev.Proc.Args, []string{"/bin/sleep", "30"}) || ev.Proc.Cwd != "/tmp" {
		t.Fatalf("child args %q cwd %q", ev.Proc.Args, ev.Proc.Cwd)
	}
	if len(ev.Proc.Ancestors) < 2 || ev.Proc.Ancestors[0].PID != uint32(os.Getpid()) || ev.Proc.Ancestors[1].PID != uint32(os.Getppid()) {
		t.Fatalf("child ancestors %+v", ev.Proc.Ancestors)
	}
	if ev.Proc.CgroupID == 0 {
		t.Fatal("child cgroup id not read from /proc")
	}
	if st := tab.Stats(); st.ProcReads == 0 {
		t.Fatalf("miss not counted as /proc read: %+v", st)
	}
	// A wrong start time for a live pid is pid reuse, not this process.
	wrong := open(uint32(cmd.Process.Pid), (ps.StartTicks+500)*tickNs)
	fresh, _ := New(Config{})
	fresh.Enrich(wrong)
	if wrong.Proc.Exe != "" {
		t.Fatalf("start-time mismatch accepted: %q", wrong.Proc.Exe)
	}
}

// TestRealContainerProcess reads a process inside a real runc container:
// its cgroup id from /proc matches the container's cgroup.
func TestRealContainerProcess(t *testing.T) {
	c := runctest.Start(t, runctest.Options{})
	tab, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	ev := open(uint32(c.InitPID), 0)
	tab.Enrich(ev)
	if ev.Proc.CgroupID != c.CgroupID {
		t.Fatalf("container init cgroup id %d, want %d", ev.Proc.CgroupID, c.CgroupID)
	}
	if !reflect.DeepEqual(ev.Proc.Args, []string{"sleep", "100000"}) || ev.Proc.Exe != "/bin/busybox" {
		t.Fatalf("container init exe %q args %q", ev.Proc.Exe, ev.Proc.Args)
	}
	// runc's init is reparented away from runc; its parent chain must still
	// resolve from /proc without error.
	if len(ev.Proc.Ancestors) == 0 {
		t.Fatalf("no ancestors for container init (stats %+v)", tab.Stats())
	}
}

// BenchmarkEnrich measures enriching a non-exec event of a process whose
// ancestry is eight deep, in a table holding 100K processes.
func BenchmarkEnrich(b *testing.B) {
	tab, _ := newSynthetic(b, Config{Capacity: 1 << 18})
	fillTable(tab, 100_000)
	pid := uint32(99_999) // ten-deep chain, bounded to eight
	ev := open(pid, sec(uint64(pid)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		ev.Proc.Exe, ev.Proc.Args, ev.Proc.Cwd = "", nil, ""
		tab.Enrich(ev)
	}
	reportCPU(b, cpu)
	if len(ev.Proc.Ancestors) != DefaultMaxAncestors {
		b.Fatalf("ancestors %d", len(ev.Proc.Ancestors))
	}
}

// BenchmarkEnrichParallel is BenchmarkEnrich from every CPU at once.
func BenchmarkEnrichParallel(b *testing.B) {
	tab, _ := newSynthetic(b, Config{Capacity: 1 << 18})
	fillTable(tab, 100_000)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ev := open(99_999, sec(99_999))
		for pb.Next() {
			ev.Proc.Exe, ev.Proc.Args, ev.Proc.Cwd = "", nil, ""
			tab.Enrich(ev)
		}
	})
}

// BenchmarkForkExecExit measures the table-update path of a short-lived
// process.
func BenchmarkForkExecExit(b *testing.B) {
	tab, _ := newSynthetic(b, Config{Capacity: 1 << 18})
	fillTable(tab, 100_000)
	args := []string{"/bin/true", "--flag"}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	defer reportCPU(b, cpu)
	for i := 0; i < b.N; i++ {
		pid := uint32(200_000 + i%1_000_000)
		st := sec(uint64(200_000 + i))
		tab.Enrich(fork(pid, 100_000, st, "sh"))
		tab.Enrich(&event.Event{Kind: event.KindExec, Proc: event.Process{PID: pid, PPID: 100_000, StartTime: st, Exe: "/bin/true", Args: args, Cwd: "/"}})
		tab.Enrich(&event.Event{Kind: event.KindExit, Proc: event.Process{PID: pid, StartTime: st}})
	}
}

// BenchmarkMemory100K reports the heap the table holds for 100K processes
// (fork + exec with three arguments each, as a busy node would have).
func BenchmarkMemory100K(b *testing.B) {
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		tab, _ := newSynthetic(b, Config{Capacity: 1 << 18})
		fillTable(tab, 100_000)
		runtime.GC()
		runtime.ReadMemStats(&after)

		if tab.Len() != 100_000 {
			b.Fatalf("len %d", tab.Len())
		}
		heap := float64(after.HeapAlloc - before.HeapAlloc)
		b.ReportMetric(heap/100_000, "heapB/proc")
		b.ReportMetric(heap/(1<<20), "heapMiB/100K")
		runtime.KeepAlive(tab)
	}
}

// fillTable adds n processes: pid 1 as init, then chains of ten (each the
// child of the previous), each with its own exe path and argv strings as a
// real exec would deliver them.
func fillTable(tab *Table, n int) {
	tab.Enrich(execEv(1, 0, sec(1), "/sbin/init"))
	for pid := uint32(2); pid <= uint32(n); pid++ {
		ppid := pid - 1
		if pid%10 == 0 {
			ppid = 1
		}
		st := sec(uint64(pid))
		tab.Enrich(fork(pid, ppid, st, "bash"))
		tab.Enrich(&event.Event{Kind: event.KindExec, Proc: event.Process{
			PID: pid, PPID: ppid, StartTime: st, Name: "worker",
			Exe:  fmt.Sprintf("/usr/local/bin/worker-%d", pid%50),
			Args: []string{fmt.Sprintf("worker-%d", pid%50), "--id", fmt.Sprint(pid)},
			Cwd:  "/srv/app",
		}})
	}
}

// cpuTime returns the process's user+system CPU time. Benchmarks report
// CPU ns/op next to wall ns/op because the shared test machine is often
// oversubscribed, which inflates wall time but not CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkBootstrap measures loading every process of this host from
// /proc; the metric procs/op says how many there were.
func BenchmarkBootstrap(b *testing.B) {
	var n int
	for i := 0; i < b.N; i++ {
		tab, err := New(Config{})
		if err != nil {
			b.Fatal(err)
		}
		n, err = tab.Bootstrap()
		if err != nil {
			b.Fatal(err)
		}
		tab.Close()
	}
	b.ReportMetric(float64(n), "procs/op")
}
