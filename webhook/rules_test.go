package webhook

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/guard/event"
)

// digestRule is an admission rule that sees only the wire bytes, as a Wasm
// guest would: it decodes them with the guest-side decoder and denies
// images not pinned by digest.
type digestRule struct{ calls int }

func (d *digestRule) EvaluateAdmission(b []byte) ([]RuleResult, error) {
	d.calls++
	kind, recs, _, err := event.Decode(b)
	if err != nil || kind != event.KindAdmission {
		return nil, fmt.Errorf("bad event: %v %v", kind, err)
	}
	a, err := event.DecodeAdmission(recs)
	if err != nil {
		return nil, err
	}
	var out []RuleResult
	for _, c := range a.Pod.Containers {
		if !strings.Contains(c.Image, "@sha256:") {
			out = append(out, RuleResult{Rule: "image-digest", Deny: true,
				Message: fmt.Sprintf("%s container %q in %s/%s uses unpinned image %q", c.Kind, c.Name, a.Namespace, a.Workload, c.Image)})
		}
	}
	return out, nil
}

type brokenRules struct{}

func (brokenRules) EvaluateAdmission([]byte) ([]RuleResult, error) {
	return nil, errors.New("guest trapped")
}

func TestAdmissionRulesSeeTheWireEvent(t *testing.T) {
	rule := &digestRule{}
	ts := startServer(t, func(c *Config) { c.Rules = rule })
	dep := strings.Replace(restrictedDeployment, "IMAGE", "1.0", 1)
	out := ts.admit(t, req{kind: "Deployment", group: "apps", ns: "prod", name: "web", object: dep}.json())
	if out.Response.Allowed || !strings.Contains(out.Response.Status.Message, `regular container "app" in prod/Deployment/web uses unpinned image "registry.example.com/web:1.0"`) {
		t.Fatalf("unpinned image in prod: %+v", out.Response)
	}
	pinned := strings.Replace(restrictedDeployment, ":IMAGE", "@sha256:0123", 1)
	if out := ts.admit(t, req{kind: "Deployment", group: "apps", ns: "prod", name: "web", object: pinned}.json()); !out.Response.Allowed {
		t.Fatalf("pinned image denied: %+v", out.Response)
	}
	// Audit mode warns with the rule's message.
	out = ts.admit(t, req{kind: "Deployment", group: "apps", ns: "dev", name: "web", object: dep}.json())
	if !out.Response.Allowed || len(out.Response.Warnings) != 1 || !strings.Contains(out.Response.Warnings[0], "image-digest") {
		t.Fatalf("audit: %+v", out.Response)
	}
	if rule.calls != 3 {
		t.Fatalf("rule called %d times", rule.calls)
	}
}

func TestAdmissionRuleErrorsFailOpen(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.Rules = brokenRules{} })
	dep := strings.Replace(restrictedDeployment, "IMAGE", "1.0", 1)
	if out := ts.admit(t, req{kind: "Deployment", group: "apps", ns: "prod", name: "web", object: dep}.json()); !out.Response.Allowed {
		t.Fatalf("rule error denied: %+v", out.Response)
	}
	recs := ts.audit.lines()
	if len(recs) != 1 || recs[0].Reason != "rule_error" || !strings.Contains(recs[0].Detail, "guest trapped") {
		t.Fatalf("audit %+v", recs)
	}
	_, m := ts.get(t, "/metrics")
	if !strings.Contains(string(m), "vigil_webhook_rule_errors_total 1") {
		t.Error("rule error not counted")
	}
}
