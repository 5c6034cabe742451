package main

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/lineage"
	"github.com/spf13/cobra"

	"github.com/teamgate/teamgate/internal/plainjson"
	"github.com/teamgate/teamgate/rego"
)

// testCmd is `teamgate test`: `opa test` with the default policy and data loaded. It runs OPA's
// tester and prints with OPA's own reporters, so its output reads as `opa test`'s does:
//   - pretty (default): failures with file:line, the failing expression and print() output;
//     -v adds every test with its duration and print() output, and each failure's trace, filtered
//     as opa test filters it (--explain fails|full|debug, traceFilter).
//   - --var-values: the failing expression with its variables' values (opa test --var-values).
//   - a module that does not parse or compile: OPA's context lines under each problem
//     (withContext), as opa test prints them.
//   - json: OPA's JSON array of results (location, duration, output, fail/error), with `<`, `>`
//     and `&` as they are (OPA's reporters escape them: plainjson.Unescape).
//   - --timeout bounds each test (default 5 s, as opa test): a test past it errors, so a runaway
//     comprehension does not hang the run.
//   - --coverage: pretty prints each file's coverage and the total after the results; json prints
//     OPA's coverage report (as `opa test --coverage`) once every test passes, and the JSON
//     results when one fails (where OPA's reporter prints its pretty text). The default policy is
//     in the report.
//
// The test modules' warnings (rego.TestRun.Warnings: a rule of the default policy or the test
// helper that does not exist) and the policy modules' (rego.Policy.Warnings, as `teamgate lint
// --policy` reports them) go to stderr; they do not fail the run.
//
// As opa test, it exits 2 when a test fails or errors at runtime (a conflict, a built-in's
// error: rego.RunTests raises them, so a `not` over one cannot pass) or is skipped (todo_test_,
// unless -z), and 1 when the tests cannot run: a module that does not parse or compile or is in
// a package an author may not use, a PATH that holds no module or data file (opa test would run
// nothing and pass), or no test matched (a --run that selects nothing must not pass silently:
// opa test --fail-on-empty). Usage errors exit 2 with the usage line.
//
// Not offered (opa test's): --bundle, --watch, --bench, --threshold, --ignore, --parallel,
// --count, --sort, YAML data; and pretty --coverage prints a summary after the results where opa
// test prints its JSON report (--format json --coverage prints that). rego/README.md ("Testing a
// rule") lists every difference.
func (e *env) testCmd() *cobra.Command {
	var verbose, coverage, skipExitZero, varValues bool
	var runRegex, format, explain string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "test [PATH...]",
		Short: "Run the Rego tests (test_ rules) of each PATH (a directory or file) with the default policy loaded (no PATH: the default policy's own tests)",
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkFormat(format); err != nil {
				return usageError{err}
			}
			if timeout < 0 {
				return usageError{fmt.Errorf("--timeout %s: must be positive (0: the default, 5s)", timeout)}
			}
			filter, err := traceFilter(explain, verbose)
			if err != nil {
				return usageError{err}
			}
			if explain != "" { // as opa test: --explain implies -v
				verbose = true
			}
			files, err := testFiles(append(a, e.policyDir))
			if err != nil {
				return err
			}
			var mods []rego.Module
			var data []map[string]any
			for _, f := range files {
				m, d, err := rego.LoadDir(f)
				if err != nil {
					return withContext(err)
				}
				mods, data = append(mods, m...), append(data, d...)
			}
			// Data alone (no module) runs the default policy's own tests on it.
			if len(mods) == 0 {
				mods = rego.DefaultTests()
			}
			// Traces give pretty failures their failing expression; JSON carries them only with -v, as opa.
			opts := rego.TestOptions{Run: runRegex, Trace: verbose || format == "pretty", Timeout: timeout, VarValues: varValues}
			if coverage {
				opts.Coverage = cover.New()
			}
			run, err := rego.RunTests(cmd.Context(), mods, opts, data...)
			if err != nil {
				return withContext(err)
			}
			if len(run.Results) == 0 {
				return fmt.Errorf("no tests matched")
			}
			// As opa test: a test that fails, errors or is skipped (todo_test_, unless
			// --exit-zero-on-skipped) exits 2; an error before any test ran exits 1.
			failed, skipped := 0, 0
			for _, r := range run.Results {
				switch {
				case r.Skip:
					skipped++
				case !r.Pass():
					failed++
				}
			}
			var reporter tester.Reporter = tester.PrettyReporter{Output: e.stdout, Verbose: verbose, FailureLine: true, LocalVars: varValues}
			var jsonOut bytes.Buffer // OPA's JSON, whose \u003c escapes are written as < before it is printed
			if format == "json" {
				reporter = tester.JSONReporter{Output: &jsonOut}
				// OPA's coverage reporter prints its pretty text when a test fails: JSON stays JSON,
				// the results, and the coverage waits until every test passes.
				if coverage && failed == 0 {
					reporter = tester.JSONCoverageReporter{Output: &jsonOut, Cover: opts.Coverage, Modules: run.Modules, Verbose: verbose}
				}
			}
			ch := make(chan *tester.Result, len(run.Results))
			for _, r := range run.Results {
				r.Trace = filter(r.Trace)
				ch <- r
			}
			close(ch)
			if err := reporter.Report(ch); err != nil {
				return err
			}
			if _, err := e.stdout.Write(plainjson.Unescape(jsonOut.Bytes())); err != nil {
				return err
			}
			if coverage && format == "pretty" {
				printCoverage(e, opts.Coverage.Report(run.Modules))
			}
			// What `teamgate lint --policy` reports of the modules: a test of a rule that can never
			// fire may pass for the wrong reason.
			warnings := run.Warnings
			if p, err := rego.New(cmd.Context(), mods, data...); err == nil {
				warnings = append(warnings, p.Warnings()...)
			}
			for _, w := range warnings {
				fmt.Fprintf(e.stderr, "teamgate: warning: %s (%s)\n", w, w.Fix)
			}
			switch {
			case failed > 0 && coverage && format == "json":
				return codeError{fmt.Errorf("%d of %d Rego test(s) failed (no coverage report: it is printed once every test passes)", failed, len(run.Results)), 2}
			case failed > 0:
				return codeError{fmt.Errorf("%d of %d Rego test(s) failed", failed, len(run.Results)), 2}
			case skipped > 0 && !skipExitZero:
				return codeError{fmt.Errorf("%d of %d Rego test(s) skipped (--exit-zero-on-skipped passes them)", skipped, len(run.Results)), 2}
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "print every test with its duration and print() output, and each failure's trace (its notes and failing lineage, as opa test)")
	c.Flags().StringVar(&explain, "explain", "", "the trace -v prints: fails (the failing lineage), full or debug (every step); implies -v")
	c.Flags().BoolVar(&varValues, "var-values", false, "show the values of the failing expression's variables")
	c.Flags().BoolVarP(&skipExitZero, "exit-zero-on-skipped", "z", false, "skipped tests (todo_test_) do not fail the run")
	c.Flags().StringVarP(&runRegex, "run", "r", "", "run only the tests whose package.rule name (data.pkg.test_x) matches this regular expression")
	c.Flags().BoolVarP(&coverage, "coverage", "c", false, "report the lines of each module (the default policy included) the tests evaluate")
	c.Flags().StringVarP(&format, "format", "f", "pretty", "output format: pretty or json")
	c.Flags().DurationVarP(&timeout, "timeout", "t", 0, "bound each test's evaluation; past it the test errors (default 5s, as opa test)")
	return c
}

// traceFilter is what a test's result keeps of its trace (printed by -v, in JSON results with -v
// or --var-values), as opa test filters it: with -v and no --explain, the lineage of the notes
// (trace() calls) and failures; fails (the default), the lineage of the failures; full, every
// event; debug, every event with OPA's internal ones. (opa test's notes, which keeps no failure,
// is not offered: teamgate always names the failing expression, found in the trace.)
func traceFilter(explain string, verbose bool) (func([]*topdown.Event) []*topdown.Event, error) {
	switch explain {
	case "":
		if !verbose {
			return lineage.Fails, nil
		}
		return func(trace []*topdown.Event) []*topdown.Event {
			return lineage.Filter(trace, func(e *topdown.Event) bool { return e.Op == topdown.NoteOp || e.Op == topdown.FailOp })
		}, nil
	case "fails":
		return lineage.Fails, nil
	case "full":
		return lineage.Full, nil
	case "debug":
		return lineage.Debug, nil
	}
	return nil, fmt.Errorf("--explain %q: want fails, full or debug", explain)
}

// contextError is a load or compile error printed with OPA's context lines under each problem.
type contextError struct {
	error
	msg string
}

func (e contextError) Error() string { return e.msg }
func (e contextError) Unwrap() error { return e.error }

// withContext prints err as opa test does: under each problem (one *rego.Error of a join), the
// source line with a caret or a type error's have and want (rego.Error.Context).
func withContext(err error) error {
	problems := []error{err}
	if _, one := err.(*rego.Error); !one { // an *Error unwraps to ErrInvalid and its cause
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			problems = j.Unwrap()
		}
	}
	var b strings.Builder
	for i, p := range problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Error())
		if re, ok := errors.AsType[*rego.Error](p); ok {
			for _, l := range re.Context {
				b.WriteString("\n\t" + l)
			}
		}
	}
	return contextError{err, b.String()}
}

// printCoverage prints each file's coverage and the total, as percentages.
func printCoverage(e *env, r cover.Report) {
	fmt.Fprintln(e.stdout, "COVERAGE:")
	for _, f := range slices.Sorted(maps.Keys(r.Files)) {
		fr := r.Files[f]
		fmt.Fprintf(e.stdout, "  %s: %.1f%% (%d of %d lines)\n", f, fr.Coverage, fr.CoveredLines, fr.CoveredLines+fr.NotCoveredLines)
	}
	fmt.Fprintf(e.stdout, "  total: %.1f%% (%d of %d lines)\n", r.Coverage, r.CoveredLines, r.CoveredLines+r.NotCoveredLines)
}

// testFiles lists the .rego and .json files of paths (rego.Files: a path holding none is an
// error, so a typo does not fall back to the default policy's tests and pass), each once, in
// path order: as with opa test, a file that two paths reach (a directory and a file or
// subdirectory in it) is loaded once.
func testFiles(paths []string) ([]string, error) {
	var files []string
	seen := map[string]bool{}
	for _, path := range paths {
		if path == "" {
			continue
		}
		fs, err := rego.Files(path)
		if err != nil {
			return nil, err
		}
		for _, f := range fs {
			if !seen[f] {
				seen[f] = true
				files = append(files, f)
			}
		}
	}
	return files, nil
}
