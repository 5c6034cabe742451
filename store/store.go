package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/badgerdir"
	"github.com/teamgate/teamgate/internal/badgerlog"
	"github.com/teamgate/teamgate/internal/quote"
)

// Options configure Open. The zero value opens an in-memory store with logging discarded.
type Options struct {
	// Dir is the Badger directory. Empty means an in-memory Badger (nothing persists).
	Dir string
	// Logger receives Badger's log lines (warnings and errors only by default). Nil discards them.
	Logger *slog.Logger
	// GCInterval is how often value-log garbage collection runs on an on-disk store. Default 10m.
	GCInterval time.Duration
	// NoSync skips the fsync of each write. Default false: an acknowledged write survives a crash.
	NoSync bool
	// Clock is the time expiring team memberships and grants are measured by (see "Expiry" in
	// the package doc). Default: the system clock.
	Clock Clock
	// Registerer, when set, receives the store's metrics: teamgate_store_write_duration_seconds,
	// a histogram of the time each write that commits (Apply, ApplyEvent, Load; not an empty
	// batch or a dry run) took until it was durable and visible, or refused, labelled outcome
	// ok or error. Nothing is registered anywhere else. Default nil: no metrics. A registration
	// that fails (a second open store on the same registry: give each its own labels with
	// prometheus.WrapRegistererWith) makes Open fail with the Registerer's error. Close
	// unregisters them, so the store can be reopened on the same registry.
	Registerer prometheus.Registerer
	// TracerProvider, when set, makes OpenTelemetry spans from its tracer around Apply,
	// ApplyEvent and Load (see "Traces" in the package doc). The store uses the OpenTelemetry
	// API only; the host brings the SDK and passes its provider, or otel.GetTracerProvider() to
	// use the global one. Default nil: no spans, and no global provider is read.
	TracerProvider trace.TracerProvider

	// SnapshotRevisions: an on-disk store writes its membership snapshot in the background
	// once this many revisions were committed after the last one (see "Membership snapshot" in
	// the package doc), so that Open after a crash reads only the records changed since. Default
	// 10,000; negative: never by count. More than the events kept (100,000) is ErrInvalid:
	// Open brings a snapshot up to date from the events after it.
	SnapshotRevisions int
	// SnapshotInterval: an on-disk store also writes the snapshot in the background this long
	// after the last one when anything was committed since. Default 10m; negative: never by
	// time. In-memory stores write none.
	SnapshotInterval time.Duration

	eventsKept uint64     // events kept for Watch; 0 = maxEventsKept (tests make it small)
	test       *testHooks // this package's tests only
}

// Event describes one committed Apply.
type Event struct {
	Revision uint64   `json:"revision"`
	Kind     string   `json:"kind"` // the change kind, or "batch" when several kinds were applied
	Keys     []string `json:"keys"` // the record keys written or deleted, sorted
	// Projects are the affected projects ("org/project"), sorted: those whose record, policy or
	// org defaults changed, and those whose access a team membership change affects (the projects
	// whose effective teams hold the team).
	Projects []string `json:"projects"`
	// Subjects are the users whose access may have changed ("org/user"), sorted: those whose org
	// membership, team membership or grant changed, the members of a renamed or deleted team and
	// every member of a deleted org. An org membership change names the subject only, not every
	// project of the org.
	Subjects []string `json:"subjects"`
	// Changes are the batch's changes, for replicas (ApplyEvent). Nil when they were too many
	// (more than MaxEventEntries) or too large (more than maxEventBytes encoded): a replica must
	// then resync from an Export.
	Changes Changes `json:"changes,omitempty"`
	// Truncated is set when the batch was too large to describe whole: Keys, Projects and
	// Subjects hold only their first MaxEventEntries, or are left empty to keep Changes within
	// maxEventBytes (a consumer must then treat every project and subject of the orgs it follows
	// as affected), or Changes was left out. A load of a data file is one change, the file, and
	// keeps it while the file fits.
	Truncated bool `json:"truncated,omitempty"`
	// Err is set only on the last event of a Watch stream that cannot go on: the next event it
	// needs was trimmed (a *TrimmedError, matching teamgate.ErrStale) or could not be read. Such
	// an event carries nothing else, and the channel closes after it.
	Err error `json:"-"`
}

// TrimmedError reports that a watcher needs events the store no longer keeps (the last
// maxEventsKept revisions are kept): a replica must resync from an Export. It matches
// teamgate.ErrStale.
type TrimmedError struct {
	Next   uint64 // the first revision the watcher needs
	Oldest uint64 // the oldest revision whose event is still kept
}

func (e *TrimmedError) Error() string {
	return fmt.Sprintf("store: the event of revision %d was trimmed (the oldest kept is %d): resync from an Export", e.Next, e.Oldest)
}

// Unwrap makes errors.Is(err, teamgate.ErrStale) true.
func (e *TrimmedError) Unwrap() error { return teamgate.ErrStale }

// MaxEventEntries bounds the keys and the projects an Event lists, so a huge batch still fits
// in one Badger value.
const MaxEventEntries = 10_000

// maxEventBytes bounds an event's encoding below Badger's largest value.
const maxEventBytes = 512 << 10

// Store is the directory. It is safe for concurrent use: reads run in parallel and see a
// consistent state; writes are serialized and atomic.
type Store struct {
	db  *badger.DB
	log *slog.Logger

	// mu is the readers' lock: it guards st, changed, closed and replicated. Writers hold it exclusively
	// only to validate a group of batches and to publish it, never during Badger I/O.
	mu      sync.RWMutex
	st      *state
	changed chan struct{} // closed and replaced after every commit (wakes watchers)
	closed  bool
	// replicated is set by Replicate or by the marker a replica leaves on disk (cluster.go):
	// direct writes are refused. replicaOut: this Store handed out its Replica.
	replicated, replicaOut bool

	stamps   stamps      // what each fact was last written at (stamps.go); bumped under mu
	clock    Clock       // Options.Clock (expiry.go)
	expiries expiryQueue // pending expiries by time (expiryq.go): added to at commit under mu

	persistent bool          // on disk: caches in Badger survive a restart
	eventsKept uint64        // how many revisions' events persist keeps for Watch
	metrics    *writeMetrics // nil without Options.Registerer
	tracer     trace.Tracer  // nil without Options.TracerProvider

	// The commit pipeline (apply): qmu guards queue, leading and closing.
	qmu     sync.Mutex
	queue   []*queued      // writes waiting for the next group commit
	leading bool           // a writer is committing a group; the queue waits for it
	closing bool           // Close has begun: no write is accepted
	writes  sync.WaitGroup // accepted writes not yet answered: Close waits for them

	// unfinished is set when a staged batch passed its commit point but Badger failed while
	// applying it; the next write completes it first. Only the leading writer touches it.
	unfinished bool
	// leftover holds deletes of a failed batch's staging that could not be removed; the next
	// write removes them first. Only the leading writer touches it.
	leftover   []op
	hook       func(step string) error // tests only: runs after each commit of a staged batch
	commitHook func(batches int)       // tests only: runs before each group's Badger commit
	snapChunk  int                     // tests only: the snapshot's chunk size when > 0
	capChunk   int                     // tests only: member ids or stamps a capture copies per step when > 0
	capBetween func()                  // tests only: runs between the steps of a capture's copy, no lock held
	bgSteps    bool                    // tests only: hook runs for background snapshot steps too
	snapshots  bool                    // Open may read the membership snapshot (on disk; tests can say no)

	// snapRev is the revision of the newest membership snapshot on disk that Open may use (0:
	// none); fromSnap: Open installed one. snapDue wakes the background snapshot writer
	// (snapshotLoop) when snapEvery revisions passed since snapRev (0: never by count), or
	// when an event too large to list its keys was committed (snapNow, set by the leading
	// writer), since Open cannot bring a snapshot past it.
	snapRev atomic.Uint64
	snapMu  sync.Mutex // held while a snapshot is written: one writer at a time
	// capMu is held from a capture's start to the end of its copy, taken before the capture
	// enters the commit pipeline: one capture is live at a time (state.snap holds one).
	capMu     sync.Mutex
	fromSnap  bool
	snapDue   chan struct{}
	snapEvery uint64
	snapNow   bool
	// snapCost, when set (tests and benchmarks), receives the longest each background capture
	// held the writers: its start, leading the commit pipeline, or one step of its copy.
	snapCost func(time.Duration)
	// rawWrites: this package's tests wrote records behind the store's back (PutRawRecord), so
	// its state is not the records' and Close writes no snapshot.
	rawWrites atomic.Bool

	stop chan struct{}
	wg   sync.WaitGroup // background goroutines: value-log GC, watchers
	// cacheWrites are CachePut commits Badger has not finished: Close waits for them before it
	// writes the snapshot and closes Badger.
	cacheWrites sync.WaitGroup
}

// badgerNewFile is the text of ristretto's z.NewFile, which Badger wraps without %w.
const badgerNewFile = "Create a new file"

const (
	keyRevision   = "v1/meta/revision"
	keyReplicated = "v1/meta/replicated"
	prefixEvent   = "v1/event/"
	prefixStamp   = "v1/stamp/"
	prefixRecords = "v1/"
	maxEventsKept = 100_000
)

// Open opens (or creates) the store in opts.Dir, or an in-memory store when Dir is empty, and
// loads the directory into memory.
func Open(ctx context.Context, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.SnapshotRevisions > maxEventsKept {
		return nil, teamgate.Invalid("store option SnapshotRevisions", strconv.Itoa(opts.SnapshotRevisions),
			"must be at most "+strconv.Itoa(maxEventsKept)+", the events kept: Open brings a snapshot up to date from the events after it")
	}
	bo := badger.DefaultOptions(opts.Dir).WithLogger(badgerlog.Logger{L: log}).WithLoggingLevel(badger.WARNING)
	if opts.Dir == "" {
		bo = bo.WithInMemory(true)
	} else {
		bo = bo.WithSyncWrites(!opts.NoSync)
	}
	var hook func(string) error
	var commitHook func(int)
	snapChunk, snapshots, bgSteps := 0, opts.Dir != "", false
	if opts.test != nil {
		bo = opts.test.badger(bo)
		hook, commitHook, snapChunk = opts.test.at, opts.test.commit, opts.test.snapChunk
		snapshots = snapshots && !opts.test.noSnapshot
		bgSteps = opts.test.bgSteps
	}
	if opts.Dir != "" {
		if err := badgerdir.Check("store", opts.Dir); err != nil {
			return nil, err
		}
	}
	db, err := badger.Open(bo)
	// A kill between creating a Badger log file (.mem or .vlog) and its first write leaves it
	// empty, and Badger refuses such a file once (dgraph-io/badger#2207): the failed open has
	// initialised it, so opening again succeeds. One retry per kind of log file.
	for retry := 0; retry < 2 && err != nil && strings.Contains(err.Error(), badgerNewFile); retry++ {
		log.Warn("teamgate: reopening Badger after it initialised an empty log file left by a crash", "dir", opts.Dir)
		db, err = badger.Open(bo)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %q: %w", opts.Dir, err)
	}
	if err := checkKeySpace(db, opts.Dir); err != nil {
		_ = db.Close()
		return nil, err
	}
	s := &Store{db: db, log: log, changed: make(chan struct{}), stop: make(chan struct{}), persistent: opts.Dir != "", eventsKept: opts.eventsKept, hook: hook, commitHook: commitHook, snapChunk: snapChunk, snapshots: snapshots, bgSteps: bgSteps}
	if s.eventsKept == 0 {
		s.eventsKept = maxEventsKept
	}
	s.clock = opts.Clock
	if s.clock == nil {
		s.clock = systemClock{}
	}
	s.stamps.clock = s.clock
	if err := s.load(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	if opts.Registerer != nil {
		if s.metrics, err = newWriteMetrics(opts.Registerer); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	if opts.TracerProvider != nil {
		s.tracer = opts.TracerProvider.Tracer(tracerName)
	}
	if err := s.startExpiry(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	if opts.Dir != "" {
		every := opts.GCInterval
		if every <= 0 {
			every = 10 * time.Minute
		}
		s.wg.Add(1)
		go s.gcLoop(every)
		s.startSnapshots(opts.SnapshotRevisions, opts.SnapshotInterval)
	}
	return s, nil
}

// checkKeySpace refuses a Badger directory that holds data of another kind (a decision log, another
// program's): a key outside the store's prefix while it has no revision. Read as a store it would
// be an empty directory, and the first write would mix a store into it.
func checkKeySpace(db *badger.DB, dir string) error {
	var other []byte
	err := db.View(func(txn *badger.Txn) error {
		switch _, err := txn.Get([]byte(keyRevision)); {
		case err == nil:
			return nil // a store
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		// The store's keys all begin with prefixRecords ("v1/"): look before them and after them.
		if it.Rewind(); it.Valid() && !strings.HasPrefix(string(it.Item().Key()), prefixRecords) {
			other = it.Item().KeyCopy(nil)
			return nil
		}
		after := []byte(prefixRecords)
		after[len(after)-1]++
		if it.Seek(after); it.Valid() {
			other = it.Item().KeyCopy(nil)
		}
		return nil
	})
	switch {
	case err != nil:
		return fmt.Errorf("store: open %q: %w", dir, err)
	case other != nil:
		return teamgate.Invalid("store", dir, fmt.Sprintf("the directory holds other data, not a teamgate store (key %q: a decision log?)", quote.Cut(string(other))))
	}
	return nil
}

// Close refuses new writes, waits for those already accepted to be answered, stops background
// work, waits for it and closes Badger. Further calls return ErrClosed.
func (s *Store) Close() error {
	s.qmu.Lock()
	if s.closing {
		s.qmu.Unlock()
		return teamgate.ErrClosed
	}
	s.closing = true
	s.qmu.Unlock()
	s.writes.Wait()
	s.mu.Lock()
	s.closed = true
	s.stamps.closed.Store(true)
	s.stamps.epoch.moveAll() // after closing: see Epoch
	close(s.stop)
	close(s.changed)
	s.mu.Unlock()
	s.wg.Wait() // the background snapshot writer included: a write it had begun is stopped
	s.cacheWrites.Wait()
	s.metrics.unregister()
	if s.snapshotDue() {
		// Nothing writes any more: st is the records' state at st.rev.
		if err := s.writeSnapshot(s.capture(), nil); err != nil {
			s.log.Warn("teamgate: writing the membership snapshot failed; the next Open reads the records", "error", err)
		}
	}
	return s.db.Close()
}

// snapshotDue reports whether a membership snapshot of the current state is to be written: on
// disk, with something in it, every batch fully written to its keys, and not when the newest
// snapshot is of this revision already. It runs while nothing writes (Close, or leading the
// commit pipeline).
func (s *Store) snapshotDue() bool {
	switch {
	case !s.persistent || s.st.rev == 0 || s.unfinished || len(s.leftover) > 0 || s.rawWrites.Load():
		return false
	case s.snapRev.Load() == s.st.rev:
		return false
	}
	return true
}

// startSnapshots starts the background snapshot writer of an on-disk store, with
// Options.SnapshotRevisions and Options.SnapshotInterval.
func (s *Store) startSnapshots(revisions int, interval time.Duration) {
	if revisions == 0 {
		revisions = defaultSnapshotRevisions
	}
	if interval == 0 {
		interval = defaultSnapshotInterval
	}
	if revisions < 0 && interval < 0 {
		return
	}
	if revisions > 0 {
		s.snapEvery = uint64(revisions)
	}
	s.snapDue = make(chan struct{}, 1)
	s.wg.Add(1)
	go s.snapshotLoop(interval)
}

// snapshotLoop writes the membership snapshot when it is due (snapDue) or every interval (> 0)
// when anything was committed since the last. It takes a copy of the state while leading the
// commit pipeline, so no write is in flight and the copy is of one revision (readers do not
// wait; writers wait for the copy only), then serializes and writes it while writes go on.
func (s *Store) snapshotLoop(interval time.Duration) {
	defer s.wg.Done()
	var tick <-chan time.Time
	if interval > 0 {
		tk := time.NewTicker(interval)
		defer tk.Stop()
		tick = tk.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-s.snapDue:
		case <-tick:
		}
		var live *liveCapture
		var held time.Duration
		start := time.Now()
		s.capMu.Lock()
		s.enqueue(&queued{ctx: context.Background(), run: func() {
			if s.snapshotDue() {
				t0 := time.Now()
				live = s.beginCapture()
				held = time.Since(t0)
			}
		}})
		if live == nil {
			s.capMu.Unlock()
			continue // closing, or nothing new
		}
		c, longest, err := s.copyCapture(live, s.stop)
		s.capMu.Unlock()
		if errors.Is(err, errSnapshotStopped) {
			return
		}
		held = max(held, longest)
		if s.snapCost != nil {
			s.snapCost(held)
		}
		switch err := s.writeSnapshot(c, s.stop); {
		case errors.Is(err, errSnapshotStopped):
			return
		case err != nil:
			s.log.Warn("teamgate: writing the membership snapshot in the background failed; Open after a crash reads more records", "error", err)
		default:
			s.log.Info("teamgate: membership snapshot written", "revision", c.rev, "took", time.Since(start), "writes_held", held)
		}
		// At most half the time writing snapshots (a bulk load, whose events are too large to
		// list their keys, makes every revision due).
		select {
		case <-s.stop:
			return
		case <-time.After(time.Since(start)):
		}
	}
}

func (s *Store) gcLoop(every time.Duration) {
	defer s.wg.Done()
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tk.C:
			for s.db.RunValueLogGC(0.5) == nil {
			}
		}
	}
}

// Persistent reports whether the store is on disk (caches kept in Badger then survive a restart;
// in memory they would only duplicate the engine's in-memory tiers).
func (s *Store) Persistent() bool { return s.persistent }

// Revision returns the revision of the last committed write (0 for an empty store). It takes no
// lock, and a write publishes its revision after bumping its stamps: a Deps that is current
// after Revision returned R holds at R.
func (s *Store) Revision() uint64 { return s.stamps.epoch.Revision() }

// Apply validates and commits changes as one atomic batch and returns the new revision. On any
// error nothing changes: neither memory nor disk. An empty batch returns the current revision.
// It returns once the batch is durable and visible to every reader; concurrent Applies share
// one Badger commit (see "Writes" in the package doc).
func (s *Store) Apply(ctx context.Context, changes ...Change) (uint64, error) {
	ctx, sp := s.startWrite(ctx, "teamgate.Apply")
	rev, err := s.apply(ctx, write{}, changes)
	endWrite(sp, len(changes), rev, err)
	return rev, err
}

// queued is a write waiting in the commit pipeline.
type queued struct {
	ctx       context.Context
	run       func() // not a write: run while leading the pipeline (nothing writes meanwhile)
	w         write  // how it applies (cluster.go)
	changes   []Change
	replicate bool // Replicate, not a batch: from here on only the Replica writes

	rev  uint64 // the answer, set by the writer that commits it
	err  error
	done bool          // rev and err are set; written before wake is signalled
	wake chan struct{} // one signal: the answer is ready, or this writer leads the next group
}

// apply is Apply, shaped by w (cluster.go): the revision it must follow, the revision it
// commits at, whether the Replica writes. An empty batch is answered at once from the published
// state; the others go through the commit pipeline (enqueue).
func (s *Store) apply(ctx context.Context, w write, changes []Change) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if len(changes) == 0 {
		return s.checkNow(w)
	}
	start := time.Now()
	q := &queued{ctx: ctx, w: w, changes: changes}
	s.enqueue(q)
	s.metrics.observe(start, q.err)
	return q.rev, q.err
}

// checkNow answers an empty batch against the published state, under the read lock.
func (s *Store) checkNow(w write) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, teamgate.ErrClosed
	}
	if err := s.admit(w, s.st.rev); err != nil {
		return 0, err
	}
	return s.st.rev, nil
}

// enqueue runs q through the commit pipeline and returns once it is answered.
//
// Writes queue; one writer at a time leads: it takes the whole queue (itself included) and
// commits it as a group (commitGroup), answers the group's writers, and hands the lead to the
// first writer queued meanwhile. So a writer waits for at most the commit in flight and its own.
func (s *Store) enqueue(q *queued) {
	q.wake = make(chan struct{}, 1)
	s.qmu.Lock()
	if s.closing {
		s.qmu.Unlock()
		q.err = teamgate.ErrClosed
		return
	}
	s.writes.Add(1) // under qmu, so Close cannot be waiting already
	defer s.writes.Done()
	s.queue = append(s.queue, q)
	lead := !s.leading
	s.leading = true
	s.qmu.Unlock()
	if !lead {
		<-q.wake
		if q.done {
			return
		}
	}
	s.qmu.Lock()
	group := s.queue
	s.queue = nil
	s.qmu.Unlock()
	writes := make([]*queued, 0, len(group))
	for _, o := range group {
		if o.run != nil {
			o.run()
		} else {
			writes = append(writes, o)
		}
	}
	if len(writes) > 0 {
		s.commitGroup(writes)
	}
	for _, o := range group {
		o.done = true
		if o != q {
			o.wake <- struct{}{}
		}
	}
	s.qmu.Lock()
	if len(s.queue) == 0 {
		s.leading = false
		s.qmu.Unlock()
	} else {
		next := s.queue[0]
		s.qmu.Unlock()
		next.wake <- struct{}{}
	}
}

// batch is a valid write of a group: its txn, revision and event.
type batch struct {
	q      *queued
	t      *txn
	ev     Event
	stamps []string // the stamp keys it bumps
}

// commitGroup validates each write of group in order against the state its predecessors leave,
// commits the valid ones in one Badger transaction, and publishes them; it sets every write's
// answer. Readers are locked out only while the batches are validated and while they are
// published, never during the Badger commit: validated batches are rolled back out of memory
// (their records serialized first) and redone once durable.
func (s *Store) commitGroup(group []*queued) {
	batches, records, err := s.prepare(group)
	if len(batches) == 0 {
		return
	}
	if err == nil {
		for _, b := range batches {
			b.stamps = b.t.stampKeys()
		}
		err = s.persist(batches, records)
	}
	if err != nil {
		for _, b := range batches {
			b.q.err = err
		}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resort := map[*orgData]struct{}{}
	joined := map[*orgData]map[string]struct{}{}
	for _, b := range batches {
		b.t.redo()
		for o := range b.t.resort {
			resort[o] = struct{}{}
		}
		s.expiries.add(s.st, b.t.expiring)
		for o, users := range b.t.joined {
			if joined[o] == nil {
				joined[o] = map[string]struct{}{}
			}
			maps.Copy(joined[o], users)
		}
	}
	for o := range resort {
		o.resort()
	}
	for o, users := range joined {
		o.relist(users)
	}
	var moved epochSet
	for _, b := range batches {
		for _, sk := range b.stamps {
			moved.add(s.stamps.bump(sk, b.ev.Revision))
		}
		b.q.rev = b.ev.Revision
	}
	last := batches[len(batches)-1].ev.Revision
	s.st.rev = last
	// Published after the stamps: whoever reads rev without the lock (Revision) and then finds
	// a Deps current knows that Deps holds at rev.
	s.stamps.epoch.rev.Store(last)
	// And the epochs of the groups written move once more: whoever reads a value written after
	// this reads rev (or later) next, so an entry validated in that epoch is labelled no older
	// than its state (see Epoch).
	s.stamps.epoch.moveSet(&moved)
	close(s.changed)
	s.changed = make(chan struct{})
	if s.snapDue != nil && (s.snapNow || s.snapEvery > 0 && last >= s.snapRev.Load()+s.snapEvery) {
		s.snapNow = false
		select {
		case s.snapDue <- struct{}{}:
		default: // already due
		}
	}
}

// prepare validates the group's writes under the write lock (an invalid one gets its error and
// is left out), serializes the records the valid batches wrote, and rolls them all back out of
// memory before releasing the lock. A Replicate in the group takes effect at its place in it.
func (s *Store) prepare(group []*queued) ([]*batch, []op, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rev := s.st.rev
	var batches []*batch
	for _, q := range group {
		if q.replicate {
			q.err = s.replicateNow()
			continue
		}
		b, err := s.validate(q, rev)
		if err != nil {
			q.err = err
			continue
		}
		rev = b.ev.Revision
		batches = append(batches, b)
	}
	if len(batches) == 0 {
		return nil, nil, nil
	}
	records, err := s.records(batches)
	for i := len(batches) - 1; i >= 0; i-- {
		batches[i].t.rollback()
	}
	return batches, records, err
}

// admit checks that w may write to the store at revision rev: the guard of a replicated store
// (cluster.go), and the revision a replayed event follows.
func (s *Store) admit(w write, rev uint64) error {
	if err := s.guard(w); err != nil {
		return err
	}
	if w.after != nil && rev != *w.after {
		return &teamgate.ConflictError{What: "store", Name: "revision " + strconv.FormatUint(rev, 10),
			Reason: "the event follows revision " + strconv.FormatUint(*w.after, 10)}
	}
	return nil
}

// applyChanges applies changes to the state and leaves them applied. On error nothing changes.
func (s *Store) applyChanges(changes []Change) (*txn, error) {
	t := newTxn(s.st, false)
	if err := t.applyAll(changes); err != nil {
		return nil, err
	}
	return t, nil
}

// applyAll applies changes in order and leaves them applied; on error it rolls back and returns
// the error Apply reports (naming the change in a batch of several).
func (t *txn) applyAll(changes []Change) error {
	for i, c := range changes {
		if c == nil {
			t.rollback()
			return teamgate.Invalid("change", fmt.Sprint(i), "nil change")
		}
		if err := c.apply(t); err != nil {
			t.rollback()
			if len(changes) > 1 {
				return fmt.Errorf("change %d (%s): %w", i, c.Kind(), err)
			}
			return err
		}
		if !slices.Contains(t.kinds, c.Kind()) {
			t.kinds = append(t.kinds, c.Kind())
		}
	}
	return nil
}

// validate applies q's changes to the state, which is at revision rev, leaves them applied and
// returns the batch, at the next revision (or the one q's write names). On error nothing
// changes.
func (s *Store) validate(q *queued, rev uint64) (*batch, error) {
	if err := q.ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.admit(q.w, rev); err != nil {
		return nil, err
	}
	t, err := s.applyChanges(q.changes)
	if err != nil {
		return nil, err
	}
	rev++
	if q.w.at != 0 {
		rev = q.w.at
	}
	return &batch{q: q, t: t, ev: t.event(rev, q.changes)}, nil
}

// event is the Event of the batch t applied at rev.
func (t *txn) event(rev uint64, changes []Change) Event {
	for p := range t.projects {
		t.reached[p] = struct{}{}
	}
	ev := Event{Revision: rev, Kind: t.kinds[0], Keys: eventList(t.dirty), Projects: eventList(t.reached),
		Subjects: eventList(t.subjects), Changes: slices.Clone(changes)}
	if len(t.kinds) > 1 {
		ev.Kind = "batch"
	}
	if len(ev.Keys) > MaxEventEntries || len(ev.Projects) > MaxEventEntries || len(ev.Subjects) > MaxEventEntries || len(ev.Changes) > MaxEventEntries {
		ev.Truncated = true
		ev.Keys = ev.Keys[:min(len(ev.Keys), MaxEventEntries)]
		ev.Projects = ev.Projects[:min(len(ev.Projects), MaxEventEntries)]
		ev.Subjects = ev.Subjects[:min(len(ev.Subjects), MaxEventEntries)]
		if len(ev.Changes) > MaxEventEntries {
			ev.Changes = nil
		}
	}
	return ev
}

// records serializes the records the batches wrote, as the state holds them after the last one,
// in key order (nil for a deleted record).
func (s *Store) records(batches []*batch) ([]op, error) {
	dirty := map[string]struct{}{}
	for _, b := range batches {
		for k := range b.t.dirty {
			dirty[k] = struct{}{}
		}
	}
	ops := make([]op, 0, len(dirty))
	for _, k := range sortedKeys(dirty) {
		v, err := s.st.record(k)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op{k, v})
	}
	return ops, nil
}

// ApplyEvent applies another store's event to this one, the way a replica follows a primary's
// Watch: the store must be at the revision just before the event's (else ErrConflict, nothing
// changes), and the event must carry its changes (an event without them is ErrInvalid: resync
// the replica from an Export; an event carrying a Watch error returns that error). Both stores
// then hold the same state at the same revision.
func (s *Store) ApplyEvent(ctx context.Context, ev Event) (uint64, error) {
	return s.applyEvent(ctx, ev, false)
}

// applyEvent is ApplyEvent; replica tells whether the Replica writes (cluster.go).
func (s *Store) applyEvent(ctx context.Context, ev Event, replica bool) (rev uint64, err error) {
	ctx, sp := s.startWrite(ctx, "teamgate.ApplyEvent")
	defer func() { endWrite(sp, len(ev.Changes), rev, err) }()
	if ev.Err != nil {
		return 0, ev.Err
	}
	if len(ev.Changes) == 0 || ev.Revision == 0 {
		return 0, teamgate.Invalid("event", strconv.FormatUint(ev.Revision, 10), "carries no changes to replay; resync the replica from an Export")
	}
	prev := ev.Revision - 1
	return s.apply(ctx, write{after: &prev, replica: replica}, ev.Changes)
}

// persist writes a group's records, the stamps and events of each batch, and the last revision
// to Badger atomically: in one transaction when they fit, else staged behind a commit marker
// (see the package doc on atomicity). It returns once the group is durable (the commit point
// passed). Only the leading writer runs it, with no lock held.
func (s *Store) persist(batches []*batch, records []op) error {
	if s.commitHook != nil {
		s.commitHook(len(batches))
	}
	if err := s.discardLeftover(); err != nil {
		return err
	}
	if s.unfinished {
		if err := s.recoverPending(); err != nil {
			return err
		}
		s.unfinished = false
	}
	// A key written by several batches keeps its place and takes the last value.
	ops := make([]op, 0, len(records)+4*len(batches)+1)
	at := map[string]int{}
	add := func(o op) {
		if i, ok := at[o.key]; ok {
			ops[i].val = o.val
			return
		}
		at[o.key] = len(ops)
		ops = append(ops, o)
	}
	for _, o := range records {
		add(o)
	}
	events := make([]string, 0, len(batches))
	var last uint64
	for _, b := range batches {
		ev := b.ev
		last = ev.Revision
		rev := binary.BigEndian.AppendUint64(nil, ev.Revision)
		for _, sk := range b.stamps {
			add(op{prefixStamp + sk, rev})
		}
		evb, truncated, err := encodeEvent(ev)
		if err != nil {
			return err
		}
		s.snapNow = s.snapNow || truncated
		events = append(events, eventKey(ev.Revision))
		add(op{events[len(events)-1], evb})
		if ev.Revision > s.eventsKept {
			add(op{eventKey(ev.Revision - s.eventsKept), nil})
		}
	}
	add(op{keyRevision, binary.BigEndian.AppendUint64(nil, last)})
	if fits, err := s.commitOne(ops); fits || err != nil {
		return err
	}
	return s.commitStaged(last, ops, events)
}

// encodeEvent encodes ev within maxEventBytes: whole if it fits, else without its lists (the
// changes are what a replica needs; the lists only narrow what a consumer must treat as
// affected), else without its changes too.
func encodeEvent(ev Event) (evb []byte, truncated bool, err error) {
	evb, err = json.Marshal(ev)
	if err != nil {
		return nil, false, fmt.Errorf("store: encode event: %w", err)
	}
	truncated = ev.Truncated
	if len(evb) > maxEventBytes && len(ev.Changes) > 0 {
		short := ev
		short.Truncated, short.Keys, short.Projects, short.Subjects = true, []string{}, []string{}, []string{}
		if b, err := json.Marshal(short); err == nil && len(b) <= maxEventBytes {
			evb, truncated = b, true
		}
	}
	if len(evb) > maxEventBytes {
		ev.Truncated, ev.Changes = true, nil
		evb, _ = json.Marshal(ev)
		truncated = true
	}
	return evb, truncated, nil
}

// eventList is a sorted event field, [] rather than null in JSON when empty.
func eventList(set map[string]struct{}) []string {
	if len(set) == 0 {
		return []string{}
	}
	return sortedKeys(set)
}

func eventKey(rev uint64) string { return fmt.Sprintf("%s%020d", prefixEvent, rev) }

// record serializes the current value of a record key, or returns nil when it no longer exists.
func (st *state) record(key string) ([]byte, error) {
	parts := strings.Split(strings.TrimPrefix(key, prefixRecords), "/")
	org := func() *orgData { return st.orgs[parts[1]] }
	var v any
	switch parts[0] {
	case "org":
		if o := org(); o != nil {
			v = o.org
		}
	case "member":
		if o := org(); o != nil {
			if _, r := o.members.role(parts[2]); r != 0 {
				return []byte(r.orgRole()), nil
			}
		}
	case "team":
		if o := org(); o != nil {
			if td, ok := o.teams[parts[2]]; ok {
				v = td.team
			}
		}
	case "tmember":
		if o := org(); o != nil {
			if td, ok := o.teams[parts[2]]; ok {
				if r := o.teamRole(td, parts[3]); r != 0 {
					return encodeTeamMember(r.teamRole(), o.teamExpiry(td, parts[3])), nil
				}
			}
		}
	case "project":
		if o := org(); o != nil {
			if pd := o.project(parts[2]); pd != nil {
				v = pd.p
			}
		}
	case "policy":
		if o := org(); o != nil {
			if pd, ok := o.policies[parts[2]]; ok {
				v = pd.p
			}
		}
	case "user":
		if u, ok := st.users[parts[1]]; ok {
			v = u
		}
	default:
		return nil, fmt.Errorf("store: unknown record key %q", key)
	}
	if v == nil {
		return nil, nil
	}
	return json.Marshal(v)
}

// load completes or discards a staged batch a crash left behind (recoverPending), then reads
// every record from Badger into memory and rebuilds the indexes.
//
// Records replay as changes through the same validating apply as a write, in dependency order
// (a corrupt record fails Open, naming its key); events and caches are never read here. Three
// things run at once: the stamps load on their own; the records of each kind are read and
// decoded by one goroutine and applied in order by another (replay); the team memberships, the
// bulk of a large directory, are read, validated and stored by one worker per CPU
// (loadTeamMembers). When the membership snapshot is usable (readSnapshot), the member, team
// membership and stamp records are not read, except those the events after it name
// (readDelta): its tables are installed instead, and those records applied to them; if they
// disagree with the other records, the records are read alone.
func (s *Store) load(ctx context.Context) error {
	if err := s.recoverPending(); err != nil {
		return fmt.Errorf("store: load: %w", err)
	}
	var st *state
	var rev uint64
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyRevision))
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			if err := item.Value(func(v []byte) error { rev = binary.BigEndian.Uint64(v); return nil }); err != nil {
				return err
			}
		}
		switch _, err := txn.Get([]byte(keyReplicated)); {
		case err == nil:
			s.replicated = true
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		var snap *memberSnapshot
		var delta *snapDelta
		if s.snapshots {
			var why error
			snap, delta, why = s.readSnapshot(txn, rev)
			switch {
			case errors.Is(why, errSnapshotStale):
				s.log.Info("teamgate: membership snapshot is out of date; loading from the records", "reason", why)
			case why != nil:
				s.log.Warn("teamgate: membership snapshot unusable; loading from the records", "reason", why)
			}
		}
		st, err = s.loadAll(ctx, txn, snap, delta)
		if err != nil && snap != nil && ctx.Err() == nil {
			// The records decide: whatever the snapshot disagreed with, they are read alone.
			s.log.Warn("teamgate: membership snapshot disagrees with the records; loading from the records", "reason", err)
			snap = nil
			s.stamps.reset()
			st, err = s.loadAll(ctx, txn, nil, nil)
		}
		if err == nil && snap != nil {
			s.fromSnap = true
			s.snapRev.Store(delta.rev)
			if delta.rev < rev {
				s.log.Info("teamgate: opened from the membership snapshot and the records changed after it", "snapshot", delta.rev, "revision", rev, "records", len(delta.records), "stamps", len(delta.stamps))
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("store: load: %w", err)
	}
	st.rev = rev
	for _, o := range st.orgs {
		o.resort()
		o.members.list = newNameList(o.members.sorted())
	}
	s.expiries.reset(st)
	s.st = st
	s.stamps.epoch.rev.Store(rev)
	return nil
}

// loadAll loads the state and the stamps, at once: the stamps from the snapshot or their
// records, while loadRecords reads the other records.
func (s *Store) loadAll(ctx context.Context, txn *badger.Txn, snap *memberSnapshot, delta *snapDelta) (*state, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stamped := make(chan error, 1)
	go func() {
		if snap != nil {
			stamped <- snap.installStamps(&s.stamps, delta)
			return
		}
		stamped <- s.scan(ctx, txn, prefixStamp, func(k, v []byte) error {
			s.stamps.load(string(k[len(prefixStamp):]), binary.BigEndian.Uint64(v))
			return nil
		})
	}()
	st, err := s.loadRecords(ctx, txn, snap, delta)
	if err != nil {
		cancel()
	}
	if e := <-stamped; err == nil {
		err = e
	}
	return st, err
}

// loadRecords reads the records into a new state: orgs, members, policies, teams, team
// memberships, projects, users. With a snapshot, the member and team membership records are
// not read: the snapshot's tables are installed in their place.
func (s *Store) loadRecords(ctx context.Context, txn *badger.Txn, snap *memberSnapshot, delta *snapDelta) (*state, error) {
	st := newState()
	t := newTxn(st, true)
	var err error
	if snap == nil {
		err = s.replay(ctx, txn, t, "org", "member", "policy", "team")
		if err == nil {
			err = s.loadTeamMembers(ctx, txn, t)
		}
	} else {
		err = s.replay(ctx, txn, t, "org", "policy", "team")
		if err == nil {
			err = snap.install(st, runtime.GOMAXPROCS(0), delta)
		}
	}
	if err == nil {
		err = s.replay(ctx, txn, t, "project", "user")
	}
	return st, err
}

// replay applies the records of the given kinds, in order: this goroutine reads and decodes
// while another applies, batch by batch.
func (s *Store) replay(ctx context.Context, txn *badger.Txn, t *txn, kinds ...string) error {
	type record struct {
		key string
		c   Change
	}
	batches := make(chan []record, 8)
	failed := make(chan struct{})
	applied := make(chan error, 1)
	go func() {
		var err error
		for b := range batches {
			for _, r := range b {
				if err != nil {
					break
				}
				if e := r.c.apply(t); e != nil {
					err = fmt.Errorf("store: load record %s: %w", r.key, e)
					close(failed)
				}
			}
		}
		applied <- err
	}()
	batch := make([]record, 0, 1024)
	send := func() error {
		select {
		case batches <- batch:
			batch = make([]record, 0, 1024)
			return nil
		case <-failed:
			return errors.New("apply failed")
		}
	}
	var readErr error
	for _, kind := range kinds {
		readErr = s.scan(ctx, txn, prefixRecords+kind+"/", func(k, v []byte) error {
			key := string(k)
			c, err := decodeRecord(key, v)
			if err != nil {
				return err
			}
			batch = append(batch, record{key, c})
			if len(batch) == cap(batch) {
				return send()
			}
			return nil
		})
		if readErr != nil {
			break
		}
	}
	if readErr == nil && len(batch) > 0 {
		readErr = send()
	}
	close(batches)
	if err := <-applied; err != nil {
		return err // the apply error explains a read stopped by it
	}
	return readErr
}

// loadTeamMembers loads the team membership records with one worker per CPU. The key space is
// cut into runs of whole teams, in key order, that the workers take in turn; each worker
// validates a record exactly as PutTeamMember does (resolve, which only reads) and stores it in
// its team's member map, which no other worker writes. The first run starts at the prefix
// itself, so a record of a missing org or team falls in a run too and fails Open. The members'
// team lists are built from the teams' maps at the end.
func (s *Store) loadTeamMembers(ctx context.Context, txn *badger.Txn, t *txn) error {
	const prefix = prefixRecords + "tmember/"
	var teams []string
	for org, o := range t.st.orgs {
		for team := range o.teams {
			teams = append(teams, keyTeamMember(org, team, ""))
		}
	}
	slices.Sort(teams)
	workers := runtime.GOMAXPROCS(0)
	perRun := max(1, len(teams)/(16*workers))
	starts := []string{prefix}
	for i := perRun; i < len(teams); i += perRun {
		starts = append(starts, teams[i])
	}
	runs := make(chan int, len(starts))
	for i := range starts {
		runs <- i
	}
	close(runs)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var expiring loadedExpiries
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := loadRuns(ctx, txn, t, prefix, starts, runs, &expiring); err != nil {
				cancel(err)
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	for _, o := range t.st.orgs {
		o.indexMemberTeams(workers)
	}
	expiring.store()
	return nil
}

// loadRuns is a worker of loadTeamMembers: it loads the runs it takes until none is left.
func loadRuns(ctx context.Context, txn *badger.Txn, t *txn, prefix string, starts []string, runs <-chan int, expiring *loadedExpiries) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
	defer it.Close()
	n := 0
	for i := range runs {
		var end []byte
		if i+1 < len(starts) {
			end = []byte(starts[i+1])
		}
		for it.Seek([]byte(starts[i])); it.Valid(); it.Next() {
			item := it.Item()
			if end != nil && bytes.Compare(item.Key(), end) >= 0 {
				break
			}
			if n++; n%1024 == 0 && ctx.Err() != nil {
				return nil // another worker failed: its error is the one reported
			}
			key := string(item.Key())
			err := item.Value(func(v []byte) error {
				c, err := decodeTeamMember(key, v)
				if err != nil {
					return err
				}
				o, td, id, role, err := c.resolve(t)
				if err != nil {
					return fmt.Errorf("store: load record %s: %w", key, err)
				}
				td.members[id] = role
				if !c.ExpiresAt.IsZero() {
					expiring.add(o, td, id, c.ExpiresAt)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// scan calls fn for every key under prefix, in key order. The key and the value are Badger's
// buffers, valid only until fn returns.
func (s *Store) scan(ctx context.Context, txn *badger.Txn, prefix string, fn func(k, v []byte) error) error {
	// No prefetching: records are small values stored with their keys, and copying each one in
	// Badger's prefetch costs more than reading it in place.
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		item := it.Item()
		if err := item.Value(func(v []byte) error { return fn(item.Key(), v) }); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// decodeRecord turns a stored record back into the change that writes it. Role names are the
// package's own strings, so a loaded membership holds no copy of them.
func decodeRecord(key string, val []byte) (Change, error) {
	kind, rest, _ := strings.Cut(strings.TrimPrefix(key, prefixRecords), "/")
	next := func() string {
		var p string
		p, rest, _ = strings.Cut(rest, "/")
		return p
	}
	c, err := Change(nil), errors.New("unknown key")
	switch n := strings.Count(rest, "/") + 1; {
	case kind == "member" && n == 2:
		return PutMember{Org: next(), User: next(), Role: knownRole(val)}, nil
	case kind == "tmember" && n == 3:
		return decodeTeamMember(key, val)
	case kind == "org" && n == 1:
		c, err = decodeJSON(val, func(o Org) Change { return PutOrg{Org: o} })
	case kind == "team" && n == 2:
		c, err = decodeJSON(val, func(t Team) Change { return PutTeam{Team: t} })
	case kind == "project" && n == 2:
		c, err = decodeJSON(val, func(p Project) Change { return PutProject{Project: p} })
	case kind == "policy" && n == 2:
		c, err = decodeJSON(val, func(p Policy) Change { return PutPolicy{Policy: p} })
	case kind == "user" && n == 1:
		c, err = decodeJSON(val, func(u User) Change { return PutUser{User: u} })
	}
	if err != nil {
		return nil, fmt.Errorf("store: corrupt record %s: %w", key, err)
	}
	return c, nil
}

// decodeTeamMember decodes a team membership record (Open reads millions: no Change is boxed).
func decodeTeamMember(key string, val []byte) (PutTeamMember, error) {
	rest, ok := strings.CutPrefix(key, prefixRecords+"tmember/")
	org, rest, ok1 := strings.Cut(rest, "/")
	team, user, ok2 := strings.Cut(rest, "/")
	if !ok || !ok1 || !ok2 || strings.IndexByte(user, '/') >= 0 {
		return PutTeamMember{}, fmt.Errorf("store: corrupt record %s: unknown key", key)
	}
	role, exp, err := splitTeamMember(val)
	if err != nil {
		return PutTeamMember{}, fmt.Errorf("store: corrupt record %s: %w", key, err)
	}
	return PutTeamMember{Org: org, Team: team, User: user, Role: knownRole(role), ExpiresAt: exp}, nil
}

// decodeJSON decodes a JSON record and wraps it in the change that writes it.
func decodeJSON[T any](val []byte, put func(T) Change) (Change, error) {
	var v T
	if err := json.Unmarshal(val, &v); err != nil {
		return nil, err
	}
	return put(v), nil
}

// knownRole returns the package's string for a role name, or a copy of an unknown one (which
// validation then refuses).
func knownRole(b []byte) string {
	for _, r := range orgRoles {
		if string(r) == string(b) {
			return string(r)
		}
	}
	for _, r := range teamRoles {
		if string(r) == string(b) {
			return string(r)
		}
	}
	return string(b)
}

// Watch streams the events after fromRevision: first those still kept in Badger, then new ones
// as they commit. The channel closes when ctx ends or the store closes.
//
// Events are kept for the last maxEventsKept revisions. A fromRevision whose next event has
// already been trimmed fails at once with a *TrimmedError (teamgate.ErrStale). A watcher that
// falls so far behind that the events it still needs are trimmed while it streams gets a last
// Event whose Err is that *TrimmedError, then the channel closes: a stream never skips a
// revision silently. ApplyEvent returns that error, so a replica that passes every event on
// stops there and must resync from an Export.
func (s *Store) Watch(ctx context.Context, fromRevision uint64) (<-chan Event, error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, teamgate.ErrClosed
	}
	if oldest := s.oldestEvent(s.st.rev); fromRevision+1 < oldest {
		s.mu.RUnlock()
		return nil, &TrimmedError{Next: fromRevision + 1, Oldest: oldest}
	}
	s.wg.Add(1) // under the lock, so Close cannot be waiting already
	s.mu.RUnlock()
	ch := make(chan Event, 16)
	go func() {
		defer s.wg.Done()
		defer close(ch)
		send := func(ev Event) bool {
			select {
			case ch <- ev:
				return true
			case <-ctx.Done():
			case <-s.stop:
			}
			return false
		}
		next := fromRevision + 1
		for {
			s.mu.RLock()
			rev, changed, closed := s.st.rev, s.changed, s.closed
			s.mu.RUnlock()
			if closed {
				return
			}
			for ; next <= rev; next++ {
				ev, err := s.event(next)
				if err != nil {
					// Read without the lock: the writes since rev may have trimmed it.
					if oldest := s.oldestEvent(s.Revision()); next < oldest && errors.Is(err, badger.ErrKeyNotFound) {
						err = &TrimmedError{Next: next, Oldest: oldest}
					} else {
						err = fmt.Errorf("store: read the event of revision %d: %w", next, err)
					}
					send(Event{Revision: next, Err: err})
					return
				}
				if !send(ev) {
					return
				}
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			case <-s.stop:
				return
			}
		}
	}()
	return ch, nil
}

// oldestEvent is the oldest revision whose event is kept when the store is at rev.
func (s *Store) oldestEvent(rev uint64) uint64 {
	if rev <= s.eventsKept {
		return 1
	}
	return rev - s.eventsKept + 1
}

func (s *Store) event(rev uint64) (Event, error) {
	var ev Event
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(eventKey(rev)))
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error { return json.Unmarshal(v, &ev) })
	})
	return ev, err
}

// WaitRevision blocks until the store has reached rev. It returns ErrStale (wrapping the
// context's error) when ctx ends first, ErrClosed when the store closes.
func (s *Store) WaitRevision(ctx context.Context, rev uint64) error {
	for {
		s.mu.RLock()
		cur, changed, closed := s.st.rev, s.changed, s.closed
		s.mu.RUnlock()
		if closed {
			return teamgate.ErrClosed
		}
		if cur >= rev {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w: store at revision %d, want %d: %w", teamgate.ErrStale, cur, rev, ctx.Err())
		}
	}
}
