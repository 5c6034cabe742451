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

// DecisionPath is how a decision was made.
type DecisionPath uint8

// The decision paths. Every logged decision took exactly one.
const (
	PathCache     DecisionPath = iota + 1 // served from the in-memory decision cache
	PathCacheDisk                         // served from the decision cache's Badger tier
	PathCompiled                          // answered by the policy's decision table
	PathRego                              // decided by full evaluation of the Rego policy
	PathError                             // not decided: the call returned an error (Record.Error)
)

var pathNames = [...]string{PathCache: "cache", PathCacheDisk: "cache_disk", PathCompiled: "compiled", PathRego: "rego", PathError: "error"}

// String is the path's name: cache, cache_disk, compiled, rego or error.
func (p DecisionPath) String() string {
	if int(p) < len(pathNames) && pathNames[p] != "" {
		return pathNames[p]
	}
	return fmt.Sprintf("DecisionPath(%d)", uint8(p))
}

// ParseDecisionPath is the inverse of DecisionPath.String.
func ParseDecisionPath(s string) (DecisionPath, error) {
	for p, n := range pathNames {
		if n != "" && n == s {
			return DecisionPath(p), nil
		}
	}
	return 0, teamgate.Invalid("decision path", s, "want cache, cache_disk, compiled, rego or error")
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
	Decision Decision // on PathError: denied, role none, the store's revision at the time
	Error    string   // on PathError: the error the call returned
	Policy   string   // the fingerprint of the policy in force (rego.Policy.Fingerprint)
	Path     DecisionPath
	// Latency is the decision's time, measured where the clock costs little beside the
	// decision: full Rego evaluations (from reading the facts to the answer) and decisions that
	// consulted the Badger tier (from the lookup). It is 0 on in-memory cache hits and on the
	// compiled path of an in-memory store, which take well under a microsecond.
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
// Authorize — those of AuthorizeBatch, BulkRuns and CreateProject included — and of Explain.
// Listings (ListProjects, ProjectFilter) and admissions (Admit, AdmitVersion) are not logged: a
// listing is many verdicts at once and an admission's outcome is its violations, which the host
// acts on and may log itself. Logging never blocks a decision: records go to a bounded queue
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

// WithDecisionLogQueue sets how many records the decision log's queue holds (a record is about
// 200 bytes); size must be > 0. Default DefaultDecisionLogQueue.
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
	sink  DecisionSink
	queue chan DecisionRecord
	half  int
	// wake is signalled (never blocking) by a producer that finds the drainer idle or the queue
	// half full; idle is set by the drainer before it sleeps without a timer.
	wake  chan struct{}
	idle  atomic.Bool
	flush chan chan struct{} // Flush's requests
	stop  chan struct{}      // closed by close
	done  chan struct{}      // closed when the drainer has returned
	// ctx is the sinks' context; cancel ends it when Close's context ends.
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger

	closeOnce                sync.Once
	closed                   atomic.Bool
	written, dropped, failed atomic.Uint64
}

func newDecisionLog(sink DecisionSink, size int, log *slog.Logger) *decisionLog {
	ctx, cancel := context.WithCancel(context.Background())
	l := &decisionLog{sink: sink, queue: make(chan DecisionRecord, size), half: max(size/2, 1), wake: make(chan struct{}, 1),
		flush: make(chan chan struct{}), stop: make(chan struct{}), done: make(chan struct{}), ctx: ctx, cancel: cancel, log: log}
	go l.run()
	return l
}

// add queues a record without blocking; a full queue drops it.
func (l *decisionLog) add(r *DecisionRecord) {
	if l.closed.Load() {
		l.dropped.Add(1)
		return
	}
	select {
	case l.queue <- *r:
	default:
		l.dropped.Add(1)
		return
	}
	if l.idle.Load() || len(l.queue) >= l.half {
		l.idle.Store(false)
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// run drains the queue: every DecisionLogInterval while records arrive, at once when woken,
// and not at all while idle.
func (l *decisionLog) run() {
	defer close(l.done)
	tick := time.NewTicker(DecisionLogInterval)
	defer tick.Stop()
	batch := make([]DecisionRecord, 0, maxDecisionBatch)
	for {
		select {
		case <-l.stop:
			l.drain(batch)
			return
		case f := <-l.flush:
			l.drain(batch)
			close(f)
			continue
		case <-l.wake:
		case <-tick.C:
		}
		if l.drain(batch) > 0 {
			continue
		}
		// Nothing arrived for a whole interval: sleep until a producer wakes us. The queue is
		// checked again after idle is set, so a record queued meanwhile is not left waiting.
		l.idle.Store(true)
		if len(l.queue) > 0 {
			l.idle.Store(false)
			continue
		}
		tick.Stop()
		select {
		case <-l.stop:
			l.drain(batch)
			return
		case f := <-l.flush:
			l.drain(batch)
			close(f)
		case <-l.wake:
		}
		l.idle.Store(false)
		tick.Reset(DecisionLogInterval)
	}
}

// drain writes every queued record to the sink in batches and returns how many it took.
func (l *decisionLog) drain(batch []DecisionRecord) int {
	n := 0
	for {
		batch = batch[:0]
		now := time.Now()
	fill:
		for len(batch) < cap(batch) {
			select {
			case r := <-l.queue:
				r.Time = now
				batch = append(batch, r)
			default:
				break fill
			}
		}
		if len(batch) == 0 {
			return n
		}
		n += len(batch)
		if err := l.sink.Write(l.ctx, batch); err != nil {
			l.failed.Add(uint64(len(batch)))
			l.log.Warn("teamgate: decision log: sink write failed; records lost", "records", len(batch), "error", err)
		} else {
			l.written.Add(uint64(len(batch)))
		}
		clear(batch) // keep no request alive
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
	// What the drainer did not take (its writes cancelled, or queued by a decision racing
	// with close) is dropped.
	for {
		select {
		case <-l.queue:
			l.dropped.Add(1)
		default:
			return err
		}
	}
}

// record makes the log's record of one call; attributes are copied, since the caller may reuse
// its map once the call has returned.
func (e *Engine) record(req Request, d Decision, t trace, err error) {
	r := DecisionRecord{Request: req, Decision: d, Path: t.path, Latency: t.latency}
	if t.policy != nil {
		r.Policy = t.policy.Fingerprint()
	} else {
		r.Policy = e.policy.Load().Fingerprint()
	}
	if err != nil {
		r.Path, r.Error = PathError, err.Error()
		r.Decision = Decision{Role: "none", Reasons: []Reason{}, Revision: e.dir.Revision()}
	}
	if len(req.Attributes) > 0 {
		r.Request.Attributes = copyAttributes(req.Attributes)
	}
	e.declog.add(&r)
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

// trace is how a decision was made, for its record.
type trace struct {
	path    DecisionPath
	policy  *rego.Policy
	latency time.Duration
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
// dropped. Close is idempotent; without a decision log it does nothing.
func (e *Engine) Close(ctx context.Context) error {
	if e.declog == nil {
		return nil
	}
	return e.declog.close(ctx)
}
