package webhook

import (
	"encoding/json"

	"errors"
	"fmt"
	gojson "github.com/goccy/go-json"
	"net/http"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/guard/profile"
	"github.com/vigilsec/vigil/webhook/object"
	"github.com/vigilsec/vigil/webhook/pss"
	"github.com/vigilsec/vigil/webhook/store"
)

// ErrTooLargeForRules is wrapped by the reason an object was not handed to
// the admission rules: its event exceeds Config.MaxRuleEventBytes.
var ErrTooLargeForRules = errors.New("object too large for admission rules")

// ErrBadReview is wrapped by DecodeReview's errors: the body is not a usable
// admission.k8s.io/v1 AdmissionReview. The server answers it with 400.
var ErrBadReview = errors.New("bad admission review")

// DecodeReview parses an AdmissionReview request body and checks that it is
// one: apiVersion admission.k8s.io/v1, kind AdmissionReview, a request with
// a uid. The object stays raw; object.Decode reads it per kind.
func DecodeReview(body []byte) (*admissionv1.AdmissionRequest, error) {
	return decodeReview(gojson.Unmarshal, body)
}

func decodeReview(unmarshal object.Unmarshal, body []byte) (req *admissionv1.AdmissionRequest, err error) {
	// The decoder is third-party code fed untrusted bytes: a panic in it
	// is bad input, not a reason to drop the connection.
	defer func() {
		if p := recover(); p != nil {
			req, err = nil, fmt.Errorf("%w: malformed JSON: decoder panic: %v", ErrBadReview, p)
		}
	}()
	var r admissionv1.AdmissionReview
	if err := unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%w: malformed JSON: %w", ErrBadReview, err)
	}
	if r.APIVersion != "admission.k8s.io/v1" || r.Kind != "AdmissionReview" {
		return nil, fmt.Errorf("%w: want apiVersion admission.k8s.io/v1 kind AdmissionReview, got %q %q",
			ErrBadReview, r.APIVersion, r.Kind)
	}
	if r.Request == nil {
		return nil, fmt.Errorf("%w: no request", ErrBadReview)
	}
	if r.Request.UID == "" {
		return nil, fmt.Errorf("%w: request has no uid", ErrBadReview)
	}
	return r.Request, nil
}

// reviewResponse is the AdmissionReview we answer with; a small struct of
// our own marshals faster than the full API type and says exactly what we
// send.
type reviewResponse struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Response   response `json:"response"`
}

type response struct {
	UID              string            `json:"uid"`
	Allowed          bool              `json:"allowed"`
	Status           *status           `json:"status,omitempty"`
	Warnings         []string          `json:"warnings,omitempty"`
	AuditAnnotations map[string]string `json:"auditAnnotations,omitempty"`
}

type status struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Reason  string `json:"reason,omitempty"`
}

// Verdict is the outcome of one review, for metrics and the audit log.
type Verdict string

// Verdicts.
const (
	Allowed Verdict = "allowed"
	Denied  Verdict = "denied"
	Warned  Verdict = "warned" // audit mode with violations
	Skipped Verdict = "skipped"
)

// outcome is everything one review produced.
type outcome struct {
	resp       response
	verdict    Verdict
	violations []pss.Violation
	audit      *AuditRecord
	ruleAudit  *AuditRecord // a rule engine failure, next to any violation record
	ruleFailed bool
	ruleErr    error
	tooLarge   error // the object exceeds MaxRuleEventBytes
	window     *profile.ReleaseWindow
	recorded   bool
	storeErr   error
}

// AuditRecord is one line of the audit log.
type AuditRecord struct {
	Time       time.Time       `json:"time"`
	Reason     string          `json:"reason"` // "violation", "unknown_kind", "namespace_mode"
	UID        string          `json:"uid"`
	Kind       string          `json:"kind"`
	Namespace  string          `json:"namespace,omitempty"`
	Name       string          `json:"name,omitempty"`
	Operation  string          `json:"operation"`
	User       string          `json:"user,omitempty"`
	Mode       string          `json:"mode,omitempty"`
	Verdict    Verdict         `json:"verdict"`
	Violations []pss.Violation `json:"violations,omitempty"`
	Detail     string          `json:"detail,omitempty"`
}

// review decides one admission request. It never fails for a well-formed
// request: what it cannot read it allows and audits, because the guard is
// an extra layer and must not take the cluster's control plane down with it.
func (s *Server) review(req *admissionv1.AdmissionRequest, now time.Time) (outcome, error) {
	o := outcome{resp: response{UID: string(req.UID), Allowed: true}, verdict: Allowed}
	dryRun := req.DryRun != nil && *req.DryRun
	kind := req.Kind.Kind
	op := string(req.Operation)

	if op == string(admissionv1.Connect) {
		o.verdict = Skipped
		return o, nil
	}
	if op == string(admissionv1.Delete) {
		// A deleted workload may be created again; until then a CREATE of
		// it can only fail with AlreadyExists and must record nothing.
		o.verdict = Skipped
		if !dryRun && kind != "Namespace" {
			// Only the top owner's own deletion forgets the workload: a
			// deleted pod or old ReplicaSet leaves the Deployment alive.
			if tmpl, err := s.decodeObject(kind, req.OldObject.Raw); err == nil && tmpl.Workload == kind+"/"+req.Name {
				ns := req.Namespace
				if ns == "" {
					ns = tmpl.Meta.Namespace
				}
				o.storeErr = s.store.Forget(profile.WorkloadKey{Namespace: ns, Workload: tmpl.Workload})
			}
		}
		return o, nil
	}
	if kind == "Namespace" {
		return s.reviewNamespace(req, dryRun, o)
	}
	tmpl, err := s.decodeObject(kind, req.Object.Raw)
	if errors.Is(err, object.ErrUnknownKind) {
		o.verdict = Skipped
		if !dryRun {
			o.audit = &AuditRecord{Reason: "unknown_kind", Detail: "kind carries no pod template; allowed"}
		}
		return o, nil
	}
	if err != nil {
		return o, fmt.Errorf("%w: object: %w", ErrBadReview, err)
	}
	ns := req.Namespace
	if ns == "" {
		ns = tmpl.Meta.Namespace
	}
	mode := s.modeFor(ns)

	if mode.Action != Off {
		var a event.Admission
		a.Kind, a.Namespace, a.Name, a.Operation = kind, ns, req.Name, op
		a.User, a.Groups, a.DryRun, a.UID = req.UserInfo.Username, req.UserInfo.Groups, dryRun, string(req.UID)
		tmpl.Flatten(&a)
		if s.cfg.Rules != nil {
			o.violations = s.evalRules(&a, mode, &o, dryRun)
		} else {
			// No rule engine: the in-process checks (tests, benchmarks'
			// baseline, `vigil webhook --admission-rules native`).
			o.violations = pss.Check(mode.Level, &a.Pod)
		}
	}
	if o.tooLarge != nil {
		// Never fail open here: padding a pod must not be a way around the
		// policy.
		if mode.Action == Enforce {
			o.verdict = Denied
			o.resp.Allowed = false
			o.resp.Status = &status{
				Code:    http.StatusForbidden,
				Reason:  "Forbidden",
				Message: fmt.Sprintf("vigil: %s %q not admitted: %v", strings.ToLower(kind), displayName(req, tmpl), o.tooLarge),
			}
			return o, nil
		}
		o.resp.Warnings = append(o.resp.Warnings, fmt.Sprintf("vigil: not checked (would deny in enforce mode): %v", o.tooLarge))
		o.verdict = Warned
	}
	if o.ruleFailed && s.cfg.RuleFailure == FailClosed && mode.Action == Enforce {
		o.verdict = Denied
		o.resp.Allowed = false
		o.resp.Status = &status{
			Code:    http.StatusForbidden,
			Reason:  "Forbidden",
			Message: fmt.Sprintf("vigil: %s %q not admitted: admission rules failed and the failure policy is closed: %v", strings.ToLower(kind), displayName(req, tmpl), o.ruleErr),
		}
		return o, nil
	}
	if o.ruleFailed && s.cfg.RuleFailure == FailClosed {
		o.resp.Warnings = append(o.resp.Warnings, fmt.Sprintf("vigil: admission rules failed (would deny in enforce mode): %v", o.ruleErr))
		o.verdict = Warned
	}
	if len(o.violations) > 0 {
		summary := pss.Summary(o.violations)
		label := fmt.Sprintf("%s:latest", mode.Level)
		if mode.Action == Enforce {
			o.verdict = Denied
			o.resp.Allowed = false
			o.resp.Status = &status{
				Code:    http.StatusForbidden,
				Reason:  "Forbidden",
				Message: fmt.Sprintf("vigil: %s %q violates PodSecurity %q: %s", strings.ToLower(kind), displayName(req, tmpl), label, summary),
			}
		} else {
			o.verdict = Warned
			for _, v := range o.violations {
				o.resp.Warnings = append(o.resp.Warnings, fmt.Sprintf("would violate PodSecurity %q: %s", label, v))
			}
			o.resp.AuditAnnotations = map[string]string{"pss-violations": summary}
		}
		if !dryRun {
			o.audit = &AuditRecord{Reason: "violation", Mode: mode.String(), Violations: o.violations}
		}
	}
	if !o.resp.Allowed || dryRun {
		// Denied objects never run; dry runs never record anything.
		return o, nil
	}
	if op != string(admissionv1.Create) && op != string(admissionv1.Update) {
		return o, nil
	}
	var derived []profile.Expected
	rollout := store.Rollout{
		Workload:     profile.WorkloadKey{Namespace: ns, Workload: tmpl.Workload},
		Revision:     tmpl.Revision,
		User:         req.UserInfo.Username,
		Now:          now,
		Window:       s.cfg.WindowDuration,
		Controller:   kind != "Pod",
		Create:       op == string(admissionv1.Create),
		FollowLatest: kind == "Pod" && tmpl.Controlled && !tmpl.RevisionFromController,
		Derive: func() (map[string]string, []profile.Expected) {
			// Complete ran below unless the store's state changed in
			// between; then a decode error leaves the rules' fields only.
			_ = tmpl.Complete()
			derived = tmpl.Expected(ns, now)
			return tmpl.Aspects(), derived
		},
	}
	// A pod decoded for the rules only (object.Template.Partial) is
	// decoded in full when its revision is new: its profiles read every
	// field. A known revision, the common case, never pays for it.
	if tmpl.Partial() && !s.store.Unchanged(rollout) {
		if err := tmpl.Complete(); err != nil {
			return o, fmt.Errorf("%w: object: %w", ErrBadReview, err)
		}
	}
	res, err := s.store.Record(rollout)
	// A failure to record does not change the decision: admission must not
	// depend on the store's disk. It is counted and logged.
	o.storeErr = err
	o.window, o.recorded = res.Window, res.Recorded
	if err == nil && s.cfg.Profiles != nil && (res.Recorded || res.Window != nil) {
		if !res.Recorded {
			derived = nil // a known revision: only its window is new
		}
		// Never blocks; a full queue is counted by the sink.
		s.cfg.Profiles.Enqueue(profile.WorkloadKey{Namespace: ns, Workload: tmpl.Workload}, tmpl.Revision, derived, res.Window)
	}
	return o, nil
}

func (s *Server) decodeObject(kind string, raw []byte) (t *object.Template, err error) {
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, fmt.Errorf("decode %s: decoder panic: %v", strings.ToLower(kind), p)
		}
	}()
	return object.DecodeWith(s.unmarshal, kind, raw)
}

// evalRules runs the configured admission rules on the wire encoding of a
// and returns the violations that apply at the namespace's level.
func (s *Server) evalRules(a *event.Admission, mode Mode, o *outcome, dryRun bool) []pss.Violation {
	buf, _ := s.wireBufs.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	defer s.wireBufs.Put(buf)
	wire, err := event.AppendAdmission((*buf)[:0], a)
	if cap(wire) <= 4*s.cfg.MaxRuleEventBytes {
		*buf = wire // keep the grown buffer, unless an outsized object grew it
	}
	if err == nil && len(wire) > s.cfg.MaxRuleEventBytes {
		s.metrics.ruleOversized.Inc()
		o.tooLarge = fmt.Errorf("%w: its admission event is %d bytes, admission rules take at most %d", ErrTooLargeForRules, len(wire), s.cfg.MaxRuleEventBytes)
		if !dryRun {
			o.ruleAudit = &AuditRecord{Reason: "rule_limit", Mode: mode.String(), Detail: o.tooLarge.Error()}
		}
		return nil
	}
	var results []RuleResult
	if err == nil {
		results, err = s.cfg.Rules.EvaluateAdmission(wire)
	}
	if err != nil {
		s.metrics.ruleErrors.Inc()
		o.ruleFailed, o.ruleErr = true, err
		if s.cfg.RuleFailure == FailClosed && mode.Action == Enforce {
			s.metrics.ruleFailClosed.Inc()
		}
		if !dryRun {
			o.ruleAudit = &AuditRecord{Reason: "rule_error", Mode: mode.String(), Detail: err.Error()}
		}
	}
	var out []pss.Violation
	level := mode.Level.String()
	for _, r := range results {
		switch {
		case !r.Deny:
		case r.Level != "":
			if r.Level == level {
				out = append(out, levelViolations(r)...)
			}
		default:
			out = append(out, pss.Violation{Check: "rule:" + r.Rule, Reason: r.Rule, Detail: r.Message})
		}
	}
	return out
}

func displayName(req *admissionv1.AdmissionRequest, t *object.Template) string {
	if req.Name != "" {
		return req.Name
	}
	if t.Meta.Name != "" {
		return t.Meta.Name
	}
	return t.Meta.GenerateName
}

// reviewNamespace learns a namespace's mode from its labels.
func (s *Server) reviewNamespace(req *admissionv1.AdmissionRequest, dryRun bool, o outcome) (outcome, error) {
	var ns corev1.Namespace
	if err := s.unmarshal(req.Object.Raw, &ns); err != nil {
		return o, fmt.Errorf("%w: namespace object: %w", ErrBadReview, err)
	}
	mode, err := modeFromLabels(ns.Labels)
	if err != nil {
		// A typo in a label must not block namespace creation; say so.
		o.resp.Warnings = []string{fmt.Sprintf("vigil: ignoring namespace labels: %v", err)}
		o.verdict = Warned
		return o, nil
	}
	o.verdict = Skipped
	if dryRun {
		return o, nil
	}
	// A validating webhook runs before the API server knows whether the
	// request will be stored: a CREATE of a namespace that already exists
	// is rejected (AlreadyExists) only after this review. So a CREATE may
	// never change a namespace the webhook already knows, and may not set
	// a mode weaker than the default; weakening takes an UPDATE (kubectl
	// label), which only someone allowed to modify the namespace can send.
	if req.Operation == admissionv1.Create {
		s.modesMu.RLock()
		_, known := s.labelModes[ns.Name]
		s.modesMu.RUnlock()
		weaker := false
		if mode != "" {
			if m, err := ParseMode(mode); err == nil && m.weaker(s.cfg.DefaultMode) {
				weaker = true
			}
		}
		if known || weaker {
			o.resp.Warnings = []string{"vigil: namespace mode labels on create are ignored when the namespace is already known or the mode is weaker than the default; change them with an update (kubectl label)"}
			o.verdict = Warned
			o.audit = &AuditRecord{Reason: "namespace_mode_ignored", Mode: mode, Detail: fmt.Sprintf("create: known=%v weaker=%v", known, weaker)}
			return o, nil
		}
	}
	if err := s.setLabelMode(ns.Name, mode); err != nil {
		o.storeErr = err
		return o, nil
	}
	o.audit = &AuditRecord{Reason: "namespace_mode", Mode: mode, Detail: "mode from namespace labels"}
	return o, nil
}

func (o *outcome) marshal(std bool) ([]byte, error) {
	if std {
		return json.Marshal(reviewResponse{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview", Response: o.resp})
	}
	n := 160 + len(o.resp.UID)
	if o.resp.Status != nil {
		n += len(o.resp.Status.Message) + 64
	}
	for _, w := range o.resp.Warnings {
		n += len(w) + 8
	}
	return appendResponse(make([]byte, 0, n), &o.resp), nil
}

// errorBody renders a 4xx reason as JSON.
func errorBody(code int, msg string) []byte {
	b, _ := json.Marshal(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, msg})
	return b
}
