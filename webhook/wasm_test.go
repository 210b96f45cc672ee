package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/guard/rules"
	"github.com/vigilsec/vigil/internal/privtest"
	"github.com/vigilsec/vigil/webhook/internal/corpora"
	"github.com/vigilsec/vigil/webhook/object"
	"github.com/vigilsec/vigil/webhook/pss"
)

const repoRoot = ".."

var (
	buildOnce sync.Once
	buildErr  error
	buildLog  []byte

	packOnce sync.Once
	pack     *WasmRules
	packErr  error
)

// rulesBuild brings wasm-rules/build up to date with scripts/build-rules.sh
// (what `make rules` runs; incremental) and returns it.
func rulesBuild(t testing.TB) string {
	t.Helper()
	privtest.RequireTool(t, "/usr/bin/clang-14")
	privtest.RequireTool(t, "/usr/bin/wat2wasm")
	buildOnce.Do(func() {
		cmd := exec.Command("scripts/build-rules.sh")
		cmd.Dir = repoRoot
		buildLog, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("scripts/build-rules.sh: %v\n%s", buildErr, buildLog)
	}
	return filepath.Join(repoRoot, "wasm-rules", "build")
}

// testCacheDir keeps wazero's compiled code across test runs: the Go-built
// pack takes seconds to compile cold.
func testCacheDir(t testing.TB) string {
	d := "/var/cache/vigil/wazero-webhook-test"
	if err := os.MkdirAll(d, 0o755); err != nil {
		return t.TempDir()
	}
	return d
}

// sharedPack is the built-in pack (wasm-rules/build/admission) loaded once
// for the whole test binary: every server test goes through it unless it
// sets its own Config.Rules.
func sharedPack(t testing.TB) *WasmRules {
	t.Helper()
	dir := filepath.Join(rulesBuild(t), "admission")
	packOnce.Do(func() {
		pack, packErr = OpenWasmRules(context.Background(), rules.Config{Dir: dir, CacheDir: testCacheDir(t)})
	})
	if packErr != nil {
		t.Fatal(packErr)
	}
	if st := pack.Engine().Stats(); len(st.Modules) != 1 || st.Quarantined != 0 {
		t.Fatalf("built-in pack: %+v", st)
	}
	return pack
}

// packWith loads the built-in pack plus extra module files into a fresh
// directory and engine.
func packWith(t testing.TB, cfg rules.Config, extra ...string) *WasmRules {
	t.Helper()
	build := rulesBuild(t)
	cfg.Dir, cfg.CacheDir = t.TempDir(), testCacheDir(t)
	for _, f := range append([]string{filepath.Join(build, "admission", "pss.wasm")}, extra...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cfg.Dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w, err := OpenWasmRules(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

type psaFixture struct {
	File   string `json:"file"`
	Level  string `json:"level"`
	Expect string `json:"expect"`
}

// wasmViolations returns the pack's violations for level, as the webhook
// reads them.
func wasmViolations(rs []RuleResult, level pss.Level) []pss.Violation {
	var out []pss.Violation
	for _, r := range rs {
		if r.Deny && r.Level == level.String() {
			out = append(out, levelViolations(r)...)
		}
	}
	return out
}

// TestPSACorpusThroughWasm runs the Kubernetes project's own Pod Security
// Admission fixtures (v1.37) through the built Wasm pack in the rules engine,
// fed the wire events the webhook builds. Each fixture's verdict at its
// labelled level must match the label, and at both levels the pack's
// violations (after the webhook's parsing) must equal the native checks'.
func TestPSACorpusThroughWasm(t *testing.T) {
	w := sharedPack(t)
	dir, err := corpora.Dir("psa")
	if err != nil {
		t.Fatal(err)
	}
	idx, err := os.ReadFile(filepath.Join(dir, "INDEX.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fixtures []psaFixture
	if err := json.Unmarshal(idx, &fixtures); err != nil {
		t.Fatal(err)
	}
	if len(fixtures) != 148 {
		t.Fatalf("%d fixtures in %s, want 148", len(fixtures), dir)
	}
	agree, denied := 0, 0
	for _, fx := range fixtures {
		y, err := os.ReadFile(filepath.Join(dir, fx.File))
		if err != nil {
			t.Fatal(err)
		}
		js, err := yaml.YAMLToJSON(y)
		if err != nil {
			t.Fatalf("%s: %v", fx.File, err)
		}
		tmpl, err := object.Decode("Pod", js)
		if err != nil {
			t.Fatalf("%s: %v", fx.File, err)
		}
		var a event.Admission
		a.Kind, a.Namespace, a.Operation = "Pod", "psa", "CREATE"
		tmpl.Flatten(&a)
		wire, err := event.AppendAdmission(nil, &a)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := w.EvaluateAdmission(wire)
		if err != nil {
			t.Fatalf("%s: %v", fx.File, err)
		}
		for _, level := range []pss.Level{pss.Baseline, pss.Restricted} {
			got, want := wasmViolations(rs, level), pss.Check(level, &a.Pod)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s at %s: wasm %v, native %v", fx.File, level, got, want)
			}
		}
		level, err := pss.ParseLevel(fx.Level)
		if err != nil {
			t.Fatal(err)
		}
		deny := len(wasmViolations(rs, level)) > 0
		if deny != (fx.Expect == "deny") {
			t.Errorf("%s (%s): expect %s, wasm pack says deny=%v", fx.File, fx.Level, fx.Expect, deny)
			continue
		}
		agree++
		if deny {
			denied++
		}
	}
	t.Logf("wasm pack agrees with %d/%d PSA fixtures (%d denied)", agree, len(fixtures), denied)
	if denied == 0 || denied == len(fixtures) {
		t.Fatalf("degenerate corpus: %d of %d denied", denied, len(fixtures))
	}
	st := w.Engine().Stats().Modules[0]
	if st.Events < uint64(len(fixtures)) || st.Quarantined {
		t.Fatalf("the pack did not run every fixture: %+v", st)
	}
}

// TestMessageTruncation: a pod with violations past the ABI's 1024-byte
// message limit still yields a valid verdict that denies and says how many
// violations were left out.
func TestMessageTruncation(t *testing.T) {
	w := sharedPack(t)
	var a event.Admission
	a.Kind, a.Namespace = "Pod", "psa"
	for i := range 40 {
		a.Pod.Containers = append(a.Pod.Containers, event.AdmissionContainer{
			Kind: event.ContainerRegular, Name: fmt.Sprintf("container-with-a-rather-long-name-%02d", i), Image: "busybox",
			Privileged: ptr(true), HostPorts: []string{fmt.Sprintf("%d/TCP", 1000+i)},
		})
	}
	a.Pod.HostPID, a.Pod.HostNetwork = true, true
	for i := range 40 {
		a.Pod.Sysctls = append(a.Pod.Sysctls, fmt.Sprintf("kernel.forbidden.sysctl.number.%02d", i))
	}
	wire, err := event.AppendAdmission(nil, &a)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := w.EvaluateAdmission(wire)
	if err != nil {
		t.Fatal(err)
	}
	vs := wasmViolations(rs, pss.Restricted)
	if len(vs) == 0 {
		t.Fatal("no violations")
	}
	last := vs[len(vs)-1]
	native := pss.Check(pss.Restricted, &a.Pod)
	if last.Check != "truncated" || !strings.Contains(last.Reason, "more violations") {
		t.Fatalf("last line %+v (native has %d violations)", last, len(native))
	}
	for _, r := range rs {
		if len(r.Message) > rules.MaxMessageLen {
			t.Fatalf("message of %d bytes", len(r.Message))
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestWasmPackOverTLS: the real server, over TLS, with the built-in pack as
// its only policy: a pod violating restricted is denied in an enforce
// namespace with a message naming the violated checks, and allowed with
// warnings and an audit record in an audit namespace.
func TestWasmPackOverTLS(t *testing.T) {
	w := sharedPack(t)
	before := w.Engine().Stats().Modules[0].Events
	ts := startServer(t, func(c *Config) {
		c.Rules = w
		c.NamespaceModes["team"] = Mode{Action: Audit, Level: pss.Restricted}
	})
	out := ts.admit(t, req{kind: "Pod", ns: "prod", name: "root", object: fmt.Sprintf(privilegedPod, "prod")}.json())
	msg := ""
	if out.Response.Status != nil {
		msg = out.Response.Status.Message
	}
	if out.Response.Allowed || out.Response.Status.Code != 403 {
		t.Fatalf("enforce: %+v", out.Response)
	}
	for _, want := range []string{`pod "root" violates PodSecurity "restricted:latest"`, "host namespaces (hostPID=true)",
		`privileged (container "sh" must not set securityContext.privileged=true)`, "allowPrivilegeEscalation != false", "runAsNonRoot != true"} {
		if !strings.Contains(msg, want) {
			t.Errorf("deny message lacks %q:\n%s", want, msg)
		}
	}
	out = ts.admit(t, req{kind: "Pod", ns: "team", name: "root", object: fmt.Sprintf(privilegedPod, "team")}.json())
	if !out.Response.Allowed || len(out.Response.Warnings) < 4 {
		t.Fatalf("audit: %+v", out.Response)
	}
	if !strings.Contains(strings.Join(out.Response.Warnings, "\n"), `would violate PodSecurity "restricted:latest": privileged (`) {
		t.Errorf("warnings: %q", out.Response.Warnings)
	}
	recs := ts.audit.lines()
	if len(recs) != 2 || recs[0].Verdict != Denied || recs[1].Verdict != Warned || recs[1].Mode != "audit:restricted" ||
		len(recs[1].Violations) != len(out.Response.Warnings) {
		t.Fatalf("audit records %+v", recs)
	}
	// The compliant deployment passes in prod, and both answers came from
	// the Wasm guest, not the native checks.
	dep := strings.Replace(restrictedDeployment, "IMAGE", "1.0", 1)
	if out := ts.admit(t, req{kind: "Deployment", group: "apps", ns: "prod", name: "web", object: dep}.json()); !out.Response.Allowed {
		t.Fatalf("restricted deployment denied: %+v", out.Response)
	}
	if got := w.Engine().Stats().Modules[0].Events - before; got < 3 {
		t.Fatalf("pack evaluated %d events for 3 reviews", got)
	}
	_, m := ts.get(t, "/metrics")
	if !strings.Contains(string(m), `vigil_webhook_denials_total{check="privileged"} 1`) {
		t.Error("denial not counted per check")
	}
}

// TestHostileAdmissionModule: a module that traps or loops next to the pack
// never crashes or stalls the webhook; it is quarantined, counted, and the
// failure policy decides: open allows (the pack still denies what it
// denies), closed denies compliant pods in enforce namespaces.
func TestHostileAdmissionModule(t *testing.T) {
	build := rulesBuild(t)
	dep := strings.Replace(restrictedDeployment, "IMAGE", "1.0", 1)
	for _, hostile := range []string{"admission-trap", "admission-loop"} {
		for _, policy := range []FailurePolicy{FailOpen, FailClosed} {
			t.Run(hostile+"/"+policy.String(), func(t *testing.T) {
				w := packWith(t, rules.Config{Timeout: 50 * time.Millisecond},
					filepath.Join(build, "admission-hostile", hostile+".wasm"))
				ts := startServer(t, func(c *Config) { c.Rules, c.RuleFailure = w, policy })
				if hostile == "admission-loop" {
					quarantineLoop(t, w)
				}
				start := time.Now()
				out := ts.admit(t, req{kind: "Deployment", group: "apps", ns: "prod", name: "web", object: dep}.json())
				if d := time.Since(start); d > 5*time.Second {
					t.Fatalf("review took %v", d)
				}
				switch policy {
				case FailOpen:
					if !out.Response.Allowed {
						t.Fatalf("fail open denied: %+v", out.Response)
					}
				case FailClosed:
					if out.Response.Allowed || !strings.Contains(out.Response.Status.Message, "failure policy is closed") ||
						!strings.Contains(out.Response.Status.Message, hostile+".wasm quarantined") {
						t.Fatalf("fail closed: %+v %+v", out.Response, out.Response.Status)
					}
				}
				// Still quarantined on the next request, and the pack still
				// denies a violating pod whatever the policy.
				out = ts.admit(t, req{kind: "Pod", ns: "prod", name: "root", object: fmt.Sprintf(privilegedPod, "prod")}.json())
				if out.Response.Allowed {
					t.Fatalf("violating pod allowed: %+v", out.Response)
				}
				// An audit namespace allows either way.
				if out := ts.admit(t, req{kind: "Deployment", group: "apps", ns: "staging", name: "web", object: dep}.json()); !out.Response.Allowed {
					t.Fatalf("audit namespace denied: %+v", out.Response)
				}
				var st rules.ModuleStats
				for _, m := range w.Engine().Stats().Modules {
					if m.Name == hostile+".wasm" {
						st = m
					}
				}
				want := rules.ErrTrap
				if hostile == "admission-loop" {
					want = rules.ErrDeadline
				}
				if !st.Quarantined || !errors.Is(st.Reason, want) {
					t.Fatalf("hostile module %+v, want quarantined with %v", st, want)
				}
				recs := ts.audit.lines()
				if len(recs) == 0 || recs[0].Reason != "rule_error" || !strings.Contains(recs[0].Detail, "quarantined") {
					t.Fatalf("audit %+v", recs)
				}
				_, m := ts.get(t, "/metrics")
				if !strings.Contains(string(m), "vigil_webhook_rule_errors_total 3") {
					t.Errorf("rule errors not counted:\n%s", grepLines(string(m), "rule_"))
				}
				closed := "vigil_webhook_rule_fail_closed_total 0"
				if policy == FailClosed {
					closed = "vigil_webhook_rule_fail_closed_total 2"
				}
				if !strings.Contains(string(m), closed) {
					t.Errorf("want %s:\n%s", closed, grepLines(string(m), "rule_"))
				}
			})
		}
	}
}

// quarantineLoop runs events through w until its looping module is
// quarantined. On an idle machine the first call does it. On a loaded one
// the engine may judge the node starved rather than the guest stuck (the
// guest got under half its deadline in CPU) and give it a few more batches
// (rules.Config.SlowStrikes); each call must still come back promptly.
func quarantineLoop(t *testing.T, w *WasmRules) {
	t.Helper()
	a := event.Admission{Kind: "Pod", Namespace: "prod", Operation: "CREATE"}
	a.Pod.Containers = []event.AdmissionContainer{{Name: "c", Kind: event.ContainerRegular, Image: "busybox"}}
	wire, err := event.AppendAdmission(nil, &a)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		start := time.Now()
		w.EvaluateAdmission(wire)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("evaluation took %v", d)
		}
		for _, m := range w.Engine().Stats().Modules {
			if m.Name == "admission-loop.wasm" && m.Quarantined {
				return
			}
		}
	}
	t.Fatalf("looping module not quarantined after 20 events: %+v", w.Engine().Stats())
}

// TestLevelRuleMustAnswer: a level rule that gives no answer for an event
// (here: its module is quarantined before the call) is a failure, never a
// silent pass.
func TestLevelRuleMustAnswer(t *testing.T) {
	w := packWith(t, rules.Config{})
	var a event.Admission
	a.Kind = "Pod"
	a.Pod.Containers = []event.AdmissionContainer{{Kind: event.ContainerRegular, Name: "c", Image: "busybox"}}
	wire, _ := event.AppendAdmission(nil, &a)
	if _, err := w.EvaluateAdmission(wire); err != nil {
		t.Fatal(err)
	}
	if err := w.check(map[*rules.Rule]bool{}); !errors.Is(err, ErrRuleFailed) || !strings.Contains(err.Error(), `rule "pod-security-baseline" of module pss.wasm gave no answer`) {
		t.Fatalf("missing answers: %v", err)
	}
	if _, err := w.EvaluateAdmission([]byte("garbage")); err == nil {
		t.Fatal("garbage event accepted")
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestOversizedObjectNotSentToRules: a pod padded with containers until its
// event is past MaxRuleEventBytes would run the guest past its deadline and
// get it quarantined (leaving every later request to the failure policy).
// It is denied in enforce namespaces without reaching the rules, warned in
// audit ones, and the pack stays healthy.
func TestOversizedObjectNotSentToRules(t *testing.T) {
	w := packWith(t, rules.Config{})
	ts := startServer(t, func(c *Config) { c.Rules = w })
	var ctrs []string
	for i := range 2000 {
		ctrs = append(ctrs, fmt.Sprintf(`{"name":"c%d","image":"busybox"}`, i))
	}
	pod := func(ns string) string {
		return `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"wide","namespace":"` + ns + `"},"spec":{"containers":[` + strings.Join(ctrs, ",") + `]}}`
	}
	out := ts.admit(t, req{kind: "Pod", ns: "prod", name: "wide", object: pod("prod")}.json())
	if out.Response.Allowed || !strings.Contains(out.Response.Status.Message, "too large for admission rules") {
		t.Fatalf("enforce: %+v", out.Response)
	}
	out = ts.admit(t, req{kind: "Pod", ns: "staging", name: "wide", object: pod("staging")}.json())
	if !out.Response.Allowed || len(out.Response.Warnings) == 0 || !strings.Contains(out.Response.Warnings[0], "not checked") {
		t.Fatalf("audit: %+v", out.Response)
	}
	st := w.Engine().Stats()
	if st.Quarantined != 0 || st.Modules[0].Events != 0 {
		t.Fatalf("the pack saw the oversized pod: %+v", st.Modules[0])
	}
	recs := ts.audit.lines()
	if len(recs) != 2 || recs[0].Reason != "rule_limit" {
		t.Fatalf("audit %+v", recs)
	}
	_, m := ts.get(t, "/metrics")
	if !strings.Contains(string(m), "vigil_webhook_rule_oversized_total 2") {
		t.Error("oversized objects not counted")
	}
}
