package event

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func sample() *Event {
	return &Event{
		Kind: KindConnect,
		Time: time.Unix(1700000000, 123).UTC(),
		CPU:  1,
		Proc: Process{PID: 42, TID: 43, PPID: 1, UID: 1000, EUID: 0, Name: "curl", Exe: "/usr/bin/curl",
			Args: []string{"curl", "-s", "http://x\n\"y\""}, CgroupID: 777, ExeUpper: true,
			Ancestors: []Ancestor{{PID: 1, Name: "sh", Exe: "/bin/sh"}, {PID: 0, Name: "init"}}},
		Container: Container{ID: "abc", Runtime: "runc"},
		Net:       Net{Family: 2, Proto: 6, Dst: netip.MustParseAddrPort("10.1.2.3:443")},
		Ret:       -115,
	}
}

func TestWireRoundTrip(t *testing.T) {
	e := sample()
	b := AppendEvent(nil, e)
	kind, recs, n, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if kind != KindConnect || n != len(b) {
		t.Fatalf("kind %v n %d len %d", kind, n, len(b))
	}
	got := map[string]any{}
	for _, r := range recs {
		f, _ := FieldByID(r.ID)
		got[f.Name] = RecordValue(r)
	}
	want := map[string]any{
		"evt.kind": uint64(KindConnect), "evt.time": uint64(e.Time.UnixNano()), "evt.cpu": uint64(1), "evt.ret": int64(-115),
		"proc.pid": uint64(42), "proc.tid": uint64(43), "proc.ppid": uint64(1), "user.uid": uint64(1000),
		"proc.name": "curl", "proc.exe": "/usr/bin/curl", "proc.args": []string{"curl", "-s", "http://x\n\"y\""},
		"proc.cgroup_id": uint64(777), "proc.exe_upper": true, "proc.pname": "sh", "proc.pexe": "/bin/sh",
		"proc.ancestors": []string{"sh", "init"}, "container.id": "abc", "container.runtime": "runc",
		"net.family": uint64(2), "net.proto": uint64(6), "net.dst_addr": netip.MustParseAddr("10.1.2.3"), "net.dst_port": uint64(443),
		"user.loginuid": nil,
	}
	delete(want, "user.loginuid")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%v\nwant\n%v", got, want)
	}
}

func TestJSONToWireMatchesDirectEncoding(t *testing.T) {
	e := sample()
	js, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(js) {
		t.Fatalf("invalid json: %s", js)
	}
	fromJSON, err := EncodeJSON(nil, js)
	if err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	direct := AppendEvent(nil, e)
	if !bytes.Equal(fromJSON, direct) {
		t.Fatalf("json path and direct encoding differ\njson:   %x\ndirect: %x\n%s", fromJSON, direct, js)
	}
}

func TestEncodeJSONRejectsBadFixtures(t *testing.T) {
	for _, in := range []string{
		`{}`, `{"kind":"nope"}`, `{"kind":"exec","proc.nmae":"x"}`, `{"kind":"exec","proc.pid":"x"}`,
		`{"kind":"exec","net.dst_addr":"999.1.1.1"}`, `[1]`, `{"kind":"exec","proc.pid":-1}`,
	} {
		if _, err := EncodeJSON(nil, []byte(in)); err == nil {
			t.Errorf("EncodeJSON(%s): no error", in)
		}
	}
}

func TestJSONEscapesInvalidUTF8(t *testing.T) {
	e := &Event{Kind: KindOpen, File: File{Path: "/tmp/\xff\x00<x>"}}
	js, _ := json.Marshal(e)
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatalf("%v: %s", err, js)
	}
	if m["file.path"] != "/tmp/\ufffd\x00<x>" {
		t.Fatalf("got %q", m["file.path"])
	}
}

func TestDecodeRejectsCorruption(t *testing.T) {
	b := AppendEvent(nil, sample())
	cases := map[string][]byte{
		"short":          b[:5],
		"total too big":  append([]byte{0xff, 0xff, 0, 0}, b[4:]...),
		"truncated":      b[:len(b)-1],
		"nrec too big":   func() []byte { c := bytes.Clone(b); c[6], c[7] = 0xff, 0x0f; return c }(),
		"bad int length": func() []byte { c := bytes.Clone(b); c[HeaderSize+4] = 7; return c }(),
	}
	for name, in := range cases {
		if _, _, _, err := Decode(in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestRegistryIsWellFormed(t *testing.T) {
	for _, f := range Fields() {
		if f.Desc == "" || f.Name == "" {
			t.Errorf("field %d lacks a name or description", f.ID)
		}
		if f.Value(&Event{}) == nil {
			t.Errorf("field %s has no getter", f.Name)
		}
	}
	for _, k := range Kinds() {
		if got, ok := ParseKind(k.String()); !ok || got != k {
			t.Errorf("kind %d does not round-trip through %q", k, k.String())
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(AppendEvent(nil, sample()))
	f.Add(AppendEvent(nil, &Event{Kind: KindExec}))
	f.Add([]byte{8, 0, 0, 0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, recs, n, err := Decode(b)
		if err != nil {
			return
		}
		if n > len(b) || n < HeaderSize {
			t.Fatalf("consumed %d of %d", n, len(b))
		}
		for _, r := range recs {
			_ = RecordValue(r)
		}
		_ = kind
	})
}

func FuzzEncodeJSON(f *testing.F) {
	js, _ := json.Marshal(sample())
	f.Add(js)
	f.Add([]byte(`{"kind":"exec","proc.args":["a","b"]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := EncodeJSON(nil, in)
		if err != nil {
			return
		}
		if _, _, _, err := Decode(b); err != nil {
			t.Fatalf("EncodeJSON produced undecodable bytes: %v", err)
		}
	})
}

func BenchmarkAppendEvent(b *testing.B) {
	e := sample()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEvent(buf[:0], e)
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	e := sample()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendJSON(buf[:0])
	}
}
