package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/teamgate/teamgate/authz"
)

// errFindings makes `lint --strict` exit 1 when there are findings (after printing them).
type errFindings int

func (n errFindings) Error() string { return fmt.Sprintf("lint: %d finding(s) (--strict)", int(n)) }

func (e *env) lintCmd() *cobra.Command {
	var format string
	var strictFindings bool
	c := &cobra.Command{
		Use:   "lint [ORG...]",
		Short: "Report hygiene problems (unreachable projects, teams without an admin, redundant grants, ...) with a fix for each",
		Args:  withFormat(&format, cobra.ArbitraryArgs),
		RunE: e.withEngine(func(cmd *cobra.Command, a []string, eng *authz.Engine) error {
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
		}),
	}
	c.Flags().BoolVar(&strictFindings, "strict", false, "exit 1 when there are findings")
	formatFlag(c, &format, formatJSON, "a finding, its message, fix and changes")
	return c
}
