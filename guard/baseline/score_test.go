package baseline

import (
	"math"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/profile"
)

var wk = profile.WorkloadKey{Namespace: "shop", Workload: "Deployment/web"}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestReleaseFactor(t *testing.T) {
	w := DefaultWeights()
	grace := 48 * time.Hour
	for _, tc := range []struct {
		name string
		open bool
		age  time.Duration
		want float64
	}{
		{"window open", true, time.Minute, w.WindowOpen},
		{"window open, old revision", true, 30 * 24 * time.Hour, w.WindowOpen},
		{"day after release", false, 21 * time.Hour, w.YoungRevision},
		{"just past grace", false, grace, 1},
		{"weeks old", false, 30 * 24 * time.Hour, 1},
	} {
		if got := w.releaseFactor(tc.open, tc.age, grace); !near(got, tc.want) {
			t.Errorf("%s: releaseFactor = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestHourFactor(t *testing.T) {
	w := DefaultWeights()
	for _, tc := range []struct {
		activity float64
		known    bool
		want     float64
	}{
		{0, false, 1}, {0.1, false, 1}, // no full day of history: neutral
		{0.0, true, w.QuietHour}, {0.27, true, w.QuietHour},
		{0.5, true, 1}, {1, true, 1},
	} {
		if got := w.hourFactor(tc.activity, tc.known); !near(got, tc.want) {
			t.Errorf("hourFactor(%v, %v) = %v, want %v", tc.activity, tc.known, got, tc.want)
		}
	}
}

func TestHourActivity(t *testing.T) {
	p := newProfile(webKey("r"), day0)
	for h := range p.Hours {
		p.Hours[h] = 10
	}
	p.Hours[14] = 100
	p.HoursSeen = 1<<24 - 1 - 1<<5
	if _, known := p.HourActivity(3); known {
		t.Error("known before every hour was watched")
	}
	p.HoursSeen = 1<<24 - 1
	a, known := p.HourActivity(3)
	if !known || !near(a, 0.1) {
		t.Errorf("HourActivity(3) = %v, %v; want 0.1, true", a, known)
	}
}

func TestPersistence(t *testing.T) {
	w := DefaultWeights()
	for _, tc := range []struct {
		count uint64
		span  time.Duration
		want  float64
	}{
		{1, 0, 1},
		{2, 0, 1 + w.PersistCount},
		{16, 0, 1 + 4*w.PersistCount},
		{1 << 20, 0, 1 + w.PersistCountMax}, // capped: a flood is not infinitely worse
		{1, 5 * time.Minute, 1 + w.PersistSpan/2},
		{1, 3 * time.Hour, 1 + w.PersistSpan},
		{1 << 20, 3 * time.Hour, 1 + w.PersistCountMax + w.PersistSpan},
	} {
		if got := w.persistence(tc.count, tc.span); !near(got, tc.want) {
			t.Errorf("persistence(%d, %v) = %v, want %v", tc.count, tc.span, got, tc.want)
		}
	}
}

func TestCombine(t *testing.T) {
	w := DefaultWeights()
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{0.2}, 0.3},
		{[]float64{0.3, 0.3}, 1.5 * 0.51},
		{[]float64{0.5, 0.5}, 1}, // capped
		{[]float64{0, 0}, 0},
	} {
		if got := w.combine(tc.in...); !near(got, tc.want) {
			t.Errorf("combine(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestNovelty(t *testing.T) {
	w := DefaultWeights()
	for _, tc := range []struct {
		b       Behavior
		dropped bool
		want    float64
	}{
		{Behavior{CatExec, "/usr/bin/curl"}, false, w.Exec},
		{Behavior{CatExec, "/tmp/x"}, true, w.ExecDropped},
		{Behavior{CatRead, "/etc/passwd"}, false, w.Read},
		{Behavior{CatRead, "/etc/shadow"}, false, w.ReadSensitive},
		{Behavior{CatRead, "/proc/{n}/environ"}, false, w.ReadSensitive},
		{Behavior{CatRead, "/var/run/secrets/kubernetes.io/serviceaccount/token"}, false, w.ReadSensitive},
		{Behavior{CatWrite, "/tmp/x"}, false, w.Write},
		{Behavior{CatWrite, "/etc/ld.so.preload"}, false, w.WriteSensitive},
		{Behavior{CatConnect, "203.0.113.1:443"}, false, w.Connect},
		{Behavior{CatPriv, "setuid"}, false, w.Priv},
		{Behavior{CatPriv, "ptrace"}, false, w.PrivDangerous},
		{Behavior{CatPriv, "dup_socket"}, false, w.PrivDangerous},
		{Behavior{CatRate, "exec"}, false, w.Rate},
	} {
		if got := w.novelty(tc.b, tc.dropped); !near(got, tc.want) {
			t.Errorf("novelty(%s) = %v, want %v", tc.b, got, tc.want)
		}
	}
}

func TestPriorityFor(t *testing.T) {
	for _, tc := range []struct {
		s    float64
		want alert.Priority
	}{
		{0, alert.Informational}, {0.24, alert.Informational}, {0.25, alert.Notice},
		{0.45, alert.Warning}, {0.65, alert.Error}, {0.85, alert.Critical}, {1, alert.Critical},
	} {
		if got := PriorityFor(tc.s); got != tc.want {
			t.Errorf("PriorityFor(%v) = %s, want %s", tc.s, got, tc.want)
		}
	}
}

func TestDistThreshold(t *testing.T) {
	var d Dist
	for i := 0; i < 60; i++ {
		d.Add(12)
	}
	if got := d.Threshold(60, 6); !near(got, 60) {
		t.Errorf("flat 12/min: threshold %v, want the floor 60", got)
	}
	d.Add(45) // a learned spike: twice it is never anomalous
	if got := d.Threshold(60, 6); got < 90 {
		t.Errorf("after a 45 spike: threshold %v, want ≥ 90", got)
	}
	var busy Dist
	for i := 0; i < 200; i++ {
		busy.Add(uint32(400 + (i%7)*20))
	}
	if th := busy.Threshold(60, 6); th < 2*520 || busy.Z(2000) < 6 {
		t.Errorf("busy distribution: threshold %v, z(2000) %v", th, busy.Z(2000))
	}
}

// TestScoreFactorsEndToEnd checks the product of the factors through the
// detector: the same new exec scores down in a release window and up at a
// quiet hour.
func TestScoreFactorsEndToEnd(t *testing.T) {
	w := DefaultWeights()
	for _, tc := range []struct {
		name string
		at   time.Duration // after day0
		open bool
		want float64
	}{
		{"window open, busy hour", 2*24*time.Hour + 14*time.Hour, true, w.Exec * w.WindowOpen},
		{"old revision, busy hour", 5*24*time.Hour + 14*time.Hour, false, w.Exec},
		{"old revision, quiet hour", 5*24*time.Hour + 3*time.Hour, false, w.Exec * w.QuietHour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := New(Config{}, nil, nil)
			k := webKey("r1")
			p := d.profileFor(k, day0)
			p.AdmittedAt = day0
			p.State = StateReady
			for h := range p.Hours {
				p.Hours[h] = 1000
			}
			p.HoursSeen = 1<<24 - 1
			p.Hours[3] = 100
			if tc.open {
				d.SetWindows([]profile.ReleaseWindow{{Workload: wk, Revision: "r1", Opened: day0.Add(tc.at - time.Minute), Closes: day0.Add(tc.at + time.Hour)}})
			}
			dv := &deviation{b: Behavior{CatExec, "/usr/bin/nc"}, count: 1, first: day0.Add(tc.at), last: day0.Add(tc.at)}
			d.score(p, dv, day0.Add(tc.at))
			if !near(dv.f.Score, tc.want) {
				t.Errorf("score = %v (%+v), want %v", dv.f.Score, dv.f, tc.want)
			}
		})
	}
}
