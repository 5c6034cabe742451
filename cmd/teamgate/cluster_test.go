package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/conformance"
)

// serve runs `teamgate cluster serve` on a free port until the test ends and returns its URL.
func serve(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	var errb bytes.Buffer
	exited := make(chan int, 1)
	go func() {
		code := run(ctx, []string{"cluster", "serve", "--port", "0", "--dir", t.TempDir()}, strings.NewReader(""), pw, &errb)
		_ = pw.Close()
		exited <- code
	}()
	br := bufio.NewReader(pr)
	url, err := br.ReadString('\n')
	require.NoError(t, err, "serve printed no URL")
	go func() { _, _ = io.Copy(io.Discard, br) }()
	t.Cleanup(func() {
		cancel()
		require.Equal(t, 0, <-exited, "serve stops cleanly when its context ends")
	})
	url = strings.TrimSpace(url)
	require.True(t, strings.HasPrefix(url, "nats://"), url)
	return url
}

// Every decision command answers the same against a stream seeded from the data file as
// against the data file itself.
func TestClusterAnswersLikeTheDataFile(t *testing.T) {
	t.Parallel()
	url := serve(t)
	cases, err := conformance.Load()
	require.NoError(t, err)

	out, stderr, code := cli(t, "", "cluster", "seed", "--nats", url, "--stream", "acme", "--data", conformance.DataFile())
	require.Equal(t, 0, code, stderr)
	require.JSONEq(t, `{"stream":"acme","revision":1,"changed":true}`, out)

	var checks, admits bytes.Buffer
	for _, c := range cases.Authorize {
		require.NoError(t, json.NewEncoder(&checks).Encode(map[string]any{
			"subject": c.Subject, "action": c.Action, "resource": c.Resource, "attributes": c.Attributes,
		}))
	}
	for _, c := range cases.Admit {
		require.NoError(t, json.NewEncoder(&admits).Encode(map[string]any{"subject": c.Subject, "project": c.Project, "run": c.Run}))
	}
	type invocation struct {
		stdin string
		args  []string
	}
	calls := []invocation{
		{checks.String(), []string{"check", "--requests", "-"}},
		{admits.String(), []string{"admit", "--requests", "-"}},
		{"", []string{"check", "bob", "runs.delete", "acme/vision", "--attr", "run.created_by=bob"}},
		{"", []string{"explain", "--format", "json", "vera", "runs.get", "acme/labs"}},
	}
	for _, c := range cases.List {
		calls = append(calls, invocation{"", []string{"list", c.Subject, c.Owner}})
	}
	for _, c := range cases.Settings {
		calls = append(calls, invocation{"", []string{"settings", c.Project, "--user", c.User}})
	}
	for _, c := range calls {
		want, stderr, code := cli(t, c.stdin, append(c.args, "--data", conformance.DataFile())...)
		require.Equal(t, 0, code, stderr)
		require.NotEmpty(t, want)
		got, stderr, code := cli(t, c.stdin, append(c.args, "--nats", url, "--stream", "acme")...)
		require.Equal(t, 0, code, stderr)
		require.Equal(t, want, got, "%v", c.args)
	}
}

// A non-empty stream is seeded again only with --force, and a file equal to the directory
// writes nothing.
func TestClusterSeedRefusesANonEmptyStream(t *testing.T) {
	t.Parallel()
	url := serve(t)
	seed := []string{"cluster", "seed", "--nats", url, "--data", conformance.DataFile()}
	out, stderr, code := cli(t, "", seed...)
	require.Equal(t, 0, code, stderr)
	require.JSONEq(t, `{"stream":"TEAMGATE","revision":1,"changed":true}`, out)

	out, stderr, code = cli(t, "", seed...)
	require.Equal(t, 1, code)
	require.Empty(t, out)
	require.Contains(t, stderr, "--force")

	out, stderr, code = cli(t, "", append(seed, "--force")...)
	require.Equal(t, 0, code, stderr)
	require.JSONEq(t, `{"stream":"TEAMGATE","revision":1,"changed":false}`, out)

	// The default stream is the one seeded: decisions read it without --stream.
	out, stderr, code = cli(t, "", "list", "--nats", url, "bob", "acme/engineering")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "[\"nlp\",\"vision\"]\n", out)
}

func TestClusterUsageErrors(t *testing.T) {
	t.Parallel()
	url := serve(t)
	data := conformance.DataFile()
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"data and nats", []string{"check", "--data", data, "--nats", url, "bob", "runs.get", "acme/vision"}, 2, "exclusive"},
		{"stream without nats", []string{"list", "--data", data, "--stream", "acme", "bob"}, 2, "--stream needs --nats"},
		{"neither", []string{"settings", "acme/vision"}, 2, "--data FILE, --store DIR or --nats URL is required"},
		{"missing stream", []string{"check", "--nats", url, "--stream", "nosuch", "bob", "runs.get", "acme/vision"}, 1, "stream nosuch not found"},
		{"bad stream name", []string{"cluster", "seed", "--nats", url, "--stream", "a.b", "--data", data}, 1, `"a.b"`},
		{"no server", []string{"check", "--nats", "nats://127.0.0.1:1", "bob", "runs.get", "acme/vision"}, 1, "nats://127.0.0.1:1"},
		{"seed without nats", []string{"cluster", "seed", "--data", data}, 2, "--nats URL is required"},
		{"seed without data", []string{"cluster", "seed", "--nats", url}, 2, "--data FILE is required"},
		{"seed bad replicas", []string{"cluster", "seed", "--nats", url, "--data", data, "--replicas", "0"}, 2, "--replicas 0"},
		{"serve without dir", []string{"cluster", "serve"}, 2, "--dir"},
		{"serve bad port", []string{"cluster", "serve", "--dir", t.TempDir(), "--port", "70000"}, 2, "--port 70000"},
		{"serve with data", []string{"cluster", "serve", "--dir", t.TempDir(), "--data", data}, 2, "do not apply"},
		{"serve with store", []string{"cluster", "serve", "--dir", t.TempDir(), "--store", t.TempDir()}, 2, "do not apply"},
		{"seed with store", []string{"cluster", "seed", "--nats", url, "--store", t.TempDir()}, 2, "seed writes a --data file"},
	} {
		out, stderr, code := cli(t, "", c.args...)
		require.Equal(t, c.code, code, "%s: %s", c.name, stderr)
		require.Empty(t, out, c.name)
		require.Contains(t, stderr, c.want, c.name)
	}
}

// TestReadmeClusterCommandsRun: README.md's cluster commands (the end of "The CLI"'s block; the
// replicas' walk-through is examples/hostservice's TestReplicasShareWrites) run
// as written after the server they start — on the test's own server, whose URL replaces
// nats://127.0.0.1:4222 — and the check answers as it does from the data file.
func TestReadmeClusterCommandsRun(t *testing.T) {
	t.Parallel()
	const readmeURL = "nats://127.0.0.1:4222"
	url := serve(t)
	var ran []string
	blocks := docBlocks(t, "../../README.md", false)
	i := slices.IndexFunc(blocks, func(b []string) bool {
		return slices.ContainsFunc(b, func(l string) bool { return strings.Contains(l, "cluster seed") })
	})
	require.GreaterOrEqual(t, i, 0, "README.md seeds a cluster")
	for _, line := range blocks[i] {
		ws := words(line)
		if len(ws) < 4 || ws[2] != "./cmd/teamgate" || (ws[3] != "cluster" && !slices.Contains(ws, "--nats")) ||
			strings.Contains(line, "hostservice") {
			continue
		}
		args := ws[3:]
		if args[0] == "cluster" && args[1] == "serve" {
			require.Empty(t, ran, "%s: the server starts first", line)
			ran = append(ran, "serve")
			continue
		}
		require.NotEmpty(t, ran, "%s: after the server", line)
		var want string
		for i, a := range args {
			switch {
			case a == readmeURL:
				args[i] = url
			case strings.HasPrefix(a, "testdata/"):
				args[i] = "../../" + a
			}
		}
		if args[0] == "check" {
			var code int
			local := slices.Clone(args)
			i := slices.Index(local, "--nats")
			local = slices.Delete(local, i, i+2)
			if j := slices.Index(local, "--stream"); j >= 0 {
				local = slices.Delete(local, j, j+2)
			}
			want, _, code = cli(t, "", append(local, "--data", conformance.DataFile())...)
			require.Equal(t, 0, code)
		}
		out, stderr, code := cli(t, "", args...)
		require.Equal(t, 0, code, "%s: %s", line, stderr)
		if want != "" {
			require.Equal(t, want, out, line)
		}
		ran = append(ran, args[0]+" "+args[1])
	}
	require.GreaterOrEqual(t, len(ran), 3, "README.md's cluster commands: %v", ran)
}
