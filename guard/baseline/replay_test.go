package baseline

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/guard/profile"
)

// The replays below drive a Detector with the event stream of an nginx web
// workload, minute by minute, with an injected clock: start-up, learning,
// days of diurnal traffic with kubelet exec probes, releases, and then the
// two cases from the product brief. Everything is deterministic.

var day0 = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

const (
	nginx   = "/usr/sbin/nginx"
	shim    = "/usr/bin/containerd-shim-runc-v2"
	sh      = "/bin/sh"
	busybox = "/bin/busybox"
)

type pod struct {
	id     string
	cgroup uint64
	rev    string
	name   string
	pid    uint32
	assets []string // static files this revision serves; nil: the replay's
}

type webReplay struct {
	t       *testing.T
	d       *Detector
	pods    []*pod
	now     time.Time
	alerts  []alert.Alert
	assets  []string
	upshift uint32
}

func newWebReplay(t *testing.T, cfg Config) *webReplay {
	r := &webReplay{t: t, now: day0.Add(10 * time.Hour),
		assets: []string{"app.3f9a1c2e.js", "vendor.77bd10aa.js", "app.5d41402a.css"}}
	d, err := New(cfg, nil, func() time.Time { return r.now })
	if err != nil {
		t.Fatal(err)
	}
	r.d = d
	return r
}

func webKey(rev string) profile.Key {
	return profile.Key{Namespace: "shop", Workload: "Deployment/web", Container: "nginx", Revision: rev}
}

func webExpected(rev string, at time.Time) profile.Expected {
	uid := int64(0)
	return profile.Expected{
		Key: webKey(rev), Image: "nginx:1.27", AdmittedAt: at,
		Executables:   []string{"/docker-entrypoint.sh", "nginx"},
		Commands:      [][]string{{"/docker-entrypoint.sh", "nginx", "-g", "daemon off;"}, {sh, "-c", "wget -q -O- http://127.0.0.1/healthz"}},
		ListenPorts:   []profile.Port{{Port: 80, Proto: "TCP", Name: "http"}},
		Egress:        []profile.Egress{{Host: "10.96.12.40", Port: 8080, From: "env:BACKEND_URL"}},
		WritablePaths: []string{"/var/cache/nginx", "/var/run"},
		Privilege:     profile.Privilege{RunAsUser: &uid},
	}
}

func (r *webReplay) ev(p *pod, k event.Kind, at time.Time) *event.Event {
	return &event.Event{Kind: k, Time: at,
		Proc: event.Process{PID: p.pid, Name: "nginx", Exe: nginx, CgroupID: p.cgroup,
			Ancestors: []event.Ancestor{{PID: p.pid - 1, Name: "nginx", Exe: nginx}}},
		Container: event.Container{ID: p.id, Runtime: "containerd", Name: "nginx", Image: "nginx:1.27"},
		K8s: event.K8s{Namespace: "shop", Pod: p.name, ContainerName: "nginx",
			Workload: "Deployment/web", Revision: p.rev},
	}
}

func (r *webReplay) feed(e *event.Event) {
	r.alerts = append(r.alerts, r.d.Observe(e)...)
}

func (r *webReplay) exec(p *pod, at time.Time, exe, parent string, args ...string) *event.Event {
	e := r.ev(p, event.KindExec, at)
	e.Proc.Exe, e.Proc.Args = exe, append([]string{exe}, args...)
	e.Proc.Name = exe[strings.LastIndexByte(exe, '/')+1:]
	e.Proc.Ancestors = []event.Ancestor{{Name: parent[strings.LastIndexByte(parent, '/')+1:], Exe: parent}}
	r.feed(e)
	return e
}

func (r *webReplay) open(p *pod, at time.Time, path string, flags uint32) {
	e := r.ev(p, event.KindOpen, at)
	e.File.Path, e.File.Flags = path, flags
	r.feed(e)
}

func (r *webReplay) connect(p *pod, at time.Time, dst string) {
	e := r.ev(p, event.KindConnect, at)
	e.Net.Family, e.Net.Proto = 2, 6
	e.Net.Dst = netip.MustParseAddrPort(dst)
	r.feed(e)
}

// start replays a pod's start-up: entrypoint, config reads, bind, privilege
// drop and two forked workers.
func (r *webReplay) start(p *pod, at time.Time) {
	r.pods = append(r.pods, p)
	r.exec(p, at, "/docker-entrypoint.sh", shim)
	for _, f := range []string{"/docker-entrypoint.d/10-listen-on-ipv6-by-default.sh", "/docker-entrypoint.d/20-envsubst-on-templates.sh"} {
		r.open(p, at, f, 0)
	}
	r.exec(p, at.Add(time.Second), nginx, "/docker-entrypoint.sh", "-g", "daemon off;")
	for _, f := range []string{"/etc/nginx/nginx.conf", "/etc/nginx/mime.types", "/etc/nginx/conf.d/default.conf", "/etc/group", "/etc/localtime"} {
		r.open(p, at.Add(time.Second), f, 0)
	}
	l := r.ev(p, event.KindListen, at.Add(time.Second))
	l.Net.Src = netip.MustParseAddrPort("0.0.0.0:80")
	r.feed(l)
	r.open(p, at.Add(time.Second), "/var/run/nginx.pid", oWronly|oCreat|oTrunc)
	r.open(p, at.Add(time.Second), "/var/log/nginx/error.log", oWronly|oAppend|oCreat)
	for i := 0; i < 2; i++ {
		r.feed(r.ev(p, event.KindFork, at.Add(2*time.Second)))
		r.feed(r.ev(p, event.KindSetgid, at.Add(2*time.Second)))
		r.feed(r.ev(p, event.KindSetuid, at.Add(2*time.Second)))
	}
}

// minute replays one minute of a running pod: reqs requests (static file
// reads, access log, upstream calls, DNS), and six kubelet exec probes.
func (r *webReplay) minute(p *pod, m time.Time, reqs int) {
	assets := r.assets
	if p.assets != nil {
		assets = p.assets
	}
	for i := 0; i < reqs; i++ {
		at := m.Add(time.Duration(i) * time.Minute / time.Duration(reqs))
		r.open(p, at, "/usr/share/nginx/html/index.html", 0)
		r.open(p, at, "/usr/share/nginx/html/static/"+assets[i%len(assets)], 0)
		r.open(p, at, "/var/log/nginx/access.log", oWronly|oAppend)
		if i%4 == 0 {
			r.open(p, at, fmt.Sprintf("/var/cache/nginx/proxy_temp/%d/%02d/%010d", i%10, i%100, int(m.Unix())+i), oWronly|oCreat)
		}
		r.connect(p, at, "10.96.12.40:8080")
		if i%5 == 0 {
			r.connect(p, at, "10.96.0.10:53")
		}
	}
	for s := 0; s < 60; s += 10 {
		at := m.Add(time.Duration(s) * time.Second)
		r.exec(p, at, sh, shim, "-c", "wget -q -O- http://127.0.0.1/healthz")
		r.feed(r.ev(p, event.KindFork, at))
		r.exec(p, at, busybox, sh, "wget", "-q", "-O-", "http://127.0.0.1/healthz")
		r.connect(p, at, "127.0.0.1:80")
	}
}

// reqsAt is the diurnal load: busy 08:00–22:00, light at night.
func reqsAt(t time.Time) int {
	if h := t.Hour(); h >= 8 && h < 22 {
		return 20
	}
	return 1
}

// run replays normal traffic on every pod until end, ticking each minute.
func (r *webReplay) run(end time.Time) {
	for ; r.now.Before(end); r.now = r.now.Add(time.Minute) {
		for _, p := range r.pods {
			r.minute(p, r.now, reqsAt(r.now))
		}
		r.alerts = append(r.alerts, r.d.Tick(r.now.Add(time.Minute-time.Nanosecond))...)
	}
}

func (r *webReplay) take() []alert.Alert {
	a := r.alerts
	r.alerts = nil
	return a
}

func (r *webReplay) requireQuiet(what string) {
	r.t.Helper()
	for _, a := range r.take() {
		r.t.Errorf("%s: unexpected alert %s %s: %s", what, a.Priority, a.Rule, a.Message)
	}
}

// learnFirstRevision admits r1, starts two pods and replays traffic until
// day 2 07:00, asserting it learned to ready without a single alert.
func learnFirstRevision(t *testing.T) *webReplay {
	r := newWebReplay(t, Config{})
	admitted := r.now
	r.d.Seed(webExpected("r1", admitted))
	r.d.SetWindows([]profile.ReleaseWindow{{Workload: profile.WorkloadKey{Namespace: "shop", Workload: "Deployment/web"},
		Revision: "r1", Opened: admitted, Closes: admitted.Add(30 * time.Minute), User: "ci-bot", Changed: []string{"image"}}})
	r.start(&pod{id: "c0ffee01", cgroup: 7001, rev: "r1", name: "web-r1-a", pid: 1000}, r.now.Add(5*time.Second))
	r.start(&pod{id: "c0ffee02", cgroup: 7002, rev: "r1", name: "web-r1-b", pid: 2000}, r.now.Add(20*time.Second))
	r.run(admitted.Add(time.Hour))
	if p, _ := r.d.Profile(webKey("r1")); p.State != StateReady {
		t.Fatalf("r1 still %s after an hour (last new %s)", p.State, p.LastNew)
	}
	r.run(day0.Add(2*24*time.Hour + 7*time.Hour))
	r.requireQuiet("normal traffic")
	return r
}

// TestReplayNightIntrusionIsCritical is the brief's hostile case: at 03:00,
// no release window open, new outbound connections together with a fork+exec
// storm lasting ten minutes. Each signal alone is low priority; together
// they must be CRITICAL.
func TestReplayNightIntrusionIsCritical(t *testing.T) {
	r := learnFirstRevision(t)
	r.run(day0.Add(3*24*time.Hour + 3*time.Hour))
	r.requireQuiet("normal traffic until 03:00")
	victim := r.pods[0]
	first := map[string]alert.Alert{}
	var critical *alert.Alert
	for i := 0; i < 10; i++ {
		m := r.now
		r.minute(r.pods[1], m, reqsAt(m))
		r.minute(victim, m, reqsAt(m))
		for s := 0; s < 5; s++ {
			r.connect(victim, m.Add(time.Duration(s)*12*time.Second), "203.0.113.50:443")
		}
		if i%5 == 0 {
			r.connect(victim, m.Add(30*time.Second), "198.51.100.23:8443")
		}
		for j := 0; j < 250; j++ {
			at := m.Add(time.Duration(j) * 200 * time.Millisecond)
			r.feed(r.ev(victim, event.KindFork, at))
			r.exec(victim, at, sh, nginx, "-c", "for h in $(seq 1 254); do wget -T1 10.0.0.$h; done")
			r.exec(victim, at, busybox, sh, "wget", "-T1", "10.0.0.1")
		}
		r.alerts = append(r.alerts, r.d.Tick(m.Add(time.Minute-time.Nanosecond))...)
		for _, a := range r.take() {
			if a.Source != "baseline" {
				t.Errorf("alert source %q", a.Source)
			}
			b := a.Fields["baseline.behavior"].(string)
			if _, ok := first[b]; !ok {
				first[b] = a
			}
			if a.Rule == "baseline.combination" {
				if a.Priority == alert.Critical && critical == nil {
					a := a
					critical = &a
				}
				continue
			}
			if a.Priority <= alert.Critical {
				t.Errorf("single signal %s reached %s: %s", b, a.Priority, a.Message)
			}
		}
		r.now = r.now.Add(time.Minute)
	}
	for b, a := range first {
		if a.Rule != "baseline.combination" && a.Priority < alert.Notice {
			t.Errorf("first alert for single signal %s is %s, want Notice or lower: %s", b, a.Priority, a.Message)
		}
	}
	for _, want := range []string{"connect:203.0.113.50:443", "connect:198.51.100.23:8443", "rate:fork", "rate:exec", "edge:/usr/sbin/nginx>/bin/sh"} {
		if _, ok := first[want]; !ok {
			t.Errorf("no alert for %s; got %v", want, keys(first))
		}
	}
	if critical == nil {
		t.Fatalf("no CRITICAL combination alert; got %v", keys(first))
	}
	if ev := first["rate:exec"].Event; ev == nil || ev.Kind != event.KindExec || ev.K8s.Pod != victim.name {
		t.Errorf("rate alert evidence = %+v, want an exec of the victim pod", ev)
	}
	if critical.Deploy == nil || critical.Deploy.WindowOpen || critical.Deploy.Revision != "r1" {
		t.Errorf("combination deploy context = %+v, want closed window of r1", critical.Deploy)
	}
	if critical.Event == nil || critical.Event.K8s.Pod != victim.name {
		t.Errorf("combination evidence event = %+v", critical.Event)
	}
	t.Logf("critical: %s", critical.Message)
	// Deduplication: the repeated C2 connection is one deviation with a count.
	for _, a := range r.d.Deviations() {
		if a.Fields["baseline.behavior"] == "connect:203.0.113.50:443" && a.Count != 50 {
			t.Errorf("C2 deviation count = %d, want 50", a.Count)
		}
	}
}

func keys(m map[string]alert.Alert) []string {
	var out []string
	for k, a := range m {
		out = append(out, k+"="+a.Priority.String())
	}
	return out
}

// TestReplayNightSingleSignalsStayBelowCritical checks the other half of the
// hostile case: the same signals apart never reach CRITICAL.
func TestReplayNightSingleSignalsStayBelowCritical(t *testing.T) {
	for _, tc := range []struct {
		name          string
		egress, burst bool
	}{{"egress alone", true, false}, {"burst alone", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			r := learnFirstRevision(t)
			r.run(day0.Add(3*24*time.Hour + 3*time.Hour))
			victim := r.pods[0]
			var worst alert.Priority = alert.Debug
			for i := 0; i < 10; i++ {
				m := r.now
				r.minute(victim, m, reqsAt(m))
				if tc.egress {
					for s := 0; s < 5; s++ {
						r.connect(victim, m.Add(time.Duration(s)*12*time.Second), "203.0.113.50:443")
					}
				}
				if tc.burst {
					for j := 0; j < 250; j++ {
						at := m.Add(time.Duration(j) * 200 * time.Millisecond)
						r.feed(r.ev(victim, event.KindFork, at))
						r.exec(victim, at, busybox, sh, "wget", "-T1", "10.0.0.1")
					}
				}
				r.alerts = append(r.alerts, r.d.Tick(m.Add(time.Minute-time.Nanosecond))...)
				r.now = r.now.Add(time.Minute)
			}
			as := r.take()
			if len(as) == 0 {
				t.Fatal("no alert at all")
			}
			for _, a := range as {
				worst = min(worst, a.Priority)
				if a.Rule == "baseline.combination" {
					t.Errorf("combination without its partner: %s", a.Message)
				}
			}
			if worst <= alert.Critical {
				t.Errorf("single signal reached %s", worst)
			}
			t.Logf("worst priority: %s", worst)
		})
	}
}

// diag replays the brief's benign case: kubectl exec runs a diagnostic
// script that reads /etc/passwd and runs curl once.
func (r *webReplay) diag(p *pod, at time.Time) {
	r.exec(p, at, sh, shim, "/opt/diag/check.sh")
	r.open(p, at, "/opt/diag/check.sh", 0)
	r.open(p, at.Add(100*time.Millisecond), "/etc/passwd", 0)
	r.feed(r.ev(p, event.KindFork, at.Add(200*time.Millisecond)))
	e := r.exec(p, at.Add(200*time.Millisecond), "/usr/bin/curl", sh, "-s", "http://inventory.shop.svc/health")
	c := r.ev(p, event.KindConnect, at.Add(300*time.Millisecond))
	c.Proc = e.Proc
	c.Net.Dst = netip.MustParseAddrPort("10.96.40.7:80")
	r.feed(c)
}

// TestReplayDayAfterReleaseDiagnosticIsInfo is the brief's benign case: the
// day after a release (window closed, revision new), a diagnostic script
// reads /etc/passwd and runs curl once, no follow-up. It must come out as
// informational and be folded into the baseline.
func TestReplayDayAfterReleaseDiagnosticIsInfo(t *testing.T) {
	r := learnFirstRevision(t)
	r.run(day0.Add(2*24*time.Hour + 14*time.Hour))
	// Release r2 at 14:00 on day 2: the canary pod starts first and
	// teaches the new revision; the second pod follows, r1 goes away.
	rel := r.now
	r.d.Seed(webExpected("r2", rel))
	win := profile.ReleaseWindow{Workload: profile.WorkloadKey{Namespace: "shop", Workload: "Deployment/web"},
		Revision: "r2", PrevRevision: "r1", Opened: rel, Closes: rel.Add(30 * time.Minute), User: "alice", Changed: []string{"image"}}
	r.d.SetWindows([]profile.ReleaseWindow{win})
	r2assets := append(append([]string(nil), r.assets...), "chunk-checkout.9f86d081.js", "fonts/inter-v12.woff2")
	canary := &pod{id: "beef0001", cgroup: 8001, rev: "r2", name: "web-r2-a", pid: 3000, assets: r2assets}
	r.start(canary, rel.Add(10*time.Second))
	r.run(rel.Add(5 * time.Minute))
	r.start(&pod{id: "beef0002", cgroup: 8002, rev: "r2", name: "web-r2-b", pid: 4000, assets: r2assets}, r.now)
	r.pods = r.pods[2:]
	r.run(rel.Add(time.Hour))
	r.requireQuiet("rollout")
	p2, _ := r.d.Profile(webKey("r2"))
	if p2.State != StateReady || p2.Parent != "r1" {
		t.Fatalf("r2 profile %s parent %q, want ready child of r1", p2.State, p2.Parent)
	}
	if p2.Learned == 0 || !p2.Reads.Match("/usr/share/nginx/html/static/chunk-checkout.0123abcd.js") {
		t.Errorf("r2 did not learn its difference (learned %d)", p2.Learned)
	}
	p1, _ := r.d.Profile(webKey("r1"))
	if p1.Reads.Match("/usr/share/nginx/html/static/chunk-checkout.0123abcd.js") {
		t.Error("r2's difference leaked into r1")
	}

	// Day 3, 11:00: window long closed, the revision one day old.
	r.run(day0.Add(3*24*time.Hour + 11*time.Hour))
	r.requireQuiet("steady state on r2")
	r.diag(r.pods[0], r.now)
	as := r.take()
	if len(as) == 0 {
		t.Fatal("diagnostic produced no record at all")
	}
	for _, a := range as {
		if a.Priority != alert.Informational {
			t.Errorf("%s is %s, want Informational: %s", a.Fields["baseline.behavior"], a.Priority, a.Message)
		}
		if a.Fields["baseline.learned"] != true {
			t.Errorf("%s not folded into the baseline", a.Fields["baseline.behavior"])
		}
		if a.Deploy == nil || a.Deploy.Revision != "r2" || a.Deploy.User != "alice" || a.Deploy.WindowOpen {
			t.Errorf("deploy context = %+v", a.Deploy)
		}
	}
	// No follow-up: the rest of the day stays quiet, and a repeat of the
	// same diagnostic is now inside the baseline.
	r.run(r.now.Add(3 * time.Hour))
	r.diag(r.pods[0], r.now)
	r.run(r.now.Add(time.Hour))
	r.requireQuiet("after the diagnostic was learned")
	p2, _ = r.d.Profile(webKey("r2"))
	if !p2.Has(Behavior{CatExec, "/usr/bin/curl"}) || !p2.Has(Behavior{CatRead, "/etc/passwd"}) {
		t.Error("diagnostic behaviors were not learned")
	}
}

// TestReplayDiagnosticWithoutReleaseIsNotice shows the release factor is
// what makes the benign case benign: the same script on a revision that is
// weeks old is a Notice that stays open for review.
func TestReplayDiagnosticWithoutReleaseIsNotice(t *testing.T) {
	r := learnFirstRevision(t)
	r.run(day0.Add(3*24*time.Hour + 11*time.Hour))
	r.diag(r.pods[0], r.now)
	got := map[string]alert.Priority{}
	for _, a := range r.take() {
		got[a.Fields["baseline.behavior"].(string)] = a.Priority
		if a.Fields["baseline.learned"] == true {
			t.Errorf("%s learned without a release to explain it", a.Fields["baseline.behavior"])
		}
	}
	if got["exec:/usr/bin/curl"] != alert.Notice || got["connect:10.96.40.7:80"] != alert.Notice {
		t.Errorf("priorities %v, want curl exec and egress at Notice", got)
	}
}
