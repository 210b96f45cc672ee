package webhook

// AdmissionRules evaluates admission rules (Wasm modules behind the rule
// ABI, run by guard/rules) on one admission event in the wire format
// (kind event.KindAdmission, fields 1000–1999, see event.AppendAdmission).
// The webhook calls it after its native Pod Security Standards checks, for
// every reviewed pod template whose namespace mode is not off.
//
// # Notes
//
// The event slice is only valid during the call. An error fails open: the
// request is allowed, an audit record says why, and
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
}
