package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/conformance"
)

// overLimit is a valid YAML document whose last item lies past the first maxInputFile bytes: a
// reader that stopped at the limit would see a shorter, still valid document (first, then
// comments) and act on part of the input.
func overLimit(first, last string) string {
	var b strings.Builder
	b.Grow(maxInputFile + 2048)
	b.WriteString(first)
	pad := "#" + strings.Repeat("x", 1022) + "\n"
	for b.Len() <= maxInputFile {
		b.WriteString(pad)
	}
	b.WriteString(last)
	return b.String()
}

// TestStdinOverTheLimitIsRefused: a change, data or runs file read from the standard input
// ("-") is at most maxInputFile bytes; a longer one is an error naming the flag and the limit,
// and nothing is applied — never the part that fit, parsed as if it were the whole file (stop
// 23: `apply --changes -` applied the changes before the 64 MiB mark and printed success).
func TestStdinOverTheLimitIsRefused(t *testing.T) {
	t.Parallel()
	data := conformance.DataFile()
	changes := overLimit("- kind: put_member\n  change: {Org: acme, User: zoe, Role: member}\n",
		"- kind: put_member\n  change: {Org: acme, User: zack, Role: member}\n")
	file := overLimit("orgs:\n  - name: solo\n    members: {zoe: owner}\n", "users:\n  zoe: {}\n")
	runs := overLimit("- {uuid: run-1, project: vision, created_by: bob}\n", "- {uuid: run-2, project: vision, created_by: bob}\n")
	st := storeDir(t)
	before, stderr, code := cli(t, "", "export", "--store", st)
	require.Equal(t, 0, code, stderr)
	for _, tc := range []struct {
		flag, stdin string
		args        []string
	}{
		{"--changes", changes, []string{"apply", "--store", st, "--changes", "-"}},
		{"--file", file, []string{"apply", "--store", st, "--file", "-"}},
		{"--changes", changes, []string{"whatif", "--data", data, "--changes", "-"}},
		{"--runs", runs, []string{"bulk", "--data", data, "bob", "acme/engineering", "stop_runs", "--runs", "-"}},
	} {
		out, stderr, code := cli(t, tc.stdin, tc.args...)
		require.Equal(t, 1, code, "%v: %s", tc.args, out)
		require.Empty(t, out, tc.args)
		require.Equal(t, "teamgate: "+tc.flag+" -: more than 67108864 bytes (64 MiB) on the standard input: give a file instead\n", stderr, tc.args)
	}
	after, stderr, code := cli(t, "", "export", "--store", st)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, before, after, "nothing applied")
}

// TestMain runs the CLI's main instead of the tests when TEAMGATE_TEST_MAIN is set, so that a
// test can run the real process (its signals, its exit code) without building a binary.
func TestMain(m *testing.M) {
	if os.Getenv("TEAMGATE_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestClosedPipe: `teamgate check ... | head -1` — the reader goes away after one line. The
// process stops without a stack or a "broken pipe" message and exits 141 (128 + SIGPIPE, as a
// process killed by the signal, which is what shells and pipefail expect), but only after
// flushing its decision log: Go's default, death by SIGPIPE on the next write, lost every
// decision the command had made (stop 23).
//
// Not parallel: the child holds a copy of every descriptor of this process between its fork and
// its exec, Badger's directory lock among them, and a parallel test reopening a store it had just
// closed then found it "locked by another process" (a flake under load; store's tests wait for it
// in reopen). A test that is not parallel never runs beside the parallel ones.
func TestClosedPipe(t *testing.T) {
	var reqs strings.Builder
	for i := range 20000 { // far more output than a pipe buffers
		fmt.Fprintf(&reqs, `{"subject":"u%d","action":"runs.get","resource":"acme/vision"}`+"\n", i)
	}
	requests := writeFile(t, "reqs.jsonl", reqs.String())
	log := filepath.Join(t.TempDir(), "log")
	cmd := exec.Command(os.Args[0], "check", "--data", conformance.DataFile(), "--decision-log", log, "--requests", requests)
	cmd.Env = append(os.Environ(), "TEAMGATE_TEST_MAIN=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	first, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, first, `"allowed":false`)
	require.NoError(t, out.Close()) // head -1 exits
	err = cmd.Wait()
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "%v: %s", err, stderr.String())
	require.Equal(t, 141, ee.ExitCode(), "%v: %s", err, stderr.String())
	require.Empty(t, stderr.String())
	logged, lstderr, code := cli(t, "", "decisions", "--log", log)
	require.Equal(t, 0, code, lstderr)
	require.NotEmpty(t, lines(logged), "the decisions made before the pipe closed are in the log")
	require.Contains(t, lines(logged)[0], `"subject":"u0"`)
}

// TestTestJSONCoverageFailingIsJSON: `test --format json --coverage` prints JSON whether the
// tests pass or not. OPA's JSONCoverageReporter prints its pretty text instead when a test fails
// (as `opa test --format json --coverage` does), which a CI step parsing the output choked on;
// teamgate prints the JSON results then, as --format json without --coverage does, and says on
// stderr that the coverage is reported once every test passes.
func TestTestJSONCoverageFailingIsJSON(t *testing.T) {
	t.Parallel()
	dir := regoDir(t, map[string]string{"a_test.rego": passingTests, "b_test.rego": failingTests})
	out, stderr, code := cli(t, "", "test", "--format", "json", "--coverage", dir)
	require.Equal(t, 2, code, stderr)
	var results []struct {
		Name string `json:"name"`
		Fail bool   `json:"fail"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &results), out)
	require.Len(t, results, 3)
	failed := 0
	for _, r := range results {
		if r.Fail {
			failed++
		}
	}
	require.Equal(t, 1, failed, out)
	require.Equal(t, "teamgate: 1 of 3 Rego test(s) failed (no coverage report: it is printed once every test passes)\n", stderr)
	// Passing, the coverage report.
	out, stderr, code = cli(t, "", "test", "--format", "json", "--coverage", regoDir(t, map[string]string{"a_test.rego": passingTests}))
	require.Equal(t, 0, code, stderr)
	var report struct {
		Files    map[string]json.RawMessage `json:"files"`
		Coverage float64                    `json:"coverage"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &report), out)
	require.Contains(t, report.Files, "teamgate/authz.rego")
}

// TestEmptyPathFlagIsRefused: a path flag given an empty value (`--policy "$POLICY_DIR"` with
// the variable unset) is a usage error naming the flag, on every command, never the flag left
// out: `check --policy ""` decided by the default rules alone and `--decision-log ""` logged
// nothing, both silently (stop 23).
func TestEmptyPathFlagIsRefused(t *testing.T) {
	t.Parallel()
	data := conformance.DataFile()
	cases := map[string][]string{
		"teamgate --data":                    {"check", "--data", "", "bob", "runs.get", "acme/vision"},
		"teamgate --policy":                  {"check", "--data", data, "--policy", "", "alice", "runs.create", "acme/archive"},
		"teamgate --store":                   {"check", "--data", data, "--store", "", "bob", "runs.get", "acme/vision"},
		"teamgate --decision-log":            {"check", "--data", data, "--decision-log", "", "bob", "runs.get", "acme/vision"},
		"teamgate check --requests":          {"check", "--data", data, "--requests", ""},
		"teamgate admit --run":               {"admit", "--data", data, "bob", "acme/vision", "--run", ""},
		"teamgate admit --requests":          {"admit", "--data", data, "--requests", ""},
		"teamgate apply --changes":           {"apply", "--store", storeDir(t), "--changes", ""},
		"teamgate apply --file":              {"apply", "--store", storeDir(t), "--file", ""},
		"teamgate create-project --settings": {"create-project", "--store", storeDir(t), "alice", "acme", "newp", "--settings", ""},
		"teamgate bulk --runs":               {"bulk", "--data", data, "bob", "acme/engineering", "stop_runs", "--runs", ""},
		"teamgate whatif --changes":          {"whatif", "--data", data, "--changes", ""},
		"teamgate diff --policy":             {"diff", "--data", data, "--policy", ""},
		"teamgate diff --current-policy":     {"diff", "--data", data, "--policy", filepath.Join("..", "..", "testdata", "cli", "policies"), "--current-policy", ""},
		"teamgate decisions --log":           {"decisions", "--log", ""},
		"teamgate cluster serve --dir":       {"cluster", "serve", "--dir", ""},
	}
	keys := func(m map[string][]string) []string { return slices.Sorted(maps.Keys(m)) }
	require.Equal(t, slices.Sorted(maps.Keys(pathFlags())), keys(cases), "every path flag has a case")
	for name, args := range cases {
		flag := name[strings.LastIndex(name, " ")+1:]
		out, stderr, code := cli(t, "", args...)
		require.Equal(t, 2, code, "%v: %s%s", args, stderr, out)
		require.Empty(t, out, args)
		first, _, _ := strings.Cut(stderr, "\n")
		require.Contains(t, first, flag, "%v: the error names the flag", args) // or says it is required
	}
	for _, name := range []string{"teamgate --policy", "teamgate --decision-log", "teamgate --store", "teamgate create-project --settings", "teamgate diff --current-policy"} {
		flag := name[strings.LastIndex(name, " ")+1:]
		_, stderr, _ := cli(t, "", cases[name]...)
		require.True(t, strings.HasPrefix(stderr, "teamgate: "+flag+` "": an empty path (an unset variable?)`), "%v: %s", cases[name], stderr)
	}
}

// TestFlagGivenTwiceTakesTheLast: a single-valued flag given twice takes its last value (pflag's
// rule, README "The CLI"), in both the --flag=value and --flag value forms, before or after the
// command; --attr collects each.
func TestFlagGivenTwiceTakesTheLast(t *testing.T) {
	t.Parallel()
	data := conformance.DataFile()
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	out, stderr, code := cli(t, "", "--data="+missing, "check", "--data", data, "bob", "runs.get", "acme/vision")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, `"allowed":true`)
	_, stderr, code = cli(t, "", "check", "--data", data, "--data="+missing, "bob", "runs.get", "acme/vision")
	require.Equal(t, 1, code)
	require.Equal(t, "teamgate: --data "+missing+": no such file or directory\n", stderr)
	out, stderr, code = cli(t, "", "version", "--format=pretty", "--format", "json")
	require.Equal(t, 0, code, stderr)
	require.True(t, json.Valid([]byte(out)), out)
	out, stderr, code = cli(t, "", "check", "--data", data, "bob", "runs.delete", "acme/vision", "--attr", "run.status=done", "--attr=run.created_by=bob")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, `"allowed":true`, "bob deletes his own run: the second --attr counted")
}

// TestTestJSONPrintsLessThan: `test --format json` prints `<`, `>` and `&` as they are, like
// every other JSON the CLI prints — OPA's reporters escape them (\u003c), in a -v trace's values
// and the coverage report's.
func TestTestJSONPrintsLessThan(t *testing.T) {
	t.Parallel()
	dir := regoDir(t, map[string]string{"lt_test.rego": `package teamgate.ext_test

import rego.v1

test_lt if {
	x := "<&>"
	x == "<&>"
}

test_lt_fails if {
	x := "<&>"
	x == "<"
}
`})
	for _, args := range [][]string{
		{"test", "--format", "json", "-v", dir},
		{"test", "--format", "json", "--explain", "full", dir},
	} {
		out, stderr, code := cli(t, "", args...)
		require.Equal(t, 2, code, stderr)
		require.True(t, json.Valid([]byte(out)), out)
		require.Contains(t, out, `"<&>"`, args)
		require.NotContains(t, out, `\u003c`, args)
		require.NotContains(t, out, `\u0026`, args)
	}
}

// TestStoreFlagRefusesADecisionLog: --store naming a decision log (a Badger directory too) is an
// error, as --decision-log naming a store is: `export --store LOG` printed `{}` and
// `apply --store LOG` wrote a store into the log (stop 23).
func TestStoreFlagRefusesADecisionLog(t *testing.T) {
	t.Parallel()
	data := conformance.DataFile()
	log := filepath.Join(t.TempDir(), "log")
	_, stderr, code := cli(t, "", "check", "--data", data, "--decision-log", log, "bob", "runs.get", "acme/vision")
	require.Equal(t, 0, code, stderr)
	for _, args := range [][]string{
		{"export", "--store", log},
		{"apply", "--store", log, "--changes", filepath.Join("..", "..", "testdata", "cli", "changes.yaml")},
	} {
		out, stderr, code := cli(t, "", args...)
		require.Equal(t, 1, code, "%v: %s", args, out)
		require.Empty(t, out)
		require.Contains(t, stderr, "the directory holds other data, not a teamgate store", args)
	}
	out, stderr, code := cli(t, "", "decisions", "--log", log)
	require.Equal(t, 0, code, stderr)
	require.Len(t, lines(out), 1, "the log as it was")
}

// TestInputFileErrorsNameTheFlag: a --runs, --settings or --run file of the wrong types fails
// with the flag, the path and the line, as --changes and --file do (the flag was missing: stop 23).
func TestInputFileErrorsNameTheFlag(t *testing.T) {
	t.Parallel()
	data := conformance.DataFile()
	runs := writeFile(t, "runs.yaml", "- {uuid: run-1, project: vision}\n- {uuid: 5, project: [x]}\n")
	settings := writeFile(t, "settings.yaml", "queue: cpu/x\nqueues: 5\n")
	run := writeFile(t, "run.json", "{\"kind\": \"job\",\n \"queue\": 5}")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bulk", "--data", data, "bob", "acme/engineering", "stop_runs", "--runs", runs}, "--runs " + runs + ": line 2, column 4: [1].uuid: expected a string, got a number"},
		{[]string{"create-project", "--store", storeDir(t), "alice", "acme", "newp", "--settings", settings}, "--settings " + settings + ": line 2, column 1: queues: expected a list, got a number"},
		{[]string{"admit", "--data", data, "bob", "acme/vision", "--run", run}, "--run " + run + ": line 2, column 11: queue: expected a string, got a number"},
	} {
		_, stderr, _ := cli(t, "", tc.args...)
		require.Equal(t, "teamgate: "+tc.want+"\n", stderr, tc.args)
	}
}

// TestMistypedSubcommandIsAUsageError: `teamgate cluster sreve` (a subcommand mistyped) is a
// usage error (exit 2) with a suggestion, as `teamgate chek` is; cobra printed the group's help
// and exited 0, so a script's `cluster seeed ...` seeded nothing and went on (stop 23).
// `teamgate cluster` alone prints the help, exit 0.
func TestMistypedSubcommandIsAUsageError(t *testing.T) {
	t.Parallel()
	out, stderr, code := cli(t, "", "cluster", "seeed", "--nats", "nats://127.0.0.1:1", "--data", conformance.DataFile())
	require.Equal(t, 2, code, out)
	require.Empty(t, out)
	require.True(t, strings.HasPrefix(stderr, "teamgate: unknown command \"seeed\" for \"teamgate cluster\"\n\nDid you mean this?\n\tseed\n"), stderr)
	out, stderr, code = cli(t, "", "cluster")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "Available Commands:")
	_, stderr, code = cli(t, "", "chek")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "Did you mean this?\n\tcheck\n")
}

// nastyData is a data file of values YAML would read as other types unquoted (yes, null, 2024,
// 1e3, on), HTML characters, control characters in a message, labels, expiries with offsets.
const nastyData = `orgs:
  - name: acme
    queue: cpu/y
    default_presets: ["no", "null", "2024", "1e3", "0x10", "on"]
    members:
      "2024": owner
      "yes": member
      "null": viewer
      bob: member
    policies:
      - name: p
        queues: ["on", "off"]
        rules:
          - name: r
            expression: "run.resources.gpu <= 8 && 'a' != \"b\""
            message: "line1\nline2 <tab>\t é ✓ \u0000"
    teams:
      - name: t
        members: {"2024": admin, bob: {role: member, expires_at: "2030-01-01T00:00:00Z"}}
    projects:
      - name: p1
        teams: [t]
        labels: {approval: admin-only, example.com/tier: "123", x: "", "y": "true"}
        grants:
          "yes": {role: viewer, expires_at: "2031-01-01T00:00:00+02:00"}
          "null": {role: admin, queue: cpu/x}
users:
  "2024": {default_team: acme/t}
`

// TestExportApplyRoundTrip: what export prints (YAML or JSON) applied to an empty store exports
// byte for byte the same, for a file of values YAML would read as other types unquoted; a data
// file whose types are wrong, and a change file that fails at its second change, leave the store
// as it was (export before and after).
func TestExportApplyRoundTrip(t *testing.T) {
	t.Parallel()
	src := writeFile(t, "nasty.yaml", nastyData)
	for _, format := range []string{"pretty", "json"} {
		first, stderr, code := cli(t, "", "export", "--data", src, "--format", format)
		require.Equal(t, 0, code, stderr)
		st := filepath.Join(t.TempDir(), "store")
		_, stderr, code = cli(t, first, "apply", "--store", st, "--file", "-")
		require.Equal(t, 0, code, stderr)
		second, stderr, code := cli(t, "", "export", "--store", st, "--format", format)
		require.Equal(t, 0, code, stderr)
		require.Equal(t, first, second, format)
		require.Contains(t, first, "<= 8", format)
		third, stderr, code := cli(t, "", "export", "--data", writeFile(t, "again", first), "--format", format)
		require.Equal(t, 0, code, stderr)
		require.Equal(t, first, third, format)
	}
	st := storeDir(t)
	before, stderr, code := cli(t, "", "export", "--store", st)
	require.Equal(t, 0, code, stderr)
	wrong := writeFile(t, "wrong.yaml", "orgs:\n  - name: acme\n    members: {alice: owner}\n    projects:\n      - name: vision\n        teams: engineering\n")
	_, stderr, code = cli(t, "", "apply", "--store", st, "--file", wrong)
	require.Equal(t, 1, code)
	require.Equal(t, "teamgate: --file "+wrong+`: invalid data file "orgs[0].projects[0].teams": line 6, column 9: expected a list, got a string`+"\n", stderr)
	half := writeFile(t, "half.yaml", "- kind: put_member\n  change: {Org: acme, User: newbie, Role: member}\n- kind: put_team_member\n  change: {Org: acme, Team: nosuchteam, User: newbie, Role: member}\n")
	_, stderr, code = cli(t, "", "apply", "--store", st, "--changes", half)
	require.Equal(t, 1, code)
	require.Equal(t, "teamgate: --changes "+half+": change 1 (put_team_member): team acme/nosuchteam not found\n", stderr)
	after, stderr, code := cli(t, "", "export", "--store", st)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, before, after, "nothing applied")
}
