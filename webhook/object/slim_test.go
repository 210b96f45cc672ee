package object

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/webhook/internal/corpora"
)

// TestSlimDecodeFlattensLikeFull: for every PSA fixture pod (given a
// pod-template-hash label, so the slim decode applies) and the rich test
// template, the slim decode flattens to exactly the admission event of the
// full decode, and Complete then yields the full decode.
func TestSlimDecodeFlattensLikeFull(t *testing.T) {
	dir, err := corpora.Dir("psa")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*", "*.yaml"))
	if more, _ := filepath.Glob(filepath.Join(dir, "*", "*.yaml")); len(more) > 0 {
		files = append(files, more...)
	}
	if len(files) < 140 {
		t.Fatalf("%d fixtures in %s", len(files), dir)
	}
	var raws [][]byte
	for _, f := range files {
		y, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		js, err := yaml.YAMLToJSON(y)
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, js)
	}
	if rich, err := os.ReadFile("testdata/rich-template.json"); err == nil {
		var tmpl struct {
			Metadata json.RawMessage `json:"metadata"`
			Spec     json.RawMessage `json:"spec"`
		}
		if json.Unmarshal(rich, &tmpl) == nil && tmpl.Spec != nil {
			raws = append(raws, []byte(`{"apiVersion":"v1","kind":"Pod","metadata":`+string(orEmpty(tmpl.Metadata))+`,"spec":`+string(tmpl.Spec)+`}`))
		}
	}
	slim := 0
	for i, raw := range raws {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		md, _ := m["metadata"].(map[string]any)
		if md == nil {
			md = map[string]any{}
			m["metadata"] = md
		}
		labels, _ := md["labels"].(map[string]any)
		if labels == nil {
			labels = map[string]any{}
			md["labels"] = labels
		}
		labels["pod-template-hash"] = "5d8f7c6b9"
		raw, _ = json.Marshal(m)

		part, err := Decode("Pod", raw)
		if err != nil {
			t.Fatalf("raw %d: %v", i, err)
		}
		if !part.Partial() {
			t.Fatalf("raw %d: the slim decode did not apply", i)
		}
		slim++
		full, err := Decode("Pod", raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := full.Complete(); err != nil || full.Partial() {
			t.Fatalf("raw %d: Complete: %v", i, err)
		}
		var a, b event.Admission
		part.Flatten(&a)
		full.Flatten(&b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("raw %d: slim flattens to\n%+v\nfull to\n%+v", i, a.Pod, b.Pod)
		}
		if part.Workload != full.Workload || part.Revision != full.Revision || part.Controlled != full.Controlled {
			t.Errorf("raw %d: identity %s@%s vs %s@%s", i, part.Workload, part.Revision, full.Workload, full.Revision)
		}
	}
	t.Logf("%d pods decoded slim and full", slim)
}

func orEmpty(b []byte) []byte {
	if len(b) == 0 {
		return []byte("{}")
	}
	return b
}

// TestCompleteReportsWhatSlimSkipped: a field only the full decode reads
// (resources) that is malformed passes the slim decode and fails Complete.
func TestCompleteReportsWhatSlimSkipped(t *testing.T) {
	raw := []byte(`{"metadata":{"name":"p","labels":{"pod-template-hash":"abc"}},"spec":{"containers":[{"name":"c","image":"busybox","resources":{"limits":{"cpu":"not-a-quantity"}}}]}}`)
	tmpl, err := Decode("Pod", raw)
	if err != nil || !tmpl.Partial() {
		t.Fatalf("slim decode: %v partial=%v", err, tmpl != nil && tmpl.Partial())
	}
	if err := tmpl.Complete(); err == nil {
		t.Fatal("Complete accepted a malformed quantity")
	}
}
