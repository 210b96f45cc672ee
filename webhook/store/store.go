// Package store owns the webhook's persistent state in one embedded bbolt
// file: every recorded expected-behavior profile, every release window,
// each workload's latest revision, and namespace modes learned from
// Namespace objects. Profiles and windows carry a store-wide sequence number
// so guards can poll for what is new since the last number they saw.
package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vigilsec/vigil/guard/profile"
)

var (
	bucketProfiles   = []byte("profiles")
	bucketWindows    = []byte("windows")
	bucketWorkloads  = []byte("workloads")
	bucketNamespaces = []byte("namespaces")
	bucketMeta       = []byte("meta")
	keySeq           = []byte("seq")
)

// ErrClosed is returned by calls on a closed store.
var ErrClosed = errors.New("store: closed")

// Store is the bbolt-backed state. It is safe for concurrent use.
type Store struct {
	db *bolt.DB

	mu sync.RWMutex
	// workloads mirrors the workloads bucket so that the common case (a pod
	// of an already-recorded revision) needs no transaction at all.
	workloads map[profile.WorkloadKey]*workloadState
	closed    bool
}

type workloadState struct {
	Latest  string            `json:"latest"`
	Aspects map[string]string `json:"aspects,omitempty"`
	Known   map[string]bool   `json:"known"`
	// Deleted is set by Forget: the workload may be created again.
	Deleted bool `json:"deleted,omitempty"`
}

// Open opens or creates the store file at path.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{db: db, workloads: map[profile.WorkloadKey]*workloadState{}}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketProfiles, bucketWindows, bucketWorkloads, bucketNamespaces, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketWorkloads).ForEach(func(k, v []byte) error {
			var wk profile.WorkloadKey
			var st workloadState
			if err := json.Unmarshal(k, &wk); err != nil {
				return fmt.Errorf("workload key %q: %w", k, err)
			}
			if err := json.Unmarshal(v, &st); err != nil {
				return fmt.Errorf("workload %q: %w", k, err)
			}
			s.workloads[wk] = &st
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init store %s: %w", path, err)
	}
	return s, nil
}

// Close closes the file. It is safe to call twice.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.db.Close()
}

// Rollout is one admitted pod template.
type Rollout struct {
	Workload profile.WorkloadKey
	Revision string
	// Aspects are the template's per-aspect digests (object.Template.Aspects).
	Aspects  map[string]string
	Profiles []profile.Expected
	User     string
	Now      time.Time
	// Window is how long a release window stays open.
	Window time.Duration
	// Controller is set for workload controllers (Deployment, ...), clear
	// for pods: a pod of a known older revision (an old ReplicaSet's pod
	// during a rollout) is not a release, a controller moving back to a
	// known revision (a rollback) is.
	Controller bool
	// FollowLatest is set for a controller's pod whose revision could not
	// be tied to the controller's (StatefulSet, DaemonSet and Job pods carry
	// labels their template lacks): such a pod belongs to whatever the
	// controller was last admitted with, and is recorded only when the
	// workload is not known at all (the webhook came up after it).
	FollowLatest bool
	// Create marks a CREATE request. A CREATE of a workload the store knows
	// and has not seen deleted can only fail with AlreadyExists after the
	// webhook answered, so it records nothing and opens no window.
	Create bool
	// Derive, when set, computes Aspects and Profiles; it is called only
	// when the revision is new to the workload, so the common case pays
	// for neither.
	Derive func() (aspects map[string]string, profiles []profile.Expected)
}

// unchanged reports that r records nothing over the workload's state st.
func (r *Rollout) unchanged(st *workloadState) bool {
	return r.FollowLatest || st.Latest == r.Revision || (!r.Controller && st.Known[r.Revision]) || (r.Create && !st.Deleted)
}

// Unchanged reports whether Record(r) would find nothing to record (one map
// lookup, no transaction): the webhook then skips decoding the fields only
// a new revision's profiles need. The answer can be stale by the time
// Record runs; Record decides again under its lock.
func (s *Store) Unchanged(r Rollout) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.workloads[r.Workload]
	return ok && r.unchanged(st)
}

// Result says what Record did.
type Result struct {
	// Recorded is set when profiles were written (a new revision).
	Recorded bool
	// Window is the release window opened, if any.
	Window *profile.ReleaseWindow
}

// Record stores a rollout: the profiles of a revision not seen before, and a
// release window when the workload moves to a revision other than its
// latest. A template already recorded as the workload's latest costs one
// map lookup.
func (s *Store) Record(r Rollout) (Result, error) {
	s.mu.RLock()
	st, ok := s.workloads[r.Workload]
	unchanged := ok && r.unchanged(st)
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return Result{}, ErrClosed
	}
	if unchanged {
		return Result{}, nil
	}

	// Serialise writers for one consistent read-modify-write of the
	// workload's state; bbolt has a single writer anyway.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Result{}, ErrClosed
	}
	st, ok = s.workloads[r.Workload]
	if ok && r.unchanged(st) {
		return Result{}, nil
	}
	if r.Derive != nil {
		r.Aspects, r.Profiles = r.Derive()
	}
	next := &workloadState{Latest: r.Revision, Aspects: r.Aspects, Known: map[string]bool{r.Revision: true}}
	w := &profile.ReleaseWindow{
		Workload: r.Workload, Revision: r.Revision,
		Opened: r.Now, Closes: r.Now.Add(r.Window), User: r.User,
	}
	res := Result{Window: w}
	if ok {
		for k := range st.Known {
			next.Known[k] = true
		}
		w.PrevRevision = st.Latest
		w.Changed = changed(st.Aspects, r.Aspects)
	}
	record := !ok || !st.Known[r.Revision]
	err := s.db.Update(func(tx *bolt.Tx) error {
		seq, err := nextSeq(tx)
		if err != nil {
			return err
		}
		if record {
			pb := tx.Bucket(bucketProfiles)
			for i := range r.Profiles {
				v, err := json.Marshal(StoredProfile{Seq: seq, Expected: r.Profiles[i]})
				if err != nil {
					return err
				}
				if err := pb.Put(seqKey(seq, uint32(i)), v); err != nil {
					return err
				}
			}
		}
		wv, err := json.Marshal(StoredWindow{Seq: seq, ReleaseWindow: *w})
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketWindows).Put(seqKey(seq, 0), wv); err != nil {
			return err
		}
		k, _ := json.Marshal(r.Workload)
		v, err := json.Marshal(next)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketWorkloads).Put(k, v)
	})
	if err != nil {
		return Result{}, fmt.Errorf("record %s/%s@%s: %w", r.Workload.Namespace, r.Workload.Workload, r.Revision, err)
	}
	s.workloads[r.Workload] = next
	res.Recorded = record
	return res, nil
}

// Forget marks a workload deleted (from a DELETE review): its next CREATE
// is a new rollout. Its known revisions stay, for release-window diffs.
func (s *Store) Forget(w profile.WorkloadKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	st, ok := s.workloads[w]
	if !ok || st.Deleted {
		return nil
	}
	next := *st
	next.Deleted = true
	k, _ := json.Marshal(w)
	v, err := json.Marshal(&next)
	if err != nil {
		return err
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketWorkloads).Put(k, v) }); err != nil {
		return fmt.Errorf("forget %s/%s: %w", w.Namespace, w.Workload, err)
	}
	s.workloads[w] = &next
	return nil
}

func changed(prev, cur map[string]string) []string {
	var out []string
	for k, v := range cur {
		if prev[k] != v {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func nextSeq(tx *bolt.Tx) (uint64, error) {
	b := tx.Bucket(bucketMeta)
	var n uint64
	if v := b.Get(keySeq); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	n++
	return n, b.Put(keySeq, binary.BigEndian.AppendUint64(nil, n))
}

// seqKey orders records by sequence, then position.
func seqKey(seq uint64, i uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(make([]byte, 0, 12), seq), i)
}

// StoredProfile is a profile with the sequence number of its rollout.
type StoredProfile struct {
	Seq uint64 `json:"seq"`
	profile.Expected
}

// StoredWindow is a release window with the sequence number of its rollout.
type StoredWindow struct {
	Seq uint64 `json:"seq"`
	profile.ReleaseWindow
}

// Profiles returns up to limit profiles recorded after sequence since, in
// order, and the sequence to ask from next time.
func (s *Store) Profiles(since uint64, limit int) ([]StoredProfile, uint64, error) {
	if limit <= 0 {
		limit = int(^uint(0) >> 1)
	}
	var out []StoredProfile
	next := since
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketProfiles).Cursor()
		for k, v := c.Seek(seqKey(since+1, 0)); k != nil; k, v = c.Next() {
			var p StoredProfile
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("profile %x: %w", k, err)
			}
			// Never split one rollout's profiles across pages.
			if len(out) >= limit && p.Seq != next {
				break
			}
			out = append(out, p)
			next = p.Seq
		}
		return nil
	})
	return out, next, err
}

// Windows returns release windows recorded after since; with open set, only
// those open at now.
func (s *Store) Windows(since uint64, openOnly bool, now time.Time) ([]StoredWindow, error) {
	var out []StoredWindow
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketWindows).Cursor()
		for k, v := c.Seek(seqKey(since+1, 0)); k != nil; k, v = c.Next() {
			var w StoredWindow
			if err := json.Unmarshal(v, &w); err != nil {
				return fmt.Errorf("window %x: %w", k, err)
			}
			if openOnly && !w.Open(now) {
				continue
			}
			out = append(out, w)
		}
		return nil
	})
	return out, err
}

// SetNamespaceMode remembers a namespace's mode (as read from its labels);
// an empty mode forgets it.
func (s *Store) SetNamespaceMode(ns, mode string) error {
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNamespaces)
		if mode == "" {
			return b.Delete([]byte(ns))
		}
		return b.Put([]byte(ns), []byte(mode))
	})
}

// NamespaceModes returns every remembered namespace mode.
func (s *Store) NamespaceModes() (map[string]string, error) {
	out := map[string]string{}
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketNamespaces).ForEach(func(k, v []byte) error {
			out[string(k)] = string(v)
			return nil
		})
	})
	return out, err
}

func (s *Store) view(fn func(*bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.View(fn)
}

func (s *Store) update(fn func(*bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.Update(fn)
}
