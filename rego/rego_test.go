package rego_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/rego"
)

func TestDefaultPolicyRegoTests(t *testing.T) {
	t.Parallel()
	results, err := rego.Test(t.Context(), rego.DefaultTests())
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(results), 15)
	for _, r := range results {
		require.True(t, r.Pass, "%s.%s failed %s", r.Package, r.Name, r.Error)
	}
}

func TestFailingAuthorTestIsReported(t *testing.T) {
	t.Parallel()
	results, err := rego.Test(t.Context(), []rego.Module{{Name: "x_test.rego", Source: "package x_test\n\ntest_fails if { 1 == 2 }\n"}})
	require.NoError(t, err)
	var failed []string
	for _, r := range results {
		if !r.Pass {
			failed = append(failed, r.Name)
		}
	}
	require.Equal(t, []string{"test_fails"}, failed)
}

func TestCompileErrorIsTyped(t *testing.T) {
	t.Parallel()
	_, err := rego.New(t.Context(), []rego.Module{{Name: "bad.rego", Source: "package x\n\nallow if {"}})
	var re *rego.Error
	require.ErrorAs(t, err, &re)
	require.Equal(t, "compile", re.Op)
}

func TestCatalogIsData(t *testing.T) {
	t.Parallel()
	p, err := rego.New(t.Context(), nil, map[string]any{"teamgate": map[string]any{"actions": map[string]any{
		"runs.export": map[string]any{"kind": "project", "role": "member"},
	}}})
	require.NoError(t, err)
	a, ok := p.Action("runs.export")
	require.True(t, ok)
	require.Equal(t, "member", a.Role)
	_, ok = p.Action("runs.get")
	require.True(t, ok, "author data merges over the default catalog")

	_, err = rego.New(t.Context(), nil, map[string]any{"teamgate": map[string]any{"actions": map[string]any{
		"x": map[string]any{"kind": "galaxy"},
	}}})
	require.ErrorContains(t, err, "galaxy")
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	p, err := rego.New(t.Context(), nil)
	require.NoError(t, err)
	require.True(t, p.Deterministic())
	for _, src := range []string{
		"package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"night\" if time.now_ns() > 0\n",
		"package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"x\" if {\n\tt := time.now_ns()\n\tt > 5\n}\n",
		"package teamgate.ext\n\nimport rego.v1\n\nallow contains \"lucky\" if rand.intn(\"x\", 10) == 3\n",
	} {
		p, err := rego.New(t.Context(), []rego.Module{{Name: "x.rego", Source: src}})
		require.NoError(t, err, src)
		require.False(t, p.Deterministic(), src)
	}
	p, err = rego.New(t.Context(), []rego.Module{{Name: "x.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"x\" if input.subject.id == \"bob\"\n"}})
	require.NoError(t, err)
	require.True(t, p.Deterministic())
}
