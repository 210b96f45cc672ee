// Command pss is the Go-SDK build of Vigil's admission pack: the Kubernetes
// Pod Security Standards (webhook/pss itself) behind the rule ABI, as two
// rules, one per level. The webhook ships the C port (../pss/pss.c, about
// ten times cheaper per event in wazero); this build stays as an SDK example
// and a cross-check, in wasm-rules/build/examples/pss-go.wasm. Both subscribe to kind admission and both run on every admission
// event; the webhook keeps the findings of the rule whose level (its
// "pss-level:<level>" tag) matches the namespace's mode and ignores the other.
//
// One rule per level, rather than a level field in the event, keeps the
// event a plain description of the object (the same bytes serve every
// namespace and every other admission rule) and lets `vigil rules test`
// fixtures name the level they expect. The pod is decoded once per event and
// shared by both rules, and each check runs once for both levels
// (pss.CheckLevels).
//
// A clean pod yields an observation "pass" (proof that the level was
// evaluated); a violating pod yields a block verdict whose message has one
// line per violated check:
//
//	<check id>: <reason> (<detail>)
//
// which the webhook turns back into its list of violations. A message is at
// most 1024 bytes (ABI.md); lines that do not fit are replaced by a final
// "truncated: N more violations" line, never cut mid-line or mid-rune.
package main

import (
	"bytes"

	"github.com/vigilsec/vigil/guard/event"
	vigil "github.com/vigilsec/vigil/sdk/go"
	"github.com/vigilsec/vigil/webhook/pss"
)

// maxMessage is the ABI's message limit.
const maxMessage = 1024

// last caches the last event's results: both rules are called on the same
// event one after the other (the SDK runs rules in registration order per
// event), so the second rule reuses the decode and checks of the first.
// The key is the event's bytes, not its address: the SDK reuses one input
// buffer for every call, so consecutive events share an address.
var last struct {
	wire []byte
	vs   [2][]pss.Violation // baseline, restricted
	err  error
}

func evaluate(w []byte) {
	if last.wire != nil && bytes.Equal(last.wire, w) {
		return
	}
	last.wire, last.vs, last.err = append(last.wire[:0], w...), [2][]pss.Violation{}, nil
	_, recs, _, err := event.Decode(w)
	if err == nil {
		var a *event.Admission
		if a, err = event.DecodeAdmission(recs); err == nil {
			last.vs[0], last.vs[1] = pss.CheckLevels(&a.Pod)
		}
	}
	last.err = err
}

func rule(level pss.Level) func(*vigil.Event) vigil.Verdict {
	slot := 0
	if level == pss.Restricted {
		slot = 1
	}
	return func(e *vigil.Event) vigil.Verdict {
		evaluate(e.Wire())
		if last.err != nil {
			// An event the host built but we cannot read: deny rather than
			// pass it unchecked; the message says why.
			return vigil.Fire("decode: decode admission event: " + last.err.Error())
		}
		vs := last.vs[slot]
		if len(vs) == 0 {
			// An observation, not silence: the webhook requires one record
			// per level rule per event, so a pod the guest never got to
			// (a starved or failed call) is told apart from a clean one.
			return vigil.Observe("pass")
		}
		return vigil.Fire(pss.Message(vs, maxMessage))
	}
}

func init() {
	vigil.Module("pod-security", "1.37.0")
	for _, level := range []pss.Level{pss.Baseline, pss.Restricted} {
		vigil.Register(vigil.Rule{
			Name:        "pod-security-" + level.String(),
			Version:     "1.37.0",
			Description: "Kubernetes Pod Security Standards, " + level.String() + " level (checks of k8s.io/pod-security-admission v1.37)",
			Priority:    vigil.Error,
			Action:      vigil.ActionBlock,
			Kinds:       []vigil.Kind{vigil.KindAdmission},
			Tags:        []string{"pss", "pss-level:" + level.String()},
		}, rule(level))
	}
}

func main() {}
