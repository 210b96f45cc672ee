// Package alert defines what every producer of findings (Wasm rules, the
// enforcer, behavior detection, admission) hands to the outputs: one Alert
// type with the context an on-call engineer needs, and the shared enums for
// priority, mode and action.
package alert

import (
	"fmt"
	"strings"
	"time"

	"github.com/vigilsec/vigil/guard/event"
)

// Priority follows Falco's scale so Falcosidekick sinks map it unchanged.
type Priority uint8

// Priorities, most severe first. Values are part of the Wasm ABI.
const (
	Emergency     Priority = 0
	AlertPriority Priority = 1
	Critical      Priority = 2
	Error         Priority = 3
	Warning       Priority = 4
	Notice        Priority = 5
	Informational Priority = 6
	Debug         Priority = 7
)

var priorityNames = [...]string{"Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"}

func (p Priority) String() string {
	if int(p) < len(priorityNames) {
		return priorityNames[p]
	}
	return fmt.Sprintf("Priority(%d)", p)
}

// MarshalText renders the Falco name.
func (p Priority) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText accepts Falco names, case-insensitively, and "info".
func (p *Priority) UnmarshalText(b []byte) error {
	v, err := ParsePriority(string(b))
	*p = v
	return err
}

// ParsePriority parses a Falco priority name.
func ParsePriority(s string) (Priority, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "info" {
		return Informational, nil
	}
	for i, n := range priorityNames {
		if strings.ToLower(n) == s {
			return Priority(i), nil
		}
	}
	return Debug, fmt.Errorf("unknown priority %q", s)
}

// Mode is how a guard acts on a verdict.
type Mode uint8

// Modes.
const (
	ModeOff     Mode = 0 // rules are not evaluated
	ModeAudit   Mode = 1 // record what would have been done, act on nothing
	ModeEnforce Mode = 2 // kill or block
)

func (m Mode) String() string {
	switch m {
	case ModeOff:
		return "off"
	case ModeAudit:
		return "audit"
	case ModeEnforce:
		return "enforce"
	}
	return fmt.Sprintf("Mode(%d)", m)
}

// MarshalText renders the mode name.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText parses a mode name.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	*m = v
	return err
}

// ParseMode parses "off", "audit" or "enforce".
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "off":
		return ModeOff, nil
	case "audit":
		return ModeAudit, nil
	case "enforce":
		return ModeEnforce, nil
	}
	return ModeOff, fmt.Errorf("unknown mode %q (want off, audit or enforce)", s)
}

// Action is what a verdict asks for. Values are part of the Wasm ABI.
type Action uint8

// Actions.
const (
	ActionAllow Action = 0
	ActionAlert Action = 1
	ActionKill  Action = 2
	ActionBlock Action = 3
)

func (a Action) String() string {
	switch a {
	case ActionAllow:
		return "allow"
	case ActionAlert:
		return "alert"
	case ActionKill:
		return "kill"
	case ActionBlock:
		return "block"
	}
	return fmt.Sprintf("Action(%d)", a)
}

// MarshalText renders the action name.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// DeployContext says which rollout a workload is in, from the webhook.
type DeployContext struct {
	Workload   string    `json:"workload"`
	Revision   string    `json:"revision"`
	User       string    `json:"user,omitempty"`
	AdmittedAt time.Time `json:"admitted_at"`
	// WindowOpen is set while the release window is open.
	WindowOpen bool `json:"window_open"`
	// Changed lists what the rollout changed, e.g. "image", "command".
	Changed []string `json:"changed,omitempty"`
}

// Alert is one finding, ready for the outputs.
type Alert struct {
	Time     time.Time `json:"time"`
	Rule     string    `json:"rule"`
	Priority Priority  `json:"priority"`
	Message  string    `json:"output"`
	Tags     []string  `json:"tags,omitempty"`
	// Source is the producer: "rule", "enforce", "baseline" or "admission".
	Source string `json:"source"`
	// Mode is the effective mode for this workload and rule.
	Mode Mode `json:"mode"`
	// Action is what the verdict asked for; Taken says whether it was
	// carried out (enforce) or only recorded as "would have" (audit).
	Action  Action `json:"action"`
	Taken   bool   `json:"taken"`
	Backend string `json:"backend,omitempty"`
	// Fields are the rule's output fields, by registry name.
	Fields map[string]any `json:"output_fields,omitempty"`
	Event  *event.Event   `json:"event,omitempty"`
	Deploy *DeployContext `json:"deploy,omitempty"`
	// Count, FirstSeen and LastSeen are maintained by deduplication.
	Count     uint64    `json:"count,omitempty"`
	FirstSeen time.Time `json:"first_seen,omitzero"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
}

// WouldHave renders the action as an operator reads it: "killed" or
// "would have killed".
func (a *Alert) WouldHave() string {
	var verb string
	switch a.Action {
	case ActionKill:
		verb = "killed"
	case ActionBlock:
		verb = "blocked"
	default:
		return "alerted"
	}
	if a.Taken {
		return verb
	}
	return "would have " + verb
}
