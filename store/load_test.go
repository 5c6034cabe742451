package store_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/store"
)

// TestOpenRefusesCorruptMemberships: Open validates every membership record as a write would
// (team memberships are loaded by several workers at once), and fails naming the record.
func TestOpenRefusesCorruptMemberships(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, key, val string
		is             error
	}{
		{"team member not in the org", "v1/tmember/acme/research/zed", "member", teamgate.ErrNotFound},
		{"team member of a missing team", "v1/tmember/acme/nope/bob", "member", teamgate.ErrNotFound},
		{"team member of a missing org", "v1/tmember/nope/research/bob", "member", teamgate.ErrNotFound},
		{"team member sorting before every team", "v1/tmember/acme/a/bob", "member", teamgate.ErrNotFound},
		{"team member sorting after every team", "v1/tmember/zzz/z/bob", "member", teamgate.ErrNotFound},
		{"bad team role", "v1/tmember/acme/research/bob", "owner", teamgate.ErrInvalid},
		{"bad org role", "v1/member/acme/zed", "admiral", teamgate.ErrInvalid},
		{"bad member name", "v1/member/acme/z--d", "member", teamgate.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s, err := store.Open(t.Context(), store.Options{Dir: dir, NoSync: true})
			require.NoError(t, err)
			loadAcme(t, s)
			require.NoError(t, store.PutRawRecord(s, tc.key, []byte(tc.val)))
			require.NoError(t, s.Close())
			_, err = store.Open(t.Context(), store.Options{Dir: dir, NoSync: true})
			require.ErrorIs(t, err, tc.is)
			require.ErrorContains(t, err, "load record "+tc.key)
		})
	}
	t.Run("malformed team membership key", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s, err := store.Open(t.Context(), store.Options{Dir: dir, NoSync: true})
		require.NoError(t, err)
		loadAcme(t, s)
		require.NoError(t, store.PutRawRecord(s, "v1/tmember/acme/research", []byte("member")))
		require.NoError(t, s.Close())
		_, err = store.Open(t.Context(), store.Options{Dir: dir, NoSync: true})
		require.ErrorContains(t, err, "corrupt record v1/tmember/acme/research")
	})
}

// TestReopenKeepsMemberships: after random membership churn across many teams (ids freed and
// reused, teams renamed and deleted), reopening the store gives the same directory, every
// member the same team roles, and consistent indexes.
func TestReopenKeepsMemberships(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := store.Open(t.Context(), store.Options{Dir: dir, NoSync: true})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(3, 4))
	const users, teams = 300, 120
	cs := []store.Change{store.PutOrg{Org: store.Org{Name: "o"}}, store.PutOrg{Org: store.Org{Name: "p"}}}
	for i := range users {
		cs = append(cs, store.PutMember{Org: "o", User: fmt.Sprintf("u%d", i), Role: "member"},
			store.PutMember{Org: "p", User: fmt.Sprintf("u%d", i), Role: "viewer"})
	}
	for i := range teams {
		cs = append(cs, store.PutTeam{Team: store.Team{Org: "o", Name: fmt.Sprintf("t%d", i)}},
			store.PutTeam{Team: store.Team{Org: "p", Name: fmt.Sprintf("t%d", i)}})
	}
	_, err = s.Apply(t.Context(), cs...)
	require.NoError(t, err)
	roles := store.TeamRoles()
	for i := range 3000 {
		u, tm := fmt.Sprintf("u%d", rng.IntN(users)), fmt.Sprintf("t%d", rng.IntN(teams))
		org := []string{"o", "p"}[rng.IntN(2)]
		var c store.Change
		switch rng.IntN(20) {
		case 0:
			c = store.DeleteMember{Org: org, User: u}
		case 1:
			c = store.PutMember{Org: org, User: u, Role: "admin"}
		case 2:
			c = store.DeleteTeamMember{Org: org, Team: tm, User: u}
		case 3:
			c = store.RenameTeam{Org: org, From: tm, To: fmt.Sprintf("r%d", i)}
		case 4:
			c = store.DeleteTeam{Org: org, Name: tm}
		case 5:
			c = store.PutTeam{Team: store.Team{Org: org, Name: tm}}
		default:
			c = store.PutTeamMember{Org: org, Team: tm, User: u, Role: roles[rng.IntN(len(roles))]}
		}
		_, _ = s.Apply(t.Context(), c) // many fail (a missing member or team): that is churn too
		if i%500 == 0 {
			require.NoError(t, s.Check())
		}
	}
	require.NoError(t, s.Check())
	before := directory(t, s)
	require.NoError(t, s.Close())
	s, err = store.Open(t.Context(), store.Options{Dir: dir, NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Check())
	require.Equal(t, before, directory(t, s))
}

// directory is everything a reader sees of the memberships: the export and each user's team
// roles and org role in each org.
func directory(t *testing.T, s *store.Store) map[string]any {
	t.Helper()
	var out bytes.Buffer
	require.NoError(t, s.Export(t.Context(), &out))
	m := map[string]any{"export": out.String()}
	require.NoError(t, s.View(func(r store.Reader) error {
		for _, org := range r.Orgs() {
			for u := range r.Members(org) {
				role, ok := r.OrgRole(org, u)
				require.True(t, ok)
				m[org+"/"+u] = []any{role, r.TeamRoles(org, u).Map(), r.TeamRoles(org, u).Len()}
			}
		}
		return nil
	}))
	return m
}
