package rego_test

import (
	"os"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/rego"
)

// TestWarningsSkipAFunctionsBranchTheCallNeverTakes: a function that dispatches on a constant
// argument — a definition guarded by `kind == "role"`, or whose head holds "role" — is not
// checked with the arguments of a call passing another constant (ok("action", input.action)):
// that definition never runs for it, so its comparisons say nothing about the call. The call
// that does take the branch is still checked, and a misspelt value there still found.
func TestWarningsSkipAFunctionsBranchTheCallNeverTakes(t *testing.T) {
	t.Parallel()
	for name, src := range map[string]string{
		"guards": `ok(kind, x) if { kind == "action"; x == "runs.get" }

ok(kind, x) if { kind == "role"; x == "ownr" }`,
		"else": `ok(kind, x) := true if { kind == "action"; x == "runs.get" } else := true if { "role" = kind; x == "ownr" }`,
		"heads": `ok("action", x) if x == "runs.get"

ok("role", x) if x == "ownr"`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			src := "package teamgate.ext\n\n" + src + "\n\ndeny contains \"x\" if { ok(\"action\", input.action); ok(\"role\", input.subject.org_role) }\n"
			p, err := rego.New(t.Context(), []rego.Module{{Name: "x.rego", Source: src}})
			require.NoError(t, err)
			var got []string
			for _, w := range p.Warnings() {
				got = append(got, w.Message)
			}
			require.Equal(t, []string{`input.subject.org_role is compared with "ownr", which is not an org role (or none), so this comparison never holds; did you mean "owner"? (through teamgate.ext.ok called with it at x.rego:` + map[string]string{"guards": "7", "else": "5", "heads": "7"}[name] + `)`}, got)
		})
	}
}

// TestPlainOPARefusesDataThatChangesTheDefaults: plain `opa test` (README.md, "Testing a rule")
// loads an author's JSON data beside rego/data.json only when it adds to it: a file changing one
// of its values (here org_base.billing) is OPA's merge error, where teamgate merges it over the
// default data. README.md says so, so an author does not take the error for a broken policy.
func TestPlainOPARefusesDataThatChangesTheDefaults(t *testing.T) {
	t.Parallel()
	_, _, err := tester.LoadWithParserOptions([]string{"authz.rego", "data.json", "testing.rego", "../testdata/regression/policies/data-org-base"}, nil, ast.ParserOptions{RegoVersion: ast.RegoV1})
	require.ErrorContains(t, err, "merge error: conflicting values at data.teamgate.org_base.billing")
	_, _, err = tester.LoadWithParserOptions([]string{"authz.rego", "data.json", "testing.rego", "../examples/customrule/policy"}, nil, ast.ParserOptions{RegoVersion: ast.RegoV1})
	require.NoError(t, err, "data that only adds loads")
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	require.Contains(t, strings.Join(strings.Fields(string(readme)), " "), "a data file that changes a value of `rego/data.json` (an action's role, `org_base`) is a merge error under plain OPA")
}
