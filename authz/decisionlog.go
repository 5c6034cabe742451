package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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

// MarshalText writes the path's name.
func (p DecisionPath) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads a path's name.
func (p *DecisionPath) UnmarshalText(b []byte) error {
	v, err := ParseDecisionPath(string(b))
	*p = v
	return err
}

// DecisionRecord is one decision as the decision log keeps it (WithDecisionLog). It is a value
// of fixed size: queuing one allocates nothing (but for a failed call or one with attributes,
// Suggest or suggestions, which allocate anyway, and a decision that is not a compiled one of a
// request without Owner and MinRevision with more than 15 reasons or timed at 33.5 ms or more);
// its strings and Reasons are the request's and the decision's own, or for a compiled decision
// the decision table cell's (the action's name as the policy's catalog spells it, which the
// request named exactly; the role; the policy's fingerprint) (Reasons may be shared with the
// decision cache: do not modify them), and
// Request.Attributes is a copy the record owns, of the values as the policy read them (by kind:
// a caller's type's MarshalJSON is never called; numbers are json.Number), as is
// Decision.Suggestions (the caller may edit those Authorize returned).
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
// Write may keep nothing of records after it returns (the slice is reused) and must modify none
// (the log may pass the same records again); a record's own strings, Reasons and Attributes may
// be kept. Write must honour ctx: Engine.Close cancels it when its own context ends. A failed
// Write (an error, or a panic) loses its batch (Stats.DecisionLogFailed counts the records); the
// log goes on with the next one. Package decisionlog has a Badger-backed sink.
type DecisionSink interface {
	Write(ctx context.Context, records []DecisionRecord) error
}

// DefaultDecisionLogQueue is the decision log's queue size unless WithDecisionLogQueue sets another.
const DefaultDecisionLogQueue = 16384

// DecisionLogInterval is how often the decision log's goroutine drains its queue while records
// arrive (and sooner when the queue is half full); idle, it sleeps until the next record.
//
// It is short because the producer's wake-up is not enough on its own: the drainer, readied by a
// deciding goroutine that keeps its P, may wait to run while the ring fills. With 10 ms one core
// deciding flat out on the compiled path dropped 7–16 % of records from the default queue (then
// 4,096 slots); with 500 µs, 1–2 % (bench/RESULTS.md, "Stop 16, end of session"). Idle, no tick
// runs.
const DecisionLogInterval = 500 * time.Microsecond

// maxDecisionBatch bounds the records of one DecisionSink.Write.
const maxDecisionBatch = 512

// WithDecisionLog sends a record of every decision (DecisionRecord) to sink: each call of
// Authorize — those of AuthorizeBatch, BulkRuns and CreateProject included, the org.break_glass
// permission of BreakGlass and EndBreakGlass, and requests for suggestions — and of Explain. A run of a bulk version listing is recorded as the decision
// BulkRuns returns for it (a feature_excluded deny after an allowed permission). BulkRuns logs
// its scope's decision (team.runs or org.runs) and each run it decides; a run it denies without
// deciding it — every run when the scope is denied (the scope's deny is their record), a run
// outside the team space or org (not_in_scope), a run whose project reference is malformed (its
// RunDecision.Err) — has no record of its own. Listings (ListProjects, ProjectFilter), admissions
// (Admit, AdmitVersion) and analyses (ListSubjects, the approvers of a suggestion, Simulate, Lint,
// DiffAccess) are not logged: a listing is many verdicts at once, an admission's outcome is its
// violations, which the host acts on and may log itself, and an analysis decides requests nobody made. Logging never blocks a decision: records go to a bounded queue
// (WithDecisionLogQueue) that one goroutine drains into sink; when the queue is full the record
// is dropped and counted (Stats.DecisionLogDropped). Engine.Close flushes the queue and stops the
// goroutine. Default: no log (the decision path then pays one nil check).
//
// Records reach the sink in the order they were queued, but for in-memory cache hits: a hit whose
// record equals that of the latest hit of its stripe queued on the same cached decision (the
// same request, revision and MinRevision; goroutines fall in four stripes by their stacks, so
// that cores hitting one request count apart), while that one is still queued, is queued as one
// more count on it, and its record is written with that hit's, before records queued between
// the two. A record's Time is when the log took it from the queue, so it is the same for all of
// them.
func WithDecisionLog(sink DecisionSink) Option {
	return func(c *config) error {
		if sink == nil {
			return teamgate.Invalid("decision sink", "nil", "WithDecisionLog needs a sink")
		}
		c.sink = sink
		return nil
	}
}

// WithDecisionLogQueue sets how many slots the decision log's queue has for records waiting for
// the sink, rounded up to a power of two. A slot holds one record, or up to 65,535 identical
// in-memory cache hits (see WithDecisionLog): a hot request takes a slot per drain
// (DecisionLogInterval), not per decision. A slot takes 128 bytes, its record included; the
// batch the sink is writing (at most 512 records) is apart. size must be in [1, 2^24] (at most
// 2 GiB of slots). Default DefaultDecisionLogQueue.
//
// What the size trades: a larger queue rides out a longer stall of the sink, or of the log's
// goroutine waiting for a core, before it drops records; but every logged decision writes a
// cache line of it, and a queue larger than a core's cache makes that line a miss on every
// decision. The default, 2 MiB: one core deciding flat out on the compiled path (≈ 170 ns a
// decision on the project's 2-core machine) fills it in ≈ 2.8 ms, over five
// DecisionLogIntervals, and drops nothing; a logged compiled decision costs 3–4 % more than an
// unlogged one there, with 65,536 slots (8 MiB) too, where 4,096 slots (the default before stop
// 24, 512 KiB) filled in 0.7 ms, dropped 1–3 % of the records and cost 10–13 %
// (bench/RESULTS.md, "Stop 24"). On a slower decision path or a machine whose cores share less
// cache the balance may differ: measure with BenchmarkDecisionLogPaired. (OPA's decision log,
// which uploads minutes apart, buffers 10,000 events by default.)
func WithDecisionLogQueue(size int) Option {
	return func(c *config) error {
		if size <= 0 || size > maxDecisionLogQueue {
			return teamgate.Invalid("decision log queue", fmt.Sprint(size), "must be in [1, 16777216]")
		}
		c.logQueue = size
		return nil
	}
}

// maxDecisionLogQueue bounds WithDecisionLogQueue: 2 GiB of slots, far below where rounding to a
// power of two overflows or a position's tag repeats (2^48).
const maxDecisionLogQueue = 1 << 24

// decisionLog is the queue and the goroutine that drains it into the sink.
type decisionLog struct {
	sink DecisionSink
	ring recordRing
	// wake is signalled (never blocking) by a producer that finds the drainer idle or the ring
	// half full (see recordRing).
	wake  chan struct{}
	flush chan chan struct{} // Flush's requests
	stop  chan struct{}      // closed by close
	done  chan struct{}      // closed when the drainer has returned
	// ctx is the sink's context; cancel ends it when Close's context ends.
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger
	batch  []DecisionRecord // the drainer's: the records of one sink write

	// epoch lets a decision read the monotonic clock only: time.Since(epoch) reads one clock,
	// time.Now two.
	epoch time.Time

	closeOnce sync.Once
	// end is the first position not reserved before close: every position below it is
	// published, taken and written (or its write failed) before the drainer returns. Written
	// before stop is closed.
	end                      uint64
	written, dropped, failed atomic.Uint64
	drops                    dropReport    // the drainer's: what it last logged of dropped (reportDrops)
	dropEvery                time.Duration // DecisionLogDropReportInterval (tests shorten it)
}

func newDecisionLog(sink DecisionSink, size int, log *slog.Logger, dropEvery time.Duration) *decisionLog {
	ctx, cancel := context.WithCancel(context.Background())
	l := &decisionLog{sink: sink, wake: make(chan struct{}, 1), flush: make(chan chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{}), ctx: ctx, cancel: cancel, log: log, epoch: time.Now(), dropEvery: dropEvery}
	l.ring.init(size)
	l.batch = make([]DecisionRecord, 0, maxDecisionBatch) // a run fills batches whatever the ring's size
	go l.run()
	return l
}

// recordRing is the log's queue: a bounded ring with many producers (decisions) and one consumer
// (the drainer). A producer reserves a position with one CAS on tail, writes its slot and
// publishes it by storing the slot's state; the consumer builds the records of a run of
// published slots into its batch, frees the slots and hands the batch to the sink. Unlike a
// channel, producers and the consumer share no lock (a decision never waits for the drainer), and
// nothing is boxed (a channel of records, or of pointers to them, costs an allocation or a
// 230-byte copy per decision).
//
// A slot holds its record (logSlot: two cache lines, a DecisionRecord takes four): an
// in-memory cache hit writes only its cache entry (immutable: the decision, its reasons and
// policy, and the request's key, from which the drainer rebuilds the request's strings), the
// decision's revision and the request's MinRevision, in the slot's second line; any other
// decision writes what the drainer makes its record from, of immutable parts, in the first line
// (a compiled decision of a request without Owner or MinRevision) or in both, with plain stores
// but the state's. The drainer makes every record.
//
// A slot of hits is a run: a hit whose record would be the same as that of the latest run of
// its cache entry (same revision, same MinRevision) while the drainer has not taken the run yet
// joins it, adding one to the run's count with one CAS on the run's state — a cache line the
// deciding core keeps, as it keeps the entry (the run's position is in the entry). The drainer
// seals a run when it takes it (a later hit starts a new one) and writes one record per hit
// counted: the records are those of the hits, but a hit's record follows those of its run's
// earlier hits, before records queued between them. So the hot keys of a sustained load cost the
// ring a slot per key per drain rather than a slot per decision, neither core waits for the
// other's cache lines on every decision, and the drainer builds a record per run, not per
// decision (and copies none for a run longer than a batch: see copies). bench/RESULTS.md,
// "Stop 16", has what that was worth.
//
// A record (Engine.record), or a hit that joins no run (openRun), whose position is below
// alert only reserves, writes and publishes: alert is at most limit, so the slot is free, and
// below the half-full mark, so nobody need be woken. Any other position goes the long way (reserve, publish): a full ring
// drops the record, a closed one too (closedBit in tail), an idle drainer (idleBit in tail,
// which the producer's CAS clears) or a half-full ring wakes the drainer. A run needs no
// check of its own: the drainer takes every published slot before it sleeps and when the log
// closes, sealing runs, and a sealed run takes no hit.
type recordRing struct {
	_ [64]byte // tail on its own cache line, with what producers read beside it
	// tail is the next position to reserve, with closedBit and idleBit.
	tail atomic.Uint64
	// alert is half a ring past head after each take (the consumer's) and limit once a producer
	// has woken the drainer for a half-full ring; limit is head plus the ring's size: positions
	// below it are free.
	alert, limit atomic.Uint64
	_            [40]byte
	head         uint64 // the next position to read; the consumer's only
	mask         uint64 // len(slots)-1
	half         uint64
	// slots are the ring's records. The consumer reads a slot and leaves it (the next lap's
	// producer writes it): clearing it would make the producer fetch its cache line back from the
	// drainer's core. So the ring keeps the requests of at most its size of past decisions alive.
	slots []logSlot
	// run is the record of the sealed run at head, left how many of its records are still to be
	// taken (a run may span batches), copies how many of the consumer's batch's first records
	// are copies of run (take passes the same batch each time, and a sink modifies no record, so
	// a long run's next batch is the last one again: the drainer copies no record); the
	// consumer's only.
	run    DecisionRecord
	left   uint64
	copies int
}

const (
	closedBit = 1 << 63 // in tail: the log is closed, every reservation fails
	idleBit   = 1 << 62 // in tail: the drainer sleeps until a producer wakes it
)

// A slot's states: the published position's tag, (pos+1)&tagMask, above countBits, and below
// them, in a run's state, the run's count (how many hits joined it: its records are count+1),
// countMask once the drainer has sealed it. Tags repeat every 2^48 positions, years of
// decisions at any rate.
const (
	countBits = 16
	countMask = 1<<countBits - 1
	tagMask   = 1<<(64-countBits) - 1
)

// published is the state of position pos's slot once its producer has written it (a record's
// state, or a run's with a count of 0).
func published(pos uint64) uint64 { return (pos + 1) << countBits } // the shift drops the bits above tagMask

// logSlot is one position of the ring: two cache lines, each with a state of its own. The first
// is a record's (Engine.record): a cell's record is that line alone; a long one adds four words
// of the second. The second is a hit's run (fill): its state, revision, MinRevision and cache
// entry. A position's producer writes one of the two and publishes it by its state (published),
// and the drainer, finding which state holds the position's tag, takes a record or a run. A
// record that does not fit the slot is made whole (kindFull: a failed call or one with
// attributes, Suggest or suggestions, or lengths the slot cannot hold; see inSlot).
//
// A record in the slot is made of what the decision already holds — the request's strings as
// the caller passed them, the decision's reasons (those of the Decision returned: nobody modifies
// them, see DecisionRecord) — from which the drainer makes the DecisionRecord (record). A
// compiled decision of a request without Owner, MinRevision or attributes is a cell's record
// (kindCell, Engine.record): its subject, resource, reasons and revision, its latency, and the
// decision table's cell that decided it (rego.VerdictView), which names the rest — allowed, the
// role and the number of reasons, the action (the catalog's name, which the request named
// exactly) and the policy (its fingerprint). A cell is immutable and of one policy, so nothing of
// the record is looked up when the drainer takes it: a later write, rename or policy swap changes
// no record. Any other record in the slot is long (setLong): the role, action, owner and
// MinRevision as the request and decision hold them, the policy as its fingerprint's data. Its
// producer writes no atomic word but the state that publishes it; a run's revisions are atomic
// because a hit compares them with its own while the slot may be rewritten for a later lap (the
// CAS on the run's state, which then fails, decides), and no record writes them.
type logSlot struct {
	// state is published(pos) once the producer of a record at position pos has written it.
	// A slot freed for the next lap keeps its states (no later position publishes the same
	// tag).
	state atomic.Uint64
	rev   uint64 // the decision's revision
	// ref is the decision's reasons (their array: nil for nil Reasons; the count is the cell's or
	// in meta) or the whole *DecisionRecord, its Time unset (kindFull).
	ref unsafe.Pointer
	// The data of the request's subject and resource (their lengths in meta), and a long
	// record's of its action.
	subject, resource, action *byte
	// policy names the decision's policy: a cell's record's cell (rego.VerdictView's one
	// pointer, see cell), a long record's fingerprint's data (rego.FingerprintLen bytes). Not
	// the policy itself: a ring keeps no old policy alive.
	policy unsafe.Pointer
	// meta is the kind (kindMask) and, of a cell's record, the lengths of subject and resource
	// (bits 2–9, 10–18) and the latency in ns (19–63): see Engine.record. Of a long record:
	// allowed (bit 2), the path (bits 3–5), the lengths of subject, resource and action (10–17,
	// 18–26, 27–34), the number of reasons (35–38) and the latency in ns (39–63): see setLong.
	meta uint64

	// runState is published(pos) plus the run's count once the producer of a hit's run at
	// position pos has written the run: its revision and MinRevision, and its *cacheEntry.
	runState          atomic.Uint64
	runRev, runMinRev atomic.Uint64
	entry             unsafe.Pointer
	// A long record's: the data of the request's owner and of the decision's role, the
	// request's MinRevision, and their lengths (meta2: the owner's in bits 0–15, the role's in
	// 16–23).
	owner, role *byte
	minRev      uint64
	meta2       uint64
}

// A slot is exactly two cache lines, the second a run's, and a cell is one pointer, held in
// the policy word (a compile error otherwise).
var (
	_ [0]byte = [unsafe.Sizeof(logSlot{}) - 128]byte{}
	_ [0]byte = [unsafe.Offsetof(logSlot{}.runState) - 64]byte{}
	_ [0]byte = [unsafe.Sizeof(rego.VerdictView{}) - unsafe.Sizeof(unsafe.Pointer(nil))]byte{}
	_ [0]byte = [unsafe.Sizeof(unsafe.Pointer(nil)) - unsafe.Sizeof(rego.VerdictView{})]byte{}
)

// cell is the policy word of a cell's record as the cell it holds.
func (s *logSlot) cell() *rego.VerdictView { return (*rego.VerdictView)(unsafe.Pointer(&s.policy)) }

// The kinds of record (logSlot.meta&kindMask).
const (
	kindCell = 1
	kindLong = 2
	kindFull = 3
	kindMask = 3
)

// A cell's record's meta word: the kind, then the lengths of subject and resource, then the
// latency. Validated names (scope.MaxSlugLen: 128 bytes, a resource of three of them 386) fit
// their fields; Engine.record checks it all the same.
const (
	cellSubjectShift  = 2
	cellResourceShift = 10
	cellLatencyShift  = 19
)

// init sizes the ring: size rounded up to a power of two.
func (q *recordRing) init(size int) {
	n := 1
	for n < size {
		n <<= 1
	}
	q.slots = make([]logSlot, n)
	for i := range q.slots {
		// Tag 0, and a run's sealed: no position's state before a lap (a record's state has a
		// count of 0).
		q.slots[i].state.Store(countMask)
		q.slots[i].runState.Store(countMask)
	}
	q.mask, q.half = uint64(n-1), uint64(max(n/2, 1))
	q.limit.Store(uint64(n))
	q.alert.Store(q.half)
}

// slotAt is the slot of position pos (no bounds check: pos&mask is in range).
func (q *recordRing) slotAt(pos uint64) *logSlot {
	return (*logSlot)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(q.slots)), (pos&q.mask)*uint64(unsafe.Sizeof(logSlot{}))))
}

// logRunStripes is how many runs of hits an entry may have open at once, one per stripe of
// hits (runStripe): hits of the same request on several cores join different runs, in
// different slots, rather than all compare-and-swap one word (the log would make the cores
// contend where the cache does not: bench/RESULTS.md, "Stop 24").
const logRunStripes = 4

// runStripe is the stripe of the calling goroutine's hits: by its stack, as
// decisionCache.countHit (goroutines' stacks lie apart, so goroutines deciding on different
// cores mostly have different stripes).
func runStripe() uint64 {
	var here byte
	return uint64(uintptr(unsafe.Pointer(&here))) >> 11 * 0x9e3779b97f4a7c15 >> (64 - 2) // logRunStripes
}

// runStripe's two bits name every stripe, and only those (a compile error otherwise).
const (
	_ uint = logRunStripes - 1<<2
	_ uint = 1<<2 - logRunStripes
)

// runOf is the slot of run, an entry's latest run of hits of a stripe (cacheEntry.logRun),
// and the slot's state and the run: with joins, the whole cost of the log to most cache hits.
// (Two functions, each inlined in authorize: one would be over the inliner's budget.) A hit
// joins the run when that run has the same revision and MinRevision and is neither sealed nor
// full; when it does not, it starts a run (decisionLog.openRun).
func (q *recordRing) runOf(run *atomic.Uint64) (s *logSlot, st, pos1 uint64) {
	pos1 = run.Load()
	s = q.slotAt(pos1 - 1)
	return s, s.runState.Load(), pos1
}

// joins adds one to the count of run (1 + its position), in slot s whose state was st, when the
// hit's record — revision rev, MinRevision minRev — would be the run's: false when it did not.
func (s *logSlot) joins(st, run, rev, minRev uint64) bool {
	// st-published(run-1) is the run's count when the slot still holds the run (same tag), and
	// at least 2^16 when it does not: the run takes the hit unless sealed or full. Run 0 (none
	// yet) names the slot of position -1 with tag 0, which no position publishes before 2^48
	// (init seals every slot with tag 0), so the hit starts a run.
	return st-(run&tagMask)<<countBits < countMask-1 &&
		(s.runRev.Load()^rev)|(s.runMinRev.Load()^minRev) == 0 && s.runState.CompareAndSwap(st, st+1)
}

// rejoin is joins for a hit that joins failed, tried again (by openRun) for as long as latest,
// the entry's latest run of the hit's stripe, is the hit's (same revision and MinRevision), neither sealed nor full: when the
// compare-and-swap failed because another core's hit joined first (a hot request on several
// cores), the hit then adds to the same run rather than start one (a slot per lost race, which
// filled the ring and dropped records when two cores hit one request). The revisions compared
// stay the run's while its tag is in the state: the slot is rewritten only after the drainer
// sealed the run, and no CAS succeeds on a sealed run.
func (q *recordRing) rejoin(latest *atomic.Uint64, rev, minRev uint64) bool {
	s, st, run := q.runOf(latest)
	if (s.runRev.Load()^rev)|(s.runMinRev.Load()^minRev) != 0 {
		return false
	}
	for st-(run&tagMask)<<countBits < countMask-1 {
		if s.runState.CompareAndSwap(st, st+1) {
			return true
		}
		st = s.runState.Load()
	}
	return false
}

// fill writes a hit's run of one in the slot (its second line).
func (s *logSlot) fill(en *cacheEntry, rev, minRev uint64) {
	s.entry = unsafe.Pointer(en)
	s.runRev.Store(rev)
	s.runMinRev.Store(minRev)
}

// take appends the records of the published slots from head on to out (at most cap(out) in
// all), taken at now (their Time), frees their slots and returns out. out is the consumer's
// batch each time (see copies). Consumer only.
func (q *recordRing) take(out []DecisionRecord, now time.Time) []DecisionRecord {
	for len(out) < cap(out) {
		if q.left == 0 {
			s := q.slotAt(q.head)
			if s.state.Load() == published(q.head) { // a record
				q.copies = min(q.copies, len(out))
				out = append(out, s.record()) // left in place: see slots
				out[len(out)-1].Time = now
				q.head++
				continue
			}
			st := s.runState.Load()
			if st>>countBits != (q.head+1)&tagMask { // not published yet
				break
			}
			for !s.runState.CompareAndSwap(st, st|countMask) { // seal the run: its count is final
				st = s.runState.Load()
			}
			q.run, q.left, q.copies = (*cacheEntry)(s.entry).logRecord(s.runRev.Load(), s.runMinRev.Load()), st&countMask+1, 0
			q.run.Time = now // the run is taken now, all its records at once
		}
		k := int(min(q.left, uint64(cap(out)-len(out))))
		if n := len(out) + k; n <= q.copies {
			out = out[:n] // the batch holds them from the last write: sinks modify no record
		} else {
			from := len(out)
			for range k {
				out = append(out, q.run)
			}
			if from <= q.copies { // the copies go on from the batch's first
				q.copies = len(out)
			}
		}
		if q.left -= uint64(k); q.left == 0 {
			q.run = DecisionRecord{}
			q.head++
		}
	}
	q.limit.Store(q.head + uint64(len(q.slots)))
	q.alert.Store(q.head + q.half)
	return out
}

// logRecord is the record of an in-memory cache hit on en, labelled with revision rev. The
// request's strings are rebuilt from the entry's key (see packedLen), once per entry: the drainer
// keeps them in the entry. A cached request's key splits (cacheKey.splits: it was validated),
// so the action is what lies between the subject and the last two parts.
func (en *cacheEntry) logRecord(rev, minRev uint64) DecisionRecord {
	if en.logKey == "" {
		if int(en.n) > keyBytes {
			en.logKey = en.long
		} else {
			b := (*[keyBytes]byte)(unsafe.Pointer(&en.inline))
			en.logKey = string(b[:en.n])
		}
	}
	k := en.logKey
	i := strings.IndexByte(k, 0)
	l := strings.LastIndexByte(k, 0)
	j := strings.LastIndexByte(k[:l], 0)
	d := en.entry.dec
	d.Revision = rev
	return DecisionRecord{
		Request:  Request{Subject: k[:i], Action: k[i+1 : j], Resource: k[j+1 : l], Owner: k[l+1:], MinRevision: minRev},
		Decision: d, Policy: en.entry.policy.Fingerprint(), Path: PathCacheL1,
	}
}

// inSlot reports whether the record of req's decision d (traced by t; err: the call failed),
// not a cell's (Engine.record), is written in its slot as a long record (recordOther); any other
// is made whole (logSlot.setFull). A record in the slot allocates nothing: that is every decision
// but a failed call, one with attributes, Suggest or suggestions, and one over the long record's
// lengths (subject, action or role over 255 bytes, resource over 511, owner over 65,535, more
// than 15 reasons, a latency of 2^25 ns — 33.5 ms — or more). A cell's record has none of those
// lengths but the latency's, 2^45 ns.
func inSlot(req *Request, d *Decision, t *decisionTrace, err error) bool {
	return err == nil && t.policy != nil && req.Attributes == nil && !req.Suggest && d.Suggestions == nil &&
		uint64(len(req.Subject))|uint64(len(req.Action))|uint64(len(d.Role))|uint64(len(d.Reasons))<<4|
			uint64(len(req.Resource))>>1|uint64(len(req.Owner))>>8|uint64(t.latency)>>17 <= 255
}

// setFull writes into s the record of a call that is made whole (not inSlot): of its decision
// d, or of its error err, under policy p (the policy in force when not decided).
//
//go:noinline
func (s *logSlot) setFull(req *Request, d *Decision, p *rego.Policy, t *decisionTrace, err error) {
	f := &DecisionRecord{Request: *req, Decision: *d, Policy: p.Fingerprint(), Path: t.path, Latency: t.latency}
	if err != nil {
		f.Path, f.Error = PathNone, err.Error()
	}
	if len(req.Attributes) > 0 {
		f.Request.Attributes = copyAttributes(req.Attributes)
	}
	f.Decision.Suggestions = cloneSuggestions(d.Suggestions) // the caller's may be edited
	s.ref, s.meta = unsafe.Pointer(f), kindFull
}

// record is the DecisionRecord of a slot's record (not a run); its Time is unset.
func (s *logSlot) record() DecisionRecord {
	m := s.meta
	switch m & kindMask {
	case kindFull:
		return *(*DecisionRecord)(s.ref)
	case kindCell:
		v := *s.cell()
		var reasons []Reason
		if s.ref != nil {
			reasons = unsafe.Slice((*Reason)(s.ref), v.NumCodes())
		}
		return DecisionRecord{
			Request: Request{Subject: unsafe.String(s.subject, m>>cellSubjectShift&0xff), Action: v.Action(),
				Resource: unsafe.String(s.resource, m>>cellResourceShift&0x1ff)},
			Decision: Decision{Allowed: v.Allow(), Role: v.Role(), Reasons: reasons, Revision: s.rev},
			Policy:   v.Policy(), Path: PathCompiled, Latency: time.Duration(m >> cellLatencyShift),
		}
	}
	var reasons []Reason
	if s.ref != nil {
		reasons = unsafe.Slice((*Reason)(s.ref), m>>35&15)
	}
	return DecisionRecord{
		Request: Request{Subject: unsafe.String(s.subject, m>>10&0xff), Action: unsafe.String(s.action, m>>27&0xff),
			Resource: unsafe.String(s.resource, m>>18&0x1ff), Owner: unsafe.String(s.owner, s.meta2&0xffff), MinRevision: s.minRev},
		Decision: Decision{Allowed: m&(1<<2) != 0, Role: unsafe.String(s.role, s.meta2>>16&0xff), Reasons: reasons, Revision: s.rev},
		Policy:   unsafe.String((*byte)(s.policy), rego.FingerprintLen), Path: DecisionPath(m >> 3 & 7), Latency: time.Duration(m >> 39),
	}
}

// clock is the time since the log started (never 0 once read: the epoch is in the past).
func (l *decisionLog) clock() time.Duration { return time.Since(l.epoch) }

// reserve claims the next slot the long way: nil when the log is closed or the ring full (the
// record is dropped and counted); woke reports that the drainer was idle (the caller's publish
// wakes it).
func (l *decisionLog) reserve() (s *logSlot, pos uint64, woke bool) {
	q := &l.ring
	for {
		t := q.tail.Load()
		pos = t &^ idleBit
		if t&closedBit != 0 || pos >= q.limit.Load() {
			l.dropped.Add(1)
			return nil, 0, false
		}
		if q.tail.CompareAndSwap(t, pos+1) { // clears idleBit: this producer wakes the drainer
			return q.slotAt(pos), pos, t&idleBit != 0
		}
	}
}

// publish hands the record or run written at pos to the drainer by storing its state (the
// slot's state or runState), waking the drainer when it was idle (woke, from reserve) or the
// ring is half full.
func (l *decisionLog) publish(state *atomic.Uint64, pos uint64, woke bool) {
	state.Store(published(pos))
	if woke || pos >= l.ring.alert.Load() {
		// Later producers need not wake it again: alert goes up to limit until the next take.
		l.ring.alert.Store(l.ring.limit.Load())
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// openRun logs an in-memory cache hit that joined no run (logSlot.joins): in the entry's latest
// run still, when the hit only lost a race to another core's (rejoin), else as a new run, in one
// CAS when its position is below alert, else the long way (see recordRing). The entry then names
// the run (hits of several cores may start runs of the same entry at once: the latest named is
// joined).
//
//go:noinline
func (l *decisionLog) openRun(en *cacheEntry, latest *atomic.Uint64, rev, minRev uint64) {
	q := &l.ring
	if q.rejoin(latest, rev, minRev) {
		return
	}
	pos := q.tail.Load()
	if pos < q.alert.Load() && q.tail.CompareAndSwap(pos, pos+1) {
		s := q.slotAt(pos)
		s.fill(en, rev, minRev)
		s.runState.Store(published(pos))
	} else {
		var s *logSlot
		var woke bool
		if s, pos, woke = l.reserve(); s == nil {
			return
		}
		s.fill(en, rev, minRev)
		l.publish(&s.runState, pos, woke)
	}
	latest.Store(pos + 1)
}

// run drains the ring: every DecisionLogInterval while records arrive, at once when woken,
// and not at all while idle (but once, when a line about drops is owed: reportDrops).
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
		// Nothing arrived for a whole interval: sleep until a producer wakes us. With idleBit
		// in tail, the next reservation goes the long way and wakes us; a position reserved
		// before the bit was set is not taken yet, so we stay awake for it.
		if l.ring.tail.Or(idleBit)&^closedBit != l.ring.head {
			l.ring.tail.And(^uint64(idleBit))
			continue
		}
		tick.Stop()
		late := l.lateDrops() // no tick while idle, but a line owed for drops
		stopped, _ = l.wait(late.C())
		late.Stop()
		if stopped {
			return
		}
		l.ring.tail.And(^uint64(idleBit)) // when no producer cleared it (flush)
		tick.Reset(DecisionLogInterval)
	}
}

// wait blocks until the log is stopped (it drains and reports stopped), Flush asks (it drains
// and answers: flushed), a producer wakes it or tick fires (a nil tick never does).
func (l *decisionLog) wait(tick <-chan time.Time) (stopped, flushed bool) {
	select {
	case <-l.stop:
		l.drainTo(l.end)
		l.reportDrops(true)
		return true, false
	case f := <-l.flush:
		l.drainTo(l.ring.tail.Load() &^ (closedBit | idleBit)) // what was reserved before the request
		close(f)
		return false, true
	case <-l.wake:
	case <-tick:
	}
	return false, false
}

// drain writes every published record to the sink in batches and returns how many it took.
func (l *decisionLog) drain() int {
	n := 0
	for {
		batch := l.ring.take(l.batch[:0], time.Now())
		if len(batch) == 0 {
			// Keep no request alive. (Not after each write: a run's records in the batch are
			// written again as they are, see recordRing.copies.)
			clear(l.batch[:cap(l.batch)])
			l.ring.copies = 0
			l.reportDrops(false)
			return n
		}
		n += len(batch)
		if err := l.write(batch); err != nil {
			l.failed.Add(uint64(len(batch)))
			l.log.Warn("teamgate: decision log: sink write failed; records lost", "records", len(batch), "error", err)
		} else {
			l.written.Add(uint64(len(batch)))
		}
	}
}

// write hands batch to the sink. A Write that panics has failed: the sink runs on the log's
// goroutine, where its panic would end the host's process, and no caller could recover it.
func (l *decisionLog) write(batch []DecisionRecord) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the sink panicked: %v", p)
		}
	}()
	return l.sink.Write(l.ctx, batch)
}

// drainTo drains until every position below end has been taken. A position reserved is always
// published, and its producer waits for nothing and runs no code but the engine's in between
// (Engine.record, openRun: attributes are copied by kind, never marshalled), but the
// drainer stops at the first slot not yet published, and a decision that returned may be queued
// behind it: Flush and Close wait for that producer here, not for the sink.
func (l *decisionLog) drainTo(end uint64) {
	for l.drain(); l.ring.head < end; l.drain() {
		runtime.Gosched()
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
		l.end = l.ring.tail.Or(closedBit) &^ (closedBit | idleBit)
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
	// The drainer took every position reserved before close (drainTo); none is reserved after.
	return err
}

// record makes the log's record of one call in the ring. A compiled decision of a request
// without Owner, MinRevision or attributes (t.verdict is its cell: decideIn) is a cell's record
// (setCell), written here, its position reserved in one CAS when below alert (as openRun's),
// else the long way (recordCell). Any other call's record is recordOther's. A cell's record is
// written here, not in a function of its own: the call cost the compiled path 10 instructions per
// decision (bench/RESULTS.md, "Stop 19: decision log on the compiled path").
func (e *Engine) record(req *Request, d *Decision, t *decisionTrace, err error) {
	v, lat := t.verdict, uint64(t.latency)
	sub, res := uint64(len(req.Subject)), uint64(len(req.Resource))
	// The lengths are those of validated names (the decision found or checked them), the latency
	// under 2^45 ns (9.8 hours): checked all the same, in one test.
	if v == (rego.VerdictView{}) || err != nil || uint64(len(req.Owner))|req.MinRevision|sub>>8|res>>9|lat>>(64-cellLatencyShift)|
		uint64(*(*uintptr)(unsafe.Pointer(&req.Attributes))) != 0 { // a nil map or not
		e.recordOther(req, d, t, err)
		return
	}
	m := kindCell | sub<<cellSubjectShift | res<<cellResourceShift | lat<<cellLatencyShift
	q := &e.declog.ring
	if pos := q.tail.Load(); pos < q.alert.Load() && q.tail.CompareAndSwap(pos, pos+1) {
		s := q.slotAt(pos)
		s.setCell(req, d, v, m)
		s.state.Store(published(pos))
		return
	}
	e.declog.recordCell(req, d, v, m)
}

// setCell writes into s the record of a compiled decision d of req by cell v, its meta word m
// (see Engine.record): the first line alone, field by field (a composite literal is built aside
// and copied), and every word of it, the action's too (nil), with the state that publishes it
// (Engine.record). Leaving one word unwritten cost a compiled decision 3 points of paired on/off
// at 65,536 slots and 1 at 4,096 (bench/RESULTS.md, "Stop 21: decision log record"): a core that
// stores to every byte of a line it does not hold may claim it without reading it first, where a
// line written but for one word is read from memory (or from the drainer's core).
func (s *logSlot) setCell(req *Request, d *Decision, v rego.VerdictView, m uint64) {
	s.rev, s.ref, s.subject, s.resource, s.action, *s.cell(), s.meta = d.Revision, unsafe.Pointer(unsafe.SliceData(d.Reasons)),
		unsafe.StringData(req.Subject), unsafe.StringData(req.Resource), nil, v, m
}

// recordCell is Engine.record of a cell's record whose position is reserved the long way
// (reserve, publish).
//
//go:noinline
func (l *decisionLog) recordCell(req *Request, d *Decision, v rego.VerdictView, m uint64) {
	s, pos, woke := l.reserve()
	if s == nil {
		return
	}
	s.setCell(req, d, v, m)
	l.publish(&s.state, pos, woke)
}

// recordOther is Engine.record of any call whose record is not a cell's: a long record in its
// slot when it fits (inSlot), else made whole (recordFull).
//
//go:noinline
func (e *Engine) recordOther(req *Request, d *Decision, t *decisionTrace, err error) {
	if !inSlot(req, d, t, err) {
		e.recordFull(req, d, t, err)
		return
	}
	s, pos, woke := e.declog.reserve()
	if s == nil {
		return
	}
	s.setLong(req, d, t)
	e.declog.publish(&s.state, pos, woke)
}

// setLong writes into s a long record (recordOther): both lines but a run's four words.
func (s *logSlot) setLong(req *Request, d *Decision, t *decisionTrace) {
	s.rev, s.ref = d.Revision, unsafe.Pointer(unsafe.SliceData(d.Reasons))
	s.subject, s.resource = unsafe.StringData(req.Subject), unsafe.StringData(req.Resource)
	s.action, s.policy = unsafe.StringData(req.Action), unsafe.Pointer(unsafe.StringData(t.policy.Fingerprint()))
	s.owner, s.role, s.minRev = unsafe.StringData(req.Owner), unsafe.StringData(d.Role), req.MinRevision
	s.meta2 = uint64(len(req.Owner)) | uint64(len(d.Role))<<16
	s.meta = kindLong | uint64(*(*uint8)(unsafe.Pointer(&d.Allowed)))<<2 | uint64(t.path)<<3 | uint64(len(req.Subject))<<10 |
		uint64(len(req.Resource))<<18 | uint64(len(req.Action))<<27 | uint64(len(d.Reasons))<<35 | uint64(t.latency)<<39
}

// recordFull is record of a call that is made whole (not inSlot: nothing is allocated but on
// a failed call or one with attributes, Suggest or suggestions); attributes are copied, since the
// caller may reuse its map once the call has returned.
//
//go:noinline
func (e *Engine) recordFull(req *Request, d *Decision, t *decisionTrace, err error) {
	p := t.policy
	if p == nil { // not decided
		p = e.policy.Load()
	}
	if err != nil {
		// Code that is not the engine's (the Directory's, the error's) runs before the slot is
		// reserved: a reserved slot is always published (drainTo waits for it).
		d = &Decision{Role: "none", Reasons: []Reason{}, Revision: e.dir.Revision()}
		err = errors.New(err.Error())
	}
	s, pos, woke := e.declog.reserve()
	if s == nil {
		return
	}
	s.setFull(req, d, p, t, err)
	e.declog.publish(&s.state, pos, woke)
}

// observed is Authorize with metrics or spans: the observer (metrics.go) times the decision
// and the log records it, unless the request is a listing's or an analysis'.
func (e *Engine) observed(ctx context.Context, req *Request) (Decision, error) {
	return e.obs.authorize(ctx, e, req, e.logs(req))
}

// logs reports whether req's decision goes to the decision log.
func (e *Engine) logs(req *Request) bool { return e.declog != nil && !req.unlogged }

// loggedSuggesting is Authorize of a logged request with Suggest (without metrics or spans):
// decided with a trace, then recorded.
func (e *Engine) loggedSuggesting(ctx context.Context, req *Request) (Decision, error) {
	var t decisionTrace
	d, err := e.authorizeSuggesting(ctx, *req, &t)
	e.record(req, &d, &t, err)
	return d, err
}

// copyAttributes copies attributes as the policy reads them (rego.Attributes.JSON: by kind,
// calling no method of the caller's types, numbers exact as json.Number); attributes the request
// could not use are logged as {"unloggable": why}.
func copyAttributes(m map[string]any) map[string]any {
	a, err := rego.NewAttributes(m)
	var out map[string]any
	if err == nil {
		out, err = a.JSON()
	}
	if err != nil {
		return map[string]any{"unloggable": err.Error()}
	}
	return out
}

// decisionTrace is how a decision was made, for metrics, spans and the log.
type decisionTrace struct {
	path DecisionPath
	// untimed: the log does not time the decision (metrics time every decision themselves, or
	// it is not logged); else the log times what is cheap to time. (Zero when logged: a trace of
	// all zeros costs the logged decision least to set.)
	untimed bool
	policy  *rego.Policy  // the policy in force; nil when not decided
	latency time.Duration // 0: not timed
	// verdict is the decision table's cell that decided, on the compiled path (decideIn; never
	// for a request with Suggest, which is decided by full evaluation); zero on any other path
	// and when the cell's evaluation failed.
	verdict rego.VerdictView
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
// written to the sink, those of decisions still being logged when Close was called included)
// and waits for its goroutine. When ctx ends first, the sink's context is cancelled, the records
// whose writes then fail are lost (Stats.DecisionLogFailed) and Close returns ctx's error once
// the goroutine has returned (so a sink must honour its context). Close closes
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
