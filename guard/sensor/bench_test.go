package sensor

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/guard/event"
)

// The benchmarks compare a workload with no sensor against the same
// workload with the sensor attached and a reader draining it. The sensor
// reports the benchmark process itself (ReportSelf), so every syscall pays
// the full cost. Run them with a short -benchtime; see BENCHMARKS.md.

type benchSensor struct {
	s         *Sensor
	delivered atomic.Uint64
}

func startBenchSensor(b *testing.B, cfg Config) *benchSensor {
	b.Helper()
	requireSensorKernel(b)
	cfg.ReportSelf = true
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	bs := &benchSensor{s: s}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(*event.Event) { bs.delivered.Add(1) }) }()
	b.Cleanup(func() {
		cancel()
		<-done
		s.Close()
	})
	return bs
}

// progStats reads the kernel's run-time accounting of the attached
// programs (tail-called programs are charged to sys_exit, which calls them).
func (bs *benchSensor) progStats(b *testing.B) map[string]*ebpf.ProgramStats {
	out := map[string]*ebpf.ProgramStats{}
	for name, p := range map[string]*ebpf.Program{"exec": bs.s.objs.OnExec, "fork": bs.s.objs.OnFork, "exit": bs.s.objs.OnExit, "sys_exit": bs.s.objs.OnSysExit} {
		st, err := p.Stats()
		if err != nil {
			b.Fatal(err)
		}
		out[name] = st
	}
	return out
}

// sensorModes runs fn without and with the sensor. With it, the kernel's
// own accounting gives each program's mean run time per call
// (<prog>-ns/call), which load from other processes does not skew the way
// it skews wall-clock ns/op. sys_exit runs on every syscall of every task,
// watched or not, so its mean mixes the one-jump cost of unwatched
// syscalls with the full handlers.
//
// cpu-ns/op is the CPU time (user+system, this process and its waited-for
// children) per op. On a loaded machine it is far steadier than wall time;
// with the sensor on it includes the in-process reader, so it is the whole
// cost of watching the op.
func sensorModes(b *testing.B, cfg Config, fn func(b *testing.B)) {
	b.Run("sensor=off", func(b *testing.B) { withCPUTime(b, fn) })
	b.Run("sensor=on", func(b *testing.B) {
		bs := startBenchSensor(b, cfg)
		stop, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
		if err != nil {
			b.Fatal(err)
		}
		defer stop.Close()
		before := bs.progStats(b)
		withCPUTime(b, fn)
		for name, after := range bs.progStats(b) {
			if n := after.RunCount - before[name].RunCount; n > 0 {
				b.ReportMetric(float64(after.Runtime-before[name].Runtime)/float64(n), name+"-ns/call")
			}
		}
	})
}

// withCPUTime runs fn and reports cpu-ns/op.
func withCPUTime(b *testing.B, fn func(b *testing.B)) {
	cpu := func() time.Duration {
		var self, kids unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &self)
		unix.Getrusage(unix.RUSAGE_CHILDREN, &kids)
		var total time.Duration
		for _, r := range []unix.Rusage{self, kids} {
			total += time.Duration(r.Utime.Nano() + r.Stime.Nano())
		}
		return total
	}
	before := cpu()
	fn(b)
	b.ReportMetric(float64(cpu()-before)/float64(b.N), "cpu-ns/op")
}

// BenchmarkExecStorm: fork+exec /bin/true and wait, one at a time.
func BenchmarkExecStorm(b *testing.B) {
	sensorModes(b, Config{}, func(b *testing.B) {
		for b.Loop() {
			if err := exec.Command("/bin/true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOpenClose: openat+close of an ordinary file read-only (dropped
// by the in-kernel prefilter), and of an always-report file (a full record
// through the ring buffer to the reader).
func BenchmarkOpenClose(b *testing.B) {
	dir := b.TempDir()
	plain, hot := filepath.Join(dir, "plain"), filepath.Join(dir, "hot")
	for _, p := range []string{plain, hot} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	cfg := Config{Interest: append(DefaultInterest(), Interest{Prefix: hot, Mode: ReportAlways})}
	for _, tc := range []struct{ name, path string }{{"ordinary", plain}, {"always-report", hot}} {
		b.Run(tc.name, func(b *testing.B) {
			sensorModes(b, cfg, func(b *testing.B) {
				for b.Loop() {
					if err := openLoop(tc.path, 1); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkTCPConnect: loopback TCP connect to an accepting listener, then
// close (a connect and an accept event per op).
func BenchmarkTCPConnect(b *testing.B) {
	sensorModes(b, Config{}, func(b *testing.B) {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		addr := ln.Addr().String()
		for b.Loop() {
			c, err := net.Dial("tcp4", addr)
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
}

// BenchmarkPipeline measures capacity: four generator goroutines open an
// always-report file at a fixed total rate (or flat out) into the default
// 8 MiB ring buffer, and the benchmark reports the rate offered, the rate the reader
// received, and exactly how many records the kernel dropped.
func BenchmarkPipeline(b *testing.B) {
	dir := b.TempDir()
	hot := filepath.Join(dir, "hot")
	if err := os.WriteFile(hot, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	const generators = 4
	for _, rate := range []int{20_000, 40_000, 80_000, 0} {
		name := "rate=max"
		if rate > 0 {
			name = fmt.Sprintf("rate=%dk", rate/1000)
		}
		b.Run(name, func(b *testing.B) {
			bs := startBenchSensor(b, Config{Interest: []Interest{{Prefix: hot, Mode: ReportAlways}}})
			before, _ := bs.s.Stats()
			delivered0 := bs.delivered.Load()
			per := max(b.N/generators, 1)
			start := time.Now()
			b.ResetTimer()
			errs := make(chan error, generators)
			for g := 0; g < generators; g++ {
				go func() {
					for i := 1; i <= per; i++ {
						if err := openLoop(hot, 1); err != nil {
							errs <- err
							return
						}
						if rate > 0 && i%50 == 0 {
							due := time.Duration(i) * time.Second * generators / time.Duration(rate)
							if ahead := due - time.Since(start); ahead > 0 {
								time.Sleep(ahead)
							}
						}
					}
					errs <- nil
				}()
			}
			for g := 0; g < generators; g++ {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			after, _ := bs.s.Stats()
			k0, k1 := before.Kinds[event.KindOpen], after.Kinds[event.KindOpen]
			sent, dropped := k1.Sent-k0.Sent, k1.Dropped-k0.Dropped
			for deadline := time.Now().Add(5 * time.Second); bs.delivered.Load()-delivered0 < sent && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			offered := per * generators
			b.ReportMetric(float64(offered)/elapsed.Seconds(), "offered/s")
			b.ReportMetric(float64(sent)/elapsed.Seconds(), "delivered/s")
			b.ReportMetric(float64(dropped), "dropped")
			b.ReportMetric(float64(dropped)/float64(offered)*100, "drop%")
			if sent+dropped != uint64(offered) {
				b.Errorf("books do not balance: sent %d + dropped %d != offered %d", sent, dropped, offered)
			}
		})
	}
}
