package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/conformance"
)

// TestDiffCommand: diff prints what a candidate policy changes (JSON, pretty), cut at --limit;
// --expect passes on the same diff and fails (exit 1) on another; --current-policy is the policy
// in force; a candidate that does not compile fails as --policy does elsewhere.
func TestDiffCommand(t *testing.T) {
	t.Parallel()
	data := conformance.DataFile()
	const candidate, modules = "../../testdata/cli/candidate", "../../testdata/cli/policies"
	out, stderr, code := cli(t, "", "diff", "--data", data, "--policy", candidate)
	require.Equal(t, 0, code, stderr)
	var d authz.PolicyDiff
	require.NoError(t, json.Unmarshal([]byte(out), &d))
	require.Equal(t, authz.DiffByTable, d.Method)
	require.NotEmpty(t, d.Cells)
	require.Len(t, d.Actions, 2)
	require.Equal(t, []string{"runs.stop", "team.projects.create"}, []string{d.Actions[0].Action, d.Actions[1].Action})
	require.Len(t, d.Decisions, d.Actions[0].Decisions+d.Actions[1].Decisions)
	require.False(t, d.Truncated)

	out, stderr, code = cli(t, "", "diff", "--data", data, "--policy", candidate, "--format", "pretty", "--expect", string(d.Fingerprint))
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "decision bob acme/vision runs.stop: allow as contributor (org_role) → deny as contributor (insufficient_role)")
	require.Contains(t, out, "decision bob acme/engineering team.projects.create: allow as contributor (team_role) → deny as contributor (insufficient_role)")
	require.Contains(t, out, "cell team.projects.create org role member, team role contributor: allow as contributor (team_role) → deny as contributor (insufficient_role)")
	require.Contains(t, out, "fingerprint "+string(d.Fingerprint))

	out, stderr, code = cli(t, "", "diff", "--data", data, "--policy", candidate, "--limit", "1")
	require.Equal(t, 0, code, stderr)
	var cut authz.PolicyDiff
	require.NoError(t, json.Unmarshal([]byte(out), &cut))
	require.True(t, cut.Truncated)
	require.Len(t, cut.Decisions, 1)
	require.Len(t, cut.Cells, 1)
	require.Equal(t, d.Fingerprint, cut.Fingerprint)

	// The same policy in force and as candidate: nothing changes, by full evaluation.
	out, stderr, code = cli(t, "", "diff", "--data", data, "--policy", modules, "--current-policy", modules)
	require.Equal(t, 0, code, stderr)
	require.JSONEq(t, `{"revision":1,"fingerprint":"e3b0c44298fc1c149afbf4c8996fb924","method":"evaluation","actions_added":[],
		"actions_removed":[],"pairs":121,"actions":[],"cells":[],"decisions":[],"truncated":false,"nondeterministic":false}`, out)

	_, stderr, code = cli(t, "", "diff", "--data", data, "--policy", modules, "--expect", string(d.Fingerprint))
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "conflict on policy diff "+string(d.Fingerprint))

	bad := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bad, "bad.rego"), []byte("package teamgate.ext\n\nallow contains x if {\n"), 0o600))
	_, want, code := cli(t, "", "check", "--data", data, "--policy", bad, "bob", "runs.stop", "acme/vision")
	require.Equal(t, 1, code)
	_, stderr, code = cli(t, "", "diff", "--data", data, "--policy", bad)
	require.Equal(t, 1, code)
	require.Equal(t, want, stderr)

	for _, args := range [][]string{
		{"diff", "--data", data},
		{"diff", "--data", data, "--policy", candidate, "--limit", "-1"},
		{"diff", "--data", data, "--policy", candidate, "extra"},
	} {
		_, _, code = cli(t, "", args...)
		require.Equal(t, 2, code, "%v", args)
	}
}
