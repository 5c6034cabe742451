// Customrule runs the worked rules of rego/README.md against a small directory: no run deletions
// on Fridays, a service account that may stop any run in one team space, and admin-only approval
// on projects labelled approval=admin-only. The rules and their Rego tests are the files in
// policy/ (the same files rego/README.md shows); the program runs the tests, then asks the
// engine.
//
//	go run ./examples/customrule
//	go run ./cmd/teamgate test examples/customrule/policy
package main

import (
	"context"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

//go:embed acme.yaml
var acme string

//go:embed policy
var policyFS embed.FS

func main() {
	if err := run(context.Background(), os.Stdout, time.Now()); err != nil {
		fmt.Fprintln(os.Stderr, "customrule:", err)
		os.Exit(1)
	}
}

// modules reads policy/ (rules and tests; rego.LoadDir does the same from a directory on disk).
func modules() ([]rego.Module, error) {
	var mods []rego.Module
	err := fs.WalkDir(policyFS, "policy", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".rego" {
			return err
		}
		src, err := policyFS.ReadFile(p)
		mods = append(mods, rego.Module{Name: p, Source: string(src)})
		return err
	})
	return mods, err
}

// run prints the policy's test results and decisions; now names the day in the output (the
// engine reads its own clock).
func run(ctx context.Context, w io.Writer, now time.Time) error {
	mods, err := modules()
	if err != nil {
		return err
	}
	results, err := rego.Test(ctx, mods)
	if err != nil {
		return err
	}
	passed := 0
	for _, r := range results {
		if !r.Pass {
			return fmt.Errorf("Rego test %s.%s failed: %s", r.Package, r.Name, r.Error)
		}
		passed++
	}
	fmt.Fprintf(w, "policy/: %d Rego tests pass\n", passed)

	st, err := store.Open(ctx, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.Load(ctx, strings.NewReader(acme)); err != nil {
		return err
	}
	// WithModules takes test modules too and leaves them out of the policy that decides.
	eng, err := authz.New(ctx, st, authz.WithModules(mods...))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "decisions cached: %v (the Friday rule reads the clock)\n\n", eng.Policy().Deterministic())
	for _, req := range []authz.Request{
		{Subject: "ci-bot", Action: "runs.stop", Resource: "acme/vision"},  // service account, its team
		{Subject: "ci-bot", Action: "runs.stop", Resource: "acme/labs"},    // not its team
		{Subject: "olga", Action: "runs.approve", Resource: "acme/nlp"},    // team admin
		{Subject: "olga", Action: "runs.approve", Resource: "acme/vision"}, // team admin, labelled project
		{Subject: "adam", Action: "runs.approve", Resource: "acme/vision"}, // org admin and team admin
	} {
		if err := decide(ctx, w, eng, req); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "\ntoday is %s (UTC):\n", now.UTC().Weekday())
	return decide(ctx, w, eng, authz.Request{Subject: "alice", Action: "runs.delete", Resource: "acme/nlp"})
}

func decide(ctx context.Context, w io.Writer, eng *authz.Engine, req authz.Request) error {
	d, err := eng.Authorize(ctx, req)
	if err != nil {
		return err
	}
	verdict := "deny "
	if d.Allowed {
		verdict = "allow"
	}
	fmt.Fprintf(w, "%s %-6s %-12s %-11s %s: %s\n", verdict, req.Subject, req.Action, req.Resource, d.Reasons[0].Code, d.Reasons[0].Message)
	return nil
}
