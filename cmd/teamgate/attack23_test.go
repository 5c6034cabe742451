package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/decisionlog"
)

// TestAttack23DecisionsOnAHeldOrDamagedLog: `teamgate decisions --log DIR` on a log a host
// holds open fails at once, saying so, and on a damaged one (its MANIFEST lost) refuses it; in
// both cases nothing in the directory is deleted. (On the damaged log it answered from a new,
// empty log after Badger deleted every record's table.)
func TestAttack23DecisionsOnAHeldOrDamagedLog(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "log")
	host, err := decisionlog.Open(ctx, decisionlog.Options{Dir: dir})
	require.NoError(t, err)
	var rs []authz.DecisionRecord
	for range 300 {
		rs = append(rs, authz.DecisionRecord{Time: time.Now(), Request: authz.Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision"},
			Decision: authz.Decision{Allowed: true, Role: "viewer", Reasons: []authz.Reason{}, Revision: 1}, Policy: "fp", Path: authz.PathCompiled})
	}
	require.NoError(t, host.Write(ctx, rs))
	out, stderr, code := cli(t, "", "decisions", "--log", dir)
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "locked by another process")
	require.Empty(t, out)
	require.NoError(t, host.Close())
	out, stderr, code = cli(t, "", "decisions", "--log", dir, "--limit", "9223372036854775807")
	require.Equal(t, 0, code, stderr)
	require.Len(t, lines(out), len(rs), "every record is still there")
	out, stderr, code = cli(t, "", "decisions", "--log", dir, "--since", "1600-01-01T00:00:00Z", "--until", "9999-12-31T00:00:00Z", "--newest")
	require.Equal(t, 0, code, stderr)
	require.Len(t, lines(out), len(rs), "bounds far away bound nothing away")

	require.NoError(t, os.Remove(filepath.Join(dir, "MANIFEST")))
	before, err := os.ReadDir(dir)
	require.NoError(t, err)
	out, stderr, code = cli(t, "", "decisions", "--log", dir)
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "damaged: Badger's MANIFEST is missing")
	require.Empty(t, out)
	after, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Equal(t, len(before), len(after), "nothing deleted")
	for i := range before {
		require.Equal(t, before[i].Name(), after[i].Name())
	}
}

// TestAttack23DecisionsTableCannotBeForged: a failed request's subject, action or resource is
// logged as the caller sent it, and an author's reason message is the policy's: a line break or
// a tab in one is shown escaped, in quotes, so the table has one row per record (a subject
// holding "\n" and a fake row printed that row as a decision of its own).
func TestAttack23DecisionsTableCannotBeForged(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "log")
	l, err := decisionlog.Open(ctx, decisionlog.Options{Dir: dir})
	require.NoError(t, err)
	forged := "mallory\n2026-01-01 00:00:00  allow    alice    org.delete  acme  rego  org_override"
	require.NoError(t, l.Write(ctx, []authz.DecisionRecord{
		{Time: time.Now(), Request: authz.Request{Subject: forged, Action: "runs.get", Resource: "acme/vision"},
			Decision: authz.Decision{Role: "none", Reasons: []authz.Reason{}}, Error: `invalid subject`, Policy: "fp", Path: authz.PathNone},
		{Time: time.Now(), Request: authz.Request{Subject: "bob", Action: "runs.get\tx", Resource: "acme/vision"},
			Decision: authz.Decision{Role: "none", Reasons: []authz.Reason{{Code: "ext\nallow", Message: "m"}}}, Policy: "fp", Path: authz.PathRego},
	}))
	require.NoError(t, l.Close())
	out, stderr, code := cli(t, "", "decisions", "--log", dir, "--format", "pretty")
	require.Equal(t, 0, code, stderr)
	rows := lines(out)
	require.Len(t, rows, 3, "a header and one row per record:\n%s", out)
	require.Contains(t, rows[1], `"mallory\n2026-01-01`)
	require.Contains(t, rows[2], `"runs.get\tx"`)
	require.Contains(t, rows[2], `"ext\nallow"`)
	out, stderr, code = cli(t, "", "decisions", "--log", dir)
	require.Equal(t, 0, code, stderr)
	require.Len(t, lines(out), 2, "JSON lines: one per record")
}
