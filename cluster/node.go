package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/store"
)

// Options configure New. The zero value is a usable configuration.
type Options struct {
	// Stream is the JetStream stream holding the directory's batches: letters, digits, '-' and
	// '_'. Default "TEAMGATE". Every node of one directory names the same stream; the stream holds
	// nothing else.
	Stream string
	// Replicas is the stream's (and the snapshot bucket's) replica count when this node creates
	// them: 1 for a single NATS server, 3 for a NATS cluster that survives losing a server.
	// Default 1. An existing stream is used as it is.
	Replicas int
	// SnapshotEvery is how often, in revisions, a node that writes a batch landing on a multiple
	// of it also stores a snapshot (Node.Snapshot) for nodes to bootstrap from. Default 10,000;
	// negative: only on demand.
	SnapshotEvery int
	// WriteTimeout bounds how long Apply keeps trying to write a valid batch while other nodes
	// write first or publishing fails (each attempt catches up and validates again); then it
	// gives up with ErrConflict, or with the publish error. Default 30s; the caller's context
	// may end it sooner.
	WriteTimeout time.Duration
	// HealthInterval is how often the node asks the stream for its last revision, for Stats' lag
	// and last contact while no batch arrives. Default 1s.
	HealthInterval time.Duration
	// Logger receives the follower's warnings (restarts after a lost connection). Nil discards.
	Logger *slog.Logger
}

// DefaultStream is the stream a node uses when Options.Stream is empty.
const DefaultStream = "TEAMGATE"

const (
	defaultEvery        = 10_000
	defaultWriteTimeout = 30 * time.Second
	snapshotObject      = "directory"
)

// validName reports whether s is 1 to 64 letters, digits, '-' and '_' (a name both a stream and
// an object store bucket accept).
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Node is one replica of a directory shared over a JetStream stream: its store is the
// materialized view of the stream, and it writes by publishing to the stream (see the package
// doc). It implements authz.Directory (and authz.PersistentCache through its store), so an
// authz.Engine decides against it and writes through it. It is safe for concurrent use.
type Node struct {
	st      *store.Store
	replica *store.Replica
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream
	snaps   jetstream.ObjectStore
	name    string // the stream's name
	subject string // where batches are published
	opts    Options
	log     *slog.Logger

	ctx    context.Context // ends at Close: stops the follower and the health loop
	cancel context.CancelFunc
	wg     sync.WaitGroup // the follower, the health loop and snapshot writers
	snapCh chan struct{}  // asks the snapshot loop for a snapshot (buffer of one)

	writes     chan *request // Apply → the writer (write.go)
	idPrefix   string        // this node's message ids start with it
	publish    publishFunc   // publishes a group; tests wrap it to inject faults
	maxMsgSize atomic.Int64  // the stream's maximum message size (0: the server's payload limit)
	created    time.Time     // when the stream the node follows was created: its identity (follower.go)

	mu          sync.Mutex          // guards the fields below
	applied     uint64              // the revision the follower has applied (the store's, once reported)
	changed     chan struct{}       // closed and replaced when applied, err or closed change
	attempts    map[string]*attempt // the writer's publishes whose outcome is not known yet, by message id
	err         error               // why the follower stopped (a *FollowerError); nil while it runs
	closed      bool
	streamLast  uint64    // the stream's last revision, as last heard
	lastContact time.Time // when the node last heard from the stream
	snapshotRev uint64    // the newest snapshot this node wrote or restored
}

// FollowerError stops a node's follower: the batch of a revision did not decode or apply, or
// the node cannot continue without skipping revisions. The node keeps serving reads at its
// revision; writes and waits for later revisions fail with this error.
type FollowerError struct {
	Revision uint64 // the revision the follower could not apply
	Err      error
}

func (e *FollowerError) Error() string {
	return fmt.Sprintf("cluster: follower stopped at revision %d: %v", e.Revision, e.Err)
}

func (e *FollowerError) Unwrap() error { return e.Err }

// New makes st a node of the directory in the stream opts.Stream on nc, creating the stream
// (file storage, opts.Replicas) and its snapshot bucket when they do not exist, and starts
// following the stream from st's revision. From then on st refuses direct writes
// (store.Replicate). st's revision must not be ahead of the stream (a store of another stream);
// behind the stream's first revision, the node bootstraps from the newest snapshot. New returns
// without waiting to catch up: Sync waits for that. The caller keeps ownership of nc and st and
// closes them after Close.
func New(ctx context.Context, nc *nats.Conn, st *store.Store, opts Options) (*Node, error) {
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	if !validName(opts.Stream) {
		return nil, teamgate.Invalid("stream name", opts.Stream, "letters, digits, '-' and '_' only, at most 64")
	}
	switch {
	case opts.Replicas == 0:
		opts.Replicas = 1
	case opts.Replicas < 0 || opts.Replicas > 5:
		return nil, teamgate.Invalid("stream replicas", strconv.Itoa(opts.Replicas), "must be 1 to 5")
	}
	if opts.SnapshotEvery == 0 {
		opts.SnapshotEvery = defaultEvery
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = defaultWriteTimeout
	}
	if opts.HealthInterval <= 0 {
		opts.HealthInterval = time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if nc == nil || st == nil {
		return nil, teamgate.Invalid("cluster node", "", "needs a NATS connection and a store")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	n := &Node{st: st, nc: nc, js: js, name: opts.Stream, subject: "teamgate." + opts.Stream + ".batch",
		opts: opts, log: log, snapCh: make(chan struct{}, 1), changed: make(chan struct{}),
		writes: make(chan *request, maxGroup), idPrefix: nuid.Next() + ".", attempts: map[string]*attempt{}}
	n.publish = n.publishGroup
	if n.stream, err = n.openStream(ctx); err != nil {
		return nil, err
	}
	if n.snaps, err = n.openSnapshots(ctx); err != nil {
		return nil, err
	}
	info, err := n.stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: stream %s: %w", n.name, err)
	}
	if rev := st.Revision(); rev > info.State.LastSeq {
		return nil, &teamgate.ConflictError{What: "store", Name: "revision " + strconv.FormatUint(rev, 10),
			Reason: fmt.Sprintf("ahead of stream %s, whose last revision is %d: the store belongs to another stream", n.name, info.State.LastSeq)}
	}
	if rev := st.Revision(); rev > 0 {
		if err := n.checkHistory(ctx, rev); err != nil {
			return nil, err
		}
	}
	n.maxMsgSize.Store(int64(info.Config.MaxMsgSize))
	n.created = info.Created
	if n.replica, err = st.Replicate(); err != nil {
		return nil, err
	}
	n.applied, n.streamLast, n.lastContact = st.Revision(), info.State.LastSeq, time.Now()
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.wg.Add(5)
	go n.follow()
	go n.health()
	go n.snapshots()
	go func() { // expiring memberships and grants: revoked through the log like any write
		defer n.wg.Done()
		st.ExpireWith(n.ctx, n.Apply)
	}()
	go n.writer()
	return n, nil
}

// checkHistory refuses a store whose revision rev is not the stream's: its last batch (its
// event at rev) differs from the stream's message rev, so it followed another stream or was
// written on its own. When either is gone (the stream trimmed, the store's events trimmed or
// restored from a snapshot), a store that was a node's is trusted to resume; any other store
// with a history of its own is refused.
func (n *Node) checkHistory(ctx context.Context, rev uint64) error {
	refuse := func(why string) error {
		return &teamgate.ConflictError{What: "store", Name: "revision " + strconv.FormatUint(rev, 10),
			Reason: why + ": start a node on an empty store (or on this stream's snapshot)"}
	}
	var mine, theirs []byte
	if msg, err := n.stream.GetMsg(ctx, rev); err == nil {
		var cs store.Changes
		if json.Unmarshal(msg.Data, &cs) == nil {
			theirs, _ = json.Marshal(cs)
		}
	} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("cluster: stream %s: revision %d: %w", n.name, rev, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if evs, err := n.st.Watch(wctx, rev-1); err == nil {
		select {
		case ev, ok := <-evs:
			_, restored := singleDirectory(ev.Changes)
			if ok && ev.Err == nil && ev.Revision == rev && len(ev.Changes) > 0 && !restored {
				mine, _ = json.Marshal(store.Changes(ev.Changes))
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	switch {
	case mine != nil && theirs != nil && !bytes.Equal(mine, theirs):
		return refuse(fmt.Sprintf("its revision %d is not the batch of stream %s's revision %d: the store has another history", rev, n.name, rev))
	case (mine == nil || theirs == nil) && !n.st.Replicated():
		return refuse(fmt.Sprintf("it was written on its own (it was never a node's) and its revision %d cannot be matched with stream %s", rev, n.name))
	}
	return nil
}

// singleDirectory reports whether a batch is one PutDirectory (a restored snapshot).
func singleDirectory(cs []store.Change) (store.PutDirectory, bool) {
	if len(cs) != 1 {
		return store.PutDirectory{}, false
	}
	d, ok := cs[0].(store.PutDirectory)
	return d, ok
}

// openStream finds the stream or creates it; another node creating it at the same time is fine.
func (n *Node) openStream(ctx context.Context) (jetstream.Stream, error) {
	s, err := n.js.Stream(ctx, n.name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = n.js.CreateStream(ctx, jetstream.StreamConfig{
			Name: n.name, Subjects: []string{n.subject}, Storage: jetstream.FileStorage,
			Replicas: n.opts.Replicas, Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld,
			Description: "teamgate directory: one message per committed batch, sequence = revision",
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = n.js.Stream(ctx, n.name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: stream %s: %w", n.name, err)
	}
	// A stream that takes other subjects would put foreign messages between revisions.
	if subj := s.CachedInfo().Config.Subjects; len(subj) != 1 || subj[0] != n.subject {
		return nil, teamgate.Invalid("stream", n.name, fmt.Sprintf("takes subjects %v; a teamgate stream takes only %s", subj, n.subject))
	}
	return s, nil
}

func (n *Node) openSnapshots(ctx context.Context) (jetstream.ObjectStore, error) {
	bucket := n.name + "_snapshots"
	o, err := n.js.ObjectStore(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		o, err = n.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket, Storage: jetstream.FileStorage,
			Replicas: n.opts.Replicas, Description: "teamgate directory snapshots of stream " + n.name})
		if errors.Is(err, jetstream.ErrBucketExists) {
			o, err = n.js.ObjectStore(ctx, bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: snapshot bucket %s: %w", bucket, err)
	}
	return o, nil
}

// Close stops following the stream and waits for the node's goroutines (at most about 10 s,
// nats.go's bound on recreating a consumer). The store stays open and refuses direct writes,
// also once reopened (store.Detach ends that); the caller closes it and the NATS connection.
// Further calls return ErrClosed.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return teamgate.ErrClosed
	}
	n.closed = true
	n.broadcast()
	n.mu.Unlock()
	n.cancel()
	n.wg.Wait()
	return nil
}

// broadcast wakes every waiter; callers hold mu.
func (n *Node) broadcast() {
	close(n.changed)
	n.changed = make(chan struct{})
}

// Now is the store's clock, which expiries are measured by (authz.Engine.BreakGlass reads it).
func (n *Node) Now() time.Time { return n.st.Now() }

// Store returns the node's store (the materialized view; read it freely, write through the node).
func (n *Node) Store() *store.Store { return n.st }

// View runs fn with a consistent snapshot of the node's store.
func (n *Node) View(fn func(r store.Reader) error) error { return n.st.View(fn) }

// Revision is the revision of the last batch the node has applied.
func (n *Node) Revision() uint64 { return n.st.Revision() }

// WaitRevision blocks until the node has applied rev. It fails with ErrStale when ctx ends first
// (the node may be cut off from NATS or behind), with the follower's error (also ErrStale) when
// the follower stopped before rev, and with ErrClosed once the node is closed.
func (n *Node) WaitRevision(ctx context.Context, rev uint64) error {
	for {
		n.mu.Lock()
		applied, changed, ferr, closed := n.applied, n.changed, n.err, n.closed
		n.mu.Unlock()
		switch {
		case applied >= rev:
			return nil
		case closed:
			return teamgate.ErrClosed
		case ferr != nil:
			return fmt.Errorf("%w: node at revision %d, want %d: %w", teamgate.ErrStale, applied, rev, ferr)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w: node at revision %d, want %d: %w", teamgate.ErrStale, applied, rev, ctx.Err())
		}
	}
}

// Sync waits until the node has applied every batch the stream held when Sync asked it, and
// returns that revision: a read after Sync sees every write acknowledged before it, on any node.
func (n *Node) Sync(ctx context.Context) (uint64, error) {
	info, err := n.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("%w: cluster: stream %s: %w", teamgate.ErrStale, n.name, err)
	}
	n.contact(info.State.LastSeq)
	return info.State.LastSeq, n.WaitRevision(ctx, info.State.LastSeq)
}

// usable fails once the node is closed or its follower stopped: a write could not be applied.
func (n *Node) usable() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.closed:
		return teamgate.ErrClosed
	case n.err != nil:
		return n.err
	}
	return nil
}

// contact records that the stream answered, with its last revision.
func (n *Node) contact(last uint64) {
	n.mu.Lock()
	n.streamLast = max(n.streamLast, last)
	n.lastContact = time.Now()
	n.mu.Unlock()
}

// health asks the stream for its last revision every HealthInterval (Stats).
func (n *Node) health() {
	defer n.wg.Done()
	tk := time.NewTicker(n.opts.HealthInterval)
	defer tk.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-tk.C:
			ctx, cancel := context.WithTimeout(n.ctx, n.opts.HealthInterval)
			info, err := n.stream.Info(ctx)
			cancel()
			if err == nil {
				n.contact(info.State.LastSeq)
			}
		}
	}
}

// Stats describe a node's replication.
type Stats struct {
	// Revision is the revision the node has applied: its reads answer at it.
	Revision uint64
	// StreamRevision is the stream's last revision as the node last heard it.
	StreamRevision uint64
	// Lag is how many revisions the node knows it is behind the stream (StreamRevision - Revision).
	// Cut off from NATS, the node may be further behind than it knows: see LastContact.
	Lag uint64
	// LastContact is when the node last heard from the stream (a batch or an answer).
	LastContact time.Time
	// Connected reports whether the NATS connection is up.
	Connected bool
	// Snapshot is the revision of the newest snapshot the node wrote or restored (0: none).
	Snapshot uint64
	// Err is why the follower stopped (a *FollowerError); nil while it follows.
	Err error
}

// Stats reports the node's revision, what it knows of the stream and whether it follows.
func (n *Node) Stats() Stats {
	rev := n.st.Revision()
	n.mu.Lock()
	defer n.mu.Unlock()
	s := Stats{Revision: rev, StreamRevision: max(n.streamLast, rev), LastContact: n.lastContact,
		Connected: n.nc.IsConnected(), Snapshot: n.snapshotRev, Err: n.err}
	s.Lag = s.StreamRevision - rev
	return s
}

// Simulate reports what a batch would change without applying it, against the node's current
// state (store.Store.Simulate: a read, allowed on a replica), so an authz.Engine on a node has
// Engine.Simulate (authz.Simulator). Sync first to simulate against everything written so far.
func (n *Node) Simulate(ctx context.Context, changes ...store.Change) (*store.Simulation, error) {
	return n.st.Simulate(ctx, changes...)
}

// Persistent reports whether the node's store is on disk (authz.PersistentCache).
func (n *Node) Persistent() bool { return n.st.Persistent() }

// CacheGet reads the store's cache (authz.PersistentCache).
func (n *Node) CacheGet(key string) ([]byte, bool) { return n.st.CacheGet(key) }

// CachePut writes the store's cache (authz.PersistentCache).
func (n *Node) CachePut(key string, val []byte) { n.st.CachePut(key, val) }

// DecodeDeps decodes Deps against the store's stamps (authz.PersistentCache).
func (n *Node) DecodeDeps(data []byte) (store.Deps, []byte, error) { return n.st.DecodeDeps(data) }
