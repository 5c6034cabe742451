package store

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStampKeyRoundTrip(t *testing.T) {
	t.Parallel()
	for _, k := range []stampKey{{'O', "", ""}, {'U', "", ""}, {'o', "acme", ""}, {'x', "acme", ""},
		{'u', "bob", ""}, {'m', "acme", "bob"}, {'t', "acme", "ml"}, {'p', "acme", "nlp"}, {'y', "acme", "gpu"}} {
		got, ok := parseStampKey(k.String())
		require.True(t, ok, k.String())
		require.Equal(t, k, got)
	}
	for _, bad := range []string{"", "O/", "O/x", "o", "o/", "o/a/b", "m/a", "m/a/", "m//b", "m/a/b/c", "z/a", "oo/a", "p/a/b/"} {
		_, ok := parseStampKey(bad)
		require.False(t, ok, bad)
	}
}

// TestAbsentFactsShareShards: a Deps on something never written goes stale when it is first
// written, stays current when a key of another shard is, and reading never creates a cell.
func TestAbsentFactsShareShards(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), Options{})
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Apply(t.Context(), PutOrg{Org: Org{Name: "a"}})
	require.NoError(t, err)
	var d Deps
	require.NoError(t, s.View(func(r Reader) error { r.Track(&d).OrgRole("a", "nobody"); return nil }))
	cells := len(s.stamps.cells)
	for i := range 100 {
		require.NoError(t, s.View(func(r Reader) error { r.OrgRole("a", fmt.Sprint("ghost", i)); return nil }))
	}
	require.Len(t, s.stamps.cells, cells, "reads create no cells")

	watched := s.stamps.absentCell(stampKey{'m', "a", "nobody"})
	other := ""
	for i := 0; other == ""; i++ {
		if u := fmt.Sprint("u", i); s.stamps.absentCell(stampKey{'m', "a", u}) != watched {
			other = u
		}
	}
	_, err = s.Apply(t.Context(), PutMember{Org: "a", User: other, Role: "member"})
	require.NoError(t, err)
	require.True(t, d.Current(), "a new key of another shard")
	_, err = s.Apply(t.Context(), PutMember{Org: "a", User: "nobody", Role: "member"})
	require.NoError(t, err)
	require.False(t, d.Current())
}

// TestTrackedReadsCreateNoCells: tracked reads naming orgs, users, teams, projects and policies
// that were never written (each request a new name) leave no memory in the store: absent facts
// are covered by the shared shard cells, so the store's stamps grow only with writes.
func TestTrackedReadsCreateNoCells(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), Options{})
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Apply(t.Context(), PutOrg{Org: Org{Name: "a"}}, PutMember{Org: "a", User: "bob", Role: "member"})
	require.NoError(t, err)
	cells := len(s.stamps.cells)
	for i := range 1000 {
		ghost := fmt.Sprint("ghost", i)
		var d Deps
		require.NoError(t, s.View(func(r Reader) error {
			r = r.Track(&d)
			r.Org(ghost)
			r.OrgRole("a", ghost)
			r.TeamRoles("a", ghost)
			r.Team("a", ghost)
			r.Project("a", ghost)
			r.Project(ghost, ghost)
			r.Policy("a", ghost)
			r.User(ghost)
			return nil
		}))
		require.True(t, d.Current())
	}
	require.Len(t, s.stamps.cells, cells, "tracked reads create no cells")
}
