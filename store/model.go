package store

import (
	"slices"
	"strings"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/scope"
)

// The role names a write may store. They are for validation only and in no particular order:
// how roles rank is data of the Rego policy (rego/data.json), never the store's business.
var (
	orgRoles  = teamgate.OrgRoles()
	teamRoles = teamgate.MemberRoles()
)

// OrgRoles returns the names of the org roles, in no particular order.
func OrgRoles() []string { return names(orgRoles) }

// TeamRoles returns the names of the roles a team membership or a project grant may hold, in no
// particular order (teamgate.RoleNone is not one of them).
func TeamRoles() []string { return names(teamRoles) }

// IsOrgRole reports whether role is an org role.
func IsOrgRole(role string) bool { return slices.Contains(orgRoles, teamgate.OrgRole(role)) }

func names[R ~string](roles []R) []string {
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = string(r)
	}
	return out
}

// Org is an organization and the defaults every project in it inherits.
type Org struct {
	Name                     string   `json:"name"`
	Queue                    string   `json:"queue,omitempty"`
	DefaultPresets           []string `json:"default_presets,omitempty"`
	ArchivedDeletionInterval int      `json:"archived_deletion_interval,omitempty"`
}

// Defaults returns the org's defaults as the policy package takes them.
func (o Org) Defaults() policy.OrgDefaults {
	return policy.OrgDefaults{Queue: o.Queue, DefaultPresets: o.DefaultPresets, ArchivedDeletionInterval: o.ArchivedDeletionInterval}
}

// Team is a team of an org. Its members are written with PutTeamMember.
type Team struct {
	Org         string `json:"org"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Policy      string `json:"policy,omitempty"` // linked policy: connected to projects created in the team space
}

// Grant is a user's own access to one project.
type Grant struct {
	Role           string   `json:"role"`
	Queue          string   `json:"queue,omitempty"`
	Namespace      string   `json:"namespace,omitempty"`
	DefaultPresets []string `json:"default_presets,omitempty"`
}

// Project is a project of an org. Teams restricts access (empty = open to the org).
type Project struct {
	Org       string           `json:"org"`
	Name      string           `json:"name"`
	Teams     []string         `json:"teams,omitempty"`
	Policy    string           `json:"policy,omitempty"`
	Settings  policy.Settings  `json:"settings"`
	Grants    map[string]Grant `json:"grants,omitempty"`
	CreatedBy string           `json:"created_by,omitempty"`
}

// Policy is an organization policy.
type Policy struct {
	Org      string          `json:"org"`
	Name     string          `json:"name"`
	Settings policy.Settings `json:"settings"`
}

// User is a user's own record.
type User struct {
	ID          string `json:"id"`
	DefaultTeam string `json:"default_team,omitempty"` // owner string `org/team`
}

func checkRole[R ~string](what, role string, allowed []R) error {
	if !slices.Contains(allowed, R(role)) {
		return teamgate.Invalid(what, role, "expected one of "+strings.Join(names(allowed), ", "))
	}
	return nil
}

func (o Org) validate() error {
	if err := scope.CheckSlug("org", o.Name); err != nil {
		return err
	}
	s := policy.Settings{Queue: o.Queue, DefaultPresets: o.DefaultPresets, ArchivedDeletionInterval: o.ArchivedDeletionInterval}
	return s.Validate("org " + o.Name)
}

func (g Grant) equal(h Grant) bool {
	return g.Role == h.Role && g.Queue == h.Queue && g.Namespace == h.Namespace && slices.Equal(g.DefaultPresets, h.DefaultPresets)
}

func (g Grant) validate(what string) error {
	if err := checkRole(what+" role", g.Role, teamRoles); err != nil {
		return err
	}
	s := policy.Settings{Queue: g.Queue, DefaultPresets: g.DefaultPresets}
	if g.Namespace != "" {
		s.Namespaces = []string{g.Namespace}
	}
	return s.Validate(what)
}
