package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/decisionlog"
	"github.com/teamgate/teamgate/internal/quote"
	"github.com/teamgate/teamgate/internal/strict"
	"github.com/teamgate/teamgate/policy"
)

// usageError marks errors that exit with code 2.
type usageError struct{ error }

// codeError is an error that exits with its own code (teamgate test's failing tests: 2, as opa
// test), without the usage line.
type codeError struct {
	error
	code int
}

// env is one CLI invocation: its streams and global flags.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	data           string
	policyDir      string
	evalBudget     time.Duration // --eval-budget: authz.WithEvalBudget
	decisionLog    string        // --decision-log: where the engine logs its decisions
	clusterFlags                 // --nats, --stream (cluster.go)
	storeFlags                   // --store (ops.go)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	out := &pipeOut{w: stdout, cancel: cancel}
	e := &env{stdin: stdin, stdout: out, stderr: stderr}
	root := e.root()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(out)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if out.closed.Load() {
		return exitBrokenPipe // the reader is gone (| head): nobody to tell, nothing more to print
	}
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "teamgate:", err)
	if ce, ok := errors.AsType[codeError](err); ok {
		return ce.code
	}
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") || strings.Contains(err.Error(), "accepts ") {
		if cmd != nil && cmd != root { // a mistyped flag or a missing argument: say what the command takes
			fmt.Fprintf(stderr, "usage: %s (%s --help for the flags)\n", cmd.UseLine(), cmd.CommandPath())
		}
		return 2
	}
	return 1
}

// exitBrokenPipe is the exit code of a command whose standard output was closed by its reader:
// 128 + SIGPIPE, what a shell reports for a process the signal killed (Go's default for a write
// to a closed stdout), so pipefail scripts see what they saw before. main ignores SIGPIPE so that
// the command stops through its own error path instead, closing what it opened: a decision
// log is flushed, not lost with the process.
const exitBrokenPipe = 141

// pipeOut is the command's standard output. Once a write fails because the reader closed the
// pipe (EPIPE), it cancels the command's context, so loops that print nothing more still stop,
// and every later write fails at once.
type pipeOut struct {
	w      io.Writer
	cancel context.CancelCauseFunc
	closed atomic.Bool
}

func (p *pipeOut) Write(b []byte) (int, error) {
	if p.closed.Load() {
		return 0, errBrokenPipe
	}
	n, err := p.w.Write(b)
	if err != nil && errors.Is(err, syscall.EPIPE) {
		p.closed.Store(true)
		p.cancel(errBrokenPipe)
		return n, errBrokenPipe
	}
	return n, err
}

var errBrokenPipe = fmt.Errorf("standard output: %w", syscall.EPIPE)

// root is the command tree of one invocation, its flags bound to e.
func (e *env) root() *cobra.Command {
	root := &cobra.Command{
		Use:           "teamgate",
		Short:         "Team-based access control for ML platforms: decisions, settings, admission",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&e.data, "data", "", "data file (YAML or JSON) to load into an in-memory store")
	root.PersistentFlags().StringVar(&e.policyDir, "policy", "", "directory of authors' Rego modules and JSON data")
	root.PersistentFlags().DurationVar(&e.evalBudget, "eval-budget", authz.DefaultEvalBudget,
		"time budget of one Rego evaluation under --policy's modules; past it the decision denies with reason error (0: none)")
	root.PersistentFlags().StringVar(&e.decisionLog, "decision-log", "", "append this command's decisions to a decision log (a Badger directory, created if missing; see decisions)")
	_ = root.MarkPersistentFlagFilename("data", "yaml", "yml", "json")
	_ = root.MarkPersistentFlagFilename("policy") // a directory, or one .rego or .json file
	_ = root.MarkPersistentFlagDirname("decision-log")
	e.addClusterFlags(root)
	e.addStoreFlags(root)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkRootFlags(cmd); err != nil {
			return usageError{err}
		}
		if err := checkEmptyPaths(cmd); err != nil { // for the commands without args()
			return usageError{err}
		}
		if e.evalBudget < 0 {
			return usageError{fmt.Errorf("--eval-budget %s: must be >= 0 (0: no budget)", e.evalBudget)}
		}
		if e.policyDir != "" {
			return checkPolicy("--policy", e.policyDir)
		}
		return nil
	}
	root.AddCommand(e.checkCmd(), e.explainCmd(), e.settingsCmd(), e.listCmd(), e.admitCmd(), e.testCmd(), e.benchCmd(), e.clusterCmd(),
		e.versionCmd(), e.exportCmd(), e.applyCmd(), e.createProjectCmd(), e.bulkCmd(), e.whoCanCmd(), e.whatifCmd(), e.lintCmd(), e.decisionsCmd(), e.diffCmd(),
		e.accessDiffCmd(), e.breakGlassCmd())
	return root
}

// attrUsage is --attr's help, on every command that reads it with parseAttrs.
const attrUsage = "attribute key=value, repeatable (dotted keys nest: run.created_by=bob; JSON values are parsed)"

// args wraps cobra's argument validators so their errors exit with code 2. An empty path flag
// is refused first (checkEmptyPaths; cobra validates arguments before PersistentPreRunE), so
// `check --requests ""` says so rather than asking for the arguments --requests replaces.
func args(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := checkEmptyPaths(cmd); err != nil {
			return usageError{err}
		}
		if err := v(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// checkLimit refuses a negative --limit, a usage error on every command that pages (who-can,
// diff, decisions): 0 means no limit there, and a negative one means nothing, so it is not left
// to the library, whose refusal (teamgate.ErrInvalid) would exit 1 like a bad request.
func checkLimit(limit int) error {
	if limit < 0 {
		return fmt.Errorf("--limit %d: must be >= 0 (0: no limit)", limit)
	}
	return nil
}

// engine opens the directory (--data or --nats, see directory) and builds an engine with
// --policy, logging its decisions to --decision-log. done flushes the log and closes
// everything.
func (e *env) engine(ctx context.Context, extra ...authz.Option) (*authz.Engine, func(), error) {
	dir, closeDir, err := e.directory(ctx)
	if err != nil {
		return nil, nil, err
	}
	opts := append(slices.Clone(extra), e.policyOptions()...)
	var dl *decisionlog.Log
	if e.decisionLog != "" {
		if dl, err = openDecisionLog(ctx, "--decision-log", e.decisionLog, true); err != nil {
			closeDir()
			return nil, nil, err
		}
		opts = append(opts, authz.WithDecisionLog(dl))
	}
	eng, err := authz.New(ctx, dir, opts...)
	if err != nil {
		if dl != nil {
			_ = dl.Close()
		}
		closeDir()
		return nil, nil, err
	}
	done := func() {
		if dl != nil {
			// The command's context may have ended (Ctrl-C): the flush still gets a bounded time.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := eng.Close(ctx); err != nil {
				fmt.Fprintln(e.stderr, "teamgate: --decision-log:", err)
			}
			cancel()
			_ = dl.Close()
		}
		closeDir()
	}
	return eng, done, nil
}

// policyOptions are the engine options of the global flags that configure the policy: --policy
// and --eval-budget.
func (e *env) policyOptions() []authz.Option {
	opts := []authz.Option{authz.WithEvalBudget(e.evalBudget)}
	if e.policyDir != "" {
		opts = append(opts, authz.WithPolicyDir(e.policyDir))
	}
	return opts
}

// withEngine runs fn with an engine over --data and --policy, closing the store afterwards.
func (e *env) withEngine(fn func(cmd *cobra.Command, a []string, eng *authz.Engine) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, a []string) error {
		eng, done, err := e.engine(cmd.Context())
		if err != nil {
			return err
		}
		defer done()
		return fn(cmd, a, eng)
	}
}

// echo repeats a single request's error on stderr for people; the JSON line on stdout carries it
// for programs, and the exit code stays 0 because the input was answered (SPEC §11).
func (e *env) echo(err error) {
	if err != nil {
		fmt.Fprintln(e.stderr, "teamgate:", err)
	}
}

// writeJSON writes v as one compact JSON line without HTML escaping.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// decisionLine is one line of `check` output (SPEC §11).
type decisionLine struct {
	Allowed bool           `json:"allowed"`
	Role    string         `json:"role"`
	Reasons []authz.Reason `json:"reasons"`
	Error   *string        `json:"error"`
}

// writeDecision prints check's answer to req: its JSON line, or with --format pretty a line of
// tab-separated fields for people (as who-can's), the request's beside the decision's.
func (e *env) writeDecision(format string, req authz.Request, d authz.Decision, err error) error {
	if format == formatJSON {
		return writeJSON(e.stdout, lineOf(d, err))
	}
	outcome, role, why := "deny", d.Role, reasonText(d.Reasons)
	switch {
	case err != nil:
		outcome, role, why = "error", "none", err.Error()
	case d.Allowed:
		outcome = "allow"
	}
	_, werr := fmt.Fprintf(e.stdout, "%s\t%s\t%s\t%s\t%s\t%s\n", outcome, req.Subject, req.Action, req.Resource, role, why)
	return werr
}

func lineOf(d authz.Decision, err error) decisionLine {
	if err != nil {
		msg := err.Error()
		return decisionLine{Role: "none", Reasons: []authz.Reason{}, Error: &msg}
	}
	if d.Reasons == nil {
		d.Reasons = []authz.Reason{}
	}
	return decisionLine{Allowed: d.Allowed, Role: d.Role, Reasons: d.Reasons}
}

// parseAttrs turns k=v pairs into attributes: dotted keys nest, values that parse as JSON are
// JSON (under the strict rules: a duplicate key is an error, not a string), anything else is a
// string. As in a JSON input, a key given twice is a usage error, and so is a key both given a
// value and nested under (`--attr run=x --attr run.created_by=bob`) or a key with an empty part.
func parseAttrs(pairs []string) (map[string]any, error) {
	out := map[string]any{}
	given := map[string]bool{} // the dotted keys given a value, and their prefixes (false)
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("--attr %q: want key=value", p)}
		}
		parts := strings.Split(k, ".")
		if slices.Contains(parts, "") {
			return nil, usageError{fmt.Errorf("--attr %q: a key part is empty", k)}
		}
		for i := range parts {
			prefix := strings.Join(parts[:i+1], ".")
			leaf, seen := given[prefix]
			switch {
			case seen && leaf:
				return nil, usageError{fmt.Errorf("--attr %s: %s is already given a value", k, prefix)}
			case seen && i == len(parts)-1:
				return nil, usageError{fmt.Errorf("--attr %s: %s already holds nested keys", k, prefix)}
			case i == len(parts)-1:
				given[prefix] = true
			default:
				given[prefix] = false
			}
		}
		var val any
		if !strict.IsJSON([]byte(v)) {
			val = v
		} else if err := strict.JSON([]byte(v), &val); err != nil {
			return nil, usageError{fmt.Errorf("--attr %s: %w", k, err)}
		}
		m := out
		for _, part := range parts[:len(parts)-1] {
			next, ok := m[part].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[part] = next
			}
			m = next
		}
		m[parts[len(parts)-1]] = val
	}
	return out, nil
}

// maxRequestLine bounds one line of a --requests file (1 MiB, newline excluded): the size of
// the largest attributes the engine accepts (rego.MaxAttributeBytes), so the run's memory stays
// bounded whatever the input. A longer line is answered with an error and skipped.
const maxRequestLine = 1 << 20

// eachLine calls fn for every non-blank line of the --requests file ("-" = stdin) with its
// 1-based line number. A line longer than maxRequestLine is read through without being kept
// and given to fn as an error instead (line nil), so the lines after it are still answered.
// The run stops when ctx ends or the input cannot be read.
func (e *env) eachLine(ctx context.Context, path string, fn func(line []byte, n int, err error) error) error {
	r, done, err := e.openFlag("--requests", path)
	if err != nil {
		return err
	}
	defer done()
	br := bufio.NewReaderSize(r, 64*1024)
	var buf []byte
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		var size int
		var err error
		buf, size, err = readLine(br, buf[:0])
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if size > maxRequestLine {
			err := teamgate.Invalid("request line", string(buf[:min(len(buf), quote.Max)]),
				fmt.Sprintf("%d bytes, over the limit of %d bytes (1 MiB) for one line", size, maxRequestLine))
			if err := fn(nil, n, fmt.Errorf("bad request: line %d: %w", n, err)); err != nil {
				return err
			}
			continue
		}
		line := bytes.TrimSpace(buf)
		if len(line) == 0 {
			continue
		}
		if err := fn(line, n, nil); err != nil {
			return err
		}
	}
}

// readLine reads the next line from br, its newline dropped, appending at most
// maxRequestLine+1 bytes of it to buf; size is the whole line's length. err is io.EOF when no
// line is left.
func readLine(br *bufio.Reader, buf []byte) (line []byte, size int, err error) {
	for {
		chunk, err := br.ReadSlice('\n')
		chunk = bytes.TrimSuffix(chunk, []byte("\n"))
		size += len(chunk)
		if keep := maxRequestLine + 1 - len(buf); keep > 0 {
			buf = append(buf, chunk[:min(len(chunk), keep)]...)
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && size > 0:
			return buf, size, nil // a last line without a newline
		case err != nil:
			return buf, size, err
		}
		return buf, size, nil
	}
}

// decodeLine decodes line n of a --requests file under the strict rules (internal/strict): an
// unknown, duplicate or case-variant key is an error naming the key and the line.
func decodeLine(line []byte, n int, v any) error {
	if err := strict.JSONAt(line, n, v); err != nil {
		return fmt.Errorf("bad request: %w", err)
	}
	return nil
}

func (e *env) checkCmd() *cobra.Command {
	var attrs []string
	var owner, requests, format string
	var wait time.Duration
	c := &cobra.Command{
		Use:   "check [SUBJECT ACTION RESOURCE]",
		Short: "Decide one request, or every line of --requests (JSONL), printing one decision each (a JSON line, or --format pretty)",
		Args: withFormat(&format, func(cmd *cobra.Command, a []string) error {
			if wait < 0 {
				return fmt.Errorf("--wait %s: must be >= 0", wait)
			}
			if requests != "" {
				return cobra.NoArgs(cmd, a)
			}
			return cobra.ExactArgs(3)(cmd, a)
		}),
		RunE: e.withEngine(func(cmd *cobra.Command, a []string, eng *authz.Engine) error {
			if requests == "" {
				at, err := parseAttrs(attrs)
				if err != nil {
					return err
				}
				req := authz.Request{Subject: a[0], Action: a[1], Resource: a[2], Owner: owner, Attributes: at}
				d, err := eng.Authorize(cmd.Context(), req)
				e.echo(err)
				return e.writeDecision(format, req, d, err)
			}
			return e.eachLine(cmd.Context(), requests, func(line []byte, n int, err error) error {
				var req authz.Request
				if err == nil {
					err = decodeLine(line, n, &req)
				}
				if err == nil {
					err = waitFor(cmd.Context(), eng, req.MinRevision, wait)
				}
				if err != nil {
					return e.writeDecision(format, req, authz.Decision{}, err)
				}
				d, err := eng.Authorize(cmd.Context(), req)
				return e.writeDecision(format, req, d, err)
			})
		}),
	}
	formatFlag(c, &format, formatJSON, "a request a line: allow, deny or error, subject, action, resource, role, reasons or the error")
	c.Flags().StringArrayVar(&attrs, "attr", nil, attrUsage)
	c.Flags().StringVar(&owner, "owner", "", "context owner (org or org/team) for one-part project references")
	c.Flags().StringVar(&requests, "requests", "", "JSONL file of {subject, action, resource, attributes, owner, min_revision} (- = stdin)")
	_ = c.MarkFlagFilename("requests", "jsonl", "json")
	c.Flags().DurationVar(&wait, "wait", defaultWait, "how long a request line's min_revision waits for the store before that line fails as stale")
	return c
}

// defaultWait is how long a --requests line's min_revision waits by default. The CLI's store
// holds the --data file and nothing writes to it during a run, so a revision it has not reached
// never comes: the wait only has to be bounded, and short.
const defaultWait = time.Second

// waitFor waits at most wait for the engine's store to reach rev (0: nothing to wait for); after
// that it is teamgate.ErrStale for that request alone.
func waitFor(ctx context.Context, eng *authz.Engine, rev uint64, wait time.Duration) error {
	if rev == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := eng.Directory().WaitRevision(ctx, rev); err != nil {
		return fmt.Errorf("min_revision %d not reached within --wait %s: %w", rev, wait, err)
	}
	return nil
}

func (e *env) explainCmd() *cobra.Command {
	var attrs []string
	var owner string
	var format string
	c := &cobra.Command{
		Use:   "explain SUBJECT ACTION RESOURCE",
		Short: "Show the facts, the role path and the reasons of one decision",
		Args:  withFormat(&format, cobra.ExactArgs(3)),
		RunE: e.withEngine(func(cmd *cobra.Command, a []string, eng *authz.Engine) error {
			at, err := parseAttrs(attrs)
			if err != nil {
				return err
			}
			x, err := eng.Explain(cmd.Context(), authz.Request{Subject: a[0], Action: a[1], Resource: a[2], Owner: owner, Attributes: at})
			if err != nil {
				return err
			}
			if format == formatJSON {
				return writeJSON(e.stdout, x)
			}
			fmt.Fprintf(e.stdout, "%s %s %s\n", a[0], a[1], a[2])
			for i, step := range x.Path {
				fmt.Fprintf(e.stdout, "  %d. %s\n", i+1, step)
			}
			printSuggestions(e.stdout, x.Suggestions)
			fmt.Fprint(e.stdout, "facts (policy input):\n  ")
			return writeIndented(e.stdout, x.Input, "  ")
		}),
	}
	c.Flags().StringArrayVar(&attrs, "attr", nil, attrUsage)
	c.Flags().StringVar(&owner, "owner", "", "context owner for one-part project references")
	formatFlag(c, &format, formatPretty, "the path, then the facts")
	return c
}

func (e *env) settingsCmd() *cobra.Command {
	var user, format string
	c := &cobra.Command{
		Use:   "settings PROJECT",
		Short: "Print a project's effective settings with sources and conflicts",
		Args:  withFormat(&format, cobra.ExactArgs(1)),
		RunE: e.withEngine(func(cmd *cobra.Command, a []string, eng *authz.Engine) error {
			s, err := eng.EffectiveSettings(cmd.Context(), a[0], user)
			if err != nil {
				return err
			}
			if format == formatPretty {
				printSettings(e.stdout, s)
				return nil
			}
			return writeJSON(e.stdout, s)
		}),
	}
	c.Flags().StringVar(&user, "user", "", "apply this user's grant defaults")
	formatFlag(c, &format, formatJSON, "a field a line with its source")
	return c
}

func (e *env) listCmd() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "list SUBJECT [OWNER]",
		Short: "Print the sorted projects SUBJECT can see in an org or team space (default: their default team)",
		Args:  withFormat(&format, cobra.RangeArgs(1, 2)),
		RunE: e.withEngine(func(cmd *cobra.Command, a []string, eng *authz.Engine) error {
			owner := ""
			if len(a) == 2 {
				owner = a[1]
			}
			page, err := eng.ListProjects(cmd.Context(), a[0], owner, authz.Page{})
			if err != nil {
				return err
			}
			if format == formatPretty {
				for _, p := range page.Projects {
					fmt.Fprintln(e.stdout, p)
				}
				return nil
			}
			return writeJSON(e.stdout, page.Projects)
		}),
	}
	formatFlag(c, &format, formatJSON, "a project a line")
	return c
}

// admitLine is one line of `admit` output (SPEC §11): the admission's own JSON plus "error".
type admitLine struct {
	policy.Admission
	Error *string `json:"error"`
}

func admitOf(a policy.Admission, err error) admitLine {
	if err != nil {
		msg := err.Error()
		return admitLine{Admission: policy.Admission{Presets: []string{}, Violations: []policy.Violation{}}, Error: &msg}
	}
	return admitLine{Admission: a}
}

func (e *env) admitCmd() *cobra.Command {
	var runFile, requests string
	c := &cobra.Command{
		Use:   "admit [SUBJECT PROJECT --run RUN.json]",
		Short: "Decide whether runs may be created, printing one JSON admission per input",
		Args: args(func(cmd *cobra.Command, a []string) error {
			if requests != "" {
				return cobra.NoArgs(cmd, a)
			}
			if runFile == "" {
				return errors.New("--run RUN.json (or --requests) is required")
			}
			return cobra.ExactArgs(2)(cmd, a)
		}),
		RunE: e.withEngine(func(cmd *cobra.Command, a []string, eng *authz.Engine) error {
			if requests == "" {
				raw, err := e.readFlag("--run", runFile, false)
				if err != nil {
					return err
				}
				var r policy.Run
				if err := strict.JSON(raw, &r); err != nil {
					err = fmt.Errorf("--run %s: %w", runFile, err)
					e.echo(err)
					return writeJSON(e.stdout, admitOf(policy.Admission{}, err))
				}
				adm, err := eng.Admit(cmd.Context(), a[0], a[1], r)
				e.echo(err)
				return writeJSON(e.stdout, admitOf(adm, err))
			}
			return e.eachLine(cmd.Context(), requests, func(line []byte, n int, err error) error {
				var req struct {
					Subject string     `json:"subject"`
					Project string     `json:"project"`
					Run     policy.Run `json:"run"`
				}
				if err == nil {
					err = decodeLine(line, n, &req)
				}
				if err != nil {
					return writeJSON(e.stdout, admitOf(policy.Admission{}, err))
				}
				adm, err := eng.Admit(cmd.Context(), req.Subject, req.Project, req.Run)
				return writeJSON(e.stdout, admitOf(adm, err))
			})
		}),
	}
	c.Flags().StringVar(&runFile, "run", "", "JSON file of the run {kind, runtime, queue, agent, namespace, presets, connections, resources, labels}")
	c.Flags().StringVar(&requests, "requests", "", "JSONL file of {subject, project, run} (- = stdin)")
	_ = c.MarkFlagFilename("run", "json")
	_ = c.MarkFlagFilename("requests", "jsonl", "json")
	return c
}
