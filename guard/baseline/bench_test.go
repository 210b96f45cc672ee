package baseline

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/event"
)

// benchDetector returns a detector whose r1 profile learned the replay's
// web workload and is ready.
func benchDetector(b *testing.B) (*webReplay, *pod) {
	t := &testing.T{}
	r := newWebReplay(t, Config{})
	// Admitted a month ago: deviations are scored, not folded in as a
	// young revision's informational findings.
	r.d.Seed(webExpected("r1", r.now.Add(-30*24*time.Hour)))
	p := &pod{id: "c0ffee01", cgroup: 7001, rev: "r1", name: "web-r1-a", pid: 1000}
	r.start(p, r.now)
	r.run(r.now.Add(time.Hour))
	r.take()
	return r, p
}

// BenchmarkObserveInProfile is the steady state: events a learned web
// server produces all day.
func BenchmarkObserveInProfile(b *testing.B) {
	r, p := benchDetector(b)
	open := r.ev(p, event.KindOpen, r.now)
	open.File.Path = "/usr/share/nginx/html/static/app.3f9a1c2e.js"
	conn := r.ev(p, event.KindConnect, r.now)
	conn.Net.Dst = mustAP("10.96.12.40:8080")
	exec := r.ev(p, event.KindExec, r.now)
	exec.Proc.Exe, exec.Proc.ExecPath = busybox, busybox // its names are looked up too
	exec.Proc.Args = []string{busybox, "wget", "-q", "-O-", "http://127.0.0.1/healthz"}
	exec.Proc.Ancestors = []event.Ancestor{{Name: "sh", Exe: sh}}
	fork := r.ev(p, event.KindFork, r.now)
	for _, tc := range []struct {
		name string
		ev   *event.Event
	}{{"open", open}, {"connect", conn}, {"exec", exec}, {"fork", fork}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if as := r.d.Observe(tc.ev); len(as) != 0 {
					b.Fatalf("in-profile event alerted: %v", as[0].Message)
				}
			}
		})
	}
}

// BenchmarkObserveOutOfProfile scores events outside the profile: a repeat
// of an open deviation (dedup, rescoring) and a first sighting (a new
// deviation and its alert).
func BenchmarkObserveOutOfProfile(b *testing.B) {
	r, p := benchDetector(b)
	ev := r.ev(p, event.KindConnect, r.now)
	ev.Net.Dst = mustAP("203.0.113.50:443")
	if len(r.d.Observe(ev)) != 1 {
		b.Fatal("first sighting did not alert")
	}
	b.Run("repeat", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.d.Observe(ev)
		}
	})
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if i%8192 == 0 {
				b.StopTimer()
				clear(r.d.devs) // stay below MaxDeviations: measure scoring, not drops
				b.StartTimer()
			}
			ev.Net.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(1024+i%4096))
			if as := r.d.Observe(ev); len(as) != 1 {
				b.Fatalf("first sighting %d (%s) gave %d alerts; stats %+v", i, ev.Net.Dst, len(as), r.d.Stats())
			}
		}
	})
}

// BenchmarkProfileMemory reports the heap held by one learned web server
// profile (see learnedWebProfile).
func BenchmarkProfileMemory(b *testing.B) {
	const n = 200
	keep := make([]*Profile, n)
	var before, after runtime.MemStats
	for b.Loop() {
		clear(keep)
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range keep {
			keep[i] = learnedWebProfile(i)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/profile")
	b.ReportMetric(float64(len(keep[0].Encode())), "disk-bytes/profile")
	runtime.KeepAlive(keep)
}

func mustAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
