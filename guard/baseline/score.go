package baseline

import (
	"math"
	"strings"
	"time"

	"github.com/vigilsec/vigil/guard/alert"
)

// Weights are the scoring constants. doc.go explains each; DefaultWeights
// are the values the replay tests pin down.
type Weights struct {
	// Novelty, per category: how much a never-seen behavior of that kind
	// says on its own.
	Exec, ExecDropped, Edge       float64
	Read, ReadSensitive           float64
	Write, WriteSensitive         float64
	Connect, Listen               float64
	Priv, PrivDangerous, Rate     float64
	WindowOpen, YoungRevision     float64 // release factor (< 1 scores down)
	QuietHour                     float64 // time-of-day factor (> 1 scores up)
	PersistCount, PersistCountMax float64 // persistence: per doubling of count, and its cap
	PersistSpan                   float64 // persistence: at a full PersistSpanFull of recurrence
	PersistSpanFull               time.Duration
	ComboBoost                    float64
	QuietFrac                     float64 // an hour is quiet below this fraction of the busiest hour
}

// DefaultWeights returns the shipped scoring constants.
func DefaultWeights() Weights {
	return Weights{
		Exec: 0.30, ExecDropped: 0.60, Edge: 0.15,
		Read: 0.15, ReadSensitive: 0.50,
		Write: 0.20, WriteSensitive: 0.55,
		Connect: 0.30, Listen: 0.35,
		Priv: 0.35, PrivDangerous: 0.55, Rate: 0.25,
		WindowOpen: 0.25, YoungRevision: 0.50,
		QuietHour:    1.40,
		PersistCount: 0.15, PersistCountMax: 0.60,
		PersistSpan: 0.40, PersistSpanFull: 10 * time.Minute,
		ComboBoost: 1.50,
		QuietFrac:  0.5,
	}
}

// Factors is the breakdown of one deviation's score, carried in the alert
// so an operator can see why it scored what it did.
type Factors struct {
	Novelty     float64 `json:"novelty"`
	Release     float64 `json:"release"`
	Hour        float64 `json:"hour"`
	Persistence float64 `json:"persistence"`
	Score       float64 `json:"score"`
}

func (f *Factors) compute() {
	f.Score = clamp01(f.Novelty * f.Release * f.Hour * f.Persistence)
}

func clamp01(v float64) float64 { return math.Max(0, math.Min(1, v)) }

// releaseFactor scores down deviations that a rollout explains: while the
// workload's release window is open, and while the revision is young (the
// day after a release, new diagnostics and migrations are expected).
func (w *Weights) releaseFactor(windowOpen bool, revisionAge, grace time.Duration) float64 {
	switch {
	case windowOpen:
		return w.WindowOpen
	case revisionAge >= 0 && revisionAge < grace:
		return w.YoungRevision
	}
	return 1
}

// hourFactor scores up deviations in an hour of the day in which the
// workload is normally quiet: less active than QuietFrac of its busiest
// hour. Relative to the peak, not to a uniform day, because probes and
// keep-alives make every hour somewhat active. Without a full day of history
// it is neutral.
func (w *Weights) hourFactor(activity float64, known bool) float64 {
	if known && activity < w.QuietFrac {
		return w.QuietHour
	}
	return 1
}

// persistence grows with how often (log of the number of distinct minutes
// it was seen in, so a flood does not saturate it at once) and how long
// (span between first and last sighting) a deviation recurs. A single
// sighting is 1.
func (w *Weights) persistence(count uint64, span time.Duration) float64 {
	p := 1.0
	if count > 1 {
		p += math.Min(w.PersistCountMax, w.PersistCount*math.Log2(float64(count)))
	}
	if span > 0 && w.PersistSpanFull > 0 {
		p += w.PersistSpan * math.Min(1, float64(span)/float64(w.PersistSpanFull))
	}
	return p
}

// combine merges co-occurring deviation scores: noisy-OR (the chance that
// at least one is real, treating them as independent evidence), times the
// combination boost because the pairs that trigger it are attack patterns
// rather than independent accidents.
func (w *Weights) combine(scores ...float64) float64 {
	miss := 1.0
	for _, s := range scores {
		miss *= 1 - clamp01(s)
	}
	return clamp01(w.ComboBoost * (1 - miss))
}

// PriorityFor maps a score in [0, 1] to an alert priority.
func PriorityFor(score float64) alert.Priority {
	switch {
	case score >= 0.85:
		return alert.Critical
	case score >= 0.65:
		return alert.Error
	case score >= 0.45:
		return alert.Warning
	case score >= 0.25:
		return alert.Notice
	}
	return alert.Informational
}

// sensitiveRead lists path prefixes whose first read is a strong signal:
// credentials and other processes' memory.
var sensitiveRead = []string{
	"/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/root/", "/etc/ssh/",
	"/var/run/secrets/", "/run/secrets/", "/etc/kubernetes/",
	"/proc/{n}/mem", "/proc/{n}/environ", "/proc/kcore", "/dev/mem",
}

// sensitiveWrite lists path prefixes whose first write is a strong signal:
// persistence, loader hijacking, credentials.
var sensitiveWrite = []string{
	"/etc/", "/root/", "/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/",
	"/var/spool/cron", "/proc/sys/", "/sys/",
}

// dangerousPriv are privilege operations a normal service never needs after
// start: escaping namespaces, loading code into the kernel, inspecting other
// processes, fileless code, raw sockets, a socket on stdio (reverse shell).
var dangerousPriv = map[string]bool{
	"ptrace": true, "module_load": true, "mount": true, "setns": true,
	"unshare": true, "memfd_create": true, "packet_socket": true, "dup_socket": true,
}

// novelty is the base score of a never-seen behavior.
func (w *Weights) novelty(b Behavior, dropped bool) float64 {
	switch b.Cat {
	case CatExec, CatExecName:
		if dropped {
			return w.ExecDropped
		}
		return w.Exec
	case CatEdge:
		return w.Edge
	case CatRead:
		if hasAnyPrefix(b.Value, sensitiveRead) {
			return w.ReadSensitive
		}
		return w.Read
	case CatWrite:
		if hasAnyPrefix(b.Value, sensitiveWrite) {
			return w.WriteSensitive
		}
		return w.Write
	case CatConnect:
		return w.Connect
	case CatListen:
		return w.Listen
	case CatPriv:
		if dangerousPriv[b.Value] {
			return w.PrivDangerous
		}
		return w.Priv
	case CatRate:
		return w.Rate
	}
	return w.Exec
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
