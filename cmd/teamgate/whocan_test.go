package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/store"
)

// TestWhoCanCommand: who-can prints ListSubjects' page as JSON (arrays never null), a subject a
// line with --format pretty, and pages with --limit/--after; --policy applies.
func TestWhoCanCommand(t *testing.T) {
	t.Parallel()
	data := conformance.DataFile()
	out, stderr, code := cli(t, "", "who-can", "--data", data, "runs.stop", "acme/vision")
	require.Equal(t, 0, code, stderr)
	var page authz.SubjectPage
	require.NoError(t, json.Unmarshal([]byte(out), &page))
	var names []string
	for _, s := range page.Subjects {
		names = append(names, s.Subject)
		require.NotEmpty(t, s.Reasons)
	}
	require.Equal(t, []string{"adam", "alice", "beth", "bob", "mona", "olga"}, names)
	require.Contains(t, out, `"subject":"olga","role":"admin","reasons":[{"code":"team_role",`)
	require.Contains(t, out, `"teams":["engineering"]`)
	require.Contains(t, out, `"teams":[]`)

	out, _, code = cli(t, "", "who-can", "--data", data, "runs.get", "acme/nope")
	require.Equal(t, 0, code)
	require.Contains(t, out, `"subjects":[]`)

	out, _, code = cli(t, "", "who-can", "--data", data, "runs.stop", "acme/vision", "--limit", "2", "--after", "alice")
	require.Equal(t, 0, code)
	require.NoError(t, json.Unmarshal([]byte(out), &page))
	require.Len(t, page.Subjects, 2)
	require.Equal(t, "bob", page.Next)

	out, _, code = cli(t, "", "who-can", "--data", data, "org.delete", "acme", "--format", "pretty")
	require.Equal(t, 0, code)
	require.Equal(t, "alice\towner\torg_role: alice is org owner of acme\n", out)

	// The CLI's example module freezes acme/archive for writes.
	out, _, code = cli(t, "", "who-can", "--data", data, "--policy", "../../testdata/cli/policies", "runs.create", "acme/archive")
	require.Equal(t, 0, code)
	require.Contains(t, out, `"subjects":[]`)

	_, stderr, code = cli(t, "", "who-can", "--data", data, "runs.stop", "vision")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "vision")
	_, _, code = cli(t, "", "who-can", "--data", data, "runs.stop")
	require.Equal(t, 2, code)
}

// TestListLimitFlags: a negative --limit is a usage error on every command that pages (exit 2,
// the flag and its value named, the usage line), as other bad flag values; who-can exited 1
// with ListSubjects' "invalid page limit" before the CLI checked it.
func TestListLimitFlags(t *testing.T) {
	t.Parallel()
	data := conformance.DataFile()
	for _, args := range [][]string{
		{"who-can", "--data", data, "runs.stop", "acme/vision", "--limit", "-1"},
		{"diff", "--data", data, "--policy", "../../testdata/cli/candidate", "--limit", "-1"},
		{"decisions", "--log", t.TempDir(), "--limit", "-1"},
	} {
		out, stderr, code := cli(t, "", args...)
		require.Equal(t, 2, code, "%v: %s", args, stderr)
		require.Empty(t, out, args)
		require.True(t, strings.HasPrefix(stderr, "teamgate: --limit -1: must be >= 0 (0: no limit)\nusage: teamgate "+args[0]+" "), "%v: %s", args, stderr)
	}
}

// TestExplainSuggests: explain shows, on a deny, what would allow it and who may do it.
func TestExplainSuggests(t *testing.T) {
	t.Parallel()
	out, _, code := cli(t, "", "explain", "--data", conformance.DataFile(), "zed", "runs.get", "acme/vision")
	require.Equal(t, 0, code)
	require.Contains(t, out, "to allow it (narrowest changes first):\n"+
		"  1. add zed to org acme as outsider, then grant zed viewer on project acme/vision → viewer (grant: zed has a viewer grant on project acme/vision)\n"+
		"     step 1: who may: alice mona (members.manage on acme)\n"+
		"     step 2: who may: adam alice beth mona olga (project.access on acme/vision)\n")
	out, _, code = cli(t, "", "explain", "--data", conformance.DataFile(), "--format", "json", "vera", "runs.get", "acme/labs")
	require.Equal(t, 0, code)
	var x authz.Explanation
	require.NoError(t, json.Unmarshal([]byte(out), &x))
	require.NotEmpty(t, x.Suggestions)
	require.Equal(t, store.PutGrant{Org: "acme", Project: "labs", User: "vera", Grant: store.Grant{Role: "viewer"}},
		x.Suggestions[0].Changes[0], "the changes read back as the store's wire form")
	out, _, code = cli(t, "", "explain", "--data", conformance.DataFile(), "--format", "json", "bob", "runs.get", "acme/vision")
	require.Equal(t, 0, code)
	require.Contains(t, out, `"suggestions":[]`)
}
