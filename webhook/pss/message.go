package pss

import (
	"strconv"
	"strings"
)

// Message renders violations as one verdict message of at most limit bytes:
// one "<check>: <reason> (<detail>)" line per violation; lines that do not
// fit become a final "truncated: N more violations" line, never a cut
// mid-line or mid-rune (only a first line longer than the budget is cut, on
// a rune boundary). The built-in admission packs render their block
// verdicts this way and the webhook parses them back.
func Message(vs []Violation, limit int) string {
	lines := make([]string, len(vs))
	total := -1
	for i, v := range vs {
		lines[i] = v.Check + ": " + v.String()
		total += 1 + len(lines[i])
	}
	if total <= limit {
		return strings.Join(lines, "\n")
	}
	// Room for the "truncated" line, whatever the count.
	budget := limit - len("\ntruncated: 9999 more violations")
	var b strings.Builder
	i := 0
	for ; i < len(lines); i++ {
		sep := min(i, 1)
		if b.Len()+sep+len(lines[i]) > budget {
			break
		}
		if sep == 1 {
			b.WriteByte('\n')
		}
		b.WriteString(lines[i])
	}
	if i == 0 {
		b.WriteString(truncate(lines[0], budget))
		i = 1
	}
	if n := len(lines) - i; n > 0 {
		b.WriteString("\ntruncated: " + strconv.Itoa(n) + " more violations")
	}
	return b.String()
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}
