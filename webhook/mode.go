package webhook

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/vigilsec/vigil/webhook/pss"
)

// Action is what a namespace's mode does with violations.
type Action uint8

// Actions.
const (
	// Audit allows, returns warnings and writes an audit record.
	Audit Action = iota
	// Enforce denies with a message listing the violated checks.
	Enforce
	// Off runs no checks; profiles are still recorded.
	Off
)

// strictness orders actions: off < audit < enforce.
func (a Action) strictness() int {
	switch a {
	case Enforce:
		return 2
	case Audit:
		return 1
	}
	return 0
}

// weaker reports whether m checks less than d: a weaker action, or the same
// action at a lower level.
func (m Mode) weaker(d Mode) bool {
	if m.Action.strictness() != d.Action.strictness() {
		return m.Action.strictness() < d.Action.strictness()
	}
	return m.Action != Off && m.Level < d.Level
}

func (a Action) String() string {
	switch a {
	case Enforce:
		return "enforce"
	case Audit:
		return "audit"
	case Off:
		return "off"
	}
	return "unknown"
}

// Mode is a namespace's admission mode: an action and a PSS level.
type Mode struct {
	Action Action
	Level  pss.Level
}

func (m Mode) String() string {
	if m.Action == Off {
		return "off"
	}
	return m.Action.String() + ":" + m.Level.String()
}

// ParseMode parses "enforce:restricted", "audit:baseline", "enforce" (level
// baseline), "audit" or "off".
func ParseMode(s string) (Mode, error) {
	act, lvl, hasLevel := strings.Cut(strings.TrimSpace(s), ":")
	m := Mode{Level: pss.Baseline}
	switch act {
	case "enforce":
		m.Action = Enforce
	case "audit":
		m.Action = Audit
	case "off":
		if hasLevel {
			return Mode{}, fmt.Errorf("mode %q: off takes no level", s)
		}
		return Mode{Action: Off}, nil
	default:
		return Mode{}, fmt.Errorf("mode %q: action must be enforce, audit or off", s)
	}
	if hasLevel {
		l, err := pss.ParseLevel(lvl)
		if err != nil {
			return Mode{}, fmt.Errorf("mode %q: %w", s, err)
		}
		m.Level = l
	}
	return m, nil
}

// ParseNamespaceModes reads "namespace=mode" lines (blank lines and
// '#' comments allowed), the format of --namespace-modes files.
func ParseNamespaceModes(r io.Reader) (map[string]Mode, error) {
	out := map[string]Mode{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		ns, mode, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(ns) == "" {
			return nil, fmt.Errorf("line %d: want namespace=mode, got %q", n, line)
		}
		m, err := ParseMode(mode)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out[strings.TrimSpace(ns)] = m
	}
	return out, sc.Err()
}

// Namespace labels read from admitted Namespace objects.
const (
	// LabelMode is "enforce", "audit" or "off".
	LabelMode = "vigil.dev/mode"
	// LabelLevel is "baseline" or "restricted" (default baseline).
	LabelLevel = "vigil.dev/level"
)

// modeFromLabels returns the mode the labels ask for, "" when none.
func modeFromLabels(labels map[string]string) (string, error) {
	act, ok := labels[LabelMode]
	if !ok {
		return "", nil
	}
	s := act
	if lvl, ok := labels[LabelLevel]; ok && act != "off" {
		s += ":" + lvl
	}
	m, err := ParseMode(s)
	if err != nil {
		return "", err
	}
	return m.String(), nil
}
