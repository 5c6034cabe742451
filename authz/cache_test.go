package authz_test

import (
	"fmt"
	"github.com/teamgate/teamgate/internal/racedetect"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// randomWrite picks one change over the random directory's names; it may fail validation,
// which is fine: a failed write changes nothing. Renames pick a name of teams: pass a name no
// team has yet among them, so that some renames succeed.
func randomWrite(rng *rand.Rand, users, teams, projects []string) store.Change {
	u := users[rng.IntN(len(users))]
	tm := teams[rng.IntN(len(teams))]
	p := projects[rng.IntN(len(projects))]
	switch rng.IntN(16) {
	case 0:
		return store.PutMember{Org: "o", User: u, Role: store.OrgRoles()[rng.IntN(7)]}
	case 1:
		return store.DeleteMember{Org: "o", User: u}
	case 2:
		return store.PutTeamMember{Org: "o", Team: tm, User: u, Role: store.TeamRoles()[rng.IntN(4)]}
	case 3:
		return store.DeleteTeamMember{Org: "o", Team: tm, User: u}
	case 4:
		return store.PutGrant{Org: "o", Project: p, User: u, Grant: store.Grant{Role: store.TeamRoles()[rng.IntN(4)]}}
	case 5:
		return store.DeleteGrant{Org: "o", Project: p, User: u}
	case 6:
		var ts []string
		for _, t := range teams {
			if rng.IntN(3) == 0 {
				ts = append(ts, t)
			}
		}
		return store.PutPolicy{Policy: store.Policy{Org: "o", Name: "p0", Settings: policy.Settings{Teams: ts}}}
	case 7:
		var ts []string
		for _, t := range teams {
			if rng.IntN(4) == 0 {
				ts = append(ts, t)
			}
		}
		pol := []string{"", "p0", "p1"}[rng.IntN(3)]
		return store.PutProject{Project: store.Project{Org: "o", Name: p, Teams: ts, Policy: pol}}
	case 8:
		return store.DeleteProject{Org: "o", Name: p}
	case 9:
		return store.PutTeam{Team: store.Team{Org: "o", Name: tm}}
	case 11:
		return store.RenameTeam{Org: "o", From: tm, To: teams[rng.IntN(len(teams))]}
	case 12:
		return store.CreateProject{Project: store.Project{Org: "o", Name: p}, Team: []string{"", tm}[rng.IntN(2)]}
	case 13: // link or unlink a policy: the team's projects that followed the link follow
		return store.PutTeam{Team: store.Team{Org: "o", Name: tm, Policy: []string{"", "p0", "p1"}[rng.IntN(3)]}}
	case 14:
		return store.DeletePolicy{Org: "o", Name: []string{"p0", "p1"}[rng.IntN(2)]}
	case 15:
		return store.PutUser{User: store.User{ID: u, DefaultTeam: "o/" + tm}}
	default:
		return store.DeleteTeam{Org: "o", Name: tm}
	}
}

func randomRequest(rng *rand.Rand, actions, users, teams, projects []string) authz.Request {
	u := users[rng.IntN(len(users))]
	a := actions[rng.IntN(len(actions))]
	tm := teams[rng.IntN(len(teams))]
	p := projects[rng.IntN(len(projects))]
	var res string
	switch {
	case a == "org.get" || a == "members.list" || a == "org.update" || a == "projects.create" || a == "org.runs":
		res = []string{"o", "nope"}[rng.IntN(2)]
	case len(a) > 5 && a[:5] == "team.":
		res = "o/" + tm
	case rng.IntN(4) == 0: // a one-part reference in a context owner
		owner := []string{"o", "o/" + tm}[rng.IntN(2)]
		return authz.Request{Subject: u, Action: a, Resource: p, Owner: owner}
	case rng.IntN(2) == 0:
		res = "o/" + tm + "/" + p
	default:
		res = "o/" + p
	}
	return authz.Request{Subject: u, Action: a, Resource: res}
}

// TestDecisionCacheDifferential interleaves random writes and checks and compares, on the same
// store, full Rego evaluation with the cached engine and with the compiled path (reading the
// store directly, and through a wrapping Directory's View): zero mismatches (decisions, roles,
// reasons and messages).
func TestDecisionCacheDifferential(t *testing.T) {
	t.Parallel()
	actions := []string{"runs.get", "runs.stop", "runs.approve", "project.get", "runs.bookmark",
		"org.get", "members.list", "org.update", "projects.create", "org.runs",
		"team.get", "team.update", "team.delete", "team.projects.create"}
	for seed := range uint64(6) {
		cachedEng, users, teams, projects := randomDirectory(t, seed)
		teams = append(teams, "renamed") // a free name for RenameTeam
		st := cachedEng.Directory().(*store.Store)
		plain, err := authz.New(t.Context(), st, authz.WithDecisionCache(0), authz.WithCompiledPath(false))
		require.NoError(t, err)
		compiled, err := authz.New(t.Context(), st, authz.WithDecisionCache(0))
		require.NoError(t, err)
		// The compiled path over a Directory that is not the store itself reads through its View.
		wrapper := &counting{Store: st}
		viaView, err := authz.New(t.Context(), wrapper, authz.WithDecisionCache(0))
		require.NoError(t, err)
		rng := rand.New(rand.NewPCG(seed, 99))
		checks := 0
		for step := range 300 {
			if step%3 == 0 {
				_, _ = st.Apply(t.Context(), randomWrite(rng, users, teams, append(slices.Clone(projects), "fresh")))
				require.NoError(t, st.Check())
			}
			for range 12 {
				req := randomRequest(rng, actions, users, teams, append(slices.Clone(projects), "fresh"))
				want, err1 := plain.Authorize(t.Context(), req)
				got, err2 := cachedEng.Authorize(t.Context(), req)
				fromTable, err3 := compiled.Authorize(t.Context(), req)
				views := wrapper.views.Load()
				fromView, err4 := viaView.Authorize(t.Context(), req)
				require.Equal(t, err1 == nil, err2 == nil, "%+v", req)
				require.Equal(t, err1 == nil, err3 == nil, "%+v", req)
				require.Equal(t, err1 == nil, err4 == nil, "%+v", req)
				if err1 != nil {
					continue
				}
				checks++
				require.Equal(t, want, fromTable, "compiled path, seed %d step %d %+v", seed, step, req)
				require.Equal(t, want, fromView, "compiled path through View, seed %d step %d %+v", seed, step, req)
				require.Equal(t, views+1, wrapper.views.Load(), "one View per decision through a wrapper")
				require.Equal(t, want.Allowed, got.Allowed, "seed %d step %d %+v: want %+v got %+v", seed, step, req, want, got)
				require.Equal(t, want.Role, got.Role, "seed %d step %d %+v", seed, step, req)
				require.Equal(t, want.Reasons, got.Reasons, "seed %d step %d %+v", seed, step, req)
				require.Equal(t, st.Revision(), got.Revision)
			}
		}
		s := cachedEng.Stats()
		require.NotZero(t, s.CacheHits, "the cache served decisions")
		require.NotZero(t, s.CacheMisses)
		require.Positive(t, checks)
	}
}

func TestDecisionCacheUnrelatedWriteKeepsEntries(t *testing.T) {
	t.Parallel()
	eng, st := newAcme(t)
	req := authz.Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision"}
	_, err := eng.Authorize(t.Context(), req)
	require.NoError(t, err)
	_, err = st.Apply(t.Context(), store.PutMember{Org: "acme", User: "zoe", Role: "member"}) // unrelated
	require.NoError(t, err)
	before := eng.Stats().CacheHits
	d, err := eng.Authorize(t.Context(), req)
	require.NoError(t, err)
	require.True(t, d.Allowed)
	require.Equal(t, before+1, eng.Stats().CacheHits, "an unrelated write evicts nothing")
	require.Equal(t, st.Revision(), d.Revision)

	// A related write: bob leaves the team vision is restricted to.
	_, err = st.Apply(t.Context(), store.DeleteTeamMember{Org: "acme", Team: "engineering", User: "bob"})
	require.NoError(t, err)
	d, err = eng.Authorize(t.Context(), req)
	require.NoError(t, err)
	require.False(t, d.Allowed)
	require.True(t, d.Has("restricted"))
	require.Equal(t, before+1, eng.Stats().CacheHits, "a related write is a miss")

	// A policy swap invalidates every entry.
	require.NoError(t, eng.SetPolicy(t.Context(), []rego.Module{{Name: "x.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"frozen\" if input.subject.id == \"bob\"\n"}}))
	d, err = eng.Authorize(t.Context(), req)
	require.NoError(t, err)
	require.False(t, d.Allowed)
	require.True(t, d.Has("extension_deny"))

	_, err = authz.New(t.Context(), st, authz.WithDecisionCache(-1))
	require.ErrorIs(t, err, teamgate.ErrInvalid)
}

// BenchmarkAuthorizeCached measures an L1 hit.
func BenchmarkAuthorizeCached(b *testing.B) {
	benchHit(b, authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"})
}

// BenchmarkAuthorizeCachedShort measures an L1 hit on a key of BenchmarkL1Distinct's shape (bench/):
// three short parts, 32 bytes encoded (cacheKey), where AuthorizeCached's key takes 56.
func BenchmarkAuthorizeCachedShort(b *testing.B) {
	benchHit(b, authz.Request{Subject: "bob", Action: "runs.get", Resource: "acme/nlp"})
}

// benchHit decides req once, then times its L1 hits.
func benchHit(b *testing.B, req authz.Request) {
	eng, _ := newAcme(b)
	ctx := b.Context()
	if _, err := eng.Authorize(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := eng.Authorize(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	if eng.Stats().CacheHits == 0 {
		b.Fatal("no hits")
	}
}

// TestDecisionCacheBadgerTier: decisions survive a restart in Badger and are served only while
// the stamps they depended on (stored with every write) are unchanged.
func TestDecisionCacheBadgerTier(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	open := func() (*store.Store, *authz.Engine) { return openDisk(t, dir) }
	st, eng := open()
	_, err := st.LoadFile(ctx, conformance.DataFile())
	require.NoError(t, err)
	stays := authz.Request{Subject: "vera", Action: "runs.get", Resource: "acme/nlp"}
	changes := authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	first, err := eng.Authorize(ctx, stays)
	require.NoError(t, err)
	d, err := eng.Authorize(ctx, changes)
	require.NoError(t, err)
	require.True(t, d.Allowed)
	// A related write after both decisions were cached: bob leaves engineering.
	_, err = st.Apply(ctx, store.DeleteTeamMember{Org: "acme", Team: "engineering", User: "bob"})
	require.NoError(t, err)
	require.NoError(t, st.Close())

	st, eng = open()
	defer st.Close()
	again, err := eng.Authorize(ctx, stays)
	require.NoError(t, err)
	require.Equal(t, first.Reasons, again.Reasons)
	require.Equal(t, first.Allowed, again.Allowed)
	require.Equal(t, uint64(1), eng.Stats().CacheDiskHits, "served from Badger after the restart")
	d, err = eng.Authorize(ctx, changes)
	require.NoError(t, err)
	require.False(t, d.Allowed, "the write before the restart invalidated the stored decision")
	require.True(t, d.Has("restricted"))
	require.Equal(t, uint64(1), eng.Stats().CacheDiskHits)

	// A new policy (another fingerprint) ignores stored decisions.
	require.NoError(t, eng.SetPolicy(ctx, []rego.Module{{Name: "x.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"no\" if input.subject.id == \"vera\"\n"}}))
	d, err = eng.Authorize(ctx, stays)
	require.NoError(t, err)
	require.False(t, d.Allowed)
}

// BenchmarkAuthorizeDiskTier measures a hit in the Badger tier: an in-memory tier of one entry
// and two alternating requests make every lookup miss in memory.
func BenchmarkAuthorizeDiskTier(b *testing.B) {
	ctx := b.Context()
	st, err := store.Open(ctx, store.Options{Dir: b.TempDir(), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.LoadFile(ctx, conformance.DataFile()); err != nil {
		b.Fatal(err)
	}
	eng, err := authz.New(ctx, st, authz.WithDecisionCache(1))
	if err != nil {
		b.Fatal(err)
	}
	reqs := []authz.Request{
		{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"},
		{Subject: "vera", Action: "runs.get", Resource: "acme/nlp"},
	}
	for _, r := range reqs {
		if _, err := eng.Authorize(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond) // let the asynchronous Badger writes land
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := eng.Authorize(ctx, reqs[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if eng.Stats().CacheDiskHits == 0 {
		b.Fatal("no Badger-tier hits")
	}
}

func TestNondeterministicPolicyIsNotCached(t *testing.T) {
	t.Parallel()
	clock := rego.Module{Name: "clock.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"closed\" if time.now_ns() < 0\n"}
	eng, _ := newAcme(t, authz.WithModules(clock))
	req := authz.Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision"}
	for range 3 {
		d, err := eng.Authorize(t.Context(), req)
		require.NoError(t, err)
		require.True(t, d.Allowed)
	}
	s := eng.Stats()
	require.Zero(t, s.CacheHits+s.CacheMisses, "a policy reading the clock is evaluated every time")
}

// TestDistinctRequestsLeaveNoMemory streams distinct requests, most naming subjects, projects,
// teams and orgs that do not exist, through an engine whose decision cache is far smaller than
// the stream. Once the cache is full the heap stays flat: no request leaves anything behind
// (absent facts share the store's shard cells; evicted decisions and their Deps are freed).
// Not parallel: it reads the heap.
func TestDistinctRequestsLeaveNoMemory(t *testing.T) {
	const cacheSize = 1000
	eng, _ := newAcme(t, authz.WithDecisionCache(cacheSize))
	stream := func(from, to int) {
		for i := from; i < to; i++ {
			for _, r := range []authz.Request{
				{Subject: fmt.Sprint("ghost", i), Action: "runs.get", Resource: "acme/vision"},
				{Subject: "bob", Action: "runs.get", Resource: fmt.Sprint("acme/gone", i)},
				{Subject: "bob", Action: "runs.get", Resource: fmt.Sprint("acme/t", i, "/vision")},
				{Subject: "bob", Action: "org.get", Resource: fmt.Sprint("org", i)},
				{Subject: fmt.Sprint("ghost", i), Action: "team.get", Resource: "acme/engineering"},
			} {
				_, err := eng.Authorize(t.Context(), r)
				require.NoError(t, err)
			}
		}
	}
	heap := func() int64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	stream(0, 2*cacheSize) // fills the cache
	before := heap()
	const more = 20_000 // 100k more distinct requests
	stream(2*cacheSize, 2*cacheSize+more)
	grown := heap() - before
	t.Logf("heap grew by %d bytes over %d distinct requests", grown, 5*more)
	require.Zero(t, eng.Stats().CacheHits, "every request was distinct")
	// 100k requests: a leak of even 16 bytes each would pass 1.6 MB.
	require.Less(t, grown, int64(1<<20), "the heap grew with the stream")
}

// TestHotPathAllocations: an L1 hit allocates nothing, and a decision on the compiled path
// allocates only what it returns: its reasons and their messages, one object for all, whether
// the engine reads the store directly or through a wrapping Directory's View.
func TestHotPathAllocations(t *testing.T) {
	if racedetect.Enabled {
		t.Skip("allocation counts are not meaningful under the race detector; `go test ./...` runs this")
	}
	cachedEng, _ := newAcme(t)
	compiled, st := newAcme(t, authz.WithDecisionCache(0))
	viaView, err := authz.New(t.Context(), wrapped{st}, authz.WithDecisionCache(0))
	require.NoError(t, err)
	for _, req := range []authz.Request{
		{Subject: "bob", Action: "runs.stop", Resource: "acme/vision"},
		{Subject: "vera", Action: "runs.get", Resource: "acme/engineering/vision"},
		{Subject: "alice", Action: "org.update", Resource: "acme"},
		{Subject: "bill", Action: "team.update", Resource: "acme/engineering"},
		{Subject: "nobody", Action: "runs.get", Resource: "acme/vision", Owner: "acme"},
	} {
		d, err := compiled.Authorize(t.Context(), req) // fills the table's cell
		require.NoError(t, err)
		allocs := testing.AllocsPerRun(200, func() { _, _ = compiled.Authorize(t.Context(), req) })
		require.Equal(t, 1.0, allocs, "compiled %+v: %+v", req, d)
		_, err = viaView.Authorize(t.Context(), req)
		require.NoError(t, err)
		allocs = testing.AllocsPerRun(200, func() { _, _ = viaView.Authorize(t.Context(), req) })
		require.Equal(t, 1.0, allocs, "compiled through View %+v: %+v", req, d)
		_, err = cachedEng.Authorize(t.Context(), req)
		require.NoError(t, err)
		require.Zero(t, testing.AllocsPerRun(200, func() { _, _ = cachedEng.Authorize(t.Context(), req) }), "L1 hit %+v", req)
	}
	require.NotZero(t, compiled.Stats().Compiled)
}

// TestCachedDecisionHoldsAtItsRevision: a decision served from the cache while a write is in
// flight carries a revision it holds at. The store used to publish a write's revision before
// bumping its stamps and the cache read the revision after checking the entry, so a hit could
// carry the in-flight write's revision with the state before it. Every observed (revision,
// allowed) pair is checked against the writer's log.
func TestCachedDecisionHoldsAtItsRevision(t *testing.T) {
	t.Parallel()
	eng, st := newAcme(t)
	ctx := t.Context()
	req := authz.Request{Subject: "amir", Action: "runs.get", Resource: "acme/vision"}
	type seen struct {
		rev     uint64
		allowed bool
	}
	var observed []seen
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if d, err := eng.Authorize(ctx, req); err == nil {
				observed = append(observed, seen{d.Revision, d.Allowed})
			}
		}
	})
	state := map[uint64]bool{st.Revision(): false} // revision → amir may read vision
	for i := range 2000 {
		var c store.Change = store.PutTeamMember{Org: "acme", Team: "engineering", User: "amir", Role: "viewer"}
		if i%2 == 1 {
			c = store.DeleteTeamMember{Org: "acme", Team: "engineering", User: "amir"}
		}
		rev, err := st.Apply(ctx, c)
		require.NoError(t, err)
		state[rev] = i%2 == 0
	}
	close(stop)
	wg.Wait()
	require.NotZero(t, eng.Stats().CacheHits)
	for _, o := range observed {
		want, ok := state[o.rev]
		require.True(t, ok, "revision %d", o.rev)
		require.Equal(t, want, o.allowed, "a decision labelled with revision %d does not hold there", o.rev)
	}
}

// racingDir is a store whose Revision, once armed, runs a hook after reading the revision and
// before returning it: a write and another caller's decision land between an Authorize's read
// of the revision and its cache lookup.
type racingDir struct {
	*store.Store
	hook func()
}

func (d *racingDir) Revision() uint64 {
	rev := d.Store.Revision()
	if h := d.hook; h != nil {
		d.hook = nil
		h()
	}
	return rev
}

// TestCachedDecisionLabelNotOlderThanItsState: a decision cached by one caller right after a
// write is served to a caller that read the revision before the write; it must not be labelled
// with that older revision, at which it does not hold (amir was no team member there).
func TestCachedDecisionLabelNotOlderThanItsState(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := store.Open(ctx, store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	before, err := st.LoadFile(ctx, conformance.DataFile())
	require.NoError(t, err)
	dir := &racingDir{Store: st}
	eng, err := authz.New(ctx, dir)
	require.NoError(t, err)
	req := authz.Request{Subject: "amir", Action: "runs.get", Resource: "acme/vision"}
	d, err := eng.Authorize(ctx, req)
	require.NoError(t, err)
	require.False(t, d.Allowed)
	require.Equal(t, before, d.Revision)

	var after uint64
	dir.hook = func() {
		after, err = st.Apply(ctx, store.PutTeamMember{Org: "acme", Team: "engineering", User: "amir", Role: "viewer"})
		require.NoError(t, err)
		other, err := eng.Authorize(ctx, req) // decides at the new revision and caches it
		require.NoError(t, err)
		require.True(t, other.Allowed)
		require.Equal(t, after, other.Revision)
	}
	d, err = eng.Authorize(ctx, req)
	require.NoError(t, err)
	require.True(t, d.Allowed, "%+v", d)
	require.Equal(t, after, d.Revision, "a decision that holds from revision %d on is labelled %d", after, d.Revision)
}
