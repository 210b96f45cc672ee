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
	r.d.Seed(webExpected("r1", r.now))
	p := &pod{id: "c0ffee01", cgroup: 7001, rev: "r1", name: "web-r1-a", pid: 1000}
	r.start(p, r.now)
	r.run(r.now.Add(time.Hour))
	r.take()
	return r, p
}

func BenchmarkObserveInProfile(b *testing.B) {
	r, p := benchDetector(b)
	evs := []*event.Event{r.ev(p, event.KindOpen, r.now), r.ev(p, event.KindConnect, r.now), r.ev(p, event.KindExec, r.now)}
	evs[0].File.Path = "/usr/share/nginx/html/static/app.3f9a1c2e.js"
	evs[1].Net.Dst = mustAP("10.96.12.40:8080")
	evs[2].Proc.Exe = busybox
	evs[2].Proc.Ancestors = []event.Ancestor{{Name: "sh", Exe: sh}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if as := r.d.Observe(evs[i%3]); len(as) != 0 {
			b.Fatalf("in-profile event alerted: %v", as[0].Message)
		}
	}
}

func BenchmarkObserveOutOfProfile(b *testing.B) {
	r, p := benchDetector(b)
	ev := r.ev(p, event.KindConnect, r.now)
	ev.Net.Dst = mustAP("203.0.113.50:443")
	r.d.Observe(ev) // the first sighting opens the deviation; repeats are the steady state
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.d.Observe(ev)
	}
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
