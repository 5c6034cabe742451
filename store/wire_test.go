package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
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
		store.PutProject{Project: store.Project{Org: "acme", Name: "vision", Teams: []string{"eng"}, Labels: map[string]string{"tier": "gold"}}},
		store.CreateProject{Project: store.Project{Org: "acme", Name: "labs"}, Team: "eng"},
		store.DeleteProject{Org: "acme", Name: "vision"},
		store.PutGrant{Org: "acme", Project: "vision", User: "olga", Grant: store.Grant{Role: "admin"}},
		store.DeleteGrant{Org: "acme", Project: "vision", User: "olga"},
		store.EndBreakGlass{Org: "acme", Project: "vision", User: "olga", ExpiresAt: time.Date(2030, 1, 1, 0, 30, 0, 0, time.UTC), By: "alice"},
		store.PutPolicy{Policy: store.Policy{Org: "acme", Name: "gpu", Settings: policy.Settings{Queues: []string{"gpu/a100"}}}},
		store.DeletePolicy{Org: "acme", Name: "gpu"},
		store.PutUser{User: store.User{ID: "bob", DefaultTeam: "acme/eng"}}, store.DeleteUser{ID: "bob"},
		store.PutFile{File: store.File{Orgs: []store.FileOrg{{Name: "acme", Members: map[string]string{"bob": "member"},
			Projects: []store.FileProject{{Name: "vision", Labels: map[string]string{"approval": "admin-only"}}}}}}},
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
	parsed, err := store.ParseChanges(raw)
	require.NoError(t, err)
	require.Equal(t, all, parsed, "a change file in the wire form parses under the strict rules")
}

// TestParseChangesIsStrict: a change file that breaks the data-file rules is ErrInvalid naming
// the change's path and, for a key or value, its line; YAML and JSON read alike.
func TestParseChangesIsStrict(t *testing.T) {
	t.Parallel()
	cs, err := store.ParseChanges([]byte("# a comment\n- kind: put_member\n  change: {Org: acme, User: bob, Role: member}\n"))
	require.NoError(t, err)
	require.Equal(t, store.Changes{store.PutMember{Org: "acme", User: "bob", Role: "member"}}, cs)
	for _, empty := range []string{"[]", "null", "~\n", "# nothing\n"} {
		cs, err = store.ParseChanges([]byte(empty))
		require.NoError(t, err, empty)
		require.Empty(t, cs, empty)
	}
	for name, tc := range map[string]struct{ doc, want string }{
		"unknown key":  {"- kind: put_member\n  change: {Org: acme, user: bob}\n", `invalid change file "changes[0].change.user": line 2, column 23: unknown key`},
		"outer key":    {`[{"kind": "delete_org", "change": {"Name": "a"}, "extra": 1}]`, `"changes[0].extra": line 1, column 50: unknown key`},
		"wrong type":   {`[{"kind": "delete_org", "change": {"Name": 1}}]`, `"changes[0].change.Name": line 1, column 44: expected a string, got a number`},
		"unknown kind": {`[{"kind": "put_everything", "change": {}}]`, `invalid change file "changes[0].kind": line 1, column 3: unknown change kind "put_everything"`},
		"no change":    {`[{"kind": "delete_org"}]`, "delete_org without its change"},
		"second doc":   {"- kind: delete_org\n  change: {Name: a}\n---\n[]\n", "a second YAML document"},
	} {
		_, err := store.ParseChanges([]byte(tc.doc))
		require.ErrorIs(t, err, teamgate.ErrInvalid, name)
		require.ErrorContains(t, err, tc.want, name)
	}
}
