package webhook

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vigilsec/vigil/guard/event"
)

// FuzzLevelViolations: a level rule's message comes from a guest, so its
// parser must take any bytes without panicking, and yield one violation per
// line, each naming a check.
func FuzzLevelViolations(f *testing.F) {
	for _, s := range []string{
		"privileged: privileged (container \"sh\" must not set securityContext.privileged=true)",
		"hostNamespaces: host namespaces (hostPID=true)\nrunAsUser: runAsUser=0 (pod must not set runAsUser=0)",
		"truncated: 12 more violations",
		"decode: decode admission event: short",
		"no separator at all",
		": (",
		"a: b (c",
		"\n\n",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		vs := levelViolations(RuleResult{Rule: "pod-security-restricted", Deny: true, Message: msg, Level: "restricted"})
		if len(vs) != strings.Count(msg, "\n")+1 {
			t.Fatalf("%d violations for %d lines", len(vs), strings.Count(msg, "\n")+1)
		}
		for _, v := range vs {
			if v.Check == "" && !strings.Contains(msg, "\n: ") && !strings.HasPrefix(msg, ": ") {
				t.Fatalf("violation without a check: %+v", v)
			}
			if utf8.ValidString(msg) && !utf8.ValidString(v.String()) {
				t.Fatalf("invalid UTF-8 from valid input: %q", v.String())
			}
		}
	})
}

// TestWasmMatchesNativeResponses: the same reviews answered by the Wasm pack
// and by the native checks produce byte-identical AdmissionReview responses,
// in enforce and audit namespaces, at both levels.
func TestWasmMatchesNativeResponses(t *testing.T) {
	wasm := startServer(t, nil)
	nat := startServer(t, native)
	dep := strings.Replace(restrictedDeployment, "IMAGE", "1.0", 1)
	for _, r := range []req{
		{kind: "Pod", ns: "prod", name: "root", object: strings.ReplaceAll(privilegedPod, "%s", "prod")},
		{kind: "Pod", ns: "staging", name: "root", object: strings.ReplaceAll(privilegedPod, "%s", "staging")},
		{kind: "Pod", ns: "default", name: "root", object: strings.ReplaceAll(privilegedPod, "%s", "default")},
		{kind: "Deployment", group: "apps", ns: "prod", name: "web", object: dep},
		{kind: "Pod", ns: "prod", name: "", object: benchPod.object},
	} {
		body := r.json()
		c1, b1, _, _, v1 := wasm.Review(body)
		c2, b2, _, _, v2 := nat.Review(body)
		if c1 != c2 || v1 != v2 || string(b1) != string(b2) {
			t.Errorf("%s %s/%s:\nwasm   %d %s %s\nnative %d %s %s", r.kind, r.ns, r.name, c1, v1, b1, c2, v2, b2)
		}
	}
}

// FuzzWasmEvaluate feeds arbitrary bytes to the built pack through the
// engine. The host refuses what is not a wire event; whatever it passes on,
// the guest must answer (a verdict or a pass per level) without trapping:
// a pack quarantined by one odd object would leave every later request to
// the failure policy.
func FuzzWasmEvaluate(f *testing.F) {
	seed := func(a *event.Admission) {
		w, err := event.AppendAdmission(nil, a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(w)
	}
	var a event.Admission
	a.Kind, a.Namespace = "Pod", "prod"
	a.Pod.HostPID = true
	a.Pod.Containers = []event.AdmissionContainer{{Kind: event.ContainerRegular, Name: "sh", Image: "busybox", Privileged: ptr(true)}}
	seed(&a)
	a.Pod.Volumes = []event.AdmissionVolume{{Name: "host", Type: "hostPath"}}
	seed(&a)
	f.Add([]byte{})
	f.Add([]byte("not an event"))
	w := sharedPack(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		// A count field can declare 65535 containers in a few bytes; the
		// webhook never builds such an event (its counts are the object's,
		// and MaxRuleEventBytes bounds the object), so the guest's time
		// is not what is fuzzed here: its robustness is.
		if _, recs, _, err := event.Decode(b); err == nil {
			if a, err := event.DecodeAdmission(recs); err == nil && len(a.Pod.Containers)+len(a.Pod.Volumes) > 64 {
				t.Skip("more objects than the webhook would send for this size")
			}
		}
		rs, err := w.EvaluateAdmission(b)
		if err != nil && errors.Is(err, ErrRuleFailed) {
			t.Fatalf("pack failed on %x: %v", b, err)
		}
		_ = rs
		if st := w.Engine().Stats(); st.Quarantined != 0 {
			t.Fatalf("pack quarantined by %x: %+v", b, st.Modules[0].Reason)
		}
	})
}
