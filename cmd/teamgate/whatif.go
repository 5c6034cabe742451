package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/teamgate/teamgate/authz"
)

func (e *env) whatifCmd() *cobra.Command {
	var changes, format string
	c := &cobra.Command{
		Use:   "whatif --changes FILE",
		Short: "Show the decisions, settings and admission defaults a batch of changes would change, without applying it",
		Args: withFormat(&format, func(cmd *cobra.Command, a []string) error {
			if changes == "" {
				return errors.New("--changes FILE is required")
			}
			return cobra.NoArgs(cmd, a)
		}),
		RunE: e.withEngine(func(cmd *cobra.Command, _ []string, eng *authz.Engine) error {
			cs, err := e.readChanges(changes)
			if err != nil {
				return err
			}
			w, err := eng.Simulate(cmd.Context(), cs...)
			if err != nil {
				return fmt.Errorf("%s: %w", changes, err) // as apply reports it
			}
			if format == formatPretty {
				return printWhatIf(e.stdout, w)
			}
			return writeJSON(e.stdout, w)
		}),
	}
	c.Flags().StringVar(&changes, "changes", "", "YAML or JSON list of {kind, change}, as apply reads it (- = stdin)")
	_ = c.MarkFlagFilename("changes", "yaml", "yml", "json")
	formatFlag(c, &format, formatJSON, "a line per change: before → after")
	return c
}

// printWhatIf writes a line per changed decision, settings field and admission default.
func printWhatIf(w io.Writer, x authz.WhatIf) error {
	fmt.Fprintf(w, "at revision %d: %d decisions, %d settings, %d admission defaults change (%d subject-project pairs compared)\n",
		x.Revision, len(x.Decisions), len(x.Settings), len(x.Admissions), x.Pairs)
	for _, d := range x.Decisions {
		fmt.Fprintf(w, "decision %s %s %s: %s → %s\n", d.Subject, d.Project, d.Action, verdict(d.Before), verdict(d.After))
	}
	for _, s := range x.Settings {
		before, err := settingsFields(s.Before)
		if err != nil {
			return err
		}
		after, err := settingsFields(s.After)
		if err != nil {
			return err
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range before {
				if !yield(k) {
					return
				}
			}
			for k := range after {
				if _, ok := before[k]; !ok && !yield(k) {
					return
				}
			}
		})
		for _, k := range keys {
			if string(before[k]) != string(after[k]) {
				fmt.Fprintf(w, "settings %s %s: %s → %s\n", s.Project, k, orNone(before[k]), orNone(after[k]))
			}
		}
	}
	for _, a := range x.Admissions {
		fmt.Fprintf(w, "admission %s %s: queue %q presets %v → queue %q presets %v\n",
			a.Subject, a.Project, a.Before.Queue, a.Before.Presets, a.After.Queue, a.After.Presets)
	}
	return nil
}

// verdict is a decision in a few words: allow/deny, role and reason codes.
func verdict(d authz.Decision) string {
	codes := make([]string, 0, len(d.Reasons))
	for _, r := range d.Reasons {
		codes = append(codes, string(r.Code))
	}
	v := "deny"
	if d.Allowed {
		v = "allow"
	}
	return fmt.Sprintf("%s as %s (%s)", v, d.Role, strings.Join(codes, ", "))
}

// settingsFields are the fields of a settings' JSON "settings" object (none for a project that
// does not exist).
func settingsFields(s *authz.Settings) (map[string]json.RawMessage, error) {
	if s == nil {
		return nil, nil
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Settings map[string]json.RawMessage `json:"settings"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	return doc.Settings, nil
}

func orNone(v json.RawMessage) string {
	if v == nil {
		return "(no project)"
	}
	return string(v)
}
