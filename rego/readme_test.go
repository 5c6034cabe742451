package rego_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

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
