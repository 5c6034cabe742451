package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// A batch too big for one Badger transaction is staged under v1/pending/{revision}/ and made
// atomic by a commit marker; the package doc ("Atomicity") describes the protocol.
const (
	prefixPending = "v1/pending/"
	pendingMarker = "commit" // v1/pending/{rev:020d}/commit: uvarint count of staged chunks
	pendingChunk  = "op/"    // v1/pending/{rev:020d}/op/{seq:010d}: a chunk of encoded ops
	pendingKeyLen = 20 + 1   // "{rev:020d}/" after prefixPending
	maxChunkBytes = 1 << 20  // a chunk never exceeds this unless one op alone does

	opDelete = byte(0) // op kinds in a chunk
	opSet    = byte(1)
)

// Steps of a staged commit, after which tests may stop the process (testHooks.at).
const (
	stepStaged   = "staged"   // after each commit of staged chunks
	stepMarked   = "marked"   // after the marker's commit: the batch is committed
	stepApplied  = "applied"  // after each commit of the batch's own keys
	stepUnmarked = "unmarked" // after the marker's removal
	stepDone     = "done"     // after each commit removing staged chunks
	stepDiscard  = "discard"  // before removing a failed batch's staging; an error makes it fail
)

// testHooks let this package's tests make Badger transactions small, stop a staged commit at
// any step, and watch or hold the commit pipeline (Options.test).
type testHooks struct {
	memTableSize int64                   // Badger's MemTableSize when > 0; a txn holds 15% of it
	at           func(step string) error // runs after each step; an error fails the write there
	commit       func(batches int)       // runs before each group's Badger commit, no lock held
	snapChunk    int                     // the membership snapshot's chunk size when > 0
	noSnapshot   bool                    // Open reads the records even when the snapshot is usable
	bgSteps      bool                    // the background snapshot writer runs at too (concurrently)
}

func (h *testHooks) badger(bo badger.Options) badger.Options {
	if h.memTableSize > 0 {
		// Badger refuses a value threshold above its transaction limit.
		bo = bo.WithMemTableSize(h.memTableSize).WithValueThreshold(h.memTableSize * 15 / 100 / 2)
	}
	return bo
}

func chunkKey(prefix string, seq int) string {
	return fmt.Sprintf("%s%s%010d", prefix, pendingChunk, seq)
}

// op is one write of a batch: a set, or a delete when val is nil.
type op struct {
	key string
	val []byte
}

func (o op) write(txn *badger.Txn) error {
	if o.val == nil {
		return txn.Delete([]byte(o.key))
	}
	return txn.Set([]byte(o.key), o.val)
}

// commitOne commits ops in one Badger transaction. fits is false, and nothing is written, when
// they exceed one transaction.
func (s *Store) commitOne(ops []op) (fits bool, err error) {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	for _, o := range ops {
		if err := o.write(txn); err != nil {
			if errors.Is(err, badger.ErrTxnTooBig) {
				return false, nil
			}
			return false, fmt.Errorf("store: write %s: %w", o.key, err)
		}
	}
	if err := txn.Commit(); err != nil {
		return true, fmt.Errorf("store: commit: %w", err)
	}
	return true, nil
}

// writeChunked writes ops in as many Badger transactions as they need, in order, running the
// test hook's step after each commit. It is not atomic on its own: the commit marker makes it so.
func (s *Store) writeChunked(ops []op, step string) error {
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	n := 0 // ops in txn
	for _, o := range ops {
		err := o.write(txn)
		if errors.Is(err, badger.ErrTxnTooBig) && n > 0 {
			if err := s.commit(txn, step); err != nil {
				return err
			}
			txn, n = s.db.NewTransaction(true), 0
			err = o.write(txn)
		}
		if err != nil {
			return fmt.Errorf("store: write %s: %w", o.key, err)
		}
		n++
	}
	if n == 0 {
		return nil
	}
	return s.commit(txn, step)
}

func (s *Store) commit(txn *badger.Txn, step string) error {
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	if s.hook != nil && step != "" {
		return s.hook(step)
	}
	return nil
}

// commitStaged commits a batch too big for one transaction: it stages the ops, commits the
// marker (the commit point: an error before it leaves the batch absent), then applies the ops
// to their keys and removes the staging. A failure after the commit point does not undo the
// batch: it is recorded in s.unfinished and completed by the next write or the next Open.
func (s *Store) commitStaged(rev uint64, ops []op, events []string) error {
	prefix := fmt.Sprintf("%s%020d/", prefixPending, rev)
	chunks := stage(prefix, ops, min(s.db.MaxBatchSize()/4, maxChunkBytes))
	if err := s.writeChunked(chunks, stepStaged); err != nil {
		s.discardStaged(chunks)
		return err
	}
	// The batches' events are written with the marker, so that Watch finds them as soon as the
	// batches are acknowledged, even if applying them to their keys fails and waits for the next
	// write. Events too large together to go with the marker go with the keys.
	commit := []op{{prefix + pendingMarker, binary.AppendUvarint(nil, uint64(len(chunks)))}}
	for _, o := range ops {
		if strings.HasPrefix(o.key, prefixEvent) && slices.Contains(events, o.key) {
			commit = append(commit, o)
		}
	}
	fits, err := s.commitOne(commit)
	if !fits && err == nil && len(commit) > 1 {
		commit = commit[:1]
		fits, err = s.commitOne(commit)
	}
	marker := commit[0]
	if !fits || err != nil {
		// The commit may still have reached disk: remove the marker so Open cannot complete a
		// batch reported as failed.
		s.discardStaged(append(chunks, commit...))
		if err == nil {
			err = fmt.Errorf("store: commit marker %s does not fit a Badger transaction", marker.key)
		}
		return err
	}
	if s.hook != nil {
		if err := s.hook(stepMarked); err != nil {
			s.unfinish(rev, err)
			return nil
		}
	}
	if err := s.finish(marker.key, ops, chunks); err != nil {
		s.unfinish(rev, err)
	}
	return nil
}

func (s *Store) unfinish(rev uint64, err error) {
	s.unfinished = true
	s.log.Warn("teamgate: batch committed but not yet applied to its keys; the next write or Open completes it",
		"revision", rev, "error", err)
}

// finish applies a committed batch's ops to their keys, then deletes its marker, then its
// chunks. It is idempotent: replaying it after a crash at any point gives the same keys.
func (s *Store) finish(marker string, ops, chunks []op) error {
	if err := s.writeChunked(ops, stepApplied); err != nil {
		return err
	}
	if err := s.writeChunked([]op{{key: marker}}, stepUnmarked); err != nil {
		return err
	}
	return s.writeChunked(deletes(chunks), stepDone)
}

// discardStaged deletes staged keys of a batch that did not commit. What it cannot delete is
// kept in s.leftover for the next write to delete before anything else: the next batch is
// staged under the same revision, and must not find another batch's chunks (or marker) there.
func (s *Store) discardStaged(staged []op) {
	err := error(nil)
	if s.hook != nil {
		err = s.hook(stepDiscard)
	}
	if err == nil {
		err = s.writeChunked(deletes(staged), stepDone)
	}
	if err != nil {
		s.leftover = append(s.leftover, deletes(staged)...)
		s.log.Warn("teamgate: removing an uncommitted batch's staging failed; the next write or Open removes it", "error", err)
	}
}

// discardLeftover deletes what discardStaged could not; a write fails while it cannot.
func (s *Store) discardLeftover() error {
	if len(s.leftover) == 0 {
		return nil
	}
	if err := s.writeChunked(s.leftover, stepDone); err != nil {
		return fmt.Errorf("store: remove the staging of a failed batch: %w", err)
	}
	s.leftover = nil
	return nil
}

func deletes(ops []op) []op {
	out := make([]op, len(ops))
	for i, o := range ops {
		out[i] = op{key: o.key}
	}
	return out
}

// stage encodes ops into chunks of at most limit bytes (one op alone may exceed it), keyed
// under prefix in order. Each op is uvarint key length, key, kind, and for a set uvarint value
// length and value.
func stage(prefix string, ops []op, limit int64) []op {
	var chunks []op
	var cur []byte
	flush := func() {
		chunks = append(chunks, op{chunkKey(prefix, len(chunks)), cur})
		cur = nil
	}
	for _, o := range ops {
		size := int64(len(o.key) + len(o.val) + 2*binary.MaxVarintLen64 + 1)
		if len(cur) > 0 && int64(len(cur))+size > limit {
			flush()
		}
		cur = binary.AppendUvarint(cur, uint64(len(o.key)))
		cur = append(cur, o.key...)
		if o.val == nil {
			cur = append(cur, opDelete)
			continue
		}
		cur = append(cur, opSet)
		cur = binary.AppendUvarint(cur, uint64(len(o.val)))
		cur = append(cur, o.val...)
	}
	if len(cur) > 0 {
		flush()
	}
	return chunks
}

// unstage decodes a chunk written by stage.
func unstage(chunk []byte, ops []op) ([]op, error) {
	next := func(what string) ([]byte, error) {
		n, w := binary.Uvarint(chunk)
		if w <= 0 || n > uint64(len(chunk)-w) {
			return nil, fmt.Errorf("bad %s length", what)
		}
		b := chunk[w : w+int(n)]
		chunk = chunk[w+int(n):]
		return b, nil
	}
	for len(chunk) > 0 {
		key, err := next("key")
		if err != nil {
			return nil, err
		}
		if len(chunk) == 0 {
			return nil, errors.New("missing op kind")
		}
		kind := chunk[0]
		chunk = chunk[1:]
		switch kind {
		case opDelete:
			ops = append(ops, op{key: string(key)})
		case opSet:
			val, err := next("value")
			if err != nil {
				return nil, err
			}
			ops = append(ops, op{string(key), val})
		default:
			return nil, fmt.Errorf("bad op kind %d", kind)
		}
	}
	return ops, nil
}

// recoverPending finishes every committed staged batch left on disk by a crash (or by a Badger
// failure after its commit point) and discards staging without a marker. Batches are handled in
// revision order; at most one is ever left, as a write completes the previous one first.
func (s *Store) recoverPending() error {
	type pending struct {
		marker []byte // nil when uncommitted
		chunks []op
	}
	var order []string
	batches := map[string]*pending{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixPending), PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			key := string(it.Item().Key())
			if len(key) < len(prefixPending)+pendingKeyLen {
				return fmt.Errorf("store: malformed staging key %q", key)
			}
			prefix := key[:len(prefixPending)+pendingKeyLen]
			b := batches[prefix]
			if b == nil {
				b = &pending{}
				batches[prefix] = b
				order = append(order, prefix)
			}
			val, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			switch rest := key[len(prefix):]; {
			case rest == pendingMarker:
				b.marker = val
			case strings.HasPrefix(rest, pendingChunk):
				b.chunks = append(b.chunks, op{key, val})
			default:
				return fmt.Errorf("store: malformed staging key %q", key)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: read staged batches: %w", err)
	}
	for _, prefix := range order {
		b := batches[prefix]
		if b.marker == nil {
			if err := s.writeChunked(deletes(b.chunks), stepDone); err != nil {
				return fmt.Errorf("store: discard uncommitted batch %s: %w", prefix, err)
			}
			continue
		}
		n, w := binary.Uvarint(b.marker)
		if w <= 0 || n != uint64(len(b.chunks)) {
			return fmt.Errorf("store: committed batch %s is incomplete: %d of %d chunks", prefix, len(b.chunks), n)
		}
		var ops []op
		for i, c := range b.chunks { // key order is staging order
			if c.key != chunkKey(prefix, i) {
				return fmt.Errorf("store: committed batch %s is incomplete: no chunk %d", prefix, i)
			}
			if ops, err = unstage(c.val, ops); err != nil {
				return fmt.Errorf("store: corrupt staged chunk %s: %w", c.key, err)
			}
		}
		if err := s.finish(prefix+pendingMarker, ops, b.chunks); err != nil {
			return fmt.Errorf("store: complete committed batch %s: %w", prefix, err)
		}
	}
	return nil
}
