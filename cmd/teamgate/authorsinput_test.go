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
