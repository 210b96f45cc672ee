package enforce

import (
	"testing"

	"github.com/vigilsec/vigil/guard/alert"
)

func TestResolverMode(t *testing.T) {
	cfg := ModeConfig{
		Preset:     PresetProduction,
		Namespaces: map[string]alert.Mode{"payments": alert.ModeAudit, "lab": alert.ModeOff},
		Workloads:  map[string]alert.Mode{"payments/api": alert.ModeEnforce, "shop/web": alert.ModeAudit},
		Rules: map[string]alert.Mode{
			"noisy-rule":           alert.ModeAudit,
			"shop/web:shell":       alert.ModeEnforce,
			"payments/api:curl":    alert.ModeOff,
			"lab/box:never-mind-x": alert.ModeEnforce,
		},
	}
	r, err := NewResolver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ns, wl, rule string
		want         alert.Mode
	}{
		{"default", "app", "shell", alert.ModeEnforce},     // preset
		{"payments", "worker", "shell", alert.ModeAudit},   // namespace
		{"payments", "api", "shell", alert.ModeEnforce},    // workload beats namespace
		{"payments", "api", "noisy-rule", alert.ModeAudit}, // rule beats workload
		{"payments", "api", "curl", alert.ModeOff},         // workload+rule beats all
		{"shop", "web", "sensitive", alert.ModeAudit},      // workload beats preset
		{"shop", "web", "shell", alert.ModeEnforce},        // workload+rule beats workload
		{"shop", "web", "noisy-rule", alert.ModeAudit},     // rule
		{"lab", "box", "x", alert.ModeOff},                 // namespace off
		{"lab", "box", "never-mind-x", alert.ModeEnforce},  // workload+rule beats namespace
		{"lab", "other", "never-mind-x", alert.ModeOff},    // scoped rule does not leak
		{"payments", "", "", alert.ModeAudit},              // empty workload and rule
		{"shop", "webx", "shell", alert.ModeEnforce},       // no prefix matching
	} {
		if got := r.Mode(tc.ns, tc.wl, tc.rule); got != tc.want {
			t.Errorf("Mode(%q, %q, %q) = %v, want %v", tc.ns, tc.wl, tc.rule, got, tc.want)
		}
	}

	staging, err := NewResolver(ModeConfig{Preset: PresetStaging})
	if err != nil {
		t.Fatal(err)
	}
	if got := staging.Mode("any", "thing", "rule"); got != alert.ModeAudit {
		t.Errorf("staging preset = %v, want audit", got)
	}
	if _, err := NewResolver(ModeConfig{Preset: "prod"}); err == nil {
		t.Error("unknown preset accepted")
	}
}
