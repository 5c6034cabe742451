package rego_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/rego"
)

// TestREADMEExampleTest runs the extension rule and its test from README.md's "Extending" and
// "Testing a rule" as written, so the documented example cannot rot.
func TestREADMEExampleTest(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("README.md")
	require.NoError(t, err)
	blocks := map[string]string{} // package → source
	for _, m := range regexp.MustCompile("(?s)```rego\n(package [^\n]+\n.*?)```").FindAllStringSubmatch(string(raw), -1) {
		pkg := strings.TrimPrefix(strings.SplitN(m[1], "\n", 2)[0], "package ")
		require.NotContains(t, blocks, pkg, "README.md has two %s examples", pkg)
		blocks[pkg] = m[1]
	}
	require.Contains(t, blocks, "teamgate.ext")
	require.Contains(t, blocks, "teamgate.ext_test")
	mods := []rego.Module{
		{Name: "archive.rego", Source: blocks["teamgate.ext"]},
		{Name: "archive_test.rego", Source: blocks["teamgate.ext_test"]},
	}
	run, err := rego.RunTests(t.Context(), mods, rego.TestOptions{})
	require.NoError(t, err)
	require.Len(t, run.Results, 3)
	for _, r := range run.Results {
		require.True(t, r.Pass(), "%s.%s: %v", r.Package, r.Name, r.Error)
		if r.Name == "test_archive_stays_readable" {
			require.Contains(t, string(r.Output), "decision:")
		}
	}

	// The tests test the rule: without it, the archive test fails.
	run, err = rego.RunTests(t.Context(), mods[1:], rego.TestOptions{Run: "test_archive_refuses"})
	require.NoError(t, err)
	require.Len(t, run.Results, 1)
	require.True(t, run.Results[0].Fail)
}

func TestRunTestsOptions(t *testing.T) {
	t.Parallel()
	mods := []rego.Module{{Name: "x_test.rego", Source: `package x_test

import data.teamgate.authz

test_pass if {
	print("hi")
	authz.decision.role == "none" with input as {"subject": {"id": "u", "org_role": "none", "grant": "", "team_roles": {}}, "action": "runs.get", "resource": {"kind": "project", "org": "o", "project": "p", "teams": [], "restricted": false, "exists": true}, "attributes": {}}
}

test_fail if {
	x := 1
	x == 2
}
`}}
	t.Run("bad filter", func(t *testing.T) {
		_, err := rego.RunTests(t.Context(), mods, rego.TestOptions{Run: "("})
		var re *rego.Error
		require.ErrorAs(t, err, &re)
		require.Contains(t, err.Error(), `test filter "("`)
	})
	t.Run("filter, output, location", func(t *testing.T) {
		run, err := rego.RunTests(t.Context(), mods, rego.TestOptions{Run: "test_pass$"})
		require.NoError(t, err)
		require.Len(t, run.Results, 1)
		r := run.Results[0]
		require.True(t, r.Pass())
		require.Equal(t, "hi\n", string(r.Output))
		require.Equal(t, "x_test.rego", r.Location.File)
		require.Equal(t, 5, r.Location.Row)
	})
	t.Run("trace names the failing expression", func(t *testing.T) {
		run, err := rego.RunTests(t.Context(), mods, rego.TestOptions{Run: "test_fail", Trace: true})
		require.NoError(t, err)
		require.Len(t, run.Results, 1)
		require.True(t, run.Results[0].Fail)
		require.NotEmpty(t, run.Results[0].Trace)
	})
	t.Run("coverage includes the default policy", func(t *testing.T) {
		opts := rego.TestOptions{Coverage: cover.New()}
		run, err := rego.RunTests(t.Context(), mods, opts)
		require.NoError(t, err)
		report := opts.Coverage.Report(run.Modules)
		require.Contains(t, report.Files, "teamgate/authz.rego")
		require.Positive(t, report.Files["teamgate/authz.rego"].CoveredLines)
	})
}
