package authz

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

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
	require.Equal(t, uint64(len(reqs)), e.Stats().CacheHits-hits, "every request a hit")
	return slow.Load() - n0
}

// TestWriteElsewhereLeavesWordsFast: a write in org acme makes acme's cached decisions take one
// slow hit each (their group's epoch moved) and leaves beta's fast, and the other way round; a
// user's record or a new org moves neither org's group; a policy swap makes every word slow once.
func TestWriteElsewhereLeavesWordsFast(t *testing.T) {
	t.Parallel()
	e := newAcmeInternal(t)
	st := e.Directory().(*store.Store)
	beta := betaOrg(t, st)
	acme := collidingRequests()
	// The writes below change cells that exist: a new cell also bumps an absent shard of its
	// group, which some non-member's decision of the same org may watch.
	_, err := st.Apply(t.Context(), store.PutMember{Org: "acme", User: "ghost", Role: "member"},
		store.PutMember{Org: "beta", User: "ghost", Role: "member"}, store.PutProject{Project: store.Project{Org: "beta", Name: "other"}})
	require.NoError(t, err)
	fastAcme, fastBeta := fastAfterWarmup(t, e, acme), fastAfterWarmup(t, e, beta)
	require.NotEmpty(t, fastAcme)
	require.NotEmpty(t, fastBeta)
	slow := slowHits(e)
	require.Zero(t, slowIn(t, e, slow, append(fastAcme, fastBeta...)), "stamped words are fast")

	for _, w := range []struct {
		change          store.Change
		acmeWill, betas bool // whose words the change makes slow
	}{
		{store.PutMember{Org: "acme", User: "ghost", Role: "viewer"}, true, false},
		{store.PutMember{Org: "beta", User: "ghost", Role: "viewer"}, false, true},
		{store.PutProject{Project: store.Project{Org: "beta", Name: "other", Labels: map[string]string{"k": "v"}}}, false, true},
		{store.PutUser{User: store.User{ID: "ghost"}}, false, false},
		{store.PutOrg{Org: store.Org{Name: "gamma"}}, false, false},
	} {
		_, err := st.Apply(t.Context(), w.change)
		require.NoError(t, err)
		for _, org := range []struct {
			reqs []Request
			slow bool
		}{{fastBeta, w.betas}, {fastAcme, w.acmeWill}} {
			want := int64(0)
			if org.slow {
				want = int64(len(org.reqs))
			}
			require.Equal(t, want, slowIn(t, e, slow, org.reqs), "after %+v", w.change)
			require.Zero(t, slowIn(t, e, slow, org.reqs), "after %+v: stamped again", w.change)
		}
	}
	e.setPolicy(e.Policy())
	require.Equal(t, int64(len(fastAcme)+len(fastBeta)), slowIn(t, e, slow, append(fastAcme, fastBeta...)), "a policy swap")
}

// TestTwoOrgsNeverStale: random writes in two orgs (memberships, team roles, grants, new
// members), and after each every request of both orgs is answered by the cached engine as by an
// uncached one; and the write left the other org's words as fast as they were (its requests take
// as many slow hits right after it as on a second pass: those whose words are never stamped).
func TestTwoOrgsNeverStale(t *testing.T) {
	t.Parallel()
	e := newAcmeInternal(t)
	st := e.Directory().(*store.Store)
	byOrg := map[string][]Request{"acme": collidingRequests(), "beta": betaOrg(t, st)}
	plain, err := New(t.Context(), st, WithDecisionCache(0))
	require.NoError(t, err)
	slow := slowHits(e)
	rng := rand.New(rand.NewPCG(7, 8))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	write := func(org string) store.Change {
		team, project := pick("engineering", "research"), pick("vision", "nlp", "open")
		if org == "beta" {
			team, project = "ml", pick("p", "q")
		}
		user := pick("bob", "vera", "olga", "adam")
		switch rng.IntN(6) {
		case 0:
			return store.PutMember{Org: org, User: user, Role: pick("member", "viewer", "admin", "outsider", "manager")}
		case 1:
			return store.PutTeamMember{Org: org, Team: team, User: user, Role: pick("viewer", "member", "contributor", "admin")}
		case 2:
			return store.DeleteTeamMember{Org: org, Team: team, User: user}
		case 3:
			return store.PutGrant{Org: org, Project: project, User: user, Grant: store.Grant{Role: pick("viewer", "admin")}}
		case 4:
			return store.DeleteGrant{Org: org, Project: project, User: user}
		}
		return store.PutMember{Org: org, User: fmt.Sprint("ghost", rng.IntN(5)), Role: "member"} // unrelated
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
	written := 0
	for step := range 150 {
		org, other := "acme", "beta"
		if rng.IntN(2) == 0 {
			org, other = other, org
		}
		if _, err := st.Apply(t.Context(), write(org)); err != nil {
			continue // e.g. a grant to a user who is no org member: nothing written
		}
		written++
		right := slowIn(t, e, slow, byOrg[other])
		require.Equal(t, slowIn(t, e, slow, byOrg[other]), right, "step %d: a write in %s left %s's words as fast as they were", step, org, other)
		for _, r := range all {
			want, err := plain.Authorize(t.Context(), r)
			require.NoError(t, err)
			got, err := e.Authorize(t.Context(), r)
			require.NoError(t, err)
			require.True(t, sameDecision(got, want), "step %d, %+v: got %+v, want %+v", step, r, got, want)
		}
		decideAll() // the decisions made again just now are stamped by this pass
	}
	require.Greater(t, written, 100)
}

// TestFastHitNeverStaleTwoOrgs is TestFastHitNeverStale with readers on two orgs and the writer
// changing a fact of each in turn: no call that begins after a write returned is answered as
// before it, in the org written or the other.
func TestFastHitNeverStaleTwoOrgs(t *testing.T) {
	t.Parallel()
	e := newAcmeInternal(t)
	st := e.Directory().(*store.Store)
	reqs := append(collidingRequests(), betaOrg(t, st)...)
	toggles := [2][2]store.Change{ // [org][state]
		{store.PutTeamMember{Org: "acme", Team: "engineering", User: "vera", Role: "viewer"},
			store.PutTeamMember{Org: "acme", Team: "engineering", User: "vera", Role: "contributor"}},
		{store.PutTeamMember{Org: "beta", Team: "ml", User: "vera", Role: "contributor"},
			store.PutTeamMember{Org: "beta", Team: "ml", User: "vera", Role: "viewer"}},
	}
	// Change s (1, 2, ...) toggles org (s-1)%2; state after change s: acme's (s+1)/2%2, beta's s/2%2.
	state := func(s int) [2]int { return [2]int{(s + 1) / 2 % 2, s / 2 % 2} }
	var want [4][]Decision // by state: acme's + 2*beta's
	for s := range 4 {
		st2 := state(s)
		for org := range 2 {
			_, err := st.Apply(t.Context(), toggles[org][st2[org]])
			require.NoError(t, err)
		}
		want[st2[0]+2*st2[1]] = answers(t, st, reqs)
	}
	require.NotEqual(t, want[0], want[1], "acme's write changes answers")
	require.NotEqual(t, want[0], want[2], "beta's write changes answers")
	for org := range 2 { // back to state 0
		_, err := st.Apply(t.Context(), toggles[org][0])
		require.NoError(t, err)
	}
	hammer(t, e, reqs, func(s int) []Decision { ss := state(s); return want[ss[0]+2*ss[1]] }, 200, func(s int) {
		org := (s - 1) % 2
		_, err := st.Apply(t.Context(), toggles[org][state(s)[org]])
		require.NoError(t, err)
	})
}
