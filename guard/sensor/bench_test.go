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

// bpfRuntime sums the kernel's run-time accounting of every attached
// program (tail-called programs are charged to sys_exit, which calls them).
func (bs *benchSensor) bpfRuntime(b *testing.B) time.Duration {
	var total time.Duration
	for _, p := range []*ebpf.Program{bs.s.objs.OnExec, bs.s.objs.OnFork, bs.s.objs.OnExit, bs.s.objs.OnSysExit} {
		st, err := p.Stats()
		if err != nil {
			b.Fatal(err)
		}
		total += st.Runtime
	}
	return total
}

// sensorModes runs fn without and with the sensor. With it, bpf-ns/op is
// the BPF run time (all tasks on the machine, so an upper bound) per op,
// from the kernel's own accounting, which load on other CPUs does not skew.
func sensorModes(b *testing.B, cfg Config, fn func(b *testing.B)) {
	b.Run("sensor=off", fn)
	b.Run("sensor=on", func(b *testing.B) {
		bs := startBenchSensor(b, cfg)
		stop, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
		if err != nil {
			b.Fatal(err)
		}
		defer stop.Close()
		before := bs.bpfRuntime(b)
		fn(b)
		b.ReportMetric(float64(bs.bpfRuntime(b)-before)/float64(b.N), "bpf-ns/op")
	})
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

// BenchmarkPipeline measures capacity: a generator opens an always-report
// file at a fixed rate (or flat out), and the benchmark reports the rate the
// reader received, and exactly how many records the kernel dropped.
func BenchmarkPipeline(b *testing.B) {
	dir := b.TempDir()
	hot := filepath.Join(dir, "hot")
	if err := os.WriteFile(hot, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	for _, rate := range []int{50_000, 100_000, 200_000, 400_000, 0} {
		name := "rate=max"
		if rate > 0 {
			name = fmt.Sprintf("rate=%dk", rate/1000)
		}
		b.Run(name, func(b *testing.B) {
			bs := startBenchSensor(b, Config{Interest: []Interest{{Prefix: hot, Mode: ReportAlways}}})
			before, _ := bs.s.Stats()
			start := time.Now()
			sent := 0
			for b.Loop() {
				if err := openLoop(hot, 1); err != nil {
					b.Fatal(err)
				}
				sent++
				if rate > 0 && sent%100 == 0 {
					// Pace in batches of 100: sleep until the schedule.
					if ahead := time.Duration(sent)*time.Second/time.Duration(rate) - time.Since(start); ahead > 0 {
						time.Sleep(ahead)
					}
				}
			}
			elapsed := time.Since(start)
			after, _ := bs.s.Stats()
			k0, k1 := before.Kinds[event.KindOpen], after.Kinds[event.KindOpen]
			// Wait for the reader to drain what was sent.
			want := k1.Sent - k0.Sent
			for deadline := time.Now().Add(5 * time.Second); bs.delivered.Load() < want && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			dropped := k1.Dropped - k0.Dropped
			b.ReportMetric(float64(sent)/elapsed.Seconds(), "offered/s")
			b.ReportMetric(float64(want)/elapsed.Seconds(), "delivered/s")
			b.ReportMetric(float64(dropped), "dropped")
			b.ReportMetric(float64(dropped)/float64(sent)*100, "drop%")
		})
	}
}
