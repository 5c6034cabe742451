package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/conformance"
)

// TestLintCommand: lint prints the report as JSON (arrays never null) or for people, takes
// orgs, exits 1 with --strict when there are findings, and its fixes go through `apply`.
func TestLintCommand(t *testing.T) {
	t.Parallel()
	data := conformance.DataFile()
	clean := "../../testdata/lint/clean/data.yaml"

	out, stderr, code := cli(t, "", "lint", "--data", clean, "--strict")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, `{"findings":[],"revision":1}`+"\n", out)

	out, stderr, code = cli(t, "", "lint", "--data", data)
	require.Equal(t, 0, code, stderr)
	var rep authz.LintReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	codes := map[authz.LintCode]bool{}
	for _, f := range rep.Findings {
		codes[f.Code] = true
	}
	require.Equal(t, map[authz.LintCode]bool{authz.LintProjectUnreachable: true, authz.LintSettingsConflict: true, authz.LintTeamWithoutAdmin: true}, codes)

	out, stderr, code = cli(t, "", "lint", "--data", data, "--strict", "--format", "pretty", "acme")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "3 finding(s) (--strict)")
	require.Contains(t, out, "team_without_admin\tacme/teams/research\n  team acme/research has no member who may manage it")
	require.Contains(t, out, "  fix: make vera admin of team acme/research (now contributor)\n"+
		`  changes: [{"kind":"put_team_member","change":{"Org":"acme","Team":"research","User":"vera","Role":"admin"}}]`)
	require.True(t, strings.HasSuffix(out, "3 finding(s) at revision 1\n"), out)

	out, _, code = cli(t, "", "lint", "--data", data, "other")
	require.Equal(t, 0, code)
	require.Contains(t, out, `"findings":[]`)

	_, stderr, code = cli(t, "", "lint", "--data", data, "nosuch")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "nosuch")
	_, _, code = cli(t, "", "lint", "--data", data, "--format", "yaml")
	require.Equal(t, 2, code)

	// A finding's changes are what `apply --changes` reads; applied, the finding is gone.
	dir := storeDir(t)
	out, _, _ = cli(t, "", "lint", "--store", dir)
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	i := 0
	for rep.Findings[i].Code != authz.LintTeamWithoutAdmin {
		i++
	}
	raw, err := json.Marshal(rep.Findings[i].Fix.Changes)
	require.NoError(t, err)
	_, stderr, code = cli(t, "", "apply", "--store", dir, "--changes", writeFile(t, "fix.json", string(raw)))
	require.Equal(t, 0, code, stderr)
	out, _, _ = cli(t, "", "lint", "--store", dir)
	require.NotContains(t, out, string(authz.LintTeamWithoutAdmin))
	require.Contains(t, out, string(authz.LintProjectUnreachable))
}
