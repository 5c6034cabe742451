package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/plainjson"
	"github.com/teamgate/teamgate/rego"
)

// DecisionPath is how a decision was made (in metrics, spans and the decision log).
type DecisionPath uint8

// The decision paths. Every decision took exactly one; PathNone when the call returned an error.
const (
	PathNone     DecisionPath = iota // not decided: the call returned an error (DecisionRecord.Error)
	PathCacheL1                      // served from the in-memory decision cache
	PathCacheL2                      // served from the decision cache's Badger tier
	PathCompiled                     // answered by the policy's decision table (rego.Table)
	PathRego                         // decided by full evaluation of the Rego policy
	numPaths
)

var pathNames = [numPaths]string{"none", "cache_l1", "cache_l2", "compiled", "rego"}

// String is the path's name in metrics, spans and the log: none, cache_l1, cache_l2, compiled,
// rego.
func (p DecisionPath) String() string {
	if p < numPaths {
		return pathNames[p]
	}
	return fmt.Sprintf("DecisionPath(%d)", uint8(p))
}

// ParseDecisionPath is the inverse of DecisionPath.String.
func ParseDecisionPath(s string) (DecisionPath, error) {
	for p, n := range pathNames {
		if n == s {
			return DecisionPath(p), nil
		}
	}
	return 0, teamgate.Invalid("decision path", s, "want none, cache_l1, cache_l2, compiled or rego")
}

// pathOf is the path of a decision that was evaluated, on the compiled path or not.
func pathOf(compiled bool) DecisionPath {
	if compiled {
		return PathCompiled
	}
	return PathRego
}

// MarshalText writes the path's name.
func (p DecisionPath) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads a path's name.
func (p *DecisionPath) UnmarshalText(b []byte) error {
	v, err := ParseDecisionPath(string(b))
	*p = v
	return err
}

// DecisionRecord is one decision as the decision log keeps it (WithDecisionLog). It is a value
// of fixed size: queuing one allocates nothing; its strings and Reasons are the request's and the
// decision's own (Reasons may be shared with the decision cache: do not modify them), and
// Request.Attributes is a copy the record owns.
type DecisionRecord struct {
	// Time is when the log took the record from its queue: after the decision, by the queue's
	// wait (at most about DecisionLogInterval while the sink keeps up). The decision path reads
	// no clock for it: on the reference machine two clock reads cost as much as a cache hit.
	Time     time.Time
	Request  Request
	Decision Decision // on PathNone: denied, role none, the store's revision at the time
	Error    string   // on PathNone: the error the call returned
	Policy   string   // the fingerprint of the policy in force (rego.Policy.Fingerprint)
	Path     DecisionPath
	// Latency is the decision's time. With metrics (WithMetrics) every decision is timed, and
	// this is the time the latency histogram observed. Without, it is measured only where the
	// clock costs little beside the decision: full Rego evaluations (from reading the facts to the
	// answer) and decisions that consulted the Badger tier (from the lookup); it is 0 on
	// in-memory cache hits and on the compiled path of an in-memory store, which take well under
	// a microsecond.
	Latency time.Duration
}

// decisionRecordJSON is DecisionRecord's JSON form: path by name, latency in nanoseconds.
type decisionRecordJSON struct {
	Time      time.Time    `json:"time"`
	Request   Request      `json:"request"`
	Decision  Decision     `json:"decision"`
	Error     string       `json:"error,omitempty"`
	Policy    string       `json:"policy"`
	Path      DecisionPath `json:"path"`
	LatencyNS int64        `json:"latency_ns,omitempty"`
}

// MarshalJSON writes {"time","request","decision","error","policy","path","latency_ns"} with
// <, > and & as they are.
func (r DecisionRecord) MarshalJSON() ([]byte, error) {
	j := decisionRecordJSON{Time: r.Time, Request: r.Request, Decision: r.Decision, Error: r.Error, Policy: r.Policy, Path: r.Path, LatencyNS: int64(r.Latency)}
	if j.Decision.Reasons == nil {
		j.Decision.Reasons = []Reason{}
	}
	return plainjson.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes. Attribute numbers are json.Number, so a recheck
// decides on exactly the numbers logged.
func (r *DecisionRecord) UnmarshalJSON(b []byte) error {
	var j decisionRecordJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	*r = DecisionRecord{Time: j.Time, Request: j.Request, Decision: j.Decision, Error: j.Error, Policy: j.Policy, Path: j.Path, Latency: time.Duration(j.LatencyNS)}
	return nil
}

// DecisionSink receives the decision log's records, in batches, from one goroutine at a time.
// Write may keep nothing of records after it returns (the slice is reused); a record's own
// strings, Reasons and Attributes may be kept. Write must honour ctx: Engine.Close cancels it when
// its own context ends. A failed Write loses its batch (Stats.DecisionLogFailed counts the
// records); the log goes on with the next one. Package decisionlog has a Badger-backed sink.
type DecisionSink interface {
	Write(ctx context.Context, records []DecisionRecord) error
}

// DefaultDecisionLogQueue is the decision log's queue size unless WithDecisionLogQueue sets another.
const DefaultDecisionLogQueue = 4096

// DecisionLogInterval is how often the decision log's goroutine drains its queue while records
// arrive (and sooner when the queue is half full); idle, it sleeps until the next record.
const DecisionLogInterval = 10 * time.Millisecond

// maxDecisionBatch bounds the records of one DecisionSink.Write.
const maxDecisionBatch = 512

// WithDecisionLog sends a record of every decision (DecisionRecord) to sink: each call of
// Authorize — those of AuthorizeBatch, BulkRuns and CreateProject included, and requests for
// suggestions — and of Explain. Listings (ListProjects, ProjectFilter), admissions (Admit,
// AdmitVersion) and analyses (ListSubjects, the approvers of a suggestion, Simulate, Lint) are
// not logged: a listing is many verdicts at once, an admission's outcome is its violations, which
// the host acts on and may log itself, and an analysis decides requests nobody made. Logging never blocks a decision: records go to a bounded queue
// (WithDecisionLogQueue) that one goroutine drains into sink; when the queue is full the record
// is dropped and counted (Stats.DecisionLogDropped). Engine.Close flushes the queue and stops the
// goroutine. Default: no log (the decision path then pays one nil check).
func WithDecisionLog(sink DecisionSink) Option {
	return func(c *config) error {
		if sink == nil {
			return teamgate.Invalid("decision sink", "nil", "WithDecisionLog needs a sink")
		}
		c.sink = sink
		return nil
	}
}

// WithDecisionLogQueue sets how many records the decision log's queue holds — those waiting and
// those the sink is writing — rounded up to a power of two (a record takes about 230 bytes);
// size must be > 0. Default DefaultDecisionLogQueue.
func WithDecisionLogQueue(size int) Option {
	return func(c *config) error {
		if size <= 0 {
			return teamgate.Invalid("decision log queue", fmt.Sprint(size), "must be > 0")
		}
		c.logQueue = size
		return nil
	}
}

// decisionLog is the queue and the goroutine that drains it into the sink.
type decisionLog struct {
	sink DecisionSink
	ring recordRing
	// wake is signalled (never blocking) by a producer that finds the drainer idle or the ring
	// half full; idle is set by the drainer before it sleeps without a timer.
	wake  chan struct{}
	idle  atomic.Bool
	flush chan chan struct{} // Flush's requests
	stop  chan struct{}      // closed by close
	done  chan struct{}      // closed when the drainer has returned
	// ctx is the sink's context; cancel ends it when Close's context ends.
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger

	// epoch lets a decision read the monotonic clock only: time.Since(epoch) reads one clock,
	// time.Now two.
	epoch time.Time

	closeOnce                sync.Once
	closed                   atomic.Bool
	written, dropped, failed atomic.Uint64
}

func newDecisionLog(sink DecisionSink, size int, log *slog.Logger) *decisionLog {
	ctx, cancel := context.WithCancel(context.Background())
	l := &decisionLog{sink: sink, wake: make(chan struct{}, 1), flush: make(chan chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{}), ctx: ctx, cancel: cancel, log: log, epoch: time.Now()}
	l.ring.init(size)
	go l.run()
	return l
}

// recordRing is the log's queue: a bounded ring of records with many producers (decisions) and
// one consumer (the drainer), after Dmitry Vyukov's bounded MPMC queue. A producer reserves a
// slot with one CAS on tail and writes its record in place; the consumer hands a run of
// published slots to the sink as they are and then frees them. Unlike a channel, producers and
// the consumer share no lock (a decision never waits for the drainer's receive), and a record is
// copied once, into its slot. Go has no such queue for values without boxing each one (an
// allocation per decision), hence this one.
type recordRing struct {
	_    [64]byte      // tail on its own cache line: producers write it
	tail atomic.Uint64 // the next position to reserve
	_    [56]byte
	head uint64        // the next position to read; the consumer's only
	read atomic.Uint64 // head as the consumer last published it (the half-full check)
	mask uint64        // len(recs)-1
	half uint64
	// seqs[i] is pos while slot i is free for the producer of position pos, pos+1 once that
	// producer has written recs[i]: the consumer reads the record after seeing pos+1 and frees
	// the slot for the next lap with pos+len(recs).
	seqs []atomic.Uint64
	recs []DecisionRecord
}

// init sizes the ring: size rounded up to a power of two.
func (q *recordRing) init(size int) {
	n := 1
	for n < size {
		n <<= 1
	}
	q.seqs, q.recs = make([]atomic.Uint64, n), make([]DecisionRecord, n)
	for i := range q.seqs {
		q.seqs[i].Store(uint64(i))
	}
	q.mask, q.half = uint64(n-1), uint64(max(n/2, 1))
}

// reserve claims the next slot; false when the ring is full. The caller fills the record and
// calls publish.
func (q *recordRing) reserve() (*DecisionRecord, uint64, bool) {
	pos := q.tail.Load()
	for {
		i := pos & q.mask
		switch d := int64(q.seqs[i].Load() - pos); {
		case d == 0:
			if q.tail.CompareAndSwap(pos, pos+1) {
				return &q.recs[i], pos, true
			}
			pos = q.tail.Load()
		case d < 0: // the slot still holds the record of the previous lap: full
			return nil, 0, false
		default: // another producer took pos
			pos = q.tail.Load()
		}
	}
}

// publish hands a filled slot to the consumer and reports whether the ring is half full.
func (q *recordRing) publish(pos uint64) bool {
	q.seqs[pos&q.mask].Store(pos + 1)
	return pos-q.read.Load() >= q.half
}

// ready reports whether the record at head is published. Consumer only.
func (q *recordRing) ready() bool { return q.seqs[q.head&q.mask].Load() == q.head+1 }

// next returns the published records from head on, at most max and not past the ring's end (a
// slice of the ring itself: the consumer reads them in place). Consumer only.
func (q *recordRing) next(max int) []DecisionRecord {
	start := int(q.head & q.mask)
	end := min(start+max, len(q.recs))
	n := 0
	for start+n < end && q.seqs[start+n].Load() == q.head+uint64(n)+1 {
		n++
	}
	return q.recs[start : start+n]
}

// release frees the n records next returned, keeping no request alive. Consumer only.
func (q *recordRing) release(n int) {
	start := int(q.head & q.mask)
	clear(q.recs[start : start+n])
	for i := range n {
		q.seqs[start+i].Store(q.head + uint64(i) + uint64(len(q.recs)))
	}
	q.head += uint64(n)
	q.read.Store(q.head)
}

// clock is the time since the log started (never 0 once read: the epoch is in the past).
func (l *decisionLog) clock() time.Duration { return time.Since(l.epoch) }

// slot reserves a slot for a record; nil when the log is closed or the ring full (the record
// is dropped and counted).
func (l *decisionLog) slot() (*DecisionRecord, uint64) {
	if l.closed.Load() {
		l.dropped.Add(1)
		return nil, 0
	}
	r, pos, ok := l.ring.reserve()
	if !ok {
		l.dropped.Add(1)
		return nil, 0
	}
	return r, pos
}

// publish hands a filled slot to the drainer, waking it when it sleeps or the ring is half full.
func (l *decisionLog) publish(pos uint64) {
	if l.ring.publish(pos) || l.idle.Load() {
		l.idle.Store(false)
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// run drains the ring: every DecisionLogInterval while records arrive, at once when woken,
// and not at all while idle.
func (l *decisionLog) run() {
	defer close(l.done)
	tick := time.NewTicker(DecisionLogInterval)
	defer tick.Stop()
	for {
		stopped, flushed := l.wait(tick.C)
		if stopped {
			return
		}
		if flushed {
			continue
		}
		if l.drain() > 0 {
			continue
		}
		// Nothing arrived for a whole interval: sleep until a producer wakes us. The ring is
		// checked again after idle is set, so a record published meanwhile is not left waiting.
		l.idle.Store(true)
		if l.ring.ready() {
			l.idle.Store(false)
			continue
		}
		tick.Stop()
		if stopped, _ := l.wait(nil); stopped { // no tick while idle
			return
		}
		l.idle.Store(false)
		tick.Reset(DecisionLogInterval)
	}
}

// wait blocks until the log is stopped (it drains and reports stopped), Flush asks (it drains
// and answers: flushed), a producer wakes it or tick fires (a nil tick never does).
func (l *decisionLog) wait(tick <-chan time.Time) (stopped, flushed bool) {
	select {
	case <-l.stop:
		l.drain()
		return true, false
	case f := <-l.flush:
		l.drain()
		close(f)
		return false, true
	case <-l.wake:
	case <-tick:
	}
	return false, false
}

// drain writes every published record to the sink in batches, read in place from the ring,
// and returns how many it took.
func (l *decisionLog) drain() int {
	n := 0
	for {
		batch := l.ring.next(maxDecisionBatch)
		if len(batch) == 0 {
			return n
		}
		now := time.Now()
		for i := range batch {
			batch[i].Time = now
		}
		n += len(batch)
		if err := l.sink.Write(l.ctx, batch); err != nil {
			l.failed.Add(uint64(len(batch)))
			l.log.Warn("teamgate: decision log: sink write failed; records lost", "records", len(batch), "error", err)
		} else {
			l.written.Add(uint64(len(batch)))
		}
		l.ring.release(len(batch))
	}
}

// flushNow waits until every record queued before the call has been given to the sink.
func (l *decisionLog) flushNow(ctx context.Context) error {
	f := make(chan struct{})
	select {
	case l.flush <- f:
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-f:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops taking records, writes those queued and waits for the goroutine; when ctx ends
// first, the sink's context is cancelled and close still waits for the goroutine to return.
func (l *decisionLog) close(ctx context.Context) error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		close(l.stop)
	})
	var err error
	select {
	case <-l.done:
	case <-ctx.Done():
		l.cancel()
		<-l.done
		err = ctx.Err()
	}
	// What the drainer did not take (its writes cancelled, or published by a decision racing
	// with close) is dropped. The drainer has returned: this is the ring's one consumer now.
	for b := l.ring.next(len(l.ring.recs)); len(b) > 0; b = l.ring.next(len(l.ring.recs)) {
		l.dropped.Add(uint64(len(b)))
		l.ring.release(len(b))
	}
	return err
}

// record makes the log's record of one call in a slot of the ring (written in place, nothing
// allocated); attributes are copied, since the caller may reuse its map once the call has
// returned.
func (e *Engine) record(req *Request, d *Decision, t *decisionTrace, err error) {
	r, pos := e.declog.slot()
	if r == nil {
		return
	}
	r.Request, r.Decision, r.Path, r.Latency = *req, *d, t.path, t.latency
	p := t.policy
	if p == nil { // not decided
		p = e.policy.Load()
	}
	r.Policy = p.Fingerprint()
	if err != nil {
		r.Path, r.Error = PathNone, err.Error()
		r.Decision = Decision{Role: "none", Reasons: []Reason{}, Revision: e.dir.Revision()}
	}
	if len(req.Attributes) > 0 {
		r.Request.Attributes = copyAttributes(req.Attributes)
	}
	e.declog.publish(pos)
}

// observed is Authorize with metrics, spans or a decision log: the observer (metrics.go) times
// the decision and the log records it, unless the request is a listing's or an analysis'.
func (e *Engine) observed(ctx context.Context, req *Request) (Decision, error) {
	logged := e.declog != nil && !req.unlogged
	if e.obs != nil {
		return e.obs.authorize(ctx, e, req, logged)
	}
	if !logged {
		return e.authorize(ctx, req, &decisionTrace{})
	}
	t := decisionTrace{timed: true}
	d, err := e.authorize(ctx, req, &t)
	e.record(req, &d, &t, err)
	return d, err
}

// copyAttributes copies attributes through their JSON form (they are JSON-like: rego.NewAttributes
// checked them, or the call failed). Numbers stay exact (json.Number).
func copyAttributes(m map[string]any) map[string]any {
	raw, err := plainjson.Marshal(m)
	if err != nil {
		return map[string]any{"unloggable": err.Error()}
	}
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return map[string]any{"unloggable": err.Error()}
	}
	return out
}

// decisionTrace is how a decision was made, for metrics, spans and the log.
type decisionTrace struct {
	path    DecisionPath
	policy  *rego.Policy  // the policy in force; nil when not decided
	latency time.Duration // 0: not timed
	timed   bool          // the log times what is cheap to time (metrics time every decision)
}

// FlushDecisionLog waits until every decision logged before the call has been given to the
// sink (or ctx ends). Without a decision log it returns nil at once.
func (e *Engine) FlushDecisionLog(ctx context.Context) error {
	if e.declog == nil {
		return nil
	}
	return e.declog.flushNow(ctx)
}

// Close stops the engine's background work: it flushes the decision log (records queued are
// written to the sink) and waits for its goroutine. When ctx ends first, the sink's context is
// cancelled, the records not written are dropped (Stats.DecisionLogDropped) and Close returns
// ctx's error once the goroutine has returned (so a sink must honour its context). Close closes
// neither the Directory nor the sink: the caller opened them. Decisions after Close are still
// answered (the Directory decides whether the engine works) but no longer logged: they count as
// dropped. Close also unregisters the engine's metrics (WithMetrics) from the host's registry,
// so a new engine may register there. Close is idempotent.
func (e *Engine) Close(ctx context.Context) error {
	if e.obs != nil && e.obs.metrics != nil {
		e.obs.metrics.unregister()
	}
	if e.declog == nil {
		return nil
	}
	return e.declog.close(ctx)
}
