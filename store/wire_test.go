package store_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/store"
)

// TestEveryChangeKindRoundTrips: a batch holding every kind of change reads back equal from its
// JSON form, each under its own Kind.
func TestEveryChangeKindRoundTrips(t *testing.T) {
	t.Parallel()
	all := store.Changes{
		store.PutOrg{Org: store.Org{Name: "acme", Queue: "cpu"}}, store.DeleteOrg{Name: "acme"},
		store.PutMember{Org: "acme", User: "bob", Role: "member"}, store.DeleteMember{Org: "acme", User: "bob"},
		store.PutTeam{Team: store.Team{Org: "acme", Name: "eng", Policy: "gpu"}}, store.DeleteTeam{Org: "acme", Name: "eng"},
		store.RenameTeam{Org: "acme", From: "eng", To: "ml"},
		store.PutTeamMember{Org: "acme", Team: "eng", User: "bob", Role: "admin"}, store.DeleteTeamMember{Org: "acme", Team: "eng", User: "bob"},
		store.PutProject{Project: store.Project{Org: "acme", Name: "vision", Teams: []string{"eng"}}},
		store.CreateProject{Project: store.Project{Org: "acme", Name: "labs"}, Team: "eng"},
		store.DeleteProject{Org: "acme", Name: "vision"},
		store.PutGrant{Org: "acme", Project: "vision", User: "olga", Grant: store.Grant{Role: "admin"}},
		store.DeleteGrant{Org: "acme", Project: "vision", User: "olga"},
		store.PutPolicy{Policy: store.Policy{Org: "acme", Name: "gpu", Settings: policy.Settings{Queues: []string{"gpu/a100"}}}},
		store.DeletePolicy{Org: "acme", Name: "gpu"},
		store.PutUser{User: store.User{ID: "bob", DefaultTeam: "acme/eng"}}, store.DeleteUser{ID: "bob"},
		store.PutFile{File: store.File{Orgs: []store.FileOrg{{Name: "acme", Members: map[string]string{"bob": "member"}}}}},
	}
	kinds := map[string]bool{}
	for _, c := range all {
		kinds[c.Kind()] = true
	}
	require.Len(t, kinds, len(all), "one change of each kind")
	raw, err := json.Marshal(all)
	require.NoError(t, err)
	var back store.Changes
	require.NoError(t, json.Unmarshal(raw, &back))
	require.Equal(t, all, back)
}
