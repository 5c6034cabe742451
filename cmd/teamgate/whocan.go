package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/teamgate/teamgate/authz"
)

func (e *env) whoCanCmd() *cobra.Command {
	var format, after string
	var limit int
	c := &cobra.Command{
		Use:   "who-can ACTION RESOURCE",
		Short: "Print every subject allowed ACTION on RESOURCE, with its role and reasons",
		Args: withFormat(&format, func(cmd *cobra.Command, a []string) error {
			if err := checkLimit(limit); err != nil {
				return err
			}
			return cobra.ExactArgs(2)(cmd, a)
		}),
		RunE: e.withEngine(func(cmd *cobra.Command, a []string, eng *authz.Engine) error {
			page, err := eng.ListSubjects(cmd.Context(), a[0], a[1], authz.Page{After: after, Limit: limit})
			if err != nil {
				return err
			}
			if format == formatJSON {
				return writeJSON(e.stdout, page)
			}
			for _, s := range page.Subjects {
				fmt.Fprintf(e.stdout, "%s\t%s\t%s\n", s.Subject, s.Role, reasonText(s.Reasons))
			}
			if page.Unbounded {
				fmt.Fprintln(e.stdout, "(the policy's ext.allow may allow subjects the directory does not know: they are not listed)")
			}
			if page.Next != "" {
				fmt.Fprintf(e.stdout, "(more: --after %s)\n", page.Next)
			}
			return nil
		}),
	}
	c.Flags().IntVar(&limit, "limit", 0, "at most this many subjects (0: all)")
	c.Flags().StringVar(&after, "after", "", "cursor: the next of the previous page")
	formatFlag(c, &format, formatJSON, "a subject a line: subject, role, reasons")
	return c
}

// reasonText joins reasons as "code: message; ...".
func reasonText(rs []authz.Reason) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = string(r.Code) + ": " + r.Message
	}
	return strings.Join(parts, "; ")
}

// printSuggestions prints an explanation's suggestions for people: each one's steps and who may
// make each step.
func printSuggestions(w io.Writer, sg []authz.Suggestion) {
	if len(sg) == 0 {
		return
	}
	fmt.Fprintln(w, "to allow it (narrowest changes first):")
	for i, s := range sg {
		steps := make([]string, len(s.Steps))
		for j, st := range s.Steps {
			steps[j] = st.Summary
		}
		fmt.Fprintf(w, "  %d. %s → %s (%s)\n", i+1, strings.Join(steps, ", then "), s.Role, reasonText(s.Reasons))
		for j, st := range s.Steps {
			who := make([]string, len(st.Approvers))
			for k, a := range st.Approvers {
				who[k] = a.Subject
			}
			list := strings.Join(who, " ")
			if len(who) == 0 {
				list = "nobody"
			}
			label := "who may"
			if len(s.Steps) > 1 {
				label = fmt.Sprintf("step %d: who may", j+1)
			}
			fmt.Fprintf(w, "     %s: %s (%s on %s)\n", label, list, st.Action, st.Resource)
		}
	}
}
