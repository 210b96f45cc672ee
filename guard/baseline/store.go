package baseline

import (
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterr "go.etcd.io/bbolt/errors"

	"github.com/vigilsec/vigil/guard/profile"
)

var bucketProfiles = []byte("profiles")

// ErrStoreLocked is returned when another process (usually the running
// guard) holds the store open.
var ErrStoreLocked = errors.New("baseline store is held by another process")

// ErrNotFound is returned for a profile key the store does not hold.
var ErrNotFound = errors.New("profile not found")

// Store persists profiles in a bbolt file: one record per profile key,
// written in the encoding of encode.go, each Put one transaction, so a
// crash (kill -9, power loss) leaves every profile either at its previous
// or at its new version, never torn.
type Store struct {
	mu     sync.Mutex
	db     *bolt.DB
	closed bool
}

// OpenStore opens (creating if needed) the store at path. It waits at most
// timeout for another process to release the file.
func OpenStore(path string, timeout time.Duration) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		if errors.Is(err, bolterr.ErrTimeout) {
			return nil, fmt.Errorf("open baseline store %s: %w", path, ErrStoreLocked)
		}
		return nil, fmt.Errorf("open baseline store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketProfiles)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init baseline store: %w", err)
	}
	return &Store{db: db}, nil
}

// Put writes profiles in one transaction.
func (s *Store) Put(ps ...*Profile) error {
	if len(ps) == 0 {
		return nil
	}
	recs := make([][2][]byte, len(ps))
	for i, p := range ps {
		recs[i] = [2][]byte{EncodeKey(p.Key), p.Encode()}
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketProfiles)
		for _, r := range recs {
			if err := b.Put(r[0], r[1]); err != nil {
				return fmt.Errorf("put profile: %w", err)
			}
		}
		return nil
	})
}

// Get reads one profile.
func (s *Store) Get(k profile.Key) (*Profile, error) {
	var p *Profile
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketProfiles).Get(EncodeKey(k))
		if v == nil {
			return ErrNotFound
		}
		var err error
		p, err = DecodeProfile(v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get profile %s: %w", FormatKey(k), err)
	}
	return p, nil
}

// List reads every profile. A record that fails to decode is reported in
// the returned error (joined) and skipped, so one damaged record does not
// hide the rest.
func (s *Store) List() ([]*Profile, error) {
	var out []*Profile
	var errs []error
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketProfiles).ForEach(func(k, v []byte) error {
			p, err := DecodeProfile(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("record %x: %w", k, err))
				return nil
			}
			out = append(out, p)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list profiles: %w", err)
	}
	return out, errors.Join(errs...)
}

// Delete removes a profile.
func (s *Store) Delete(k profile.Key) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketProfiles).Delete(EncodeKey(k))
	})
}

// Accept folds b into the stored profile k, for `vigil baseline accept`
// while no guard holds the store.
func (s *Store) Accept(k profile.Key, b Behavior) (bool, error) {
	var grew bool
	err := s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketProfiles)
		v := bk.Get(EncodeKey(k))
		if v == nil {
			return ErrNotFound
		}
		p, err := DecodeProfile(v)
		if err != nil {
			return err
		}
		if grew, err = p.Add(b); err != nil || !grew {
			return err
		}
		if b.Cat == CatExec {
			// No event says what name it ran under: the path's own.
			p.addExecName(b.Value, nameOf(b.Value))
		}
		return bk.Put(EncodeKey(k), p.Encode())
	})
	if err != nil {
		return false, fmt.Errorf("accept %s into %s: %w", b, FormatKey(k), err)
	}
	return grew, nil
}

// Close closes the file; it is safe to call twice.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.db.Close()
}
