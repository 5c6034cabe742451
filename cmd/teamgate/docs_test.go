package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// docBlocks returns the shell commands of a Markdown file, block by block: each line (with its
// `\` continuations) of a fenced block that is a command rather than output, the commands of one
// block together (they run in order in one shell: a `cd` that is not in a subshell, `(cd bench &&
// ...)`, holds for the lines after it); with inline, each inline `go run ./cmd/teamgate ...` of
// the prose too, as a block of its own.
func docBlocks(t *testing.T, file string, inline bool) [][]string {
	t.Helper()
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	var blocks [][]string
	in, lang := false, ""
	var cont string
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "```"); ok {
			in, lang = !in, rest
			if in {
				blocks = append(blocks, nil)
			}
			continue
		}
		if !in {
			for _, m := range regexp.MustCompile("`(go run ./cmd/teamgate [^`]*)`").FindAllStringSubmatch(line, -1) {
				if inline {
					blocks = append(blocks, []string{m[1]})
				}
			}
			continue
		}
		if lang != "" && lang != "sh" {
			continue
		}
		line = cont + line
		cont = ""
		if l, ok := strings.CutSuffix(line, "\\"); ok {
			cont = l + " "
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "("), " ")
		if slices.Contains([]string{"go", "cd", "for", "git"}, first) || strings.HasPrefix(first, "/tmp/") ||
			regexp.MustCompile(`^[A-Z_]+=`).MatchString(first) {
			blocks[len(blocks)-1] = append(blocks[len(blocks)-1], strings.TrimSpace(line))
		}
	}
	return slices.DeleteFunc(blocks, func(b []string) bool { return len(b) == 0 })
}

// docOutputs returns what a Markdown file's sh blocks show a `go run ./cmd/teamgate` command
// printing: the `#` lines right under it (no blank line between), keyed by the command as
// docBlocks reads it (continuations joined). A `#` line after a blank line is a comment.
func docOutputs(t *testing.T, file string) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	out := map[string][]string{}
	in, lang, cur, cont := false, "", "", ""
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "```"); ok {
			in, lang, cur = !in, rest, ""
			continue
		}
		if !in || (lang != "" && lang != "sh") {
			continue
		}
		if text, ok := strings.CutPrefix(line, "#"); ok && cont == "" {
			if cur != "" {
				out[cur] = append(out[cur], text)
			}
			continue
		}
		line = cont + line
		cont = ""
		if l, ok := strings.CutSuffix(line, "\\"); ok {
			cont = l + " "
			continue
		}
		cur = ""
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "go run ./cmd/teamgate ") {
			_, dup := out[l]
			require.False(t, dup, "%s: %s is shown twice", file, l)
			cur = l
		}
	}
	return out
}

// rfc3339 is a time as the docs show one in an output: it stands for any time.
var rfc3339 = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)

// shows reports whether out holds what a doc shows of it: the shown text in order, line breaks
// and other white space aside (the docs wrap long lines), where "..." and an RFC 3339 time stand
// for anything.
func shows(out string, shown []string) bool {
	squash := func(s string) string { return strings.Join(strings.Fields(s), "") }
	text := rfc3339.ReplaceAllString(squash(strings.Join(shown, "\n")), "...")
	got := squash(out)
	for _, piece := range strings.Split(text, "...") {
		i := strings.Index(got, piece)
		if i < 0 {
			return false
		}
		got = got[i+len(piece):]
	}
	return true
}

// docCommands is docBlocks' commands one after the other.
func docCommands(t *testing.T, file string) []string {
	t.Helper()
	return slices.Concat(docBlocks(t, file, true)...)
}

// words splits a command line as a shell would for these commands: single and double quotes
// group, the operators &&, ;, | and > are words of their own, and # starts a comment.
func words(line string) []string {
	var out []string
	var cur strings.Builder
	quote := byte(0)
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '#' && cur.Len() == 0: // a comment runs to the end of the line
			return out
		case c == '\'' || c == '"':
			quote = c
		case c == ' ' || c == '\t':
			flush()
		case c == ';' || c == '|' || c == '>':
			flush()
			out = append(out, string(c))
		case c == '&' && i+1 < len(line) && line[i+1] == '&':
			flush()
			out = append(out, "&&")
			i++
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return out
}

// goPackage is what a package's sources declare: benchmarks, tests, flags and environment
// variables read.
type goPackage struct {
	benchmarks, tests, flags, env []string
}

func parsePackage(t checkT, dir string) goPackage {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no Go package in %s", dir)
	var p goPackage
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		require.NoError(t, err)
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncDecl:
				if n.Recv == nil && strings.HasPrefix(n.Name.Name, "Benchmark") {
					p.benchmarks = append(p.benchmarks, n.Name.Name)
				}
				if n.Recv == nil && strings.HasPrefix(n.Name.Name, "Test") {
					p.tests = append(p.tests, n.Name.Name)
				}
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok || len(n.Args) == 0 {
					return true
				}
				lit, ok := n.Args[0].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				s, _ := strconv.Unquote(lit.Value)
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "flag" {
					p.flags = append(p.flags, s)
				}
			case *ast.BasicLit:
				if s, err := strconv.Unquote(n.Value); err == nil && regexp.MustCompile(`^TEAMGATE_[A-Z_]+$`).MatchString(s) {
					p.env = append(p.env, s)
				}
			}
			return true
		})
	}
	return p
}

// goTestFlags are the `go test` flags the documents use, with whether they take a value; a test
// binary takes the same (but the build flags) as -test.NAME.
var goTestFlags = map[string]bool{
	"run": true, "bench": true, "benchmem": false, "count": true, "benchtime": true, "timeout": true,
	"v": false, "cpu": true, "cpuprofile": true, "memprofile": true, "short": false, "parallel": true,
	"c": false, "o": true, "race": false, "json": false, "fuzz": true, "fuzztime": true, "gcflags": true,
}

// checkGoTest checks the flags and packages of `go test ARGS` (binary: a test binary's
// -test.NAME flags) run in dir, against the benchmarks, tests and flags the package declares.
func checkGoTest(t checkT, cmd, dir string, args []string, binary bool) {
	t.Helper()
	var pkgs []string
	flags := map[string]string{}
	var pkgFlags []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			require.False(t, binary, "%s: argument %q", cmd, a)
			pkgs = append(pkgs, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if binary {
			n, ok := strings.CutPrefix(name, "test.")
			if ok {
				name = n
			} else {
				pkgFlags = append(pkgFlags, name)
			}
		}
		takes, known := goTestFlags[name]
		if !known {
			pkgFlags = append(pkgFlags, name)
			takes = true // a package's own flags in these documents take values
		}
		if takes && !hasVal {
			require.Less(t, i+1, len(args), "%s: %s needs a value", cmd, a)
			i++
			val = args[i]
		}
		flags[name] = val
	}
	if len(pkgs) == 0 {
		pkgs = []string{"."}
	}
	for _, pkg := range pkgs {
		pdir := filepath.Join(dir, pkg)
		if rest, ok := strings.CutSuffix(pkg, "/..."); ok {
			pdir = filepath.Join(dir, rest)
			st, err := os.Stat(pdir)
			require.NoError(t, err, cmd)
			require.True(t, st.IsDir(), cmd)
			continue
		}
		p := parsePackage(t, pdir)
		for _, f := range pkgFlags {
			require.Contains(t, p.flags, f, "%s: flag -%s is neither go test's nor the package's", cmd, f)
		}
		if re, ok := flags["bench"]; ok {
			// go test matches each /-separated part against one level of names.
			top, _, _ := strings.Cut(re, "/")
			rx, err := regexp.Compile(top)
			require.NoError(t, err, cmd)
			require.True(t, slices.ContainsFunc(p.benchmarks, rx.MatchString), "%s: -bench %q matches no benchmark of %s", cmd, re, pdir)
		}
		if re, ok := flags["run"]; ok && re != "XXX" {
			rx, err := regexp.Compile(re)
			require.NoError(t, err, cmd)
			require.True(t, slices.ContainsFunc(p.tests, rx.MatchString), "%s: -run %q matches no test of %s", cmd, re, pdir)
		}
	}
	for _, d := range []string{"timeout"} {
		if v, ok := flags[d]; ok {
			_, err := time.ParseDuration(v)
			require.NoError(t, err, cmd)
		}
	}
	if v, ok := flags["count"]; ok {
		_, err := strconv.Atoi(v)
		require.NoError(t, err, cmd)
	}
	if v, ok := flags["benchtime"]; ok {
		if n, isCount := strings.CutSuffix(v, "x"); isCount {
			_, err := strconv.Atoi(n)
			require.NoError(t, err, cmd)
		} else {
			_, err := time.ParseDuration(v)
			require.NoError(t, err, cmd)
		}
	}
}

// checkBlock checks the commands of one block in order, from the repository root, as one shell
// runs them: a `cd` holds for the lines after it unless it is in a subshell.
func checkBlock(run *testing.T, t checkT, root string, block []string) {
	t.Helper()
	dir := root
	for _, line := range block {
		dir = checkCommand(run, t, root, dir, line)
	}
}

// checkCommand checks one documented command line, run in dir (the repository root or below):
// each `go test` and test binary by its flags and names, each benchstat by its files, each
// teamgate command by running it. It returns the directory the shell is in after the line: dir
// when the line is a subshell, `( ... )`.
func checkCommand(run *testing.T, t checkT, root, dir, line string) string {
	t.Helper()
	after := func(d string) string { return d }
	if inner, ok := strings.CutPrefix(line, "("); ok {
		inner, ok = strings.CutSuffix(inner, ")")
		require.True(t, ok, "%s: a subshell ends the line", line)
		start := dir
		line, after = inner, func(string) string { return start }
	}
	written := map[string]bool{}
	for _, seg := range splitSegments(words(line)) {
		for len(seg) > 0 && (seg[0] == "for" || seg[0] == "do" || seg[0] == "done") {
			if seg[0] == "for" {
				seg = nil // `for v in ...`: the loop's words
				break
			}
			seg = seg[1:]
		}
		for len(seg) > 0 && regexp.MustCompile(`^[A-Z_]+=`).MatchString(seg[0]) {
			name, _, _ := strings.Cut(seg[0], "=")
			if strings.HasPrefix(name, "TEAMGATE_") {
				require.Contains(t, parsePackage(t, dir).env, name, "%s: environment variable %s is read by no code", line, name)
			}
			seg = seg[1:]
		}
		if i := slices.Index(seg, ">"); i >= 0 {
			require.Less(t, i+1, len(seg), line)
			written[seg[i+1]] = true
			seg = seg[:i]
		}
		if len(seg) == 0 {
			continue
		}
		require.NotEqual(t, "benchstat", seg[0], "%s: run benchstat as `go run golang.org/x/perf/cmd/benchstat@latest FILE...`", line)
		switch {
		case seg[0] == "cd":
			require.Len(t, seg, 2, line)
			if !filepath.IsAbs(seg[1]) {
				dir = filepath.Join(dir, seg[1])
				st, err := os.Stat(dir)
				require.NoError(t, err, line)
				require.True(t, st.IsDir(), line)
			} else {
				dir = filepath.Join(root, "bench") // a worktree of this repository's bench module
			}
		case seg[0] == "git":
			require.Equal(t, []string{"git", "worktree", "add"}, seg[:3], line)
		case len(seg) > 1 && seg[0] == "go" && seg[1] == "test":
			checkGoTest(t, line, dir, seg[2:], false)
		case seg[0] == "valgrind":
			i := slices.IndexFunc(seg, func(w string) bool { return strings.HasPrefix(w, "/tmp/") })
			require.Positive(t, i, line)
			checkGoTest(t, line, binaryPackage(root, seg[i]), seg[i+1:], true)
		case strings.HasPrefix(seg[0], "/tmp/") && strings.HasSuffix(seg[0], ".test"):
			checkGoTest(t, line, binaryPackage(root, seg[0]), seg[1:], true)
		case len(seg) > 2 && seg[0] == "go" && seg[1] == "run" && seg[2] == "golang.org/x/perf/cmd/benchstat@latest":
			files := 0
			for i := 3; i < len(seg); i++ {
				f := seg[i]
				if strings.HasPrefix(f, "-") { // a flag (-col variant, -filter ...): each takes a value
					i++
					continue
				}
				files++
				if written[f] {
					continue
				}
				_, err := os.Stat(filepath.Join(dir, f))
				require.NoError(t, err, "%s: %s is neither written before nor in the repository", line, f)
			}
			require.Positive(t, files, "%s: benchstat reads files", line)
		case len(seg) > 2 && seg[0] == "go" && seg[1] == "run" && seg[2] == "./cmd/teamgate":
			require.Equal(t, root, dir, "%s: go run ./cmd/teamgate runs from the repository root", line)
			args := seg[3:]
			for i, a := range args {
				if _, err := os.Stat(filepath.Join(root, a)); err == nil && strings.Contains(a, "/") {
					args[i] = filepath.Join(root, a)
				}
			}
			out, stderr, code := cli(run, "", args...)
			require.Equal(t, 0, code, "%s\n%s%s", line, stderr, out)
		case len(seg) > 1 && seg[0] == "go" && seg[1] == "run":
			_, err := os.Stat(filepath.Join(dir, seg[2]))
			require.NoError(t, err, line)
		default:
			require.Failf(t, "unknown command", "%s: %q is not a command these documents may use", line, seg[0])
		}
	}
	return after(dir)
}

// binaryPackage is the package directory of a test binary the documents build: /tmp/NAME.test
// is package NAME's (authz.test: ./authz), any other the bench module's.
func binaryPackage(root, bin string) string {
	name := strings.TrimSuffix(filepath.Base(bin), ".test")
	if st, err := os.Stat(filepath.Join(root, name)); err == nil && st.IsDir() {
		return filepath.Join(root, name)
	}
	return filepath.Join(root, "bench")
}

// splitSegments splits words at &&, ; and |.
func splitSegments(ws []string) [][]string {
	var out [][]string
	var cur []string
	for _, w := range ws {
		if w == "&&" || w == ";" || w == "|" {
			out = append(out, cur)
			cur = nil
			continue
		}
		cur = append(cur, w)
	}
	return append(out, cur)
}

// TestResultsCommandsParse: every command of bench/RESULTS.md (and the go test commands of the
// READMEs) uses flags that exist, packages and files that exist, benchmark and test names that
// match, and benchstat on files — checked from the sources, without running a benchmark.
// teamgate commands there run, as in TestReadmeCommandsRun.
func TestResultsCommandsParse(t *testing.T) {
	t.Parallel()
	const root = "../.."
	require.GreaterOrEqual(t, len(docCommands(t, filepath.Join(root, "bench", "RESULTS.md"))), 20)
	for _, b := range docBlocks(t, filepath.Join(root, "bench", "RESULTS.md"), true) {
		checkBlock(t, t, root, b)
	}
	for _, doc := range []string{"README.md", "rego/README.md"} {
		for _, c := range docCommands(t, filepath.Join(root, doc)) {
			if strings.HasPrefix(c, "go test") {
				checkCommand(t, t, root, root, c)
			}
		}
	}
}

// checkT is what the checker needs of a test: require's, and Helper.
type checkT interface {
	require.TestingT
	Helper()
}

// recorder is a checkT that records a failure and stops the check, for checking the checker.
type recorder struct{ failed bool }

type stopped struct{}

func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) FailNow()              { r.failed = true; panic(stopped{}) }
func (r *recorder) Helper()               {}
func (r *recorder) Fatalf(string, ...any) { r.FailNow() }

// TestDocsCheckerCatchesMistakes: the checker refuses what the documents must not hold, and
// takes the same commands written right.
func TestDocsCheckerCatchesMistakes(t *testing.T) {
	t.Parallel()
	check := func(line string) (failed bool) {
		r := &recorder{}
		defer func() {
			if p := recover(); p != nil {
				if _, ok := p.(stopped); !ok {
					panic(p)
				}
			}
			failed = r.failed
		}()
		checkBlock(t, r, "../..", strings.Split(line, "\n"))
		return r.failed
	}
	for bad, good := range map[string]string{
		"cd bench && go test -run XXX -bench . -count 5 | benchstat":                     "cd bench && go test -run XXX -bench . -count 5 > /tmp/x.txt && go run golang.org/x/perf/cmd/benchstat@latest /tmp/x.txt",
		"go test ./authz -run XXX -bench NoSuchBenchmark":                                "go test ./authz -run XXX -bench AuthorizeCached",
		"go test ./authz -run XXX -bench . -benchmemory":                                 "go test ./authz -run XXX -bench . -benchmem",
		"go test ./nowhere -run XXX":                                                     "go test ./authz -run XXX",
		"go test ./authz -run TestNoSuchTest":                                            "go test ./authz -run TestHotPathAllocations",
		"go test ./authz -run XXX -count five":                                           "go test ./authz -run XXX -count 5",
		"go run golang.org/x/perf/cmd/benchstat@latest results-stop13.txt":               "go run golang.org/x/perf/cmd/benchstat@latest bench/results-stop13.txt",
		"go run ./cmd/teamgate version --cached":                                         "go run ./cmd/teamgate version",
		"cd bench && /tmp/b.test -test.bench Cluster -test.bogus 1":                      "cd bench && /tmp/b.test -test.bench Cluster -catchup.revisions 1",
		"cd bench && TEAMGATE_NO_SUCH=1 go test -run XXX -bench LargeTier -benchtime 1x": "cd bench && TEAMGATE_LARGE_TIER=1 go test -run XXX -bench LargeTier -benchtime 1x",
		"valgrind --tool=callgrind /tmp/authz.test -test.bench AuthorizeRego":            "valgrind --tool=callgrind /tmp/authz.test -test.bench DecisionLogCost",
		// A cd holds for the block's next lines, unless it is in a subshell.
		"cd bench && go test -run XXX -bench Cluster\ngo run golang.org/x/perf/cmd/benchstat@latest bench/results-stop13.txt": "(cd bench && go test -run XXX -bench Cluster)\ngo run golang.org/x/perf/cmd/benchstat@latest bench/results-stop13.txt",
		"cd bench && go test -run XXX -bench Cluster\ncd bench && go test -run XXX -bench Cluster":                            "(cd bench && go test -run XXX -bench Cluster)\ncd bench && go test -run XXX -bench Cluster",
	} {
		require.True(t, check(bad), "the checker takes %q", bad)
		require.False(t, check(good), "the checker refuses %q", good)
	}
}

// TestShowsComparesInOrder: the comparison of a doc's shown output takes line wrapping, "..."
// and shown times loosely, and nothing else.
func TestShowsComparesInOrder(t *testing.T) {
	t.Parallel()
	out := "adam\tadmin\torg_role: adam is org admin\nuntil 2027-01-02T03:04:05.123Z (30m0s), revision 5\n"
	for shown, want := range map[string]bool{
		" adam admin org_role: adam\n is org admin":                true, // wrapped, tabs as spaces
		" adam ... org admin\n until 2026-12-02T10:10:01Z (30m0s)": true, // elided, another time
		" revision 5":                          true, // a part of the output
		" adam is org owner":                   false,
		" revision 5\n adam admin":             false, // out of order
		" until 2026-12-02T10:10:01Z (1h0m0s)": false,
	} {
		require.Equal(t, want, shows(out, strings.Split(shown, "\n")), shown)
	}
}
