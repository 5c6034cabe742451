package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
	"github.com/teamgate/teamgate/store"
)

// Directory is what the engine needs from a store: consistent snapshots, revisions and writes.
// *store.Store implements it, and so does anything that serves the store's Readers (a wrapper, a
// replica). Every read goes through View; what a cached answer depends on is what its View's
// Reader recorded (store.Reader.Track), so a Directory has nothing else to say about caching.
// A closed Directory's View fails with teamgate.ErrClosed, and the Deps it recorded are never
// current again, so every Engine call then fails with teamgate.ErrClosed.
type Directory interface {
	// View runs fn with a consistent snapshot.
	View(fn func(r store.Reader) error) error
	// Revision is the revision of the last committed write. It is published after the write's
	// stamps are bumped, so a store.Deps found current after reading it holds at that revision
	// (a cached decision is labelled with it; one served from its L1 word alone, with the
	// revision of the store whose stamps its Deps watch, store.Epoch.Revision: the same value
	// for a store.Store and a cluster node). An implementation whose revision differs from that
	// store's gets no such hits: once a check of a cached decision sees it outside the store's,
	// every hit is checked and labelled with this revision.
	Revision() uint64
	// WaitRevision blocks until the directory has reached rev (teamgate.ErrStale when ctx ends).
	WaitRevision(ctx context.Context, rev uint64) error
	// Apply commits changes as one atomic batch and returns the new revision.
	Apply(ctx context.Context, changes ...store.Change) (uint64, error)
}

// PersistentCache is an optional capability of a Directory: a key-value cache kept beside the
// directory that survives a restart, with the directory's stamps to check what a cached value
// depended on (store.Deps) after the restart. New checks for it once: when the Directory has it
// and Persistent reports true, the decision cache and the effective-settings cache keep a second
// tier there (an in-memory directory's cache would only duplicate their in-memory tiers).
// *store.Store implements it.
type PersistentCache interface {
	// Persistent reports whether values survive a restart.
	Persistent() bool
	// CacheGet returns the value under key; false when there is none or the cache is closed.
	CacheGet(key string) ([]byte, bool)
	// CachePut stores val under key; a lost write is only a future miss.
	CachePut(key string, val []byte)
	// DecodeDeps reads an encoded store.Deps (from data's start) back against the directory's
	// current stamps and returns the bytes after it.
	DecodeDeps(data []byte) (store.Deps, []byte, error)
}

var (
	_ Directory       = (*store.Store)(nil)
	_ PersistentCache = (*store.Store)(nil)
)

// Option configures New.
type Option func(*config) error

type config struct {
	modules    []rego.Module
	data       []map[string]any
	logger     *slog.Logger
	cacheSize  int
	cacheSet   bool
	noCompiled bool
	budget     time.Duration
	budgetSet  bool
	observe    observeConfig // WithMetrics, WithTracerProvider (metrics.go, trace.go)
	sink       DecisionSink  // WithDecisionLog
	logQueue   int
	dropEvery  time.Duration // DecisionLogDropReportInterval unless a test sets it
}

func errInvalidSize(n int) error {
	return teamgate.Invalid("cache size", fmt.Sprint(n), "must be >= 0")
}

// WithModules adds authors' Rego modules to the default policy. Default: none.
func WithModules(modules ...rego.Module) Option {
	return func(c *config) error {
		c.modules = append(c.modules, modules...)
		return nil
	}
}

// WithPolicyDir loads every .rego and .json file under dir (see rego.LoadDir). Default: none.
func WithPolicyDir(dir string) Option {
	return func(c *config) error {
		mods, data, err := rego.LoadDir(dir)
		if err != nil {
			return err
		}
		c.modules = append(c.modules, mods...)
		c.data = append(c.data, data...)
		return nil
	}
}

// WithData merges a data document over the default data.json. Default: none.
func WithData(doc map[string]any) Option {
	return func(c *config) error {
		c.data = append(c.data, doc)
		return nil
	}
}

// WithCompiledPath turns the compiled decision path on or off. Default on: while the policy's
// rules are the default ones (no modules; authors' data that defines no teamgate.ext, see
// rego.Policy.Table), a request without attributes is answered from the policy's decision table
// (rego.Table), computed from the Rego policy itself.
func WithCompiledPath(enabled bool) Option {
	return func(c *config) error {
		c.noCompiled = !enabled
		return nil
	}
}

// DefaultEvalBudget is the time budget of one Rego evaluation of a policy with authors' modules
// unless WithEvalBudget sets another: thousands of times what a decision costs, so in practice
// only a runaway module reaches it. The budget counts wall time from the evaluation's start, as
// OPA's own deadline (rego.EvalContext under a context deadline) does: Go has no per-goroutine
// CPU clock, and what a host bounds is how long a request waits. So a host overloaded enough
// that an evaluating goroutine is off its core for the whole budget (seen once, under -race at a
// load of 15–27 on 2 cores) denies that decision with reason error — failing closed, counted in
// Stats.OverBudget and teamgate_evaluation_over_budget_total; give such a host a larger budget.
const DefaultEvalBudget = time.Second

// WithEvalBudget bounds the time one Rego evaluation of a decision may take (Authorize, Explain,
// and the permission check of admissions, and the first computation of a decision table cell)
// while authors' modules are loaded, so one slow author's module cannot stall a host; the
// default rules (with authors' data) are bounded by construction and get no budget (data that
// defines teamgate.ext gets it, harmlessly), so a busy host never denies them for slowness. An
// evaluation still running after d is stopped, denies with reason "error" saying the budget was
// exceeded, and is counted in Stats.OverBudget. 0 turns the budget off (the request's context
// still applies); a negative d is an error matching teamgate.ErrInvalid. Default
// DefaultEvalBudget. Decisions answered by the cache, or by a decision table cell computed
// before, evaluate nothing; a cell that ran past the budget is not kept (the next request
// computes it again).
func WithEvalBudget(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return teamgate.Invalid("evaluation budget", d.String(), "must be >= 0 (0: no budget)")
		}
		c.budget, c.budgetSet = d, true
		return nil
	}
}

// WithLogger receives evaluation errors. Default: discarded.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		c.logger = l
		return nil
	}
}

// Engine decides requests against a Directory with a Rego policy. It is safe for concurrent
// use; SetPolicy swaps the policy atomically without blocking readers.
type Engine struct {
	dir    Directory
	log    *slog.Logger
	policy atomic.Pointer[rego.Policy]
	// afterDiff, tests only: runs in SetPolicyIf between a diff that matched and the swap.
	afterDiff func()

	settingsCache *settingsCache
	decisions     *decisionCache  // nil when turned off
	compiled      bool            // the policy's decision table may answer (WithCompiledPath)
	disk          PersistentCache // the Directory's, when persistent; nil otherwise
	budget        time.Duration   // per Rego evaluation (WithEvalBudget); 0: none
	obs           *observer       // metrics and spans; nil when neither is asked for
	declog        *decisionLog    // WithDecisionLog; nil: decisions are not logged

	evalErrors atomic.Uint64
	overBudget atomic.Uint64
	evaluated  atomic.Uint64 // decisions made by full evaluation of the request's input
	compiledN  atomic.Uint64 // decisions answered by the compiled path's decision table

	// facts is the Directory when it is a *store.Store itself (a type embedding one included,
	// any other Directory is read through View): the compiled path reads a decision's facts with
	// store.Store.ViewAccess, which takes no callback, so Authorize's per-decision state stays on
	// its stack. A concrete type, not an interface: the Access it fills is on that stack too.
	facts    *store.Store
	readings sync.Pool // *reading: Authorize's per-decision state, when facts is nil
}

// New builds an engine over dir with the default policy plus the options' modules and data.
func New(ctx context.Context, dir Directory, opts ...Option) (*Engine, error) {
	if dir == nil {
		return nil, teamgate.Invalid("directory", "nil", "a store is required")
	}
	var c config
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	p, err := rego.New(ctx, c.modules, c.data...)
	if err != nil {
		return nil, err
	}
	if !c.cacheSet {
		c.cacheSize = DefaultDecisionCacheSize
	}
	if !c.budgetSet {
		c.budget = DefaultEvalBudget
	}
	e := &Engine{dir: dir, log: c.logger, compiled: !c.noCompiled, budget: c.budget}
	e.decisions = newDecisionCache(c.cacheSize, &e.policy)
	if pc, ok := dir.(PersistentCache); ok && pc.Persistent() {
		e.disk = pc
	}
	if st, ok := dir.(*store.Store); ok {
		e.facts = st // the store itself only: a type wrapping one keeps its View the one way in
	}
	e.settingsCache = newSettingsCache(e.disk)
	e.setPolicy(p)
	if e.obs, err = c.observe.build(e); err != nil {
		return nil, err
	}
	if c.sink != nil {
		if c.logQueue == 0 {
			c.logQueue = DefaultDecisionLogQueue
		}
		if c.dropEvery == 0 {
			c.dropEvery = DecisionLogDropReportInterval
		}
		e.declog = newDecisionLog(c.sink, c.logQueue, c.logger, c.dropEvery)
	}
	return e, nil
}

// SetPolicy compiles the default policy plus modules and data and swaps it in. Decisions in
// flight finish with the old policy; on error the old policy stays.
func (e *Engine) SetPolicy(ctx context.Context, modules []rego.Module, data ...map[string]any) error {
	p, err := rego.New(ctx, modules, data...)
	if err != nil {
		return err
	}
	e.setPolicy(p)
	return nil
}

// setPolicy swaps the policy; its decision table comes with it.
func (e *Engine) setPolicy(p *rego.Policy) {
	e.policy.Store(p)
	e.policySwapped()
}

// policySwapped is called after every swap of the policy: no cached decision of the old policy is
// a fast hit afterwards (decisionCache.stamp).
func (e *Engine) policySwapped() {
	if e.decisions != nil {
		e.decisions.policySwapped()
	}
}

// Directory returns the directory the engine reads.
func (e *Engine) Directory() Directory { return e.dir }

// Policy returns the policy in force.
func (e *Engine) Policy() *rego.Policy { return e.policy.Load() }

// Stats are the engine's counters.
type Stats struct {
	EvalErrors    uint64 // evaluations that failed and denied with reason "error"
	OverBudget    uint64 // of EvalErrors, those stopped by the time budget (WithEvalBudget)
	CacheHits     uint64 // decisions served from the in-memory decision cache
	CacheDiskHits uint64 // decisions served from the decision cache's Badger tier
	CacheMisses   uint64 // cacheable decisions that had to be evaluated
	// Every decision not served from the cache is made on exactly one path: Evaluated counts
	// full Rego evaluations of the request's input (explanations included), Compiled the
	// decisions the compiled path's decision table answered.
	Evaluated uint64
	Compiled  uint64
	// The decision log (WithDecisionLog): records given to the sink, records dropped because the
	// queue was full or the engine closed, and records lost in failed sink writes.
	DecisionLogWritten uint64
	DecisionLogDropped uint64
	DecisionLogFailed  uint64
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	s := Stats{EvalErrors: e.evalErrors.Load(), OverBudget: e.overBudget.Load(), Evaluated: e.evaluated.Load(), Compiled: e.compiledN.Load()}
	if e.decisions != nil {
		s.CacheHits, s.CacheDiskHits, s.CacheMisses = e.decisions.hits(), e.decisions.diskHits.Load(), e.decisions.misses.Load()
	}
	if l := e.declog; l != nil {
		s.DecisionLogWritten, s.DecisionLogDropped, s.DecisionLogFailed = l.written.Load(), l.dropped.Load(), l.failed.Load()
	}
	return s
}

// Request is one authorization question.
type Request struct {
	Subject    string         `json:"subject"`
	Action     string         `json:"action"`
	Resource   string         `json:"resource"`
	Owner      string         `json:"owner,omitempty"` // context owner for one-part project references
	Attributes map[string]any `json:"attributes,omitempty"`
	// MinRevision makes the engine wait until its store has reached this revision; when ctx ends
	// first, Authorize returns ErrStale.
	MinRevision uint64 `json:"min_revision,omitempty"`
	// Suggest asks, on a deny, for Decision.Suggestions: the smallest directory changes that
	// would allow the request and who may make them (see Suggestion). Such a request is decided
	// by full evaluation and not cached; without it nothing is spent on suggestions.
	Suggest bool `json:"suggest,omitempty"`
	// unlogged keeps the decision out of the decision log: listings and analyses.
	unlogged bool
}

// Reason is a stable code and a message for people.
type Reason = rego.Reason

// Decision is the answer to a Request. The zero Decision denies.
type Decision struct {
	Allowed  bool     `json:"allowed"`
	Role     string   `json:"role"`
	Reasons  []Reason `json:"reasons"`
	Revision uint64   `json:"revision"`
	// Suggestions are set on a deny when the request asked (Request.Suggest); [] when nothing
	// the directory can change would allow it.
	Suggestions []Suggestion `json:"suggestions,omitempty"`
}

// Has reports whether the decision carries a reason with this code.
func (d Decision) Has(code rego.Code) bool {
	return slices.ContainsFunc(d.Reasons, func(r Reason) bool { return r.Code == code })
}

// Authorize decides one request. Malformed input (unknown action, wrong kind of resource,
// malformed reference or attribute) is an error matching teamgate.ErrInvalid; a missing org,
// team or project is a deny with reason not_found; a failed evaluation is a deny with reason
// error.
//
// Decisions on requests without attributes are cached in memory (WithDecisionCache). A cached
// decision is served only while the policy and every fact its snapshot served (as the store
// recorded them; see the package doc) are unchanged, so after a write returns no decision made
// before it is served if the write could change it, and an unrelated write evicts nothing. A
// served decision's Revision is the store's current revision. Decision.Reasons may be shared
// with the cache: do not modify it. Once the store is closed, no cached decision is served:
// Authorize fails with teamgate.ErrClosed.
//
// With a decision log (WithDecisionLog) each call queues a record of its decision or error.
func (e *Engine) Authorize(ctx context.Context, req Request) (Decision, error) {
	return e.authorize(ctx, &req, nil) // inlined: the decision costs no extra call
}

// authorize is Authorize; with a non-nil t it is observed (metrics.go) or logged
// (decisionlog.go) and says there how the decision was made. (A pointer to the Request, so that
// the extra call copies none.)
func (e *Engine) authorize(ctx context.Context, req *Request, t *decisionTrace) (d Decision, err error) {
	if t == nil && e.obs != nil {
		return e.observed(ctx, req)
	}
	p := e.policy.Load()
	if req.Suggest || e.decisions == nil || len(req.Attributes) > 0 || !p.Deterministic() {
		if req.Suggest {
			if t == nil && e.logs(req) {
				return e.loggedSuggesting(ctx, req)
			}
			return e.authorizeSuggesting(ctx, *req, t)
		}
		var d Decision
		if t == nil && e.logs(req) {
			// Decided here with a trace, then recorded (no call of its own: bench/RESULTS.md,
			// "Stop 19: decision log on the compiled path").
			var tr decisionTrace
			err := e.decidePooled(ctx, req, nil, &tr, &d)
			e.record(req, &d, &tr, err)
			return d, err
		}
		err := e.decidePooled(ctx, req, nil, t, &d)
		return d, err
	}
	if err := ctx.Err(); err != nil {
		return e.refused(req, t, err)
	}
	if req.MinRevision > 0 {
		if err := e.dir.WaitRevision(ctx, req.MinRevision); err != nil {
			return e.refused(req, t, err)
		}
	}
	var key cacheKey
	e.decisions.key(&key, req.Subject, req.Action, req.Resource, req.Owner)
	// The revision (rev, read by get) is read before the entry is checked: the store publishes a
	// revision after bumping its stamps, so an entry still current afterwards holds at rev,
	// unless it was decided after rev, on a write published meanwhile (its own Revision is then
	// newer, and holds). Read after the check, a write in flight could label a decision it
	// changes with its own revision. A fast hit (no check) is served only when its group's epoch
	// read before rev is the one read after it and the word's stamp (decisionCache.get).
	at, m, rev, ok := e.decisions.get(&key, p, e.dir, &d) // d, the result, is zero
	if ok {
		d.Revision = max(d.Revision, rev)
		if t != nil {
			t.path, t.policy = PathCacheL1, p
			// A logged decision's policy is its entry's: a fast hit checks none, and a swap may
			// have landed since p was read, the new policy's decision cached meanwhile. (Only
			// when logged: metrics and spans name no policy, and the entry is a line more.)
			if e.logs(req) {
				if en := at.Load().served(&key, m, unsafe.SliceData(d.Reasons)); en != nil {
					t.policy = en.entry.policy
				}
			}
		} else if l := e.declog; l != nil && !req.unlogged {
			// Logged here, as the entry and the revision: the drainer makes the record. (A fast
			// hit whose entry was replaced since it read the word has none: logged in full.)
			if en := at.Load().served(&key, m, unsafe.SliceData(d.Reasons)); en != nil {
				latest := &en.logRun[runStripe()]
				if s, st, run := l.ring.runOf(latest); !s.joins(st, run, d.Revision, req.MinRevision) {
					l.openRun(en, latest, d.Revision, req.MinRevision)
				}
			} else {
				e.record(req, &d, &decisionTrace{path: PathCacheL1, policy: p}, nil)
			}
		}
		return d, nil
	}
	if t == nil && e.logs(req) {
		var tr decisionTrace
		d, err := e.miss(ctx, req, &key, p, rev, &tr)
		e.record(req, &d, &tr, err)
		return d, err
	}
	return e.miss(ctx, req, &key, p, rev, t)
}

// refused is authorize's return of an error met before a decision, recorded when logged.
func (e *Engine) refused(req *Request, t *decisionTrace, err error) (Decision, error) {
	if t == nil && e.logs(req) {
		e.record(req, &Decision{}, &decisionTrace{}, err)
	}
	return Decision{}, err
}

// miss is authorize for a cacheable request the in-memory tier does not hold: from the Badger
// tier, else decided and cached.
func (e *Engine) miss(ctx context.Context, req *Request, key *cacheKey, p *rego.Policy, rev uint64, t *decisionTrace) (Decision, error) {
	// A logged decision that consults the Badger tier is timed from the lookup: beside a Badger
	// read the clock costs little (a hit in memory is not timed).
	var start time.Duration
	if t != nil && !t.untimed && e.disk != nil {
		start = e.declog.clock()
	}
	if c, ok := e.fromDisk(key, p); ok {
		e.decisions.diskHits.Add(1)
		e.decisions.put(key, c)
		d := c.dec
		d.Revision = max(d.Revision, rev)
		if t != nil {
			t.path, t.policy = PathCacheL2, p
			if start != 0 {
				t.latency = e.declog.clock() - start
			}
		}
		return d, nil
	}
	e.decisions.misses.Add(1)
	entry := &cached{}
	var d Decision
	err := e.decidePooled(ctx, req, entry, t, &d)
	if err == nil && entry.policy != nil && !d.Has(rego.CodeError) {
		e.decisions.put(key, entry)
		e.toDisk(key, entry)
	}
	if start != 0 {
		t.latency = e.declog.clock() - start
	}
	return d, err
}

// decide validates req, reads its facts in one snapshot and evaluates the policy. With a non-nil
// entry it also records, in the same snapshot, what the decision depends on and fills entry.
// also (at most one) reads more facts in the same snapshot, after the decision's (admission).
//
// With explain set it always evaluates the full policy on the request's own input and also
// reads how the effective teams came about; otherwise the decision table may answer.
//
// The trace says how the decision was made when the engine logs decisions (a full evaluation,
// timed); it is empty otherwise.
func (e *Engine) decide(ctx context.Context, req Request, entry *cached, explain bool, also ...func(store.Reader) error) (*query, Decision, decisionTrace, error) {
	rd := &reading{explain: explain, also: also}
	rd.view = rd.read
	var d Decision
	var t decisionTrace // timed (not untimed) when logged
	tp := &t
	if e.declog == nil {
		tp = nil
	}
	err := e.decideIn(ctx, rd, &req, entry, &d, tp)
	return &rd.q, d, t, err
}

// decidePooled is decide for Authorize: no explanation, no extra reads, and on the compiled
// path it allocates only the reasons. Its state lives on the stack when the Directory reads a
// decision's facts without a callback (facts), else it comes from (and returns to) the
// engine's pool. A non-nil t is set to how the decision was made (decideIn). The decision is
// written to *d (set only when the error is nil): no copy of it on the way back up.
func (e *Engine) decidePooled(ctx context.Context, req *Request, entry *cached, t *decisionTrace, d *Decision) error {
	if e.facts != nil {
		var rd reading
		return e.decideIn(ctx, &rd, req, entry, d, t)
	}
	rd, _ := e.readings.Get().(*reading)
	if rd == nil {
		rd = &reading{}
		rd.view = rd.read
	}
	if rd.msg == nil {
		rd.msg = make([]byte, 0, 256)
	}
	err := e.decideIn(ctx, rd, req, entry, d, t)
	*rd = reading{view: rd.view, msg: rd.msg[:0]} // keep no request's facts alive in the pool
	e.readings.Put(rd)
	return err
}

// reading is one decision's state while it reads its snapshot. View takes a callback, and a
// Directory is an interface, so whatever the callback captures escapes to the heap: the
// callback is made once per reading (view, a method value) and readings are pooled.
type reading struct {
	q        query
	entry    *cached
	compiled bool
	explain  bool
	also     []func(store.Reader) error
	rev      uint64
	view     func(store.Reader) error // = read, made once; nil for a reading on the stack
	msg      []byte                   // scratch for the compiled path's messages, kept (bytes only)
}

// read is the View callback: it reads the decision's facts (and, with an entry, records what
// they depend on).
func (rd *reading) read(r store.Reader) error {
	q := &rd.q
	if rd.entry != nil {
		r = r.Track(&rd.entry.deps) // what the decision depends on is what this snapshot serves
	}
	rd.rev = r.Revision()
	if rd.compiled {
		q.acc = r.Access(q.org, q.team, q.project, q.req.Subject)
	} else {
		q.readAll(r)
	}
	if rd.explain {
		q.origin = teamsOrigin(r, scope.Ref{Org: q.org, Team: q.team, Project: q.project}, q.in.Resource)
		if q.dest != nil {
			q.destOrigin = teamsOrigin(r, *q.dest, q.in.Destination.Resource)
		}
	}
	for _, f := range rd.also {
		if err := f(r); err != nil {
			return err
		}
	}
	return nil
}

// decideIn decides into *d, which is zero, and sets it only when the error is nil. A non-nil t
// (metrics, spans, the decision log) is set, on success, to how the decision was made: its path
// and policy, the table's cell on the compiled path, and its latency when t is not untimed and
// the decision was a full evaluation.
func (e *Engine) decideIn(ctx context.Context, rd *reading, req *Request, entry *cached, d *Decision, t *decisionTrace) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := e.policy.Load()
	q := &rd.q
	table := p.Table()
	// On the compiled path a project request's names are split, not checked, before the read:
	// the store checked every name it holds (store.Change), so the names it finds need no check;
	// any it does not find are checked below, by prepare, before the decision. Not with extra
	// reads (admission): they would run on names not yet checked.
	unchecked := !rd.explain && len(rd.also) == 0 && e.compiled && table != nil && q.split(p, req)
	if !unchecked {
		if err := e.prepare(p, req, q); err != nil {
			return err
		}
	}
	if req.MinRevision > 0 {
		if err := e.dir.WaitRevision(ctx, req.MinRevision); err != nil {
			return err
		}
	}
	rd.entry = entry
	rd.compiled = !rd.explain && e.compiled && table != nil && q.attrs.Len() == 0 && q.dest == nil
	// A logged full evaluation is timed from reading its facts (the compiled path is not: two
	// clock reads would cost it a few per cent).
	var start time.Duration
	if !rd.compiled && t != nil && !t.untimed {
		start = e.declog.clock()
	}
	if err := e.readFacts(rd); err != nil {
		if unchecked { // a malformed request's own error comes first, as prepare gives it up front
			if perr := e.prepare(p, req, q); perr != nil {
				return perr
			}
		}
		return err
	}
	if unchecked && (q.acc.Missing != store.Found || q.acc.OrgRole == "") {
		// A name the store did not find (the resource's, or the subject's: not a member) may be
		// malformed: the request's error, exactly as prepare gives it up front, comes first.
		if err := e.prepare(p, req, q); err != nil {
			return err
		}
	}
	if rd.compiled {
		e.compiledN.Add(1)
		c := q.codes()
		v, err := table.VerdictOfCodes(ctx, q.spec, &c, e.budgetOf(p))
		e.fromVerdict(q, v, err, rd.rev, rd.msg, d)
		if t != nil {
			t.path, t.policy, t.verdict = PathCompiled, p, v // v is zero when err is not nil
		}
	} else {
		e.evaluated.Add(1)
		*d = e.eval(ctx, p, q, rd.rev)
		if t != nil {
			t.path, t.policy = PathRego, p
			if start != 0 {
				t.latency = e.declog.clock() - start
			}
		}
	}
	if entry != nil {
		entry.dec, entry.policy = *d, p
	}
	return nil
}

// readFacts reads the decision's facts in one snapshot: the compiled path's through the
// store's ViewAccess when the Directory is one, anything else in a View callback (rd.read).
func (e *Engine) readFacts(rd *reading) error {
	q := &rd.q
	if rd.compiled && len(rd.also) == 0 && e.facts != nil {
		var deps *store.Deps
		if rd.entry != nil {
			deps = &rd.entry.deps // what the decision depends on is what this snapshot serves
		}
		var err error
		rd.rev, err = e.facts.ViewAccess(&q.acc, q.org, q.team, q.project, q.req.Subject, deps)
		return err
	}
	if rd.view != nil {
		return e.dir.View(rd.view)
	}
	// rd is on decidePooled's stack, and a callback given to an interface escapes: read through
	// a copy on the heap (full evaluation only, where one allocation is noise).
	h := new(reading)
	*h = *rd
	err := e.dir.View(h.read)
	*rd = *h
	return err
}

// fromTable answers from p's decision table, which is not nil, on the role codes c, for the
// action of spec (p's own: Table.VerdictOfCodes) (fromVerdict, returned).
func (e *Engine) fromTable(ctx context.Context, p *rego.Policy, spec rego.Spec, q *query, c *rego.Codes, rev uint64, scratch []byte) Decision {
	var d Decision
	v, err := p.Table().VerdictOfCodes(ctx, spec, c, e.budgetOf(p))
	e.fromVerdict(q, v, err, rev, scratch, &d)
	return d
}

// fromVerdict answers with the decision table's verdict v, or its error err (a
// deny), into *d, which is zero (Authorize's own, written once: no copy on the way back);
// a reason keeps the message the policy gave it (an extension's), and the others are rendered
// from the request's own facts, as eval does; all of a decision's through scratch (nil: a buffer
// of its own) into one string allocated with the reasons (newReasons).
func (e *Engine) fromVerdict(q *query, v rego.VerdictView, err error, rev uint64, scratch []byte, d *Decision) {
	if err != nil {
		*d = e.failed(err, rev)
		return
	}
	role, n := v.Role(), v.NumCodes()
	d.Allowed, d.Role, d.Revision = v.Allow(), role, rev
	var ends [4]int
	if n > len(ends) { // no default rule gives that many
		d.Reasons = make([]Reason, n)
		for i := range n {
			c := v.Code(i)
			d.Reasons[i] = Reason{Code: c, Message: v.Message(i)}
			if d.Reasons[i].Message == "" {
				d.Reasons[i].Message = q.message(c, role, v.LimitOf(i))
			}
		}
		return
	}
	if scratch == nil {
		var buf [256]byte
		scratch = buf[:0]
	}
	b := scratch[:0]
	for i := range n {
		if m := v.Message(i); m != "" {
			b = append(b, m...)
		} else {
			b = q.appendMessage(b, v.Code(i), role, v.LimitOf(i))
		}
		ends[i] = len(b)
	}
	reasons, msgs := newReasons(n, b)
	start := 0
	for i := range n {
		reasons[i] = Reason{Code: v.Code(i), Message: msgs[start:ends[i]]}
		start = ends[i]
	}
	d.Reasons = reasons
}

func (e *Engine) eval(ctx context.Context, p *rego.Policy, q *query, rev uint64) Decision {
	if q.in == nil { // a Directory whose View returned without running the callback
		return e.failed(errors.New("the directory's View read nothing"), rev)
	}
	res, err := p.EvalWithin(ctx, q.in, e.budgetOf(p))
	if err != nil {
		return e.failed(err, rev)
	}
	if res.Reasons == nil {
		res.Reasons = []Reason{}
	}
	for i := range res.Reasons {
		if res.Reasons[i].Message == "" {
			res.Reasons[i].Message = q.message(res.Reasons[i].Code, res.Role, res.LimitOf(i))
		}
	}
	return Decision{Allowed: res.Allow, Role: res.Role, Reasons: res.Reasons, Revision: rev}
}

// budgetOf is the time budget of one evaluation of p, a full one or a table cell's: e's
// (WithEvalBudget) while authors extend the default rules, none for the default rules alone,
// which are bounded by construction.
func (e *Engine) budgetOf(p *rego.Policy) time.Duration {
	if !p.Extended() {
		return 0
	}
	return e.budget
}

// failed is the deny of an evaluation that failed (a full one or a table cell's), counted and
// logged.
func (e *Engine) failed(err error, rev uint64) Decision {
	if errors.Is(err, rego.ErrBudget) {
		e.overBudget.Add(1)
	}
	e.evalErrors.Add(1)
	e.log.Warn("teamgate: evaluation failed; denying", "error", err)
	return Decision{Role: "none", Revision: rev, Reasons: []Reason{{Code: rego.CodeError, Message: "evaluation failed (denied): " + err.Error()}}}
}

// BatchResult is one answer of AuthorizeBatch.
type BatchResult struct {
	Decision Decision
	Err      error // the request's own error (invalid input, stale); nil when decided
}

// AuthorizeBatch decides many requests, one result each, in order. An error in one request does
// not stop the others; the returned error is only for the context ending or the store being
// closed (teamgate.ErrClosed), which stop the batch.
func (e *Engine) AuthorizeBatch(ctx context.Context, reqs []Request) (out []BatchResult, err error) {
	ctx, sp := e.startSpan(ctx, "teamgate.AuthorizeBatch")
	defer func() { sp.endBatch(len(reqs), err) }()
	out = make([]BatchResult, len(reqs))
	for i, r := range reqs {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		out[i].Decision, out[i].Err = e.Authorize(ctx, r)
		if errors.Is(out[i].Err, teamgate.ErrClosed) {
			return out, out[i].Err
		}
	}
	return out, nil
}

// query is a validated request, ready to read its facts.
type query struct {
	req  Request
	spec rego.Spec // the policy's own catalog entry (Policy.Spec): read-only
	// The resource: its kind and names (team: of a team resource, or a project's team space).
	kind               scope.Kind
	org, team, project string
	dest               *scope.Ref // runs.transfer destination, when given
	attrs              rego.Attributes
	// acc is what the store served about the subject on the resource (Reader.Access): the
	// decision table's key and the messages are made of it.
	acc store.Access
	// in is the policy input, read for full evaluation only (readInput); nil on the compiled path.
	in *rego.Input
	// How the effective teams of the resource and destination came about (Explain only).
	origin, destOrigin *origin
}

// prepare validates a request without touching the store, into q, which is zero.
func (e *Engine) prepare(p *rego.Policy, req *Request, q *query) error {
	if err := scope.CheckSlug("subject", req.Subject); err != nil {
		return err
	}
	spec, ok := p.Spec(req.Action)
	if !ok {
		return teamgate.Invalid("action", req.Action, "not in the action catalog")
	}
	var ctxOwner scope.Owner
	if req.Owner != "" {
		o, err := scope.ParseOwner(req.Owner)
		if err != nil {
			return err
		}
		ctxOwner = o
	}
	kind := spec.Kind()
	if kind == scope.KindProject { // most requests: ParseResource's project case, without its copies
		ref, err := scope.ParseProject(req.Resource, ctxOwner)
		if err != nil {
			return fmt.Errorf("%s takes %s resource: %w", req.Action, article(kind), err)
		}
		q.org, q.team, q.project = ref.Org, ref.Team, ref.Project
	} else {
		res, err := scope.ParseResource(kind, req.Resource, ctxOwner)
		if err != nil {
			return fmt.Errorf("%s takes %s resource: %w", req.Action, article(kind), err)
		}
		q.org, q.team = res.Owner.Org, res.Owner.Team
	}
	q.req, q.spec, q.kind = *req, spec, kind
	if spec.ManagesMembers() {
		// The roles a member-managing request gives and changes: org roles on the org, else roles
		// a team member or grant may hold (the store's vocabulary: no other role can be given).
		valid, what := store.IsOrgRole, "not an org role"
		if kind != scope.KindOrg {
			valid, what = store.IsTeamRole, "not a "+string(kind)+" role ("+strings.Join(store.TeamRoles(), ", ")+")"
		}
		for _, k := range []string{"target_role", "target_current_role"} {
			v, present := req.Attributes[k]
			if !present {
				continue
			}
			s, isStr := v.(string)
			if !isStr || !valid(s) {
				return teamgate.Invalid("attribute "+k, fmt.Sprint(v), what)
			}
		}
	}
	if spec.DestinationRole() != "" {
		if v, present := req.Attributes["destination"]; present {
			s, isStr := v.(string)
			if !isStr {
				return teamgate.Invalid("attribute destination", fmt.Sprint(v), "not a project reference string")
			}
			ref, err := scope.ParseFullProject(s)
			if err != nil {
				return err
			}
			q.dest = &ref
		}
	}
	var err error
	if q.attrs, err = rego.NewAttributes(req.Attributes); err != nil {
		return err
	}
	return nil
}

// split is prepare's first step on the compiled path, for the usual request: a project action
// on a reference `org/project` or `org/team/project` (separators '/' or '.'), no owner, no
// attributes, no revision to wait for, a subject of 1 to scope.MaxSlugLen bytes. It fills q as
// prepare would, but checks only the reference's shape (two or three non-empty parts of at most
// scope.MaxSlugLen bytes), not that its parts and the subject are slugs: the caller reads the
// store, where only slugs are found, and calls prepare on any name it did not find. False, with
// q untouched, for any other request (prepare then checks it first).
func (q *query) split(p *rego.Policy, req *Request) bool {
	if len(req.Attributes) > 0 || req.Owner != "" || req.MinRevision > 0 || req.Subject == "" || len(req.Subject) > scope.MaxSlugLen {
		return false
	}
	s := req.Resource
	if len(s) > 3*scope.MaxSlugLen+2 {
		return false
	}
	spec, ok := p.Spec(req.Action)
	if !ok || spec.Kind() != scope.KindProject {
		return false
	}
	var cut [2]int // the separators' positions
	n := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '/' || c == '.' {
			if n == len(cut) {
				return false
			}
			cut[n] = i
			n++
		}
	}
	switch {
	case n == 1 && 0 < cut[0] && cut[0] < len(s)-1 && cut[0] <= scope.MaxSlugLen && len(s)-cut[0]-1 <= scope.MaxSlugLen:
		q.org, q.project = s[:cut[0]], s[cut[0]+1:]
	case n == 2 && 0 < cut[0] && cut[0]+1 < cut[1] && cut[1] < len(s)-1 &&
		cut[0] <= scope.MaxSlugLen && cut[1]-cut[0]-1 <= scope.MaxSlugLen && len(s)-cut[1]-1 <= scope.MaxSlugLen:
		q.org, q.team, q.project = s[:cut[0]], s[cut[0]+1:cut[1]], s[cut[1]+1:]
	default:
		return false
	}
	q.req, q.spec, q.kind = *req, spec, scope.KindProject
	return true
}

// article is word with its indefinite article: "an org", "a project" (appendArticle).
func article[S ~string](word S) string { return string(appendArticle(nil, string(word))) }

// appendArticle appends word with its indefinite article: "an admin", "a member".
func appendArticle(b []byte, word string) []byte {
	if word != "" && strings.IndexByte("aeiouAEIOU", word[0]) >= 0 {
		return append(append(b, "an "...), word...)
	}
	return append(append(b, "a "...), word...)
}

// facts are what the store served about subject on a resource (Reader.Access), as the policy
// input's subject and resource, but for the subject's team roles (the caller reads them).
// Resolution comes first (SPEC §3, §4): on a resource that does not exist nothing about the
// subject is read, and the decision is not_found for everyone.
func facts(a *store.Access, kind scope.Kind, subject, org, team, project string) (rego.Subject, rego.Resource) {
	s := rego.Subject{ID: subject, OrgRole: "none", Grant: a.Grant, BreakGlass: a.BreakGlass}
	f := rego.Resource{Kind: kind, Org: org, Team: team, Project: project, Teams: []string{}}
	if a.Missing != store.Found {
		f.Missing = missing(a.Missing, org, team, project)
		return s, f
	}
	f.Exists = true
	if a.OrgRole != "" {
		s.OrgRole = a.OrgRole
	}
	if a.Teams != nil {
		f.Teams = a.Teams
	}
	f.Restricted = a.Restricted
	f.Labels = a.Labels
	return s, f
}

// missing is the not_found message of a reference's missing part.
func missing(m store.Missing, org, team, project string) string {
	switch m {
	case store.MissingOrg:
		return "org " + org + " does not exist"
	case store.MissingTeam:
		return "team " + org + "/" + team + " does not exist"
	case store.MissingProject:
		return "project " + org + "/" + project + " does not exist"
	case store.MissingFromTeamSpace:
		return "project " + project + " is not in team space " + org + "/" + team
	}
	return ""
}

// The facts a decision was made from, for its key and messages: the policy input's when there
// is one (full evaluation, what-if decisions), else the store's Access (the compiled path).

// orgRole is the subject's org role as the policy names it: "none" for non-members.
func (q *query) orgRole() string {
	switch {
	case q.in != nil:
		return q.in.Subject.OrgRole
	case q.acc.OrgRole == "":
		return "none"
	}
	return q.acc.OrgRole
}

func (q *query) grant() string {
	if q.in != nil {
		return q.in.Subject.Grant
	}
	return q.acc.Grant
}

// teams are the project's effective teams.
func (q *query) teams() []string {
	if q.in != nil {
		return q.in.Resource.Teams
	}
	return q.acc.Teams
}

// missingText is what does not exist (the not_found message).
func (q *query) missingText() string {
	if q.in != nil {
		return q.in.Resource.Missing
	}
	return missing(q.acc.Missing, q.org, q.team, q.project)
}

// resource is the policy input's resource made of the facts read (q.acc).
func (q *query) resource() rego.Resource {
	_, f := facts(&q.acc, q.kind, q.req.Subject, q.org, q.team, q.project)
	return f
}

// readAll reads the subject's facts and the whole policy input (see readInput).
func (q *query) readAll(r store.Reader) {
	q.acc = r.Access(q.org, q.team, q.project, q.req.Subject)
	q.in = q.readInput(r)
}

// readInput builds the policy input from the facts read (q.acc) and reads the rest the full
// policy reads: the subject's team roles in the org, and the runs.transfer destination's facts.
func (q *query) readInput(r store.Reader) *rego.Input {
	in := &rego.Input{Action: q.req.Action, Attributes: q.attrs}
	in.Subject, in.Resource = inputFacts(r, &q.acc, q.kind, q.req.Subject, q.org, q.team, q.project)
	if d := q.dest; d != nil {
		a := r.Access(d.Org, d.Team, d.Project, q.req.Subject)
		s, f := inputFacts(r, &a, scope.KindProject, q.req.Subject, d.Org, d.Team, d.Project)
		in.Destination = &rego.Destination{Subject: s, Resource: f}
	}
	return in
}

// inputFacts are facts with the subject's team roles in the org, read from r: the policy
// input's subject and resource for a full evaluation.
func inputFacts(r store.Reader, a *store.Access, kind scope.Kind, subject, org, team, project string) (rego.Subject, rego.Resource) {
	s, f := facts(a, kind, subject, org, team, project)
	if f.Exists {
		s.TeamRoles = r.TeamRoles(org, subject).Map()
	}
	return s, f
}

// codesOf is the decision table's key (rego.Codes) for role facts given by name rather than read
// from the store (whose Access serves them as codes, query.codes): whether the resource exists,
// the subject's org role ("" or "none" for a non-member), grant ("" for none, breakGlass its
// mark) and the roles it holds in the project's effective teams (in the team, for a team
// action), and whether the project restricts. A role outside the store's vocabulary is an error
// matching teamgate.ErrInvalid: the table has no cell for it.
func codesOf(exists bool, orgRole, grant string, breakGlass bool, teamRoles []string, restricted bool) (rego.Codes, error) {
	c := rego.Codes{Exists: exists, BreakGlass: breakGlass, Restricted: restricted}
	var ok bool
	if c.OrgRole, ok = rego.OrgRoleCode(orgRole); !ok {
		return rego.Codes{}, teamgate.Invalid("org role", orgRole, "not a role of the store's vocabulary")
	}
	if c.Grant, ok = rego.RoleCode(grant); !ok {
		return rego.Codes{}, teamgate.Invalid("grant role", grant, "not a role of the store's vocabulary")
	}
	for _, r := range teamRoles {
		code, ok := rego.RoleCode(r)
		if !ok {
			return rego.Codes{}, teamgate.Invalid("team role", r, "not a role of the store's vocabulary")
		}
		if code > 0 {
			c.TeamRoles |= 1 << (code - 1)
		}
	}
	return c, nil
}

// codes reduces the facts read to the decision table's key, its roles as codes.
func (q *query) codes() rego.Codes {
	return rego.Codes{Exists: q.acc.Missing == store.Found, OrgRole: q.acc.OrgCode, Grant: q.acc.GrantCode,
		BreakGlass: q.acc.BreakGlass, TeamRoles: uint8(q.acc.TeamRoles), Restricted: q.acc.Restricted}
}
