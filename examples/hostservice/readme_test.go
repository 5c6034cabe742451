package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// readmeCommand is a command of the README's walk-through — a curl request, the service's
// stop (kill -INT %1) or a teamgate command reading its decision log — and the output it shows.
type readmeCommand struct {
	line               string   // as written, continuations joined
	stop               bool     // kill -INT %1: the service shuts down (its decision log flushed)
	teamgate           []string // go run ./cmd/teamgate ARGS: ARGS
	method, user, body string
	contentType        string // -H 'Content-Type: ...'
	path               string
	grep               *regexp.Regexp // `| grep -E RE`: keep the matching lines
	status             string         // a trailing `# NNN`: the status it answers
	want               []string       // the output lines shown under it; "..." elides
}

// walkthrough reads the curl commands of README.md's host service walk-through: the first sh
// block of "## The host service example".
func walkthrough(t *testing.T) []readmeCommand {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(raw), "## The host service example\n")
	require.True(t, ok)
	_, block, ok := strings.Cut(section, "```sh\n")
	require.True(t, ok)
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok)
	var cmds []readmeCommand
	var cont string
	var started, waited bool
	for _, l := range strings.Split(block, "\n") {
		switch {
		case cont != "":
			l, cont = cont+" "+strings.TrimSpace(l), ""
		case strings.HasPrefix(l, "#  "): // a long output line goes on
			c := &cmds[len(cmds)-1]
			c.want[len(c.want)-1] += strings.TrimPrefix(l, "#  ")
			continue
		case strings.HasPrefix(l, "# "):
			c := &cmds[len(cmds)-1]
			c.want = append(c.want, strings.TrimPrefix(l, "# "))
			continue
		}
		if strings.HasSuffix(l, `\`) {
			cont = strings.TrimSuffix(l, `\`)
			continue
		}
		cmd, _, _ := strings.Cut(l, " #")
		switch {
		case strings.HasPrefix(l, "curl "):
			cmds = append(cmds, parseCurl(t, l))
		case strings.TrimSpace(cmd) == "kill -INT %1":
			cmds = append(cmds, readmeCommand{line: l, stop: true})
		case strings.HasPrefix(l, "go run ./cmd/teamgate "):
			cmds = append(cmds, readmeCommand{line: l, teamgate: strings.Fields(strings.TrimPrefix(cmd, "go run ./cmd/teamgate "))})
		case strings.HasPrefix(l, "go run ./examples/hostservice "):
			require.Equal(t, "go run ./examples/hostservice -addr 127.0.0.1:8080 -decision-log "+readmeLog+" &", l, "the service the test starts")
			require.Empty(t, cmds, "the service starts first")
			started = true
		case strings.HasPrefix(l, "until "):
			// Pasted as a block, the first request would race go run's build of the service.
			require.True(t, started, l)
			require.Empty(t, cmds, "the wait comes before the first request")
			require.Equal(t, readmeWait, strings.TrimSpace(cmd), "the wait for the service")
			waited = true
		case strings.TrimSpace(cmd) == "wait":
			// and the log must not be read while the stopping service still holds it.
			require.True(t, len(cmds) > 0 && cmds[len(cmds)-1].stop, "wait follows the stop")
		case strings.TrimSpace(l) == "":
		default:
			require.Fail(t, "a line of the walk-through the test does not run", l)
		}
	}
	require.True(t, started && waited, "the walk-through starts the service and waits until it listens")
	return cmds
}

// readmeWait is the walk-through's wait until the service it started listens.
const readmeWait = "until curl -s -o /dev/null 127.0.0.1:8080/metrics; do sleep 1; done"

var curlArg = regexp.MustCompile(`'[^']*'|\S+`)

// parseCurl reads the curl flags the walk-through uses: -X, -H 'X-User: u', -H 'Content-Type:
// t', -d '...', -s, the
// URL on 127.0.0.1:8080, a `| grep -E '...'` and a trailing `# NNN`.
func parseCurl(t *testing.T, line string) readmeCommand {
	t.Helper()
	c := readmeCommand{line: line, method: "GET"}
	if cmd, status, ok := strings.Cut(line, "# "); ok {
		line, c.status = cmd, strings.TrimSpace(status)
	}
	line, grep, piped := strings.Cut(line, "|")
	if piped {
		args := curlArg.FindAllString(grep, -1)
		require.Equal(t, []string{"grep", "-E"}, args[:2], line)
		c.grep = regexp.MustCompile(strings.Trim(args[2], "'"))
	}
	args := curlArg.FindAllString(line, -1)[1:]
	for i := 0; i < len(args); i++ {
		a := strings.Trim(args[i], "'")
		switch a {
		case "-s":
		case "-X":
			i++
			c.method = args[i]
		case "-H":
			i++
			h := strings.Trim(args[i], "'")
			if ct, ok := strings.CutPrefix(h, "Content-Type: "); ok {
				c.contentType = ct
				continue
			}
			user, ok := strings.CutPrefix(h, "X-User: ")
			require.True(t, ok, "header %s", h)
			c.user = user
		case "-d":
			i++
			c.body = strings.Trim(args[i], "'")
		default:
			path, ok := strings.CutPrefix(a, "127.0.0.1:8080")
			require.True(t, ok, "argument %q of %s", a, line)
			c.path = path
		}
	}
	return c
}

// readmeLog is the walk-through's decision log directory.
const readmeLog = "/tmp/teamgate-hostservice-log"

// TestReadmeWalkthrough runs README.md's host service walk-through, in order, on one service
// with a decision log, and checks that each command answers what the README shows: the curl
// requests, then the service's stop and the teamgate commands reading its log (run as written,
// with go run from the repository root, on the test's own log directory).
func TestReadmeWalkthrough(t *testing.T) {
	t.Parallel()
	logDir := filepath.Join(t.TempDir(), "log")
	reg := prometheus.NewRegistry()
	eng, done, err := setup(t.Context(), config{declog: logDir}, reg)
	require.NoError(t, err)
	srv := httptest.NewServer(newHandler(eng, sampleRuns, sampleArtifacts, reg))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			srv.Close()
			done()
		}
	})
	cmds := walkthrough(t)
	require.GreaterOrEqual(t, len(cmds), 10)
	require.True(t, slices.ContainsFunc(cmds, func(c readmeCommand) bool { return c.teamgate != nil }), "the walk-through reads the decision log")
	for _, c := range cmds {
		var code int
		var body string
		switch {
		case c.stop:
			srv.Close()
			done()
			stopped = true
			continue
		case c.teamgate != nil:
			require.True(t, stopped, "%s: the log is read once the service has stopped", c.line)
			args := slices.Clone(c.teamgate)
			for i, a := range args {
				if a == readmeLog {
					args[i] = logDir
				}
			}
			cmd := exec.CommandContext(t.Context(), "go", append([]string{"run", "./cmd/teamgate"}, args...)...)
			cmd.Dir = "../.."
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s\n%s", c.line, out)
			body = string(out)
		default:
			h := http.Header{}
			if c.user != "" {
				h.Set("X-User", c.user)
			}
			if c.contentType != "" {
				h.Set("Content-Type", c.contentType)
			} else if c.body != "" {
				h.Set("Content-Type", "application/x-www-form-urlencoded") // what curl -d sends
			}
			code, body = send(t, srv, c.method, c.path, h, strings.NewReader(c.body))
		}
		got := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
		if c.grep != nil {
			var kept []string
			for _, l := range got {
				if c.grep.MatchString(l) {
					kept = append(kept, l)
				}
			}
			got = kept
		}
		if c.status != "" {
			require.Equal(t, c.status, strconv.Itoa(code), c.line)
		}
		require.Len(t, got, len(c.want), "%s\n%s", c.line, strings.Join(got, "\n"))
		for i, w := range c.want {
			re := "^" + strings.ReplaceAll(regexp.QuoteMeta(w), `\.\.\.`, ".*") + "$"
			require.Regexp(t, re, got[i], c.line)
		}
	}
}
