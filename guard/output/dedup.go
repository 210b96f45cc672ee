package output

import (
	"sync"
	"time"

	"github.com/vigilsec/vigil/guard/alert"
)

// Dedup collapses repeats of the same finding so on-call sees one alert, not
// a flood. The first occurrence passes at once; repeats within the window
// only bump a counter, and when the window ends with repeats a summary with
// Count, FirstSeen and LastSeen is released by Flush.
//
// The key is rule + container + executable + action + message: the same
// rule firing in two containers, or for two programs, is two findings.
type Dedup struct {
	mu     sync.Mutex
	window time.Duration
	max    int
	seen   map[dedupKey]*dedupEntry
	// Suppressed counts repeats folded into summaries.
	Suppressed uint64
	// Evicted counts entries dropped because the table was full.
	Evicted uint64
}

type dedupKey struct {
	rule, container, exe, msg string
	action                    alert.Action
	taken                     bool
}

type dedupEntry struct {
	first   *alert.Alert
	count   uint64
	firstAt time.Time
	lastAt  time.Time
}

// NewDedup keeps at most max open findings for window each.
func NewDedup(window time.Duration, max int) *Dedup {
	if max <= 0 {
		max = 65536
	}
	return &Dedup{window: window, max: max, seen: make(map[dedupKey]*dedupEntry)}
}

func keyOf(a *alert.Alert) dedupKey {
	k := dedupKey{rule: a.Rule, msg: a.Message, action: a.Action, taken: a.Taken}
	if a.Event != nil {
		k.container = a.Event.Container.ID
		k.exe = a.Event.Proc.Exe
	}
	return k
}

// Admit reports whether a should be delivered now. Alerts whose producer
// already deduplicates (Count > 0) always pass.
func (d *Dedup) Admit(a *alert.Alert, now time.Time) bool {
	if d.window <= 0 || a.Count > 0 {
		return true
	}
	k := keyOf(a)
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.seen[k]; ok && now.Sub(e.firstAt) < d.window {
		e.count++
		e.lastAt = now
		d.Suppressed++
		return false
	}
	if len(d.seen) >= d.max {
		for k2 := range d.seen { // evict an arbitrary entry; counted
			delete(d.seen, k2)
			d.Evicted++
			break
		}
	}
	d.seen[k] = &dedupEntry{first: a, count: 1, firstAt: now, lastAt: now}
	return true
}

// Flush returns summaries for findings whose window has closed with
// repeats, and forgets closed windows.
func (d *Dedup) Flush(now time.Time) []*alert.Alert {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*alert.Alert
	for k, e := range d.seen {
		if now.Sub(e.firstAt) < d.window {
			continue
		}
		delete(d.seen, k)
		if e.count > 1 {
			s := *e.first
			s.Count, s.FirstSeen, s.LastSeen = e.count, e.firstAt, e.lastAt
			s.Time = e.lastAt
			out = append(out, &s)
		}
	}
	return out
}
