package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/conformance"
)

// TestWhatIfCommand: whatif prints the decisions a batch would change as JSON (arrays never
// null) and pretty lines; an invalid batch is apply's error, exit 1; a missing --changes is a
// usage error.
func TestWhatIfCommand(t *testing.T) {
	t.Parallel()
	out, stderr, code := cli(t, "", "whatif", "--data", conformance.DataFile(), "--changes", "../../testdata/cli/whatif.yaml")
	require.Equal(t, 0, code, stderr)
	var w authz.WhatIf
	require.NoError(t, json.Unmarshal([]byte(out), &w))
	require.Equal(t, []string{"acme/otto"}, w.Subjects)
	require.NotEmpty(t, w.Decisions)
	require.NotEmpty(t, w.Admissions)
	for _, d := range w.Decisions {
		require.Equal(t, "otto", d.Subject)
	}

	out, stderr, code = cli(t, `[{"kind": "put_team", "change": {"Team": {"org": "acme", "name": "research", "description": "x"}}}]`,
		"whatif", "--data", conformance.DataFile(), "--changes", "-")
	require.Equal(t, 0, code, stderr)
	require.JSONEq(t, `{"revision":1,"projects":[],"subjects":[],"pairs":0,"decisions":[],"settings":[],"admissions":[]}`, out)

	out, stderr, code = cli(t, "", "whatif", "--data", conformance.DataFile(), "--changes", "../../testdata/cli/whatif.yaml", "--format", "pretty")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "decision otto acme/nlp project.get: deny as none (restricted) → allow as contributor (team_role)")
	require.Contains(t, out, `settings acme/open queue: {"value":"cpu/default","source":"org"} → {"value":"cpu/big","source":"org"}`)

	bad := `[{"kind": "put_team_member", "change": {"Org": "acme", "Team": "nope", "User": "otto", "Role": "viewer"}}]`
	_, stderr, code = cli(t, bad, "whatif", "--data", conformance.DataFile(), "--changes", "-")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "team acme/nope not found")

	_, _, code = cli(t, "", "whatif", "--data", conformance.DataFile())
	require.Equal(t, 2, code)
}
