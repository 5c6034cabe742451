package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/conformance"
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

func TestConformanceAuthorizeThroughCLIBatch(t *testing.T) {
	t.Parallel()
	cases, err := conformance.Load()
	require.NoError(t, err)
	var in bytes.Buffer
	for _, c := range cases.Authorize {
		require.NoError(t, json.NewEncoder(&in).Encode(map[string]any{
			"subject": c.Subject, "action": c.Action, "resource": c.Resource, "attributes": c.Attributes,
		}))
	}
	out, stderr, code := cli(t, in.String(), "check", "--data", conformance.DataFile(), "--requests", "-")
	require.Equal(t, 0, code, stderr)
	got := lines(out)
	require.Len(t, got, len(cases.Authorize))
	for i, c := range cases.Authorize {
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
			var codes []string
			for _, r := range d.Reasons {
				codes = append(codes, r.Code)
				require.NotEmpty(t, r.Message)
			}
			require.Contains(t, codes, c.Reason, "case %d: %s", i, got[i])
		}
	}
}

func TestConformanceAdmitThroughCLIBatch(t *testing.T) {
	t.Parallel()
	cases, err := conformance.Load()
	require.NoError(t, err)
	var in bytes.Buffer
	for _, c := range cases.Admit {
		require.NoError(t, json.NewEncoder(&in).Encode(map[string]any{"subject": c.Subject, "project": c.Project, "run": c.Run}))
	}
	out, stderr, code := cli(t, in.String(), "admit", "--data", conformance.DataFile(), "--requests", "-")
	require.Equal(t, 0, code, stderr)
	got := lines(out)
	require.Len(t, got, len(cases.Admit))
	for i, c := range cases.Admit {
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
		require.Equal(t, c.Allowed, a.Allowed, "case %d: %s", i, got[i])
		require.Equal(t, c.Queue, a.Queue, "case %d: %s", i, got[i])
		want := c.Presets
		if want == nil {
			want = []string{}
		}
		require.Equal(t, want, a.Presets, "case %d: %s", i, got[i])
		fields := []string{}
		for _, v := range a.Violations {
			fields = append(fields, v.Field)
		}
		wantV := c.Violations
		if wantV == nil {
			wantV = []string{}
		}
		require.ElementsMatch(t, wantV, fields, "case %d: %s", i, got[i])
	}
}

func TestConformanceListThroughCLI(t *testing.T) {
	t.Parallel()
	cases, err := conformance.Load()
	require.NoError(t, err)
	for _, c := range cases.List {
		out, stderr, code := cli(t, "", "list", "--data", conformance.DataFile(), c.Subject, c.Owner)
		require.Equal(t, 0, code, stderr)
		var got []string
		require.NoError(t, json.Unmarshal([]byte(out), &got))
		want := c.Projects
		if want == nil {
			want = []string{}
		}
		require.Equal(t, want, got, "%s %q", c.Subject, c.Owner)
		require.NotEqual(t, "null\n", out)
	}
}

func TestConformanceSettingsThroughCLI(t *testing.T) {
	t.Parallel()
	cases, err := conformance.Load()
	require.NoError(t, err)
	for _, c := range cases.Settings {
		args := []string{"settings", "--data", conformance.DataFile(), c.Project}
		if c.User != "" {
			args = append(args, "--user", c.User)
		}
		out, stderr, code := cli(t, "", args...)
		require.Equal(t, 0, code, stderr)
		conformance.CheckSettings(t, c, []byte(out))
	}
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
	require.Contains(t, got[1], `"error":"bad request line`)
	require.Contains(t, got[2], `unknown field`)
	require.Contains(t, got[3], `"allowed":true`)
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
	require.Contains(t, out, "PASS data.teamgate.ext_test.test_frozen")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "broken_test.rego"), []byte("package b_test\n\ntest_no if { false }\n"), 0o600))
	out, _, code = cli(t, "", "test", dir)
	require.Equal(t, 1, code)
	require.Contains(t, out, "FAIL data.b_test.test_no")

	// --policy applies the extension to decisions.
	out, _, code = cli(t, "", "check", "--data", conformance.DataFile(), "--policy", dir, "alice", "org.get", "acme")
	require.Equal(t, 0, code)
	require.Contains(t, out, `"code":"extension_deny","message":"acme is frozen"`)
}

func TestBenchCommand(t *testing.T) {
	t.Parallel()
	out, stderr, code := cli(t, "", "bench", "--data", conformance.DataFile(), "--n", "200")
	require.Equal(t, 0, code, stderr)
	for _, mode := range []string{"rego (full evaluation): 200 decisions", "compiled (decision table): 200 decisions", "cached (decision cache): 200 decisions"} {
		require.Contains(t, out, mode)
	}
	require.Contains(t, out, "p99")
	_, _, code = cli(t, "", "bench", "--data", conformance.DataFile(), "--n", "0")
	require.Equal(t, 2, code)
}

// TestListReflectsAuthorsPolicy: `teamgate list --policy DIR` shows what the author's module or
// data opens, as `check` decides it.
func TestListReflectsAuthorsPolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file, content string
		subject             string
		want                []string
	}{
		{"ext.allow", "otto.rego", `package teamgate.ext

import rego.v1

allow contains "otto reads open" if {
	input.action == "project.get"
	input.subject.id == "otto"
	input.resource.project == "open"
}
`, "otto", []string{"open", "vision"}},
		{"data only", "data.json", `{"teamgate": {"org_base": {"billing": "viewer"}}}`, "bill", []string{"archive", "open"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, tc.file), []byte(tc.content), 0o600))
			out, stderr, code := cli(t, "", "list", "--data", conformance.DataFile(), "--policy", dir, tc.subject, "acme")
			require.Equal(t, 0, code, stderr)
			var got []string
			require.NoError(t, json.Unmarshal([]byte(out), &got))
			require.Equal(t, tc.want, got)
			for _, p := range tc.want {
				out, stderr, code := cli(t, "", "check", "--data", conformance.DataFile(), "--policy", dir, tc.subject, "project.get", "acme/"+p)
				require.Equal(t, 0, code, stderr)
				require.Contains(t, out, `"allowed":true`, p)
			}
		})
	}
}
