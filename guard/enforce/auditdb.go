package enforce

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DefaultAuditDB is where the guard persists decision records.
const DefaultAuditDB = "/var/lib/vigil/audit.db"

var bucketRecords = []byte("records")

// StoredRecord is a Record as persisted: wall-clock time and names
// instead of kernel ids.
type StoredRecord struct {
	Time     time.Time `json:"time"`
	Workload string    `json:"workload"`
	Rule     string    `json:"rule"`
	Kind     string    `json:"kind"`
	Action   string    `json:"action"`
	Mode     string    `json:"mode"`
	Denied   bool      `json:"denied"`
	Backend  string    `json:"backend"`
	PID      uint32    `json:"pid"`
	Comm     string    `json:"comm"`
	// Object is what the action touched: a file name or path, or addr:port.
	Object string `json:"object"`
}

// AuditStore persists decision records in bbolt, keyed by time, for the
// promotion report (`vigil report would-block`).
type AuditStore struct {
	db        *bolt.DB
	mu        sync.Mutex
	seq       uint32
	closeOnce sync.Once
	closeErr  error
}

// OpenAuditStore opens (creating) the store at path.
func OpenAuditStore(path string) (*AuditStore, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create audit store dir: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open audit store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketRecords)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("init audit store: %w", err)
	}
	return &AuditStore{db: db}, nil
}

// Put stores one record.
func (s *AuditStore) Put(r StoredRecord) error {
	s.mu.Lock()
	s.seq++
	seq := s.seq
	s.mu.Unlock()
	var key [12]byte
	binary.BigEndian.PutUint64(key[:8], uint64(r.Time.UnixNano()))
	binary.BigEndian.PutUint32(key[8:], seq)
	val, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRecords).Put(key[:], val)
	})
}

// PutBatch stores records in one transaction (one fsync).
func (s *AuditStore) PutBatch(rs []StoredRecord) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		for _, r := range rs {
			s.mu.Lock()
			s.seq++
			seq := s.seq
			s.mu.Unlock()
			var key [12]byte
			binary.BigEndian.PutUint64(key[:8], uint64(r.Time.UnixNano()))
			binary.BigEndian.PutUint32(key[8:], seq)
			val, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := b.Put(key[:], val); err != nil {
				return err
			}
		}
		return nil
	})
}

// Since returns every record at or after t, oldest first.
func (s *AuditStore) Since(t time.Time) ([]StoredRecord, error) {
	var out []StoredRecord
	var from [8]byte
	if !t.IsZero() && t.UnixNano() > 0 {
		binary.BigEndian.PutUint64(from[:], uint64(t.UnixNano()))
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		for k, v := c.Seek(from[:]); k != nil; k, v = c.Next() {
			var r StoredRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode stored record: %w", err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// Close closes the database; safe to call twice.
func (s *AuditStore) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.db.Close() })
	return s.closeErr
}

// WouldBlock is the promotion report for one workload: what enforce mode
// would have done there.
type WouldBlock struct {
	Workload string          `json:"workload"`
	Entries  []WouldBlockRow `json:"entries"`
}

// WouldBlockRow aggregates one (rule, kind, action) in a workload.
type WouldBlockRow struct {
	Rule      string    `json:"rule"`
	Kind      string    `json:"kind"`
	Action    string    `json:"action"`
	Count     uint64    `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Examples holds up to three distinct "comm -> object" samples.
	Examples []string `json:"examples"`
}

// ReportWouldBlock aggregates the audit-mode ("would have") records since
// t, per workload, sorted by workload then by count.
func ReportWouldBlock(recs []StoredRecord) []WouldBlock {
	type key struct{ wl, rule, kind, action string }
	rows := map[key]*WouldBlockRow{}
	for _, r := range recs {
		if r.Denied {
			continue
		}
		k := key{r.Workload, r.Rule, r.Kind, r.Action}
		row := rows[k]
		if row == nil {
			row = &WouldBlockRow{Rule: r.Rule, Kind: r.Kind, Action: r.Action, FirstSeen: r.Time}
			rows[k] = row
		}
		row.Count++
		if r.Time.Before(row.FirstSeen) {
			row.FirstSeen = r.Time
		}
		if r.Time.After(row.LastSeen) {
			row.LastSeen = r.Time
		}
		ex := r.Comm + " -> " + r.Object
		if len(row.Examples) < 3 && !contains(row.Examples, ex) {
			row.Examples = append(row.Examples, ex)
		}
	}
	byWl := map[string]*WouldBlock{}
	for k, row := range rows {
		w := byWl[k.wl]
		if w == nil {
			w = &WouldBlock{Workload: k.wl}
			byWl[k.wl] = w
		}
		w.Entries = append(w.Entries, *row)
	}
	out := make([]WouldBlock, 0, len(byWl))
	for _, w := range byWl {
		sort.Slice(w.Entries, func(i, j int) bool {
			if w.Entries[i].Count != w.Entries[j].Count {
				return w.Entries[i].Count > w.Entries[j].Count
			}
			return w.Entries[i].Rule < w.Entries[j].Rule
		})
		out = append(out, *w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Workload < out[j].Workload })
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// ErrBadSince reports an unparsable --since value.
var ErrBadSince = errors.New("bad --since")

// ParseSince parses durations with a day suffix too ("7d", "36h", "1d12h").
func ParseSince(s string) (time.Duration, error) {
	var total time.Duration
	rest := s
	if i := indexDay(rest); i >= 0 {
		var days int
		if _, err := fmt.Sscanf(rest[:i], "%d", &days); err != nil || days < 0 || fmt.Sprint(days) != rest[:i] {
			return 0, fmt.Errorf("%w %q", ErrBadSince, s)
		}
		total = time.Duration(days) * 24 * time.Hour
		rest = rest[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("%w %q", ErrBadSince, s)
		}
		total += d
	}
	if s == "" {
		return 0, fmt.Errorf("%w: empty", ErrBadSince)
	}
	return total, nil
}

func indexDay(s string) int {
	for i, c := range s {
		if c == 'd' {
			return i
		}
	}
	return -1
}

// Stored converts a decision record for persistence. Kernel timestamps
// are CLOCK_MONOTONIC; now and monoNow (the same instant on both clocks)
// map them to wall-clock time.
func (r Record) Stored(now time.Time, monoNow uint64) StoredRecord {
	t := now
	if r.KTimeNs != 0 && r.KTimeNs <= monoNow {
		t = now.Add(-time.Duration(monoNow - r.KTimeNs))
	}
	obj := r.Path
	if obj == "" {
		obj = r.Name
	}
	if r.Addr.IsValid() {
		obj = netip.AddrPortFrom(r.Addr, r.Port).String()
	}
	mode := r.Mode.String()
	return StoredRecord{Time: t.UTC(), Workload: r.Workload, Rule: r.Rule, Kind: r.Kind.String(),
		Action: r.Action.String(), Mode: mode, Denied: r.Denied, Backend: r.Backend.String(),
		PID: r.PID, Comm: r.Comm, Object: obj}
}

// PutRecord persists a decision record stamped now.
func (s *AuditStore) PutRecord(r Record) error {
	return s.Put(r.Stored(time.Now(), monotonicNs()))
}
