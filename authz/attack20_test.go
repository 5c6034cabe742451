package authz

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// attack20Call is one Authorize call as its caller saw it.
type attack20Call struct {
	req Request
	d   Decision
	err error
}

// attack20Decide decides reqs in order on e, flushing the log after each (records then reach
// the sink in call order, hits included), and returns the calls.
func attack20Decide(t *testing.T, e *Engine, reqs []Request) []attack20Call {
	t.Helper()
	var calls []attack20Call
	for _, r := range reqs {
		d, err := e.Authorize(t.Context(), r)
		calls = append(calls, attack20Call{r, d, err})
		require.NoError(t, e.FlushDecisionLog(t.Context()))
	}
	return calls
}

// attack20Check compares each record with its call, field by field: the request as made, the
// decision returned (or, for a failed call, its error), the policy in force.
func attack20Check(t *testing.T, e *Engine, calls []attack20Call, recs []DecisionRecord) {
	t.Helper()
	require.Len(t, recs, len(calls))
	for i, c := range calls {
		r := recs[i]
		require.Equal(t, c.req, r.Request, "record %d: request", i)
		require.Equal(t, e.Policy().Fingerprint(), r.Policy, "record %d: policy", i)
		require.False(t, r.Time.IsZero(), "record %d: time", i)
		if c.err != nil {
			require.Equal(t, PathNone, r.Path, "record %d", i)
			require.Equal(t, c.err.Error(), r.Error, "record %d", i)
			continue
		}
		require.Empty(t, r.Error, "record %d", i)
		require.NotEqual(t, PathNone, r.Path, "record %d", i)
		require.Equal(t, c.d.Allowed, r.Decision.Allowed, "record %d: allowed", i)
		require.Equal(t, c.d.Role, r.Decision.Role, "record %d: role", i)
		require.Equal(t, c.d.Revision, r.Decision.Revision, "record %d: revision", i)
		require.Equal(t, c.d.Reasons, r.Decision.Reasons, "record %d: reasons", i)
		require.Equal(t, c.d.Reasons == nil, r.Decision.Reasons == nil, "record %d: nil reasons", i)
		require.Equal(t, c.d.Suggestions, r.Decision.Suggestions, "record %d: suggestions", i)
	}
}

// TestAttack20ActionWithNULLogged: an author's catalog may name an action with a NUL byte (data
// names any string; a data file can write it as \u0000). Such a request is decided, cached and
// served, but the record of a cache hit was rebuilt from the entry's packed key by splitting it
// at NUL bytes, so it named another request: action "runs.x", resource "y", owner
// "acme/vision\x00".
func TestAttack20ActionWithNULLogged(t *testing.T) {
	t.Parallel()
	data := map[string]any{"teamgate": map[string]any{"actions": map[string]any{
		"runs.x\x00y":      map[string]any{"kind": "project", "role": "viewer"},
		"\x00":             map[string]any{"kind": "org", "org_roles": []any{"member"}},
		"a\x00b\x00c\x00d": map[string]any{"kind": "project", "role": "viewer"},
	}}}
	for _, cache := range []bool{true, false} {
		t.Run(fmt.Sprint("cache=", cache), func(t *testing.T) {
			t.Parallel()
			sink := &attackSink{}
			opts := []Option{WithData(data), WithDecisionLog(sink), WithDecisionLogQueue(2)}
			if !cache {
				opts = append(opts, WithDecisionCache(0))
			}
			e := newAcmeInternal(t, opts...)
			var reqs []Request
			for range 3 { // a miss, then hits
				reqs = append(reqs,
					Request{Subject: "bob", Action: "runs.x\x00y", Resource: "acme/vision"},
					Request{Subject: "bob", Action: "\x00", Resource: "acme"},
					Request{Subject: "vera", Action: "a\x00b\x00c\x00d", Resource: "vision", Owner: "acme"},
					Request{Subject: "bob", Action: "a\x00b\x00c\x00d", Resource: "acme/engineering/vision", MinRevision: 1},
				)
			}
			calls := attack20Decide(t, e, reqs)
			for _, c := range calls {
				require.NoError(t, c.err, "%q", c.req.Action)
			}
			require.True(t, calls[0].d.Allowed && calls[1].d.Allowed, "the catalog's actions decide")
			require.NoError(t, e.Close(t.Context()))
			attack20Check(t, e, calls, sink.recs)
		})
	}
}

// panicSink panics on every Write.
type panicSink struct{ calls int }

func (s *panicSink) Write(context.Context, []DecisionRecord) error {
	s.calls++
	panic("sink bug")
}

// TestAttack20SinkPanicIsAFailedWrite: a sink that panics ran on the log's own goroutine, so the
// panic killed the host's process (no caller could recover it), for an audit trail's bug. It is
// a failed write: its batch is counted lost (Stats.DecisionLogFailed), the log goes on, Close
// returns.
func TestAttack20SinkPanicIsAFailedWrite(t *testing.T) {
	t.Parallel()
	sink := &panicSink{}
	e := newAcmeInternal(t, WithDecisionLog(sink))
	req := Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	for range 3 {
		d, err := e.Authorize(t.Context(), req)
		require.NoError(t, err)
		require.True(t, d.Allowed)
		require.NoError(t, e.FlushDecisionLog(t.Context()))
	}
	require.NoError(t, e.Close(t.Context()))
	st := e.Stats()
	require.Equal(t, uint64(3), st.DecisionLogFailed)
	require.Zero(t, st.DecisionLogWritten)
	require.Equal(t, 3, sink.calls)
}

// TestAttack20DiffAccessClosesItsEngine: DiffAccess builds an engine with the caller's options
// and never closed it: with WithMetrics the engine's collectors stayed registered (a second
// DiffAccess on the same registry failed: duplicate registration), with WithDecisionLog its
// goroutine ran forever and the replay's decisions — an analysis, decisions nobody made — went
// to the host's log.
func TestAttack20DiffAccessClosesItsEngine(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := conformance.OpenStore(t, store.Options{})
	_, err := st.Apply(ctx, store.DeleteTeamMember{Org: "acme", Team: "engineering", User: "bob"})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	sink := &attackSink{}
	for range 2 {
		diff, err := DiffAccess(ctx, st, 1, st.Revision(), WithMetrics(reg), WithDecisionLog(sink))
		require.NoError(t, err)
		require.NotEmpty(t, diff.Changes)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	require.Empty(t, sink.recs, "an analysis is not logged")
}

// TestAttack20ReasonsNotSharedBetweenDecisions: a compiled decision's reasons are its own (a
// table cell keeps codes, never a Reason slice): a caller that rewrites one decision's reasons
// (against Authorize's doc, without a cache) changes no other decision and no other record.
func TestAttack20ReasonsNotSharedBetweenDecisions(t *testing.T) {
	t.Parallel()
	sink := &attackSink{}
	e := newAcmeInternal(t, WithDecisionLog(sink), WithDecisionCache(0))
	req := Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	a, err := e.Authorize(t.Context(), req)
	require.NoError(t, err)
	want := append([]Reason(nil), a.Reasons...)
	a.Reasons[0] = Reason{Code: "mine", Message: "rewritten"}
	b, err := e.Authorize(t.Context(), req)
	require.NoError(t, err)
	require.Equal(t, want, b.Reasons)
	require.NoError(t, e.Close(t.Context()))
	require.Len(t, sink.recs, 2)
	require.Equal(t, want, sink.recs[1].Decision.Reasons)
}

// skewDir is a third-party Directory over a store whose Revision is not its store's (which
// Directory's doc forbids): skew added, or a constant.
type skewDir struct {
	st    *store.Store
	skew  int64
	fixed uint64
}

func (d skewDir) View(fn func(store.Reader) error) error { return d.st.View(fn) }
func (d skewDir) Revision() uint64 {
	if d.fixed > 0 {
		return d.fixed
	}
	return uint64(max(int64(d.st.Revision())+d.skew, 0))
}
func (d skewDir) WaitRevision(ctx context.Context, rev uint64) error {
	return d.st.WaitRevision(ctx, rev)
}
func (d skewDir) Apply(ctx context.Context, changes ...store.Change) (uint64, error) {
	return d.st.Apply(ctx, changes...)
}

// TestAttack20SkewedRevisionNeverStale: a Directory whose Revision lies (behind, ahead, stuck)
// mislabels decisions, but no decision is stale: a cached decision is checked against what its
// facts' snapshot served (store.Deps), never against Revision. Writes that flip decisions are
// interleaved with cached, compiled and logged decisions; each is the decision of an engine
// without a cache on the store itself, and each record is its call.
func TestAttack20SkewedRevisionNeverStale(t *testing.T) {
	t.Parallel()
	for _, dir := range []skewDir{{skew: -1}, {skew: 1000}, {fixed: 1}} {
		t.Run(fmt.Sprintf("skew=%d,fixed=%d", dir.skew, dir.fixed), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			dir.st = conformance.OpenStore(t, store.Options{})
			sink := &attackSink{}
			e, err := New(ctx, dir, WithDecisionLog(sink))
			require.NoError(t, err)
			ref, err := New(ctx, dir.st, WithDecisionCache(0))
			require.NoError(t, err)
			reqs := collidingRequests()
			var calls []attack20Call
			for s := range 6 {
				_, err := dir.st.Apply(ctx, attackToggle[s%2])
				require.NoError(t, err)
				for range 2 {
					for _, r := range reqs {
						got, err := e.Authorize(ctx, r)
						require.NoError(t, err)
						want, err := ref.Authorize(ctx, r)
						require.NoError(t, err)
						require.True(t, sameDecision(got, want), "write %d %+v: %+v, want %+v", s, r, got, want)
						calls = append(calls, attack20Call{req: r, d: got})
					}
					require.NoError(t, e.FlushDecisionLog(ctx))
				}
			}
			require.NoError(t, e.Close(ctx))
			attack20Check(t, e, calls, sink.recs)
		})
	}
}

// attack20Roles are role names an author's data may give (ranks, org_base): at the slot's
// length limit and past it, with NUL bytes, not UTF-8, empty, and one of the indexed roles.
var attack20Roles = []string{strings.Repeat("r", 255), strings.Repeat("s", 256), "x\x00y", "\xff\xfe", "", "viewer", "none\x00"}

// TestAttack20AuthorRolesEveryPath: an org role mapped (org_base) to each of attack20Roles, so a
// compiled decision names a role without an index (or past the slot's 255 bytes, or the indexed
// viewer): decided on every path — compiled (short and long records), cache hits (runs), with
// metrics (timed), Explain, Suggest, errors — each record is its call, field by field.
func TestAttack20AuthorRolesEveryPath(t *testing.T) {
	t.Parallel()
	for i, role := range attack20Roles {
		for _, metrics := range []bool{false, true} {
			t.Run(fmt.Sprintf("role=%d,metrics=%v", i, metrics), func(t *testing.T) {
				t.Parallel()
				ranks := map[string]any{role: 5} // viewer is 1 in data.json: 5 is above every default
				if role == "viewer" {
					ranks = map[string]any{}
				}
				data := map[string]any{"teamgate": map[string]any{"ranks": ranks, "org_base": map[string]any{"billing": role}}}
				sink := &attackSink{}
				opts := []Option{WithData(data), WithDecisionLog(sink), WithDecisionLogQueue(4)}
				if metrics {
					opts = append(opts, WithMetrics(prometheus.NewRegistry()))
				}
				e := newAcmeInternal(t, opts...)
				bill := Request{Subject: "bill", Action: "runs.get", Resource: "acme/open"}
				withOwner := Request{Subject: "bill", Action: "runs.get", Resource: "open", Owner: "acme"}
				withMin := Request{Subject: "bill", Action: "runs.stop", Resource: "acme/open", MinRevision: 1}
				attrs := Request{Subject: "bill", Action: "runs.delete", Resource: "acme/open", Attributes: map[string]any{"run": map[string]any{"created_by": "bill"}}}
				suggest := Request{Subject: "bill", Action: "runs.approve", Resource: "acme/vision", Suggest: true}
				bad := Request{Subject: "bill", Action: "runs.get", Resource: "acme/no such"}
				reqs := []Request{bill, withOwner, withMin, attrs, suggest, bad, bill, withOwner, withMin, bill}
				calls := attack20Decide(t, e, reqs)
				if role != "" { // an empty role is decided as none
					require.Equal(t, role, calls[0].d.Role)
				}
				x, err := e.Explain(t.Context(), bill)
				require.NoError(t, err)
				calls = append(calls, attack20Call{req: bill, d: x.Decision})
				require.NoError(t, e.Close(t.Context()))
				attack20Check(t, e, calls, sink.recs)
			})
		}
	}
}

// slowDir is a third-party Directory (no ViewAccess: the compiled path reads through View) whose
// View first sleeps delay.
type slowDir struct {
	st    *store.Store
	delay *atomic.Int64
}

func (d slowDir) View(fn func(store.Reader) error) error {
	time.Sleep(time.Duration(d.delay.Load()))
	return d.st.View(fn)
}
func (d slowDir) Revision() uint64 { return d.st.Revision() }
func (d slowDir) WaitRevision(ctx context.Context, rev uint64) error {
	return d.st.WaitRevision(ctx, rev)
}
func (d slowDir) Apply(ctx context.Context, changes ...store.Change) (uint64, error) {
	return d.st.Apply(ctx, changes...)
}

// attack20Slow is an author's rule that runs for seconds unless a budget stops it.
var attack20Slow = rego.Module{Name: "slow.rego", Source: `package teamgate.ext

deny contains "slow" if {
	count([1 | some i in numbers.range(1, 3000); some j in numbers.range(1, 3000); i == j + 10000000]) > 0
}
`}

// TestAttack20SlowDecisionsLogged: decisions slower than a short record's latency field holds
// (2^25 ns, 33.5 ms) — a slow Directory under metrics (every decision timed, on every path), a
// budget spent by an author's rule — are logged as they were decided: each record is its call,
// at least as slow as the Directory made it, and the records' latencies are exactly what the
// latency histogram observed.
func TestAttack20SlowDecisionsLogged(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	delay := &atomic.Int64{}
	dir := slowDir{st: conformance.OpenStore(t, store.Options{}), delay: delay}
	reg := prometheus.NewRegistry()
	sink := &attackSink{}
	e, err := New(ctx, dir, WithMetrics(reg), WithDecisionLog(sink), WithDecisionCache(0))
	require.NoError(t, err)
	plain := Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	owner := Request{Subject: "bob", Action: "runs.stop", Resource: "vision", Owner: "acme/engineering"}
	attrs := Request{Subject: "bob", Action: "runs.delete", Resource: "acme/vision", Attributes: map[string]any{"run": map[string]any{"created_by": "bob"}}}
	delays := []time.Duration{0, 1<<25 + time.Millisecond, 0, 40 * time.Millisecond}
	var calls []attack20Call
	for _, dl := range delays {
		delay.Store(int64(dl))
		calls = append(calls, attack20Decide(t, e, []Request{plain, owner, attrs})...)
	}
	mfs, err := reg.Gather() // before Close, which unregisters the metrics
	require.NoError(t, err)
	require.NoError(t, e.Close(ctx))
	attack20Check(t, e, calls, sink.recs)
	var sum time.Duration
	for i, r := range sink.recs {
		require.GreaterOrEqual(t, r.Latency, delays[i/3], "record %d", i)
		sum += r.Latency
	}
	observed := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "teamgate_decision_duration_seconds" {
			for _, m := range mf.GetMetric() {
				observed += m.GetHistogram().GetSampleSum()
			}
		}
	}
	require.InDelta(t, sum.Seconds(), observed, 1e-9, "the histogram observed the records' latencies")

	// A budget spent: the author's rule is stopped and the decision denies with reason error.
	for _, budget := range []time.Duration{5 * time.Millisecond, 40 * time.Millisecond} {
		sink := &attackSink{}
		e, err := New(ctx, dir.st, WithModules(attack20Slow), WithEvalBudget(budget), WithDecisionLog(sink), WithDecisionCache(0))
		require.NoError(t, err)
		calls := attack20Decide(t, e, []Request{plain, owner, attrs, {Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision", MinRevision: 1}})
		for _, c := range calls {
			require.NoError(t, c.err)
			require.True(t, c.d.Has(rego.CodeError), "over budget: %+v", c.d)
		}
		require.NoError(t, e.Close(ctx))
		attack20Check(t, e, calls, sink.recs)
		require.Equal(t, uint64(len(calls)), e.Stats().OverBudget)
	}
}

// TestAttack20RoleAcrossPolicySwaps (run under -race): two policies that give bill's billing role
// different project roles — viewer (indexed: a short record) and an author's auditor (no index:
// a long one) — swapped back and forth while goroutines decide for bill and others, cached and
// not, on the smallest rings, another goroutine flushing the log without pause (the drainer
// takes slots as soon as they are published) and, last, Close mid-burst. Every record is a call
// some goroutine made, and its role is the one its own policy gives: the drainer resolves the
// role from the slot, never from the policy in force when it reads it.
func TestAttack20RoleAcrossPolicySwaps(t *testing.T) {
	t.Parallel()
	var pols [2]*rego.Policy
	roleOf := map[string]string{} // fingerprint → bill's role on acme/open
	for i, role := range []string{"viewer", "auditor"} {
		var err error
		pols[i], err = rego.New(t.Context(), nil, map[string]any{"teamgate": map[string]any{
			"ranks": map[string]any{"auditor": 5}, "org_base": map[string]any{"billing": role}}})
		require.NoError(t, err)
		roleOf[pols[i].Fingerprint()] = role
	}
	reqs := []Request{
		{Subject: "bill", Action: "runs.get", Resource: "acme/open"},
		{Subject: "bill", Action: "runs.list", Resource: "acme/open"},
		{Subject: "bill", Action: "runs.get", Resource: "open", Owner: "acme"},
		{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"},
		{Subject: "bill", Action: "runs.get", Resource: "acme/open", Attributes: map[string]any{"x": 1}},
		{Subject: "bill", Action: "runs.fly", Resource: "acme/open"},
	}
	for _, size := range []int{1, 2} {
		for _, cache := range []bool{true, false} {
			t.Run(fmt.Sprintf("size=%d,cache=%v", size, cache), func(t *testing.T) {
				t.Parallel()
				sink := &attackSink{}
				opts := []Option{WithDecisionLog(sink), WithDecisionLogQueue(size)}
				if !cache {
					opts = append(opts, WithDecisionCache(0))
				}
				e := newAcmeInternal(t, opts...)
				e.setPolicy(pols[0])
				var mu sync.Mutex
				returned := map[string]int{}
				var calls atomic.Uint64
				stop := make(chan struct{})
				var wg sync.WaitGroup
				for g := range 3 {
					wg.Go(func() {
						for i := g; ; i++ {
							select {
							case <-stop:
								return
							default:
							}
							r := reqs[i%len(reqs)]
							d, err := e.Authorize(t.Context(), r)
							calls.Add(1)
							msg := ""
							if err != nil {
								msg = err.Error()
							}
							mu.Lock()
							returned[hammerLine(r, d, msg)]++
							mu.Unlock()
						}
					})
				}
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						if err := e.FlushDecisionLog(t.Context()); err != nil {
							t.Error(err)
							return
						}
					}
				})
				// Swaps until the sink has bill's records under both policies (which reach it
				// depends on the scheduler: a ring of one or two slots drops most), at most 2,000.
				seen := func() bool {
					sink.mu.Lock()
					defer sink.mu.Unlock()
					n := map[string]bool{}
					for _, rec := range sink.recs {
						if rec.Request.Subject == "bill" && rec.Error == "" && rec.Request.Attributes == nil {
							n[rec.Decision.Role] = true
						}
					}
					return n["viewer"] && n["auditor"]
				}
				for s := 0; s < 30 || s < 2000 && !seen(); s++ {
					e.setPolicy(pols[s%2])
					time.Sleep(time.Millisecond)
				}
				require.NoError(t, e.Close(t.Context())) // mid-burst
				close(stop)
				wg.Wait()
				st := e.Stats()
				require.Equal(t, calls.Load(), st.DecisionLogWritten+st.DecisionLogDropped)
				require.Len(t, sink.recs, int(st.DecisionLogWritten))
				roles := map[string]int{}
				for _, rec := range sink.recs {
					line := hammerLine(rec.Request, rec.Decision, rec.Error)
					require.Positive(t, returned[line], "a record no call returned: %s (path %s)", line, rec.Path)
					returned[line]--
					role, known := roleOf[rec.Policy]
					require.True(t, known, "a policy in force: %q", rec.Policy)
					if rec.Request.Subject == "bill" && rec.Error == "" && rec.Request.Attributes == nil {
						require.Equal(t, role, rec.Decision.Role, "%s under %s (path %s)", line, rec.Policy, rec.Path)
						roles[role]++
					}
				}
				require.Positive(t, roles["viewer"], "short records logged")
				require.Positive(t, roles["auditor"], "long records logged")
			})
		}
	}
}

// TestAttack20QueueSizeBounded: WithDecisionLogQueue rounds its size up to a power of two; past
// 2^62 the rounding overflowed to 0 and New never returned, and 2^30 asked for a 128 GiB ring
// (the process dies out of memory: not run before the bound). A size the log cannot have is a
// typed error.
func TestAttack20QueueSizeBounded(t *testing.T) {
	t.Parallel()
	st := conformance.OpenStore(t, store.Options{})
	for _, size := range []int{math.MaxInt, 1<<62 + 1, 1 << 30, maxDecisionLogQueue + 1} {
		_, err := New(t.Context(), st, WithDecisionLog(&attackSink{}), WithDecisionLogQueue(size))
		require.ErrorIs(t, err, teamgate.ErrInvalid, "size %d", size)
	}
}

// jsonSink marshals each record when it is written, as a sink that stores them does (package
// decisionlog); its first Write waits for release.
type jsonSink struct {
	mu      sync.Mutex
	lines   []string
	entered chan struct{}
	release chan struct{}
}

func (s *jsonSink) Write(_ context.Context, records []DecisionRecord) error {
	s.mu.Lock()
	first := s.lines == nil
	s.mu.Unlock()
	if first {
		s.entered <- struct{}{}
		<-s.release
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range records {
		b, err := json.Marshal(r.Decision.Suggestions)
		if err != nil {
			return err
		}
		s.lines = append(s.lines, string(b))
	}
	return nil
}

// TestAttack20SuggestionsOwnedByRecord: a decision's Suggestions were the record's too, shared:
// a caller that edits what Authorize returned — drops approvers in place (slices.DeleteFunc),
// annotates a step's attributes, rewrites a summary or a change — which no doc forbids, changed
// the record the sink writes later (and raced with the sink reading it). The record keeps the
// suggestions as decided.
func TestAttack20SuggestionsOwnedByRecord(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	sink := &jsonSink{entered: make(chan struct{}, 1), release: make(chan struct{})}
	e := newAcmeInternal(t, WithDecisionLog(sink))
	_, err := e.Authorize(ctx, Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"})
	require.NoError(t, err)
	<-sink.entered // the drainer writes the first record and waits: the next stays queued
	d, err := e.Authorize(ctx, Request{Subject: "vera", Action: "runs.get", Resource: "acme/labs", Suggest: true})
	require.NoError(t, err)
	require.NotEmpty(t, d.Suggestions)
	want, err := json.Marshal(d.Suggestions)
	require.NoError(t, err)
	edited := 0
	for i := range d.Suggestions {
		s := &d.Suggestions[i]
		for j := range s.Steps {
			st := &s.Steps[j]
			st.Summary = "edited"
			st.Attributes["note"] = "mine"
			for k := range st.Approvers {
				for l := range st.Approvers[k].Teams {
					st.Approvers[k].Teams[l] = "edited"
				}
			}
			if len(st.Approvers) > 0 {
				st.Approvers = slices.DeleteFunc(st.Approvers, func(Access) bool { return true })
				edited++
			}
		}
		for j := range s.Changes {
			s.Changes[j] = store.DeleteMember{Org: "acme", User: "alice"}
		}
		for j := range s.Reasons {
			s.Reasons[j].Message = "edited"
		}
	}
	require.Positive(t, edited, "approvers edited")
	close(sink.release)
	require.NoError(t, e.Close(ctx))
	require.Len(t, sink.lines, 2) // the first record's Suggestions (null), then this one's
	require.JSONEq(t, string(want), sink.lines[1])
}

// TestAttack20SuggestedGrantOwnsItsSlices: a suggestion that changes an existing grant's role
// keeps the grant's queue, namespace and presets — it copied the grant from the store's snapshot,
// whose DefaultPresets (and BreakGlass) are the store's own, read-only: a caller editing the
// suggested change (a value it holds) edited the store's grant under every reader.
func TestAttack20SuggestedGrantOwnsItsSlices(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := newAcmeInternal(t)
	st := e.Directory().(*store.Store)
	_, err := st.Apply(ctx, store.PutGrant{Org: "acme", Project: "vision", User: "otto", Grant: store.Grant{Role: "viewer", DefaultPresets: []string{"small"}}})
	require.NoError(t, err)
	d, err := e.Authorize(ctx, Request{Subject: "otto", Action: "runs.stop", Resource: "acme/vision", Suggest: true})
	require.NoError(t, err)
	found := 0
	for _, s := range d.Suggestions {
		for _, c := range s.Changes {
			if g, ok := c.(store.PutGrant); ok && g.User == "otto" {
				require.Equal(t, []string{"small"}, g.Grant.DefaultPresets, "the grant's presets are kept")
				g.Grant.DefaultPresets[0] = "edited"
				found++
			}
		}
	}
	require.Positive(t, found, "a grant change suggested: %+v", d.Suggestions)
	require.NoError(t, st.View(func(r store.Reader) error {
		pv, ok := r.Project("acme", "vision")
		require.True(t, ok)
		require.Equal(t, []string{"small"}, pv.Project.Grants["otto"].DefaultPresets, "the store's grant")
		return nil
	}))
}

// TestAttack20ExplainInputOwnsItsFacts: Explain's Input held the store's own project teams and
// labels (read-only snapshot values): a caller editing the explanation it was given — which no
// doc forbids — edited the project's effective teams and labels under every later decision.
func TestAttack20ExplainInputOwnsItsFacts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := newAcmeInternal(t, WithDecisionCache(0))
	st := e.Directory().(*store.Store)
	_, err := st.Apply(ctx, store.PutProject{Project: store.Project{Org: "acme", Name: "vision", Teams: []string{"engineering"}, Labels: map[string]string{"approval": "admin-only"}}})
	require.NoError(t, err)
	req := Request{Subject: "bob", Action: "runs.transfer", Resource: "acme/vision", Attributes: map[string]any{"destination": "acme/engineering/vision"}}
	before, err := e.Authorize(ctx, Request{Subject: "vera", Action: "runs.stop", Resource: "acme/vision"})
	require.NoError(t, err)
	x, err := e.Explain(ctx, req)
	require.NoError(t, err)
	require.Equal(t, []string{"engineering"}, x.Input.Resource.Teams)
	require.NotNil(t, x.Input.Destination)
	for _, r := range []*rego.Resource{&x.Input.Resource, &x.Input.Destination.Resource} {
		for i := range r.Teams {
			r.Teams[i] = "research"
		}
		for k := range r.Labels {
			r.Labels[k] = "edited"
		}
	}
	require.NoError(t, st.View(func(r store.Reader) error {
		pv, ok := r.Project("acme", "vision")
		require.True(t, ok)
		require.Equal(t, []string{"engineering"}, pv.Teams.Values, "the project's effective teams")
		require.Equal(t, map[string]string{"approval": "admin-only"}, pv.Project.Labels, "the project's labels")
		return nil
	}))
	after, err := e.Authorize(ctx, Request{Subject: "vera", Action: "runs.stop", Resource: "acme/vision"})
	require.NoError(t, err)
	require.Equal(t, before, after)
}
