package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/store"
)

// cli runs the CLI in-process and returns stdout, stderr and the exit code.
func cli(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(t.Context(), args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// suites loads the corpus and the policy suites (internal/conformance).
func suites(t *testing.T) []conformance.Suite {
	t.Helper()
	all, err := conformance.Suites()
	require.NoError(t, err)
	require.Greater(t, len(all), 1, "the corpus and at least one policy suite")
	return all
}

// suiteFlags are the flags that run a command on the suite's data, policy and evaluation budget.
func suiteFlags(s conformance.Suite) []string {
	flags := []string{"--data", s.Data}
	if s.Policy != "" {
		flags = append(flags, "--policy", s.Policy)
	}
	if s.Budget != nil {
		flags = append(flags, "--eval-budget", s.Budget.String())
	}
	return flags
}

// TestConformanceAuthorizeThroughCLIBatch runs every suite's authorize cases through `teamgate
// check --requests -` (with --policy for a policy suite) and checks the CLI says what the Go API
// says, messages byte for byte. A suite whose policy or data file must not load fails the command
// with its error.
func TestConformanceAuthorizeThroughCLIBatch(t *testing.T) {
	t.Parallel()
	for _, s := range suites(t) {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			if s.LoadError != "" || s.DataError != "" {
				_, stderr, code := cli(t, "", append([]string{"check"}, append(suiteFlags(s), "alice", "org.get", "acme")...)...)
				require.Equal(t, 1, code)
				require.Contains(t, stderr, s.LoadError+s.DataError) // one of them is ""
				return
			}
			checkAuthorizeThroughCLI(t, s)
		})
	}
}

func checkAuthorizeThroughCLI(t *testing.T, s conformance.Suite) {
	t.Helper()
	var in bytes.Buffer
	for _, c := range s.Authorize {
		require.NoError(t, json.NewEncoder(&in).Encode(map[string]any{
			"subject": c.Subject, "action": c.Action, "resource": c.Resource, "attributes": c.Attributes,
		}))
	}
	out, stderr, code := cli(t, in.String(), append([]string{"check", "--requests", "-"}, suiteFlags(s)...)...)
	require.Equal(t, 0, code, stderr)
	got := lines(out)
	require.Len(t, got, len(s.Authorize))
	opts := []authz.Option{}
	if s.Policy != "" {
		opts = append(opts, authz.WithPolicyDir(s.Policy))
	}
	if s.Budget != nil {
		opts = append(opts, authz.WithEvalBudget(*s.Budget))
	}
	api, err := authz.New(t.Context(), s.OpenStore(t, store.Options{}), opts...)
	require.NoError(t, err)
	for i, c := range s.Authorize {
		var d struct {
			Allowed *bool  `json:"allowed"`
			Role    string `json:"role"`
			Reasons []struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"reasons"`
			Error *string `json:"error"`
		}
		require.NoError(t, json.Unmarshal([]byte(got[i]), &d), got[i])
		require.NotNil(t, d.Allowed, got[i])
		require.NotNil(t, d.Reasons, "reasons is [] not null: %s", got[i])
		if c.Error {
			require.NotNil(t, d.Error, "case %d: %s", i, got[i])
			require.False(t, *d.Allowed)
			continue
		}
		require.Nil(t, d.Error, "case %d: %s", i, got[i])
		require.Equal(t, c.Allowed, *d.Allowed, "case %d %+v: %s", i, c, got[i])
		require.Equal(t, c.Role, d.Role, "case %d %+v: %s", i, c, got[i])
		if c.Reason != "" {
			var codes, reasons []string
			for _, r := range d.Reasons {
				codes = append(codes, r.Code)
				reasons = append(reasons, r.Code+": "+r.Message)
				require.NotEmpty(t, r.Message)
			}
			require.Contains(t, codes, c.Reason, "case %d: %s", i, got[i])
			if c.Message != "" {
				require.Contains(t, reasons, c.Reason+": "+c.Message, "case %d: %s", i, got[i])
			}
		}
		// The CLI says what the Go API says, messages byte for byte.
		want, err := api.Authorize(t.Context(), authz.Request{Subject: c.Subject, Action: c.Action, Resource: c.Resource, Attributes: c.Attributes})
		require.NoError(t, err)
		require.Len(t, d.Reasons, len(want.Reasons), "case %d: %s", i, got[i])
		for j, r := range want.Reasons {
			require.Equal(t, string(r.Code), d.Reasons[j].Code, "case %d: %s", i, got[i])
			require.Equal(t, r.Message, d.Reasons[j].Message, "case %d: %s", i, got[i])
		}
	}
}

func TestConformanceAdmitThroughCLIBatch(t *testing.T) {
	t.Parallel()
	n := 0
	for _, s := range suites(t) {
		if len(s.Admit) == 0 {
			continue
		}
		n += len(s.Admit)
		var in bytes.Buffer
		for _, c := range s.Admit {
			require.NoError(t, json.NewEncoder(&in).Encode(map[string]any{"subject": c.Subject, "project": c.Project, "run": c.Run}))
		}
		out, stderr, code := cli(t, in.String(), append([]string{"admit", "--requests", "-"}, suiteFlags(s)...)...)
		require.Equal(t, 0, code, stderr)
		got := lines(out)
		require.Len(t, got, len(s.Admit))
		for i, c := range s.Admit {
			var a struct {
				Allowed    bool     `json:"allowed"`
				Queue      string   `json:"queue"`
				Presets    []string `json:"presets"`
				Violations []struct {
					Field string `json:"field"`
				} `json:"violations"`
				Error *string `json:"error"`
			}
			require.NoError(t, json.Unmarshal([]byte(got[i]), &a))
			require.Nil(t, a.Error, got[i])
			require.Equal(t, c.Allowed, a.Allowed, "%s case %d: %s", s.Name, i, got[i])
			require.Equal(t, c.Queue, a.Queue, "%s case %d: %s", s.Name, i, got[i])
			want := c.Presets
			if want == nil {
				want = []string{}
			}
			require.Equal(t, want, a.Presets, "%s case %d: %s", s.Name, i, got[i])
			fields := []string{}
			for _, v := range a.Violations {
				fields = append(fields, v.Field)
			}
			wantV := c.Violations
			if wantV == nil {
				wantV = []string{}
			}
			require.ElementsMatch(t, wantV, fields, "%s case %d: %s", s.Name, i, got[i])
		}
	}
	require.NotZero(t, n)
}

func TestConformanceListThroughCLI(t *testing.T) {
	t.Parallel()
	n := 0
	for _, s := range suites(t) {
		n += len(s.List)
		for _, c := range s.List {
			out, stderr, code := cli(t, "", append(append([]string{"list"}, suiteFlags(s)...), c.Subject, c.Owner)...)
			require.Equal(t, 0, code, stderr)
			var got []string
			require.NoError(t, json.Unmarshal([]byte(out), &got))
			want := c.Projects
			if want == nil {
				want = []string{}
			}
			require.Equal(t, want, got, "%s %s %q", s.Name, c.Subject, c.Owner)
			require.NotEqual(t, "null\n", out)
		}
	}
	require.NotZero(t, n)
}

func TestConformanceSettingsThroughCLI(t *testing.T) {
	t.Parallel()
	n := 0
	for _, s := range suites(t) {
		n += len(s.Settings)
		for _, c := range s.Settings {
			args := append(append([]string{"settings"}, suiteFlags(s)...), c.Project)
			if c.User != "" {
				args = append(args, "--user", c.User)
			}
			out, stderr, code := cli(t, "", args...)
			require.Equal(t, 0, code, stderr)
			conformance.CheckSettings(t, c, []byte(out))
		}
	}
	require.NotZero(t, n)
}

func TestCheckSingleWithAttributes(t *testing.T) {
	t.Parallel()
	out, _, code := cli(t, "", "check", "--data", conformance.DataFile(), "bob", "runs.delete", "acme/vision", "--attr", "run.created_by=bob")
	require.Equal(t, 0, code)
	require.Contains(t, out, `"code":"own_run"`)
	out, _, code = cli(t, "", "check", "--data", conformance.DataFile(), "--owner", "acme/engineering", "bob", "runs.get", "vision")
	require.Equal(t, 0, code)
	require.Contains(t, out, `"allowed":true`)
	// An invalid request is answered on its line, exit 0.
	out, stderr, code := cli(t, "", "check", "--data", conformance.DataFile(), "bob", "runs.explode", "acme/vision")
	require.Equal(t, 0, code)
	require.Contains(t, out, `"error":"invalid action \"runs.explode\"`)
	require.Contains(t, stderr, "runs.explode", "the error is also shown to people")
}

func TestCheckBatchBadLineGoesOn(t *testing.T) {
	t.Parallel()
	in := `{"subject":"bob","action":"runs.get","resource":"acme/vision"}
not json
{"subject":"bob","action":"runs.get","resource":"acme/vision","colour":"red"}
{"subject":"alice","action":"org.delete","resource":"acme"}
`
	out, _, code := cli(t, in, "check", "--data", conformance.DataFile(), "--requests", "-")
	require.Equal(t, 0, code)
	got := lines(out)
	require.Len(t, got, 4)
	require.Contains(t, got[0], `"allowed":true`)
	require.Contains(t, got[1], `"error":"bad request: line 2, column 2: not JSON`)
	require.Contains(t, got[2], `line 3, column 63: colour: unknown key`)
	require.Contains(t, got[3], `"allowed":true`)
}

// TestRequestLinesRefuseAmbiguousKeys: a request line with a duplicate, case-variant or unknown
// key is answered on its line with an error naming the key and the line, never decided (for
// another subject, say), and the lines after it go on.
func TestRequestLinesRefuseAmbiguousKeys(t *testing.T) {
	t.Parallel()
	valid := `{"subject":"alice","action":"org.delete","resource":"acme"}`
	for _, tc := range []struct{ name, line, want string }{
		{"case variant decides for another user", `{"subject":"bob","action":"org.delete","resource":"acme","Subject":"alice"}`, `line 2, column 58: Subject: unknown key`},
		{"duplicate subject", `{"subject":"bob","action":"org.delete","resource":"acme","subject":"alice"}`, `line 2, column 58: subject: duplicate key`},
		{"duplicate action", `{"action":"org.get","subject":"bob","action":"org.delete","resource":"acme"}`, `line 2, column 37: action: duplicate key`},
		{"duplicate attribute", `{"subject":"bob","action":"runs.delete","resource":"acme/vision","attributes":{"run":{"created_by":"alice","created_by":"bob"}}}`, `attributes.run.created_by: duplicate key`},
		{"unknown key", `{"subject":"bob","action":"org.delete","resource":"acme","onwer":"acme"}`, `onwer: unknown key`},
		{"wrong type", `{"subject":["alice"],"action":"org.delete","resource":"acme"}`, `subject: expected a string, got a list`},
		{"fraction for an integer", `{"subject":"bob","action":"org.get","resource":"acme","min_revision":1.5}`, `min_revision: expected an integer, got the number 1.5`},
	} {
		out, stderr, code := cli(t, valid+"\n"+tc.line+"\n"+valid+"\n", "check", "--data", conformance.DataFile(), "--requests", "-")
		require.Equal(t, 0, code, stderr)
		got := lines(out)
		require.Len(t, got, 3, tc.name)
		var d struct {
			Allowed bool    `json:"allowed"`
			Error   *string `json:"error"`
		}
		require.NoError(t, json.Unmarshal([]byte(got[1]), &d))
		require.False(t, d.Allowed, tc.name)
		require.NotNil(t, d.Error, tc.name)
		require.Contains(t, *d.Error, tc.want, tc.name)
		require.Contains(t, *d.Error, "line 2", tc.name)
		require.Contains(t, got[2], `"allowed":true`, "%s: the run goes on", tc.name)
	}
}

// TestAdmitInputsRefuseAmbiguousKeys: admission request lines and --run files follow the same
// rules, inside the run too.
func TestAdmitInputsRefuseAmbiguousKeys(t *testing.T) {
	t.Parallel()
	valid := `{"subject":"bob","project":"acme/vision","run":{"kind":"job","queue":"gpu/a100"}}`
	for _, tc := range []struct{ name, line, want string }{
		{"duplicate kind", `{"subject":"bob","project":"acme/vision","run":{"kind":"job","kind":"service"}}`, `run.kind: duplicate key`},
		{"case variant in the run", `{"subject":"bob","project":"acme/vision","run":{"kind":"job","Queue":"gpu/h100"}}`, `run.Queue: unknown key`},
		{"duplicate resource", `{"subject":"bob","project":"acme/vision","run":{"kind":"job","resources":{"gpu":1,"gpu":64}}}`, `run.resources.gpu: duplicate key`},
		{"case variant subject", `{"subject":"bob","project":"acme/vision","Subject":"alice","run":{"kind":"job"}}`, `Subject: unknown key`},
	} {
		out, stderr, code := cli(t, tc.line+"\n"+valid+"\n", "admit", "--data", conformance.DataFile(), "--requests", "-")
		require.Equal(t, 0, code, stderr)
		got := lines(out)
		require.Len(t, got, 2, tc.name)
		require.Contains(t, got[0], `"allowed":false`, tc.name)
		require.Contains(t, got[0], "line 1", tc.name)
		require.Contains(t, got[0], tc.want, tc.name)
		require.Contains(t, got[1], `"error":null`, tc.name)
	}

	run := filepath.Join(t.TempDir(), "run.json")
	require.NoError(t, os.WriteFile(run, []byte("{\n  \"kind\": \"job\",\n  \"queue\": \"gpu/a100\",\n  \"queue\": \"gpu/h100\"\n}\n"), 0o600))
	out, stderr, code := cli(t, "", "admit", "--data", conformance.DataFile(), "bob", "acme/vision", "--run", run)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, `"allowed":false`)
	require.Contains(t, out, `line 4, column 3: queue: duplicate key`)
	require.Contains(t, stderr, "queue: duplicate key")
}

// TestAttrValuesFollowTheRules: an --attr value that is JSON is decoded strictly (a duplicate key
// is a usage error, not silently a string); anything else is a string.
func TestAttrValuesFollowTheRules(t *testing.T) {
	t.Parallel()
	_, stderr, code := cli(t, "", "check", "--data", conformance.DataFile(), "bob", "runs.delete", "acme/vision",
		"--attr", `run={"created_by":"alice","created_by":"bob"}`)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "--attr run: line 1, column 23: created_by: duplicate key")
	out, stderr, code := cli(t, "", "check", "--data", conformance.DataFile(), "bob", "runs.delete", "acme/vision",
		"--attr", `run={"created_by":"bob"}`)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, `"code":"own_run"`)
	out, stderr, code = cli(t, "", "check", "--data", conformance.DataFile(), "bob", "runs.delete", "acme/vision",
		"--attr", `run.created_by={not json`)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, `"allowed":false`, "a value that is not JSON is the string it reads")
}

// TestEvalBudgetFlag: --eval-budget is the engine's evaluation budget on every command that
// decides (the policy suites run check and admit with it: testdata/regression/policies/budget);
// a negative one is a usage error.
func TestEvalBudgetFlag(t *testing.T) {
	t.Parallel()
	slow := filepath.Join(conformance.PoliciesDir(), "budget")
	out, stderr, code := cli(t, "", "explain", "--data", conformance.DataFile(), "--policy", slow, "--eval-budget", "20ms", "alice", "org.get", "acme")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "error: evaluation failed (denied): rego: eval: evaluation exceeded its time budget of 20ms (stopped)")
	require.Contains(t, out, "decision: deny")
	_, stderr, code = cli(t, "", "check", "--data", conformance.DataFile(), "--eval-budget", "-1s", "alice", "org.get", "acme")
	require.Equal(t, 2, code)
	require.Equal(t, "teamgate: --eval-budget -1s: must be >= 0 (0: no budget)\n"+
		"usage: teamgate check [SUBJECT ACTION RESOURCE] [flags] (teamgate check --help for the flags)\n", stderr)
	out, _, code = cli(t, "", "--help")
	require.Equal(t, 0, code)
	require.Regexp(t, `--eval-budget duration .*\(default 1s\)`, out, "the default is authz.DefaultEvalBudget")
}

func TestUsageAndDataErrorsExitNonZero(t *testing.T) {
	t.Parallel()
	_, stderr, code := cli(t, "", "check", "bob", "runs.get", "acme/vision")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "--data")
	_, _, code = cli(t, "", "check", "--data", conformance.DataFile(), "bob")
	require.Equal(t, 2, code)
	_, _, code = cli(t, "", "frobnicate")
	require.Equal(t, 2, code)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("orgs: [{name: acme, memebers: {}}]"), 0o600))
	_, stderr, code = cli(t, "", "check", "--data", bad, "bob", "runs.get", "acme/vision")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "orgs[0].memebers")
	_, stderr, code = cli(t, "", "settings", "--data", conformance.DataFile(), "acme/missing")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "acme/missing")
}

func TestExplainCommand(t *testing.T) {
	t.Parallel()
	out, _, code := cli(t, "", "explain", "--data", conformance.DataFile(), "vera", "runs.get", "acme/labs")
	require.Equal(t, 0, code)
	require.Contains(t, out, "restricted")
	require.Contains(t, out, "decision: deny, role none")
	require.Contains(t, out, `"org_role": "viewer"`)
}

func TestTestCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "freeze.rego"), []byte(`package teamgate.ext

import rego.v1

deny contains "acme is frozen" if input.resource.org == "acme"
`), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "freeze_test.rego"), []byte(`package teamgate.ext_test

import rego.v1

import data.teamgate.authz

test_frozen if {
	d := authz.decision with input as {"subject": {"id": "a", "org_role": "owner", "grant": "", "team_roles": {}}, "action": "org.get", "resource": {"kind": "org", "org": "acme", "exists": true}, "attributes": {}}
	not d.allow
	d.reasons[0].code == "extension_deny"
}
`), 0o600))
	out, stderr, code := cli(t, "", "test", dir)
	require.Equal(t, 0, code, stderr+out)
	require.Contains(t, out, "PASS: 1/1")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "broken_test.rego"), []byte("package b_test\n\ntest_no if { false }\n"), 0o600))
	out, _, code = cli(t, "", "test", dir)
	require.Equal(t, 2, code) // a failing test exits 2, as opa test
	require.Contains(t, out, "data.b_test.test_no: FAIL")

	// --policy applies the extension to decisions.
	out, _, code = cli(t, "", "check", "--data", conformance.DataFile(), "--policy", dir, "alice", "org.get", "acme")
	require.Equal(t, 0, code)
	require.Contains(t, out, `"code":"extension_deny","message":"acme is frozen"`)
}

func TestBenchCommand(t *testing.T) {
	t.Parallel()
	policy := func(t *testing.T, src string) string {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "x.rego"), []byte("package teamgate.ext\n\nimport rego.v1\n\n"+src+"\n"), 0o600))
		return dir
	}
	cases := []struct {
		name     string
		policy   string // rule of an extension module; "" for the default policy
		want     []string
		compiled bool // the policy has a decision table
	}{
		{"default policy", "", []string{
			"rego (full evaluation): 200 decisions", "200 cached, 0 compiled, 0 evaluated",
			"\ncompiled (decision table): 200 decisions", "0 cached, 200 compiled, 0 evaluated",
			"\ncached (decision cache): 200 decisions", "0 cached, 0 compiled, 200 evaluated",
		}, true},
		{"authors' key-only module", `deny contains "x" if input.subject.org_role == "nobody"`, []string{
			"\ncompiled (decision table): 200 decisions", "0 cached, 200 compiled, 0 evaluated",
		}, true},
		{"authors' module", `deny contains "x" if input.subject.id == "nobody"`, []string{
			"rego (full evaluation) [compiled (decision table) requested, not used by this policy]: 200 decisions",
			"x.rego:5: reads input.subject.id, not a fact of the decision table's key",
			"\ncached (decision cache): 200 decisions",
		}, false},
		{"non-deterministic module", `deny contains x if { x := upper("a") with upper as uuid.rfc4122; input.subject.id == "nobody" }`, []string{
			"rego (full evaluation) [compiled (decision table) requested, not used by this policy]: 200 decisions",
			"rego (full evaluation) [cached (decision cache) requested, not used by this policy]: 200 decisions",
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"bench", "--data", conformance.DataFile(), "--n", "200"}
			if c.policy != "" {
				args = append(args, "--policy", policy(t, c.policy))
			}
			out, stderr, code := cli(t, "", args...)
			require.Equal(t, 0, code, stderr)
			for _, want := range c.want {
				require.Contains(t, out, want)
			}
			if !c.compiled {
				require.NotContains(t, out, "\ncompiled (decision table):", "policies whose authors' modules read more than the key are evaluated in full")
			}
			require.Contains(t, out, "p99")
		})
	}
	_, _, code := cli(t, "", "bench", "--data", conformance.DataFile(), "--n", "0")
	require.Equal(t, 2, code)
}

func TestPolicyErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, file, content string
		want                []string
	}{
		{"package outside teamgate.ext", "authz.rego", "package teamgate.authz\n\ndecision := {\"allow\": true}\n", []string{"authz.rego:1", "package teamgate.authz"}},
		{"unsafe variable", "ext.rego", "package teamgate.ext\n\nimport rego.v1\n\ndeny contains m if true\n", []string{"ext.rego:5", "var m is unsafe"}},
		{"data file", "data.json", "{\n\"a\": ]\n}\n", []string{"data.json:2", "invalid character"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, c.file), []byte(c.content), 0o600))
			for _, args := range [][]string{
				{"test", dir},
				{"test", "--policy", dir},
				{"check", "--data", conformance.DataFile(), "--policy", dir, "alice", "org.get", "acme"},
			} {
				out, stderr, code := cli(t, "", args...)
				require.Equal(t, 1, code, "%v: %s", args, out)
				require.Contains(t, stderr, filepath.Join(dir, c.want[0]), args)
				require.Contains(t, stderr, c.want[1], args)
			}
		})
	}
}

// TestDataFileRulesThroughCLI: a --data file that breaks the data-file rules is a data-file error
// (exit 1) naming the path and the line.
func TestDataFileRulesThroughCLI(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ doc, want string }{
		"null key":        {"orgs:\n  - name: acme\n    members: {null: owner}\n", `"orgs[0].members": line 3, column 15: null key`},
		"fraction":        {"orgs:\n  - name: acme\n    archived_deletion_interval: 1.5\n", `"orgs[0].archived_deletion_interval": line 3, column 5: expected an integer, got the number 1.5`},
		"second document": {"orgs: [{name: acme}]\n---\norgs: [{name: other}]\n", `"line 2": a second YAML document`},
		"duplicate key":   {`{"orgs": [{"name": "acme", "members": {"bob": "viewer", "bob": "owner"}}]}`, `"orgs[0].members.bob": line 1, column 57: duplicate key`},
	} {
		path := filepath.Join(t.TempDir(), "data.yaml")
		require.NoError(t, os.WriteFile(path, []byte(tc.doc), 0o600))
		_, stderr, code := cli(t, "", "check", "--data", path, "bob", "org.get", "acme")
		require.Equal(t, 1, code, name)
		require.Contains(t, stderr, tc.want, name)
	}
}

// TestAttrKeysGivenOnce: like a duplicate key in a JSON input, an --attr key given twice — or
// given a value and nested under — is a usage error, never the last one silently winning.
func TestAttrKeysGivenOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		attrs []string
		want  string
	}{
		{[]string{"run.created_by=bob", "run.created_by=alice"}, "--attr run.created_by: run.created_by is already given a value"},
		{[]string{"run.created_by=bob", "run=x"}, "--attr run: run already holds nested keys"},
		{[]string{"run=x", "run.created_by=bob"}, "--attr run.created_by: run is already given a value"},
		{[]string{`run={"created_by":"alice"}`, "run.created_by=bob"}, "run is already given a value"},
		{[]string{"run..created_by=bob"}, `--attr "run..created_by": a key part is empty`},
	} {
		args := []string{"check", "--data", conformance.DataFile(), "bob", "runs.delete", "acme/vision"}
		for _, a := range tc.attrs {
			args = append(args, "--attr", a)
		}
		out, stderr, code := cli(t, "", args...)
		require.Equal(t, 2, code, "%v: %s", tc.attrs, out)
		require.Contains(t, stderr, tc.want)
	}
	out, stderr, code := cli(t, "", "check", "--data", conformance.DataFile(), "bob", "runs.delete", "acme/vision",
		"--attr", "run.created_by=bob", "--attr", "run.kind=job")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, `"code":"own_run"`, "siblings nest side by side")
}

// TestReadmeCommandsRun: every data-file and store CLI command README.md and rego/README.md show
// runs as written (from the repository root, in order; /tmp/teamgate-store is a fresh directory)
// and exits 0, printing what the doc shows under it (the `#` lines right below, docOutputs).
// (The cluster commands need a NATS server: TestReadmeClusterCommandsRun; the host service
// walk-through's, its log: examples/hostservice's TestReadmeWalkthrough; bench/RESULTS.md's
// commands: TestResultsCommandsParse.)
func TestReadmeCommandsRun(t *testing.T) {
	t.Parallel()
	const root = "../.."
	for doc, least := range map[string]int{"README.md": 16, "rego/README.md": 5} {
		var commands [][]string
		var lines []string                                   // each command as the doc writes it
		store := filepath.Join(t.TempDir(), "store")         // the --store commands run in order on it
		decisions := filepath.Join(t.TempDir(), "decisions") // and the decision log commands on this
		// The commands of the fenced blocks as the docs checker reads them (continuations joined,
		// quotes and comments as a shell reads them).
		for _, line := range slices.Concat(docBlocks(t, filepath.Join(root, doc), false)...) {
			ws := words(line)
			if len(ws) < 3 || ws[0] != "go" || ws[1] != "run" || ws[2] != "./cmd/teamgate" {
				continue
			}
			args := ws[3:]
			require.NotContains(t, args, "&&", line)
			require.NotContains(t, args, "|", line)
			if args[0] == "cluster" || slices.Contains(args, "--nats") ||
				slices.Contains(args, "/tmp/teamgate-hostservice-log") { // the host service's log: its TestReadmeWalkthrough
				continue
			}
			for i, a := range args {
				if a == "/tmp/teamgate-store" {
					args[i] = store
					continue
				}
				if a == "/tmp/teamgate-decisions" {
					args[i] = decisions
					continue
				}
				if _, err := os.Stat(filepath.Join(root, a)); err == nil && strings.Contains(a, "/") {
					args[i] = filepath.Join(root, a)
				}
			}
			commands = append(commands, args)
			lines = append(lines, line)
		}
		require.GreaterOrEqual(t, len(commands), least, "%s's CLI blocks", doc)
		shown := docOutputs(t, filepath.Join(root, doc))
		if doc == "README.md" {
			// Run twice as written, the store commands would fail (create-project: a conflict):
			// the block starts them afresh, as the test does with its own directories.
			raw, err := os.ReadFile(filepath.Join(root, doc))
			require.NoError(t, err)
			_, after, ok := strings.Cut(string(raw), "\nrm -rf /tmp/teamgate-store /tmp/teamgate-decisions ")
			require.True(t, ok, "README.md's CLI block removes its store and decision log first")
			require.NotContains(t, string(raw[:len(raw)-len(after)]), "--store /tmp/teamgate-store", "before their first use")
		}
		compared := 0
		for i, args := range commands {
			out, stderr, code := cli(t, "", args...)
			require.Equal(t, 0, code, "%s: teamgate %s\n%s%s", doc, strings.Join(args, " "), stderr, out)
			require.NotEmpty(t, out, "%s: teamgate %s", doc, strings.Join(args, " "))
			if want, ok := shown[lines[i]]; ok {
				require.True(t, shows(out, want), "%s shows under\n%s\n%s\nbut it prints\n%s", doc, lines[i], strings.Join(want, "\n"), out)
				compared++
			}
		}
		// The outputs shown under the commands skipped above are compared where those run
		// (TestReadmeWalkthrough); README.md shows a dozen of its own.
		if doc == "README.md" {
			require.GreaterOrEqual(t, compared, 12, "README.md's outputs compared")
		}
	}
}

// TestUsageErrorsShowUsage: a mistyped flag, a missing argument or a bad flag value (exit 2)
// prints the error and then the command's usage line; other errors (exit 1) do not.
func TestUsageErrorsShowUsage(t *testing.T) {
	t.Parallel()
	data := conformance.DataFile()
	for _, tc := range []struct {
		args      []string
		err, want string
	}{
		{[]string{"check", "--dta", data}, "unknown flag: --dta", "usage: teamgate check [SUBJECT ACTION RESOURCE] [flags] (teamgate check --help for the flags)"},
		{[]string{"explain", "--data", data, "bob"}, "accepts 3 arg(s), received 1", "usage: teamgate explain SUBJECT ACTION RESOURCE [flags]"},
		{[]string{"who-can", "--data", data, "--format", "yaml", "runs.get", "acme/vision"}, `--format "yaml"`, "usage: teamgate who-can ACTION RESOURCE [flags]"},
		{[]string{"break-glass", "end", "--store", t.TempDir()}, "--actor is required", "usage: teamgate break-glass end --actor USER"},
	} {
		_, stderr, code := cli(t, "", tc.args...)
		require.Equal(t, 2, code, "%v: %s", tc.args, stderr)
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		require.Len(t, lines, 2, "%v: %s", tc.args, stderr)
		require.Contains(t, lines[0], tc.err)
		require.True(t, strings.HasPrefix(lines[1], tc.want), "%v: %s", tc.args, stderr)
	}
	_, stderr, code := cli(t, "", "check", "--data", "nope.yaml", "bob", "runs.get", "acme/vision")
	require.Equal(t, 1, code)
	require.NotContains(t, stderr, "usage:")
}

// TestCheckPretty: check --format pretty prints a line per input for people — outcome, the
// request, role and reasons (or the error) — in input order, for the same decisions as JSON.
func TestCheckPretty(t *testing.T) {
	t.Parallel()
	data := conformance.DataFile()
	out, stderr, code := cli(t, "", "check", "--data", data, "--format", "pretty", "bob", "runs.delete", "acme/vision", "--attr", "run.created_by=bob")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "allow\tbob\truns.delete\tacme/vision\tcontributor\town_run: bob may delete runs they created, as contributor of acme/vision\n", out)

	reqs := `{"subject":"vera","action":"runs.get","resource":"acme/labs"}` + "\n" +
		`{"subject":"bob","action":"runs.fly","resource":"acme/vision"}` + "\n" + "not json\n"
	out, stderr, code = cli(t, reqs, "check", "--data", data, "--requests", "-", "--format", "pretty")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, []string{
		"deny\tvera\truns.get\tacme/labs\tnone\trestricted: project acme/labs is restricted to teams []; vera is in none",
		"error\tbob\truns.fly\tacme/vision\tnone\tinvalid action \"runs.fly\": not in the action catalog",
		"error\t\t\t\tnone\tbad request: line 3, column 2: not JSON: invalid character 'o' in literal null (expecting 'u')",
	}, lines(out))
	js, _, code := cli(t, reqs, "check", "--data", data, "--requests", "-")
	require.Equal(t, 0, code)
	require.Len(t, lines(js), 3, "the same inputs, a JSON line each")

	_, stderr, code = cli(t, "", "check", "--data", data, "--format", "table", "bob", "runs.get", "acme/vision")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `--format "table": want pretty or json`)
}
