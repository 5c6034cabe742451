package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/conformance"
)

// TestAuthorsWithSubjectThroughCLI: authz's TestAuthorsWithSubjectSeesTeams through
// `teamgate check --policy`: an author's rule that replaces input.subject without team_role
// sees the engine's team facts (olga is an admin of engineering, vision's team).
func TestAuthorsWithSubjectThroughCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := "package teamgate.ext\n\nimport rego.v1\n\n" +
		`deny contains "team admin" if "admin" == data.teamgate.authz.team_role with input.subject as object.remove(input.subject, ["team_role"])` + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ext.rego"), []byte(src), 0o600))
	out, stderr, code := cli(t, "", "check", "--data", conformance.DataFile(), "--policy", dir, "olga", "runs.get", "acme/vision")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, `"allowed":false`)
	require.Contains(t, out, `"code":"extension_deny","message":"team admin"`)
	out, stderr, code = cli(t, "", "check", "--data", conformance.DataFile(), "--policy", dir, "bob", "runs.get", "acme/vision")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, `"allowed":true`)
}

// TestExtDataMessagesThroughCLI: authz's TestExtDataMessagesOnEveryPath through `teamgate check
// --policy` with a data file that defines teamgate.ext: the reason carries the data's message.
func TestExtDataMessagesThroughCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "data.json"), []byte(`{"teamgate": {"ext": {"deny": ["frozen"]}}}`), 0o600))
	for _, args := range [][]string{{"alice", "org.get", "acme"}, {"bob", "runs.get", "acme/vision"}} {
		out, stderr, code := cli(t, "", append([]string{"check", "--data", conformance.DataFile(), "--policy", dir}, args...)...)
		require.Equal(t, 0, code, stderr)
		require.Contains(t, out, `"allowed":false`, args)
		require.Contains(t, out, `"reasons":[{"code":"extension_deny","message":"frozen"}]`, args)
	}
}
