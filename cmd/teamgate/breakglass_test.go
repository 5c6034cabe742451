package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/clocktest"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/store"
)

// elevationsOf runs `break-glass list` on dir and decodes it.
func elevationsOf(t *testing.T, dir string) authz.ElevationList {
	t.Helper()
	out, stderr, code := cli(t, "", "break-glass", "list", "--store", dir)
	require.Equal(t, 0, code, stderr)
	var l authz.ElevationList
	require.NoError(t, json.Unmarshal([]byte(out), &l), out)
	require.NotNil(t, l.Elevations, "never null: %s", out)
	return l
}

// TestBreakGlassCommand: an org admin elevates themselves on a restricted project, which then
// opens with the reason break_glass; the elevation is listed with its actor, times and
// justification; another allowed actor ends it; a deny writes nothing and exits 0; bad input
// is a usage error (2) or a refused request (1).
func TestBreakGlassCommand(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	require.Equal(t, []authz.ActiveElevation{}, elevationsOf(t, dir).Elevations)

	before := time.Now()
	out, stderr, code := cli(t, "", "break-glass", "--store", dir, "--actor", "adam", "--project", "acme/labs", "--for", "30m",
		"--justification", "INC-42: stuck GPU runs")
	require.Equal(t, 0, code, stderr)
	var el authz.Elevation
	require.NoError(t, json.Unmarshal([]byte(out), &el), out)
	require.True(t, el.Decision.Allowed, out)
	require.Equal(t, "acme/labs", el.Project)
	require.Equal(t, "admin", el.Role)
	require.Equal(t, 30*time.Minute, el.ExpiresAt.Sub(el.At))
	require.False(t, el.At.Before(before.Truncate(time.Second)), "made now: %s", el.At)
	out, _, _ = cli(t, "", "check", "--store", dir, "adam", "runs.stop", "acme/labs")
	require.Contains(t, out, `"allowed":true`)
	require.Contains(t, out, `"code":"break_glass"`)

	l := elevationsOf(t, dir)
	require.Equal(t, []authz.ActiveElevation{{User: "adam", Actor: "adam", Project: "acme/labs", Role: "admin",
		At: el.At, ExpiresAt: el.ExpiresAt, Justification: "INC-42: stuck GPU runs"}}, l.Elevations)
	out, stderr, code = cli(t, "", "break-glass", "list", "--store", dir, "acme", "--format", "pretty")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, []string{
		"acme/labs\tadam\tadmin\tuntil " + stamp(el.ExpiresAt) + "\tby adam at " + stamp(el.At) + "\tINC-42: stuck GPU runs",
		"1 elevation(s) in force at " + stamp(l.Now)[:10],
	}, []string{lines(out)[0], lines(out)[1][:len("1 elevation(s) in force at ")+10]})

	// Not allowed org.break_glass: the deny, exit 0, nothing written.
	rev := l.Revision
	for _, args := range [][]string{
		{"break-glass", "--actor", "vera", "--project", "acme/vision", "--justification", "x"},
		{"break-glass", "end", "--actor", "vera", "--project", "acme/labs", "--user", "adam"},
	} {
		out, stderr, code = cli(t, "", append(args, "--store", dir)...)
		require.Equal(t, 0, code, stderr)
		require.Contains(t, out, `{"decision":{"allowed":false,"role":"viewer","reasons":[{"code":"insufficient_role","message":"org.break_glass needs`, args)
		out, _, _ = cli(t, "", append(args, "--store", dir, "--format", "pretty")...)
		require.Contains(t, out, "denied: vera may not break glass here; nothing was written\n")
	}
	require.Equal(t, rev, elevationsOf(t, dir).Revision)

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--actor", "adam", "--project", "acme/labs"}, 2, "--justification is required"},
		{[]string{"--actor", "adam", "--project", "acme/labs", "--justification", ""}, 2, "--justification is required"},
		{[]string{"--project", "acme/labs", "--justification", "x"}, 2, "--actor is required"},
		{[]string{"--actor", "adam", "--justification", "x"}, 2, "--project is required"},
		{[]string{"--actor", "adam", "--project", "acme/labs", "--justification", "x", "--for", "soon"}, 2, `invalid argument "soon" for "--for"`},
		{[]string{"--actor", "adam", "--project", "acme/labs", "--justification", "x", "--for", "0"}, 2, "--for 0: an elevation lasts above 0"},
		{[]string{"--actor", "adam", "--project", "acme/labs", "--justification", "x", "--format", "xml"}, 2, `--format "xml"`},
		{[]string{"extra", "--actor", "adam", "--project", "acme/labs", "--justification", "x"}, 2, `unknown command "extra"`},
		{[]string{"--actor", "adam", "--project", "acme/labs", "--justification", "x", "--for", "25h"}, 1, `invalid break-glass duration "25h0m0s": must be above 0 and at most 24h0m0s`},
		{[]string{"--actor", "adam", "--project", "acme/labs", "--justification", "x", "--for", "-5m"}, 1, `invalid break-glass duration "-5m0s"`},
		{[]string{"--actor", "adam", "--project", "acme/labs", "--justification", "   "}, 1, "invalid break-glass justification"},
		{[]string{"--actor", "adam", "--project", "acme/labs", "--justification", strings.Repeat("x", store.MaxJustification+1)}, 1, "at most 1024 bytes"},
		{[]string{"--actor", "adam", "--project", "acme/nope", "--justification", "x"}, 1, "project acme/nope not found"},
		{[]string{"--actor", "adam", "--project", "labs", "--justification", "x"}, 1, "invalid"},
		{[]string{"--actor", "adam", "--project", "acme/labs", "--justification", "x", "--role", "root"}, 1, `invalid grant acme/labs/adam role "root"`},
		{[]string{"--actor", "otto", "--project", "acme/vision", "--justification", "x"}, 0, `"allowed":false`}, // an outsider: denied
		{[]string{"end", "--actor", "adam", "--project", "acme/vision"}, 1, "adam holds no break-glass elevation on project acme/vision"},
		{[]string{"end", "--actor", "alice", "--project", "acme/vision", "--user", "beth"}, 1, "an ordinary admin grant, not a break-glass elevation"},
		{[]string{"end", "--actor", "alice"}, 2, "--project is required"},
		{[]string{"list", "--format", "xml"}, 2, `--format "xml"`},
		{[]string{"list", "nope"}, 1, "org nope not found"},
	} {
		args := append([]string{"break-glass", "--store", dir}, tc.args...)
		if tc.args[0] == "end" || tc.args[0] == "list" {
			args = append([]string{"break-glass", tc.args[0], "--store", dir}, tc.args[1:]...)
		}
		out, stderr, code := cli(t, "", args...)
		require.Equal(t, tc.code, code, "%v: %s%s", tc.args, stderr, out)
		require.Contains(t, stderr+out, tc.want, tc.args)
	}
	require.Len(t, elevationsOf(t, dir).Elevations, 1, "refused requests wrote nothing")
	_, stderr, code = cli(t, "", "break-glass", "--data", conformance.DataFile(), "--actor", "adam", "--project", "acme/labs", "--justification", "x")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "break-glass writes: use --store DIR or --nats URL")

	// The org owner ends adam's elevation: it closes at once.
	out, stderr, code = cli(t, "", "break-glass", "end", "--store", dir, "--actor", "alice", "--project", "acme/labs", "--user", "adam")
	require.Equal(t, 0, code, stderr)
	var ended authz.EndedElevation
	require.NoError(t, json.Unmarshal([]byte(out), &ended), out)
	require.True(t, ended.Decision.Allowed)
	require.Equal(t, &l.Elevations[0], ended.Elevation)
	require.Equal(t, []authz.ActiveElevation{}, elevationsOf(t, dir).Elevations)
	out, _, _ = cli(t, "", "check", "--store", dir, "adam", "runs.stop", "acme/labs")
	require.Contains(t, out, `"allowed":false`)
	out, _, _ = cli(t, "", "export", "--store", dir)
	require.NotContains(t, out, "break_glass")
}

// TestBreakGlassEndsByItself: an elevation made through the CLI is revoked by the store at its
// expiry: a store opened later by the store's clock writes the revocation before it answers,
// and the CLI then neither lists it nor allows through it.
func TestBreakGlassEndsByItself(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	out, stderr, code := cli(t, "", "break-glass", "--store", dir, "--actor", "mona", "--project", "acme/labs", "--for", "1m", "--role", "contributor", "--justification", "INC-9")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, `"allowed":true`)
	require.Len(t, elevationsOf(t, dir).Elevations, 1)

	st, err := store.Open(t.Context(), store.Options{Dir: dir, Clock: clocktest.New(time.Now().Add(2 * time.Minute))})
	require.NoError(t, err)
	events, err := st.Watch(t.Context(), st.Revision()-1)
	require.NoError(t, err)
	ev := <-events
	require.Equal(t, "expire_grant", ev.Kind, "revoked at open")
	require.Equal(t, []string{"acme/mona"}, ev.Subjects)
	require.NoError(t, st.Close())

	require.Equal(t, []authz.ActiveElevation{}, elevationsOf(t, dir).Elevations)
	out, _, _ = cli(t, "", "explain", "--store", dir, "mona", "project.get", "acme/labs", "--format", "json")
	require.NotContains(t, out, `"break_glass":true`)
}

// TestBreakGlassThroughACluster: with --nats, an elevation is written to the stream, listed and
// ended by the next commands (new nodes).
func TestBreakGlassThroughACluster(t *testing.T) {
	t.Parallel()
	url := serve(t)
	_, stderr, code := cli(t, "", "cluster", "seed", "--nats", url, "--data", conformance.DataFile())
	require.Equal(t, 0, code, stderr)
	out, stderr, code := cli(t, "", "break-glass", "--nats", url, "--actor", "adam", "--project", "acme/labs", "--justification", "INC-1", "--format", "pretty")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "adam elevated to admin on acme/labs until ")
	require.Contains(t, out, "(1h0m0s)")
	out, stderr, code = cli(t, "", "break-glass", "list", "--nats", url, "--format", "pretty")
	require.Equal(t, 0, code, stderr)
	require.True(t, strings.HasPrefix(out, "acme/labs\tadam\tadmin\tuntil "), out)
	out, stderr, code = cli(t, "", "break-glass", "end", "--nats", url, "--actor", "adam", "--project", "acme/labs", "--format", "pretty")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "ended adam's admin elevation on acme/labs")
	out, _, _ = cli(t, "", "break-glass", "list", "--nats", url)
	require.Contains(t, out, `"elevations":[]`)
}
