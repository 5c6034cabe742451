package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/decisionlog"
	"github.com/teamgate/teamgate/internal/conformance"
)

// records decodes `decisions` JSON lines.
func records(t *testing.T, out string) []authz.DecisionRecord {
	t.Helper()
	var rs []authz.DecisionRecord
	for _, l := range lines(out) {
		var r authz.DecisionRecord
		require.NoError(t, json.Unmarshal([]byte(l), &r), l)
		rs = append(rs, r)
	}
	return rs
}

// TestDecisionsQueryFilters: checks written with --decision-log are found by each filter.
func TestDecisionsQueryFilters(t *testing.T) {
	t.Parallel()
	log := filepath.Join(t.TempDir(), "log")
	reqs := filepath.Join(t.TempDir(), "reqs.jsonl")
	require.NoError(t, os.WriteFile(reqs, []byte(strings.Join([]string{
		`{"subject":"bob","action":"runs.stop","resource":"acme/engineering/vision"}`,
		`{"subject":"vera","action":"runs.get","resource":"acme/labs"}`,
		`{"subject":"bob","action":"runs.get","resource":"acme/nope"}`,
		`{"subject":"bob","action":"runs.fly","resource":"acme/vision"}`,
	}, "\n")), 0o644))
	_, stderr, code := cli(t, "", "check", "--data", conformance.DataFile(), "--decision-log", log, "--requests", reqs)
	require.Equal(t, 0, code, stderr)
	_, stderr, code = cli(t, "", "check", "--data", conformance.DataFile(), "--decision-log", log, "alice", "org.update", "acme")
	require.Equal(t, 0, code, stderr)

	cases := []struct {
		args []string
		want []string // subject action of each record, in order
	}{
		{nil, []string{"bob runs.stop", "vera runs.get", "bob runs.get", "bob runs.fly", "alice org.update"}},
		{[]string{"--subject", "bob"}, []string{"bob runs.stop", "bob runs.get", "bob runs.fly"}},
		{[]string{"--action", "runs.get"}, []string{"vera runs.get", "bob runs.get"}},
		{[]string{"--resource", "acme/labs"}, []string{"vera runs.get"}},
		{[]string{"--outcome", "allow"}, []string{"bob runs.stop", "alice org.update"}},
		{[]string{"--outcome", "deny", "--subject", "bob"}, []string{"bob runs.get", "bob runs.fly"}},
		{[]string{"--reason", "not_found"}, []string{"bob runs.get"}},
		{[]string{"--path", "none"}, []string{"bob runs.fly"}},
		{[]string{"--limit", "2"}, []string{"bob runs.stop", "vera runs.get"}},
		{[]string{"--newest", "--limit", "2"}, []string{"alice org.update", "bob runs.fly"}},
		{[]string{"--since", "1h"}, []string{"bob runs.stop", "vera runs.get", "bob runs.get", "bob runs.fly", "alice org.update"}},
		{[]string{"--until", "1h"}, nil},
		{[]string{"--since", "2000-01-01T00:00:00Z", "--until", "2001-01-01T00:00:00Z"}, nil},
		// the metrics' outcome labels, dates and whole days, as an operator would type them
		{[]string{"--outcome", "denied", "--subject", "bob"}, []string{"bob runs.get", "bob runs.fly"}},
		{[]string{"--outcome", "allowed"}, []string{"bob runs.stop", "alice org.update"}},
		{[]string{"--since", "2000-01-01"}, []string{"bob runs.stop", "vera runs.get", "bob runs.get", "bob runs.fly", "alice org.update"}},
		{[]string{"--since", "2000-01-01", "--until", "2001-01-01"}, nil},
		{[]string{"--since", "1d", "--subject", "vera"}, []string{"vera runs.get"}},
		{[]string{"--until", "1d"}, nil},
	}
	for _, c := range cases {
		out, stderr, code := cli(t, "", append([]string{"decisions", "--log", log}, c.args...)...)
		require.Equal(t, 0, code, "%v: %s", c.args, stderr)
		var got []string
		for _, r := range records(t, out) {
			got = append(got, r.Request.Subject+" "+r.Request.Action)
		}
		require.Equal(t, c.want, got, "%v", c.args)
	}

	out, _, code := cli(t, "", "decisions", "--log", log, "--format", "pretty", "--reason", "restricted")
	require.Equal(t, 0, code)
	require.Equal(t, []string{"TIME", "OUTCOME", "SUBJECT", "ACTION", "RESOURCE", "PATH", "REASONS"}, strings.Fields(lines(out)[0]))
	require.Len(t, lines(out), 2)
	require.Equal(t, []string{"deny", "vera", "runs.get", "acme/labs", "compiled", "restricted"}, strings.Fields(lines(out)[1])[2:])
	// A table with no row says so, rather than print nothing (JSON lines print none).
	out, _, code = cli(t, "", "decisions", "--log", log, "--format", "pretty", "--subject", "nobody")
	require.Equal(t, 0, code)
	require.Equal(t, "no decision in the log matches\n", out)
	out, _, code = cli(t, "", "decisions", "--log", log, "--subject", "nobody")
	require.Equal(t, 0, code)
	require.Empty(t, out)
}

// TestDecisionsRecheck: after a membership change, --recheck lists exactly the logged decisions
// that flipped.
func TestDecisionsRecheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, log := filepath.Join(dir, "store"), filepath.Join(dir, "log")
	run := func(args ...string) string {
		t.Helper()
		out, stderr, code := cli(t, "", args...)
		require.Equal(t, 0, code, "%v: %s", args, stderr)
		return out
	}
	run("apply", "--store", st, "--changes", "../../testdata/cli/changes.yaml")
	run("create-project", "--store", st, "alice", "demo/ml", "vision")
	run("create-project", "--store", st, "alice", "demo", "open")
	for _, c := range [][]string{
		{"bob", "runs.stop", "demo/ml/vision"},                                // flips: bob leaves ml
		{"bob", "runs.delete", "demo/vision", "--attr", "run.created_by=bob"}, // flips (attributes are rechecked)
		{"bob", "runs.stop", "demo/open"},                                     // stays: open project
		{"alice", "project.delete", "demo/vision"},                            // stays: owner
		{"bob", "runs.approve", "demo/vision"},                                // stays denied
	} {
		run(append([]string{"check", "--store", st, "--decision-log", log}, c...)...)
	}
	require.Empty(t, run("decisions", "--log", log, "--recheck", "--store", st), "nothing changed yet")
	require.Equal(t, "no decision in the log is decided differently now\n",
		run("decisions", "--log", log, "--recheck", "--store", st, "--format", "pretty"))
	var revoke applied
	require.NoError(t, json.Unmarshal([]byte(run("apply", "--store", st, "--changes", "../../testdata/cli/revoke.yaml")), &revoke))
	out := run("decisions", "--log", log, "--recheck", "--store", st)
	var got []string
	for _, l := range lines(out) {
		var c decisionlog.Change
		require.NoError(t, json.Unmarshal([]byte(l), &c), l)
		require.True(t, c.Record.Decision.Allowed)
		require.False(t, c.Now.Allowed)
		require.True(t, c.Now.Has("restricted"))
		// What changed since: the write that removed bob from ml, not the policy.
		require.False(t, c.PolicyChanged)
		require.Equal(t, []authz.Cause{{Revision: revoke.Revision, Kind: "delete_team_member"}}, c.Writes)
		got = append(got, c.Record.Request.Subject+" "+c.Record.Request.Action+" "+c.Record.Request.Resource)
	}
	require.Equal(t, []string{"bob runs.stop demo/ml/vision", "bob runs.delete demo/vision"}, got)
	require.Len(t, lines(run("decisions", "--log", log, "--recheck", "--store", st, "--action", "runs.stop")), 1)
	pretty := run("decisions", "--log", log, "--recheck", "--store", st, "--format", "pretty")
	require.Contains(t, pretty, "allow (org_role) → deny (restricted)")
	require.Contains(t, pretty, fmt.Sprintf("allow (org_role) → deny (restricted)  r%d delete_team_member  ", revoke.Revision))
	// From a data file the writes are unknown (its revisions are not the log's): the revisions.
	pretty = run("decisions", "--log", log, "--recheck", "--data", conformance.DataFile(), "--format", "pretty")
	require.Contains(t, pretty, "revision 3 → 1")

	// A policy that denies alice everything: her allowed decision flips too.
	pol := filepath.Join(dir, "policy")
	require.NoError(t, os.MkdirAll(pol, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(pol, "x.rego"), []byte("package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"frozen\" if input.subject.id == \"alice\"\n"), 0o644))
	changed := lines(run("decisions", "--log", log, "--recheck", "--store", st, "--policy", pol))
	require.Len(t, changed, 3)
	for _, l := range changed {
		require.Contains(t, l, `"policy_changed":true`)
	}
	require.Contains(t, run("decisions", "--log", log, "--recheck", "--store", st, "--policy", pol, "--format", "pretty"),
		fmt.Sprintf("allow (org_override) → deny (extension_deny)  policy, r%d delete_team_member  frozen", revoke.Revision))
}

// TestDecisionsKeepsTheHostsRecords: the CLI reads (and --decision-log appends to) a host's log
// without applying bounds of its own: a record the host keeps for 30 days, older than the
// default 7, is listed and still there afterwards.
func TestDecisionsKeepsTheHostsRecords(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "log")
	host := decisionlog.Options{Dir: dir, MaxAge: 30 * 24 * time.Hour}
	l, err := decisionlog.Open(t.Context(), host)
	require.NoError(t, err)
	old := time.Now().Add(-10 * 24 * time.Hour)
	require.NoError(t, l.Write(t.Context(), []authz.DecisionRecord{{Time: old,
		Request:  authz.Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision"},
		Decision: authz.Decision{Allowed: true, Role: "viewer", Reasons: []authz.Reason{}, Revision: 1}, Policy: "fp", Path: authz.PathCompiled}}))
	require.NoError(t, l.Close())
	out, stderr, code := cli(t, "", "decisions", "--log", dir)
	require.Equal(t, 0, code, stderr)
	require.Len(t, lines(out), 1, "the 10-day-old record is listed")
	_, stderr, code = cli(t, "", "check", "--data", conformance.DataFile(), "--decision-log", dir, "bob", "runs.get", "acme/vision")
	require.Equal(t, 0, code, stderr)
	l, err = decisionlog.Open(t.Context(), host)
	require.NoError(t, err)
	defer l.Close()
	n, _ := l.Size()
	require.Equal(t, int64(2), n, "the CLI deleted none of the host's records")
}

// TestDecisionsBadInput: bad flags and directories are clear errors, exit 2 for usage.
func TestDecisionsBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	_, stderr, code := cli(t, "", "check", "--data", conformance.DataFile(), "--decision-log", log, "bob", "runs.stop", "acme/vision")
	require.Equal(t, 0, code, stderr)
	st := filepath.Join(dir, "store")
	_, stderr, code = cli(t, "", "apply", "--store", st, "--changes", "../../testdata/cli/changes.yaml")
	require.Equal(t, 0, code, stderr)
	corrupt := filepath.Join(dir, "corrupt")
	require.NoError(t, os.MkdirAll(corrupt, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(corrupt, "MANIFEST"), []byte("not a manifest"), 0o644))

	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"decisions"}, 2, "--log DIR is required"},
		{[]string{"decisions", "--log", log, "--since", "yesterday"}, 2, `--since "yesterday": want an RFC 3339 time`},
		{[]string{"decisions", "--log", log, "--until", "-1h"}, 2, `--until "-1h"`},
		{[]string{"decisions", "--log", log, "--since", "1h", "--until", "2h"}, 2, "is not before --until"},
		{[]string{"decisions", "--log", log, "--outcome", "maybe"}, 2, `invalid outcome "maybe": want allow or deny`},
		{[]string{"decisions", "--log", log, "--path", "fast"}, 2, `invalid decision path "fast"`},
		{[]string{"decisions", "--log", log, "--limit", "-1"}, 2, "--limit -1"},
		{[]string{"decisions", "--log", log, "--format", "xml"}, 2, `--format "xml"`},
		{[]string{"decisions", "--log", log, "--store", st}, 2, "are for --recheck"},
		{[]string{"decisions", "--log", log, "--decision-log", log}, 2, "--decision-log does not apply"},
		{[]string{"decisions", "--log", log, "--recheck"}, 2, "--data FILE, --store DIR or --nats URL is required"},
		{[]string{"decisions", "--log", filepath.Join(dir, "nope")}, 1, "no such directory"},
		{[]string{"decisions", "--log", st}, 1, "not a decision log"},
		{[]string{"decisions", "--log", corrupt}, 1, "cannot open it as a Badger directory"},
		{[]string{"check", "--data", conformance.DataFile(), "--decision-log", st, "bob", "runs.stop", "acme/vision"}, 1, "not a decision log"},
	}
	for _, c := range cases {
		out, stderr, code := cli(t, "", c.args...)
		require.Equal(t, c.code, code, "%v: %s", c.args, stderr)
		require.Contains(t, stderr, c.msg, "%v", c.args)
		require.Empty(t, out, "%v", c.args)
	}
}

// TestAttack20DecisionsShowEachCall: `check` with a decision log writes every kind of record —
// compiled decisions in one line of the slot (short), with Owner or MinRevision (long), cache
// hits (runs), an error (whole), and an author's action whose name holds a NUL byte (\u0000 in
// its data file), miss and hits — and `decisions` shows each as the request made and the answer
// check printed; `--recheck` against the same directory and policy finds nothing changed. (The
// hit on the NUL action was logged as another request, which the recheck then reported as
// allowed then, denied now.)
func TestAttack20DecisionsShowEachCall(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log, reqs, pol := filepath.Join(dir, "log"), filepath.Join(dir, "reqs.jsonl"), filepath.Join(dir, "policy")
	require.NoError(t, os.MkdirAll(pol, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(pol, "catalog.json"), []byte(`{"teamgate": {"actions": {"runs.x\u0000y": {"kind": "project", "role": "viewer"}}}}`), 0o644))
	in := []string{
		`{"subject":"bob","action":"runs.stop","resource":"acme/engineering/vision"}`,
		`{"subject":"bob","action":"runs.stop","resource":"acme/engineering/vision"}`,
		`{"subject":"vera","action":"runs.get","resource":"vision","owner":"acme"}`,
		`{"subject":"alice","action":"org.update","resource":"acme","min_revision":1}`,
		`{"subject":"bob","action":"runs.x\u0000y","resource":"acme/vision"}`,
		`{"subject":"bob","action":"runs.x\u0000y","resource":"acme/vision"}`,
		`{"subject":"vera","action":"runs.get","resource":"vision","owner":"acme"}`,
		`{"subject":"bob","action":"runs.fly","resource":"acme/vision"}`,
	}
	require.NoError(t, os.WriteFile(reqs, []byte(strings.Join(in, "\n")), 0o644))
	out, stderr, code := cli(t, "", "check", "--data", conformance.DataFile(), "--policy", pol, "--decision-log", log, "--requests", reqs)
	require.Equal(t, 0, code, stderr)
	answers := lines(out)
	require.Len(t, answers, len(in))

	out, stderr, code = cli(t, "", "decisions", "--log", log)
	require.Equal(t, 0, code, stderr)
	recs := records(t, out)
	require.Len(t, recs, len(in))
	paths := map[authz.DecisionPath]bool{}
	for i, r := range recs {
		var req authz.Request
		require.NoError(t, json.Unmarshal([]byte(in[i]), &req))
		require.Equal(t, req, r.Request, "record %d", i)
		var a struct {
			Allowed bool           `json:"allowed"`
			Role    string         `json:"role"`
			Reasons []authz.Reason `json:"reasons"`
			Error   *string        `json:"error"`
		}
		require.NoError(t, json.Unmarshal([]byte(answers[i]), &a), answers[i])
		require.Equal(t, a.Allowed, r.Decision.Allowed, "record %d", i)
		require.Equal(t, a.Role, r.Decision.Role, "record %d", i)
		require.Equal(t, a.Reasons, r.Decision.Reasons, "record %d", i)
		if a.Error != nil {
			require.Equal(t, *a.Error, r.Error, "record %d", i)
		}
		paths[r.Path] = true
	}
	require.Equal(t, map[authz.DecisionPath]bool{authz.PathCompiled: true, authz.PathCacheL1: true, authz.PathNone: true}, paths)
	require.True(t, recs[4].Decision.Allowed && recs[5].Decision.Allowed, "the author's action allows bob")

	out, stderr, code = cli(t, "", "decisions", "--log", log, "--recheck", "--data", conformance.DataFile(), "--policy", pol)
	require.Equal(t, 0, code, stderr)
	require.Empty(t, out, "nothing changed")
}
