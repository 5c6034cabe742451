package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/strict"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// usageError marks errors that exit with code 2.
type usageError struct{ error }

// env is one CLI invocation: its streams and global flags.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	data           string
	policyDir      string
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "teamgate",
		Short:         "Team-based access control for ML platforms: decisions, settings, admission",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&e.data, "data", "", "data file (YAML or JSON) to load into an in-memory store")
	root.PersistentFlags().StringVar(&e.policyDir, "policy", "", "directory of authors' Rego modules and JSON data")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(e.checkCmd(), e.explainCmd(), e.settingsCmd(), e.listCmd(), e.admitCmd(), e.testCmd(), e.benchCmd())
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "teamgate:", err)
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") || strings.Contains(err.Error(), "accepts ") {
		return 2
	}
	return 1
}

// args wraps cobra's argument validators so their errors exit with code 2.
func args(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := v(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// engine opens an in-memory store with --data and builds an engine with --policy.
func (e *env) engine(ctx context.Context, extra ...authz.Option) (*authz.Engine, func(), error) {
	if e.data == "" {
		return nil, nil, usageError{errors.New("--data FILE is required")}
	}
	st, err := store.Open(ctx, store.Options{})
	if err != nil {
		return nil, nil, err
	}
	if _, err := st.LoadFile(ctx, e.data); err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	opts := extra
	if e.policyDir != "" {
		opts = append(opts, authz.WithPolicyDir(e.policyDir))
	}
	eng, err := authz.New(ctx, st, opts...)
	if err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	return eng, func() { _ = st.Close() }, nil
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
// string.
func parseAttrs(pairs []string) (map[string]any, error) {
	out := map[string]any{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("--attr %q: want key=value", p)}
		}
		var val any
		if !strict.IsJSON([]byte(v)) {
			val = v
		} else if err := strict.JSON([]byte(v), &val); err != nil {
			return nil, usageError{fmt.Errorf("--attr %s: %w", k, err)}
		}
		m := out
		parts := strings.Split(k, ".")
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

// eachLine calls fn for every non-blank line of the --requests file ("-" = stdin) with its
// 1-based line number.
func (e *env) eachLine(path string, fn func(line []byte, n int) error) error {
	var r io.Reader = e.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if err := fn(line, n); err != nil {
			return err
		}
	}
	return sc.Err()
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
	var owner, requests string
	c := &cobra.Command{
		Use:   "check [SUBJECT ACTION RESOURCE]",
		Short: "Decide one request, or every line of --requests (JSONL), printing one JSON decision each",
		Args: args(func(cmd *cobra.Command, a []string) error {
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
				d, err := eng.Authorize(cmd.Context(), authz.Request{Subject: a[0], Action: a[1], Resource: a[2], Owner: owner, Attributes: at})
				e.echo(err)
				return writeJSON(e.stdout, lineOf(d, err))
			}
			return e.eachLine(requests, func(line []byte, n int) error {
				var req authz.Request
				if err := decodeLine(line, n, &req); err != nil {
					return writeJSON(e.stdout, lineOf(authz.Decision{}, err))
				}
				d, err := eng.Authorize(cmd.Context(), req)
				return writeJSON(e.stdout, lineOf(d, err))
			})
		}),
	}
	c.Flags().StringArrayVar(&attrs, "attr", nil, "attribute key=value (dotted keys nest; JSON values are parsed)")
	c.Flags().StringVar(&owner, "owner", "", "context owner (org or org/team) for one-part project references")
	c.Flags().StringVar(&requests, "requests", "", "JSONL file of {subject, action, resource, attributes, owner} (- = stdin)")
	return c
}

func (e *env) explainCmd() *cobra.Command {
	var attrs []string
	var owner string
	var asJSON bool
	c := &cobra.Command{
		Use:   "explain SUBJECT ACTION RESOURCE",
		Short: "Show the facts, the role path and the reasons of one decision",
		Args:  args(cobra.ExactArgs(3)),
		RunE: e.withEngine(func(cmd *cobra.Command, a []string, eng *authz.Engine) error {
			at, err := parseAttrs(attrs)
			if err != nil {
				return err
			}
			x, err := eng.Explain(cmd.Context(), authz.Request{Subject: a[0], Action: a[1], Resource: a[2], Owner: owner, Attributes: at})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(e.stdout, x)
			}
			fmt.Fprintf(e.stdout, "%s %s %s\n", a[0], a[1], a[2])
			for i, step := range x.Path {
				fmt.Fprintf(e.stdout, "  %d. %s\n", i+1, step)
			}
			facts, _ := json.MarshalIndent(x.Input, "  ", "  ")
			fmt.Fprintf(e.stdout, "facts (policy input):\n  %s\n", facts)
			return nil
		}),
	}
	c.Flags().StringArrayVar(&attrs, "attr", nil, "attribute key=value")
	c.Flags().StringVar(&owner, "owner", "", "context owner for one-part project references")
	c.Flags().BoolVar(&asJSON, "json", false, "print the explanation as JSON")
	return c
}

func (e *env) settingsCmd() *cobra.Command {
	var user string
	c := &cobra.Command{
		Use:   "settings PROJECT",
		Short: "Print a project's effective settings with sources and conflicts",
		Args:  args(cobra.ExactArgs(1)),
		RunE: e.withEngine(func(cmd *cobra.Command, a []string, eng *authz.Engine) error {
			s, err := eng.EffectiveSettings(cmd.Context(), a[0], user)
			if err != nil {
				return err
			}
			return writeJSON(e.stdout, s)
		}),
	}
	c.Flags().StringVar(&user, "user", "", "apply this user's grant defaults")
	return c
}

func (e *env) listCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list SUBJECT [OWNER]",
		Short: "Print the sorted projects SUBJECT can see in an org or team space (default: their default team)",
		Args:  args(cobra.RangeArgs(1, 2)),
		RunE: e.withEngine(func(cmd *cobra.Command, a []string, eng *authz.Engine) error {
			owner := ""
			if len(a) == 2 {
				owner = a[1]
			}
			page, err := eng.ListProjects(cmd.Context(), a[0], owner, authz.Page{})
			if err != nil {
				return err
			}
			return writeJSON(e.stdout, page.Projects)
		}),
	}
}

// admitLine is one line of `admit` output (SPEC §11).
type admitLine struct {
	Allowed    bool               `json:"allowed"`
	Queue      string             `json:"queue"`
	Presets    []string           `json:"presets"`
	Violations []policy.Violation `json:"violations"`
	Error      *string            `json:"error"`
}

func admitOf(a policy.Admission, err error) admitLine {
	if err != nil {
		msg := err.Error()
		return admitLine{Presets: []string{}, Violations: []policy.Violation{}, Error: &msg}
	}
	return admitLine{Allowed: a.Allowed, Queue: a.Queue, Presets: a.Presets, Violations: a.Violations}
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
				raw, err := os.ReadFile(runFile)
				if err != nil {
					return err
				}
				var r policy.Run
				if err := strict.JSON(raw, &r); err != nil {
					err = fmt.Errorf("%s: %w", runFile, err)
					e.echo(err)
					return writeJSON(e.stdout, admitOf(policy.Admission{}, err))
				}
				adm, err := eng.Admit(cmd.Context(), a[0], a[1], r)
				e.echo(err)
				return writeJSON(e.stdout, admitOf(adm, err))
			}
			return e.eachLine(requests, func(line []byte, n int) error {
				var req struct {
					Subject string     `json:"subject"`
					Project string     `json:"project"`
					Run     policy.Run `json:"run"`
				}
				if err := decodeLine(line, n, &req); err != nil {
					return writeJSON(e.stdout, admitOf(policy.Admission{}, err))
				}
				adm, err := eng.Admit(cmd.Context(), req.Subject, req.Project, req.Run)
				return writeJSON(e.stdout, admitOf(adm, err))
			})
		}),
	}
	c.Flags().StringVar(&runFile, "run", "", "JSON file of the run {kind, runtime, queue, agent, namespace, presets, connections, resources, labels}")
	c.Flags().StringVar(&requests, "requests", "", "JSONL file of {subject, project, run} (- = stdin)")
	return c
}

func (e *env) testCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "test [DIR]",
		Short: "Run the Rego tests (test_ rules) of DIR with the default policy loaded (no DIR: the default policy's own tests)",
		Args:  args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var mods []rego.Module
			var data []map[string]any
			for _, dir := range append(a, e.policyDir) {
				if dir == "" {
					continue
				}
				m, d, err := rego.LoadDir(dir)
				if err != nil {
					return err
				}
				mods, data = append(mods, m...), append(data, d...)
			}
			if len(mods) == 0 {
				mods = rego.DefaultTests()
			}
			results, err := rego.Test(cmd.Context(), mods, data...)
			if err != nil {
				return err
			}
			failed := 0
			for _, r := range results {
				status := "PASS"
				if !r.Pass {
					status, failed = "FAIL", failed+1
				}
				fmt.Fprintf(e.stdout, "%s %s.%s %s\n", status, r.Package, r.Name, r.Error)
			}
			fmt.Fprintf(e.stdout, "%d passed, %d failed\n", len(results)-failed, failed)
			if failed > 0 {
				return fmt.Errorf("%d Rego test(s) failed", failed)
			}
			return nil
		},
	}
}
