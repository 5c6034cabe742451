package store

import (
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
	opts.test = &testHooks{memTableSize: memTableSize, at: at}
	return opts
}

// DiskKeys returns every key in Badger outside the caches, with its value.
func DiskKeys(s *Store) (map[string]string, error) {
	out := map[string]string{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixRecords)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := string(it.Item().Key())
			if strings.HasPrefix(k, cachePrefix) {
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
// validation and without touching memory; the next Open reads it.
func PutRawRecord(s *Store, key string, val []byte) error {
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(key), val) })
}
