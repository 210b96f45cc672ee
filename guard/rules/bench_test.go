package rules

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	vigil "github.com/vigilsec/vigil/sdk/go"
)

// The native twin of sdk/go/example, registered in this test binary so the
// same rule can be timed natively (vigil.EvaluateWire) and as Wasm.
func init() {
	vigil.Register(vigil.Rule{Name: "Terminal shell in container", Priority: vigil.Warning, Kinds: []vigil.Kind{vigil.KindExec}},
		func(e *vigil.Event) vigil.Verdict {
			if e.ContainerId() == "" {
				return vigil.Allow()
			}
			switch e.ProcName() {
			case "bash", "sh", "zsh":
				return vigil.Fire("Shell spawned in a container",
					vigil.FieldProcName, vigil.FieldProcArgs, vigil.FieldContainerId, vigil.FieldK8sPod)
			}
			return vigil.Allow()
		})
}

// execBatch is 256 exec events from containers, one in eight a shell.
func execBatch(b *testing.B) *Batch {
	var bt Batch
	for i := 0; i < 256; i++ {
		name := "nginx"
		if i%8 == 0 {
			name = "bash"
		}
		j := fmt.Sprintf(`{"kind":"exec","proc.name":%q,"proc.exe":"/usr/bin/%s","proc.args":[%q,"-c","x"],"proc.pid":%d,"container.id":"3f2a9c1b7d4e","k8s.pod":"web-1","k8s.ns":"prod"}`, name, name, name, 1000+i)
		if err := bt.AddJSON([]byte(j)); err != nil {
			b.Fatal(err)
		}
	}
	return &bt
}

// reportPerEvent reports wall and CPU time per event. On a shared, loaded
// machine wall time mostly measures waiting for a CPU; CPU time (of the
// whole process, GC included) is the cost, and events/s per core derives
// from it.
func reportPerEvent(b *testing.B, perIter int, cpuStart time.Duration) {
	events := float64(b.N * perIter)
	ns := float64(b.Elapsed().Nanoseconds()) / events
	cpu := float64(processCPU()-cpuStart) / events
	b.ReportMetric(ns, "ns/event")
	b.ReportMetric(cpu, "cpu-ns/event")
	b.ReportMetric(1e9/cpu, "events/cpu-s")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStandardPack: the whole standard pack on replayed fixture events
// (every kind it covers), 256 per batch.
func BenchmarkStandardPack(b *testing.B) {
	build := buildDir(b)
	e := newEngine(b, Config{}, filepath.Join(build, "standard.wasm"))
	batch := replayBatch(b, 256)
	ctx := context.Background()
	var dst []Verdict
	b.ResetTimer()
	cpu := processCPU()
	for i := 0; i < b.N; i++ {
		var err error
		if dst, err = e.EvaluateBatch(ctx, batch, dst[:0]); err != nil {
			b.Fatal(err)
		}
	}
	reportPerEvent(b, batch.Len(), cpu)
	if s := e.Stats(); s.Quarantined != 0 {
		b.Fatalf("quarantined: %v", s.Modules[0].Reason)
	}
}

// BenchmarkStandardPackUnchecked: the same, with the pack listed in
// Config.Unchecked (no termination checks), to show what they cost.
func BenchmarkStandardPackUnchecked(b *testing.B) {
	build := buildDir(b)
	wasm, err := os.ReadFile(filepath.Join(build, "standard.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	e := newEngine(b, Config{Unchecked: []string{sha256Hex(wasm)}}, filepath.Join(build, "standard.wasm"))
	batch := replayBatch(b, 256)
	ctx := context.Background()
	var dst []Verdict
	b.ResetTimer()
	cpu := processCPU()
	for i := 0; i < b.N; i++ {
		if dst, err = e.EvaluateBatch(ctx, batch, dst[:0]); err != nil {
			b.Fatal(err)
		}
	}
	reportPerEvent(b, batch.Len(), cpu)
}

// BenchmarkSameRule times one rule on identical events natively in Go and
// as Wasm built from each SDK language (Go, C, Rust, AssemblyScript), all
// through the engine, so the Wasm figures include the host's copy-in and
// verdict decoding.
func BenchmarkSameRule(b *testing.B) {
	build := buildDir(b)
	batch := execBatch(b)
	ctx := context.Background()
	b.Run("native-go", func(b *testing.B) {
		cpu := processCPU()
		for i := 0; i < b.N; i++ {
			if out := vigil.EvaluateWire(batch.Bytes(), batch.Len()); len(out) == 0 {
				b.Fatal("no verdicts")
			}
		}
		reportPerEvent(b, batch.Len(), cpu)
	})
	for _, m := range []string{"go-example.wasm", "c-example.wasm", "rust-example.wasm", "assemblyscript-example.wasm", "c-example.wasm unchecked"} {
		file, unchecked := strings.CutSuffix(m, " unchecked")
		name := "wasm-" + strings.TrimSuffix(file, "-example.wasm")
		if unchecked {
			name += "-unchecked"
		}
		b.Run(name, func(b *testing.B) {
			cfg := Config{}
			if unchecked {
				wasm, _ := os.ReadFile(filepath.Join(build, "examples", file))
				cfg.Unchecked = []string{sha256Hex(wasm)}
			}
			e := newEngine(b, cfg, filepath.Join(build, "examples", file))
			var dst []Verdict
			b.ResetTimer()
			cpu := processCPU()
			for i := 0; i < b.N; i++ {
				var err error
				if dst, err = e.EvaluateBatch(ctx, batch, dst[:0]); err != nil || len(dst) != 32 {
					b.Fatal(err, len(dst), e.Stats().Modules[0].Reason)
				}
			}
			reportPerEvent(b, batch.Len(), cpu)
		})
	}
}

// BenchmarkLoad: compile and first instantiation of a module, with an
// empty on-disk cache (cold) and with a warm one (cached).
func BenchmarkLoad(b *testing.B) {
	build := buildDir(b)
	for _, m := range []string{"examples/go-example.wasm", "standard.wasm"} {
		warm := b.TempDir()
		newEngine(b, Config{CacheDir: warm}, filepath.Join(build, m)).Close()
		b.Run("cold/"+filepath.Base(m), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				newEngine(b, Config{CacheDir: b.TempDir()}, filepath.Join(build, m)).Close()
			}
		})
		b.Run("cached/"+filepath.Base(m), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				newEngine(b, Config{CacheDir: warm}, filepath.Join(build, m)).Close()
			}
		})
	}
}
