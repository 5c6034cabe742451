package authz

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/store"
)

// betaOrg adds org beta beside the conformance directory's acme (their epoch groups differ) and
// returns cacheable requests on it with different answers.
func betaOrg(t *testing.T, st *store.Store) []Request {
	t.Helper()
	_, err := st.Apply(t.Context(), store.PutOrg{Org: store.Org{Name: "beta"}},
		store.PutMember{Org: "beta", User: "bob", Role: "member"}, store.PutMember{Org: "beta", User: "vera", Role: "viewer"},
		store.PutMember{Org: "beta", User: "olga", Role: "outsider"}, store.PutMember{Org: "beta", User: "alice", Role: "owner"},
		store.PutTeam{Team: store.Team{Org: "beta", Name: "ml"}},
		store.PutTeamMember{Org: "beta", Team: "ml", User: "vera", Role: "contributor"},
		store.PutProject{Project: store.Project{Org: "beta", Name: "p", Teams: []string{"ml"}}},
		store.PutProject{Project: store.Project{Org: "beta", Name: "q"}})
	require.NoError(t, err)
	require.NotEqual(t, orgGroup(t, st, "acme"), orgGroup(t, st, "beta"))
	var reqs []Request
	for _, s := range []string{"bob", "vera", "olga", "alice", "nobody"} {
		for _, a := range []string{"runs.get", "runs.stop", "runs.approve"} {
			for _, r := range []string{"beta/p", "beta/q", "beta/ml/p"} {
				reqs = append(reqs, Request{Subject: s, Action: a, Resource: r})
			}
		}
	}
	return reqs
}

// slowHits counts the engine's slow hits that found their entry current (through the test hook
// afterCheck, which runs in each): a fast hit is served from its word without one.
func slowHits(e *Engine) *atomic.Int64 {
	n := new(atomic.Int64)
	e.decisions.afterCheck = func() { n.Add(1) }
	return n
}

// fastAfterWarmup decides every request until its hits are fast and returns those whose words are
// stamped (a decision with more reasons than a word holds never is).
func fastAfterWarmup(t *testing.T, e *Engine, reqs []Request) []Request {
	t.Helper()
	var fast []Request
	for _, r := range reqs {
		for range 2 { // a miss, then a slow hit that stamps the word
			_, err := e.Authorize(t.Context(), r)
			require.NoError(t, err)
		}
		if stampedNow(e.decisions, fastKey(e, r)) {
			fast = append(fast, r)
		}
	}
	return fast
}

// slowIn decides reqs (nothing is written meanwhile) and returns how many were slow hits.
func slowIn(t *testing.T, e *Engine, slow *atomic.Int64, reqs []Request) int64 {
	t.Helper()
	n0, hits := slow.Load(), e.Stats().CacheHits
	for _, r := range reqs {
		d, err := e.Authorize(t.Context(), r)
		require.NoError(t, err)
		require.Equal(t, e.Directory().Revision(), d.Revision, "labelled with the current revision, fast or slow")
	}
	require.Equal(t, uint64(len(reqs)), e.Stats().CacheHits-hits, "every request a hit: %v", reqs)
	return slow.Load() - n0
}

// projectGroup is the epoch group of a decision on a project of org (store.Deps.EpochGroup: the
// part of the org holding the project's cell).
func projectGroup(t testing.TB, st *store.Store, org, project string) int {
	var d store.Deps
	require.NoError(t, st.View(func(r store.Reader) error {
		r.Track(&d).Access(org, "", project, "nobody")
		return nil
	}))
	return d.EpochGroup()
}

// orgProject is the org and project a request of the conformance directory or betaOrg names.
func orgProject(r Request) (string, string) {
	if r.Owner != "" {
		return r.Owner, r.Resource
	}
	parts := strings.Split(r.Resource, "/")
	return parts[0], parts[len(parts)-1]
}

// otherPart returns a project name of org whose part differs from every project's of reqs.
func otherPart(t testing.TB, st *store.Store, org string, reqs []Request) string {
	used := map[int]bool{}
	for _, r := range reqs {
		if o, p := orgProject(r); o == org {
			used[projectGroup(t, st, o, p)] = true
		}
	}
	for i := range 1000 {
		if name := fmt.Sprint("other", i); !used[projectGroup(t, st, org, name)] {
			return name
		}
	}
	t.Fatalf("every project of %s lies in a part of %v", org, used)
	return ""
}

// samePart returns a project name of org, other than project, in project's part.
func samePart(t testing.TB, st *store.Store, org, project string) string {
	g := projectGroup(t, st, org, project)
	for i := range 1000 {
		if name := fmt.Sprint("near", i); projectGroup(t, st, org, name) == g {
			return name
		}
	}
	t.Fatalf("no project of %s lies in %s's part", org, project)
	return ""
}

// TestWriteElsewhereLeavesWordsFast: a write in org acme's org-wide facts (a membership, a new team)
// makes every cached decision of acme take one slow hit (their groups' epochs moved) and leaves
// beta's fast, and the other way round; a write to a project no request names makes slow only the
// decisions on projects of its part of the org (a grant on a project of beta/q's part: beta/q's,
// not beta/p's; a project of a part no request reads: none); a user's record or a new org moves
// no org's groups; a policy swap makes every word slow once.
func TestWriteElsewhereLeavesWordsFast(t *testing.T) {
	t.Parallel()
	e := newAcmeInternal(t)
	st := e.Directory().(*store.Store)
	beta := betaOrg(t, st)
	acme := collidingRequests()
	other, nearQ, nearNLP := otherPart(t, st, "beta", beta), samePart(t, st, "beta", "q"), samePart(t, st, "acme", "nlp")
	// The writes below change cells that exist: a new cell also bumps an absent shard of its
	// group, which some non-member's decision of the same org may watch.
	_, err := st.Apply(t.Context(), store.PutMember{Org: "acme", User: "ghost", Role: "member"},
		store.PutMember{Org: "beta", User: "ghost", Role: "member"}, store.PutProject{Project: store.Project{Org: "beta", Name: other}},
		store.PutProject{Project: store.Project{Org: "beta", Name: nearQ}}, store.PutProject{Project: store.Project{Org: "acme", Name: nearNLP}})
	require.NoError(t, err)
	fastAcme, fastBeta := fastAfterWarmup(t, e, acme), fastAfterWarmup(t, e, beta)
	require.NotEmpty(t, fastAcme)
	require.NotEmpty(t, fastBeta)
	slow := slowHits(e)
	require.Zero(t, slowIn(t, e, slow, append(fastAcme, fastBeta...)), "stamped words are fast")
	require.NotEqual(t, projectGroup(t, st, "beta", "p"), projectGroup(t, st, "beta", "q"), "beta's p and q lie in different parts")
	require.NotEqual(t, projectGroup(t, st, "acme", "vision"), projectGroup(t, st, "acme", "nlp"), "acme's vision and nlp too")

	all := func(org string) func(Request) bool {
		return func(r Request) bool { o, _ := orgProject(r); return o == org }
	}
	partOf := func(org, project string) func(Request) bool {
		g := projectGroup(t, st, org, project)
		return func(r Request) bool { o, p := orgProject(r); return o == org && projectGroup(t, st, o, p) == g }
	}
	none := func(Request) bool { return false }
	for _, w := range []struct {
		change store.Change
		slow   func(Request) bool // whose words the change makes slow
	}{
		{store.PutMember{Org: "acme", User: "ghost", Role: "viewer"}, all("acme")},
		{store.PutMember{Org: "beta", User: "ghost", Role: "viewer"}, all("beta")},
		{store.PutProject{Project: store.Project{Org: "beta", Name: other, Labels: map[string]string{"k": "v"}}}, none},
		{store.PutGrant{Org: "beta", Project: nearQ, User: "ghost", Grant: store.Grant{Role: "viewer"}}, partOf("beta", "q")},
		{store.PutProject{Project: store.Project{Org: "acme", Name: nearNLP, Labels: map[string]string{"k": "v"}}}, partOf("acme", "nlp")},
		{store.PutTeam{Team: store.Team{Org: "beta", Name: "ops"}}, all("beta")}, // a new team: an org-wide cell
		{store.PutUser{User: store.User{ID: "ghost"}}, none},
		{store.PutOrg{Org: store.Org{Name: "gamma"}}, none},
	} {
		_, err := st.Apply(t.Context(), w.change)
		require.NoError(t, err)
		var slowReqs, fastReqs []Request
		for _, r := range append(slices.Clone(fastAcme), fastBeta...) {
			if w.slow(r) {
				slowReqs = append(slowReqs, r)
			} else {
				fastReqs = append(fastReqs, r)
			}
		}
		require.NotEmpty(t, fastReqs, "after %+v", w.change)
		require.Zero(t, slowIn(t, e, slow, fastReqs), "after %+v: the words it leaves fast", w.change)
		require.Equal(t, int64(len(slowReqs)), slowIn(t, e, slow, slowReqs), "after %+v: the words it makes slow", w.change)
		require.Zero(t, slowIn(t, e, slow, slowReqs), "after %+v: stamped again", w.change)
	}
	e.setPolicy(e.Policy())
	require.Equal(t, int64(len(fastAcme)+len(fastBeta)), slowIn(t, e, slow, append(fastAcme, fastBeta...)), "a policy swap")
}

// TestTwoOrgsNeverStale: random writes in two orgs (memberships, team roles, grants, new
// members, projects no request names), and after each every request of both orgs is answered by
// the cached engine as by an uncached one; and the write left the words it need not touch as fast
// as they were — the other org's, and for a write to a project those of its org's other parts —
// (they take as many slow hits right after it as on a second pass: those whose words are never
// stamped).
func TestTwoOrgsNeverStale(t *testing.T) {
	t.Parallel()
	e := newAcmeInternal(t)
	st := e.Directory().(*store.Store)
	byOrg := map[string][]Request{"acme": collidingRequests(), "beta": betaOrg(t, st)}
	sides := []string{"side0", "side1", "side2", "side3", "side4"} // projects no request names
	for org := range byOrg {
		for _, p := range sides {
			_, err := st.Apply(t.Context(), store.PutProject{Project: store.Project{Org: org, Name: p}})
			require.NoError(t, err)
		}
	}
	groupOf := func(r Request) int { o, p := orgProject(r); return projectGroup(t, st, o, p) }
	plain, err := New(t.Context(), st, WithDecisionCache(0))
	require.NoError(t, err)
	slow := slowHits(e)
	rng := rand.New(rand.NewPCG(7, 8))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	// write returns a change in org and the project it writes ("" for an org-wide change).
	write := func(org string) (store.Change, string) {
		team, project := pick("engineering", "research"), pick("vision", "nlp", "open")
		if org == "beta" {
			team, project = "ml", pick("p", "q")
		}
		user := pick("bob", "vera", "olga", "adam")
		switch rng.IntN(8) {
		case 0:
			return store.PutMember{Org: org, User: user, Role: pick("member", "viewer", "admin", "outsider", "manager")}, ""
		case 1:
			return store.PutTeamMember{Org: org, Team: team, User: user, Role: pick("viewer", "member", "contributor", "admin")}, ""
		case 2:
			return store.DeleteTeamMember{Org: org, Team: team, User: user}, ""
		case 3:
			return store.PutGrant{Org: org, Project: project, User: user, Grant: store.Grant{Role: pick("viewer", "admin")}}, project
		case 4:
			return store.DeleteGrant{Org: org, Project: project, User: user}, project
		case 5:
			side := pick(sides...)
			return store.PutProject{Project: store.Project{Org: org, Name: side, Labels: map[string]string{"k": pick("a", "b", "c")}}}, side
		case 6:
			return store.PutGrant{Org: org, Project: pick(sides...), User: user, Grant: store.Grant{Role: pick("viewer", "admin")}}, ""
		}
		return store.PutMember{Org: org, User: fmt.Sprint("ghost", rng.IntN(5)), Role: "member"}, "" // unrelated
	}
	all := append(slices.Clone(byOrg["acme"]), byOrg["beta"]...)
	decideAll := func() {
		for _, r := range all {
			_, err := e.Authorize(t.Context(), r)
			require.NoError(t, err)
		}
	}
	decideAll()
	decideAll()
	written, projectWrites := 0, 0
	for step := range 200 {
		org, other := "acme", "beta"
		if rng.IntN(2) == 0 {
			org, other = other, org
		}
		c, project := write(org)
		if g, ok := c.(store.PutGrant); ok && project == "" {
			project = g.Project // a grant on a side project
		}
		if _, err := st.Apply(t.Context(), c); err != nil {
			continue // e.g. a grant to a user who is no org member: nothing written
		}
		written++
		untouched := slices.Clone(byOrg[other])
		if project != "" {
			projectWrites++
			g := projectGroup(t, st, org, project)
			for _, r := range byOrg[org] {
				if groupOf(r) != g {
					untouched = append(untouched, r)
				}
			}
		}
		right := slowIn(t, e, slow, untouched)
		require.Equal(t, slowIn(t, e, slow, untouched), right, "step %d: %+v left the words of other groups as fast as they were", step, c)
		for _, r := range all {
			want, err := plain.Authorize(t.Context(), r)
			require.NoError(t, err)
			got, err := e.Authorize(t.Context(), r)
			require.NoError(t, err)
			require.True(t, sameDecision(got, want), "step %d, %+v: got %+v, want %+v", step, r, got, want)
		}
		decideAll() // the decisions made again just now are stamped by this pass
	}
	require.Greater(t, written, 130)
	require.Greater(t, projectWrites, 40)
}

// TestFastHitNeverStaleTwoOrgs is TestFastHitNeverStale with readers on two orgs and the writer
// changing a fact of each in turn: no call that begins after a write returned is answered as
// before it, in the org written or the other.
func TestFastHitNeverStaleTwoOrgs(t *testing.T) {
	t.Parallel()
	e := newAcmeInternal(t)
	st := e.Directory().(*store.Store)
	reqs := append(collidingRequests(), betaOrg(t, st)...)
	hammerToggles(t, e, reqs, [2][2]store.Change{
		{store.PutTeamMember{Org: "acme", Team: "engineering", User: "vera", Role: "viewer"},
			store.PutTeamMember{Org: "acme", Team: "engineering", User: "vera", Role: "contributor"}},
		{store.PutTeamMember{Org: "beta", Team: "ml", User: "vera", Role: "contributor"},
			store.PutTeamMember{Org: "beta", Team: "ml", User: "vera", Role: "viewer"}},
	})
}

// TestFastHitNeverStaleTwoProjects is the same with the writer changing a grant on each of two
// projects of one org, in different parts (store.Epoch), readers on both and on the org's other
// projects: a write to one project leaves the other's words fast, and neither is ever served
// stale.
func TestFastHitNeverStaleTwoProjects(t *testing.T) {
	t.Parallel()
	e := newAcmeInternal(t)
	st := e.Directory().(*store.Store)
	require.NotEqual(t, projectGroup(t, st, "acme", "vision"), projectGroup(t, st, "acme", "nlp"))
	hammerToggles(t, e, collidingRequests(), [2][2]store.Change{
		{store.PutGrant{Org: "acme", Project: "vision", User: "olga", Grant: store.Grant{Role: "admin"}},
			store.PutGrant{Org: "acme", Project: "vision", User: "olga", Grant: store.Grant{Role: "viewer"}}},
		{store.PutGrant{Org: "acme", Project: "nlp", User: "olga", Grant: store.Grant{Role: "admin"}},
			store.PutGrant{Org: "acme", Project: "nlp", User: "olga", Grant: store.Grant{Role: "viewer"}}},
	})
}

// hammerToggles hammers reqs (hammer) while a writer makes toggles[0][…] and toggles[1][…] in
// turn, 200 changes: change s (1, 2, ...) toggles pair (s-1)%2, each pair's state going 0, 1, 0,
// ... Each pair's change must change some answer.
func hammerToggles(t *testing.T, e *Engine, reqs []Request, toggles [2][2]store.Change) {
	t.Helper()
	st := e.Directory().(*store.Store)
	// State after change s: pair 0's (s+1)/2%2, pair 1's s/2%2.
	state := func(s int) [2]int { return [2]int{(s + 1) / 2 % 2, s / 2 % 2} }
	var want [4][]Decision // by state: pair 0's + 2*pair 1's
	for s := range 4 {
		st2 := state(s)
		for pair := range 2 {
			_, err := st.Apply(t.Context(), toggles[pair][st2[pair]])
			require.NoError(t, err)
		}
		want[st2[0]+2*st2[1]] = answers(t, st, reqs)
	}
	require.NotEqual(t, want[0], want[1], "the first pair's write changes answers")
	require.NotEqual(t, want[0], want[2], "the second pair's write changes answers")
	for pair := range 2 { // back to state 0
		_, err := st.Apply(t.Context(), toggles[pair][0])
		require.NoError(t, err)
	}
	hammer(t, e, reqs, func(s int) []Decision { ss := state(s); return want[ss[0]+2*ss[1]] }, 200, func(s int) {
		pair := (s - 1) % 2
		_, err := st.Apply(t.Context(), toggles[pair][state(s)[pair]])
		require.NoError(t, err)
	})
}

// skewedDir is a store whose Revision is not its own, as Directory.Revision forbids.
type skewedDir struct {
	*store.Store
	rev func() uint64
}

func (d skewedDir) Revision() uint64 { return d.rev() }

// TestSkewedRevisionIsNeverFast: over a Directory whose revision is not its store's — ahead of it
// from the start, or left behind by a write — hits are labelled with the Directory's revision:
// a slow hit sees the revision outside the store's and no word is stamped any more (none is
// served from its word, which would be labelled with the store's).
func TestSkewedRevisionIsNeverFast(t *testing.T) {
	t.Parallel()
	reqs := collidingRequests()
	ahead := func(st *store.Store) func() uint64 { return func() uint64 { return st.Revision() + 1000 } }
	behind := func(st *store.Store) func() uint64 { rev := st.Revision(); return func() uint64 { return rev } }
	for _, c := range []struct {
		name  string
		skew  func(st *store.Store) func() uint64
		write store.Change // acme's words stay stamped when it is elsewhere
	}{
		{"ahead", ahead, store.PutMember{Org: "acme", User: "ghost", Role: "member"}},
		{"behind", behind, store.PutMember{Org: "acme", User: "ghost", Role: "member"}},
		{"behind, written elsewhere", behind, store.PutOrg{Org: store.Org{Name: "gamma"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			st := conformance.OpenStore(t, store.Options{})
			dir := skewedDir{Store: st, rev: c.skew(st)}
			e, err := New(t.Context(), dir)
			require.NoError(t, err)
			decide := func() {
				for range 3 {
					for _, r := range reqs {
						hits := e.Stats().CacheHits
						d, err := e.Authorize(t.Context(), r)
						require.NoError(t, err)
						if e.Stats().CacheHits > hits { // (a miss is labelled with its snapshot's)
							require.Equal(t, dir.Revision(), d.Revision, "%+v", r)
						}
					}
				}
			}
			decide() // "behind": the store's revision so far
			_, err = st.Apply(t.Context(), c.write)
			require.NoError(t, err)
			require.NotEqual(t, st.Revision(), dir.Revision())
			for range 2 { // a miss and a slow hit: the skew seen
				_, err := e.Authorize(t.Context(), Request{Subject: "carol", Action: "runs.get", Resource: "acme/vision"})
				require.NoError(t, err)
			}
			decide()
			require.NotZero(t, e.Stats().CacheHits)
			for _, r := range reqs {
				require.False(t, stampedNow(e.decisions, fastKey(e, r)), "%+v", r)
			}
		})
	}
}
