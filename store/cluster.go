package store

import (
	"context"
	"fmt"
	"strconv"

	"github.com/dgraph-io/badger/v4"

	"github.com/teamgate/teamgate"
)

// write shapes one call of apply.
type write struct {
	after   *uint64 // the store must be at exactly this revision (a replayed event)
	at      uint64  // commit at this revision instead of the next one (Replica.Restore); 0: next
	replica bool    // the Replica writes: allowed on a replicated store
}

// guard refuses a direct write to a replicated store. It runs when the commit pipeline
// validates a write, in queue order, where Replicate takes its place too: a write queued before
// Replicate commits before Replicate returns, one queued after it is refused.
func (s *Store) guard(w write) error {
	if s.replicated && !w.replica {
		return &teamgate.ConflictError{What: "store", Name: "revision " + strconv.FormatUint(s.st.rev, 10),
			Reason: "the store replicates a shared log: write through its cluster node"}
	}
	return nil
}

// Replica is the only writer of a store that is the materialized view of a shared, ordered log
// of batches (package cluster): the log decides the order of writes and their revisions, and
// the store replays them. Once Replicate has handed the Replica out, the store's own Apply,
// ApplyEvent, Load and LoadFile fail with ErrConflict; reads and Watch work as before. A
// Replica is safe for concurrent use.
//
// The guard outlives the Store: Replicate leaves a marker in the store (v1/meta/replicated), so
// a store that was a replica refuses direct writes after it is reopened too, until it is
// replicated again (a node resumes it) or Detach takes it out of replication. A direct write
// would otherwise put the store ahead of, or beside, the log every other replica follows.
type Replica struct{ s *Store }

// Replicate makes r the store's only writer (see Replica) and marks the store as a replica,
// durably. A store hands out one Replica while it is open: a second call fails with
// ErrConflict, a closed store with ErrClosed. A reopened store that was a replica can be
// replicated again.
func (s *Store) Replicate() (*Replica, error) {
	q := &queued{ctx: context.Background(), replicate: true}
	s.enqueue(q)
	if q.err != nil {
		return nil, q.err
	}
	return &Replica{s: s}, nil
}

// replicateNow sets the guard and hands out the Replica; the leading writer runs it under the
// write lock, at Replicate's place in the queue. The marker is written there too: Badger I/O
// under the lock, but once in a store's life, and never half done (the guard is set only once
// the marker is durable).
func (s *Store) replicateNow() error {
	if s.replicaOut {
		return &teamgate.ConflictError{What: "store", Name: "revision " + strconv.FormatUint(s.st.rev, 10),
			Reason: "already replicated"}
	}
	if !s.replicated {
		if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyReplicated), nil) }); err != nil {
			return fmt.Errorf("store: mark the store as a replica: %w", err)
		}
	}
	s.replicated, s.replicaOut = true, true
	return nil
}

// Replicated reports whether the store refuses direct writes because it is, or was, a replica
// (see Replica).
func (s *Store) Replicated() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.replicated
}

// Detach takes a store that was a replica out of replication: the marker goes and direct writes
// work again. It is how an operator turns a former cluster node's store into a standalone one:
// the directory stays as of its last revision, and once written directly it is no longer the
// log's view (a node refuses it as soon as it is ahead of the log). Only a reopened store can
// be detached: while this Store has handed out a Replica (a node runs on it, or ran until
// Close), Detach fails with ErrConflict. A store that is not a replica is left as it is.
func (s *Store) Detach() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return teamgate.ErrClosed
	case s.replicaOut:
		return &teamgate.ConflictError{What: "store", Name: "revision " + strconv.FormatUint(s.st.rev, 10),
			Reason: "its replica is in use: close the cluster node and reopen the store first"}
	case !s.replicated:
		return nil
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(keyReplicated)) }); err != nil {
		return fmt.Errorf("store: detach the replica: %w", err)
	}
	s.replicated = false
	return nil
}

// Store returns the replicated store.
func (r *Replica) Store() *Store { return r.s }

// ValidateEach checks batches in order the way one commit of all of them would apply them: each
// against the state the valid batches before it leave, under the write lock, and undoes them
// all. It returns the revision they were checked at and each batch's error (nil: valid), so a
// writer that commits several callers' batches as one batch of the log (their concatenation,
// valid ones only) fails an invalid one alone. An empty batch is ErrInvalid.
func (r *Replica) ValidateEach(ctx context.Context, batches [][]Change) (uint64, []error, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, nil, teamgate.ErrClosed
	}
	errs := make([]error, len(batches))
	var applied []*txn
	for i, b := range batches {
		if len(b) == 0 {
			errs[i] = teamgate.Invalid("batch", strconv.Itoa(i), "empty")
			continue
		}
		t, err := s.applyChanges(b)
		if err != nil {
			errs[i] = err
			continue
		}
		applied = append(applied, t)
	}
	for i := len(applied) - 1; i >= 0; i-- {
		applied[i].rollback()
	}
	return s.st.rev, errs, nil
}

// ApplyEvent replays a batch of the log at its revision, like Store.ApplyEvent (the store must be
// at the revision just before).
func (r *Replica) ApplyEvent(ctx context.Context, ev Event) (uint64, error) {
	return r.s.applyEvent(ctx, ev, true)
}

// Restore makes the store hold exactly f (a snapshot taken at revision rev, see
// Reader.Snapshot) and sets its revision to rev, in one atomic batch (PutDirectory), so a replica
// whose next revision is gone from the log resumes from the snapshot and replays from rev+1.
// rev must be above the store's revision (ErrConflict otherwise); an invalid f changes nothing.
// The events of the revisions skipped are never written: a Watch that needs them ends with an
// error rather than skip them.
//
// Its span (teamgate.Restore, see "Traces" in the package doc) counts the one change of its
// batch, the PutDirectory, as ApplyEvent's counts the event's: a snapshot is restored whole, not
// diffed against the store as Load diffs a file.
func (r *Replica) Restore(ctx context.Context, rev uint64, f *File) (got uint64, err error) {
	ctx, sp := r.s.startWrite(ctx, "teamgate.Restore")
	defer func() { endWrite(sp, 1, got, err) }()
	if cur := r.s.Revision(); rev <= cur {
		return 0, &teamgate.ConflictError{What: "store", Name: "revision " + strconv.FormatUint(cur, 10),
			Reason: "a snapshot of revision " + strconv.FormatUint(rev, 10) + " is not ahead of it"}
	}
	return r.s.apply(ctx, write{at: rev, replica: true}, []Change{PutDirectory{File: *f}})
}

// PutDirectory makes the whole directory equal to a data file: orgs and users the file does not
// name are deleted, and every org it names becomes equal to it (PutFile). It is how a replica
// restores a snapshot.
type PutDirectory struct{ File File }

// Kind names the change in events.
func (PutDirectory) Kind() string { return "put_directory" }

func (c PutDirectory) apply(t *txn) error {
	if err := c.File.validate(); err != nil {
		return err
	}
	named := make(map[string]struct{}, len(c.File.Orgs))
	for _, o := range c.File.Orgs {
		named[o.Name] = struct{}{}
	}
	for _, org := range sortedKeys(t.st.orgs) {
		if _, ok := named[org]; !ok {
			if err := (DeleteOrg{Name: org}).apply(t); err != nil {
				return fmt.Errorf("delete_org %s: %w", org, err)
			}
		}
	}
	if err := (PutFile{File: c.File}).apply(t); err != nil {
		return err
	}
	for _, id := range sortedKeys(t.st.users) {
		if _, ok := c.File.Users[id]; !ok {
			if err := (DeleteUser{ID: id}).apply(t); err != nil {
				return fmt.Errorf("delete_user %s: %w", id, err)
			}
		}
	}
	return nil
}
