package cluster_test

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/cluster"
	"github.com/teamgate/teamgate/store"
)

// TestAttack20cFollowerReplaysGrantWrites: the leader writes grants (put, replaced, expiring,
// deleted), labels, project teams and policies, members removed and projects deleted and
// re-created under names of 5, 15 and 16 bytes (the project object's key bytes hold 15); after
// each write the follower's store passes Check, every Access on it equals the leader's and that
// of a store loaded from the leader's data file export, and an engine on the follower, its
// decisions cached, answers as an uncached engine on that new store.
func TestAttack20cFollowerReplaysGrantWrites(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := startNATS(t)
	leader, followerStore := openStore(t, ""), openStore(t, "")
	a, b := newNode(t, srv, leader, cluster.Options{}), newNode(t, srv, followerStore, cluster.Options{})
	mustApply(t, ctx, a, acmeFile(t))
	mustSync(t, ctx, b)
	eb := newEngine(t, ctx, b)
	fresh := openStore(t, "")
	plain, err := authz.New(ctx, fresh, authz.WithDecisionCache(0))
	require.NoError(t, err)

	users := []string{"alice", "bob", "beth", "vera", "olga", "otto"}
	projects := []string{"vision", "abcdefghijklmno", "abcdefghijklmnop"}
	var reqs []authz.Request
	for _, u := range users {
		for _, p := range projects {
			for _, act := range []string{"runs.get", "runs.stop", "project.update"} {
				reqs = append(reqs, authz.Request{Subject: u, Action: act, Resource: "acme/" + p},
					authz.Request{Subject: u, Action: act, Resource: "acme/engineering/" + p})
			}
		}
	}
	access := func(st *store.Store) []store.Access {
		var out []store.Access
		require.NoError(t, st.View(func(r store.Reader) error {
			for _, team := range []string{"", "engineering", "research"} {
				for _, p := range projects {
					for _, u := range users {
						out = append(out, r.Access("acme", team, p, u))
					}
				}
			}
			return nil
		}))
		return out
	}
	rng := rand.New(rand.NewPCG(20, 4))
	later := time.Now().Add(time.Hour)
	write := func() []store.Change {
		u, p := users[rng.IntN(len(users))], projects[rng.IntN(len(projects))]
		g := store.Grant{Role: store.TeamRoles()[rng.IntN(4)]}
		if rng.IntN(2) == 0 {
			g.ExpiresAt = later
		}
		switch rng.IntN(9) {
		case 0, 1, 2:
			return []store.Change{store.PutGrant{Org: "acme", Project: p, User: u, Grant: g}}
		case 3, 4:
			return []store.Change{store.DeleteGrant{Org: "acme", Project: p, User: u}}
		case 5:
			return []store.Change{store.PutProject{Project: store.Project{Org: "acme", Name: p,
				Teams: [][]string{nil, {"engineering"}, {"research", "engineering"}}[rng.IntN(3)], Policy: []string{"", "research-only"}[rng.IntN(2)],
				Labels: map[string]string{"tier": []string{"gold", "frozen"}[rng.IntN(2)]}, Grants: map[string]store.Grant{u: g}}}}
		case 6:
			return []store.Change{store.DeleteProject{Org: "acme", Name: p},
				store.CreateProject{Project: store.Project{Org: "acme", Name: p}, Team: []string{"", "engineering", "research"}[rng.IntN(3)]}}
		case 7:
			if rng.IntN(2) == 0 {
				return []store.Change{store.DeleteMember{Org: "acme", User: u}}
			}
			return []store.Change{store.PutMember{Org: "acme", User: u, Role: store.OrgRoles()[rng.IntN(len(store.OrgRoles()))]}}
		default:
			return []store.Change{store.PutTeamMember{Org: "acme", Team: "engineering", User: u, Role: store.TeamRoles()[rng.IntN(4)]}}
		}
	}
	applied := 0
	for step := range 60 {
		rev, err := a.Apply(ctx, write()...)
		if err != nil {
			continue
		}
		applied++
		require.GreaterOrEqual(t, mustSync(t, ctx, b), rev)
		require.NoError(t, followerStore.Check(), "step %d", step)
		var file bytes.Buffer
		require.NoError(t, leader.Export(ctx, &file))
		_, err = fresh.Load(ctx, bytes.NewReader(file.Bytes()))
		require.NoError(t, err)
		want := access(fresh)
		require.Equal(t, access(leader), access(followerStore), "step %d: the follower's facts", step)
		require.Equal(t, want, access(followerStore), "step %d: the follower's facts against the export's", step)
		for _, r := range reqs {
			w, werr := plain.Authorize(ctx, r)
			atRev := r
			atRev.MinRevision = rev
			d, derr := eb.Authorize(ctx, atRev)
			require.Equal(t, werr == nil, derr == nil, "step %d %+v: %v vs %v", step, r, werr, derr)
			require.True(t, w.Allowed == d.Allowed && w.Role == d.Role && slices.Equal(w.Reasons, d.Reasons),
				"step %d %+v: follower %+v, a store from the export %+v", step, r, d, w)
		}
	}
	require.Greater(t, applied, 30)
	require.Positive(t, eb.Stats().CacheHits)
}
