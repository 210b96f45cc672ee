package webhook

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/guard/rules"
)

// ErrRuleFailed is wrapped by WasmRules.EvaluateAdmission's errors: a module
// is quarantined (it trapped, looped, ran out of memory or returned garbage),
// or a level rule gave no answer for the event. The webhook then applies its
// RuleFailure policy.
var ErrRuleFailed = errors.New("admission rule failed")

// LevelTag marks a rule as the check of one Pod Security Standards level:
// tag "pss-level:restricted" on a rule means its findings apply only to
// namespaces whose mode has level restricted. Level rules must answer every
// admission event, with a verdict or an observation, so that a rule that
// never ran is told apart from a pod that passed.
const LevelTag = "pss-level:"

// WasmRules evaluates admission events with a directory of Wasm rule modules
// (the same ABI and engine as the guard's runtime rules; see guard/rules).
// It is the webhook's AdmissionRules in production.
type WasmRules struct {
	engine *rules.Engine
	pool   sync.Pool // *wasmScratch
}

type wasmScratch struct {
	batch    rules.Batch
	verdicts []rules.Verdict
	seen     map[*rules.Rule]bool
}

// OpenWasmRules loads cfg.Dir into a rules engine. Modules that fail to load
// are not an error here; they make every evaluation fail (ErrRuleFailed), so
// the failure policy decides, and Stats names them.
func OpenWasmRules(ctx context.Context, cfg rules.Config) (*WasmRules, error) {
	e, err := rules.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("admission rules: %w", err)
	}
	w := &WasmRules{engine: e}
	w.pool.New = func() any { return &wasmScratch{seen: map[*rules.Rule]bool{}} }
	return w, nil
}

// Engine is the underlying rules engine, for stats and reloads.
func (w *WasmRules) Engine() *rules.Engine { return w.engine }

// Close releases the engine. Safe to call twice.
func (w *WasmRules) Close() error { return w.engine.Close() }

// EvaluateAdmission runs every module subscribed to kind admission on one
// wire-encoded admission event. Block and kill verdicts are Deny results;
// alert verdicts are findings that do not deny; observations only prove that
// a level rule ran. Results come back even with an error, so a healthy PSS
// pack still decides when a neighbouring module fails.
func (w *WasmRules) EvaluateAdmission(ev []byte) ([]RuleResult, error) {
	sc := w.pool.Get().(*wasmScratch)
	defer w.pool.Put(sc)
	sc.batch.Reset()
	if err := sc.batch.AddWire(ev); err != nil {
		return nil, fmt.Errorf("admission event: %w", err)
	}
	if n := sc.batch.Len(); n != 1 {
		return nil, fmt.Errorf("admission event: want one wire event, got %d", n)
	}
	if k := event.Kind(binary.LittleEndian.Uint16(ev[4:])); k != event.KindAdmission {
		return nil, fmt.Errorf("admission event: kind %v is not admission", k)
	}
	var err error
	sc.verdicts, err = w.engine.EvaluateBatch(context.Background(), &sc.batch, sc.verdicts[:0])
	if err != nil {
		return nil, err
	}
	clear(sc.seen)
	var out []RuleResult
	for i := range sc.verdicts {
		v := &sc.verdicts[i]
		sc.seen[v.Rule] = true
		if v.Observation {
			continue
		}
		out = append(out, RuleResult{
			Rule:    v.Rule.Name,
			Deny:    v.Action == alert.ActionBlock || v.Action == alert.ActionKill,
			Message: v.Message,
			Level:   ruleLevel(v.Rule),
		})
	}
	return out, w.check(sc.seen)
}

// check reports quarantined modules and level rules that gave no answer.
func (w *WasmRules) check(seen map[*rules.Rule]bool) error {
	var problems []string
	for _, m := range w.engine.Stats().Modules {
		if m.Quarantined {
			problems = append(problems, fmt.Sprintf("module %s quarantined: %v", m.Name, m.Reason))
		}
	}
	for name, meta := range w.engine.Rules() {
		for i := range meta.Rules {
			r := &meta.Rules[i]
			if ruleLevel(r) != "" && !seen[r] {
				problems = append(problems, fmt.Sprintf("rule %q of module %s gave no answer", r.Name, name))
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrRuleFailed, strings.Join(problems, "; "))
}

func ruleLevel(r *rules.Rule) string {
	for _, t := range r.Tags {
		if l, ok := strings.CutPrefix(t, LevelTag); ok {
			return l
		}
	}
	return ""
}
