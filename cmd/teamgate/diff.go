package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/rego"
)

// defaultDiffLimit caps the cells and decisions `diff` lists unless --limit says otherwise.
const defaultDiffLimit = 1000

func (e *env) diffCmd() *cobra.Command {
	var candidate, current, expect, format string
	var limit int
	c := &cobra.Command{
		Use:   "diff --policy DIR [--current-policy DIR]",
		Short: "Show every decision loading a candidate policy would change, and the diff's fingerprint",
		Args: withFormat(&format, func(cmd *cobra.Command, a []string) error {
			if candidate == "" {
				return errors.New("--policy DIR (the candidate) is required")
			}
			if err := checkLimit(limit); err != nil {
				return err
			}
			return cobra.NoArgs(cmd, a)
		}),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkPolicy("--policy", candidate); err != nil {
				return err
			}
			if current != "" {
				if err := checkPolicy("--current-policy", current); err != nil {
					return err
				}
			}
			mods, data, err := rego.LoadDir(candidate)
			if err != nil {
				return err
			}
			var opts []authz.Option
			if current != "" {
				opts = append(opts, authz.WithPolicyDir(current))
			}
			eng, done, err := e.engine(cmd.Context(), opts...)
			if err != nil {
				return err
			}
			defer done()
			d, err := eng.DiffPolicy(cmd.Context(), authz.Candidate{Modules: mods, Data: data}, limit)
			if err != nil {
				return err
			}
			if format == formatPretty {
				printPolicyDiff(e.stdout, d, limit)
			} else if err := writeJSON(e.stdout, d); err != nil {
				return err
			}
			if expect != "" && authz.DiffFingerprint(expect) != d.Fingerprint {
				return &teamgate.ConflictError{What: "policy diff", Name: expect,
					Reason: "the candidate now makes diff " + string(d.Fingerprint)}
			}
			return nil
		},
	}
	// Shadows the global --policy: here the directory is the candidate, not the policy in force.
	c.Flags().StringVar(&candidate, "policy", "", "candidate policy: a directory of authors' Rego modules and JSON data")
	c.Flags().StringVar(&current, "current-policy", "", "the policy in force, as --policy elsewhere (default: the default policy)")
	c.Flags().IntVar(&limit, "limit", defaultDiffLimit, "list at most this many cells and decisions (0: all); counts cover everything")
	c.Flags().StringVar(&expect, "expect", "", "fail (exit 1) unless the diff's fingerprint is this one, e.g. the reviewed one")
	_ = c.MarkFlagFilename("policy")
	_ = c.MarkFlagFilename("current-policy")
	formatFlag(c, &format, formatJSON, "a line per count, cell and decision: before → after")
	return c
}

// printPolicyDiff writes the counts, then a line per listed cell and decision.
func printPolicyDiff(w io.Writer, d authz.PolicyDiff, limit int) {
	n := 0
	for _, a := range d.Actions {
		n += a.Decisions
	}
	fmt.Fprintf(w, "at revision %d: %d decisions change (%d subject-resource pairs compared by %s); fingerprint %s\n",
		d.Revision, n, d.Pairs, d.Method, d.Fingerprint)
	if d.Nondeterministic {
		fmt.Fprintln(w, "nondeterministic: a policy reads the clock or randomness; these are the decisions of this run, another may differ")
	}
	if len(d.ActionsAdded) > 0 {
		fmt.Fprintf(w, "actions added: %s\n", strings.Join(d.ActionsAdded, " "))
	}
	if len(d.ActionsRemoved) > 0 {
		fmt.Fprintf(w, "actions removed: %s\n", strings.Join(d.ActionsRemoved, " "))
	}
	for _, a := range d.Actions {
		fmt.Fprintf(w, "action %s: %d decisions (%d granted, %d revoked), %d table cells\n", a.Action, a.Decisions, a.Granted, a.Revoked, a.Cells)
	}
	for _, c := range d.Cells {
		fmt.Fprintf(w, "cell %s %s: %s → %s\n", c.Action, cellFacts(c), cellVerdict(c.Before), cellVerdict(c.After))
	}
	for _, c := range d.Decisions {
		fmt.Fprintf(w, "decision %s %s %s: %s → %s\n", c.Subject, c.Project+c.Resource, c.Action, verdict(c.Before), verdict(c.After))
	}
	if d.Truncated {
		fmt.Fprintf(w, "(lists cut at --limit %d; --limit 0 lists everything)\n", limit)
	}
}

func cellVerdict(v authz.CellVerdict) string {
	codes := make([]string, len(v.Codes))
	for i, c := range v.Codes {
		codes[i] = string(c)
	}
	s := "deny"
	if v.Allowed {
		s = "allow"
	}
	return fmt.Sprintf("%s as %s (%s)", s, v.Role, strings.Join(codes, ", "))
}

// cellFacts are a cell's role facts in a few words.
func cellFacts(c authz.CellChange) string {
	switch {
	case !c.Exists:
		return "missing resource"
	case c.Grant != "" || c.Restricted:
		return fmt.Sprintf("org role %s, grant %s, %s", c.OrgRole, orNoneRole(c.Grant), projectKind(c))
	case len(c.TeamRoles) > 0:
		return fmt.Sprintf("org role %s, team role %s", c.OrgRole, c.TeamRoles[0])
	}
	return "org role " + c.OrgRole
}

func projectKind(c authz.CellChange) string {
	if c.Restricted {
		return fmt.Sprintf("restricted project, team roles %v", c.TeamRoles)
	}
	return "open project"
}

func orNoneRole(r string) string {
	if r == "" {
		return "none"
	}
	return r
}
