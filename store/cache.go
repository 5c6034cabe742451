package store

import (
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// cachePrefix holds derived values other packages cache in Badger. A value carries what it
// depends on (an encoded Deps, read back with DecodeDeps and checked before it is served), so a
// stale entry is never served; entries expire after CacheTTL.
const cachePrefix = "v1/cache/"

// CacheTTL is how long a cache entry lives in Badger.
const CacheTTL = 24 * time.Hour

// CacheGet returns the cached value under key (below v1/cache/).
func (s *Store) CacheGet(key string) ([]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, false
	}
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(cachePrefix + key))
		if err != nil {
			return err
		}
		out, err = it.ValueCopy(nil)
		return err
	})
	return out, err == nil
}

// CachePut stores val under key (below v1/cache/) without waiting for the write to reach disk;
// a cache entry lost in a crash is recomputed.
func (s *Store) CachePut(key string, val []byte) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return
	}
	txn := s.db.NewTransaction(true)
	if err := txn.SetEntry(badger.NewEntry([]byte(cachePrefix+key), val).WithTTL(CacheTTL)); err != nil {
		txn.Discard()
		return
	}
	s.cacheWrites.Add(1)
	txn.CommitWith(func(err error) {
		defer s.cacheWrites.Done()
		if err != nil && !errors.Is(err, badger.ErrDBClosed) {
			s.log.Warn("teamgate: cache write failed", "key", key, "error", err)
		}
	})
}
