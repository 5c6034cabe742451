package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/store"
)

// errFindings makes `lint --strict` exit 1 when there are findings (after printing them).
type errFindings int

func (n errFindings) Error() string { return fmt.Sprintf("lint: %d finding(s) (--strict)", int(n)) }

func (e *env) lintCmd() *cobra.Command {
	var format string
	var strictFindings bool
	c := &cobra.Command{
		Use:   "lint [ORG...]",
		Short: "Report hygiene problems (unreachable projects, teams without an admin, redundant grants, ...) and --policy's never-matching comparisons and unknown input fields, with a fix for each",
		Args:  withFormat(&format, cobra.ArbitraryArgs),
		RunE: func(cmd *cobra.Command, a []string) error {
			eng, done, err := e.lintEngine(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			rep, err := eng.Lint(cmd.Context(), a...)
			if err != nil {
				return err
			}
			if format == formatJSON {
				err = writeJSON(e.stdout, rep)
			} else {
				for _, f := range rep.Findings {
					fmt.Fprintf(e.stdout, "%s\t%s\n  %s\n  fix: %s\n", f.Code, f.Object, f.Message, f.Fix.Summary)
					if len(f.Fix.Changes) > 0 {
						fmt.Fprint(e.stdout, "  changes: ")
						if err := writeJSON(e.stdout, f.Fix.Changes); err != nil {
							return err
						}
					}
				}
				fmt.Fprintf(e.stdout, "%d finding(s) at revision %d\n", len(rep.Findings), rep.Revision)
			}
			if err != nil {
				return err
			}
			if strictFindings && len(rep.Findings) > 0 {
				return errFindings(len(rep.Findings))
			}
			return nil
		},
	}
	c.Flags().BoolVar(&strictFindings, "strict", false, "exit 1 when there are findings")
	formatFlag(c, &format, formatJSON, "a finding, its message, fix and changes")
	return c
}

// lintEngine is the engine lint reports on: every command's (engine), or, given --policy without
// --data, --store or --nats, one over an empty directory, so that an author lints a policy
// without a data file (only the policy's findings can come out).
func (e *env) lintEngine(ctx context.Context) (*authz.Engine, func(), error) {
	if e.data != "" || e.storeDir != "" || e.nats != "" || e.policyDir == "" {
		return e.engine(ctx)
	}
	st, err := store.Open(ctx, store.Options{})
	if err != nil {
		return nil, nil, err
	}
	eng, err := authz.New(ctx, st, e.policyOptions()...)
	if err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	return eng, func() { _ = st.Close() }, nil
}
