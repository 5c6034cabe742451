package authz_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// memSink keeps what the decision log writes.
type memSink struct {
	mu      sync.Mutex
	records []authz.DecisionRecord
}

func (s *memSink) Write(_ context.Context, rs []authz.DecisionRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, rs...)
	return nil
}

func (s *memSink) all() []authz.DecisionRecord { return s.since(0) }

// since returns a copy of the records after the first n (a test that reads the log record by
// record copies only the new ones, not the whole log each time).
func (s *memSink) since(n int) []authz.DecisionRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]authz.DecisionRecord(nil), s.records[min(n, len(s.records)):]...)
}

// count is the number of records written.
func (s *memSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records)
}

// gateSink blocks every Write until released (or its context ends), announcing each on entered.
type gateSink struct {
	memSink
	entered chan struct{}
	release chan struct{}
}

func newGateSink() *gateSink {
	return &gateSink{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (s *gateSink) Write(ctx context.Context, rs []authz.DecisionRecord) error {
	s.entered <- struct{}{}
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.memSink.Write(ctx, rs)
}

// TestDecisionLogRecordsEachPath: a record carries the request, the decision, the revision, the
// policy's fingerprint and the path the decision took, timed where the path is timed.
func TestDecisionLogRecordsEachPath(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	stays := authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	other := authz.Request{Subject: "vera", Action: "runs.get", Resource: "acme/labs"}
	withAttrs := authz.Request{Subject: "bob", Action: "runs.delete", Resource: "acme/vision", Attributes: map[string]any{"run": map[string]any{"created_by": "bob"}}}
	bad := authz.Request{Subject: "bob", Action: "runs.fly", Resource: "acme/vision"}

	type step struct {
		req     authz.Request
		explain bool
	}
	cases := []struct {
		name    string
		disk    bool // an on-disk store with a one-entry memory cache
		opts    []authz.Option
		steps   []step
		path    authz.DecisionPath // of the last step's record
		allowed bool
		timed   bool
		code    string // a reason code of the last record
	}{
		{name: "cache", steps: []step{{req: stays}, {req: stays}}, path: authz.PathCacheL1, allowed: true, code: "org_role"},
		{name: "compiled", opts: []authz.Option{authz.WithDecisionCache(0)}, steps: []step{{req: stays}}, path: authz.PathCompiled, allowed: true, code: "org_role"},
		// With metrics every decision is timed, and the record has the histogram's figure.
		{name: "cache with metrics", opts: []authz.Option{authz.WithMetrics(prometheus.NewRegistry())}, steps: []step{{req: stays}, {req: stays}}, path: authz.PathCacheL1, allowed: true, timed: true, code: "org_role"},
		{name: "compiled with metrics", opts: []authz.Option{authz.WithDecisionCache(0), authz.WithMetrics(prometheus.NewRegistry())}, steps: []step{{req: stays}}, path: authz.PathCompiled, allowed: true, timed: true, code: "org_role"},
		{name: "rego", opts: []authz.Option{authz.WithCompiledPath(false)}, steps: []step{{req: other}}, path: authz.PathRego, timed: true, code: "restricted"},
		{name: "rego with attributes", steps: []step{{req: withAttrs}}, path: authz.PathRego, allowed: true, timed: true, code: "own_run"},
		{name: "explain", steps: []step{{req: stays, explain: true}}, path: authz.PathRego, allowed: true, timed: true, code: "org_role"},
		{name: "error", steps: []step{{req: bad}}, path: authz.PathNone},
		{name: "cache_disk", disk: true, opts: []authz.Option{authz.WithDecisionCache(1)}, steps: []step{{req: stays}, {req: other}, {req: stays}}, path: authz.PathCacheL2, allowed: true, timed: true, code: "org_role"},
		{name: "compiled on disk", disk: true, opts: []authz.Option{authz.WithDecisionCache(1)}, steps: []step{{req: stays}}, path: authz.PathCompiled, allowed: true, timed: true, code: "org_role"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sink := &memSink{}
			opts := append([]authz.Option{authz.WithDecisionLog(sink)}, c.opts...)
			var st *store.Store
			var err error
			if c.disk {
				st, err = store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
			} else {
				st, err = store.Open(ctx, store.Options{})
			}
			require.NoError(t, err)
			t.Cleanup(func() { _ = st.Close() })
			rev, err := st.LoadFile(ctx, conformance.DataFile())
			require.NoError(t, err)
			eng, err := authz.New(ctx, st, opts...)
			require.NoError(t, err)
			before := time.Now()
			var last authz.Decision
			var lastErr error
			for _, s := range c.steps {
				if s.explain {
					x, err := eng.Explain(ctx, s.req)
					last, lastErr = x.Decision, err
				} else {
					last, lastErr = eng.Authorize(ctx, s.req)
				}
			}
			require.NoError(t, eng.Close(ctx))
			after := time.Now()

			recs := sink.all()
			require.Len(t, recs, len(c.steps))
			r := recs[len(recs)-1]
			req := c.steps[len(c.steps)-1].req
			require.Equal(t, c.path, r.Path, "path")
			require.Equal(t, req, r.Request)
			require.Equal(t, eng.Policy().Fingerprint(), r.Policy)
			require.Equal(t, rev, r.Decision.Revision)
			require.Equal(t, c.allowed, r.Decision.Allowed)
			require.False(t, r.Time.Before(before) || r.Time.After(after), "time %s not in [%s, %s]", r.Time, before, after)
			require.Equal(t, c.timed, r.Latency > 0, "latency %s", r.Latency)
			if c.path == authz.PathNone {
				require.ErrorIs(t, lastErr, teamgate.ErrInvalid)
				require.Equal(t, lastErr.Error(), r.Error)
				require.Equal(t, "none", r.Decision.Role)
				return
			}
			require.NoError(t, lastErr)
			require.Empty(t, r.Error)
			require.Equal(t, last.Allowed, r.Decision.Allowed)
			require.Equal(t, last.Role, r.Decision.Role)
			require.Equal(t, last.Reasons, r.Decision.Reasons)
			require.True(t, r.Decision.Has(rego.Code(c.code)), "reasons %v", r.Decision.Reasons)
			stats := eng.Stats()
			require.Equal(t, uint64(len(c.steps)), stats.DecisionLogWritten)
			require.Zero(t, stats.DecisionLogDropped)
		})
	}
}

// TestDecisionLogOwnsAttributes: the caller may reuse its attributes once Authorize returns.
func TestDecisionLogOwnsAttributes(t *testing.T) {
	t.Parallel()
	sink := &memSink{}
	eng, _ := newAcme(t, authz.WithDecisionLog(sink))
	attrs := map[string]any{"run": map[string]any{"created_by": "bob"}, "n": 3}
	_, err := eng.Authorize(t.Context(), authz.Request{Subject: "bob", Action: "runs.delete", Resource: "acme/vision", Attributes: attrs})
	require.NoError(t, err)
	attrs["run"].(map[string]any)["created_by"] = "mallory"
	attrs["n"] = 4
	require.NoError(t, eng.Close(t.Context()))
	got := sink.all()[0].Request.Attributes
	require.Equal(t, "bob", got["run"].(map[string]any)["created_by"])
	require.Equal(t, "3", fmt.Sprint(got["n"]))
}

// TestDecisionLogWhatIsLogged: batches, bulk operations and requests for suggestions are
// Authorize calls and are logged; listings, admissions and analyses are not.
func TestDecisionLogWhatIsLogged(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	sink := &memSink{}
	eng, _ := newAcme(t, authz.WithDecisionLog(sink))
	_, err := eng.ListProjects(ctx, "bob", "acme", authz.Page{})
	require.NoError(t, err)
	_, err = eng.ProjectFilter(ctx, "bob", "acme")
	require.NoError(t, err)
	_, err = eng.AuthorizeBatch(ctx, []authz.Request{{Subject: "bob", Action: "project.get", Resource: "acme/vision"}, {Subject: "bob", Action: "nope", Resource: "acme"}})
	require.NoError(t, err)
	runs, err := eng.BulkRuns(ctx, "bob", "acme/engineering", "stop_runs", []authz.RunRef{{UUID: "r1", Project: "vision"}}, "")
	require.NoError(t, err)
	require.Len(t, runs, 1)
	// Analyses are not logged: who can, lint, what-if, and the approvers a suggestion names.
	_, err = eng.ListSubjects(ctx, "runs.stop", "acme/vision", authz.Page{})
	require.NoError(t, err)
	_, err = eng.Lint(ctx, "acme")
	require.NoError(t, err)
	_, err = eng.Simulate(ctx, store.DeleteTeamMember{Org: "acme", Team: "engineering", User: "bob"})
	require.NoError(t, err)
	d, err := eng.Authorize(ctx, authz.Request{Subject: "vera", Action: "runs.get", Resource: "acme/labs", Suggest: true})
	require.NoError(t, err)
	require.NotEmpty(t, d.Suggestions)
	require.NoError(t, eng.FlushDecisionLog(ctx))
	var actions []string
	for _, r := range sink.all() {
		actions = append(actions, r.Request.Action+":"+r.Path.String())
	}
	// The batch's two, the bulk operation's scope check and its run, the request for suggestions.
	require.Equal(t, []string{"project.get:compiled", "nope:none", "team.runs:compiled", "runs.stop:compiled", "runs.get:rego"}, actions)
	require.Equal(t, d.Suggestions, sink.all()[4].Decision.Suggestions)
	require.NoError(t, eng.Close(ctx))
}

// TestDecisionLogFullQueueDrops: with the sink stuck, decisions go on; the queue keeps what it
// holds and the rest is dropped and counted. (On the compiled path: every decision takes a slot;
// see TestDecisionLogHitRuns for cache hits.)
func TestDecisionLogFullQueueDrops(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	sink := newGateSink()
	const queue = 4
	eng, _ := newAcme(t, authz.WithDecisionLog(sink), authz.WithDecisionLogQueue(queue), authz.WithDecisionCache(0))
	req := authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	_, err := eng.Authorize(ctx, req)
	require.NoError(t, err)
	<-sink.entered // the first record's Write is stuck: the queue is no longer drained
	const more = 10
	for range more {
		d, err := eng.Authorize(ctx, req)
		require.NoError(t, err)
		require.True(t, d.Allowed)
	}
	// The queue holds queue records waiting, beside the one being written.
	dropped := uint64(more - queue)
	require.Equal(t, dropped, eng.Stats().DecisionLogDropped)
	close(sink.release)
	require.NoError(t, eng.Close(ctx))
	st := eng.Stats()
	require.Equal(t, uint64(1+queue), st.DecisionLogWritten)
	require.Equal(t, dropped, st.DecisionLogDropped)
	require.Len(t, sink.all(), 1+queue)

	// After Close decisions are answered and counted as dropped.
	_, err = eng.Authorize(ctx, req)
	require.NoError(t, err)
	require.Equal(t, dropped+1, eng.Stats().DecisionLogDropped)
	require.NoError(t, eng.Close(ctx), "Close is idempotent")
}

// TestDecisionLogCloseBounded: Close with a stuck sink returns when its context ends, cancelling
// the sink's context; what was not written is dropped.
func TestDecisionLogCloseBounded(t *testing.T) {
	t.Parallel()
	sink := newGateSink()
	eng, _ := newAcme(t, authz.WithDecisionLog(sink), authz.WithDecisionLogQueue(8))
	req := authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	for range 3 {
		_, err := eng.Authorize(t.Context(), req)
		require.NoError(t, err)
	}
	<-sink.entered
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, eng.Close(ctx), context.Canceled)
	st := eng.Stats()
	require.Zero(t, st.DecisionLogWritten)
	require.Equal(t, uint64(3), st.DecisionLogDropped+st.DecisionLogFailed)
}

// failSink fails every write.
type failSink struct{}

func (failSink) Write(context.Context, []authz.DecisionRecord) error { return errors.New("disk full") }

func TestDecisionLogSinkFailureCounted(t *testing.T) {
	t.Parallel()
	eng, _ := newAcme(t, authz.WithDecisionLog(failSink{}))
	_, err := eng.Authorize(t.Context(), authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/vision"})
	require.NoError(t, err)
	require.NoError(t, eng.Close(t.Context()))
	require.Equal(t, uint64(1), eng.Stats().DecisionLogFailed)
}

func TestDecisionLogOptions(t *testing.T) {
	t.Parallel()
	_, st := newAcme(t)
	_, err := authz.New(t.Context(), st, authz.WithDecisionLog(nil))
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	_, err = authz.New(t.Context(), st, authz.WithDecisionLog(&memSink{}), authz.WithDecisionLogQueue(0))
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	eng, err := authz.New(t.Context(), st)
	require.NoError(t, err)
	require.NoError(t, eng.Close(t.Context()), "nothing to close without a log")
	require.NoError(t, eng.FlushDecisionLog(t.Context()))
}

// TestDecisionLogHitAllocatesNothing: a cache hit allocates nothing, logged or not.
func TestDecisionLogHitAllocatesNothing(t *testing.T) {
	req := authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	for _, logged := range []bool{false, true} {
		var opts []authz.Option
		if logged {
			opts = append(opts, authz.WithDecisionLog(&memSink{}))
		}
		eng, _ := newAcme(t, opts...)
		ctx := t.Context()
		_, err := eng.Authorize(ctx, req)
		require.NoError(t, err)
		allocs := testing.AllocsPerRun(200, func() {
			if _, err := eng.Authorize(ctx, req); err != nil {
				t.Fatal(err)
			}
		})
		require.Zero(t, allocs, "logged=%v", logged)
		require.NoError(t, eng.Close(ctx))
	}
}

// TestDecisionLogConcurrent: concurrent decisions with a log (run under -race): every decision
// is written or counted as dropped, and each record is whole.
func TestDecisionLogConcurrent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	sink := &memSink{}
	eng, st := newAcme(t, authz.WithDecisionLog(sink), authz.WithDecisionLogQueue(64))
	reqs := []authz.Request{
		{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"},
		{Subject: "vera", Action: "runs.get", Resource: "acme/labs"},
		{Subject: "bob", Action: "runs.delete", Resource: "acme/vision", Attributes: map[string]any{"run": map[string]any{"created_by": "bob"}}},
		{Subject: "olga", Action: "runs.approve", Resource: "acme/nlp"},
	}
	const workers, each = 4, 150
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if _, err := eng.Authorize(ctx, reqs[(w+i)%len(reqs)]); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Go(func() { // writes meanwhile: decisions change path and revision
		for i := range 20 {
			_, err := st.Apply(ctx, store.PutMember{Org: "acme", User: fmt.Sprintf("u%d", i), Role: "member"})
			if err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	require.NoError(t, eng.Close(ctx))
	s := eng.Stats()
	require.Equal(t, uint64(workers*each), s.DecisionLogWritten+s.DecisionLogDropped)
	recs := sink.all()
	require.Len(t, recs, int(s.DecisionLogWritten))
	for _, r := range recs {
		require.NotEmpty(t, r.Request.Subject)
		require.NotZero(t, r.Path)
		require.NotEmpty(t, r.Policy)
		require.NotZero(t, r.Decision.Revision)
		require.False(t, r.Time.IsZero())
	}
}

// TestDecisionLogHitRecordIsTheDecision: an in-memory cache hit is logged as its cache entry and
// revision, and the drainer makes the record; the record is still exactly the call — the
// request as made (owner, MinRevision, keys packed inline and out of line), the decision
// returned (reasons, and the revision of the store at the hit, past an unrelated write), the
// policy, the path — over several laps of a small ring, mixed with records of other paths.
func TestDecisionLogHitRecordIsTheDecision(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	sink := &memSink{}
	eng, st := newAcme(t, authz.WithDecisionLog(sink), authz.WithDecisionLogQueue(8))
	long := "acme/engineering/" + strings.Repeat("x", 60) // no such project: a deny, cached
	reqs := []authz.Request{
		{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"},
		{Subject: "vera", Action: "runs.get", Resource: "vision", Owner: "acme"},
		{Subject: "olga", Action: "runs.approve", Resource: long},
		{Subject: "alice", Action: "org.update", Resource: "acme", MinRevision: 1},
		{Subject: "bob", Action: "runs.delete", Resource: "acme/vision", Attributes: map[string]any{"run": map[string]any{"created_by": "bob"}}},
	}
	type call struct {
		req authz.Request
		d   authz.Decision
	}
	var calls []call
	decide := func() {
		for _, r := range reqs {
			d, err := eng.Authorize(ctx, r)
			require.NoError(t, err)
			calls = append(calls, call{r, d})
		}
		// Wait for the drainer now and then, so the small ring is not overrun.
		require.NoError(t, eng.FlushDecisionLog(ctx))
	}
	decide() // misses: compiled and rego records
	decide() // hits
	_, err := st.Apply(ctx, store.PutMember{Org: "acme", User: "newcomer", Role: "member"})
	require.NoError(t, err)
	for range 5 {
		decide() // hits, at the new revision
	}
	require.NoError(t, eng.Close(ctx))

	recs := sink.all()
	require.Len(t, recs, len(calls))
	hits := 0
	for i, c := range calls {
		r := recs[i]
		require.Equal(t, c.req, r.Request, "record %d", i)
		require.Equal(t, c.d, r.Decision, "record %d", i)
		require.Equal(t, eng.Policy().Fingerprint(), r.Policy)
		require.Empty(t, r.Error)
		require.False(t, r.Time.IsZero())
		if r.Path == authz.PathCacheL1 {
			hits++
			require.Zero(t, r.Latency, "a hit is not timed without metrics")
		}
	}
	// Every cacheable request after the first round was a hit; the one with attributes never.
	require.Equal(t, 6*(len(reqs)-1), hits)
	require.Equal(t, st.Revision(), recs[len(recs)-2].Decision.Revision)
	require.False(t, recs[2].Decision.Allowed, "the long key is a deny")
	s := eng.Stats()
	require.Equal(t, uint64(len(calls)), s.DecisionLogWritten)
	require.Zero(t, s.DecisionLogDropped)
}

// TestDecisionLogWakesIdleDrainer: a record queued while the drainer sleeps (idle, nothing
// arrived for an interval) wakes it: it reaches the sink without a flush, a hit's included.
func TestDecisionLogWakesIdleDrainer(t *testing.T) {
	t.Parallel()
	sink := &memSink{}
	eng, _ := newAcme(t, authz.WithDecisionLog(sink))
	req := authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	for i := range 10 {
		time.Sleep(3 * authz.DecisionLogInterval) // the drainer goes idle
		_, err := eng.Authorize(t.Context(), req)
		require.NoError(t, err)
		require.Eventually(t, func() bool { return sink.count() == i+1 }, 10*time.Second, time.Millisecond, "record %d", i)
	}
	require.Equal(t, authz.PathCacheL1, sink.all()[9].Path)
	require.NoError(t, eng.Close(t.Context()))
}

// TestDecisionLogHitRuns: with the sink stuck, identical cache hits join one run (a slot),
// however many — a full run (65,535 hits) starts another — so a ring of two slots keeps 70,000
// hits, and a hit that joins its run is kept while the ring is full; one that would start a run
// (another MinRevision, another request) is then dropped. Every record is the decision made, the
// run written across many batches.
func TestDecisionLogHitRuns(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	sink := newGateSink()
	eng, _ := newAcme(t, authz.WithDecisionLog(sink), authz.WithDecisionLogQueue(2))
	req := authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	first, err := eng.Authorize(ctx, req) // a miss: the compiled path's record
	require.NoError(t, err)
	<-sink.entered // the drainer took it and is stuck writing it: the ring is empty
	const hits = 70_000
	for range hits {
		d, err := eng.Authorize(ctx, req)
		require.NoError(t, err)
		require.Equal(t, first, d)
	}
	require.Zero(t, eng.Stats().DecisionLogDropped, "two runs in two slots")
	// The ring is full: a hit that would start a run is dropped, one that joins the open run is not.
	withMin := req
	withMin.MinRevision = first.Revision
	for _, r := range []authz.Request{withMin, {Subject: "vera", Action: "runs.get", Resource: "acme/labs"}, req} {
		_, err := eng.Authorize(ctx, r)
		require.NoError(t, err)
	}
	require.Equal(t, uint64(2), eng.Stats().DecisionLogDropped)
	close(sink.release)
	go func() { // more writes than sink.entered holds
		for {
			select {
			case <-sink.entered:
			case <-ctx.Done():
				return
			}
		}
	}()
	require.NoError(t, eng.Close(ctx))

	st := eng.Stats()
	require.Equal(t, uint64(1+hits+1), st.DecisionLogWritten)
	recs := sink.all()
	require.Len(t, recs, 1+hits+1)
	require.Equal(t, authz.PathCompiled, recs[0].Path)
	for i, r := range recs[1:] {
		if r.Request.Subject != req.Subject || r.Request.MinRevision != 0 || r.Decision.Revision != first.Revision || r.Path != authz.PathCacheL1 || r.Time.IsZero() {
			t.Fatalf("record %d: %+v", i+1, r)
		}
		if i%10_000 == 0 || i >= hits-1 {
			require.Equal(t, req, r.Request, "record %d", i+1)
			require.Equal(t, first, r.Decision, "record %d", i+1)
		}
	}
}

// TestDecisionLogRunsKeepEachRecord: runs of two requests' hits, interleaved, at two revisions,
// with the sink stuck meanwhile: a hit joins its own request's run, not the latest slot's, and
// one at a new revision starts a run. The records are the decisions, grouped by run.
func TestDecisionLogRunsKeepEachRecord(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	sink := newGateSink()
	eng, st := newAcme(t, authz.WithDecisionLog(sink), authz.WithDecisionLogQueue(8))
	a := authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	b := authz.Request{Subject: "vera", Action: "runs.get", Resource: "vision", Owner: "acme"}
	decide := func(r authz.Request) authz.Decision {
		d, err := eng.Authorize(ctx, r)
		require.NoError(t, err)
		return d
	}
	da, db := decide(a), decide(b) // misses
	<-sink.entered
	for range 3 {
		require.Equal(t, da, decide(a))
		require.Equal(t, db, decide(b))
	}
	_, err := st.Apply(ctx, store.PutMember{Org: "acme", User: "newcomer", Role: "member"})
	require.NoError(t, err)
	da2, db2 := decide(a), decide(b)
	require.NotEqual(t, da.Revision, da2.Revision)
	require.Equal(t, da2, decide(a))
	close(sink.release)
	require.NoError(t, eng.Close(ctx))

	type rec struct {
		req authz.Request
		d   authz.Decision
	}
	want := []rec{{a, da}, {b, db}, {a, da}, {a, da}, {a, da}, {b, db}, {b, db}, {b, db}, {a, da2}, {a, da2}, {b, db2}}
	recs := sink.all()
	require.Len(t, recs, len(want))
	for i, w := range want {
		require.Equal(t, w.req, recs[i].Request, "record %d", i)
		require.Equal(t, w.d, recs[i].Decision, "record %d", i)
	}
	require.Zero(t, eng.Stats().DecisionLogDropped)
}

// TestDecisionLogRunsConcurrent (run under -race): goroutines hitting two requests at two
// MinRevisions while the store is written, the log flushed and finally closed mid-burst, on rings
// of one to 64 slots. Every decision is written or counted as dropped, and the records are
// decisions made: as a multiset, they are among the decisions returned.
func TestDecisionLogRunsConcurrent(t *testing.T) {
	t.Parallel()
	for _, queue := range []int{1, 4, 64} {
		t.Run(fmt.Sprint("queue=", queue), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			sink := &memSink{}
			eng, st := newAcme(t, authz.WithDecisionLog(sink), authz.WithDecisionLogQueue(queue))
			reqs := []authz.Request{
				{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"},
				{Subject: "vera", Action: "runs.get", Resource: "acme/labs"},
				{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision", MinRevision: 1},
				{Subject: "vera", Action: "runs.get", Resource: "acme/labs", MinRevision: 1},
			}
			const workers, each = 4, 2000
			made := make([][]string, workers)
			var wg sync.WaitGroup
			closing := make(chan struct{})
			for w := range workers {
				wg.Go(func() {
					for i := range each {
						if i == each/2 && w == 0 {
							close(closing)
						}
						r := reqs[(i/7+w)%len(reqs)] // runs of seven of a request
						d, err := eng.Authorize(ctx, r)
						if err != nil {
							t.Error(err)
							return
						}
						made[w] = append(made[w], fmt.Sprint(r, d))
					}
				})
			}
			wg.Go(func() {
				for i := range 10 {
					if _, err := st.Apply(ctx, store.PutMember{Org: "acme", User: fmt.Sprintf("u%d", i), Role: "member"}); err != nil {
						t.Error(err)
					}
					if err := eng.FlushDecisionLog(ctx); err != nil {
						t.Error(err)
					}
				}
			})
			<-closing
			require.NoError(t, eng.Close(ctx)) // while the workers decide
			wg.Wait()
			s := eng.Stats()
			require.Equal(t, uint64(workers*each), s.DecisionLogWritten+s.DecisionLogDropped)
			require.NotZero(t, s.DecisionLogDropped, "decisions after Close")
			decided := map[string]int{}
			for _, m := range made {
				for _, k := range m {
					decided[k]++
				}
			}
			recs := sink.all()
			require.Len(t, recs, int(s.DecisionLogWritten))
			for _, r := range recs {
				require.False(t, r.Time.IsZero())
				k := fmt.Sprint(r.Request, r.Decision)
				require.Positive(t, decided[k], "a record of no decision: %s", k)
				decided[k]--
			}
		})
	}
}

// TestDecisionLogCompiledRecordIsTheDecision: without a decision cache every decision is
// recorded from the ring's compact record (or, with attributes, Suggest or an error, a whole
// one): each record is the request and the decision as the caller saw them, its nil or empty
// reasons included.
func TestDecisionLogCompiledRecordIsTheDecision(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	sink := &memSink{}
	eng, _ := newAcme(t, authz.WithDecisionCache(0), authz.WithDecisionLog(sink), authz.WithDecisionLogQueue(4))
	reqs := []authz.Request{
		{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"},
		{Subject: "vera", Action: "runs.get", Resource: "vision", Owner: "acme"},
		{Subject: "olga", Action: "runs.approve", Resource: "acme/engineering/" + strings.Repeat("x", 60)},
		{Subject: "alice", Action: "org.update", Resource: "acme", MinRevision: 1},
		{Subject: "bob", Action: "runs.delete", Resource: "acme/vision", Attributes: map[string]any{"run": map[string]any{"created_by": "bob"}}},
		{Subject: "nobody", Action: "runs.stop", Resource: "acme/engineering/vision", Suggest: true},
	}
	var calls []authz.Request
	var decs []authz.Decision
	for range 3 {
		for _, r := range reqs {
			d, err := eng.Authorize(ctx, r)
			require.NoError(t, err)
			calls, decs = append(calls, r), append(decs, d)
			require.NoError(t, eng.FlushDecisionLog(ctx)) // the ring is small: laps reuse its records
		}
	}
	_, err := eng.Authorize(ctx, authz.Request{Subject: "bob", Action: "no.such", Resource: "acme"})
	require.Error(t, err)
	require.NoError(t, eng.Close(ctx))

	recs := sink.all()
	require.Len(t, recs, len(calls)+1)
	for i, c := range calls {
		r := recs[i]
		require.Equal(t, c, r.Request, "record %d", i)
		require.Equal(t, decs[i], r.Decision, "record %d", i)
		require.Equal(t, eng.Policy().Fingerprint(), r.Policy)
		require.Empty(t, r.Error)
		require.False(t, r.Time.IsZero())
		if c.Suggest || c.Attributes != nil {
			require.Equal(t, authz.PathRego, r.Path, "record %d", i)
		} else {
			require.Equal(t, authz.PathCompiled, r.Path, "record %d", i)
		}
		want, err := json.Marshal(authz.DecisionRecord{Time: r.Time, Request: c, Decision: decs[i], Policy: r.Policy, Path: r.Path, Latency: r.Latency})
		require.NoError(t, err)
		got, err := json.Marshal(r)
		require.NoError(t, err)
		require.Equal(t, string(want), string(got), "record %d", i)
	}
	last := recs[len(recs)-1]
	require.Equal(t, authz.PathNone, last.Path)
	require.NotEmpty(t, last.Error)
	require.Equal(t, "none", last.Decision.Role)
	require.NotNil(t, last.Decision.Reasons)
	require.Zero(t, eng.Stats().DecisionLogDropped)
}

// TestDecisionLogCellRecordsWhatWasDecided: a compiled decision's record is kept as its request's
// strings and the decision table's cell, and the drainer makes the record only when it takes it.
// Records queued behind a sink that blocks, then taken after the subject left the org, the team
// named in the resource was renamed and the policy swapped (the cells of the new policy decide
// those requests differently), still name the subject, resource, action, role, reasons and policy
// of the decision as it was returned — never a name or cell resolved after it.
func TestDecisionLogCellRecordsWhatWasDecided(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	sink := newGateSink()
	eng, st := newAcme(t, authz.WithDecisionCache(0), authz.WithDecisionLog(sink))
	reqs := []authz.Request{
		{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"},
		{Subject: "bob", Action: "runs.get", Resource: "acme/engineering/vision"},
		{Subject: "bob", Action: "org.update", Resource: "acme"},
		{Subject: "olga", Action: "runs.approve", Resource: "acme/engineering/vision"},
		{Subject: "bill", Action: "runs.get", Resource: "acme/open"},
	}
	type call struct {
		req    authz.Request
		d      authz.Decision
		policy string
	}
	var calls []call
	decide := func() {
		for _, r := range reqs {
			d, err := eng.Authorize(ctx, r)
			require.NoError(t, err)
			calls = append(calls, call{r, d, eng.Policy().Fingerprint()})
		}
	}
	// The drainer takes the first record and blocks in the sink's Write: the others stay queued.
	decide()
	<-sink.entered
	decide()
	before := len(calls)
	_, err := st.Apply(ctx, store.DeleteMember{Org: "acme", User: "bob"}, store.RenameTeam{Org: "acme", From: "engineering", To: "eng2"})
	require.NoError(t, err)
	require.NoError(t, eng.SetPolicy(ctx, nil, map[string]any{"teamgate": map[string]any{
		"ranks": map[string]any{"auditor": 5}, "org_base": map[string]any{"billing": "auditor"}}}))
	decide() // the same requests, decided again now: bob is no member, bill an auditor
	for i, c := range calls[before:] {
		require.NotEqual(t, calls[before-len(reqs)+i].d, c.d, "request %d decided alike before and after", i)
	}
	close(sink.release)
	require.NoError(t, eng.Close(ctx))
	recs := sink.all()
	require.Len(t, recs, len(calls))
	for i, c := range calls {
		r := recs[i]
		require.Equal(t, authz.PathCompiled, r.Path, "record %d", i)
		require.Equal(t, c.req, r.Request, "record %d", i)
		require.Equal(t, c.d, r.Decision, "record %d", i)
		require.Equal(t, c.policy, r.Policy, "record %d", i)
	}
	require.NotEqual(t, recs[0].Policy, recs[len(recs)-1].Policy, "the policy was swapped")
}

// TestDecisionLogSlotKindsConcurrent: records of every kind a slot holds — a compiled decision's
// one line, a request with Owner or MinRevision over two, a whole record (attributes), runs of
// cache hits — written by four goroutines at once into a ring of four slots, so every slot is
// rewritten by every kind, lap after lap, while writes that change no decision evict the cached
// ones (compiled decisions again). Every record that reaches the sink is its request's decision,
// whole: nothing of another record or lap shows in it.
func TestDecisionLogSlotKindsConcurrent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	sink := &memSink{}
	eng, st := newAcme(t, authz.WithDecisionLog(sink), authz.WithDecisionLogQueue(4))
	ref, err := authz.New(ctx, st) // no log: the decisions the records must show
	require.NoError(t, err)
	reqs := []authz.Request{
		{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"},
		{Subject: "bob", Action: "runs.get", Resource: "engineering/vision", Owner: "acme"},
		{Subject: "olga", Action: "runs.approve", Resource: "acme/nlp", MinRevision: 1},
		{Subject: "bob", Action: "runs.delete", Resource: "acme/vision", Attributes: map[string]any{"run": map[string]any{"created_by": "bob"}}},
		{Subject: "vera", Action: "runs.get", Resource: "acme/labs"},
		{Subject: "bob", Action: "org.update", Resource: "acme"},
	}
	const workers, each = 4, 300
	round := func() {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					if _, err := eng.Authorize(ctx, reqs[(w+i)%len(reqs)]); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Go(func() { // bob's role, put again: his cached decisions are decided again, alike
			for range 30 {
				if _, err := st.Apply(ctx, store.PutMember{Org: "acme", User: "bob", Role: "member"}); err != nil {
					t.Error(err)
				}
			}
		})
		wg.Wait()
		require.NoError(t, eng.FlushDecisionLog(ctx))
	}
	paths := map[authz.DecisionPath]int{}
	checked := 0
	// Rounds until every path has a record in the sink (a full ring drops records: which reach
	// it depends on the scheduler), at most 20.
	for n := 0; n < 20 && (n == 0 || paths[authz.PathCompiled] == 0 || paths[authz.PathCacheL1] == 0 || paths[authz.PathRego] == 0); n++ {
		round()
		recs := sink.all()
		for _, r := range recs[checked:] {
			i := slices.IndexFunc(reqs, func(q authz.Request) bool {
				return q.Subject == r.Request.Subject && q.Action == r.Request.Action && q.Resource == r.Request.Resource
			})
			require.GreaterOrEqual(t, i, 0, "a record of no request made: %+v", r.Request)
			require.Equal(t, reqs[i], r.Request)
			want, err := ref.Authorize(ctx, reqs[i])
			require.NoError(t, err)
			require.Equal(t, want.Allowed, r.Decision.Allowed, "%+v", r.Request)
			require.Equal(t, want.Role, r.Decision.Role, "%+v", r.Request)
			require.Equal(t, want.Reasons, r.Decision.Reasons, "%+v", r.Request)
			require.NotZero(t, r.Decision.Revision)
			require.Equal(t, eng.Policy().Fingerprint(), r.Policy)
			require.Empty(t, r.Error)
			paths[r.Path]++
		}
		checked = len(recs)
	}
	require.NoError(t, eng.Close(ctx))
	require.Equal(t, eng.Stats().DecisionLogWritten, uint64(checked))
	require.NotZero(t, paths[authz.PathCompiled], "compiled decisions logged")
	require.NotZero(t, paths[authz.PathCacheL1], "cache hits logged")
	require.NotZero(t, paths[authz.PathRego], "full evaluations logged")
}
