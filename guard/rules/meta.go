package rules

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/event"
)

// ABI limits (wasm-rules/ABI.md). They bound what a guest can make the host
// allocate or copy.
const (
	ABIVersion     = 1
	MaxMetaSize    = 64 << 10
	MaxRules       = 256
	MaxNameLen     = 128
	MaxMessageLen  = 1024
	MaxOutFields   = 16
	MaxOutputSize  = 1 << 20
	outHeaderSize  = 14
	recVerdict     = 1
	recObservation = 2
	defaultByte    = 255
)

// Meta is a module's self-description, returned by its vigil_meta export.
type Meta struct {
	ABI         int    `json:"abi"`
	Module      string `json:"module"`
	Version     string `json:"version,omitempty"`
	Description string `json:"description,omitempty"`
	Rules       []Rule `json:"rules"`
}

// Rule is one rule of a module.
type Rule struct {
	Name        string         `json:"name"`
	Version     string         `json:"version,omitempty"`
	Description string         `json:"description,omitempty"`
	Priority    alert.Priority `json:"-"`
	Action      alert.Action   `json:"-"`
	Kinds       []event.Kind   `json:"-"`
	Tags        []string       `json:"tags,omitempty"`
}

type rawRule struct {
	Name        string   `json:"name"`
	Version     string   `json:"version"`
	Description string   `json:"description"`
	Priority    string   `json:"priority"`
	Action      string   `json:"action"`
	Kinds       []string `json:"kinds"`
	Tags        []string `json:"tags"`
}

type rawMeta struct {
	ABI         int       `json:"abi"`
	Module      string    `json:"module"`
	Version     string    `json:"version"`
	Description string    `json:"description"`
	Rules       []rawRule `json:"rules"`
}

// ParseMeta decodes and validates metadata bytes copied out of a guest. The
// bytes are untrusted: every limit of the ABI is enforced here.
func ParseMeta(b []byte) (*Meta, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty metadata", ErrBadMeta)
	}
	if len(b) > MaxMetaSize {
		return nil, fmt.Errorf("%w: metadata of %d bytes exceeds %d", ErrBadMeta, len(b), MaxMetaSize)
	}
	var r rawMeta
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMeta, err)
	}
	if r.ABI != ABIVersion {
		return nil, fmt.Errorf("%w: metadata abi %d, host speaks %d", ErrABIVersion, r.ABI, ABIVersion)
	}
	if err := checkName("module", r.Module); err != nil {
		return nil, err
	}
	if len(r.Rules) == 0 || len(r.Rules) > MaxRules {
		return nil, fmt.Errorf("%w: %d rules (want 1..%d)", ErrBadMeta, len(r.Rules), MaxRules)
	}
	m := &Meta{ABI: r.ABI, Module: r.Module, Version: r.Version, Description: r.Description, Rules: make([]Rule, len(r.Rules))}
	seen := make(map[string]bool, len(r.Rules))
	for i, rr := range r.Rules {
		if err := checkName(fmt.Sprintf("rule %d", i), rr.Name); err != nil {
			return nil, err
		}
		if seen[rr.Name] {
			return nil, fmt.Errorf("%w: duplicate rule name %q", ErrBadMeta, rr.Name)
		}
		seen[rr.Name] = true
		out := Rule{Name: rr.Name, Version: rr.Version, Description: rr.Description, Tags: rr.Tags, Priority: alert.Warning, Action: alert.ActionAlert}
		if rr.Priority != "" {
			p, err := alert.ParsePriority(rr.Priority)
			if err != nil {
				return nil, fmt.Errorf("%w: rule %q: %w", ErrBadMeta, rr.Name, err)
			}
			out.Priority = p
		}
		switch strings.ToLower(rr.Action) {
		case "", "alert":
		case "kill":
			out.Action = alert.ActionKill
		case "block":
			out.Action = alert.ActionBlock
		default:
			return nil, fmt.Errorf("%w: rule %q: unknown action %q", ErrBadMeta, rr.Name, rr.Action)
		}
		if len(rr.Kinds) == 0 {
			return nil, fmt.Errorf("%w: rule %q subscribes to no event kinds", ErrBadMeta, rr.Name)
		}
		for _, k := range rr.Kinds {
			kind, ok := event.ParseKind(k)
			if !ok {
				return nil, fmt.Errorf("%w: rule %q: unknown event kind %q", ErrBadMeta, rr.Name, k)
			}
			out.Kinds = append(out.Kinds, kind)
		}
		m.Rules[i] = out
	}
	return m, nil
}

func checkName(what, s string) error {
	if s == "" || len(s) > MaxNameLen || !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s name must be 1..%d bytes of UTF-8", ErrBadMeta, what, MaxNameLen)
	}
	return nil
}

// kindSet is a bitset of event kinds. Kinds are small numbers (< 256 today);
// larger ones never match, which is the safe answer for a kind the host
// does not know yet.
type kindSet [4]uint64

func (s *kindSet) add(k event.Kind) {
	if k < 256 {
		s[k>>6] |= 1 << (k & 63)
	}
}

func (s *kindSet) has(k event.Kind) bool {
	return k < 256 && s[k>>6]&(1<<(k&63)) != 0
}
