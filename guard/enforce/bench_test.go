package enforce

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	enforcebpf "github.com/vigilsec/vigil/bpf/enforce"
	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/internal/privtest"
)

// reportLatency adds p50/p99 (µs) of the samples to b: kernel samples end
// at SIGKILL delivery (signal_deliver), observed samples at the parent's
// wait returning.
func reportLatency(b *testing.B, kernel, observed []time.Duration) {
	if len(kernel) == 0 || len(observed) == 0 {
		b.Fatal("no latency samples")
	}
	q := func(s []time.Duration, p float64) float64 {
		slices.Sort(s)
		return float64(s[int(p*float64(len(s)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(q(kernel, 0.50), "deliver-p50-µs")
	b.ReportMetric(q(kernel, 0.99), "deliver-p99-µs")
	b.ReportMetric(q(observed, 0.50), "reaped-p50-µs")
	b.ReportMetric(q(observed, 0.99), "reaped-p99-µs")
	b.ReportMetric(0, "ns/op")
}

// deliveryProbe stamps SIGKILL delivery per tgid in the kernel.
type deliveryProbe struct {
	objs enforcebpf.DeliverObjects
	l    link.Link
}

func newDeliveryProbe(b *testing.B) *deliveryProbe {
	p := &deliveryProbe{}
	if err := enforcebpf.LoadDeliverObjects(&p.objs, nil); err != nil {
		b.Fatal(err)
	}
	l, err := link.Tracepoint("signal", "signal_deliver", p.objs.VigilSignalDeliver, nil)
	if err != nil {
		b.Fatal(err)
	}
	p.l = l
	b.Cleanup(func() { p.l.Close(); p.objs.Close() })
	return p
}

// delivered returns when SIGKILL was delivered to tgid.
func (p *deliveryProbe) delivered(b *testing.B, tgid uint32) uint64 {
	var ts uint64
	if err := p.objs.Delivered.Lookup(tgid, &ts); err != nil {
		b.Fatalf("no SIGKILL delivery stamped for %d: %v", tgid, err)
	}
	p.objs.Delivered.Delete(tgid)
	return ts
}

// BenchmarkKillLatency measures verdict-kill latency from the kernel
// event timestamp (bpf_ktime_get_ns in the record) to the kill being
// delivered (the parent's wait returning, on CLOCK_MONOTONIC):
//
//   - in_kernel: exec_kill sends SIGKILL from sched_process_exec;
//   - pidfd: exec_kill in audit mode records the exec, the record crosses
//     the ring buffer, and userspace kills through a pidfd.
func BenchmarkKillLatency(b *testing.B) {
	privtest.RequireBTF(b)
	records := make(chan Record, 1024)
	e, err := New(Config{Modes: suiteModes, OnRecord: func(r Record) { records <- r }})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	if e.Report().Active(BackendLSM) || !e.Report().Active(BackendExecKill) {
		b.Skip("needs the exec_kill rung")
	}
	dir := b.TempDir()
	probe := newDeliveryProbe(b)

	b.Run("in_kernel", func(b *testing.B) {
		w := Workload{Namespace: "bench", Name: "kill", CgroupPath: testCgroup(b)}
		prog, _ := writeMarkerProgram(b, dir, "benchkill")
		if err := e.Apply(w, []Rule{{Name: "kill", Action: alert.ActionKill, ExecPaths: []string{prog}}}); err != nil {
			b.Fatal(err)
		}
		var kernel, observed []time.Duration
		for b.Loop() {
			cmd := inCgroup(b, w.CgroupPath, prog)
			_ = cmd.Run()
			done := monotonicNs()
			r := <-records
			if !r.Denied {
				b.Fatalf("record %+v", r)
			}
			kernel = append(kernel, time.Duration(probe.delivered(b, r.PID)-r.KTimeNs))
			observed = append(observed, time.Duration(done-r.KTimeNs))
		}
		reportLatency(b, kernel, observed)
	})

	b.Run("pidfd", func(b *testing.B) {
		w := Workload{Namespace: "bench", Name: "pidfd", CgroupPath: testCgroup(b)}
		self, _ := os.Executable()
		if err := e.Apply(w, []Rule{{Name: "audit-kill", Action: alert.ActionKill, ExecPaths: []string{self}}}); err != nil {
			b.Fatal(err)
		}
		var kernel, observed []time.Duration
		for b.Loop() {
			cmd := inCgroup(b, w.CgroupPath, self)
			cmd.Env = append(os.Environ(), "VIGIL_ENFORCE_HELPER=sleep")
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			r := <-records
			for r.Backend != BackendExecKill { // skip the pidfd kill's own records
				r = <-records
			}
			if r.PID != uint32(cmd.Process.Pid) {
				b.Fatalf("record for pid %d, started %d: %+v", r.PID, cmd.Process.Pid, r)
			}
			// A sensor event carries the start time; here /proc supplies it.
			ticks, err := ProcStartTicks(int(r.PID))
			if err != nil {
				b.Fatal(err)
			}
			wk := Workload{Namespace: "bench", Name: "pidfd-enforce"}
			if _, err := e.Kill(wk, "pidfd-kill", r.PID, ticks); err != nil {
				b.Fatal(err)
			}
			_ = cmd.Wait()
			observed = append(observed, time.Duration(monotonicNs()-r.KTimeNs))
			kernel = append(kernel, time.Duration(probe.delivered(b, r.PID)-r.KTimeNs))
		}
		reportLatency(b, kernel, observed)
	})
}

// BenchmarkOverhead measures exec, open and connect storms from a process
// inside an enforced workload, against the same storm with the guard off.
// Every operation is allowed; the policy denies a sibling object so each
// operation walks the backend's full decision path (for fanotify, the
// storm's file sits in a marked directory, so every open is a permission
// round trip to userspace: the worst case).
func BenchmarkOverhead(b *testing.B) {
	privtest.RequireBTF(b)
	dir := b.TempDir()
	prog, _ := writeMarkerProgram(b, dir, "allowed")
	denied, _ := writeMarkerProgram(b, dir, "denied")
	files := filepath.Join(dir, "files")
	os.Mkdir(files, 0o755)
	allowedFile := filepath.Join(files, "allowed")
	os.WriteFile(allowedFile, []byte("x"), 0o644)
	os.WriteFile(filepath.Join(files, "denied"), []byte("x"), 0o644)
	ln := newListener(b)
	addr := fmt.Sprintf("127.0.0.1:%d", ln.port())

	storms := map[string]func(b *testing.B){
		"exec": func(b *testing.B) {
			for b.Loop() {
				p, err := os.StartProcess(prog, []string{prog}, &os.ProcAttr{})
				if err != nil {
					b.Fatal(err)
				}
				p.Wait()
			}
		},
		"open": func(b *testing.B) {
			for b.Loop() {
				fd, err := syscall.Open(allowedFile, syscall.O_RDONLY, 0)
				if err != nil {
					b.Fatal(err)
				}
				syscall.Close(fd)
			}
		},
		"connect": func(b *testing.B) {
			for b.Loop() {
				c, err := net.Dial("tcp4", addr)
				if err != nil {
					b.Fatal(err)
				}
				// Reset instead of FIN: no TIME_WAIT pile-up that would slow
				// later runs' port selection and skew the ratio.
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
		},
	}
	storms["open_marked"] = storms["open"]
	for _, kind := range []string{"exec", "open", "open_marked", "connect"} {
		for _, setup := range []string{"off", "on"} {
			b.Run(kind+"/guard_"+setup, func(b *testing.B) {
				cg := testCgroup(b)
				if setup == "on" {
					// The benchmark process is the workload, so the guard
					// pid is set elsewhere (its parent) to not exempt it.
					e, err := New(Config{Modes: suiteModes, GuardPID: os.Getppid()})
					if err != nil {
						b.Fatal(err)
					}
					defer e.Close()
					w := Workload{Namespace: "bench", Name: "storm", CgroupPath: cg}
					if err := e.Apply(w, []Rule{{Name: "deny-sibling", Action: alert.ActionBlock,
						ExecPaths: []string{denied}, OpenPaths: []string{filepath.Join(files, "denied")},
						Connect: []NetMatch{{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Port: ln.port() + 1}}}}); err != nil {
						b.Fatal(err)
					}
					if kind == "open_marked" {
						// Another workload denies the storm's file: it is
						// marked, so every open from this workload is a
						// permission round trip that ends in "allow".
						other := Workload{Namespace: "bench", Name: "other", CgroupPath: testCgroup(b)}
						if err := e.Apply(other, []Rule{{Name: "deny", Action: alert.ActionBlock, OpenPaths: []string{allowedFile}}}); err != nil {
							b.Fatal(err)
						}
					}
				}
				enterCgroup(b, cg)
				storms[kind](b)
			})
		}
	}
}

// enterCgroup moves the whole benchmark process into cg and back at
// cleanup.
func enterCgroup(b *testing.B, cg string) {
	b.Helper()
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		b.Fatal(err)
	}
	var orig string
	for _, l := range splitLines(string(own)) {
		if len(l) > 3 && l[:3] == "0::" {
			orig = l[3:]
		}
	}
	root, _ := FindCgroup2()
	pid := []byte(strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), pid, 0); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := os.WriteFile(filepath.Join(root, orig, "cgroup.procs"), pid, 0); err != nil {
			b.Errorf("leave cgroup: %v", err)
		}
	})
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

// BenchmarkConnectInterleaved measures the cgroup sock_addr rung's cost on
// connect with the load noise of a shared machine cancelled out: the
// process alternates, in blocks of 50 connects, between an enforced cgroup
// (programs attached, policy applied) and a plain one (nothing attached),
// and the ratio of the median block times is reported.
func BenchmarkConnectInterleaved(b *testing.B) {
	privtest.RequireBTF(b)
	ln := newListener(b)
	addr := fmt.Sprintf("127.0.0.1:%d", ln.port())
	e, err := New(Config{Modes: suiteModes, GuardPID: os.Getppid()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	on, off := testCgroup(b), testCgroup(b)
	w := Workload{Namespace: "bench", Name: "interleaved", CgroupPath: on}
	if err := e.Apply(w, []Rule{{Name: "deny-other-port", Action: alert.ActionBlock,
		Connect: []NetMatch{{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Port: ln.port() + 1}}}}); err != nil {
		b.Fatal(err)
	}
	const block = 50
	connect := func() {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			b.Fatal(err)
		}
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	move := func(cg string) {
		if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			b.Fatal(err)
		}
	}
	enterCgroup(b, off) // registers the move back to the original cgroup
	var tOn, tOff []time.Duration
	for b.Loop() {
		for _, side := range []string{on, off} {
			move(side)
			start := time.Now()
			for range block {
				connect()
			}
			d := time.Since(start) / block
			if side == on {
				tOn = append(tOn, d)
			} else {
				tOff = append(tOff, d)
			}
		}
	}
	slices.Sort(tOn)
	slices.Sort(tOff)
	mOn, mOff := tOn[len(tOn)/2], tOff[len(tOff)/2]
	b.ReportMetric(float64(mOff.Nanoseconds()), "off-ns/connect")
	b.ReportMetric(float64(mOn.Nanoseconds()), "on-ns/connect")
	b.ReportMetric(float64(mOn)/float64(mOff), "ratio")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkExecLock measures an exec storm (the marker program, allowed)
// inside a workload that is enforced but not locked, against the same
// storm with the workload locked to an allow-list holding the program: the
// cost of the lock's path scan and allow-list lookup on every exec. The
// guard_off case is the storm with no enforcer at all.
func BenchmarkExecLock(b *testing.B) {
	privtest.RequireBTF(b)
	dir := b.TempDir()
	prog, _ := writeMarkerProgram(b, dir, "allowed")
	for _, setup := range []string{"guard_off", "unlocked", "locked"} {
		b.Run(setup, func(b *testing.B) {
			cg := testCgroup(b)
			var prog0 *ebpf.Program
			if setup != "guard_off" {
				e, err := New(Config{Modes: suiteModes, GuardPID: os.Getppid()})
				if err != nil {
					b.Fatal(err)
				}
				defer e.Close()
				prog0 = e.k.exk.VigilExecKill
				w := Workload{Namespace: "bench", Name: "lock-storm", CgroupPath: cg}
				if err := e.Apply(w, nil); err != nil {
					b.Fatal(err)
				}
				if setup == "locked" {
					if err := e.Lock(w, ExecLock{Paths: []string{prog}}); err != nil {
						b.Fatal(err)
					}
				}
			}
			// The kernel's own accounting of the exec program's run time
			// isolates the lock's cost from the noise of fork and exec.
			var before *ebpf.ProgramStats
			if prog0 != nil {
				st, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				if before, err = prog0.Stats(); err != nil {
					b.Fatal(err)
				}
			}
			enterCgroup(b, cg)
			for b.Loop() {
				p, err := os.StartProcess(prog, []string{prog}, &os.ProcAttr{})
				if err != nil {
					b.Fatal(err)
				}
				st, err := p.Wait()
				if err != nil || !st.Success() {
					b.Fatalf("allowed exec: %v %v", st, err)
				}
			}
			if prog0 != nil {
				after, err := prog0.Stats()
				if err != nil {
					b.Fatal(err)
				}
				if n := after.RunCount - before.RunCount; n > 0 {
					b.ReportMetric(float64(after.Runtime-before.Runtime)/float64(n), "bpf-ns/exec")
				}
			}
		})
	}
}
