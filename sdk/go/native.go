//go:build !wasip1

package vigil

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/guard/rules/fixture"
)

// This file is the native test shim: under a plain `go test`, rules run as
// ordinary Go against fixture events, through the same batch loop and
// output encoding as in Wasm.

// Log writes to stderr in native builds.
func Log(level int, msg string) { fmt.Fprintf(os.Stderr, "vigil log %d: %s\n", level, msg) }

// EvaluateJSON runs every registered rule on one event in the flat JSON
// fixture form and returns what they emitted.
func EvaluateJSON(j []byte) ([]fixture.Got, error) {
	in, err := event.EncodeJSON(nil, j)
	if err != nil {
		return nil, err
	}
	return decode(evaluate(in, 1)), nil
}

// CaseResult is the outcome of one fixture case.
type CaseResult struct {
	Name string
	Err  error
}

// CheckCases runs every case of a fixture file (the format of `vigil rules
// test`) against the registered rules.
func CheckCases(path string) ([]CaseResult, error) {
	f, err := fixture.Load(path)
	if err != nil {
		return nil, err
	}
	out := make([]CaseResult, len(f.Cases))
	for i := range f.Cases {
		got, err := EvaluateJSON(f.Cases[i].Event)
		if err != nil {
			return nil, fmt.Errorf("case %q: %w", f.Cases[i].Name, err)
		}
		out[i] = CaseResult{Name: f.Cases[i].Name, Err: fixture.Compare(&f.Cases[i], got)}
	}
	return out, nil
}

func decode(out []byte) []fixture.Got {
	if len(out) < 4 {
		return nil
	}
	n := int(binary.LittleEndian.Uint32(out))
	var res []fixture.Got
	off := 4
	for i := 0; i < n; i++ {
		h := out[off:]
		recLen := int(binary.LittleEndian.Uint16(h))
		typ, action := h[2], Action(h[3])
		r := rules[binary.LittleEndian.Uint16(h[8:])].rule
		prio, nf, ml := Priority(h[10]), int(h[11]), int(binary.LittleEndian.Uint16(h[12:]))
		g := fixture.Got{Rule: r.Name, Observe: typ == 2, Message: string(h[14+2*nf : 14+2*nf+ml])}
		if typ == 1 {
			if action == DefaultAction {
				action = r.Action
				if action == 0 {
					action = ActionAlert
				}
			}
			if prio == Default {
				prio = r.Priority
			}
			g.Action, g.Priority = action.String(), prio.String()
		}
		for j := 0; j < nf; j++ {
			g.Fields = append(g.Fields, fieldNames[FieldID(binary.LittleEndian.Uint16(h[14+2*j:]))])
		}
		res = append(res, g)
		off += recLen
	}
	return res
}

// EvaluateWire runs the registered rules natively over a batch of n
// wire-format events and returns the ABI output buffer (nil when empty). It
// exists so benchmarks can compare a rule's native cost with its Wasm cost
// on identical input.
func EvaluateWire(in []byte, n int) []byte { return evaluate(in, n) }
