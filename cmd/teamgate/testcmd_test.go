package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/conformance"
)

// regoDir writes files (name → source) into a fresh directory.
func regoDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600))
	}
	return dir
}

const (
	passingTests = `package teamgate.ext_test

import rego.v1

import data.teamgate.authz

test_owner_reads if {
	print("owner decision:", authz.decision.allow)
	authz.decision.allow with input as {"subject": {"id": "a", "org_role": "owner", "grant": "", "team_roles": {}}, "action": "org.get", "resource": {"kind": "org", "org": "acme", "exists": true}, "attributes": {}}
}

test_arith if {
	1 + 1 == 2
}
`
	failingTests = `package b_test

import rego.v1

test_fails if {
	x := 2
	print("x is", x)
	x == 3
}
`
	// Tests that error at runtime, as against one that fails: a conflict and a built-in error.
	erroringTests = `package e_test

import rego.v1

f(x) := 1 if x > 0

f(x) := 2 if x > 1

test_conflict if f(5) == 1

test_builtin_error if {
	to_number("x") == 1
}
`
	skippedTests = `package s_test

import rego.v1

todo_test_later if false

test_now if true
`
)

func TestTestCommandFlags(t *testing.T) {
	t.Parallel()
	pass := regoDir(t, map[string]string{"ok_test.rego": passingTests})
	fail := regoDir(t, map[string]string{"bad_test.rego": failingTests})
	errs := regoDir(t, map[string]string{"err_test.rego": erroringTests})
	skip := regoDir(t, map[string]string{"skip_test.rego": skippedTests})
	wrongPkg := regoDir(t, map[string]string{"x.rego": "package foo\n\nallow := true\n"})
	slow := regoDir(t, map[string]string{"slow_test.rego": "package slow_test\n\nimport rego.v1\n\ntest_slow if count([x | some x in numbers.range(1, 5000); x % 7 == 0]) > 0\n"})
	cases := []struct {
		name           string
		args           []string
		code           int
		want           []string // substrings of stdout
		wantNot        []string
		stderrIs       string
		stderrContains string
	}{
		{name: "pass", args: []string{"test", pass}, want: []string{"PASS: 2/2"}, wantNot: []string{"test_arith"}},
		{name: "default policy's tests", args: []string{"test"}, want: []string{"PASS: "}, wantNot: []string{"FAIL"}},
		{name: "fail names file:line, the failing expression, the duration and print output", args: []string{"test", fail}, code: 2,
			want: []string{filepath.Join(fail, "bad_test.rego") + ":5:", "data.b_test.test_fails: FAIL (", filepath.Join(fail, "bad_test.rego") + ":8:",
				"x == 3", "  x is 2\n", "FAIL: 1/1"},
			stderrIs: "teamgate: 1 of 1 Rego test(s) failed\n"},
		// As opa test: a failing test exits 2 (a load or compile error 1); -v's trace of a failure
		// is OPA's default explanation (the failing lineage: Enter, Fail and Note events), not
		// every step of the evaluation.
		{name: "-v trace is the failing lineage", args: []string{"test", "-v", fail}, code: 2,
			want: []string{"| | Fail x = 3", "| Fail data.b_test.test_fails = _", "x == 3"}, wantNot: []string{"Eval x = 2", "Unify", "Redo"}},
		{name: "--explain full", args: []string{"test", "--explain", "full", fail}, code: 2,
			want: []string{"| | Eval x = 2", "| | Fail x = 3", "x is 2"}},
		// As opa test --var-values: the failing expression with its variables' values, here the
		// decision whose reasons say why (through the test helper, a custom built-in's module).
		{name: "--var-values", args: []string{"test", "--var-values", fail, regoDir(t, map[string]string{"d_test.rego": `package d_test

import rego.v1

import data.teamgate.authz
import data.teamgate.testing

test_viewer_deletes if {
	d := authz.decision with input as testing.input_for({"org_role": "viewer"}, "runs.delete", {})
	d.allow
}
`})}, code: 2,
			want: []string{"    \tx == 3\n    \t|\n    \t2\n", "d_test.rego:10:\n    \td.allow\n    \t|\n    \td.allow: false\n    \td: {\"allow\": false, \"reasons\": [{\"code\": \"insufficient_role\"}]", "FAIL: 2/2"}},
		{name: "--explain fails", args: []string{"test", "--explain", "fails", fail}, code: 2, want: []string{"| | Fail x = 3", "x == 3"}, wantNot: []string{"Eval"}},
		{name: "--explain bogus", args: []string{"test", "--explain", "notes", fail}, code: 2, wantNot: []string{"FAIL"}, stderrContains: "--explain"},
		{name: "runtime errors are errors, not failures", args: []string{"test", errs}, code: 2,
			want:    []string{"data.e_test.test_conflict: ERROR (", "eval_conflict_error", "data.e_test.test_builtin_error: ERROR (", "eval_builtin_error: to_number", "ERROR: 2/2"},
			wantNot: []string{"FAIL"}, stderrIs: "teamgate: 2 of 2 Rego test(s) failed\n"},
		{name: "a skipped test fails the run", args: []string{"test", skip}, code: 2,
			want: []string{"data.s_test.todo_test_later: SKIPPED", "PASS: 1/2", "SKIPPED: 1/2"}, stderrIs: "teamgate: 1 of 2 Rego test(s) skipped (--exit-zero-on-skipped passes them)\n"},
		{name: "-z passes skipped tests", args: []string{"test", "-z", skip}, want: []string{"SKIPPED: 1/2"}},
		{name: "a test file that does not parse", args: []string{"test", pass, regoDir(t, map[string]string{"syn_test.rego": "package syn_test\n\ntest_x if {\n\t1 +\n}\n"})}, code: 1,
			wantNot: []string{"PASS"}, stderrContains: "syn_test.rego:5: rego_parse_error: unexpected } token\n\t}\n\t^\n"},
		// As opa test, a compile error shows OPA's context: here the field the object has.
		{name: "a test that does not compile", args: []string{"test", regoDir(t, map[string]string{"t_test.rego": "package t_test\n\nimport rego.v1\n\ntest_x if {\n\ty := {\"a\": 1}\n\ty.b == 1\n}\n"})}, code: 1,
			stderrContains: "t_test.rego:7: rego_type_error: undefined ref: y.b\n\ty.b\n\t  ^\n\t  have: \"b\"\n\t  want (one of): [\"a\"]\n"},
		{name: "two paths", args: []string{"test", pass, fail}, code: 2, want: []string{"PASS: 2/3", "FAIL: 1/3"}},
		{name: "--run filters", args: []string{"test", "--run", "arith", pass, fail}, want: []string{"PASS: 1/1"}, wantNot: []string{"FAIL"}},
		{name: "--run matches nothing", args: []string{"test", "--run", "nope", pass}, code: 1, stderrIs: "teamgate: no tests matched\n"},
		{name: "--run bad regex", args: []string{"test", "--run", "(", pass}, code: 1, wantNot: []string{"PASS"}, stderrContains: `test filter "(" is not a regular expression`},
		{name: "-v shows every test, durations and print output", args: []string{"test", "-v", pass},
			want: []string{"data.teamgate.ext_test.test_arith: PASS (", "data.teamgate.ext_test.test_owner_reads: PASS (", "owner decision:"}},
		{name: "print output hidden without -v", args: []string{"test", pass}, wantNot: []string{"owner decision:"}},
		{name: "--coverage", args: []string{"test", "--coverage", pass},
			want: []string{"COVERAGE:", "teamgate/authz.rego: ", "% (", "total: "}},
		{name: "module in the wrong package", args: []string{"test", pass, wrongPkg}, code: 1,
			stderrContains: filepath.Join(wrongPkg, "x.rego") + ":1: package foo is not allowed"},
		{name: "--format bogus", args: []string{"test", "--format", "xml", pass}, code: 2},
		// A test past its time budget errors (a runaway one does not hang the run): 5,000 traced
		// iterations pass within the default 5 s (in about 0.1 s) and never within 1 ms.
		{name: "--timeout", args: []string{"test", "--timeout", "1ms", slow}, code: 2,
			want: []string{"data.slow_test.test_slow: ERROR (", "eval_cancel_error", "ERROR: 1/1"}},
		{name: "default timeout", args: []string{"test", slow}, want: []string{"PASS: 1/1"}},
		{name: "--timeout negative", args: []string{"test", "--timeout", "-1s", pass}, code: 2},
		// An empty directory (or one without modules or data) is a mistake, not the default tests.
		{name: "empty directory", args: []string{"test", t.TempDir()}, code: 1, wantNot: []string{"PASS"}, stderrContains: "holds no .rego module or .json data file"},
		{name: "directory without policy files", args: []string{"test", pass, regoDir(t, map[string]string{"notes.txt": "x"})}, code: 1,
			wantNot: []string{"PASS"}, stderrContains: "holds no .rego module or .json data file"},
		// As opa test: a file two paths reach is loaded once.
		{name: "a directory and a file in it", args: []string{"test", pass, filepath.Join(pass, "ok_test.rego")}, want: []string{"PASS: 2/2"}},
		{name: "one directory spelt two ways", args: []string{"test", pass, pass + "/./", fail}, code: 2, want: []string{"PASS: 2/3"}},
		{name: "missing path", args: []string{"test", filepath.Join(pass, "nope")}, code: 1, stderrContains: "no such file or directory"},
		{name: "data alone runs the default tests on it", args: []string{"test", regoDir(t, map[string]string{"data.json": `{"mycompany": {"x": 1}}`})},
			want: []string{"PASS: "}, wantNot: []string{"FAIL"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out, stderr, code := cli(t, "", c.args...)
			require.Equal(t, c.code, code, stderr+out)
			for _, w := range c.want {
				require.Contains(t, out, w)
			}
			for _, w := range c.wantNot {
				require.NotContains(t, out, w)
			}
			require.Contains(t, stderr, c.stderrContains)
			if c.stderrIs != "" {
				require.Equal(t, c.stderrIs, stderr)
			}
		})
	}
}

func TestTestCommandCoveragePercent(t *testing.T) {
	t.Parallel()
	out, stderr, code := cli(t, "", "test", "--coverage")
	require.Equal(t, 0, code, stderr)
	// The default policy's own tests cover a real share of it.
	m := regexp.MustCompile(`teamgate/authz\.rego: (\d+\.\d)% \((\d+) of (\d+) lines\)`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	require.NotEqual(t, "0.0", m[1])
	require.NotEqual(t, "0", m[2])
}

func TestTestCommandJSON(t *testing.T) {
	t.Parallel()
	pass := regoDir(t, map[string]string{"ok_test.rego": passingTests})
	fail := regoDir(t, map[string]string{"bad_test.rego": failingTests})

	out, stderr, code := cli(t, "", "test", "--format", "json", pass, fail)
	require.Equal(t, 2, code, stderr)
	var results []struct {
		Location struct {
			File string `json:"file"`
			Row  int    `json:"row"`
		} `json:"location"`
		Package  string `json:"package"`
		Name     string `json:"name"`
		Fail     bool   `json:"fail"`
		Duration int64  `json:"duration"`
		Output   []byte `json:"output"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &results), out)
	require.Len(t, results, 3)
	byName := map[string]int{}
	for i, r := range results {
		byName[r.Package+"."+r.Name] = i
		require.Positive(t, r.Duration)
	}
	bad := results[byName["data.b_test.test_fails"]]
	require.True(t, bad.Fail)
	require.Equal(t, filepath.Join(fail, "bad_test.rego"), bad.Location.File)
	require.Equal(t, 5, bad.Location.Row)
	require.Contains(t, string(results[byName["data.teamgate.ext_test.test_owner_reads"]].Output), "owner decision:")

	// A consumer of opa test --format json reads ours with OPA's own decoder (tester.Result):
	// a pass, a failure, a runtime error and a skipped test, each as OPA reports it.
	errs := regoDir(t, map[string]string{"err_test.rego": erroringTests, "skip_test.rego": skippedTests})
	out, stderr, code = cli(t, "", "test", "--format", "json", pass, fail, errs)
	require.Equal(t, 2, code, stderr)
	var decoded []*tester.Result
	require.NoError(t, json.Unmarshal([]byte(out), &decoded), out)
	outcome := map[string]string{}
	for _, r := range decoded {
		switch {
		case r.Pass():
			outcome[r.Name] = "pass"
		case r.Skip:
			outcome[r.Name] = "skip"
		case r.Error != nil:
			code := regexp.MustCompile(`eval_[a-z_]+_error`).FindString(r.Error.Error())
			outcome[r.Name] = "error: " + code
		case r.Fail:
			outcome[r.Name] = "fail"
		}
	}
	require.Equal(t, map[string]string{"test_owner_reads": "pass", "test_arith": "pass", "test_fails": "fail",
		"test_conflict": "error: eval_conflict_error", "test_builtin_error": "error: eval_builtin_error",
		"todo_test_later": "skip", "test_now": "pass"}, outcome)

	// With -v, each failure's trace as opa test -v gives it: the failing lineage (Enter, Fail).
	out, stderr, code = cli(t, "", "test", "--format", "json", "-v", fail)
	require.Equal(t, 2, code, stderr)
	var traced []struct {
		Trace []struct {
			Op string `json:"Op"`
		} `json:"trace"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &traced), out)
	require.Len(t, traced, 1)
	ops := map[string]int{}
	for _, e := range traced[0].Trace {
		ops[e.Op]++
	}
	require.Equal(t, map[string]int{"Enter": 2, "Fail": 2}, ops)
	// So with --var-values (opa test keeps the failures' lineage of every trace it records).
	out, stderr, code = cli(t, "", "test", "--format", "json", "--var-values", fail)
	require.Equal(t, 2, code, stderr)
	require.NoError(t, json.Unmarshal([]byte(out), &traced), out)
	require.Len(t, traced, 1)
	clear(ops)
	for _, e := range traced[0].Trace {
		ops[e.Op]++
	}
	require.Equal(t, map[string]int{"Enter": 2, "Fail": 2}, ops)

	// With --coverage, OPA's coverage report, the default policy included.
	out, stderr, code = cli(t, "", "test", "--format", "json", "--coverage", pass)
	require.Equal(t, 0, code, stderr)
	var report struct {
		Files    map[string]json.RawMessage `json:"files"`
		Coverage float64                    `json:"coverage"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &report), out)
	require.Contains(t, report.Files, "teamgate/authz.rego")
	require.Positive(t, report.Coverage)
	// OPA's report, read with OPA's type: ranges, and the kinds of opa test's supplementary
	// passes (a condition rule indexing skipped).
	var opaReport cover.Report
	require.NoError(t, json.Unmarshal([]byte(out), &opaReport), out)
	authz := opaReport.Files["teamgate/authz.rego"]
	require.NotEmpty(t, authz.Covered)
	require.True(t, slices.ContainsFunc(authz.NotCovered, func(r cover.Range) bool { return slices.Contains(r.Kinds, cover.KindIndexExcluded) }))
}

// TestPolicyPathThroughSymlink: --policy and test PATHs reached through a symbolic link (a
// mounted volume, a "current" link) are read: before, the link was skipped, so check decided
// without the author's deny (fail open) and test found nothing.
func TestPolicyPathThroughSymlink(t *testing.T) {
	t.Parallel()
	link := filepath.Join(t.TempDir(), "policy")
	abs, err := filepath.Abs("../../testdata/cli/policies")
	require.NoError(t, err)
	require.NoError(t, os.Symlink(abs, link))
	out, stderr, code := cli(t, "", "check", "--data", conformance.DataFile(), "--policy", link, "alice", "runs.create", "acme/archive")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, `"code":"extension_deny"`)
	out, stderr, code = cli(t, "", "test", link)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "PASS: 2/2")
	_, stderr, code = cli(t, "", "check", "--data", conformance.DataFile(), "--policy", t.TempDir(), "alice", "runs.create", "acme/archive")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "holds no .rego module or .json data file")
}

// TestTestCommandPrintsWarnings: `teamgate test` prints the policy modules' warnings (a rule that
// can never fire, with its file:line:col and the nearest action) on stderr, and they do not fail
// a run whose tests pass.
func TestTestCommandPrintsWarnings(t *testing.T) {
	t.Parallel()
	dir := regoDir(t, map[string]string{
		"freeze.rego": "package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"frozen\" if input.action == \"runs.delte\"\n",
		"freeze_test.rego": "package teamgate.ext_test\n\nimport rego.v1\n\nimport data.teamgate.authz\nimport data.teamgate.testing\n\n" +
			"test_owner_deletes if authz.decision.allow with input as testing.input_for({\"org_role\": \"owner\"}, \"runs.delete\", {})\n",
	})
	out, stderr, code := cli(t, "", "test", dir)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "PASS: 1/1")
	require.Equal(t, "teamgate: warning: "+filepath.Join(dir, "freeze.rego")+`:5:43: input.action is compared with "runs.delte", which is not an action of the catalog (data.teamgate.actions), so this comparison never holds; did you mean "runs.delete"? (write "runs.delete", or add the action to the catalog in a JSON file of the policy)`+"\n", stderr)
}

// TestRegoReadmeShowsAFailure: rego/README.md's failing run (the worked rules' tests without
// friday.rego) prints what it shows — file:line, the failing expression, the counts — with the
// stderr line and exit code it names. Durations differ from run to run.
func TestRegoReadmeShowsAFailure(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../rego/README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(raw), "Without `friday.rego`\n(`teamgate ")
	require.True(t, ok)
	command, rest, ok := strings.Cut(rest, "`):\n\n```\n")
	require.True(t, ok)
	block, rest, ok := strings.Cut(rest, "```\n")
	require.True(t, ok)
	require.True(t, strings.HasPrefix(rest, "\nand on stderr `teamgate: 1 of 10 Rego test(s) failed`. As `opa test`, the command exits **2**"), rest[:80])
	args := strings.Fields(command)
	require.Equal(t, "test", args[0])
	for i := range args[1:] {
		args[1+i] = "../../" + args[1+i]
	}
	out, stderr, code := cli(t, "", args...)
	require.Equal(t, 2, code, stderr)
	require.Equal(t, "teamgate: 1 of 10 Rego test(s) failed\n", stderr)
	shown := regexp.MustCompile(`\(\d+(\.\d+)?(ns|µs|ms|s)\)`).ReplaceAllString(block, "(...)")
	require.True(t, shows(strings.ReplaceAll(out, "../../", ""), strings.Split(shown, "\n")), "rego/README.md shows\n%s\nbut it prints\n%s", block, out)
}
