package cluster_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/store"
)

// TestAttackL1FollowerFastHits: an engine on a follower node, its decisions cached and served
// from stamped words, while the leader writes changes that flip them: asked with MinRevision of
// the leader's write, and again after it, the follower's engine answers as an uncached engine
// on the same node, every time.
func TestAttackL1FollowerFastHits(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	a, b := seededPair(t, ctx)
	eb := newEngine(t, ctx, b)
	plain, err := authz.New(ctx, b, authz.WithDecisionCache(0))
	require.NoError(t, err)
	toggle := []store.Change{
		store.PutTeamMember{Org: "acme", Team: "engineering", User: "vera", Role: "contributor"},
		store.DeleteTeamMember{Org: "acme", Team: "engineering", User: "vera"},
	}
	var reqs []authz.Request
	for _, act := range []string{"runs.get", "runs.stop", "runs.approve"} {
		for _, r := range []string{"acme/vision", "acme/engineering/vision", "acme/nlp"} {
			reqs = append(reqs, authz.Request{Subject: "vera", Action: act, Resource: r})
		}
	}
	var seen [2][]authz.Decision
	for s := range 10 {
		rev := mustApply(t, ctx, a, toggle[s%2])
		var got []authz.Decision
		for round := range 3 {
			for _, r := range reqs {
				r.MinRevision = rev
				want, err := plain.Authorize(ctx, r)
				require.NoError(t, err)
				d, err := eb.Authorize(ctx, r)
				require.NoError(t, err)
				require.Equal(t, want.Allowed, d.Allowed, "step %d round %d %+v", s, round, r)
				require.Equal(t, want.Role, d.Role, "step %d round %d %+v", s, round, r)
				require.Equal(t, want.Reasons, d.Reasons, "step %d round %d %+v", s, round, r)
				require.GreaterOrEqual(t, d.Revision, rev)
				if round == 0 {
					got = append(got, d)
				}
			}
		}
		seen[s%2] = got
	}
	require.False(t, slices.EqualFunc(seen[0], seen[1], func(x, y authz.Decision) bool { return x.Allowed == y.Allowed && x.Role == y.Role }), "the writes change answers")
	require.Positive(t, eb.Stats().CacheHits)
}
