package store

import (
	"encoding/binary"
	"errors"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// KeepEvents returns opts keeping the events of only the last n revisions, so the tests can
// trim the event log without 100,000 writes.
func KeepEvents(opts Options, n uint64) Options {
	opts.eventsKept = n
	return opts
}

// Hooks for the black-box tests; compiled only into this package's test binary.

// Steps of a staged commit, for WithTestHooks.
const (
	StepStaged   = stepStaged
	StepMarked   = stepMarked
	StepApplied  = stepApplied
	StepUnmarked = stepUnmarked
	StepDone     = stepDone
	StepDiscard  = stepDiscard
)

// WithTestHooks returns opts with a Badger memtable of memTableSize bytes (a transaction holds
// 15% of it, so a few thousand changes overflow it) and at run after each step of a staged
// commit.
func WithTestHooks(opts Options, memTableSize int64, at func(step string) error) Options {
	h := testHooks{}
	if opts.test != nil {
		h = *opts.test
	}
	h.memTableSize, h.at = memTableSize, at
	opts.test = &h
	return opts
}

// WithCommitHook returns opts running commit before each group's Badger commit, outside every
// lock, with the number of batches the commit holds; blocking in it holds the commit.
func WithCommitHook(opts Options, commit func(batches int)) Options {
	h := testHooks{}
	if opts.test != nil {
		h = *opts.test
	}
	h.commit = commit
	opts.test = &h
	return opts
}

// QueuedWrites is the number of writes waiting for the next group commit.
func QueuedWrites(s *Store) int {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return len(s.queue)
}

// DiskKeys returns every key in Badger outside the caches and the membership snapshot, with its
// value.
func DiskKeys(s *Store) (map[string]string, error) {
	out := map[string]string{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixRecords)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := string(it.Item().Key())
			if strings.HasPrefix(k, cachePrefix) || strings.HasPrefix(k, prefixSnapshot) {
				continue
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out[k] = string(v)
		}
		return nil
	})
	return out, err
}

// PutRawRecord writes a record to Badger as an earlier version of the store might have, without
// validation and without touching memory; the next Open reads it (Close then writes no
// membership snapshot: the state in memory is not the records' any more, and an earlier version
// of the store writes none).
func PutRawRecord(s *Store, key string, val []byte) error {
	s.rawWrites = true
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(key), val) })
}

// DiskRevision reads the revision Badger holds (0 before the first write).
func DiskRevision(s *Store) (uint64, error) {
	var rev uint64
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyRevision))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { rev = binary.BigEndian.Uint64(v); return nil })
	})
	return rev, err
}
