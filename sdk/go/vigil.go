// Package vigil is the Go SDK for Vigil rule modules (wasm-rules/ABI.md).
// A rule is one function, registered with its metadata:
//
//	func init() {
//		vigil.Register(vigil.Rule{
//			Name:     "Terminal shell in container",
//			Priority: vigil.Warning,
//			Kinds:    []vigil.Kind{vigil.KindExec},
//		}, Evaluate)
//	}
//
//	func Evaluate(e *vigil.Event) vigil.Verdict {
//		if e.ContainerId() != "" && e.ProcName() == "bash" {
//			return vigil.Alert(vigil.Warning, "shell in container", vigil.FieldProcName)
//		}
//		return vigil.Allow()
//	}
//
//	func main() {}
//
// Build with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared. Under a
// plain `go test`, the native shim (EvaluateJSON, CheckCases) runs the same
// functions on fixture events.
//
// # Notes
//
// Strings returned by getters alias the event and are valid only during the
// rule call; copy them (strings.Clone) to keep them.
package vigil

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"
	"unsafe"
)

// Kind is an event kind; FieldID a field's wire id. Constants for both are
// generated from the registry into fields_gen.go.
type (
	Kind    uint16
	FieldID uint16
)

// String returns the kind's stable name.
func (k Kind) String() string { return kindNames[k] }

// Priority is the Falco-style severity of a verdict.
type Priority uint8

// Priorities, most severe first. Default means "the rule's own priority".
const (
	Emergency     Priority = 0
	AlertPriority Priority = 1
	Critical      Priority = 2
	Error         Priority = 3
	Warning       Priority = 4
	Notice        Priority = 5
	Informational Priority = 6
	Debug         Priority = 7
	Default       Priority = 255
)

var priorityNames = [...]string{"Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"}

func (p Priority) String() string {
	if int(p) < len(priorityNames) {
		return priorityNames[p]
	}
	return "Default"
}

// Action is what a verdict asks the guard to do.
type Action uint8

// Actions. DefaultAction means "the rule's own action".
const (
	ActionAlert   Action = 1
	ActionKill    Action = 2
	ActionBlock   Action = 3
	DefaultAction Action = 255
)

func (a Action) String() string {
	switch a {
	case ActionAlert:
		return "alert"
	case ActionKill:
		return "kill"
	case ActionBlock:
		return "block"
	}
	return "default"
}

// Rule is one rule's metadata. Priority and Action are its defaults.
type Rule struct {
	Name        string
	Version     string
	Description string
	Priority    Priority // zero value is Emergency: always set it
	Action      Action   // zero value means alert
	Kinds       []Kind
	Tags        []string
}

// Verdict is what a rule returns for one event. The zero value (Allow)
// emits nothing.
type Verdict struct {
	typ      uint8 // 0 none, 1 verdict, 2 observation
	action   Action
	priority Priority
	msg      string
	fields   []FieldID
}

// Allow returns the verdict that emits nothing.
func Allow() Verdict { return Verdict{} }

// Alert reports the event.
func Alert(p Priority, msg string, fields ...FieldID) Verdict {
	return Verdict{typ: 1, action: ActionAlert, priority: p, msg: msg, fields: fields}
}

// Kill asks the guard to kill the acting process (audit mode records it).
func Kill(p Priority, msg string, fields ...FieldID) Verdict {
	return Verdict{typ: 1, action: ActionKill, priority: p, msg: msg, fields: fields}
}

// Block asks the guard to deny the operation (EPERM, or admission denial).
func Block(p Priority, msg string, fields ...FieldID) Verdict {
	return Verdict{typ: 1, action: ActionBlock, priority: p, msg: msg, fields: fields}
}

// Fire reports the event with the rule's default action and priority.
func Fire(msg string, fields ...FieldID) Verdict {
	return Verdict{typ: 1, action: DefaultAction, priority: Default, msg: msg, fields: fields}
}

// Observe records a fact for behavior detection; key names it.
func Observe(key string, fields ...FieldID) Verdict {
	return Verdict{typ: 2, msg: key, fields: fields}
}

type registered struct {
	rule  Rule
	kinds [4]uint64
	fn    func(*Event) Verdict
}

// A module is a process-wide singleton by nature (one Wasm module, one set
// of exports), so registration state is package-level, written only from
// init functions.
var (
	rules      []registered
	moduleName = "go-rules"
	moduleVer  = ""
	metaJSON   []byte
	outBuf     []byte
)

// Module names the module (default "go-rules"). Call it from init.
func Module(name, version string) { moduleName, moduleVer = name, version }

// Register adds a rule. Call it from init; the order of calls is the rule
// order of the module.
func Register(r Rule, fn func(*Event) Verdict) {
	reg := registered{rule: r, fn: fn}
	for _, k := range r.Kinds {
		if k < 256 {
			reg.kinds[k>>6] |= 1 << (k & 63)
		}
	}
	rules = append(rules, reg)
	metaJSON = nil
}

func meta() []byte {
	if metaJSON != nil {
		return metaJSON
	}
	var b strings.Builder
	b.WriteString(`{"abi":1,"module":`)
	jsonString(&b, moduleName)
	if moduleVer != "" {
		b.WriteString(`,"version":`)
		jsonString(&b, moduleVer)
	}
	b.WriteString(`,"rules":[`)
	for i, r := range rules {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"name":`)
		jsonString(&b, r.rule.Name)
		if r.rule.Version != "" {
			b.WriteString(`,"version":`)
			jsonString(&b, r.rule.Version)
		}
		if r.rule.Description != "" {
			b.WriteString(`,"description":`)
			jsonString(&b, r.rule.Description)
		}
		b.WriteString(`,"priority":`)
		jsonString(&b, r.rule.Priority.String())
		if r.rule.Action == ActionKill || r.rule.Action == ActionBlock {
			b.WriteString(`,"action":`)
			jsonString(&b, r.rule.Action.String())
		}
		b.WriteString(`,"kinds":[`)
		for j, k := range r.rule.Kinds {
			if j > 0 {
				b.WriteByte(',')
			}
			jsonString(&b, k.String())
		}
		b.WriteString(`],"tags":[`)
		for j, t := range r.rule.Tags {
			if j > 0 {
				b.WriteByte(',')
			}
			jsonString(&b, t)
		}
		b.WriteString(`]}`)
	}
	b.WriteString(`]}`)
	metaJSON = []byte(b.String())
	return metaJSON
}

func jsonString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[r>>4])
			b.WriteByte("0123456789abcdef"[r&15])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}

// evaluate runs every registered rule over a batch of wire events and
// returns the output buffer of ABI.md (nil when empty).
func evaluate(in []byte, n int) []byte {
	out := append(outBuf[:0], 0, 0, 0, 0)
	count := 0
	off := 0
	for i := 0; i < n && off+8 <= len(in); i++ {
		total := int(binary.LittleEndian.Uint32(in[off:]))
		if total < 8 || total > len(in)-off {
			break
		}
		e := Event{b: in[off : off+total], kind: Kind(binary.LittleEndian.Uint16(in[off+4:]))}
		for ri := range rules {
			r := &rules[ri]
			if e.kind >= 256 || r.kinds[e.kind>>6]&(1<<(e.kind&63)) == 0 {
				continue
			}
			v := r.fn(&e)
			if v.typ == 0 {
				continue
			}
			out = appendRecord(out, &v, i, ri)
			count++
		}
		off += total
	}
	outBuf = out
	if count == 0 {
		return nil
	}
	binary.LittleEndian.PutUint32(out, uint32(count))
	return out
}

func appendRecord(out []byte, v *Verdict, ev, rule int) []byte {
	msg := v.msg
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	fields := v.fields
	if len(fields) > 16 {
		fields = fields[:16]
	}
	out = binary.LittleEndian.AppendUint16(out, uint16(14+2*len(fields)+len(msg)))
	action, prio := uint8(v.action), uint8(v.priority)
	if v.typ == 2 {
		action, prio = 0, 0
	}
	out = append(out, v.typ, action)
	out = binary.LittleEndian.AppendUint32(out, uint32(ev))
	out = binary.LittleEndian.AppendUint16(out, uint16(rule))
	out = append(out, prio, uint8(len(fields)))
	out = binary.LittleEndian.AppendUint16(out, uint16(len(msg)))
	for _, f := range fields {
		out = binary.LittleEndian.AppendUint16(out, uint16(f))
	}
	return append(out, msg...)
}

// Event is one wire-format event. Getters return the zero value for absent
// fields, as the wire format omits zero values.
type Event struct {
	b    []byte
	kind Kind
}

// Kind returns the event's kind.
func (e *Event) Kind() Kind { return e.kind }

// Wire returns the whole event in the wire format (ABI.md), for rules that
// decode it with a full decoder of their own (the admission pack hands it
// to guard/event.DecodeAdmission). It aliases the input like the getters.
func (e *Event) Wire() []byte { return e.b }

// Raw returns field id's value at element index idx, and whether it exists.
func (e *Event) Raw(id FieldID, idx uint16) ([]byte, bool) {
	b := e.b
	n := int(binary.LittleEndian.Uint16(b[6:]))
	off := 8
	for i := 0; i < n && off+8 <= len(b); i++ {
		fid := FieldID(binary.LittleEndian.Uint16(b[off:]))
		fidx := binary.LittleEndian.Uint16(b[off+2:])
		l := int(binary.LittleEndian.Uint32(b[off+4:]))
		if l > len(b)-off-8 || fid > id || (fid == id && fidx > idx) {
			return nil, false
		}
		if fid == id && fidx == idx {
			return b[off+8 : off+8+l], true
		}
		off += 8 + l
	}
	return nil, false
}

// Has reports whether the field is present (non-zero).
func (e *Event) Has(id FieldID) bool { _, ok := e.Raw(id, 0); return ok }

// U64 returns an unsigned integer field.
func (e *Event) U64(id FieldID) uint64 {
	if v, ok := e.Raw(id, 0); ok && len(v) == 8 {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

// I64 returns a signed integer field.
func (e *Event) I64(id FieldID) int64 { return int64(e.U64(id)) }

// Bool returns a boolean field.
func (e *Event) Bool(id FieldID) bool {
	v, ok := e.Raw(id, 0)
	return ok && len(v) == 1 && v[0] == 1
}

// Str returns a string field; see the package notes on lifetime.
func (e *Event) Str(id FieldID) string {
	v, ok := e.Raw(id, 0)
	if !ok || len(v) == 0 {
		return ""
	}
	return unsafe.String(&v[0], len(v))
}

// Addr returns an address field.
func (e *Event) Addr(id FieldID) netip.Addr {
	v, _ := e.Raw(id, 0)
	a, _ := netip.AddrFromSlice(v)
	return a
}

// List returns a string-list field.
func (e *Event) List(id FieldID) StrList {
	v, _ := e.Raw(id, 0)
	return StrList{b: v}
}

// StrList is a string-list value, iterated without allocating.
type StrList struct{ b []byte }

// Next returns the first item and the rest of the list; ok is false at the
// end.
func (l StrList) Next() (item string, rest StrList, ok bool) {
	if len(l.b) < 2 {
		return "", StrList{}, false
	}
	n := int(binary.LittleEndian.Uint16(l.b))
	if n > len(l.b)-2 {
		return "", StrList{}, false
	}
	if n > 0 {
		item = unsafe.String(&l.b[2], n)
	}
	return item, StrList{b: l.b[2+n:]}, true
}

// Any reports whether some item satisfies f.
func (l StrList) Any(f func(string) bool) bool {
	for s, rest, ok := l.Next(); ok; s, rest, ok = rest.Next() {
		if f(s) {
			return true
		}
	}
	return false
}

// Contains reports whether some item equals s.
func (l StrList) Contains(s string) bool { return l.Any(func(x string) bool { return x == s }) }

// Slice copies the items out.
func (l StrList) Slice() []string {
	var out []string
	for s, rest, ok := l.Next(); ok; s, rest, ok = rest.Next() {
		out = append(out, strings.Clone(s))
	}
	return out
}

// Join renders the list joined by sep, e.g. for messages.
func (l StrList) Join(sep string) string { return strings.Join(l.Slice(), sep) }

// Itoa is strconv.Itoa, re-exported so that rules building messages need
// not import strconv.
func Itoa(v int) string { return strconv.Itoa(v) }
