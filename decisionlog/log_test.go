package decisionlog_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/decisionlog"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// clock is an injected retention clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func rec(at time.Time, subject, action, resource string, allowed bool, path authz.DecisionPath, codes ...string) authz.DecisionRecord {
	r := authz.DecisionRecord{Time: at, Request: authz.Request{Subject: subject, Action: action, Resource: resource},
		Decision: authz.Decision{Allowed: allowed, Role: "viewer", Revision: 7, Reasons: []authz.Reason{}}, Policy: "fp", Path: path}
	for _, c := range codes {
		r.Decision.Reasons = append(r.Decision.Reasons, authz.Reason{Code: rego.Code(c), Message: c + " message"})
	}
	if path == authz.PathNone {
		r.Error = "invalid action"
	}
	return r
}

func ptr[T any](v T) *T { return &v }

func query(t *testing.T, l *decisionlog.Log, q decisionlog.Query) []authz.DecisionRecord {
	t.Helper()
	var out []authz.DecisionRecord
	require.NoError(t, l.Query(t.Context(), q, func(r authz.DecisionRecord) error {
		out = append(out, r)
		return nil
	}))
	return out
}

func subjects(rs []authz.DecisionRecord) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Request.Subject)
	}
	return out
}

// TestQueryFilters: each filter and time bound selects exactly its records, in time order, and
// a record reads back as written.
func TestQueryFilters(t *testing.T) {
	t.Parallel()
	c := &clock{now: t0}
	l, err := decisionlog.Open(t.Context(), decisionlog.Options{Now: c.Now})
	require.NoError(t, err)
	defer l.Close()
	recs := []authz.DecisionRecord{
		rec(t0.Add(-50*time.Minute), "a", "runs.get", "acme/vision", true, authz.PathCacheL1, "org_role"),
		rec(t0.Add(-40*time.Minute), "b", "runs.stop", "acme/vision", false, authz.PathCompiled, "restricted"),
		rec(t0.Add(-30*time.Minute), "c", "runs.get", "acme/nlp", false, authz.PathRego, "not_found"),
		rec(t0.Add(-20*time.Minute), "d", "runs.fly", "acme/nlp", false, authz.PathNone),
		rec(t0.Add(-10*time.Minute), "e", "runs.stop", "acme/vision", true, authz.PathCacheL2, "team_role", "extension_allow"),
	}
	recs[0].Request.Attributes = map[string]any{"run": map[string]any{"created_by": "a"}}
	recs[0].Latency = 1234
	// Written out of order, in two batches: reads are in time order.
	require.NoError(t, l.Write(t.Context(), []authz.DecisionRecord{recs[3], recs[0]}))
	require.NoError(t, l.Write(t.Context(), []authz.DecisionRecord{recs[4], recs[1], recs[2]}))

	all := query(t, l, decisionlog.Query{})
	require.Len(t, all, 5)
	for i := range recs {
		want := recs[i]
		if want.Request.Attributes != nil {
			require.Equal(t, "a", all[i].Request.Attributes["run"].(map[string]any)["created_by"])
			want.Request.Attributes, all[i].Request.Attributes = nil, nil
		}
		require.Equal(t, want.Time.UnixNano(), all[i].Time.UnixNano())
		want.Time = all[i].Time
		require.Equal(t, want, all[i])
	}

	cases := []struct {
		name string
		q    decisionlog.Query
		want []string
	}{
		{"subject", decisionlog.Query{Subject: "c"}, []string{"c"}},
		{"action", decisionlog.Query{Action: "runs.stop"}, []string{"b", "e"}},
		{"resource", decisionlog.Query{Resource: "acme/nlp"}, []string{"c", "d"}},
		{"allow", decisionlog.Query{Outcome: decisionlog.OutcomeAllow}, []string{"a", "e"}},
		{"deny", decisionlog.Query{Outcome: decisionlog.OutcomeDeny}, []string{"b", "c", "d"}},
		{"reason", decisionlog.Query{Reason: "extension_allow"}, []string{"e"}},
		{"path none", decisionlog.Query{Path: ptr(authz.PathNone)}, []string{"d"}},
		{"path cache_l2", decisionlog.Query{Path: ptr(authz.PathCacheL2)}, []string{"e"}},
		{"since", decisionlog.Query{Since: t0.Add(-30 * time.Minute)}, []string{"c", "d", "e"}},
		{"until", decisionlog.Query{Until: t0.Add(-30 * time.Minute)}, []string{"a", "b"}},
		{"range", decisionlog.Query{Since: t0.Add(-45 * time.Minute), Until: t0.Add(-15 * time.Minute)}, []string{"b", "c", "d"}},
		{"range and filter", decisionlog.Query{Since: t0.Add(-45 * time.Minute), Until: t0.Add(-15 * time.Minute), Resource: "acme/nlp", Outcome: decisionlog.OutcomeDeny}, []string{"c", "d"}},
		{"limit", decisionlog.Query{Limit: 2}, []string{"a", "b"}},
		{"newest", decisionlog.Query{Newest: true}, []string{"e", "d", "c", "b", "a"}},
		{"newest in range", decisionlog.Query{Newest: true, Since: t0.Add(-45 * time.Minute), Until: t0.Add(-15 * time.Minute), Limit: 2}, []string{"d", "c"}},
		{"empty range", decisionlog.Query{Since: t0.Add(time.Minute)}, nil},
		{"no match", decisionlog.Query{Subject: "zed"}, nil},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, subjects(query(t, l, tc.q)), tc.name)
	}

	for _, bad := range []decisionlog.Query{
		{Outcome: "maybe"},
		{Outcome: "denied"}, // ParseOutcome's spelling for the CLI; a Query holds the constants
		{Limit: -1},
		{Since: t0, Until: t0},
		{Since: t0, Until: t0.Add(-time.Second)},
		{Path: ptr(authz.DecisionPath(99))},
	} {
		require.ErrorIs(t, l.Query(t.Context(), bad, func(authz.DecisionRecord) error { return nil }), teamgate.ErrInvalid, "%+v", bad)
	}
	stop := fmt.Errorf("stop")
	require.ErrorIs(t, l.Query(t.Context(), decisionlog.Query{}, func(authz.DecisionRecord) error { return stop }), stop)

	// ParseOutcome reads the log's words and the metrics' outcome labels.
	for s, want := range map[string]decisionlog.Outcome{"": "", "allow": decisionlog.OutcomeAllow, "allowed": decisionlog.OutcomeAllow,
		"deny": decisionlog.OutcomeDeny, "denied": decisionlog.OutcomeDeny} {
		got, err := decisionlog.ParseOutcome(s)
		require.NoError(t, err, s)
		require.Equal(t, want, got, s)
	}
	for _, s := range []string{"maybe", "error", "Deny", "allow "} {
		_, err := decisionlog.ParseOutcome(s)
		require.ErrorIs(t, err, teamgate.ErrInvalid, s)
	}
}

// TestRetentionByAge: records older than MaxAge are never returned, and are deleted at Open and
// by Retain.
func TestRetentionByAge(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := &clock{now: t0}
	opts := decisionlog.Options{Dir: dir, MaxAge: time.Hour, Now: c.Now}
	l, err := decisionlog.Open(t.Context(), opts)
	require.NoError(t, err)
	require.NoError(t, l.Write(t.Context(), []authz.DecisionRecord{
		rec(t0.Add(-30*time.Minute), "old", "runs.get", "acme/x", true, authz.PathCacheL1),
		rec(t0.Add(-10*time.Minute), "mid", "runs.get", "acme/x", true, authz.PathCacheL1),
		rec(t0, "new", "runs.get", "acme/x", true, authz.PathCacheL1),
	}))
	require.Equal(t, []string{"old", "mid", "new"}, subjects(query(t, l, decisionlog.Query{})))

	c.add(35 * time.Minute) // "old" is past MaxAge: hidden before any pass
	require.Equal(t, []string{"mid", "new"}, subjects(query(t, l, decisionlog.Query{})))
	n, _ := l.Size()
	require.Equal(t, int64(3), n, "not yet deleted")
	require.NoError(t, l.Retain(t.Context()))
	n, _ = l.Size()
	require.Equal(t, int64(2), n)
	require.NoError(t, l.Close())

	c.add(20 * time.Minute) // "mid" too: deleted by Open
	l, err = decisionlog.Open(t.Context(), opts)
	require.NoError(t, err)
	defer l.Close()
	n, _ = l.Size()
	require.Equal(t, int64(1), n)
	require.Equal(t, []string{"new"}, subjects(query(t, l, decisionlog.Query{Since: t0.Add(-24 * time.Hour)})))

	// Keys continue after the records kept: a new record at the same instant sorts after.
	require.NoError(t, l.Write(t.Context(), []authz.DecisionRecord{rec(t0, "same", "runs.get", "acme/x", true, authz.PathCacheL1)}))
	require.Equal(t, []string{"new", "same"}, subjects(query(t, l, decisionlog.Query{})))
}

// TestExpiredRecordsDoNotComeBack: a record past MaxAge is hidden at once and deleted by Close
// at the latest, so a log reopened with a longer MaxAge does not show it again.
func TestExpiredRecordsDoNotComeBack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := &clock{now: t0}
	l, err := decisionlog.Open(t.Context(), decisionlog.Options{Dir: dir, MaxAge: time.Hour, Now: c.Now})
	require.NoError(t, err)
	require.NoError(t, l.Write(t.Context(), []authz.DecisionRecord{
		rec(t0.Add(-30*time.Minute), "old", "runs.get", "acme/x", true, authz.PathCacheL1),
		rec(t0, "new", "runs.get", "acme/x", true, authz.PathCacheL1),
	}))
	c.add(35 * time.Minute) // "old" is past MaxAge; the background pass has not run
	require.Equal(t, []string{"new"}, subjects(query(t, l, decisionlog.Query{})))
	require.NoError(t, l.Close())

	l, err = decisionlog.Open(t.Context(), decisionlog.Options{Dir: dir, MaxAge: 24 * time.Hour, Now: c.Now})
	require.NoError(t, err)
	defer l.Close()
	require.Equal(t, []string{"new"}, subjects(query(t, l, decisionlog.Query{})), "an expired record came back")
	n, _ := l.Size()
	require.Equal(t, int64(1), n)
}

// TestRetentionBySize: the records never exceed MaxBytes after a write; the oldest go first;
// Open trims a log written with a larger bound.
func TestRetentionBySize(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := &clock{now: t0}
	const maxBytes = decisionlog.MinMaxBytes
	l, err := decisionlog.Open(t.Context(), decisionlog.Options{Dir: dir, MaxBytes: 4 * maxBytes, Now: c.Now})
	require.NoError(t, err)
	const n = 2000
	batch := make([]authz.DecisionRecord, 0, 100)
	for i := range n {
		batch = append(batch, rec(t0.Add(time.Duration(i-n)*time.Second), fmt.Sprintf("u%04d", i), "runs.get", "acme/x", true, authz.PathCacheL1, "org_role"))
		if len(batch) == cap(batch) {
			require.NoError(t, l.Write(t.Context(), batch))
			batch = batch[:0]
			_, size := l.Size()
			require.LessOrEqual(t, size, int64(4*maxBytes))
		}
	}
	records, size := l.Size()
	require.Less(t, records, int64(n), "some were trimmed")
	got := query(t, l, decisionlog.Query{})
	require.Len(t, got, int(records))
	require.Equal(t, fmt.Sprintf("u%04d", n-1), got[len(got)-1].Request.Subject, "the newest are kept")
	require.Equal(t, fmt.Sprintf("u%04d", n-int(records)), got[0].Request.Subject, "the oldest went first")
	require.NoError(t, l.Close())

	l, err = decisionlog.Open(t.Context(), decisionlog.Options{Dir: dir, MaxBytes: maxBytes, Now: c.Now})
	require.NoError(t, err)
	defer l.Close()
	records2, size2 := l.Size()
	require.LessOrEqual(t, size2, int64(maxBytes))
	require.Less(t, records2, records)
	require.Less(t, size2, size)
	got = query(t, l, decisionlog.Query{})
	require.Len(t, got, int(records2))
	require.Equal(t, fmt.Sprintf("u%04d", n-1), got[len(got)-1].Request.Subject)
}

// TestNoRetention: a log opened with NoRetention deletes nothing and hides nothing, whatever its
// defaults would say, so a reader does not cut a host's longer bounds.
func TestNoRetention(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := &clock{now: t0}
	host := decisionlog.Options{Dir: dir, MaxAge: 30 * 24 * time.Hour, Now: c.Now}
	l, err := decisionlog.Open(t.Context(), host)
	require.NoError(t, err)
	require.NoError(t, l.Write(t.Context(), []authz.DecisionRecord{
		rec(t0.Add(-10*24*time.Hour), "tenday", "runs.get", "acme/x", true, authz.PathCacheL1),
		rec(t0, "new", "runs.get", "acme/x", true, authz.PathCacheL1),
	}))
	require.NoError(t, l.Close())
	l, err = decisionlog.Open(t.Context(), decisionlog.Options{Dir: dir, Now: c.Now, NoRetention: true}) // default MaxAge: 7 days
	require.NoError(t, err)
	require.Equal(t, []string{"tenday", "new"}, subjects(query(t, l, decisionlog.Query{})))
	require.NoError(t, l.Retain(t.Context()))
	require.NoError(t, l.Close())
	l, err = decisionlog.Open(t.Context(), host)
	require.NoError(t, err)
	defer l.Close()
	require.Equal(t, []string{"tenday", "new"}, subjects(query(t, l, decisionlog.Query{})), "the reader deleted nothing")
}

// TestRetentionUnderABurst: one Write far larger than MaxBytes keeps its newest records within
// the bound, and writers at once never leave the log above it after a Write returns.
func TestRetentionUnderABurst(t *testing.T) {
	t.Parallel()
	c := &clock{now: t0}
	const maxBytes = decisionlog.MinMaxBytes
	l, err := decisionlog.Open(t.Context(), decisionlog.Options{Dir: t.TempDir(), MaxBytes: maxBytes, Now: c.Now})
	require.NoError(t, err)
	defer l.Close()
	var huge []authz.DecisionRecord
	for i := range 3000 { // about 4 × maxBytes
		huge = append(huge, rec(t0.Add(time.Duration(i-3000)*time.Millisecond), fmt.Sprintf("h%04d", i), "runs.get", "acme/x", true, authz.PathCacheL1, "org_role"))
	}
	require.NoError(t, l.Write(t.Context(), huge))
	records, size := l.Size()
	require.LessOrEqual(t, size, int64(maxBytes))
	require.Less(t, records, int64(len(huge)))
	got := query(t, l, decisionlog.Query{})
	require.Equal(t, "h2999", got[len(got)-1].Request.Subject, "the newest of the batch are kept")

	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 20 {
				batch := make([]authz.DecisionRecord, 50)
				for j := range batch {
					batch[j] = rec(t0.Add(time.Duration(w*1000+i*50+j)*time.Millisecond), fmt.Sprintf("w%d-%02d-%02d", w, i, j), "runs.get", "acme/x", true, authz.PathCacheL1, "org_role")
				}
				assert.NoError(t, l.Write(t.Context(), batch))
				_, size := l.Size()
				assert.LessOrEqual(t, size, int64(maxBytes))
			}
		})
	}
	wg.Wait()
	records, size = l.Size()
	require.LessOrEqual(t, size, int64(maxBytes))
	require.Len(t, query(t, l, decisionlog.Query{}), int(records))
}

// TestOpenRefuses: bad options, another kind of directory and a corrupt record are clear errors.
func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for _, o := range []decisionlog.Options{{MaxAge: -time.Second}, {MaxBytes: 10}, {RetentionInterval: -time.Second}} {
		_, err := decisionlog.Open(ctx, o)
		require.ErrorIs(t, err, teamgate.ErrInvalid, "%+v", o)
	}

	// A teamgate store is not a decision log.
	stDir := t.TempDir()
	st, err := store.Open(ctx, store.Options{Dir: stDir})
	require.NoError(t, err)
	_, err = st.LoadFile(ctx, conformance.DataFile())
	require.NoError(t, err)
	require.NoError(t, st.Close())
	_, err = decisionlog.Open(ctx, decisionlog.Options{Dir: stDir})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	require.ErrorContains(t, err, "not a decision log")

	// Garbage where Badger's manifest should be.
	bad := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bad, "MANIFEST"), []byte("garbage"), 0o644))
	_, err = decisionlog.Open(ctx, decisionlog.Options{Dir: bad})
	require.ErrorContains(t, err, "cannot open it as a Badger directory")

	// Open twice: Badger's lock.
	dir := t.TempDir()
	l, err := decisionlog.Open(ctx, decisionlog.Options{Dir: dir})
	require.NoError(t, err)
	_, err = decisionlog.Open(ctx, decisionlog.Options{Dir: dir})
	require.ErrorContains(t, err, "locked by another process")
	now := time.Now()
	require.NoError(t, l.Write(ctx, []authz.DecisionRecord{rec(now, "a", "runs.get", "acme/x", true, authz.PathCacheL1)}))
	require.NoError(t, l.Close())
	require.ErrorIs(t, l.Close(), teamgate.ErrClosed)
	require.ErrorIs(t, l.Write(ctx, nil), teamgate.ErrClosed)
	require.ErrorIs(t, l.Query(ctx, decisionlog.Query{}, func(authz.DecisionRecord) error { return nil }), teamgate.ErrClosed)

	// A record whose value was damaged: the query names it.
	db, err := badger.Open(badger.DefaultOptions(dir).WithLoggingLevel(badger.ERROR))
	require.NoError(t, err)
	require.NoError(t, db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("dl1/r/")})
		defer it.Close()
		it.Rewind()
		require.True(t, it.Valid())
		return txn.Set(it.Item().KeyCopy(nil), []byte{1, 0, 1, 200})
	}))
	require.NoError(t, db.Close())
	l, err = decisionlog.Open(ctx, decisionlog.Options{Dir: dir})
	require.NoError(t, err)
	defer l.Close()
	err = l.Query(ctx, decisionlog.Query{}, func(authz.DecisionRecord) error { return nil })
	require.ErrorContains(t, err, "is corrupt")
	require.ErrorContains(t, err, now.UTC().Format(time.RFC3339Nano))
}

// TestEngineToLogAndRecheck: an engine logs into the Badger sink; after a membership change
// Recheck finds exactly the decisions that flipped.
func TestEngineToLogAndRecheck(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := conformance.OpenStore(t, store.Options{})
	l, err := decisionlog.Open(ctx, decisionlog.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	defer l.Close()
	eng, err := authz.New(ctx, st, authz.WithDecisionLog(l))
	require.NoError(t, err)
	reqs := []authz.Request{
		{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}, // bob is in engineering: flips
		{Subject: "bob", Action: "runs.stop", Resource: "acme/vision"},             // the same decision, another reference: flips
		{Subject: "vera", Action: "runs.get", Resource: "acme/nlp"},                // vera is in engineering too: stays
		{Subject: "alice", Action: "org.update", Resource: "acme"},                 // stays
		{Subject: "bob", Action: "runs.approve", Resource: "acme/vision"},          // denied before and after
		{Subject: "bob", Action: "runs.fly", Resource: "acme/vision"},              // an error before and after
	}
	for _, r := range reqs {
		_, _ = eng.Authorize(ctx, r)
	}
	require.NoError(t, eng.Close(ctx))
	require.Len(t, query(t, l, decisionlog.Query{}), len(reqs))

	fresh, err := authz.New(ctx, st)
	require.NoError(t, err)
	changes := func() []decisionlog.Change {
		var out []decisionlog.Change
		require.NoError(t, decisionlog.Recheck(ctx, l, fresh, decisionlog.Query{}, func(c decisionlog.Change) error {
			out = append(out, c)
			return nil
		}))
		return out
	}
	require.Empty(t, changes())
	logged := st.Revision()
	// Writes that name neither bob nor vision, then the one that flips bob's decisions, then one
	// on vision.
	_, err = st.Apply(ctx, store.PutMember{Org: "other", User: "zoe", Role: "member"})
	require.NoError(t, err)
	_, err = st.Apply(ctx, store.PutProject{Project: store.Project{Org: "acme", Name: "lab2"}})
	require.NoError(t, err)
	revoked, err := st.Apply(ctx, store.DeleteTeamMember{Org: "acme", Team: "engineering", User: "bob"})
	require.NoError(t, err)
	got := changes()
	require.Len(t, got, 2)
	for i, c := range got {
		require.Equal(t, reqs[i], c.Record.Request)
		require.True(t, c.Record.Decision.Allowed)
		require.False(t, c.Now.Allowed)
		require.True(t, c.Now.Has("restricted"), "%v", c.Now.Reasons)
		require.False(t, c.PolicyChanged)
		require.Nil(t, c.Writes, "no event log given")
	}
	// With the store's events, each change names the writes since its decision that touched its
	// subject or project, and only those; with another policy, says so.
	withEvents := func(eng *authz.Engine) []decisionlog.Change {
		var out []decisionlog.Change
		require.NoError(t, decisionlog.Recheck(ctx, l, eng, decisionlog.Query{}, func(c decisionlog.Change) error {
			out = append(out, c)
			return nil
		}, decisionlog.WithEvents(st)))
		return out
	}
	for _, c := range withEvents(fresh) {
		require.Equal(t, logged, c.Record.Decision.Revision)
		require.Equal(t, []authz.Cause{{Revision: revoked, Kind: "delete_team_member"}}, c.Writes, "%+v", c.Record.Request)
	}
	_, err = st.Apply(ctx, store.PutProject{Project: store.Project{Org: "acme", Name: "vision", Teams: []string{"research"}}})
	require.NoError(t, err)
	got = withEvents(fresh)
	require.Len(t, got, 2)
	require.Equal(t, []authz.Cause{{Revision: revoked, Kind: "delete_team_member"}, {Revision: revoked + 1, Kind: "put_project"}}, got[0].Writes)
	frozen, err := authz.New(ctx, st, authz.WithModules(rego.Module{Name: "f.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"frozen\" if input.subject.id == \"alice\"\n"}))
	require.NoError(t, err)
	got = withEvents(frozen)
	require.Len(t, got, 3, "alice's decision flips under the new policy")
	for _, c := range got {
		require.True(t, c.PolicyChanged)
	}
	require.Equal(t, "alice", got[2].Record.Request.Subject)
	require.Empty(t, got[2].Writes, "no write named alice or acme's org record since")
	require.NotNil(t, got[2].Writes)
	require.Empty(t, query(t, l, decisionlog.Query{Outcome: decisionlog.OutcomeAllow, Subject: "bill"}))

	// The context ending stops a recheck.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, decisionlog.Recheck(cctx, l, fresh, decisionlog.Query{}, func(decisionlog.Change) error { return nil }), context.Canceled)
}

// TestConcurrentUse: writes, queries and retention passes at once (run under -race), then Close
// while a query runs.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	l, err := decisionlog.Open(ctx, decisionlog.Options{Dir: t.TempDir(), MaxBytes: decisionlog.MinMaxBytes})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := range 50 {
				r := rec(time.Now(), fmt.Sprintf("w%d", w), "runs.get", "acme/x", i%2 == 0, authz.PathCompiled, "org_role")
				if err := l.Write(ctx, []authz.DecisionRecord{r, r}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if err := l.Query(ctx, decisionlog.Query{Outcome: decisionlog.OutcomeAllow}, func(r authz.DecisionRecord) error {
				if !r.Decision.Allowed {
					return fmt.Errorf("a deny in an allow query")
				}
				return nil
			}); err != nil {
				t.Error(err)
			}
			if err := l.Retain(ctx); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	records, _ := l.Size()
	require.Len(t, query(t, l, decisionlog.Query{}), int(records))

	started := make(chan struct{})
	queryDone := make(chan error, 1)
	go func() {
		first := true
		queryDone <- l.Query(ctx, decisionlog.Query{}, func(authz.DecisionRecord) error {
			if first {
				close(started)
				first = false
			}
			return nil
		})
	}()
	<-started
	require.NoError(t, l.Close())
	require.NoError(t, <-queryDone, "Close waits for the query under way")
}
