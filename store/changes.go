package store

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

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
// Changing the linked policy re-connects the team's projects that followed the old one (see
// "Team policy links" in the package doc).
type PutTeam struct{ Team Team }

// DeleteTeam removes a team. A team that a project is assigned to cannot be deleted (ErrConflict):
// dropping it silently could open a restricted project to the whole org. Users whose default
// team it was lose their default team.
type DeleteTeam struct{ Org, Name string }

// RenameTeam renames a team in one change: its record, its memberships, the projects assigned to
// it, the policies whose teams allow-list names it and the users whose default team it is all
// follow, so every decision is the same under the new name. From must exist (ErrNotFound) and To
// must not (ErrConflict). CEL rules that spell the team's name are not rewritten.
type RenameTeam struct{ Org, From, To string }

// PutTeamMember adds an org member to a team with Role, or changes the role. A non-zero
// ExpiresAt ends the membership then (see "Expiry" in the package doc); putting it again
// replaces the expiry, zero included.
type PutTeamMember struct {
	Org, Team, User, Role string
	ExpiresAt             time.Time `json:",omitzero"`
}

// DeleteTeamMember removes a user from a team.
type DeleteTeamMember struct{ Org, Team, User string }

// PutProject creates or replaces a project, grants included.
type PutProject struct{ Project Project }

// CreateProject creates a project that must not exist yet (ErrConflict otherwise): unlike
// PutProject it never replaces, so of two creators of one name exactly one succeeds.
//
// With Team set the project is created in that team space: assigned to the team and connected to
// the policy the team links when the change applies (under the store's write lock, so a link
// changed by a concurrent write is never missed); Project.Teams and Project.Policy must then be
// empty.
type CreateProject struct {
	Project Project
	Team    string
}

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
func (CreateProject) Kind() string    { return "create_project" }
func (RenameTeam) Kind() string       { return "rename_team" }
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
	o, ok := t.orgOf(name)
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
	pd := o.project(name)
	if pd == nil {
		return nil, nil, &teamgate.NotFoundError{What: "project", Name: org + "/" + name}
	}
	return o, pd, nil
}

// unindexProject removes a project from the team, policy and grant indexes (setProjectTeams
// keeps the open-project index; DeleteProject drops it).
func (t *txn) unindexProject(o *orgData, pd *projectData) {
	name := pd.p.Name
	for _, team := range pd.teams {
		delIndex(t, o.teamProjects, team, name)
	}
	if pd.p.Policy != "" {
		delIndex(t, o.policyProjects, pd.p.Policy, name)
	}
	for u := range pd.p.Grants {
		delIndex(t, o.userGrants, u, name)
	}
}

// member returns the id of an org member, or an error naming user as what.
func (t *txn) member(o *orgData, user, what string) (uint32, error) {
	if err := scope.CheckSlug("user", user); err != nil {
		return 0, err
	}
	id, ok := o.members.id(user)
	if !ok {
		return 0, &teamgate.NotFoundError{What: what + " (must be a member of org " + o.org.Name + ")", Name: user}
	}
	return id, nil
}

func (c PutOrg) apply(t *txn) error {
	if err := c.Org.validate(); err != nil {
		return err
	}
	o := c.Org
	o.DefaultPresets = slices.Clone(o.DefaultPresets)
	if od, ok := t.orgOf(o.Name); ok {
		assign(t, &od.org, o)
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
	for u := range o.members.all {
		t.touch(keyMember(c.Name, u))
	}
	for name, td := range o.teams {
		t.touch(keyTeam(c.Name, name))
		for u := range o.teamMembers(td) {
			t.touch(keyTeamMember(c.Name, name, u))
		}
	}
	for pd := range o.projects.all {
		t.touch(keyProject(c.Name, pd.p.Name))
	}
	for name := range o.policies {
		t.touch(keyPolicy(c.Name, name))
	}
	for u := range o.members.all {
		t.subject(c.Name, u)
	}
	for _, team := range sortedKeys(o.defaultUsers) {
		t.clearDefaults(o, team)
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
	t.putMember(o, c.User, orgRoleCode(c.Role))
	t.touch(keyMember(c.Org, c.User))
	t.subject(c.Org, c.User)
	t.dropClosedDefault(o, c.User) // a demoted owner may no longer enter their default team
	return nil
}

func (c DeleteMember) apply(t *txn) error {
	o, err := t.org(c.Org)
	if err != nil {
		return err
	}
	id, err := t.member(o, c.User, "member")
	if err != nil {
		return err
	}
	for _, tr := range slices.Clone(o.members.byID[id].teams) {
		if err := (DeleteTeamMember{Org: c.Org, Team: o.teamByID[tr.team].team.Name, User: c.User}).apply(t); err != nil {
			return err
		}
	}
	for pd := range o.projects.all { // DeleteGrant changes the project, not the table
		if _, ok := pd.p.Grants[c.User]; ok {
			if err := (DeleteGrant{Org: c.Org, Project: pd.p.Name, User: c.User}).apply(t); err != nil {
				return err
			}
		}
	}
	t.delMember(o, c.User)
	t.touch(keyMember(c.Org, c.User))
	t.subject(c.Org, c.User)
	t.dropClosedDefault(o, c.User)
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
		assign(t, &td.team, tm)
		if old.Policy != tm.Policy {
			t.followLink(o, tm.Name, old.Policy, tm.Policy)
		}
	} else {
		t.newTeam(o, tm)
	}
	t.touch(keyTeam(tm.Org, tm.Name))
	return nil
}

func (c DeleteTeam) apply(t *txn) error {
	o, td, err := t.team(c.Org, c.Name)
	if err != nil {
		return err
	}
	for _, name := range o.projectNames() {
		if slices.Contains(o.project(name).p.Teams, c.Name) {
			return &teamgate.ConflictError{What: "team", Name: c.Org + "/" + c.Name,
				Reason: "project " + name + " is assigned to it; unassign it first"}
		}
	}
	var users []string // collected first: each deletion changes td.members
	for u := range o.teamMembers(td) {
		users = append(users, u)
	}
	for _, u := range users {
		if err := (DeleteTeamMember{Org: c.Org, Team: c.Name, User: u}).apply(t); err != nil {
			return err
		}
	}
	t.dropTeam(o, td)
	t.touch(keyTeam(c.Org, c.Name))
	t.clearDefaults(o, c.Name)
	return nil
}

func (c RenameTeam) apply(t *txn) error {
	o, td, err := t.team(c.Org, c.From)
	if err != nil {
		return err
	}
	if err := scope.CheckSlug("team", c.To); err != nil {
		return err
	}
	if _, ok := o.teams[c.To]; ok {
		return &teamgate.ConflictError{What: "team", Name: c.Org + "/" + c.To,
			Reason: "cannot rename " + c.Org + "/" + c.From + " to it: it already exists"}
	}
	del(t, o.teams, c.From)
	assign(t, &td.team.Name, c.To)
	set(t, o.teams, c.To, td)
	t.touch(keyTeam(c.Org, c.From))
	t.touch(keyTeam(c.Org, c.To))
	for u := range o.teamMembers(td) { // memberships name the team by id: only the records move
		t.touch(keyTeamMember(c.Org, c.From, u))
		t.touch(keyTeamMember(c.Org, c.To, u))
		t.subject(c.Org, u)
	}
	// Projects whose effective teams must be recomputed: those assigned to the team and those
	// connected to a policy whose teams allow-list names it.
	recompute := map[string]*projectData{}
	for name, pol := range o.policies {
		if !slices.Contains(pol.p.Settings.Teams, c.From) {
			continue
		}
		assign(t, &pol.p.Settings.Teams, renamed(pol.p.Settings.Teams, c.From, c.To))
		t.touch(keyPolicy(c.Org, name))
		for p := range o.policyProjects[name] {
			recompute[p] = o.project(p)
		}
	}
	for pd := range o.projects.all {
		name := pd.p.Name
		if !slices.Contains(pd.p.Teams, c.From) {
			continue
		}
		assign(t, &pd.p.Teams, renamed(pd.p.Teams, c.From, c.To))
		t.touch(keyProject(c.Org, name))
		recompute[name] = pd
	}
	for name, pd := range recompute {
		t.setProjectTeams(o, pd)
		t.affect(c.Org, name)
	}
	t.teamNamed(o, c.To) // projects a policy's allow-list gave the new name before the team had it
	for _, u := range sortedKeys(o.defaultUsers[c.From]) {
		usr := t.st.users[u]
		usr.DefaultTeam = c.Org + "/" + c.To
		t.putUser(usr)
	}
	return nil
}

// renamed returns a copy of a team list with from replaced by to (once, where from stood).
func renamed(teams []string, from, to string) []string {
	out := make([]string, 0, len(teams))
	for _, tm := range teams {
		if tm == from {
			tm = to
		}
		if !slices.Contains(out, tm) { // a policy may already list a team name not yet created
			out = append(out, tm)
		}
	}
	return out
}

func (c PutTeamMember) apply(t *txn) error {
	o, td, id, role, err := c.resolve(t)
	if err != nil {
		return err
	}
	t.putTeamMember(o, td, id, role)
	t.setMemberExpiry(o, td, id, c.ExpiresAt)
	if !t.loading {
		t.touch(keyTeamMember(c.Org, c.Team, c.User))
		t.subject(c.Org, c.User)
		t.reach(c.Org, o.teamProjects[c.Team])
	}
	return nil
}

// resolve validates the change and returns the team and the member id and role code it names.
// It only reads the state (Open runs it from several goroutines at once).
func (c PutTeamMember) resolve(t *txn) (*orgData, *teamData, uint32, roleCode, error) {
	o, td, err := t.team(c.Org, c.Team)
	if err != nil {
		return nil, nil, 0, 0, err
	}
	id, err := t.member(o, c.User, "team member")
	if err != nil {
		return nil, nil, 0, 0, err
	}
	role := teamRoleCode(c.Role)
	if role == 0 {
		return nil, nil, 0, 0, checkRole("team role", c.Role, teamRoles)
	}
	if err := checkExpiry("team member "+c.Org+"/"+c.Team+"/"+c.User, c.ExpiresAt); err != nil {
		return nil, nil, 0, 0, err
	}
	return o, td, id, role, nil
}

func (c DeleteTeamMember) apply(t *txn) error {
	o, td, err := t.team(c.Org, c.Team)
	if err != nil {
		return err
	}
	if o.teamRole(td, c.User) == 0 {
		return &teamgate.NotFoundError{What: "team member", Name: c.Org + "/" + c.Team + "/" + c.User}
	}
	id, _ := o.members.id(c.User)
	t.setMemberExpiry(o, td, id, time.Time{})
	t.delTeamMember(o, td, id)
	t.touch(keyTeamMember(c.Org, c.Team, c.User))
	t.subject(c.Org, c.User)
	t.reach(c.Org, o.teamProjects[c.Team])
	t.dropClosedDefault(o, c.User)
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
	if err := ValidateLabels("project "+name+" label", p.Labels); err != nil {
		return err
	}
	for u, g := range p.Grants {
		if _, err := t.member(o, u, "grantee on project "+name); err != nil {
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

	pd := o.project(p.Name)
	exists := pd != nil
	var oldGrants map[string]Grant
	if exists {
		oldGrants = pd.p.Grants
	}
	for u, g := range p.Grants {
		if old, ok := oldGrants[u]; !ok || !old.equal(g) {
			t.subject(p.Org, u)
		}
	}
	for u := range oldGrants {
		if _, ok := p.Grants[u]; !ok {
			t.subject(p.Org, u)
		}
	}
	if exists {
		t.unindexProject(o, pd)
		t.putRecord(pd, p, rules)
	} else {
		pd = &projectData{}
		pd.setRecord(p, rules)
		pd.setKey(p.Name)
		setEntry(t, &o.projects, p.Name, pd)
		t.resort[o] = struct{}{}
	}
	if p.Policy != "" {
		setIndex(t, o.policyProjects, p.Policy, p.Name, struct{}{})
	}
	for u := range p.Grants {
		setIndex(t, o.userGrants, u, p.Name, struct{}{})
	}
	t.setProjectTeams(o, pd)
	t.setGrantExpiries(o, p)
	t.touch(keyProject(p.Org, p.Name))
	t.affect(p.Org, p.Name)
	return nil
}

func (c CreateProject) apply(t *txn) error {
	p := c.Project
	o, err := t.org(p.Org)
	if err != nil {
		return err
	}
	if err := scope.CheckSlug("project", p.Name); err != nil {
		return err
	}
	name := p.Org + "/" + p.Name
	if o.project(p.Name) != nil {
		return &teamgate.ConflictError{What: "project", Name: name, Reason: "already exists"}
	}
	if c.Team != "" {
		_, td, err := t.team(p.Org, c.Team)
		if err != nil {
			return err
		}
		if len(p.Teams) > 0 || p.Policy != "" {
			return teamgate.Invalid("project created in team space", name,
				"its teams and policy come from team "+p.Org+"/"+c.Team+"; leave them empty")
		}
		p.Teams, p.Policy = []string{c.Team}, td.team.Policy
	}
	return PutProject{Project: p}.apply(t)
}

func (c DeleteProject) apply(t *txn) error {
	o, pd, err := t.project(c.Org, c.Name)
	if err != nil {
		return err
	}
	t.unindexProject(o, pd)
	del(t, o.openProjects, c.Name)
	delEntry(t, &o.projects, c.Name)
	del(t, o.grantExpiry, c.Name)
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
		assign(t, &pd.p, p)
		assign(t, &pd.rules, rules)
	} else {
		set(t, o.policies, p.Name, &policyData{p: p, rules: rules})
	}
	for name := range o.policyProjects[p.Name] {
		t.setProjectTeams(o, o.project(name))
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
		ow, err := scope.ParseOwner(u.DefaultTeam)
		if err != nil {
			return err
		}
		if !ow.IsTeam() {
			return teamgate.Invalid("default team", u.DefaultTeam, "a default team is `org/team`")
		}
		o, td, err := t.team(ow.Org, ow.Team)
		if err != nil {
			return fmt.Errorf("default team %s of user %s: %w", u.DefaultTeam, u.ID, err)
		}
		if !canEnter(o, td, u.ID) {
			if t.loading {
				// A record written before default teams were checked: Open must not fail on it.
				// The default is dropped in memory (an empty owner then asks for one).
				u.DefaultTeam = ""
				t.putUser(u)
				return nil
			}
			return &teamgate.NotFoundError{What: "team membership", Name: u.DefaultTeam + "/" + u.ID,
				Reason: "default team " + u.DefaultTeam + " of user " + u.ID + ": " + u.ID + " is not a member of the team"}
		}
	}
	t.putUser(u)
	return nil
}

func (c DeleteUser) apply(t *txn) error {
	u, ok := t.st.users[c.ID]
	if !ok {
		return &teamgate.NotFoundError{What: "user", Name: c.ID}
	}
	t.unindexDefault(u)
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
	c.Labels = nil // none is nil: the record's JSON leaves both out, so they are one state
	if len(p.Labels) > 0 {
		c.Labels = maps.Clone(p.Labels)
	}
	if p.Grants != nil {
		c.Grants = make(map[string]Grant, len(p.Grants))
		for u, g := range p.Grants {
			g.DefaultPresets = slices.Clone(g.DefaultPresets)
			if g.BreakGlass != nil { // the caller's pointer: the record keeps its own
				b := *g.BreakGlass
				g.BreakGlass = &b
			}
			c.Grants[u] = g
		}
	}
	return c
}

// canEnter reports whether a user may keep td as their default team: they are a member of it.
// The store decides this from memberships alone, never from org roles: which org roles reach
// every team is the policy's rule (rego/data.json), not the store's.
func canEnter(o *orgData, td *teamData, user string) bool {
	return o.teamRole(td, user) != 0
}

// defaultOf returns the org data and team of a user's default team (nil when none, or its org
// is gone).
func (t *txn) defaultOf(u User) (*orgData, string) {
	org, team, ok := strings.Cut(u.DefaultTeam, "/")
	if !ok {
		return nil, ""
	}
	o, _ := t.orgOf(org)
	return o, team
}

func (t *txn) unindexDefault(u User) {
	if o, team := t.defaultOf(u); o != nil {
		delIndex(t, o.defaultUsers, team, u.ID)
	}
}

// putUser writes a user record and keeps the default-team index.
func (t *txn) putUser(u User) {
	if old, ok := t.st.users[u.ID]; ok {
		t.unindexDefault(old)
	}
	set(t, t.st.users, u.ID, u)
	if o, team := t.defaultOf(u); o != nil {
		setIndex(t, o.defaultUsers, team, u.ID, struct{}{})
	}
	t.touch(keyUser(u.ID))
}

// dropClosedDefault clears a user's default team in o when the user can no longer enter it (a
// membership removed or an org role lowered).
func (t *txn) dropClosedDefault(o *orgData, user string) {
	u, ok := t.st.users[user]
	if !ok {
		return
	}
	do, team := t.defaultOf(u)
	if do != o {
		return
	}
	if td, ok := o.teams[team]; ok && canEnter(o, td, user) {
		return
	}
	u.DefaultTeam = ""
	t.putUser(u)
}

// clearDefaults clears the default team of every user whose default team is team (deleted).
func (t *txn) clearDefaults(o *orgData, team string) {
	for _, id := range sortedKeys(o.defaultUsers[team]) {
		u := t.st.users[id]
		u.DefaultTeam = ""
		t.putUser(u)
	}
}

// followLink applies a change of a team's linked policy from old to new to the team's projects:
// each project assigned to the team and connected to old ("" = unconnected) is connected to new
// ("" = disconnected); projects connected to another policy keep it (see the package doc).
func (t *txn) followLink(o *orgData, team, old, new string) {
	for pd := range o.projects.all { // connect changes the project, not the table
		if pd.p.Policy == old && slices.Contains(pd.p.Teams, team) {
			t.connect(o, pd, new)
		}
	}
}

// connect connects a project to a policy ("" disconnects it), keeping the indexes.
func (t *txn) connect(o *orgData, pd *projectData, pol string) {
	name := pd.p.Name
	if pd.p.Policy != "" {
		delIndex(t, o.policyProjects, pd.p.Policy, name)
	}
	assign(t, &pd.p.Policy, pol)
	if pol != "" {
		setIndex(t, o.policyProjects, pol, name, struct{}{})
	}
	t.setProjectTeams(o, pd)
	t.touch(keyProject(o.org.Name, name))
	t.affect(o.org.Name, name)
}
