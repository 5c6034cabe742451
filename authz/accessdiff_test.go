package authz_test

import (
	"cmp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/clocktest"
	"github.com/teamgate/teamgate/store"
)

// allRoles is the effective project role of every (subject, project) pair the test knows, as
// the directory answers now.
func allRoles(t *testing.T, eng *authz.Engine) map[[2]string]string {
	t.Helper()
	out := map[[2]string]string{}
	for _, u := range []string{"bob", "carl", "dave", "erin"} {
		for _, p := range []string{"a/p", "a/q", "a/r"} {
			d, err := eng.Authorize(t.Context(), authz.Request{Subject: u, Action: "project.get", Resource: p})
			require.NoError(t, err)
			out[[2]string{u, p}] = cmp.Or(d.Role, "none") // a missing org decides no role at all
		}
	}
	return out
}

// TestDiffAccessEqualsRolesAtEachRevision scripts a history (memberships, grants, an expiry, a
// project deleted and one created) and checks DiffAccess over every pair of revisions against
// the roles the directory answered at each revision as it went.
func TestDiffAccessEqualsRolesAtEachRevision(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clock := clocktest.New(expiryT0)
	st, err := store.Open(ctx, store.Options{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	eng, err := authz.New(ctx, st)
	require.NoError(t, err)
	at := []map[[2]string]string{allRoles(t, eng)} // revision 0
	write := func(cs ...store.Change) {
		rev, err := st.Apply(ctx, cs...)
		require.NoError(t, err)
		require.Len(t, at, int(rev))
		at = append(at, allRoles(t, eng))
	}
	write(store.PutOrg{Org: store.Org{Name: "a"}},
		store.PutMember{Org: "a", User: "bob", Role: "member"},
		store.PutMember{Org: "a", User: "carl", Role: "viewer"},
		store.PutMember{Org: "a", User: "dave", Role: "outsider"},
		store.PutTeam{Team: store.Team{Org: "a", Name: "t"}},
		store.PutProject{Project: store.Project{Org: "a", Name: "p", Teams: []string{"t"}}},
		store.PutProject{Project: store.Project{Org: "a", Name: "q"}})
	write(store.PutTeamMember{Org: "a", Team: "t", User: "bob", Role: "admin"})
	write(store.PutGrant{Org: "a", Project: "p", User: "dave", Grant: store.Grant{Role: "viewer", ExpiresAt: expiryT0.Add(time.Hour)}})
	write(store.PutMember{Org: "a", User: "carl", Role: "manager"})
	clock.Advance(time.Hour) // revision 5: dave's grant expires
	require.NoError(t, st.WaitRevision(ctx, 5))
	at = append(at, allRoles(t, eng))
	write(store.DeleteTeamMember{Org: "a", Team: "t", User: "bob"}, store.PutMember{Org: "a", User: "erin", Role: "member"})
	write(store.DeleteProject{Org: "a", Name: "q"}, store.PutProject{Project: store.Project{Org: "a", Name: "r"}})
	last := st.Revision()
	require.EqualValues(t, 7, last)

	for from := range last + 1 {
		for to := from; to <= last; to++ {
			diff, err := authz.DiffAccess(ctx, st, from, to)
			require.NoError(t, err)
			want := map[[2]string][2]string{}
			for pair, b := range at[from] {
				if a := at[to][pair]; a != b {
					want[pair] = [2]string{b, a}
				}
			}
			got := map[[2]string][2]string{}
			for _, c := range diff.Changes {
				got[[2]string{c.Subject, c.Project}] = [2]string{c.Before, c.After}
				require.NotEmpty(t, c.Causes, "%d..%d %+v", from, to, c)
				for _, cause := range c.Causes {
					require.True(t, cause.Revision > from && cause.Revision <= to)
				}
			}
			require.Equal(t, want, got, "%d..%d", from, to)
		}
	}
	diff, err := authz.DiffAccess(ctx, st, 3, 5)
	require.NoError(t, err)
	require.Equal(t, []authz.AccessChange{
		{Subject: "carl", Project: "a/p", Before: "none", After: "admin", Causes: []authz.Cause{{Revision: 4, Kind: "put_member"}}},
		{Subject: "dave", Project: "a/p", Before: "viewer", After: "none", Causes: []authz.Cause{{Revision: 5, Kind: "expire_grant"}}},
		{Subject: "carl", Project: "a/q", Before: "viewer", After: "admin", Causes: []authz.Cause{{Revision: 4, Kind: "put_member"}}},
	}, diff.Changes)

	for _, r := range [][2]uint64{{3, 2}, {0, last + 1}} {
		_, err := authz.DiffAccess(ctx, st, r[0], r[1])
		require.ErrorIs(t, err, teamgate.ErrInvalid)
	}
	empty, err := authz.DiffAccess(ctx, st, 2, 2)
	require.NoError(t, err)
	require.NotNil(t, empty.Changes)
}

// TestDiffAccessShowsBreakGlass: an elevation's cause says who elevated and why (read back from
// an on-disk store's events), and its expiry is the cause of its end.
func TestDiffAccessShowsBreakGlass(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clock := clocktest.New(expiryT0)
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true, Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.Apply(ctx, store.PutOrg{Org: store.Org{Name: "a"}},
		store.PutMember{Org: "a", User: "adam", Role: "admin"},
		store.PutTeam{Team: store.Team{Org: "a", Name: "t"}},
		store.PutProject{Project: store.Project{Org: "a", Name: "p", Teams: []string{"t"}}})
	require.NoError(t, err)
	eng, err := authz.New(ctx, st)
	require.NoError(t, err)
	el, err := eng.BreakGlass(ctx, authz.BreakGlassRequest{Actor: "adam", Project: "a/p", Justification: "incident 7: runs stuck", Duration: time.Hour})
	require.NoError(t, err)
	require.True(t, el.Decision.Allowed)
	clock.Advance(time.Hour)
	require.NoError(t, st.WaitRevision(ctx, el.Revision+1))

	diff, err := authz.DiffAccess(ctx, st, el.Revision-1, el.Revision)
	require.NoError(t, err)
	require.Equal(t, []authz.AccessChange{{Subject: "adam", Project: "a/p", Before: "none", After: "admin",
		Causes: []authz.Cause{{Revision: el.Revision, Kind: "put_grant",
			BreakGlass: &store.BreakGlass{Actor: "adam", At: expiryT0, Justification: "incident 7: runs stuck"}}}}}, normalizeAt(diff.Changes))
	diff, err = authz.DiffAccess(ctx, st, el.Revision, el.Revision+1)
	require.NoError(t, err)
	require.Equal(t, []authz.AccessChange{{Subject: "adam", Project: "a/p", Before: "admin", After: "none",
		Causes: []authz.Cause{{Revision: el.Revision + 1, Kind: "expire_grant"}}}}, diff.Changes)
}

// normalizeAt makes break-glass times comparable with ==-based equality (location, monotonic).
func normalizeAt(cs []authz.AccessChange) []authz.AccessChange {
	for _, c := range cs {
		for _, cause := range c.Causes {
			if b := cause.BreakGlass; b != nil {
				b.At = b.At.UTC()
			}
		}
	}
	return cs
}
