package store

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestIndexMemberTeamsAnyWorkers: the team lists Open builds from the teams' maps are the same
// whatever the number of goroutines building them, and agree with the maps.
func TestIndexMemberTeamsAnyWorkers(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	rng := rand.New(rand.NewPCG(1, 2))
	cs := []Change{PutOrg{Org: Org{Name: "o"}}}
	for i := range 200 {
		cs = append(cs, PutMember{Org: "o", User: fmt.Sprintf("u%d", i), Role: "member"})
	}
	for i := range 37 {
		cs = append(cs, PutTeam{Team: Team{Org: "o", Name: fmt.Sprintf("t%d", i)}})
	}
	for range 1500 {
		cs = append(cs, PutTeamMember{Org: "o", Team: fmt.Sprintf("t%d", rng.IntN(37)), User: fmt.Sprintf("u%d", rng.IntN(200)),
			Role: string(teamRoles[rng.IntN(len(teamRoles))])})
	}
	cs = append(cs, DeleteMember{Org: "o", User: "u7"}, DeleteTeam{Org: "o", Name: "t3"}) // free ids
	_, err = s.Apply(t.Context(), cs...)
	require.NoError(t, err)
	o := s.st.orgs["o"]
	want := map[string]map[string]string{}
	for u := range o.members.all {
		want[u] = UserTeams{o: o, list: o.members.get(u).teams}.Map()
	}
	for workers := 1; workers <= 5; workers++ {
		for m := range o.members.byName.all { // not the free ids' entry, which is never written
			m.teams = nil
		}
		o.indexMemberTeams(workers)
		require.NoError(t, o.checkMembers(), "workers=%d", workers)
		for u := range o.members.all {
			require.Equal(t, want[u], UserTeams{o: o, list: o.members.get(u).teams}.Map(), "workers=%d user %s", workers, u)
		}
	}
}
