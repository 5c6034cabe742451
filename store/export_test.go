package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/teamgate/teamgate"
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
	s.rawWrites.Store(true)
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(key), val) })
}

// DeleteRawRecord deletes a record from Badger behind the store's back, like PutRawRecord.
func DeleteRawRecord(s *Store, key string) error {
	s.rawWrites.Store(true)
	return s.db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(key)) })
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

// StepSnapshot is the step after each commit of a membership snapshot write.
const StepSnapshot = stepSnapshot

// WithSnapshotChunk returns opts writing the membership snapshot in chunks of size bytes.
func WithSnapshotChunk(opts Options, size int) Options {
	h := testHooks{}
	if opts.test != nil {
		h = *opts.test
	}
	h.snapChunk = size
	opts.test = &h
	return opts
}

// WithBackgroundSnapshotSteps returns opts whose test hook (WithTestHooks) also runs after each
// commit of a background snapshot, from the snapshot writer's goroutine: the hook must be safe
// for concurrent use.
func WithBackgroundSnapshotSteps(opts Options) Options {
	h := testHooks{}
	if opts.test != nil {
		h = *opts.test
	}
	h.bgSteps = true
	opts.test = &h
	return opts
}

// IgnoreSnapshot returns opts with which Open reads the records even where the membership
// snapshot is usable (Close still writes one).
func IgnoreSnapshot(opts Options) Options {
	h := testHooks{}
	if opts.test != nil {
		h = *opts.test
	}
	h.noSnapshot = true
	opts.test = &h
	return opts
}

// FromSnapshot reports whether Open installed the membership snapshot rather than reading the
// member and team membership records.
func FromSnapshot(s *Store) bool { return s.fromSnap }

// SnapshotRevision is the revision of the newest membership snapshot the store wrote or opened
// from (0: none).
func SnapshotRevision(s *Store) uint64 { return s.snapRev.Load() }

// WriteSnapshot writes the membership snapshot of the current state, as the background writer
// does: begun while leading the commit pipeline, copied while writes go on, written after.
func WriteSnapshot(s *Store) error {
	var live *liveCapture
	s.capMu.Lock()
	s.enqueue(&queued{ctx: context.Background(), run: func() { live = s.beginCapture() }})
	if live == nil {
		s.capMu.Unlock()
		return teamgate.ErrClosed
	}
	c, _, err := s.copyCapture(live, nil)
	s.capMu.Unlock()
	if err != nil {
		return err
	}
	return s.writeSnapshot(c, nil)
}

// CaptureUnderWrites copies the snapshot of the current state twice: once while nothing writes
// (want), and once (got) a few member ids or stamps per step with between run before each step,
// no lock held: it may write, or start writers, while the copy goes on. Nothing may write until
// the first call of between. Both are returned as comparable values.
func CaptureUnderWrites(s *Store, between func()) (want, got any, err error) {
	w := s.capture()
	s.capMu.Lock()
	defer s.capMu.Unlock()
	c := s.beginCapture()
	s.capChunk, s.capBetween = 3, between
	defer func() { s.capChunk, s.capBetween = 0, nil }()
	g, _, err := s.copyCapture(c, nil)
	if err != nil {
		return nil, nil, err
	}
	if g.rev != w.rev || g.ts != w.ts {
		return nil, nil, fmt.Errorf("revision %d ts %d, want %d %d", g.rev, g.ts, w.rev, w.ts)
	}
	return comparableCapture(w), comparableCapture(g), nil
}

func comparableCapture(c *snapCapture) any {
	type org struct {
		Name      string
		Names     []string
		Roles     []roleCode
		Teams     [][]teamRole
		TeamNames []string
		Expiry    map[[2]uint32]int64
	}
	orgs := make([]org, len(c.orgs))
	for i, o := range c.orgs {
		orgs[i] = org{o.name, o.names, o.roles, o.teams, o.teamNames, o.expiry}
		if len(o.expiry) == 0 {
			orgs[i].Expiry = nil
		}
	}
	stamps := map[string]uint64{}
	for _, st := range c.stamps {
		stamps[st.key.String()] = st.rev
	}
	return struct {
		Rev    uint64
		Orgs   []org
		Stamps map[string]uint64
	}{c.rev, orgs, stamps}
}

// OnSnapshotCapture makes every background snapshot report the longest it held the writers (its
// start or one step of its copy). Set it before the first write.
func OnSnapshotCapture(s *Store, f func(time.Duration)) { s.snapCost = f }

// SkipSnapshotAtClose makes Close write no snapshot, as if the process had been killed.
func SkipSnapshotAtClose(s *Store) { s.rawWrites.Store(true) }

// EditSnapshot rewrites the stored snapshot: edit gets the head and the data (all chunks
// together) and returns them changed; the data goes back in chunks of the old sizes (the last
// one takes what is left), then the head, last, so the head stays the last write. With fix, the
// head's length and checksum are recomputed to match the edited data.
func EditSnapshot(s *Store, fix bool, edit func(head, data []byte) ([]byte, []byte)) error {
	var head, data []byte
	var sizes []int
	var h snapshotHead
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keySnapshotHead))
		if err != nil {
			return err
		}
		if head, err = item.ValueCopy(nil); err != nil {
			return err
		}
		if h, err = decodeSnapshotHead(head); err != nil {
			return err
		}
		for seq := range int(h.chunks) {
			item, err := txn.Get([]byte(snapshotChunkKey(h.ts, seq)))
			if err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			data = append(data, v...)
			sizes = append(sizes, len(v))
		}
		return nil
	})
	if err != nil {
		return err
	}
	head, data = edit(head, data)
	if fix {
		h.length, h.crc = uint64(len(data)), crc32.Checksum(data, snapshotCRC)
		head = h.encode()
	}
	return s.db.Update(func(txn *badger.Txn) error {
		for seq, n := range sizes {
			if seq == len(sizes)-1 || n > len(data) {
				n = len(data)
			}
			if err := txn.Set([]byte(snapshotChunkKey(h.ts, seq)), data[:n]); err != nil {
				return err
			}
			data = data[n:]
		}
		return txn.Set([]byte(keySnapshotHead), head)
	})
}

// Stamps returns every stamp cell's value by key, and the absent shards' values.
func Stamps(s *Store) (map[string]uint64, []uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	cells := map[string]uint64{}
	for k, c := range s.stamps.cells {
		cells[k.String()] = c.Load()
	}
	absent := make([]uint64, len(s.stamps.absent))
	for i := range s.stamps.absent {
		absent[i] = s.stamps.absent[i].Load()
	}
	return cells, absent
}

// SetGrantExpiryIndex sets the grant expiry index entry of user's grant on org/project to at
// (the zero time removes it), in memory only and behind the store's back, for Check's tests.
func SetGrantExpiryIndex(s *Store, org, project, user string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rawWrites.Store(true)
	o := s.st.orgs[org]
	if at.IsZero() {
		delete(o.grantExpiry[project], user)
		return
	}
	if o.grantExpiry[project] == nil {
		o.grantExpiry[project] = map[string]int64{}
	}
	o.grantExpiry[project][user] = unixOrZero(at)
}

// SetMemberExpiryIndex sets the membership expiry index entry of org member user in team to at
// (the zero time removes it), in memory only and behind the store's back, for Check's tests.
func SetMemberExpiryIndex(s *Store, org, team, user string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rawWrites.Store(true)
	o := s.st.orgs[org]
	id, _ := o.members.id(user)
	key := [2]uint32{o.teams[team].id, id}
	if at.IsZero() {
		delete(o.memberExpiry, key)
		return
	}
	o.memberExpiry[key] = unixOrZero(at)
}
