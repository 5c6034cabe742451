package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// memberName is user i's name: most short, every fourth at the edge of member.key (35 bytes):
// 34, 35 or 36 bytes.
func memberName(i int) string {
	u := fmt.Sprintf("u%d", i)
	if i%4 == 3 {
		u += strings.Repeat("-x", 20)[:34+i%3-len(u)]
	}
	return u
}

// checkMemberKeys checks what people.byName relies on, in every org of st: each entry is found
// by its name (names[id]), and a name of ≤ 35 bytes is the entry's own key bytes, as names[id]
// is (the layout TestDecisionReadsFewLines checks, kept by every path that makes an entry: a
// join, a rolled-back leave, a simulation's copy, a load from a snapshot).
func checkMemberKeys(t *testing.T, st *state) {
	t.Helper()
	for on, o := range st.orgs {
		p := &o.members
		n := 0
		for m := range p.byName.all {
			n++
			k := p.names[m.id]
			require.Same(t, m, p.get(k), "org %s: member %q (id %d) is not found by its name", on, k, m.id)
			require.Same(t, m, p.byID[m.id], "org %s: member %s", on, k)
			if len(k) <= len(m.key) {
				require.Equal(t, k, string(m.key[:len(k)]), "org %s: key bytes of %q", on, k)
				require.Equal(t, unsafe.Pointer(&m.key[0]), unsafe.Pointer(unsafe.StringData(k)),
					"org %s: name %q is not the entry's own bytes", on, k)
			}
		}
		require.Equal(t, p.count(), n, "org %s: entries counted", on)
	}
}

// TestMemberEntriesRandomWrites: random member writes (join, role change, leave and re-join, so
// that ids are freed and reused and people.byID grows by reallocation; team joins, role changes
// and leaves; batches that fail after a leave and are rolled back; simulations), with names
// short and at the edge of member.key, keep every member's org role and team roles as a model
// says, byName's keys the entries' own bytes and Store.Check clean, while readers decide
// concurrently and background snapshots copy people.byID a few ids at a time (run it under
// -race); then again after a reopen from the last snapshot and the records after it.
func TestMemberEntriesRandomWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	opts := Options{Dir: dir, NoSync: true, SnapshotRevisions: 7}
	s, err := Open(ctx, WithSnapshotChunk(opts, 3))
	require.NoError(t, err)
	defer func() { _ = s.Close() }()
	const users, teams = 24, 4
	cs := []Change{PutOrg{Org: Org{Name: "o"}}}
	var all []string
	for i := range teams {
		all = append(all, fmt.Sprintf("t%d", i))
		cs = append(cs, PutTeam{Team: Team{Org: "o", Name: all[i]}})
	}
	cs = append(cs, PutProject{Project: Project{Org: "o", Name: "p", Teams: all}})
	_, err = s.Apply(ctx, cs...)
	require.NoError(t, err)

	halt := readAlong(2, func(i, n int, a *Access) bool {
		u := memberName((n + i) % users)
		if _, err := s.ViewAccess(a, "o", "", "p", u, nil); err != nil {
			t.Error(err)
			return false
		}
		if a.Missing != Found || a.OrgRole == "" && a.TeamRoles != 0 {
			t.Errorf("%s: %+v", u, a)
			return false
		}
		return true
	})
	defer halt() // before the store closes, also when a check fails

	rng := rand.New(rand.NewPCG(32, 1))
	roles := map[string]string{}              // member → org role
	inTeams := map[string]map[string]string{} // member → team → role
	verify := func(s *Store, step int) {
		t.Helper()
		require.NoError(t, s.View(func(r Reader) error {
			require.Equal(t, roles, r.Members("o"), "step %d", step)
			for u := range roles {
				want := inTeams[u]
				if len(want) == 0 {
					want = map[string]string{}
				}
				got := r.TeamRoles("o", u).Map()
				if got == nil {
					got = map[string]string{}
				}
				require.Equal(t, want, got, "step %d: %s's teams", step, u)
			}
			return nil
		}))
		s.mu.RLock()
		checkMemberKeys(t, s.st)
		s.mu.RUnlock()
	}
	for step := range 400 {
		u := memberName(rng.IntN(users))
		team := fmt.Sprintf("t%d", rng.IntN(teams))
		var err error
		switch op := rng.IntN(7); {
		case roles[u] == "" && op < 3: // a join with a team in one batch (an id freed before, or a new one)
			role := string(teamRoles[rng.IntN(len(teamRoles))])
			_, err = s.Apply(ctx, PutMember{Org: "o", User: u, Role: "member"}, PutTeamMember{Org: "o", Team: team, User: u, Role: role})
			roles[u], inTeams[u] = "member", map[string]string{team: role}
		case op == 0 || roles[u] == "":
			role := string(orgRoles[rng.IntN(len(orgRoles))])
			_, err = s.Apply(ctx, PutMember{Org: "o", User: u, Role: role})
			roles[u] = role
		case op == 1:
			_, err = s.Apply(ctx, DeleteMember{Org: "o", User: u})
			delete(roles, u)
			delete(inTeams, u)
		case op == 2 || op == 3:
			role := string(teamRoles[rng.IntN(len(teamRoles))])
			_, err = s.Apply(ctx, PutTeamMember{Org: "o", Team: team, User: u, Role: role})
			if inTeams[u] == nil {
				inTeams[u] = map[string]string{}
			}
			inTeams[u][team] = role
		case op == 4 && inTeams[u][team] != "":
			_, err = s.Apply(ctx, DeleteTeamMember{Org: "o", Team: team, User: u})
			delete(inTeams[u], team)
		case op == 5 && rng.IntN(3) == 0: // a simulation of a leave and a re-join: the live state unchanged
			sim, serr := s.Simulate(ctx, DeleteMember{Org: "o", User: u}, PutMember{Org: "o", User: u, Role: "viewer"},
				PutMember{Org: "o", User: memberName(users + step), Role: "member"})
			require.NoError(t, serr, "step %d", step)
			require.NoError(t, sim.ViewAfter(func(r Reader) error {
				require.Equal(t, "viewer", r.Members("o")[u], "step %d", step)
				return nil
			}))
			checkMemberKeys(t, sim.before)
			checkMemberKeys(t, sim.after)
		case op == 5: // a leave and a re-join with a team in one batch: an id freed and taken again
			_, err = s.Apply(ctx, DeleteMember{Org: "o", User: u}, PutMember{Org: "o", User: u, Role: "viewer"},
				PutTeamMember{Org: "o", Team: team, User: u, Role: "admin"})
			roles[u], inTeams[u] = "viewer", map[string]string{team: "admin"}
		default: // a leave and a re-join (another id), then a failing change: all rolled back
			_, err = s.Apply(ctx, DeleteMember{Org: "o", User: u}, PutMember{Org: "o", User: u, Role: "admin"},
				PutTeamMember{Org: "o", Team: "no-such-team", User: u, Role: "viewer"})
			require.Error(t, err, "step %d", step)
			err = nil
		}
		require.NoError(t, err, "step %d", step)
		verify(s, step)
		if step%40 == 0 {
			require.NoError(t, s.Check(), "step %d", step)
		}
	}
	halt()
	require.NoError(t, s.Check())
	require.NotZero(t, SnapshotRevision(s), "a background snapshot was written")
	SkipSnapshotAtClose(s) // reopen from the last background snapshot and the records after it
	require.NoError(t, s.Close())

	s, err = Open(ctx, opts)
	require.NoError(t, err)
	require.True(t, FromSnapshot(s))
	verify(s, -1)
	require.NoError(t, s.Check())
}
