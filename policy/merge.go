package policy

import (
	"fmt"
	"slices"
	"strings"
)

// Source values of an effective field.
const (
	SourceProject = "project"
	SourceOrg     = "org"
	SourceUser    = "user"
	SourceUnset   = "unset"
)

// OrgDefaults are the organization-wide defaults every project inherits.
type OrgDefaults struct {
	Queue                    string
	DefaultPresets           []string
	ArchivedDeletionInterval int
}

// Named is a policy's name and settings.
type Named struct {
	Name     string
	Settings Settings
}

// UserGrant is the per-user part of a project grant that settings care about.
type UserGrant struct {
	Queue          string
	Namespace      string
	DefaultPresets []string
}

// Inputs is everything effective settings are merged from.
type Inputs struct {
	Org          OrgDefaults
	Policy       *Named     // the connected policy, nil when none
	Project      Settings   // the project's own settings (Teams ignored: see ProjectTeams)
	ProjectTeams []string   // the project's top-level teams
	User         *UserGrant // the grant of the user settings are computed for, nil when none
}

// AllowList is an effective allow-list. Restricted with no Values allows nothing.
type AllowList struct {
	Restricted bool     `json:"restricted"`
	Values     []string `json:"values"`
	Source     string   `json:"source"`
}

// Allows reports whether v passes the list.
func (a AllowList) Allows(v string) bool {
	return !a.Restricted || slices.Contains(a.Values, v)
}

// List is an effective list value (deny-lists, default presets).
type List struct {
	Values []string `json:"values"`
	Source string   `json:"source"`
}

// Value is an effective string value.
type Value struct {
	Value  string `json:"value"`
	Source string `json:"source"`
}

// Int is an effective integer value.
type Int struct {
	Value  int    `json:"value"`
	Source string `json:"source"`
}

// SourcedRule is a rule with where it came from.
type SourcedRule struct {
	Rule
	Source string `json:"source"`
}

// Conflict is a setting that could not be applied as written.
type Conflict struct {
	Field   string `json:"field"`
	Value   string `json:"value"`
	Message string `json:"message"`
}

// Effective is a project's effective settings, optionally for one user.
type Effective struct {
	Connections              AllowList
	Agents                   AllowList
	Queues                   AllowList
	Namespaces               AllowList
	Presets                  AllowList
	Teams                    AllowList
	Projects                 AllowList
	ExcludedRuntimes         List
	ExcludedFeatures         List
	Queue                    Value
	DefaultPresets           List
	Namespace                Value // per user only, from a grant
	ArchivedDeletionInterval Int
	Rules                    []SourcedRule
	Conflicts                []Conflict
}

// Merge computes effective settings from in, following the rules in the package doc.
func Merge(in Inputs) Effective {
	var e Effective
	var pol Settings
	polName := ""
	if in.Policy != nil {
		pol, polName = in.Policy.Settings, in.Policy.Name
	}
	allow := func(field string, proj, p []string) AllowList {
		a := mergeAllow(proj, p, polName)
		if a.Restricted && len(a.Values) == 0 {
			e.Conflicts = append(e.Conflicts, Conflict{Field: field, Value: "",
				Message: fmt.Sprintf("%s: project %v and policy %s %v have nothing in common; nothing is allowed", field, proj, polName, p)})
		}
		return a
	}
	e.Connections = allow("connections", in.Project.Connections, pol.Connections)
	e.Agents = allow("agents", in.Project.Agents, pol.Agents)
	e.Queues = allow("queues", in.Project.Queues, pol.Queues)
	e.Namespaces = allow("namespaces", in.Project.Namespaces, pol.Namespaces)
	e.Presets = allow("presets", in.Project.Presets, pol.Presets)
	e.Teams = allow("teams", in.ProjectTeams, pol.Teams)
	e.Projects = allow("projects", in.Project.Projects, pol.Projects)

	e.ExcludedRuntimes = mergeDeny(in.Project.ExcludedRuntimes, pol.ExcludedRuntimes, polName)
	e.ExcludedFeatures = mergeDeny(in.Project.ExcludedFeatures, pol.ExcludedFeatures, polName)

	// Default queue: first set and allowed candidate, skipped ones reported.
	e.Queue = Value{Source: SourceUnset}
	for _, c := range []Value{{in.Project.Queue, SourceProject}, {pol.Queue, policySource(polName)}, {in.Org.Queue, SourceOrg}} {
		if c.Value == "" || c.Source == "" {
			continue
		}
		if why := e.queueRejection(c.Value); why != "" {
			e.Conflicts = append(e.Conflicts, Conflict{Field: "queue", Value: c.Value,
				Message: fmt.Sprintf("default queue %s from %s skipped: %s", c.Value, c.Source, why)})
			continue
		}
		e.Queue = c
		break
	}

	// Default presets: first non-empty source, then filtered (no fall-through).
	e.DefaultPresets = List{Values: []string{}, Source: SourceUnset}
	for _, c := range []List{{in.Project.DefaultPresets, SourceProject}, {pol.DefaultPresets, policySource(polName)}, {in.Org.DefaultPresets, SourceOrg}} {
		if len(c.Values) == 0 || c.Source == "" {
			continue
		}
		e.DefaultPresets.Source = c.Source
		for _, p := range c.Values {
			if e.Presets.Allows(p) {
				e.DefaultPresets.Values = append(e.DefaultPresets.Values, p)
			} else {
				e.Conflicts = append(e.Conflicts, Conflict{Field: "default_presets", Value: p,
					Message: fmt.Sprintf("default preset %s from %s dropped: not in presets %v", p, c.Source, e.Presets.Values)})
			}
		}
		break
	}

	e.ArchivedDeletionInterval = Int{Source: SourceUnset}
	for _, c := range []Int{{in.Project.ArchivedDeletionInterval, SourceProject}, {pol.ArchivedDeletionInterval, policySource(polName)}, {in.Org.ArchivedDeletionInterval, SourceOrg}} {
		if c.Value != 0 && c.Source != "" {
			e.ArchivedDeletionInterval = c
			break
		}
	}

	e.Rules = []SourcedRule{}
	for _, r := range pol.Rules {
		e.Rules = append(e.Rules, SourcedRule{Rule: r, Source: policySource(polName)})
	}
	for _, r := range in.Project.Rules {
		e.Rules = append(e.Rules, SourcedRule{Rule: r, Source: SourceProject})
	}

	e.Namespace = Value{Source: SourceUnset}
	if u := in.User; u != nil {
		e.applyUser(u)
	}
	return e
}

func (e *Effective) applyUser(u *UserGrant) {
	if u.Queue != "" {
		if why := e.queueRejection(u.Queue); why != "" {
			e.Conflicts = append(e.Conflicts, Conflict{Field: "queue", Value: u.Queue,
				Message: fmt.Sprintf("user queue %s ignored: %s", u.Queue, why)})
		} else {
			e.Queue = Value{Value: u.Queue, Source: SourceUser}
		}
	}
	if u.Namespace != "" {
		if !e.Namespaces.Allows(u.Namespace) {
			e.Conflicts = append(e.Conflicts, Conflict{Field: "namespace", Value: u.Namespace,
				Message: fmt.Sprintf("user namespace %s ignored: not in namespaces %v", u.Namespace, e.Namespaces.Values)})
		} else {
			e.Namespace = Value{Value: u.Namespace, Source: SourceUser}
		}
	}
	if len(u.DefaultPresets) > 0 {
		var bad []string
		for _, p := range u.DefaultPresets {
			if !e.Presets.Allows(p) {
				bad = append(bad, p)
			}
		}
		if len(bad) > 0 {
			e.Conflicts = append(e.Conflicts, Conflict{Field: "default_presets", Value: strings.Join(bad, ","),
				Message: fmt.Sprintf("user default presets %v ignored: %v not in presets %v", u.DefaultPresets, bad, e.Presets.Values)})
		} else {
			e.DefaultPresets = List{Values: slices.Clone(u.DefaultPresets), Source: SourceUser}
		}
	}
}

// queueRejection says why q is not allowed by the effective queues and agents, or "" when it is.
func (e *Effective) queueRejection(q string) string {
	if !e.Queues.Allows(q) {
		return fmt.Sprintf("not in queues %v", e.Queues.Values)
	}
	if a := QueueAgent(q); a != "" && !e.Agents.Allows(a) {
		return fmt.Sprintf("agent %s not in agents %v", a, e.Agents.Values)
	}
	return ""
}

// EffectiveTeams is the allow-list that restricts who reaches a project: the project's teams
// narrowed by its policy's teams. It is the same computation Merge does for Teams.
func EffectiveTeams(projectTeams []string, pol *Named) AllowList {
	if pol == nil {
		return mergeAllow(projectTeams, nil, "")
	}
	return mergeAllow(projectTeams, pol.Settings.Teams, pol.Name)
}

func policySource(name string) string {
	if name == "" {
		return ""
	}
	return "policy:" + name
}

func mergeAllow(proj, pol []string, polName string) AllowList {
	switch {
	case len(proj) > 0 && len(pol) > 0 && polName != "":
		var out []string
		for _, v := range sortedUnique(proj) {
			if slices.Contains(pol, v) {
				out = append(out, v)
			}
		}
		if out == nil {
			out = []string{}
		}
		return AllowList{Restricted: true, Values: out, Source: "policy:" + polName + "∩project"}
	case len(proj) > 0:
		return AllowList{Restricted: true, Values: sortedUnique(proj), Source: SourceProject}
	case len(pol) > 0 && polName != "":
		return AllowList{Restricted: true, Values: sortedUnique(pol), Source: "policy:" + polName}
	default:
		return AllowList{Values: []string{}, Source: SourceUnset}
	}
}

func mergeDeny(proj, pol []string, polName string) List {
	if polName == "" {
		pol = nil
	}
	all := sortedUnique(append(slices.Clone(proj), pol...))
	src := SourceUnset
	switch {
	case len(proj) > 0 && len(pol) > 0:
		src = "policy:" + polName + "∪project"
	case len(proj) > 0:
		src = SourceProject
	case len(pol) > 0:
		src = "policy:" + polName
	}
	return List{Values: all, Source: src}
}

func sortedUnique(v []string) []string {
	out := slices.Clone(v)
	slices.Sort(out)
	out = slices.Compact(out)
	if out == nil {
		out = []string{}
	}
	return out
}
