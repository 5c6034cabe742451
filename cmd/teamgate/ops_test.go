package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/version"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/store"
)

// storeDir returns an on-disk store holding the conformance data, closed again.
func storeDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	st, err := store.Open(t.Context(), store.Options{Dir: dir})
	require.NoError(t, err)
	_, err = st.LoadFile(t.Context(), conformance.DataFile())
	require.NoError(t, err)
	require.NoError(t, st.Close())
	return dir
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

func TestVersionCommand(t *testing.T) {
	t.Parallel()
	out, stderr, code := cli(t, "", "version", "--format", "json")
	require.Equal(t, 0, code, stderr)
	var v versionInfo
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	require.Equal(t, runtime.Version(), v.Go)
	require.Equal(t, version.Version, v.OPA)
	require.NotEmpty(t, v.Teamgate)
	out, stderr, code = cli(t, "", "version")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "opa      "+version.Version+"\n")
	_, _, code = cli(t, "", "version", "extra")
	require.Equal(t, 2, code)
}

// TestStoreAnswersLikeTheDataFile: every read command answers from a host's on-disk store as it
// does from the data file the store was loaded with.
func TestStoreAnswersLikeTheDataFile(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	for _, args := range [][]string{
		{"check", "bob", "runs.stop", "acme/engineering/vision"},
		{"check", "vera", "runs.get", "acme/labs"},
		{"explain", "vera", "runs.get", "acme/nlp"},
		{"settings", "acme/vision", "--user", "beth"},
		{"settings", "acme/nlp", "--format", "pretty"},
		{"list", "bob", "acme"},
		{"who-can", "runs.stop", "acme/nlp"},
		{"admit", "bob", "acme/vision", "--run", "../../testdata/cli/run.json"},
		{"export"},
		{"bulk", "bob", "acme/engineering", "stop_runs", "--runs", "-"},
		{"lint"},
		{"whatif", "--changes", "../../testdata/cli/whatif.yaml"},
		{"diff", "--policy", "../../testdata/cli/candidate"},
		{"access-diff", "--from", "0", "--to", "1"},
	} {
		const runs = `[{"uuid": "r1", "project": "vision", "created_by": "bob"}, {"uuid": "r2", "project": "open"}]`
		want, stderr, code := cli(t, runs, append([]string{args[0], "--data", conformance.DataFile()}, args[1:]...)...)
		require.Equal(t, 0, code, "%v: %s", args, stderr)
		got, stderr, code := cli(t, runs, append([]string{args[0], "--store", dir}, args[1:]...)...)
		require.Equal(t, 0, code, "%v: %s", args, stderr)
		require.Equal(t, want, got, args)
	}
	// bench times rather than answers: it runs on the store's directory, every path measured.
	out, stderr, code := cli(t, "", "bench", "--store", dir, "--n", "200")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, 3, strings.Count(out, "answered by: "), out)
	require.Contains(t, out, "200 compiled, 0 evaluated", out)
}

func TestStoreUsageErrors(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	missing := filepath.Join(t.TempDir(), "nope")
	empty := t.TempDir()
	notAStore := regoDir(t, map[string]string{"notes.txt": "x"})
	changes := writeFile(t, "changes.json", `[{"kind": "put_member", "change": {"Org": "acme", "User": "zed", "Role": "member"}}]`)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"check", "--data", conformance.DataFile(), "--store", dir, "bob", "org.get", "acme"}, 2, "--data and --store are exclusive"},
		{[]string{"list", "--nats", "nats://127.0.0.1:1", "--store", dir, "bob", "acme"}, 2, "--nats and --store are exclusive"},
		{[]string{"export", "--store", dir, "--stream", "X"}, 2, "--stream needs --nats"},
		{[]string{"export"}, 2, "--data FILE, --store DIR or --nats URL is required"},
		{[]string{"check", "--store", missing, "bob", "org.get", "acme"}, 1, "no such directory"},
		// The wrong directory: a read neither answers from an empty store nor writes Badger's
		// files into it, and a write does not turn a directory of other files into a store.
		{[]string{"list", "--store", empty, "bob", "acme"}, 1, "holds no store (no Badger MANIFEST"},
		{[]string{"export", "--store", notAStore}, 1, "holds no store (no Badger MANIFEST"},
		{[]string{"apply", "--store", notAStore, "--changes", changes}, 1, "holds files but no store"},
		{[]string{"apply", "--data", conformance.DataFile(), "--changes", changes}, 2, "apply writes: use --store DIR or --nats URL"},
		{[]string{"create-project", "--data", conformance.DataFile(), "alice", "acme", "x"}, 2, "create-project writes"},
		{[]string{"apply", "--store", dir}, 2, "--changes FILE or --file DATAFILE is required"},
		{[]string{"settings", "--store", dir, "acme/vision", "--format", "xml"}, 2, `--format "xml": want pretty or json`},
		{[]string{"bulk", "--store", dir, "bob", "acme", "stop_runs"}, 2, "--runs RUNS.json is required"},
		{[]string{"bulk", "--store", dir, "bob", "acme", "fly_runs", "--runs", changes}, 2, `unknown bulk operation "fly_runs"`},
	} {
		out, stderr, code := cli(t, "", tc.args...)
		require.Equal(t, tc.code, code, "%v: %s%s", tc.args, stderr, out)
		require.Contains(t, stderr, tc.want, tc.args)
	}
	_, err := os.Stat(missing)
	require.ErrorIs(t, err, os.ErrNotExist, "a read command does not create a store")
	for _, dir := range []string{empty, notAStore} {
		_, err = os.Stat(filepath.Join(dir, "MANIFEST"))
		require.ErrorIs(t, err, os.ErrNotExist, "no store was created in %s", dir)
	}
}

// TestStoreLockedByAnotherProcess: Badger locks its directory; while a host holds the store, the
// CLI says so (the lock is per open file, so a second open in this process is refused too).
func TestStoreLockedByAnotherProcess(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	st, err := store.Open(t.Context(), store.Options{Dir: dir})
	require.NoError(t, err)
	defer st.Close()
	_, stderr, code := cli(t, "", "check", "--store", dir, "bob", "org.get", "acme")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "--store "+dir+" is locked by another process: a Badger directory can be opened by one process at a time")
}

// TestExportRoundTrips: export prints a data file (YAML, or JSON) that loads back to the same
// directory, and exporting that again prints the same file.
func TestExportRoundTrips(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	yml, stderr, code := cli(t, "", "export", "--store", dir)
	require.Equal(t, 0, code, stderr)
	js, stderr, code := cli(t, "", "export", "--store", dir, "--format", "json")
	require.Equal(t, 0, code, stderr)
	fy, err := store.ParseFile([]byte(yml))
	require.NoError(t, err)
	fj, err := store.ParseFile([]byte(js))
	require.NoError(t, err)
	require.Equal(t, fy, fj)
	again, stderr, code := cli(t, "", "export", "--data", writeFile(t, "exported.yaml", yml))
	require.Equal(t, 0, code, stderr)
	require.Equal(t, yml, again)
	require.Contains(t, js, "run.resources.gpu <= 8", "< is printed as <")

	// apply --file restores what export printed into another store, and again writes nothing.
	restored := filepath.Join(t.TempDir(), "restored")
	exported := writeFile(t, "exported.yaml", yml)
	out, stderr, code := cli(t, "", "apply", "--store", restored, "--file", exported)
	require.Equal(t, 0, code, stderr)
	var res applied
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, uint64(1), res.Revision)
	require.Positive(t, res.Changes)
	back, stderr, code := cli(t, "", "export", "--store", restored)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, yml, back)
	out, stderr, code = cli(t, "", "apply", "--store", restored, "--file", exported)
	require.Equal(t, 0, code, stderr)
	require.JSONEq(t, `{"revision": 1, "changes": 0}`, out, "a file equal to the store writes nothing")
}

// TestApplyDataFileErrors: apply --file reads a data file under the data-file rules (path and
// line) and changes nothing when it is refused; --file and --changes are exclusive.
func TestApplyDataFileErrors(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	changes := writeFile(t, "changes.json", `[{"kind": "put_member", "change": {"Org": "acme", "User": "zed", "Role": "member"}}]`)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"apply", "--store", dir, "--file", writeFile(t, "bad.yaml", "orgs:\n  - name: acme\n    members: {bob: emperor}\n")}, 1, `"orgs[0].members.bob": line 3`},
		{[]string{"apply", "--store", dir, "--file", writeFile(t, "model.yaml", "orgs:\n  - name: acme\n    projects: [{name: p, grants: {nobody: viewer}}]\n")}, 1, "nobody"},
		{[]string{"apply", "--store", dir, "--file", changes, "--changes", changes}, 2, "--changes and --file are exclusive"},
		{[]string{"apply", "--data", conformance.DataFile(), "--file", conformance.DataFile()}, 2, "apply writes"},
	} {
		out, stderr, code := cli(t, "", tc.args...)
		require.Equal(t, tc.code, code, "%v: %s%s", tc.args, stderr, out)
		require.Contains(t, stderr, tc.want, tc.args)
	}
	out, stderr, code := cli(t, "", "export", "--store", dir, "--format", "json")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, `"bob": "member"`, "the refused files changed nothing")
}

func TestApplyChanges(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	out, _, _ := cli(t, "", "check", "--store", dir, "zed", "org.get", "acme")
	require.Contains(t, out, `"allowed":false`)
	yml := writeFile(t, "changes.yaml", "- kind: put_member\n  change: {Org: acme, User: zed, Role: viewer}\n- kind: put_team_member\n  change: {Org: acme, Team: research, User: zed, Role: member}\n")
	out, stderr, code := cli(t, "", "apply", "--store", dir, "--changes", yml)
	require.Equal(t, 0, code, stderr)
	var res applied
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, 2, res.Changes)
	require.Positive(t, res.Revision)
	out, stderr, code = cli(t, "", "check", "--store", dir, "zed", "org.get", "acme")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, `"allowed":true`)

	for name, tc := range map[string]struct{ doc, want string }{
		"unknown key":  {`[{"kind": "put_member", "change": {"Org": "acme", "User": "x", "Rol": "member"}}]`, `--changes PATH: invalid change file "changes[0].change.Rol": line 1, column 64: unknown key`},
		"case variant": {`[{"kind": "put_member", "change": {"org": "acme", "User": "x", "Role": "member"}}]`, `"changes[0].change.org": line 1, column 36: unknown key`},
		"unknown kind": {`[{"kind": "put_memberz", "change": {}}]`, `"changes[0].kind": line 1, column 3: unknown change kind "put_memberz"`},
		"outer key":    {"- kind: put_member\n  chnage: {}\n", `"changes[0].chnage": line 2, column 3: unknown key`},
		"duplicate":    {`[{"kind": "put_member", "change": {"Org": "acme", "Org": "b"}}]`, `"changes[0].change.Org": line 1, column 51: duplicate key`},
		"missing":      {`[{"kind": "delete_org"}]`, `invalid change file "changes[0]": line 1, column 3: delete_org without its change`},
		"type":         {"- kind: put_org\n  change:\n    Org:\n      name: a\n      queue: [x]\n", `"changes[0].change.Org.queue": line 5, column 7: expected a string, got a list`},
		"change first": {`[{"change": {"Org": 5}, "kind": "put_member"}]`, `"changes[0].change.Org": line 1, column 21: expected a string, got a number`},
		"fraction":     {`[{"kind": "put_org", "change": {"Org": {"name": "a", "archived_deletion_interval": 1.5}}}]`, `"changes[0].change.Org.archived_deletion_interval": line 1, column 84: expected an integer, got the number 1.5`},
		"not a list":   {`{"kind": "put_member"}`, `invalid change file "line 1, column 1": expected a list, got a mapping`},
		"model":        {`[{"kind": "put_member", "change": {"Org": "nope", "User": "x", "Role": "member"}}]`, `nope`},
	} {
		file := writeFile(t, "c.json", tc.doc)
		_, stderr, code := cli(t, "", "apply", "--store", dir, "--changes", file)
		require.Equal(t, 1, code, name)
		require.Contains(t, stderr, strings.ReplaceAll(tc.want, "PATH", file), name)
		require.True(t, strings.HasPrefix(stderr, "teamgate: --changes "+file+": "), "%s: the flag and the file first: %s", name, stderr)
	}
	out, _, _ = cli(t, "", "export", "--store", dir, "--format", "json")
	require.NotContains(t, out, `"x"`, "a refused change file writes nothing")
}

func TestCreateProjectCommand(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	settings := writeFile(t, "settings.yaml", "queues: [cpu/default]\n")
	out, stderr, code := cli(t, "", "create-project", "--store", dir, "bob", "acme/engineering", "detect", "--settings", settings)
	require.Equal(t, 0, code, stderr)
	var c struct {
		Decision struct {
			Allowed bool `json:"allowed"`
		} `json:"decision"`
		Project  string `json:"project"`
		Revision uint64 `json:"revision"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &c), out)
	require.True(t, c.Decision.Allowed, out)
	require.Equal(t, "acme/detect", c.Project)
	require.Positive(t, c.Revision)
	out, _, _ = cli(t, "", "list", "--store", dir, "bob", "acme/engineering", "--format", "pretty")
	require.Contains(t, lines(out), "detect")
	out, _, _ = cli(t, "", "settings", "--store", dir, "acme/detect")
	require.Contains(t, out, `"cpu/default"`)

	_, stderr, code = cli(t, "", "create-project", "--store", dir, "bob", "acme/engineering", "detect")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "conflict")

	out, stderr, code = cli(t, "", "create-project", "--store", dir, "vera", "acme", "denied")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, `{"decision":{"allowed":false,`)
	require.Contains(t, out, `"project":"","revision":0}`)
	out, _, _ = cli(t, "", "export", "--store", dir)
	require.NotContains(t, out, "denied", "a denial writes nothing")

	_, stderr, code = cli(t, "", "create-project", "--store", dir, "bob", "acme/engineering", "p2", "--settings", writeFile(t, "s.yaml", "queus: [x]\n"))
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "line 1, column 1: queus: unknown key")

	// Labels: stored, exported; a bad one is refused by the store, a malformed flag is usage.
	_, stderr, code = cli(t, "", "create-project", "--store", dir, "bob", "acme/engineering", "labelled",
		"--label", "approval=admin-only", "--label", "example.com/tier=gold")
	require.Equal(t, 0, code, stderr)
	out, _, _ = cli(t, "", "export", "--store", dir)
	require.Contains(t, out, "labels:\n")
	require.Contains(t, out, "approval: admin-only")
	require.Contains(t, out, "example.com/tier: gold")
	_, stderr, code = cli(t, "", "create-project", "--store", dir, "bob", "acme/engineering", "p3", "--label", "bad key=x")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `invalid project acme/p3 label key "bad key"`)
	for _, flag := range []string{"novalue", "a=1 --label a=2"} {
		args := append([]string{"create-project", "--store", dir, "bob", "acme/engineering", "p4"}, strings.Fields("--label "+flag)...)
		_, stderr, code = cli(t, "", args...)
		require.Equal(t, 2, code, stderr)
	}
}

func TestBulkCommand(t *testing.T) {
	t.Parallel()
	runs := writeFile(t, "runs.json", `[{"uuid": "r1", "project": "vision", "created_by": "bob"}, {"uuid": "r2", "project": "open"}, {"uuid": "r3", "project": "Bad Name"}]`)
	out, stderr, code := cli(t, "", "bulk", "--data", conformance.DataFile(), "bob", "acme/engineering", "stop_runs", "--runs", runs)
	require.Equal(t, 0, code, stderr)
	got := lines(out)
	require.Len(t, got, 3)
	type line struct {
		UUID     string `json:"uuid"`
		Decision struct {
			Allowed bool `json:"allowed"`
			Reasons []struct {
				Code string `json:"code"`
			} `json:"reasons"`
		} `json:"decision"`
		Error *string `json:"error"`
	}
	var l [3]line
	for i := range got {
		require.NoError(t, json.Unmarshal([]byte(got[i]), &l[i]), got[i])
	}
	require.Equal(t, "r1", l[0].UUID)
	require.True(t, l[0].Decision.Allowed, got[0])
	require.Nil(t, l[0].Error)
	require.False(t, l[1].Decision.Allowed, got[1])
	require.Equal(t, "not_in_scope", l[1].Decision.Reasons[0].Code, got[1])
	require.NotNil(t, l[2].Error, got[2])
	require.False(t, l[2].Decision.Allowed)

	_, stderr, code = cli(t, "", "bulk", "--data", conformance.DataFile(), "bob", "acme/engineering", "stop_runs", "--runs", writeFile(t, "r.json", `[{"uuid": "r1", "projct": "vision"}]`))
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "[0].projct: unknown key")
	_, stderr, code = cli(t, "", "bulk", "--data", conformance.DataFile(), "bob", "acme/engineering", "transfer_runs", "--runs", runs)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "destination")
}

// TestHTMLCharactersPrintedAsIs: "<", ">" and "&" reach the terminal as themselves in every
// command that prints JSON, including through the library's MarshalJSON methods.
func TestHTMLCharactersPrintedAsIs(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"settings", "acme/vision"},
		{"settings", "acme/vision", "--format", "pretty"},
		{"export", "--format", "json"},
		{"export"},
		{"explain", "bob", "runs.get", "acme/vision", "--attr", "note=gpu <= 8 & >", "--format", "json"},
		{"explain", "bob", "runs.get", "acme/vision", "--attr", "note=gpu <= 8 & >"},
	} {
		out, stderr, code := cli(t, "", append([]string{args[0], "--data", conformance.DataFile()}, args[1:]...)...)
		require.Equal(t, 0, code, "%v: %s", args, stderr)
		require.Contains(t, out, "<= 8", args)
		require.False(t, strings.Contains(out, `\u003c`) || strings.Contains(out, `\u0026`), "%v: %s", args, out)
	}
}

// TestDataFileTypeErrorsNamePathAndLine: a value of the wrong type in a --data file is a
// data-file error naming its YAML path and line, like an unknown key.
func TestDataFileTypeErrorsNamePathAndLine(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ doc, want string }{
		"list for mapping": {"orgs:\n  - name: acme\n    members: [bob]\n", `"orgs[0].members": line 3, column 5: expected a mapping, got a list`},
		"list for string":  {"orgs:\n  - name: [acme]\n", `"orgs[0].name": line 2, column 5: expected a string, got a list`},
		"string for list":  {"orgs:\n  - name: acme\n    projects:\n      - name: p\n        settings: {queues: gpu}\n", `"orgs[0].projects[0].settings.queues": line 5, column 20: expected a list, got a string`},
		"string for int":   {"orgs:\n  - name: acme\n    archived_deletion_interval: soon\n", `"orgs[0].archived_deletion_interval": line 3, column 5: expected an integer, got a string`},
		"team members as a string": {"orgs:\n  - name: acme\n    members: {bob: member}\n    teams:\n      - name: eng\n        members: bob\n",
			`"orgs[0].teams[0].members": line 6, column 9: expected a mapping, got a string`},
		"retention forever": {"orgs:\n  - name: acme\n    policies:\n      - name: p\n        archived_deletion_interval: forever\n",
			`"orgs[0].policies[0].archived_deletion_interval": line 5, column 9: expected an integer, got a string`},
		"expiry not a time": {"orgs:\n  - name: acme\n    members: {bob: member}\n    teams:\n      - name: eng\n        members: {bob: {role: admin, expires_at: never}}\n",
			`"orgs[0].teams[0].members.bob.expires_at"`},
	} {
		file := writeFile(t, "data.yaml", tc.doc)
		_, stderr, code := cli(t, "", "check", "--data", file, "bob", "org.get", "acme")
		require.Equal(t, 1, code, name)
		require.Contains(t, stderr, "teamgate: --data "+file+": invalid data file "+tc.want, name)
		// The same file given to apply --file says the same, naming its flag.
		_, stderr, code = cli(t, "", "apply", "--store", filepath.Join(t.TempDir(), "s"), "--file", file)
		require.Equal(t, 1, code, name)
		require.Contains(t, stderr, "teamgate: --file "+file+": invalid data file "+tc.want, name)
	}
}

// TestWritesThroughACluster: with --nats, apply and create-project write to the stream, and the
// next command (a new node) sees the writes.
func TestWritesThroughACluster(t *testing.T) {
	t.Parallel()
	url := serve(t)
	_, stderr, code := cli(t, "", "cluster", "seed", "--nats", url, "--data", conformance.DataFile())
	require.Equal(t, 0, code, stderr)
	changes := writeFile(t, "changes.json", `[{"kind": "put_team_member", "change": {"Org": "acme", "Team": "research", "User": "bob", "Role": "admin"}}]`)
	out, stderr, code := cli(t, "", "apply", "--nats", url, "--changes", changes)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, `"changes":1`)
	out, stderr, code = cli(t, "", "create-project", "--nats", url, "bob", "acme/research", "speech")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, `"project":"acme/speech"`)
	out, stderr, code = cli(t, "", "list", "--nats", url, "bob", "acme/research")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, `"speech"`)
}
