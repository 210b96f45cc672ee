package rules

import (
	"encoding/binary"
	"testing"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/event"
)

var fuzzMeta = &Meta{ABI: 1, Module: "m", Rules: []Rule{
	{Name: "a", Priority: alert.Warning, Action: alert.ActionAlert, Kinds: []event.Kind{event.KindExec}},
	{Name: "b", Priority: alert.Critical, Action: alert.ActionKill, Kinds: []event.Kind{event.KindOpen}},
}}

func record(typ, action uint8, ev uint32, rule uint16, prio uint8, fields []uint16, msg string) []byte {
	b := binary.LittleEndian.AppendUint16(nil, uint16(14+2*len(fields)+len(msg)))
	b = append(b, typ, action)
	b = binary.LittleEndian.AppendUint32(b, ev)
	b = binary.LittleEndian.AppendUint16(b, rule)
	b = append(b, prio, uint8(len(fields)))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(msg)))
	for _, f := range fields {
		b = binary.LittleEndian.AppendUint16(b, f)
	}
	return append(b, msg...)
}

func output(recs ...[]byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(recs)))
	for _, r := range recs {
		b = append(b, r...)
	}
	return b
}

func TestDecodeOutput(t *testing.T) {
	good := output(
		record(1, 255, 0, 0, 255, []uint16{13, 60}, "shell"),
		record(1, 1, 0, 0, 2, nil, "dup"), // same rule, same event: dropped
		record(2, 0, 1, 1, 0, []uint16{14}, "exec"),
		record(1, 3, 2, 1, 4, nil, "x"),
	)
	vs, dropped, err := decodeOutput(nil, good, 3, fuzzMeta, "m.wasm", nil, make([]int32, 2), map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if dropped != 1 || len(vs) != 3 {
		t.Fatalf("dropped %d, verdicts %+v", dropped, vs)
	}
	if v := vs[0]; v.Action != alert.ActionAlert || v.Priority != alert.Warning || v.Message != "shell" || len(v.Fields) != 2 {
		t.Fatalf("defaults not applied: %+v", v)
	}
	if v := vs[1]; !v.Observation || v.Event != 1 || v.Action != alert.ActionAllow {
		t.Fatalf("observation: %+v", v)
	}
	if v := vs[2]; v.Action != alert.ActionBlock || v.Priority != alert.Warning || v.Rule.Name != "b" {
		t.Fatalf("explicit action/priority: %+v", v)
	}
	bad := map[string][]byte{
		"short":           {1, 0},
		"count lies":      output(record(1, 1, 0, 0, 4, nil, "a"))[:10],
		"trailing":        append(output(record(1, 1, 0, 0, 4, nil, "a")), 0),
		"event range":     output(record(1, 1, 3, 0, 4, nil, "a")),
		"rule range":      output(record(1, 1, 0, 2, 4, nil, "a")),
		"unknown type":    output(record(3, 1, 0, 0, 4, nil, "a")),
		"unknown action":  output(record(1, 4, 0, 0, 4, nil, "a")),
		"unknown prio":    output(record(1, 1, 0, 0, 8, nil, "a")),
		"bad utf8":        output(record(1, 1, 0, 0, 4, nil, "\xff")),
		"goes back":       output(record(1, 1, 1, 0, 4, nil, "a"), record(1, 1, 0, 1, 4, nil, "a")),
		"too many fields": output(record(1, 1, 0, 0, 4, make([]uint16, 17), "a")),
	}
	for name, b := range bad {
		if _, _, err := decodeOutput(nil, b, 3, fuzzMeta, "m", nil, make([]int32, 2), nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzDecodeOutput feeds arbitrary guest output to the decoder: it must
// never panic, and whatever it accepts must respect the ABI's bounds.
func FuzzDecodeOutput(f *testing.F) {
	f.Add(output(record(1, 255, 0, 0, 255, []uint16{13, 60}, "shell")), uint8(3))
	f.Add(output(record(2, 0, 1, 1, 0, []uint16{14}, "exec"), record(1, 3, 2, 1, 4, nil, "x")), uint8(3))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint8(1))
	f.Add([]byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, n uint8) {
		idx := make([]int32, n)
		for i := range idx {
			idx[i] = int32(i) * 10
		}
		vs, _, err := decodeOutput(nil, b, int(n), fuzzMeta, "m", idx, make([]int32, 2), nil)
		if err != nil {
			return
		}
		for _, v := range vs {
			if v.Event%10 != 0 || v.Event/10 >= int(n) || len(v.Fields) > MaxOutFields || len(v.Message) > MaxMessageLen || v.Rule == nil {
				t.Fatalf("accepted out-of-bounds verdict %+v", v)
			}
		}
	})
}

func TestParseMeta(t *testing.T) {
	m, err := ParseMeta([]byte(`{"abi":1,"module":"x","rules":[{"name":"r","priority":"critical","action":"kill","kinds":["exec","admission"],"tags":["T1059"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	r := m.Rules[0]
	if r.Priority != alert.Critical || r.Action != alert.ActionKill || len(r.Kinds) != 2 || r.Kinds[1] != event.KindAdmission {
		t.Fatalf("%+v", r)
	}
	for _, bad := range []string{
		``, `{`, `{"abi":2,"module":"x","rules":[{"name":"r","kinds":["exec"]}]}`,
		`{"abi":1,"rules":[{"name":"r","kinds":["exec"]}]}`,
		`{"abi":1,"module":"x","rules":[]}`,
		`{"abi":1,"module":"x","rules":[{"name":"r","kinds":[]}]}`,
		`{"abi":1,"module":"x","rules":[{"name":"r","kinds":["nope"]}]}`,
		`{"abi":1,"module":"x","rules":[{"name":"r","kinds":["exec"],"priority":"loud"}]}`,
		`{"abi":1,"module":"x","rules":[{"name":"r","kinds":["exec"],"action":"explode"}]}`,
		`{"abi":1,"module":"x","rules":[{"name":"r","kinds":["exec"]},{"name":"r","kinds":["exec"]}]}`,
	} {
		if _, err := ParseMeta([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

// FuzzParseMeta: metadata is guest-controlled JSON.
func FuzzParseMeta(f *testing.F) {
	f.Add([]byte(`{"abi":1,"module":"x","rules":[{"name":"r","priority":"Warning","kinds":["exec"],"tags":["a"]}]}`))
	f.Add([]byte(`{"abi":1,"module":"x","rules":[{"name":"r","kinds":["exec"]},{"name":"s","action":"block","kinds":["admission"]}]}`))
	f.Add([]byte(`{"abi":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMeta(b)
		if err != nil {
			return
		}
		if len(m.Rules) == 0 || len(m.Rules) > MaxRules {
			t.Fatalf("accepted %d rules", len(m.Rules))
		}
		for _, r := range m.Rules {
			if r.Name == "" || len(r.Name) > MaxNameLen || len(r.Kinds) == 0 || r.Priority > alert.Debug || r.Action > alert.ActionBlock {
				t.Fatalf("accepted rule %+v", r)
			}
		}
	})
}
