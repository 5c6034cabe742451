package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/store"
)

// The break-glass commands follow the access-request tools operators know (Teleport's `tsh
// request create | ls | drop`): making an elevation is the command itself, and listing and
// ending are verbs of their own, so that no flag means one thing in one mode and nothing in
// another.
//
//	teamgate break-glass --actor adam --project acme/labs --for 30m --justification INC-42
//	teamgate break-glass list [ORG...]
//	teamgate break-glass end --actor adam --project acme/labs [--user USER]
//
// Making and ending decide (org.break_glass) and write, like create-project: they print the
// decision and exit 0 when it was answered, a deny included (nothing is written then); a bad
// request or a refused write exits 1, a usage error 2.
func (e *env) breakGlassCmd() *cobra.Command {
	var req authz.BreakGlassRequest
	var format string
	c := &cobra.Command{
		Use:   "break-glass --actor USER --project ORG/PROJECT --justification TEXT [--role ROLE] [--for DURATION]",
		Short: "Elevate --actor on a project for a bounded time (an emergency grant that ends by itself); list and end elevations",
		Args: withFormat(&format, func(cmd *cobra.Command, a []string) error {
			if err := cobra.NoArgs(cmd, a); err != nil {
				return err
			}
			if err := e.writable(cmd); err != nil {
				return err
			}
			if err := required(cmd, "actor", "project", "justification"); err != nil {
				return err
			}
			if cmd.Flags().Changed("for") && req.Duration == 0 {
				return fmt.Errorf("--for 0: an elevation lasts above 0 (leave --for out for %s)", authz.DefaultBreakGlass)
			}
			return nil
		}),
		RunE: e.withEngine(func(cmd *cobra.Command, _ []string, eng *authz.Engine) error {
			el, err := eng.BreakGlass(cmd.Context(), req)
			if err != nil {
				return err
			}
			if el.Decision.Reasons == nil {
				el.Decision.Reasons = []authz.Reason{}
			}
			if format == formatJSON {
				return writeJSON(e.stdout, el)
			}
			if !el.Decision.Allowed {
				printDenied(e.stdout, req.Actor, el.Decision)
				return nil
			}
			fmt.Fprintf(e.stdout, "%s elevated to %s on %s until %s (%s), revision %d\n", req.Actor, el.Role, el.Project,
				stamp(el.ExpiresAt), el.ExpiresAt.Sub(el.At), el.Revision)
			printReasons(e.stdout, el.Decision)
			return nil
		}),
	}
	c.Flags().StringVar(&req.Actor, "actor", "", "who is elevated: the user asking (nobody elevates someone else); must be allowed org.break_glass")
	c.Flags().StringVar(&req.Project, "project", "", "the project: org/project or org/team/project")
	c.Flags().StringVar(&req.Role, "role", "", "the project role granted (default admin)")
	c.Flags().DurationVar(&req.Duration, "for", 0, fmt.Sprintf("how long it lasts (default %s, at most %s), e.g. 30m", authz.DefaultBreakGlass, authz.MaxBreakGlass))
	c.Flags().StringVar(&req.Justification, "justification", "", fmt.Sprintf("why (required; at most %d bytes), e.g. an incident id", store.MaxJustification))
	formatFlag(c, &format, formatJSON, "a line for people")
	c.AddCommand(e.breakGlassListCmd(), e.breakGlassEndCmd())
	return c
}

func (e *env) breakGlassListCmd() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "list [ORG...]",
		Short: "List the break-glass elevations in force (every org, or those named): user, actor, project, role, at, expires_at, justification",
		Args:  withFormat(&format, cobra.ArbitraryArgs),
		RunE: e.withEngine(func(cmd *cobra.Command, a []string, eng *authz.Engine) error {
			list, err := eng.Elevations(cmd.Context(), a...)
			if err != nil {
				return err
			}
			if format == formatJSON {
				return writeJSON(e.stdout, list)
			}
			for _, el := range list.Elevations {
				fmt.Fprintf(e.stdout, "%s\t%s\t%s\tuntil %s\tby %s at %s\t%s\n", el.Project, el.User, el.Role, stamp(el.ExpiresAt),
					el.Actor, stamp(el.At), oneLine(el.Justification))
			}
			fmt.Fprintf(e.stdout, "%d elevation(s) in force at %s, revision %d\n", len(list.Elevations), stamp(list.Now), list.Revision)
			return nil
		}),
	}
	formatFlag(c, &format, formatJSON, "an elevation a line")
	return c
}

func (e *env) breakGlassEndCmd() *cobra.Command {
	var req authz.EndBreakGlassRequest
	var format string
	c := &cobra.Command{
		Use:   "end --actor USER --project ORG/PROJECT [--user USER]",
		Short: "End a break-glass elevation before its expiry, as --actor (allowed org.break_glass in the org)",
		Args: withFormat(&format, func(cmd *cobra.Command, a []string) error {
			if err := cobra.NoArgs(cmd, a); err != nil {
				return err
			}
			if err := e.writable(cmd); err != nil {
				return err
			}
			return required(cmd, "actor", "project")
		}),
		RunE: e.withEngine(func(cmd *cobra.Command, _ []string, eng *authz.Engine) error {
			ended, err := eng.EndBreakGlass(cmd.Context(), req)
			if err != nil {
				return err
			}
			if ended.Decision.Reasons == nil {
				ended.Decision.Reasons = []authz.Reason{}
			}
			if format == formatJSON {
				return writeJSON(e.stdout, ended)
			}
			if !ended.Decision.Allowed {
				printDenied(e.stdout, req.Actor, ended.Decision)
				return nil
			}
			el := ended.Elevation
			fmt.Fprintf(e.stdout, "ended %s's %s elevation on %s (due to end %s), revision %d\n", el.User, el.Role, el.Project,
				stamp(el.ExpiresAt), ended.Revision)
			printReasons(e.stdout, ended.Decision)
			return nil
		}),
	}
	c.Flags().StringVar(&req.Actor, "actor", "", "who ends it: must be allowed org.break_glass in the project's org")
	c.Flags().StringVar(&req.Project, "project", "", "the project: org/project or org/team/project")
	c.Flags().StringVar(&req.User, "user", "", "whose elevation (default --actor's own)")
	formatFlag(c, &format, formatJSON, "a line for people")
	return c
}

// required reports the first of the named flags not given (an empty value counts as not given).
func required(cmd *cobra.Command, names ...string) error {
	for _, n := range names {
		if f := cmd.Flags().Lookup(n); f == nil || f.Value.String() == "" {
			return errors.New("--" + n + " is required")
		}
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// oneLine keeps a justification on its line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func printDenied(w io.Writer, actor string, d authz.Decision) {
	fmt.Fprintf(w, "denied: %s may not break glass here; nothing was written\n", actor)
	printReasons(w, d)
}

func printReasons(w io.Writer, d authz.Decision) {
	for _, r := range d.Reasons {
		fmt.Fprintf(w, "  %s: %s\n", r.Code, r.Message)
	}
}
