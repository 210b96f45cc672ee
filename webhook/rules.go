package webhook

import (
	"fmt"
	"strings"

	"github.com/vigilsec/vigil/webhook/pss"
)

// AdmissionRules evaluates admission rules (Wasm modules behind the rule
// ABI, run by guard/rules; see WasmRules) on one admission event in the
// wire format (kind event.KindAdmission, fields 1000–1999, see
// event.AppendAdmission). The webhook calls it for every reviewed pod
// template whose namespace mode is not off. When it is set, it is the whole
// policy: the Pod Security Standards come from the built-in Wasm pack
// (wasm-rules/admission/pss) and the native Go checks do not run.
//
// # Notes
//
// The event slice is only valid during the call. Results returned with an
// error still count. An error is a rule failure: Config.RuleFailure decides
// between allowing (FailOpen) and denying in enforce namespaces
// (FailClosed); either way an audit record says why and
// vigil_webhook_rule_errors_total counts it.
type AdmissionRules interface {
	EvaluateAdmission(event []byte) ([]RuleResult, error)
}

// RuleResult is one rule's finding. Deny results are violations: enforce
// mode denies with them, audit mode warns.
type RuleResult struct {
	Rule    string `json:"rule"`
	Deny    bool   `json:"deny"`
	Message string `json:"message"`
	// Level is set for Pod Security Standards level rules (tag
	// "pss-level:<level>"): the finding applies only to namespaces at that
	// level, and its message lists violations one per line as
	// "<check>: <reason> (<detail>)".
	Level string `json:"level,omitempty"`
}

// FailurePolicy is what the webhook does when admission rules fail.
type FailurePolicy uint8

// Failure policies.
const (
	// FailOpen allows the request (with an audit record): the guard is an
	// extra layer and a broken rule must not stop deployments.
	FailOpen FailurePolicy = iota
	// FailClosed denies the request in enforce namespaces (audit
	// namespaces allow with a warning): a pod the policy could not check
	// is not admitted.
	FailClosed
)

func (p FailurePolicy) String() string {
	if p == FailClosed {
		return "closed"
	}
	return "open"
}

// ParseFailurePolicy parses "open" or "closed".
func ParseFailurePolicy(s string) (FailurePolicy, error) {
	switch s {
	case "open":
		return FailOpen, nil
	case "closed":
		return FailClosed, nil
	}
	return 0, fmt.Errorf("failure policy %q: want open or closed", s)
}

// levelViolations turns a level rule's message back into violations, so a
// Wasm-evaluated pod is denied with exactly the text of the native checks.
func levelViolations(r RuleResult) []pss.Violation {
	var out []pss.Violation
	for _, line := range strings.Split(r.Message, "\n") {
		check, text, ok := strings.Cut(line, ": ")
		if !ok {
			check, text = r.Rule, line
		}
		v := pss.Violation{Check: check, Reason: text}
		if reason, detail, ok := strings.Cut(text, " ("); ok && strings.HasSuffix(detail, ")") {
			v.Reason, v.Detail = reason, strings.TrimSuffix(detail, ")")
		}
		out = append(out, v)
	}
	return out
}
