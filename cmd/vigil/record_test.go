package main

import (
	"bytes"
	"testing"

	"encoding/json"
	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/guard/rules/fixture"
)

func TestRecorderFiltersAndWritesFixtures(t *testing.T) {
	r, err := newRecorder(recordFlags{kinds: []string{"exec", "open"}, container: "abc", count: 2})
	if err != nil {
		t.Fatal(err)
	}
	evs := []*event.Event{
		{Kind: event.KindExec, Proc: event.Process{Name: "sh", PID: 1}, Container: event.Container{ID: "abcdef"}},
		{Kind: event.KindConnect, Proc: event.Process{Name: "sh"}, Container: event.Container{ID: "abcdef"}}, // kind filtered
		{Kind: event.KindOpen, Proc: event.Process{Name: "cat"}, Container: event.Container{ID: "zzz"}},      // container filtered
		{Kind: event.KindOpen, Proc: event.Process{Name: "cat"}, File: event.File{Path: "/etc/shadow"}, Container: event.Container{ID: "abc1"}},
		{Kind: event.KindExec, Proc: event.Process{Name: "late"}, Container: event.Container{ID: "abc"}}, // over count
	}
	for _, e := range evs {
		r.add(e)
	}
	select {
	case <-r.done:
	default:
		t.Fatal("count reached but recorder not done")
	}
	var buf bytes.Buffer
	if err := r.write(&buf); err != nil {
		t.Fatal(err)
	}
	var f fixture.File
	if err := json.Unmarshal(buf.Bytes(), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) != 2 || f.Cases[0].Name != "001 exec sh" || f.Cases[1].Name != "002 open cat" {
		t.Fatalf("cases %+v", f.Cases)
	}
	// Every recorded event must be a valid fixture event.
	for _, c := range f.Cases {
		if _, err := event.EncodeJSON(nil, c.Event); err != nil {
			t.Fatalf("%s: recorded event is not a valid fixture: %v", c.Name, err)
		}
	}
	if _, err := newRecorder(recordFlags{kinds: []string{"exce"}}); err == nil {
		t.Fatal("unknown kind accepted")
	}
}
