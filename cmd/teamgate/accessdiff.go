package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/cluster"
	"github.com/teamgate/teamgate/store"
)

func (e *env) accessDiffCmd() *cobra.Command {
	var format string
	var from, to uint64
	c := &cobra.Command{
		Use:   "access-diff --from R1 --to R2",
		Short: "Print the (subject, project) effective roles that changed between two revisions, and the writes that changed them",
		Args:  withFormat(&format, cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("to") {
				return usageError{errors.New("--to R2 is required")}
			}
			dir, done, err := e.directory(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			var log authz.EventLog
			switch d := dir.(type) {
			case *store.Store:
				log = d
			case *cluster.Node:
				log = d.Store()
			default:
				return fmt.Errorf("access-diff: %T keeps no events", dir)
			}
			diff, err := authz.DiffAccess(cmd.Context(), log, from, to, e.policyOptions()...)
			if err != nil {
				return err
			}
			if format == formatJSON {
				return writeJSON(e.stdout, diff)
			}
			for _, c := range diff.Changes {
				causes := make([]string, len(c.Causes))
				for i, w := range c.Causes {
					causes[i] = fmt.Sprintf("r%d %s", w.Revision, w.Kind)
					if b := w.BreakGlass; b != nil {
						causes[i] += fmt.Sprintf(" break-glass by %s: %q", b.Actor, b.Justification)
					}
				}
				fmt.Fprintf(e.stdout, "%s\t%s\t%s -> %s\t(%s)\n", c.Subject, c.Project, c.Before, c.After, strings.Join(causes, ", "))
			}
			return nil
		},
	}
	c.Flags().Uint64Var(&from, "from", 0, "the earlier revision (0: the empty directory)")
	c.Flags().Uint64Var(&to, "to", 0, "the later revision")
	formatFlag(c, &format, formatJSON, "a change a line: subject, project, before -> after, the writes")
	return c
}
