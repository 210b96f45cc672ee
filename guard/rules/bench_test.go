package rules

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

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

func reportPerEvent(b *testing.B, perIter int) {
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N*perIter)
	b.ReportMetric(ns, "ns/event")
	b.ReportMetric(1e9/ns, "events/s")
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
	for i := 0; i < b.N; i++ {
		var err error
		if dst, err = e.EvaluateBatch(ctx, batch, dst[:0]); err != nil {
			b.Fatal(err)
		}
	}
	reportPerEvent(b, batch.Len())
	if s := e.Stats(); s.Quarantined != 0 {
		b.Fatalf("quarantined: %v", s.Modules[0].Reason)
	}
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
		for i := 0; i < b.N; i++ {
			if out := vigil.EvaluateWire(batch.Bytes(), batch.Len()); len(out) == 0 {
				b.Fatal("no verdicts")
			}
		}
		reportPerEvent(b, batch.Len())
	})
	for _, m := range []string{"go-example.wasm", "c-example.wasm", "rust-example.wasm", "assemblyscript-example.wasm"} {
		b.Run("wasm-"+m[:len(m)-len("-example.wasm")], func(b *testing.B) {
			e := newEngine(b, Config{}, filepath.Join(build, "examples", m))
			var dst []Verdict
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var err error
				if dst, err = e.EvaluateBatch(ctx, batch, dst[:0]); err != nil || len(dst) != 32 {
					b.Fatal(err, len(dst))
				}
			}
			reportPerEvent(b, batch.Len())
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
