package rego_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/rego"
)

// TestREADMEShowsTheExampleFiles: the worked rules and tests README.md shows are the files of
// examples/customrule/policy, each shown once and as it is; the tests pass, print, and test the
// rules (without any one rule file, a test fails).
func TestREADMEShowsTheExampleFiles(t *testing.T) {
	t.Parallel()
	const dir = "../examples/customrule/policy"
	raw, err := os.ReadFile("README.md")
	require.NoError(t, err)
	shown := map[string]string{} // file → the block after its link
	re := regexp.MustCompile("(?s)\\(\\.\\./examples/customrule/policy/([a-z_]+\\.rego)\\):\n\n```rego\n(.*?)```")
	for _, m := range re.FindAllStringSubmatch(string(raw), -1) {
		require.NotContains(t, shown, m[1], "README.md shows %s twice", m[1])
		shown[m[1]] = m[2]
	}
	mods, data, err := rego.LoadDir(dir)
	require.NoError(t, err)
	require.Empty(t, data)
	require.Len(t, shown, len(mods), "README.md shows every file of %s", dir)
	for _, m := range mods {
		name := filepath.Base(m.Name)
		require.Contains(t, shown, name)
		require.Equal(t, m.Source, shown[name], "README.md's %s is the file as it is", name)
	}

	run, err := rego.RunTests(t.Context(), mods, rego.TestOptions{})
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(run.Results), 10)
	printed := false
	for _, r := range run.Results {
		require.True(t, r.Pass(), "%s.%s: %v", r.Package, r.Name, r.Error)
		printed = printed || strings.Contains(string(r.Output), "ci-bot:")
	}
	require.True(t, printed, "print() output is captured")

	for _, m := range mods {
		if strings.HasSuffix(m.Name, "_test.rego") {
			continue
		}
		without := slices.DeleteFunc(slices.Clone(mods), func(o rego.Module) bool { return o.Name == m.Name })
		run, err := rego.RunTests(t.Context(), without, rego.TestOptions{})
		require.NoError(t, err)
		failed := slices.ContainsFunc(run.Results, func(r *tester.Result) bool { return !r.Pass() })
		require.True(t, failed, "without %s a test fails", m.Name)
	}
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
	// A built-in's error errors the test (OPA's runner sets Fail beside it, so the reporters said
	// FAIL on the test's line and ERROR in the summary); so does a conflict.
	t.Run("runtime errors are errors", func(t *testing.T) {
		run, err := rego.RunTests(t.Context(), []rego.Module{{Name: "e_test.rego", Source: "package e_test\n\n" +
			"test_builtin if to_number(\"x\") == 1\n\ntest_not_builtin if not to_number(\"x\") == 1\n\n" +
			"f(x) := 1 if x > 0\n\nf(x) := 2 if x > 1\n\ntest_conflict if f(5) == 1\n"}}, rego.TestOptions{})
		require.NoError(t, err)
		require.Len(t, run.Results, 3)
		for _, r := range run.Results {
			require.Error(t, r.Error, r.Name)
			require.False(t, r.Fail, r.Name)
			require.False(t, r.Pass(), r.Name)
		}
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
