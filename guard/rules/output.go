package rules

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/event"
)

// maxInterned bounds the per-instance message intern table, so a guest
// emitting unique messages cannot grow host memory without limit.
const maxInterned = 4096

// Verdict is one record a rule returned for one event of a batch.
type Verdict struct {
	// Event is the event's index in the evaluated batch.
	Event int
	// Module is the module's file name; Rule its metadata (shared, read-only).
	Module string
	Rule   *Rule
	// Observation marks a fact for behavior detection rather than a finding.
	Observation bool
	Action      alert.Action
	Priority    alert.Priority
	Message     string
	// Fields lists the output fields the rule asked for; their values come
	// from the event itself, see FieldValues.
	Fields []event.FieldID
}

// FieldValues returns the verdict's output fields read from e, keyed by
// registry name.
func (v *Verdict) FieldValues(e *event.Event) map[string]any {
	if len(v.Fields) == 0 {
		return nil
	}
	out := make(map[string]any, len(v.Fields))
	for _, id := range v.Fields {
		if f, ok := event.FieldByID(id); ok {
			out[f.Name] = f.Value(e)
		}
	}
	return out
}

// Alert renders a non-observation verdict as an alert for the outputs. The
// caller sets Mode and Taken once the enforcer has acted.
func (v *Verdict) Alert(e *event.Event) alert.Alert {
	a := alert.Alert{
		Time:     e.Time,
		Rule:     v.Rule.Name,
		Priority: v.Priority,
		Message:  v.Message,
		Tags:     v.Rule.Tags,
		Source:   "rule",
		Action:   v.Action,
		Fields:   v.FieldValues(e),
		Event:    e,
	}
	return a
}

// decodeOutput parses a guest's output buffer (ABI.md "Output buffer") and
// appends the verdicts to dst. The bytes are untrusted: every length, index
// and enum is checked, and nothing from b is retained (messages are copied).
// nEvents is the batch size; idx maps a batch-local event index to the
// caller's index (nil = identity).
//
// Allocation: field ids of all verdicts share one arena per call, and
// messages (usually constant strings in the guest) are interned in intern
// when it is non-nil, so a verdict costs no allocation of its own.
func decodeOutput(dst []Verdict, b []byte, nEvents int, meta *Meta, module string, idx []int32, lastVerdict []int32, intern map[string]string) ([]Verdict, int, error) {
	if len(b) > MaxOutputSize {
		return dst, 0, fmt.Errorf("%w: output of %d bytes exceeds %d", ErrBadOutput, len(b), MaxOutputSize)
	}
	if len(b) < 4 {
		return dst, 0, fmt.Errorf("%w: output of %d bytes has no record count", ErrBadOutput, len(b))
	}
	nrec := int(binary.LittleEndian.Uint32(b))
	if nrec > (len(b)-4)/outHeaderSize {
		return dst, 0, fmt.Errorf("%w: %d records cannot fit in %d bytes", ErrBadOutput, nrec, len(b))
	}
	for i := range lastVerdict {
		lastVerdict[i] = -1
	}
	dropped := 0
	prevEvent := 0
	var arena []event.FieldID
	off := 4
	for i := 0; i < nrec; i++ {
		if len(b)-off < outHeaderSize {
			return dst, dropped, fmt.Errorf("%w: record %d truncated", ErrBadOutput, i)
		}
		h := b[off:]
		recLen := int(binary.LittleEndian.Uint16(h))
		typ, action := h[2], h[3]
		ev := int(binary.LittleEndian.Uint32(h[4:]))
		rule := int(binary.LittleEndian.Uint16(h[8:]))
		prio := h[10]
		nf := int(h[11])
		msgLen := int(binary.LittleEndian.Uint16(h[12:]))
		if recLen != outHeaderSize+2*nf+msgLen || recLen > len(b)-off {
			return dst, dropped, fmt.Errorf("%w: record %d length %d inconsistent", ErrBadOutput, i, recLen)
		}
		if typ != recVerdict && typ != recObservation {
			return dst, dropped, fmt.Errorf("%w: record %d has unknown type %d", ErrBadOutput, i, typ)
		}
		if ev >= nEvents {
			return dst, dropped, fmt.Errorf("%w: record %d names event %d of a batch of %d", ErrBadOutput, i, ev, nEvents)
		}
		if ev < prevEvent {
			return dst, dropped, fmt.Errorf("%w: record %d goes back from event %d to %d", ErrBadOutput, i, prevEvent, ev)
		}
		prevEvent = ev
		if rule >= len(meta.Rules) {
			return dst, dropped, fmt.Errorf("%w: record %d names rule %d of %d", ErrBadOutput, i, rule, len(meta.Rules))
		}
		if nf > MaxOutFields || msgLen > MaxMessageLen {
			return dst, dropped, fmt.Errorf("%w: record %d has %d fields and a %d-byte message", ErrBadOutput, i, nf, msgLen)
		}
		r := &meta.Rules[rule]
		v := Verdict{Event: ev, Module: module, Rule: r, Observation: typ == recObservation, Action: r.Action, Priority: r.Priority}
		if idx != nil {
			v.Event = int(idx[ev])
		}
		if typ == recVerdict {
			switch {
			case action == defaultByte:
			case action >= uint8(alert.ActionAlert) && action <= uint8(alert.ActionBlock):
				v.Action = alert.Action(action)
			default:
				return dst, dropped, fmt.Errorf("%w: record %d has unknown action %d", ErrBadOutput, i, action)
			}
			switch {
			case prio == defaultByte:
			case prio <= uint8(alert.Debug):
				v.Priority = alert.Priority(prio)
			default:
				return dst, dropped, fmt.Errorf("%w: record %d has unknown priority %d", ErrBadOutput, i, prio)
			}
		} else {
			v.Action = alert.ActionAllow
		}
		p := off + outHeaderSize
		if nf > 0 {
			if cap(arena)-len(arena) < nf {
				arena = make([]event.FieldID, 0, max(256, nf))
			}
			start := len(arena)
			for j := 0; j < nf; j++ {
				arena = append(arena, event.FieldID(binary.LittleEndian.Uint16(b[p:])))
				p += 2
			}
			v.Fields = arena[start:len(arena):len(arena)]
		}
		msg := b[p : p+msgLen]
		if s, ok := intern[string(msg)]; ok {
			v.Message = s
		} else {
			if !utf8.Valid(msg) {
				return dst, dropped, fmt.Errorf("%w: record %d message is not UTF-8", ErrBadOutput, i)
			}
			v.Message = string(msg)
			if intern != nil && len(intern) < maxInterned {
				intern[v.Message] = v.Message
			}
		}
		off += recLen
		if typ == recVerdict {
			if lastVerdict[rule] == int32(ev) {
				dropped++
				continue
			}
			lastVerdict[rule] = int32(ev)
		}
		dst = append(dst, v)
	}
	if off != len(b) {
		return dst, dropped, fmt.Errorf("%w: %d trailing bytes after %d records", ErrBadOutput, len(b)-off, nrec)
	}
	return dst, dropped, nil
}
