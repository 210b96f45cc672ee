package pss_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/webhook/internal/corpora"
	"github.com/vigilsec/vigil/webhook/object"
	"github.com/vigilsec/vigil/webhook/pss"
)

type fixture struct {
	File   string `json:"file"`
	Level  string `json:"level"`
	Expect string `json:"expect"`
	Check  string `json:"check"`
}

// TestPSACorpusAgreement runs the Kubernetes project's own Pod Security
// Admission fixtures (v1.37) through the whole admission path: YAML -> Pod ->
// flattened Admission -> wire -> guest decoder -> checks. Every verdict must
// match the fixture's label, and the native and wire paths must agree.
func TestPSACorpusAgreement(t *testing.T) {
	dir, err := corpora.Dir("psa")
	if err != nil {
		t.Fatal(err)
	}
	idx, err := os.ReadFile(filepath.Join(dir, "INDEX.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fixtures []fixture
	if err := json.Unmarshal(idx, &fixtures); err != nil {
		t.Fatal(err)
	}
	if len(fixtures) < 140 {
		t.Fatalf("only %d fixtures in %s", len(fixtures), dir)
	}
	agree := 0
	for _, fx := range fixtures {
		y, err := os.ReadFile(filepath.Join(dir, fx.File))
		if err != nil {
			t.Fatal(err)
		}
		js, err := yaml.YAMLToJSON(y)
		if err != nil {
			t.Fatalf("%s: %v", fx.File, err)
		}
		tmpl, err := object.Decode("Pod", js)
		if err != nil {
			t.Fatalf("%s: %v", fx.File, err)
		}
		level, err := pss.ParseLevel(fx.Level)
		if err != nil {
			t.Fatal(err)
		}
		var a event.Admission
		tmpl.Flatten(&a)
		native := pss.Check(level, &a.Pod)
		wire, err := event.AppendAdmission(nil, &a)
		if err != nil {
			t.Fatal(err)
		}
		viaWire, err := pss.EvaluateWire(level, wire)
		if err != nil {
			t.Fatalf("%s: %v", fx.File, err)
		}
		if !reflect.DeepEqual(native, viaWire) {
			t.Errorf("%s: native %v, wire %v", fx.File, native, viaWire)
		}
		denied := len(native) > 0
		if denied != (fx.Expect == "deny") {
			t.Errorf("%s (%s): expect %s, got violations %v", fx.File, fx.Level, fx.Expect, native)
			continue
		}
		if denied && fx.Check != "" && !hasCheck(native, fx.Check, level) {
			t.Errorf("%s: denied, but not by %s: %v", fx.File, fx.Check, native)
			continue
		}
		agree++
	}
	t.Logf("%d/%d PSA fixtures agree", agree, len(fixtures))
}

// hasCheck matches the fixture's lower-case check name against our ids.
// A baseline fixture checked at restricted level is denied by the check
// that replaces its baseline one.
func hasCheck(vs []pss.Violation, want string, level pss.Level) bool {
	for _, v := range vs {
		if lower(v.Check) == want || lower(v.Check) == lower(pss.ReplacedBy(canonical(want), level)) {
			return true
		}
	}
	return false
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

// canonical maps a fixture's lower-case check name to our check id.
func canonical(fixtureCheck string) string {
	for _, id := range pss.CheckIDs() {
		if lower(id) == fixtureCheck {
			return id
		}
	}
	return fixtureCheck
}

// TestCheckLevelsMatchesCheck: CheckLevels is Check at both levels, on every
// PSA fixture.
func TestCheckLevelsMatchesCheck(t *testing.T) {
	dir, err := corpora.Dir("psa")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*", "*.yaml"))
	if len(files) < 140 {
		t.Fatalf("%d fixtures", len(files))
	}
	for _, f := range files {
		y, _ := os.ReadFile(f)
		js, err := yaml.YAMLToJSON(y)
		if err != nil {
			t.Fatal(err)
		}
		tmpl, err := object.Decode("Pod", js)
		if err != nil {
			t.Fatal(err)
		}
		var a event.Admission
		tmpl.Flatten(&a)
		b, r := pss.CheckLevels(&a.Pod)
		if !reflect.DeepEqual(b, pss.Check(pss.Baseline, &a.Pod)) || !reflect.DeepEqual(r, pss.Check(pss.Restricted, &a.Pod)) {
			t.Errorf("%s: CheckLevels %v / %v differs from Check", f, b, r)
		}
	}
}
