package store

import (
	"fmt"
	"slices"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/scope"
)

// Change is one write in an Apply batch. The concrete types are the Put* and Delete* structs of
// this package; a Put creates or replaces. Applying the same changes in the same order to another
// store reproduces the same state.
type Change interface {
	// Kind names the change in events: "put_org", "delete_member", ...
	Kind() string
	apply(t *txn) error
}

// PutOrg creates an org or replaces its defaults.
type PutOrg struct{ Org Org }

// DeleteOrg removes an org with everything in it.
type DeleteOrg struct{ Name string }

// PutMember makes User a member of Org with Role, or changes the role.
type PutMember struct{ Org, User, Role string }

// DeleteMember removes a user from an org, with their team memberships and project grants there.
type DeleteMember struct{ Org, User string }

// PutTeam creates a team or replaces its description and linked policy (members are kept).
type PutTeam struct{ Team Team }

// DeleteTeam removes a team. A team that a project is assigned to cannot be deleted (ErrConflict):
// dropping it silently could open a restricted project to the whole org.
type DeleteTeam struct{ Org, Name string }

// PutTeamMember adds an org member to a team with Role, or changes the role.
type PutTeamMember struct{ Org, Team, User, Role string }

// DeleteTeamMember removes a user from a team.
type DeleteTeamMember struct{ Org, Team, User string }

// PutProject creates or replaces a project, grants included.
type PutProject struct{ Project Project }

// DeleteProject removes a project and its grants.
type DeleteProject struct{ Org, Name string }

// PutGrant gives an org member their own access to one project.
type PutGrant struct {
	Org, Project, User string
	Grant              Grant
}

// DeleteGrant removes a user's grant on a project.
type DeleteGrant struct{ Org, Project, User string }

// PutPolicy creates or replaces a policy. Every connected project sees it on its next read.
type PutPolicy struct{ Policy Policy }

// DeletePolicy removes a policy. A policy still connected to a project or linked to a team
// cannot be deleted (ErrConflict).
type DeletePolicy struct{ Org, Name string }

// PutUser creates or replaces a user record.
type PutUser struct{ User User }

// DeleteUser removes a user record (memberships are separate and stay).
type DeleteUser struct{ ID string }

func (PutOrg) Kind() string           { return "put_org" }
func (DeleteOrg) Kind() string        { return "delete_org" }
func (PutMember) Kind() string        { return "put_member" }
func (DeleteMember) Kind() string     { return "delete_member" }
func (PutTeam) Kind() string          { return "put_team" }
func (DeleteTeam) Kind() string       { return "delete_team" }
func (PutTeamMember) Kind() string    { return "put_team_member" }
func (DeleteTeamMember) Kind() string { return "delete_team_member" }
func (PutProject) Kind() string       { return "put_project" }
func (DeleteProject) Kind() string    { return "delete_project" }
func (PutGrant) Kind() string         { return "put_grant" }
func (DeleteGrant) Kind() string      { return "delete_grant" }
func (PutPolicy) Kind() string        { return "put_policy" }
func (DeletePolicy) Kind() string     { return "delete_policy" }
func (PutUser) Kind() string          { return "put_user" }
func (DeleteUser) Kind() string       { return "delete_user" }

// Badger keys of records (see the package doc for the layout).
func keyOrg(org string) string                 { return "v1/org/" + org }
func keyMember(org, user string) string        { return "v1/member/" + org + "/" + user }
func keyTeam(org, team string) string          { return "v1/team/" + org + "/" + team }
func keyTeamMember(org, team, u string) string { return "v1/tmember/" + org + "/" + team + "/" + u }
func keyProject(org, p string) string          { return "v1/project/" + org + "/" + p }
func keyPolicy(org, p string) string           { return "v1/policy/" + org + "/" + p }
func keyUser(id string) string                 { return "v1/user/" + id }

func (t *txn) org(name string) (*orgData, error) {
	if err := scope.CheckSlug("org", name); err != nil {
		return nil, err
	}
	o, ok := t.st.orgs[name]
	if !ok {
		return nil, &teamgate.NotFoundError{What: "org", Name: name}
	}
	return o, nil
}

// team finds a team for a change that needs it to exist.
func (t *txn) team(org, name string) (*orgData, *teamData, error) {
	o, err := t.org(org)
	if err != nil {
		return nil, nil, err
	}
	td, ok := o.teams[name]
	if !ok {
		return nil, nil, &teamgate.NotFoundError{What: "team", Name: org + "/" + name}
	}
	return o, td, nil
}

// project finds a project for a change that needs it to exist.
func (t *txn) project(org, name string) (*orgData, *projectData, error) {
	o, err := t.org(org)
	if err != nil {
		return nil, nil, err
	}
	pd, ok := o.projects[name]
	if !ok {
		return nil, nil, &teamgate.NotFoundError{What: "project", Name: org + "/" + name}
	}
	return o, pd, nil
}

// unindexProject removes a project from the team, policy and grant indexes (setProjectTeams
// keeps the open-project index; DeleteProject drops it).
func (t *txn) unindexProject(o *orgData, pd *projectData) {
	name := pd.p.Name
	for _, team := range pd.teams.Values {
		delIndex(t, o.teamProjects, team, name)
	}
	if pd.p.Policy != "" {
		delIndex(t, o.policyProjects, pd.p.Policy, name)
	}
	for u := range pd.p.Grants {
		delIndex(t, o.userGrants, u, name)
	}
}

func (t *txn) member(o *orgData, user, what string) error {
	if err := scope.CheckSlug("user", user); err != nil {
		return err
	}
	if _, ok := o.members[user]; !ok {
		return &teamgate.NotFoundError{What: what + " (must be a member of org " + o.org.Name + ")", Name: user}
	}
	return nil
}

func (c PutOrg) apply(t *txn) error {
	if err := c.Org.validate(); err != nil {
		return err
	}
	o := c.Org
	o.DefaultPresets = slices.Clone(o.DefaultPresets)
	if od, ok := t.st.orgs[o.Name]; ok {
		old := od.org
		t.onUndo(func() { od.org = old })
		od.org = o
		t.affectAll(od)
	} else {
		set(t, t.st.orgs, o.Name, newOrgData(o))
	}
	t.touch(keyOrg(o.Name))
	return nil
}

func (c DeleteOrg) apply(t *txn) error {
	o, err := t.org(c.Name)
	if err != nil {
		return err
	}
	for u := range o.members {
		t.touch(keyMember(c.Name, u))
	}
	for name, td := range o.teams {
		t.touch(keyTeam(c.Name, name))
		for u := range td.members {
			t.touch(keyTeamMember(c.Name, name, u))
		}
	}
	for name := range o.projects {
		t.touch(keyProject(c.Name, name))
	}
	for name := range o.policies {
		t.touch(keyPolicy(c.Name, name))
	}
	t.affectAll(o)
	t.touch(keyOrg(c.Name))
	del(t, t.st.orgs, c.Name)
	return nil
}

func (c PutMember) apply(t *txn) error {
	o, err := t.org(c.Org)
	if err != nil {
		return err
	}
	if err := scope.CheckSlug("user", c.User); err != nil {
		return err
	}
	if err := checkRole("org role", c.Role, orgRoles); err != nil {
		return err
	}
	set(t, o.members, c.User, c.Role)
	t.touch(keyMember(c.Org, c.User))
	return nil
}

func (c DeleteMember) apply(t *txn) error {
	o, err := t.org(c.Org)
	if err != nil {
		return err
	}
	if err := t.member(o, c.User, "member"); err != nil {
		return err
	}
	for team := range o.userTeams[c.User] {
		if err := (DeleteTeamMember{Org: c.Org, Team: team, User: c.User}).apply(t); err != nil {
			return err
		}
	}
	for name, pd := range o.projects {
		if _, ok := pd.p.Grants[c.User]; ok {
			if err := (DeleteGrant{Org: c.Org, Project: name, User: c.User}).apply(t); err != nil {
				return err
			}
		}
	}
	del(t, o.members, c.User)
	t.touch(keyMember(c.Org, c.User))
	return nil
}

func (c PutTeam) apply(t *txn) error {
	tm := c.Team
	o, err := t.org(tm.Org)
	if err != nil {
		return err
	}
	if err := scope.CheckSlug("team", tm.Name); err != nil {
		return err
	}
	if tm.Policy != "" {
		if _, ok := o.policies[tm.Policy]; !ok {
			return &teamgate.NotFoundError{What: "policy (linked by team " + tm.Org + "/" + tm.Name + ")", Name: tm.Org + "/" + tm.Policy}
		}
	}
	if td, ok := o.teams[tm.Name]; ok {
		old := td.team
		t.onUndo(func() { td.team = old })
		td.team = tm
	} else {
		set(t, o.teams, tm.Name, &teamData{team: tm, members: map[string]string{}})
	}
	t.touch(keyTeam(tm.Org, tm.Name))
	return nil
}

func (c DeleteTeam) apply(t *txn) error {
	o, td, err := t.team(c.Org, c.Name)
	if err != nil {
		return err
	}
	for _, name := range sortedKeys(o.projects) {
		if slices.Contains(o.projects[name].p.Teams, c.Name) {
			return &teamgate.ConflictError{What: "team", Name: c.Org + "/" + c.Name,
				Reason: "project " + name + " is assigned to it; unassign it first"}
		}
	}
	for u := range td.members {
		if err := (DeleteTeamMember{Org: c.Org, Team: c.Name, User: u}).apply(t); err != nil {
			return err
		}
	}
	del(t, o.teams, c.Name)
	t.touch(keyTeam(c.Org, c.Name))
	return nil
}

func (c PutTeamMember) apply(t *txn) error {
	o, td, err := t.team(c.Org, c.Team)
	if err != nil {
		return err
	}
	if err := t.member(o, c.User, "team member"); err != nil {
		return err
	}
	if err := checkRole("team role", c.Role, teamRoles); err != nil {
		return err
	}
	set(t, td.members, c.User, c.Role)
	setIndex(t, o.userTeams, c.User, c.Team, c.Role)
	t.touch(keyTeamMember(c.Org, c.Team, c.User))
	return nil
}

func (c DeleteTeamMember) apply(t *txn) error {
	o, td, err := t.team(c.Org, c.Team)
	if err != nil {
		return err
	}
	if _, ok := td.members[c.User]; !ok {
		return &teamgate.NotFoundError{What: "team member", Name: c.Org + "/" + c.Team + "/" + c.User}
	}
	del(t, td.members, c.User)
	delIndex(t, o.userTeams, c.User, c.Team)
	t.touch(keyTeamMember(c.Org, c.Team, c.User))
	return nil
}

func (c PutProject) apply(t *txn) error {
	p := c.Project
	o, err := t.org(p.Org)
	if err != nil {
		return err
	}
	name := p.Org + "/" + p.Name
	if err := scope.CheckSlug("project", p.Name); err != nil {
		return err
	}
	if len(p.Settings.Teams) > 0 {
		return teamgate.Invalid("project settings.teams", name, "ambiguous: a project's teams are its top-level teams field")
	}
	seen := map[string]bool{}
	for _, team := range p.Teams {
		if _, ok := o.teams[team]; !ok {
			return &teamgate.NotFoundError{What: "team (assigned to project " + name + ")", Name: p.Org + "/" + team}
		}
		if seen[team] {
			return &teamgate.ConflictError{What: "project", Name: name, Reason: "team " + team + " listed twice"}
		}
		seen[team] = true
	}
	if p.Policy != "" {
		if _, ok := o.policies[p.Policy]; !ok {
			return &teamgate.NotFoundError{What: "policy (connected to project " + name + ")", Name: p.Org + "/" + p.Policy}
		}
	}
	if p.CreatedBy != "" {
		if err := scope.CheckSlug("project created_by", p.CreatedBy); err != nil {
			return err
		}
	}
	for u, g := range p.Grants {
		if err := t.member(o, u, "grantee on project "+name); err != nil {
			return err
		}
		if err := g.validate("grant " + name + "/" + u); err != nil {
			return err
		}
	}
	if err := p.Settings.Validate("project " + name); err != nil {
		return err
	}
	rules, err := policy.CompileRules(p.Settings.Rules, "project "+name)
	if err != nil {
		return err
	}
	p = cloneProject(p)

	pd, exists := o.projects[p.Name]
	if exists {
		t.unindexProject(o, pd)
		oldP, oldRules := pd.p, pd.rules
		t.onUndo(func() { pd.p, pd.rules = oldP, oldRules })
		pd.p, pd.rules = p, rules
	} else {
		pd = &projectData{p: p, rules: rules}
		set(t, o.projects, p.Name, pd)
		t.resort[o] = struct{}{}
	}
	if p.Policy != "" {
		setIndex(t, o.policyProjects, p.Policy, p.Name, struct{}{})
	}
	for u := range p.Grants {
		setIndex(t, o.userGrants, u, p.Name, struct{}{})
	}
	t.setProjectTeams(o, pd)
	t.touch(keyProject(p.Org, p.Name))
	t.affect(p.Org, p.Name)
	return nil
}

func (c DeleteProject) apply(t *txn) error {
	o, pd, err := t.project(c.Org, c.Name)
	if err != nil {
		return err
	}
	t.unindexProject(o, pd)
	del(t, o.openProjects, c.Name)
	del(t, o.projects, c.Name)
	t.resort[o] = struct{}{}
	t.touch(keyProject(c.Org, c.Name))
	t.affect(c.Org, c.Name)
	return nil
}

func (c PutGrant) apply(t *txn) error {
	_, pd, err := t.project(c.Org, c.Project)
	if err != nil {
		return err
	}
	p := cloneProject(pd.p)
	if p.Grants == nil {
		p.Grants = map[string]Grant{}
	}
	p.Grants[c.User] = c.Grant
	return PutProject{Project: p}.apply(t)
}

func (c DeleteGrant) apply(t *txn) error {
	_, pd, err := t.project(c.Org, c.Project)
	if err != nil {
		return err
	}
	if _, ok := pd.p.Grants[c.User]; !ok {
		return &teamgate.NotFoundError{What: "grant", Name: c.Org + "/" + c.Project + "/" + c.User}
	}
	p := cloneProject(pd.p)
	delete(p.Grants, c.User)
	return PutProject{Project: p}.apply(t)
}

func (c PutPolicy) apply(t *txn) error {
	p := c.Policy
	o, err := t.org(p.Org)
	if err != nil {
		return err
	}
	if err := scope.CheckSlug("policy", p.Name); err != nil {
		return err
	}
	what := "policy " + p.Org + "/" + p.Name
	if err := p.Settings.Validate(what); err != nil {
		return err
	}
	rules, err := policy.CompileRules(p.Settings.Rules, what)
	if err != nil {
		return err
	}
	p.Settings = cloneSettings(p.Settings)
	if pd, ok := o.policies[p.Name]; ok {
		oldP, oldRules := pd.p, pd.rules
		t.onUndo(func() { pd.p, pd.rules = oldP, oldRules })
		pd.p, pd.rules = p, rules
	} else {
		set(t, o.policies, p.Name, &policyData{p: p, rules: rules})
	}
	for name := range o.policyProjects[p.Name] {
		t.setProjectTeams(o, o.projects[name])
		t.affect(p.Org, name)
	}
	t.touch(keyPolicy(p.Org, p.Name))
	return nil
}

func (c DeletePolicy) apply(t *txn) error {
	o, err := t.org(c.Org)
	if err != nil {
		return err
	}
	if _, ok := o.policies[c.Name]; !ok {
		return &teamgate.NotFoundError{What: "policy", Name: c.Org + "/" + c.Name}
	}
	if ps := o.policyProjects[c.Name]; len(ps) > 0 {
		return &teamgate.ConflictError{What: "policy", Name: c.Org + "/" + c.Name,
			Reason: fmt.Sprintf("connected to projects %v", sortedKeys(ps))}
	}
	for _, name := range sortedKeys(o.teams) {
		if o.teams[name].team.Policy == c.Name {
			return &teamgate.ConflictError{What: "policy", Name: c.Org + "/" + c.Name, Reason: "linked by team " + name}
		}
	}
	del(t, o.policies, c.Name)
	t.touch(keyPolicy(c.Org, c.Name))
	return nil
}

func (c PutUser) apply(t *txn) error {
	u := c.User
	if err := scope.CheckSlug("user", u.ID); err != nil {
		return err
	}
	if u.DefaultTeam != "" {
		o, err := scope.ParseOwner(u.DefaultTeam)
		if err != nil {
			return err
		}
		if !o.IsTeam() {
			return teamgate.Invalid("default team", u.DefaultTeam, "a default team is `org/team`")
		}
	}
	set(t, t.st.users, u.ID, u)
	t.touch(keyUser(u.ID))
	return nil
}

func (c DeleteUser) apply(t *txn) error {
	if _, ok := t.st.users[c.ID]; !ok {
		return &teamgate.NotFoundError{What: "user", Name: c.ID}
	}
	del(t, t.st.users, c.ID)
	t.touch(keyUser(c.ID))
	return nil
}

func cloneSettings(s policy.Settings) policy.Settings {
	c := s
	c.Connections = slices.Clone(s.Connections)
	c.Agents = slices.Clone(s.Agents)
	c.Queues = slices.Clone(s.Queues)
	c.Namespaces = slices.Clone(s.Namespaces)
	c.Presets = slices.Clone(s.Presets)
	c.Teams = slices.Clone(s.Teams)
	c.Projects = slices.Clone(s.Projects)
	c.DefaultPresets = slices.Clone(s.DefaultPresets)
	c.ExcludedRuntimes = slices.Clone(s.ExcludedRuntimes)
	c.ExcludedFeatures = slices.Clone(s.ExcludedFeatures)
	c.Rules = slices.Clone(s.Rules)
	return c
}

func cloneProject(p Project) Project {
	c := p
	c.Teams = slices.Clone(p.Teams)
	c.Settings = cloneSettings(p.Settings)
	if p.Grants != nil {
		c.Grants = make(map[string]Grant, len(p.Grants))
		for u, g := range p.Grants {
			g.DefaultPresets = slices.Clone(g.DefaultPresets)
			c.Grants[u] = g
		}
	}
	return c
}
