package enforce

import (
	"fmt"

	"github.com/vigilsec/vigil/guard/alert"
)

// Preset names an environment whose default mode the operator picks once:
// production enforces, staging audits.
type Preset string

// Presets.
const (
	PresetProduction Preset = "production"
	PresetStaging    Preset = "staging"
)

// Mode returns the preset's default mode.
func (p Preset) Mode() (alert.Mode, error) {
	switch p {
	case PresetProduction:
		return alert.ModeEnforce, nil
	case PresetStaging:
		return alert.ModeAudit, nil
	}
	return alert.ModeOff, fmt.Errorf("unknown environment preset %q (want production or staging)", p)
}

// ModeConfig is the operator's mode settings, from least to most specific.
// Workload keys are "namespace/name"; rule overrides may be narrowed to a
// workload with "namespace/name:rule".
type ModeConfig struct {
	Preset     Preset                `json:"preset" yaml:"preset"`
	Namespaces map[string]alert.Mode `json:"namespaces,omitempty" yaml:"namespaces,omitempty"`
	Workloads  map[string]alert.Mode `json:"workloads,omitempty" yaml:"workloads,omitempty"`
	Rules      map[string]alert.Mode `json:"rules,omitempty" yaml:"rules,omitempty"`
}

// Resolver answers "which mode applies here?". The most specific setting
// wins: workload+rule, then rule, then workload, then namespace, then the
// environment preset.
//
// # Notes
//
// A rule override is more specific than a workload override because a rule
// owner who marks a noisy rule "audit" means it everywhere, while a team
// that puts its workload in "enforce" means its other rules.
type Resolver struct {
	base alert.Mode
	cfg  ModeConfig
}

// NewResolver validates cfg.
func NewResolver(cfg ModeConfig) (*Resolver, error) {
	base, err := cfg.Preset.Mode()
	if err != nil {
		return nil, err
	}
	return &Resolver{base: base, cfg: cfg}, nil
}

// Mode returns the effective mode for a rule in a workload of a namespace.
func (r *Resolver) Mode(ns, workload, rule string) alert.Mode {
	key := ns + "/" + workload
	if m, ok := r.cfg.Rules[key+":"+rule]; ok && rule != "" {
		return m
	}
	if m, ok := r.cfg.Rules[rule]; ok && rule != "" {
		return m
	}
	if m, ok := r.cfg.Workloads[key]; ok && workload != "" {
		return m
	}
	if m, ok := r.cfg.Namespaces[ns]; ok {
		return m
	}
	return r.base
}
