package conformance

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSuiteRules: a suite's cases.yaml must say which path answers it (or that its policy does
// not load, and then hold no case), hold a case, give every case a note, give a message only
// with its reason and a budget only as a positive duration, and name its own data file (a .yaml
// path relative to its directory) for data_error and default_policy; data_error stands alone;
// the corpus's files may not use a suite's fields.
func TestSuiteRules(t *testing.T) {
	t.Parallel()
	const ok = "compiled: false\nauthorize:\n- {subject: bob, action: runs.get, resource: acme/vision, allowed: true, role: contributor, note: n}\n"
	for name, tc := range map[string]struct{ doc, err string }{
		"valid":               {ok, ""},
		"load error":          {"load_error: package x\n", ""},
		"compiled missing":    {"authorize:\n- {subject: bob, action: runs.get, resource: acme/vision, note: n}\n", "compiled is missing"},
		"no case":             {"compiled: true\n", "no case"},
		"load error, cases":   {"load_error: x\n" + ok[len("compiled: false\n"):], "neither cases, compiled nor budget"},
		"load error, path":    {"load_error: x\ncompiled: true\n", "neither cases, compiled nor budget"},
		"load error, budget":  {"load_error: x\nbudget: 20ms\n", "neither cases, compiled nor budget"},
		"budget":              {"budget: 20ms\n" + ok, ""},
		"budget zero":         {"budget: 0s\n" + ok, "budget 0s: must be positive"},
		"budget negative":     {"budget: -1s\n" + ok, "budget -1s: must be positive"},
		"budget not a time":   {"budget: soon\n" + ok, "soon"},
		"no note":             {"compiled: true\nlist:\n- {subject: bob, owner: acme, note: n}\n- {subject: bob, owner: acme}\n", "case 1 has no note"},
		"settings note":       {"compiled: true\nsettings:\n- {project: acme/vision}\n", "case 0 has no note"},
		"message, no reason":  {"compiled: true\nauthorize:\n- {subject: bob, action: runs.get, resource: acme/vision, message: m, note: n}\n", "a message needs its reason"},
		"data":                {"data: x.yaml\n" + ok, ""},
		"data, json":          {"data: x.json\n" + ok, "data x.json: a .yaml path relative"},
		"data, absolute":      {"data: /x.yaml\n" + ok, "data /x.yaml: a .yaml path relative"},
		"data error":          {"data: x.yaml\ndata_error: line 3\n", ""},
		"data error, no data": {"data_error: line 3\n", "need the suite's own data file"},
		"data error, cases":   {"data: x.yaml\ndata_error: x\n" + ok, "neither cases, compiled, budget, load_error nor default_policy"},
		"data error, load":    {"data: x.yaml\ndata_error: x\nload_error: y\n", "neither cases, compiled, budget, load_error nor default_policy"},
		"data error, default": {"data: x.yaml\ndata_error: x\ndefault_policy: true\n", "neither cases, compiled, budget, load_error nor default_policy"},
		"default policy":      {"data: x.yaml\ndefault_policy: true\n" + ok, ""},
		"default, no data":    {"default_policy: true\n" + ok, "need the suite's own data file"},
		"default, load error": {"data: x.yaml\ndefault_policy: true\nload_error: x\n", "the default policy loads"},
		"misspelt field":      {"compiled: true\nauthorize:\n- {subject: bob, action: runs.get, resource: acme/vision, mesage: m, note: n}\n", "field mesage not found"},
	} {
		c, err := decode(writeCases(t, tc.doc))
		if err == nil {
			s := Suite{Cases: *c}
			err = s.check()
		}
		if tc.err == "" {
			require.NoError(t, err, name)
			continue
		}
		require.ErrorContains(t, err, tc.err, name)
	}
	c, err := decode(writeCases(t, "budget: 20ms\n"+ok))
	require.NoError(t, err)
	require.Equal(t, 20*time.Millisecond, *c.Budget)
	suites, err := Suites()
	require.NoError(t, err)
	require.Equal(t, "corpus", suites[0].Name)
	require.True(t, suites[0].CompiledPath)
	require.Empty(t, suites[0].Policy)
	require.Equal(t, DataFile(), suites[0].Data)
	var own, defaults int
	for _, s := range suites[1:] {
		require.FileExists(t, s.Data, s.Name)
		if s.Data != DataFile() {
			own++
		}
		if s.DefaultPolicy || s.DataError != "" {
			defaults++
			require.Empty(t, s.Policy, s.Name)
			continue
		}
		require.DirExists(t, s.Policy, s.Name)
	}
	require.NotZero(t, own, "a suite on its own data file")
	require.NotZero(t, defaults, "a suite under the default policy")

	// resolve: the data file is the suite directory's; default_policy holds with no policy file
	// there and is refused beside one.
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "d.yaml"), []byte("orgs: []\n"), 0o600))
	s := Suite{Policy: dir, Cases: Cases{Data: "d.yaml", DefaultPolicy: true}}
	require.NoError(t, s.resolve(dir))
	require.Equal(t, filepath.Join(dir, "d.yaml"), s.Data)
	require.Empty(t, s.Policy)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "x.rego"), []byte("package teamgate.ext\n"), 0o600))
	s = Suite{Policy: dir, Cases: Cases{Data: "d.yaml", DefaultPolicy: true}}
	require.ErrorContains(t, s.resolve(dir), "default_policy or data_error, but the directory holds policy files")
	s = Suite{Policy: dir, Cases: Cases{Data: "missing.yaml"}}
	require.ErrorContains(t, s.resolve(dir), "data: ")
}

func writeCases(t *testing.T, doc string) string {
	file := filepath.Join(t.TempDir(), "cases.yaml")
	require.NoError(t, os.WriteFile(file, []byte(doc), 0o600))
	return file
}
