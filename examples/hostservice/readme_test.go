package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// readmeCommand is a curl command of the README's walk-through and the output it shows.
type readmeCommand struct {
	line               string // as written, continuations joined
	method, user, body string
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
		if !strings.HasPrefix(l, "curl ") {
			continue
		}
		cmds = append(cmds, parseCurl(t, l))
	}
	return cmds
}

var curlArg = regexp.MustCompile(`'[^']*'|\S+`)

// parseCurl reads the curl flags the walk-through uses: -X, -H 'X-User: u', -d '...', -s, the
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

// TestReadmeWalkthrough runs README.md's host service walk-through, in order, on one service and
// checks that each command answers what the README shows.
func TestReadmeWalkthrough(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	cmds := walkthrough(t)
	require.GreaterOrEqual(t, len(cmds), 8)
	for _, c := range cmds {
		code, body := call(t, srv, c.user, c.method, c.path, c.body)
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
