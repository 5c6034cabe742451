package decisionlog_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/decisionlog"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/store"
)

// TestAttack23RecheckNamesProjectWritesWhateverTheReference: a write that names only the
// project (its teams changed) is in CHANGED SINCE for every spelling of the project a request
// may use (SPEC §3): org/project, org/team/project, the dotted form, and a one-part reference
// with a context owner — and a two-part reference with an owner, which the owner does not
// change.
func TestAttack23RecheckNamesProjectWritesWhateverTheReference(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := conformance.OpenStore(t, store.Options{})
	l, err := decisionlog.Open(ctx, decisionlog.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	defer l.Close()
	eng, err := authz.New(ctx, st, authz.WithDecisionLog(l))
	require.NoError(t, err)
	reqs := []authz.Request{
		{Subject: "bob", Action: "runs.stop", Resource: "acme/vision"},
		{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"},
		{Subject: "bob", Action: "runs.stop", Resource: "acme.engineering.vision"},
		{Subject: "bob", Action: "runs.stop", Resource: "vision", Owner: "acme/engineering"},
		{Subject: "bob", Action: "runs.stop", Resource: "vision", Owner: "acme"},
		{Subject: "bob", Action: "runs.stop", Resource: "acme/vision", Owner: "acme"},
	}
	for _, r := range reqs {
		d, err := eng.Authorize(ctx, r)
		require.NoError(t, err)
		require.True(t, d.Allowed, "%+v", r)
	}
	require.NoError(t, eng.Close(ctx))
	// Only the project's record changes: bob's team no longer holds vision.
	rev, err := st.Apply(ctx, store.PutProject{Project: store.Project{Org: "acme", Name: "vision", Teams: []string{"research"}, Policy: "gpu-policy", CreatedBy: "bob"}})
	require.NoError(t, err)
	fresh, err := authz.New(ctx, st)
	require.NoError(t, err)
	var got []decisionlog.Change
	require.NoError(t, decisionlog.Recheck(ctx, l, fresh, decisionlog.Query{}, func(c decisionlog.Change) error {
		got = append(got, c)
		return nil
	}, decisionlog.WithEvents(st)))
	require.Len(t, got, len(reqs))
	for i, c := range got {
		require.Equal(t, reqs[i], c.Record.Request)
		require.False(t, c.Now.Allowed)
		require.Equal(t, []authz.Cause{{Revision: rev, Kind: "put_project"}}, c.Writes, "%+v: %s", c.Record.Request, strings.Repeat("", 0))
	}
}

// files lists a directory's files and sizes.
func files(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string]int64{}
	for _, e := range ents {
		fi, err := e.Info()
		require.NoError(t, err)
		out[e.Name()] = fi.Size()
	}
	return out
}

// TestAttack23DamagedDirectoryIsRefusedUntouched: a log directory whose MANIFEST is lost, or one
// of whose tables is truncated or emptied, is refused with an error matching
// teamgate.ErrInvalid that says what is damaged, and left as it was. (Badger opened the first as
// a new, empty log and deleted the tables it did not know — every record, by a read-only
// `teamgate decisions`; it panicked on the second on a goroutine of its own, ending the process.)
func TestAttack23DamagedDirectoryIsRefusedUntouched(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	damage := map[string]func(dir string) error{
		"MANIFEST lost":       func(dir string) error { return os.Remove(filepath.Join(dir, "MANIFEST")) },
		"table cut in half":   func(dir string) error { return cut(filepath.Join(dir, "000001.sst"), 2) },
		"table emptied":       func(dir string) error { return os.Truncate(filepath.Join(dir, "000001.sst"), 0) },
		"table's footer lost": func(dir string) error { return cut(filepath.Join(dir, "000001.sst"), -4) },
	}
	for name, hurt := range damage {
		dir := t.TempDir()
		l, err := decisionlog.Open(ctx, decisionlog.Options{Dir: dir})
		require.NoError(t, err)
		var rs []authz.DecisionRecord
		for i := range 500 {
			rs = append(rs, rec(time.Now(), fmt.Sprint("s", i), "runs.get", "acme/x", true, authz.PathRego, "grant"))
		}
		require.NoError(t, l.Write(ctx, rs))
		require.NoError(t, l.Close())
		require.Contains(t, files(t, dir), "000001.sst", name)
		require.NoError(t, hurt(dir), name)
		before := files(t, dir)
		_, err = decisionlog.Open(ctx, decisionlog.Options{Dir: dir, NoRetention: true})
		require.ErrorIs(t, err, teamgate.ErrInvalid, name)
		require.ErrorContains(t, err, "damaged", name)
		require.Equal(t, before, files(t, dir), "%s: nothing deleted or changed", name)
	}
}

// cut truncates a file to its size divided by n (n > 0) or shortened by -n bytes.
func cut(path string, n int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if n > 0 {
		return os.Truncate(path, fi.Size()/n)
	}
	return os.Truncate(path, fi.Size()+n)
}

// watchCounter is an event log that counts the reads (Watch) made of it, and keeps the events
// from revision oldest on (0: all), as a store whose older events were trimmed.
type watchCounter struct {
	authz.EventLog
	n      int
	oldest uint64
}

func (w *watchCounter) Watch(ctx context.Context, from uint64) (<-chan store.Event, error) {
	w.n++
	if from+1 < w.oldest {
		return nil, &store.TrimmedError{Next: from + 1, Oldest: w.oldest}
	}
	return w.EventLog.Watch(ctx, from)
}

// TestAttack23RecheckNewestFirstReadsTheEventsAFewTimes: a recheck of decisions logged at
// distinct revisions, newest first (--newest), reads the store's events a few times, not once per
// revision (3,000 such records took 85 s, 176 times oldest first), and finds each change's
// writes as oldest first does; so too when the store no longer keeps the oldest events (the
// reloads stopped at the trimmed end and became one per revision again).
func TestAttack23RecheckNewestFirstReadsTheEventsAFewTimes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := conformance.OpenStore(t, store.Options{})
	l, err := decisionlog.Open(ctx, decisionlog.Options{})
	require.NoError(t, err)
	defer l.Close()
	eng, err := authz.New(ctx, st, authz.WithDecisionLog(l))
	require.NoError(t, err)
	const n = 300
	first := st.Revision() + 1 // the first decision's
	for i := range n {
		_, err := st.Apply(ctx, store.PutMember{Org: "other", User: fmt.Sprint("u", i), Role: "member"}) // names neither bob nor vision
		require.NoError(t, err)
		_, err = eng.Authorize(ctx, authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/vision"})
		require.NoError(t, err)
	}
	require.NoError(t, eng.Close(ctx))
	revoked, err := st.Apply(ctx, store.DeleteTeamMember{Org: "acme", Team: "engineering", User: "bob"})
	require.NoError(t, err)
	fresh, err := authz.New(ctx, st)
	require.NoError(t, err)
	// The store keeps all its events, or those from the 100th logged decision's revision on.
	for _, oldest := range []uint64{0, first + 100} {
		for _, newest := range []bool{false, true} {
			events := &watchCounter{EventLog: st, oldest: oldest}
			var revs []uint64
			require.NoError(t, decisionlog.Recheck(ctx, l, fresh, decisionlog.Query{Newest: newest}, func(c decisionlog.Change) error {
				if c.Record.Decision.Revision+1 < oldest {
					require.Nil(t, c.Writes, "the events after its revision are trimmed")
				} else {
					require.Equal(t, []authz.Cause{{Revision: revoked, Kind: "delete_team_member"}}, c.Writes)
				}
				revs = append(revs, c.Record.Decision.Revision)
				return nil
			}, decisionlog.WithEvents(events)))
			require.Len(t, revs, n)
			require.Equal(t, n, len(slices.Compact(slices.Sorted(slices.Values(revs)))), "distinct revisions")
			require.Equal(t, first, slices.Min(revs))
			require.LessOrEqual(t, events.n, 14, "newest=%v oldest=%d: reads of the events for %d revisions", newest, oldest, n)
		}
	}
}

// TestAttack23RecheckAfterDeletesAndRenames: a decision whose project, team (deleted or
// renamed), org or subject's membership is gone since is listed as changed, denied now without
// an error, with the write that did it among its writes; a team request, which names no project,
// through the write naming its subject.
func TestAttack23RecheckAfterDeletesAndRenames(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cases := map[string]struct {
		change  store.Change
		kind    string
		changed int // of the two decisions
	}{
		"project deleted":   {store.DeleteProject{Org: "acme", Name: "vision"}, "delete_project", 1},
		"team renamed":      {store.RenameTeam{Org: "acme", From: "engineering", To: "eng"}, "rename_team", 2},
		"org deleted":       {store.DeleteOrg{Name: "acme"}, "delete_org", 2},
		"subject left org":  {store.DeleteMember{Org: "acme", User: "bob"}, "delete_member", 2},
		"subject left team": {store.DeleteTeamMember{Org: "acme", Team: "engineering", User: "bob"}, "delete_team_member", 2},
	}
	for name, c := range cases {
		st := conformance.OpenStore(t, store.Options{})
		l, err := decisionlog.Open(ctx, decisionlog.Options{})
		require.NoError(t, err)
		eng, err := authz.New(ctx, st, authz.WithDecisionLog(l))
		require.NoError(t, err)
		// A project request, and a team request, which names no project: only writes naming bob
		// are its.
		for _, req := range []authz.Request{{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"},
			{Subject: "bob", Action: "team.runs", Resource: "acme/engineering"}} {
			d, err := eng.Authorize(ctx, req)
			require.NoError(t, err)
			require.True(t, d.Allowed)
		}
		require.NoError(t, eng.Close(ctx))
		rev, err := st.Apply(ctx, c.change)
		require.NoError(t, err, name)
		fresh, err := authz.New(ctx, st)
		require.NoError(t, err)
		var got []decisionlog.Change
		require.NoError(t, decisionlog.Recheck(ctx, l, fresh, decisionlog.Query{}, func(c decisionlog.Change) error {
			got = append(got, c)
			return nil
		}, decisionlog.WithEvents(st)), name)
		require.Len(t, got, c.changed, name)
		for _, ch := range got {
			require.False(t, ch.Now.Allowed, name)
			require.Empty(t, ch.Error, name)
			require.Contains(t, ch.Writes, authz.Cause{Revision: rev, Kind: c.kind}, "%s: %+v", name, ch.Record.Request)
		}
		require.NoError(t, l.Close())
	}
}

// TestAttack23RetentionEdges: a record exactly MaxAge old is kept and shown, one a nanosecond
// older is hidden and deleted; a retention clock that goes back deletes and hides nothing it
// kept before, and a record from "the future" stays; a record larger than MaxBytes is written
// and then trimmed with the oldest (Options.MaxBytes), leaving the log within its bound.
func TestAttack23RetentionEdges(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := &clock{now: t0}
	l, err := decisionlog.Open(ctx, decisionlog.Options{Dir: t.TempDir(), MaxAge: time.Hour, MaxBytes: decisionlog.MinMaxBytes, Now: c.Now})
	require.NoError(t, err)
	defer l.Close()
	require.NoError(t, l.Write(ctx, []authz.DecisionRecord{
		rec(t0.Add(-time.Hour-1), "older", "runs.get", "acme/x", true, authz.PathRego),
		rec(t0.Add(-time.Hour), "edge", "runs.get", "acme/x", true, authz.PathRego),
		rec(t0.Add(time.Hour), "future", "runs.get", "acme/x", true, authz.PathRego),
	}))
	require.Equal(t, []string{"edge", "future"}, subjects(query(t, l, decisionlog.Query{})))
	require.NoError(t, l.Retain(ctx))
	n, _ := l.Size()
	require.Equal(t, int64(2), n, "the record a nanosecond past MaxAge is deleted, the one at MaxAge kept")

	c.add(-24 * time.Hour) // the clock goes back a day
	require.NoError(t, l.Retain(ctx))
	require.Equal(t, []string{"edge", "future"}, subjects(query(t, l, decisionlog.Query{})))
	c.add(24 * time.Hour)

	big := rec(t0, "big", "runs.get", "acme/x", true, authz.PathRego)
	big.Request.Attributes = map[string]any{"blob": strings.Repeat("x", decisionlog.MinMaxBytes)}
	require.NoError(t, l.Write(ctx, []authz.DecisionRecord{big}))
	n, size := l.Size()
	require.LessOrEqual(t, size, int64(decisionlog.MinMaxBytes))
	require.Equal(t, int64(1), n, "a record larger than MaxBytes does not stay")
	require.Equal(t, []string{"future"}, subjects(query(t, l, decisionlog.Query{})), "trimmed from the oldest, by time")
}

// TestAttack23TimeBoundsFarAway: Since and Until far in the past or future (before 1678 or after
// 2262, where Unix nanoseconds overflow) bound nothing away: `--since 1600-01-01T00:00:00Z` or
// `--until 9999-12-31T00:00:00Z` selects every record (both selected none), oldest or newest
// first.
func TestAttack23TimeBoundsFarAway(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	l, err := decisionlog.Open(ctx, decisionlog.Options{NoRetention: true})
	require.NoError(t, err)
	defer l.Close()
	now := time.Now()
	require.NoError(t, l.Write(ctx, []authz.DecisionRecord{
		rec(now.Add(-time.Hour), "a", "runs.get", "acme/x", true, authz.PathRego),
		rec(now, "b", "runs.get", "acme/x", true, authz.PathRego),
	}))
	far := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return v
	}
	for _, q := range []decisionlog.Query{
		{Since: far("1600-01-01T00:00:00Z")},
		{Since: far("0001-01-01T00:00:00Z")},
		{Until: far("9999-12-31T00:00:00Z")},
		{Until: far("2300-01-01T00:00:00Z")},
		{Since: far("1000-01-01T00:00:00Z"), Until: far("3000-01-01T00:00:00Z")},
	} {
		require.Equal(t, []string{"a", "b"}, subjects(query(t, l, q)), "%+v", q)
		q.Newest = true
		require.Equal(t, []string{"b", "a"}, subjects(query(t, l, q)), "%+v", q)
	}
}

// BenchmarkAttack23Recheck: Recheck WithEvents of records decisions, each logged at a revision
// of its own (a write between every two decisions), all of them changed since (a final write
// revokes the subject), oldest and newest first. peak-live-MB is the most heap in use while
// rechecking (after a GC, 20 times a recheck, untimed) above that before it.
func BenchmarkAttack23Recheck(b *testing.B) {
	for _, records := range []int{3000, 20_000, 100_000} {
		ctx := b.Context()
		st, err := store.Open(ctx, store.Options{})
		require.NoError(b, err)
		_, err = st.LoadFile(ctx, conformance.DataFile())
		require.NoError(b, err)
		l, err := decisionlog.Open(ctx, decisionlog.Options{NoRetention: true})
		require.NoError(b, err)
		eng, err := authz.New(ctx, st, authz.WithDecisionLog(l), authz.WithDecisionLogQueue(1<<16))
		require.NoError(b, err)
		for i := range records {
			_, err := st.Apply(ctx, store.PutMember{Org: "other", User: "zoe", Role: []string{"member", "viewer"}[i%2]})
			require.NoError(b, err)
			_, err = eng.Authorize(ctx, authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/vision"})
			require.NoError(b, err)
			if i%1000 == 999 {
				require.NoError(b, eng.FlushDecisionLog(ctx))
			}
		}
		require.NoError(b, eng.Close(ctx))
		require.Zero(b, eng.Stats().DecisionLogDropped)
		_, err = st.Apply(ctx, store.DeleteTeamMember{Org: "acme", Team: "engineering", User: "bob"})
		require.NoError(b, err)
		fresh, err := authz.New(ctx, st)
		require.NoError(b, err)
		for _, newest := range []bool{false, true} {
			b.Run(fmt.Sprintf("records=%d/newest=%v", records, newest), func(b *testing.B) {
				var peak, base uint64
				var ms runtime.MemStats
				live := func() uint64 { // the heap in use, after a GC
					runtime.GC()
					runtime.ReadMemStats(&ms)
					return ms.HeapAlloc
				}
				base = live()
				for b.Loop() {
					n := 0
					require.NoError(b, decisionlog.Recheck(ctx, l, fresh, decisionlog.Query{Newest: newest}, func(decisionlog.Change) error {
						if n++; n%(records/20) == 0 {
							b.StopTimer()
							peak = max(peak, live())
							b.StartTimer()
						}
						return nil
					}, decisionlog.WithEvents(st)))
					require.Equal(b, records, n)
				}
				b.ReportMetric(float64(peak-min(peak, base))/(1<<20), "peak-live-MB")
			})
		}
		require.NoError(b, l.Close())
		require.NoError(b, st.Close())
	}
}
