package main

import (
	"encoding/json"
	"os"
	"path/filepath"
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

// TestLintPolicyFindings: lint reports an author's comparison with an action outside the
// catalog at its file:line:col with the nearest action, with --policy alone (no data file) or
// beside the directory's findings; --strict fails on it; the worked examples lint clean.
func TestLintPolicyFindings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "freeze.rego")
	require.NoError(t, os.WriteFile(file, []byte("package teamgate.ext\n\nimport rego.v1\n\n"+
		"deny contains \"frozen\" if input.action in {\"runs.stop\", \"runs.delte\"}\n"), 0o600))

	out, stderr, code := cli(t, "", "lint", "--policy", dir, "--format", "pretty")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "policy_unknown_value\t"+file+":5:57\n"+
		`  input.action is tested for membership in a collection holding "runs.delte", which is not an action of the catalog (data.teamgate.actions): that element never matches; did you mean "runs.delete"?`+"\n"+
		`  fix: write "runs.delete", or add the action to the catalog in a JSON file of the policy`+"\n"+
		"1 finding(s) at revision 0\n", out)

	_, stderr, code = cli(t, "", "lint", "--policy", dir, "--strict")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "1 finding(s) (--strict)")

	out, _, code = cli(t, "", "lint", "--policy", dir, "--data", conformance.DataFile())
	require.Equal(t, 0, code)
	var rep authz.LintReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Greater(t, len(rep.Findings), 1)
	require.Equal(t, authz.LintPolicyUnknownValue, rep.Findings[0].Code)
	require.Equal(t, file+":5:57", rep.Findings[0].Object)

	out, stderr, code = cli(t, "", "lint", "--policy", "../../examples/customrule/policy", "--strict")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, `{"findings":[],"revision":0}`+"\n", out)
}
