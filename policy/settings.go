// Package policy is the organization-policy model of teamgate: the settings a project inherits
// from its organization and its connected policy (SPEC §6), their merge into effective settings
// with a source for every field and every conflict listed, run admission, and CEL rules.
//
// CEL rules see the variables of RuleVars, declared from that Go type once, next to the CEL
// environment (rules.go): subject, project, run and settings, each field with its own type.
//
// The package is pure: it holds no state and does no I/O. The store validates what it stores with
// it and the engine merges and admits with it, so a decision and an effective-settings read use
// the same merge code (in particular Teams, the allow-list that restricts who reaches a project).
//
// # Merge rules
//
//   - Allow-lists (connections, agents, queues, namespaces, presets, teams, projects): an empty
//     list is unrestricted. Project and policy both set → intersection (source
//     "policy:NAME∩project"); one set → that one. A restricted list may end up empty: nothing is
//     allowed and a conflict is reported.
//   - Deny-lists (excluded_runtimes, excluded_features): union.
//   - Default queue: the first of project, policy, org queue that is set and allowed by queues and
//     agents; skipped candidates are conflicts.
//   - Default presets: the first non-empty default_presets of project, policy, org, filtered by
//     presets (no fall-through); dropped entries are conflicts.
//   - archived_deletion_interval: first non-zero of project, policy, org.
//   - Rules: policy rules then project rules, all apply.
//   - Per user: a grant's queue, namespace and default_presets replace the defaults when wholly
//     allowed; otherwise the field is ignored and a conflict reported.
package policy

import (
	"slices"
	"strconv"
	"strings"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/scope"
)

// Settings are the fields a project or a policy may set. The zero value restricts nothing.
type Settings struct {
	Connections              []string `json:"connections,omitempty" yaml:"connections,omitempty"`
	Agents                   []string `json:"agents,omitempty" yaml:"agents,omitempty"`
	Queues                   []string `json:"queues,omitempty" yaml:"queues,omitempty"`
	Namespaces               []string `json:"namespaces,omitempty" yaml:"namespaces,omitempty"`
	Presets                  []string `json:"presets,omitempty" yaml:"presets,omitempty"`
	Teams                    []string `json:"teams,omitempty" yaml:"teams,omitempty"`
	Projects                 []string `json:"projects,omitempty" yaml:"projects,omitempty"`
	Queue                    string   `json:"queue,omitempty" yaml:"queue,omitempty"`
	DefaultPresets           []string `json:"default_presets,omitempty" yaml:"default_presets,omitempty"`
	ExcludedRuntimes         []string `json:"excluded_runtimes,omitempty" yaml:"excluded_runtimes,omitempty"`
	ExcludedFeatures         []string `json:"excluded_features,omitempty" yaml:"excluded_features,omitempty"`
	ArchivedDeletionInterval int      `json:"archived_deletion_interval,omitempty" yaml:"archived_deletion_interval,omitempty"`
	Rules                    []Rule   `json:"rules,omitempty" yaml:"rules,omitempty"`
}

// Rule is a CEL expression every run must satisfy; Message is shown when it evaluates to false.
type Rule struct {
	Name       string `json:"name" yaml:"name"`
	Expression string `json:"expression" yaml:"expression"`
	Message    string `json:"message,omitempty" yaml:"message,omitempty"`
}

var (
	features = []string{"component", "model", "artifact", "runtime"}
	runKinds = []string{"job", "service", "dag", "daskcluster", "raycluster", "mpijob", "tfjob",
		"pytorchjob", "matrix", "schedule", "tuner", "watchdog", "notifier", "cleaner", "builder"}
)

// Features returns the features a policy may exclude.
func Features() []string { return slices.Clone(features) }

// IsFeature reports whether f is a feature a policy may exclude.
func IsFeature(f string) bool { return slices.Contains(features, f) }

// CheckFeature returns nil when f is a feature a policy may exclude, else an error matching
// teamgate.ErrInvalid that names what (the field or argument) and f, and lists the features.
func CheckFeature(what, f string) error {
	if !IsFeature(f) {
		return teamgate.Invalid(what, f, "expected one of "+strings.Join(features, ", "))
	}
	return nil
}

// RunKinds returns the kinds of run admission knows.
func RunKinds() []string { return slices.Clone(runKinds) }

// Validate checks the settings' names and compiles their rules. what names the owner of the
// settings in errors ("policy acme/gpu", "project acme/vision").
func (s *Settings) Validate(what string) error {
	lists := []struct {
		field string
		vals  []string
	}{
		{"connections", s.Connections}, {"agents", s.Agents}, {"namespaces", s.Namespaces},
		{"presets", s.Presets}, {"teams", s.Teams}, {"default_presets", s.DefaultPresets},
	}
	for _, l := range lists {
		for _, v := range l.vals {
			if err := scope.CheckSlug(what+" "+l.field, v); err != nil {
				return err
			}
		}
	}
	for _, q := range s.Queues {
		if err := checkQueue(what+" queues", q); err != nil {
			return err
		}
	}
	if s.Queue != "" {
		if err := checkQueue(what+" queue", s.Queue); err != nil {
			return err
		}
	}
	for _, p := range s.Projects {
		if _, err := scope.ParseProject(p, scope.Owner{Org: "_"}); err != nil {
			return err
		}
	}
	for _, r := range s.ExcludedRuntimes {
		if !validRuntimeName(r) {
			return teamgate.Invalid(what+" excluded_runtimes", r, "unknown run kind or runtime")
		}
	}
	for _, f := range s.ExcludedFeatures {
		if err := CheckFeature(what+" excluded_features", f); err != nil {
			return err
		}
	}
	if s.ArchivedDeletionInterval < 0 {
		return teamgate.Invalid(what+" archived_deletion_interval", strconv.Itoa(s.ArchivedDeletionInterval), "must be >= 0 days")
	}
	_, err := CompileRules(s.Rules, what)
	return err
}

// checkQueue accepts `queue` or `agent/queue`, each part a slug.
func checkQueue(what, q string) error {
	parts := strings.Split(q, "/")
	if len(parts) > 2 {
		return teamgate.Invalid(what, q, "a queue is `queue` or `agent/queue`")
	}
	for i, p := range parts {
		if err := scope.CheckSlug("queue", p); err != nil {
			return teamgate.Invalid(what, q, scope.BadPart(i, err))
		}
	}
	return nil
}

// QueueAgent returns the `agent/` part of a queue, or "" when it has none.
func QueueAgent(q string) string {
	if i := strings.IndexByte(q, '/'); i >= 0 {
		return q[:i]
	}
	return ""
}
