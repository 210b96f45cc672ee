package rules

import (
	"context"
	"fmt"

	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/guard/rules/fixture"
)

// CaseResult is the outcome of one fixture case.
type CaseResult struct {
	Name string
	// Err is nil when the verdicts matched.
	Err error
}

// RunCases evaluates every case of f in one batch and compares the verdicts
// of the module whose metadata name is f.Module (all modules when empty).
func (e *Engine) RunCases(ctx context.Context, f *fixture.File) ([]CaseResult, error) {
	var b Batch
	for _, c := range f.Cases {
		if err := b.AddJSON(c.Event); err != nil {
			return nil, fmt.Errorf("case %q: %w", c.Name, err)
		}
	}
	vs, err := e.EvaluateBatch(ctx, &b, nil)
	if err != nil {
		return nil, err
	}
	got := make([][]fixture.Got, len(f.Cases))
	for _, v := range vs {
		if f.Module != "" && e.moduleName(v.Module) != f.Module {
			continue
		}
		got[v.Event] = append(got[v.Event], ToGot(&v))
	}
	out := make([]CaseResult, len(f.Cases))
	for i := range f.Cases {
		out[i] = CaseResult{Name: f.Cases[i].Name, Err: fixture.Compare(&f.Cases[i], got[i])}
	}
	return out, nil
}

// ToGot renders a verdict in the fixture vocabulary.
func ToGot(v *Verdict) fixture.Got {
	g := fixture.Got{Rule: v.Rule.Name, Observe: v.Observation, Message: v.Message}
	if !v.Observation {
		g.Action, g.Priority = v.Action.String(), v.Priority.String()
	}
	for _, id := range v.Fields {
		if f, ok := event.FieldByID(id); ok {
			g.Fields = append(g.Fields, f.Name)
		} else {
			g.Fields = append(g.Fields, fmt.Sprintf("#%d", id))
		}
	}
	return g
}

func (e *Engine) moduleName(file string) string {
	for _, m := range e.set.Load().modules {
		if m.name == file && m.meta != nil {
			return m.meta.Module
		}
	}
	return ""
}
