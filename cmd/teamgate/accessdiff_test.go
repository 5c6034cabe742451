package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/store"
)

func TestAccessDiffCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := store.Open(t.Context(), store.Options{Dir: dir, NoSync: true})
	require.NoError(t, err)
	_, err = st.LoadFile(t.Context(), conformance.DataFile())
	require.NoError(t, err)
	_, err = st.Apply(t.Context(), store.PutMember{Org: "acme", User: "vera", Role: "admin"})
	require.NoError(t, err)
	_, err = st.Apply(t.Context(), store.DeleteTeamMember{Org: "acme", Team: "engineering", User: "bob"})
	require.NoError(t, err)
	want, err := authz.DiffAccess(t.Context(), st, 1, 3)
	require.NoError(t, err)
	require.NotEmpty(t, want.Changes)
	require.NoError(t, st.Close())

	out, stderr, code := cli(t, "", "access-diff", "--store", dir, "--from", "1", "--to", "3")
	require.Equal(t, 0, code, stderr)
	var got authz.AccessDiff
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Equal(t, want, got)

	out, stderr, code = cli(t, "", "access-diff", "--store", dir, "--from", "1", "--to", "3", "--format", "pretty")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "bob\tacme/vision\tcontributor -> ")
	require.Contains(t, out, "(r3 delete_team_member)")

	out, _, code = cli(t, "", "access-diff", "--store", dir, "--from", "2", "--to", "2")
	require.Equal(t, 0, code)
	require.JSONEq(t, `{"from":2,"to":2,"changes":[]}`, out)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"access-diff", "--store", dir, "--from", "1"}, 2},
		{[]string{"access-diff", "--store", dir, "--from", "3", "--to", "1"}, 1},
		{[]string{"access-diff", "--store", dir, "--from", "1", "--to", "9"}, 1},
	} {
		_, _, code := cli(t, "", tc.args...)
		require.Equal(t, tc.code, code, "%v", tc.args)
	}
}
