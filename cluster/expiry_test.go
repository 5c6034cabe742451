package cluster_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/cluster"
	"github.com/teamgate/teamgate/internal/clocktest"
	"github.com/teamgate/teamgate/store"
)

// TestExpiryWrittenOnce: three nodes see a grant expire at the same moment; each publishes its
// revocation through the log, the first one lands and the others fail validation, so the log
// holds exactly one expiry write and every node revokes the grant.
func TestExpiryWrittenOnce(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := startNATS(t)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := clocktest.New(t0)
	var nodes []*cluster.Node
	for range 3 {
		st, err := store.Open(t.Context(), store.Options{Clock: clock})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		nodes = append(nodes, newNode(t, srv, st, cluster.Options{}))
	}
	rev, err := nodes[0].Apply(ctx,
		store.PutOrg{Org: store.Org{Name: "a"}},
		store.PutMember{Org: "a", User: "dave", Role: "viewer"},
		store.PutProject{Project: store.Project{Org: "a", Name: "p"}},
		store.PutGrant{Org: "a", Project: "p", User: "dave", Grant: store.Grant{Role: "admin", ExpiresAt: t0.Add(time.Hour)}})
	require.NoError(t, err)
	for _, n := range nodes {
		require.NoError(t, n.WaitRevision(ctx, rev))
	}
	events, err := nodes[2].Store().Watch(ctx, rev)
	require.NoError(t, err)

	clock.Advance(time.Hour)
	for _, n := range nodes {
		require.NoError(t, n.WaitRevision(ctx, rev+1))
		require.NoError(t, n.View(func(r store.Reader) error {
			pv, _ := r.Project("a", "p")
			require.NotContains(t, pv.Project.Grants, "dave")
			return nil
		}))
	}
	// Any later expiry write would follow the revocation; a sentinel write bounds the check.
	sentinel, err := nodes[1].Apply(ctx, store.PutMember{Org: "a", User: "erin", Role: "viewer"})
	require.NoError(t, err)
	var kinds []string
	for ev := range events {
		kinds = append(kinds, ev.Kind)
		if ev.Revision == sentinel {
			break
		}
	}
	require.Equal(t, []string{"expire_grant", "put_member"}, kinds)
}
