package webhook

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/guard/rules"
	"github.com/vigilsec/vigil/webhook/object"
	"github.com/vigilsec/vigil/webhook/pss"
)

// native swaps the Wasm pack for the in-process Go checks: the baseline the
// pack is measured against.
func native(c *Config) { c.Rules = nil }

// BenchmarkAdmissionPSS compares the production path (the Pod Security
// Standards as the built-in Wasm pack, evaluated by guard/rules) with the
// native Go checks, on the realistic benchPod in a restricted enforce
// namespace:
//
//   - review: the whole admission path minus HTTP, per request;
//   - tls: saturated throughput over TLS on loopback (req/s);
//   - latency: open-loop at 500 req/s over TLS (p50/p99).
func BenchmarkAdmissionPSS(b *testing.B) {
	paths := []struct {
		name   string
		mutate func(*Config)
	}{{"native", native}, {"wasm", nil}, {"wasm-unchecked", func(c *Config) { c.Rules = uncheckedPack(b) }}}
	for _, p := range paths {
		b.Run("review/"+p.name, func(b *testing.B) {
			ts := startServer(b, p.mutate)
			body := benchPod.json()
			if code, resp, _, _, v := ts.Review(body); code != 200 || v != Allowed {
				b.Fatalf("%d %s %s", code, v, resp)
			}
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				ts.Review(body)
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
	for _, p := range paths {
		b.Run("review-violating/"+p.name, func(b *testing.B) {
			ts := startServer(b, p.mutate)
			body := req{kind: "Pod", ns: "prod", name: "root", object: fmt.Sprintf(privilegedPod, "prod")}.json()
			if code, resp, _, _, v := ts.Review(body); code != 200 || v != Denied {
				b.Fatalf("%d %s %s", code, v, resp)
			}
			b.ReportAllocs()
			for b.Loop() {
				ts.Review(body)
			}
		})
	}
	for _, p := range paths {
		b.Run("tls/"+p.name, func(b *testing.B) {
			benchThroughput(b, startServer(b, p.mutate).url)
		})
	}
	for _, p := range paths {
		b.Run("latency-rate=500/"+p.name, func(b *testing.B) { benchLatencyWith(b, 500, p.mutate) })
	}
}

// BenchmarkWasmEvaluate is the pack alone: one wire event through the
// engine, against pss.Check on the same pod at both levels.
//
// "unchecked" runs the same module without wazero's termination checks
// (rules.Config.Unchecked): the cost of being able to stop a runaway guest.
func BenchmarkWasmEvaluate(b *testing.B) {
	wire := benchWire(b)
	run := func(b *testing.B, w *WasmRules) {
		b.ReportAllocs()
		cpu0 := cpuTime()
		for b.Loop() {
			if _, err := w.EvaluateAdmission(wire); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
		b.ReportMetric(float64(len(wire)), "event-bytes")
	}
	b.Run("checked", func(b *testing.B) { run(b, sharedPack(b)) })
	b.Run("unchecked", func(b *testing.B) { run(b, uncheckedPack(b)) })
	b.Run("native", func(b *testing.B) {
		_, recs, _, err := event.Decode(wire)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			a, err := event.DecodeAdmission(recs)
			if err != nil {
				b.Fatal(err)
			}
			pss.CheckLevels(&a.Pod)
		}
	})
}

func benchWire(b *testing.B) []byte {
	r, err := DecodeReview(benchPod.json())
	if err != nil {
		b.Fatal(err)
	}
	t, err := object.Decode("Pod", r.Object.Raw)
	if err != nil {
		b.Fatal(err)
	}
	var a event.Admission
	t.Flatten(&a)
	wire, err := event.AppendAdmission(nil, &a)
	if err != nil {
		b.Fatal(err)
	}
	return wire
}

// uncheckedPack is the built-in pack run without termination checks
// (`vigil webhook --admission-rules-unchecked sha256:<digest>`).
func uncheckedPack(b *testing.B) *WasmRules {
	pss, err := os.ReadFile(filepath.Join(rulesBuild(b), "admission", "pss.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(pss)
	return packWith(b, rules.Config{Unchecked: []string{hex.EncodeToString(sum[:])}})
}

// BenchmarkWasmEvaluateLarge is the pack on large pods (n privileged
// containers with host ports, the worst case for the messages): guest time
// per KiB of event, which sets the webhook's MaxRuleEventBytes bound.
func BenchmarkWasmEvaluateLarge(b *testing.B) {
	w := sharedPack(b)
	for _, n := range []int{100, 900} {
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			var a event.Admission
			a.Kind, a.Namespace = "Pod", "prod"
			for i := range n {
				a.Pod.Containers = append(a.Pod.Containers, event.AdmissionContainer{
					Kind: event.ContainerRegular, Name: fmt.Sprintf("c%04d", i), Image: "busybox",
					Privileged: ptr(true), HostPorts: []string{fmt.Sprintf("%d/TCP", 1000+i)},
				})
			}
			wire, err := event.AppendAdmission(nil, &a)
			if err != nil {
				b.Fatal(err)
			}
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := w.EvaluateAdmission(wire); err != nil {
					b.Fatal(err)
				}
			}
			perOp := float64((cpuTime() - cpu0).Nanoseconds()) / 1e3 / float64(b.N)
			b.ReportMetric(perOp, "cpu-µs/op")
			b.ReportMetric(perOp/(float64(len(wire))/1024), "cpu-µs/KiB")
		})
	}
}
