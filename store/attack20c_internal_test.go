package store

import (
	"maps"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAttack20cCheckFindsACopyApart: Store.Check reports every way the decision line's copies
// (projectData's grants, labels, effective teams, restricted, their source) can part from the
// record they copy — also a copy equal in content but another map, which the next write to the
// record would leave behind.
func TestAttack20cCheckFindsACopyApart(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		edit func(pd *projectData)
		want string
	}{
		{"grants: an equal map, not the record's", func(pd *projectData) { pd.grants = maps.Clone(pd.p.Grants) }, "grants or labels"},
		{"grants: none", func(pd *projectData) { pd.grants = nil }, "grants or labels"},
		{"grants: a revoked grant kept", func(pd *projectData) {
			pd.grants = maps.Clone(pd.p.Grants)
			pd.grants["cat"] = Grant{Role: "admin"}
		}, "grants or labels"},
		{"labels: an equal map, not the record's", func(pd *projectData) { pd.labels = maps.Clone(pd.p.Labels) }, "grants or labels"},
		{"labels: none", func(pd *projectData) { pd.labels = nil }, "grants or labels"},
		{"teams", func(pd *projectData) { pd.teams = []string{"blue"} }, "effective teams"},
		{"teams: none", func(pd *projectData) { pd.teams = nil }, "effective teams"},
		{"restricted", func(pd *projectData) { pd.restricted = !pd.restricted }, "effective teams"},
		{"source", func(pd *projectData) { pd.teamsSource = "policy nope" }, "effective teams"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, err := Open(t.Context(), Options{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			_, err = s.Apply(t.Context(), PutOrg{Org: Org{Name: "o"}},
				PutMember{Org: "o", User: "ben", Role: "member"}, PutMember{Org: "o", User: "cat", Role: "member"},
				PutTeam{Team: Team{Org: "o", Name: "red"}}, PutTeam{Team: Team{Org: "o", Name: "blue"}},
				PutProject{Project: Project{Org: "o", Name: "abcdefghijklmno", Teams: []string{"red"},
					Grants: map[string]Grant{"ben": {Role: "viewer"}}, Labels: map[string]string{"tier": "gold"}}})
			require.NoError(t, err)
			require.NoError(t, s.Check())
			s.mu.Lock()
			c.edit(s.st.orgs["o"].project("abcdefghijklmno"))
			s.mu.Unlock()
			require.ErrorContains(t, s.Check(), c.want)
		})
	}
}
