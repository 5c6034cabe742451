package store

import (
	"encoding/json"
	"math/bits"
	"slices"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
)

// Reader reads one consistent snapshot of the directory. A team membership or grant whose
// expires_at has passed by the store's clock is absent for every accessor, whether or not the
// store has written its revocation yet (see "Expiry" in the package doc). It is only valid inside the View
// callback that received it, and maps and slices it returns are read-only.
//
// Every accessor but Revision serves facts that have a stamp (see Deps); a tracking Reader
// (Track) records the stamp of each fact it serves. Adding an accessor means recording its
// stamps; TestEveryReaderAccessorRecordsItsStamps fails until it does.
type Reader struct {
	st     *state
	stamps *stamps
	deps   *Deps // nil unless tracking
}

// View runs fn with a consistent snapshot. Writes wait until fn returns, so keep it short.
func (s *Store) View(fn func(r Reader) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return teamgate.ErrClosed
	}
	return fn(Reader{st: s.st, stamps: &s.stamps})
}

// ViewAccess is a View that reads only Reader.Access(org, team, project, user) into *a, which
// is zero, and returns the snapshot's revision, recording the facts' stamps into d when d is not
// nil (as Track does): a decision's whole read, without a callback for its caller to allocate
// and without a copy of the Access on the way back. *a is left zero on error.
func (s *Store) ViewAccess(a *Access, org, team, project, user string, d *Deps) (rev uint64, err error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return 0, teamgate.ErrClosed
	}
	r := Reader{st: s.st, stamps: &s.stamps}
	if d != nil {
		r = r.Track(d)
	}
	r.access(a, org, team, project, user)
	rev = r.st.rev
	s.mu.RUnlock()
	return rev, nil
}

// Track returns a Reader of the same snapshot that also records into d the stamp of every fact it
// serves (see Deps), replacing what d held. r itself does not record. A tracking Reader is not
// safe for concurrent use.
func (r Reader) Track(d *Deps) Reader {
	*d = Deps{src: r.stamps}
	r.deps = d
	return r
}

// dep records a fact's stamp when tracking.
func (r Reader) dep(kind byte, a, b string) {
	if r.deps != nil {
		r.deps.add(stampKey{kind, a, b})
	}
}

// Revision is the snapshot's revision. It is not a fact: a tracking Reader does not record it
// (a cached value reports the revision current when it is served).
func (r Reader) Revision() uint64 { return r.st.rev }

// Org returns an org's record.
func (r Reader) Org(name string) (Org, bool) {
	r.dep('o', name, "")
	o, ok := r.st.orgs[name]
	if !ok {
		return Org{}, false
	}
	return o.org, true
}

// Orgs returns every org name, sorted.
func (r Reader) Orgs() []string {
	r.dep('O', "", "")
	return sortedKeys(r.st.orgs)
}

// OrgRole returns a user's role in an org; ok is false for non-members and unknown orgs.
func (r Reader) OrgRole(org, user string) (role string, ok bool) {
	r.dep('m', org, user)
	o, found := r.st.orgs[org]
	if !found {
		return "", false
	}
	if _, code := o.members.role(user); code != 0 {
		return code.orgRole(), true
	}
	return "", false
}

// Members returns an org's members (user → role): a new map, built in time linear in the
// members.
func (r Reader) Members(org string) map[string]string {
	r.dep('x', org, "")
	if o, ok := r.st.orgs[org]; ok {
		return o.memberMap()
	}
	return nil
}

// MemberList returns an org's members in order (empty for an unknown org): immutable, kept by
// the store with the state, so it costs nothing to get and may be kept after View returns. A
// listing pages through it with After, a binary search to the cursor and then one step a name.
func (r Reader) MemberList(org string) MemberList {
	r.dep('x', org, "")
	if o, ok := r.st.orgs[org]; ok {
		return MemberList{o.members.list}
	}
	return MemberList{}
}

// TeamRoles returns a user's team roles in an org.
func (r Reader) TeamRoles(org, user string) UserTeams {
	r.dep('m', org, user)
	if o, ok := r.st.orgs[org]; ok {
		if m := o.members.get(user); m != nil {
			return UserTeams{o: o, list: r.liveTeams(o, m.id, m.teams)}
		}
	}
	return UserTeams{}
}

// UserTeams are a user's team memberships in one org, as a Reader served them: valid only
// inside the View that read them. The zero value has none.
type UserTeams struct {
	o    *orgData
	list []teamRole
}

// Len is the number of teams.
func (tr UserTeams) Len() int { return len(tr.list) }

// Role returns the user's role in team; ok is false when the user is not in it.
func (tr UserTeams) Role(team string) (role string, ok bool) {
	if len(tr.list) == 0 {
		return "", false
	}
	td, found := tr.o.teams[team]
	if !found {
		return "", false
	}
	for _, m := range tr.list {
		if m.team == td.id {
			return m.role.teamRole(), true
		}
	}
	return "", false
}

// All yields each team and the user's role in it, in no particular order.
func (tr UserTeams) All(yield func(team, role string) bool) {
	for _, m := range tr.list {
		if !yield(tr.o.teamByID[m.team].team.Name, m.role.teamRole()) {
			return
		}
	}
}

// Map returns the roles as a new map (team → role); nil when there are none.
func (tr UserTeams) Map() map[string]string {
	if len(tr.list) == 0 {
		return nil
	}
	m := make(map[string]string, len(tr.list))
	for team, role := range tr.All {
		m[team] = role
	}
	return m
}

// In returns the roles the user holds in the given teams (names of the org's teams; unknown names
// hold none).
func (tr UserTeams) In(teams []string) RoleSet {
	var s RoleSet
	if len(tr.list) == 0 || len(teams) == 0 {
		return s
	}
	if len(tr.list) <= fewTeams {
		for _, m := range tr.list {
			if slices.Contains(teams, tr.o.teamByID[m.team].team.Name) {
				s |= m.role.set()
			}
		}
		return s
	}
	for _, name := range teams {
		if td, ok := tr.o.teams[name]; ok {
			s |= tr.roleIn(td.id)
		}
	}
	return s
}

// inIDs is In for a set of team ids (a project's teamIDs): integers compared, no name read.
func (tr UserTeams) inIDs(ids *teamSet) RoleSet {
	var s RoleSet
	for _, m := range tr.list {
		if ids.has(m.team) {
			s |= m.role.set()
		}
	}
	return s
}

// fewTeams is how many teams a user may be in for UserTeams.In to compare each of their teams'
// names with the list rather than look the list's names up: a few string comparisons cost less
// than hashing a name.
const fewTeams = 6

// roleIn is the user's role in the team with this id, as a set of one role (none when not in it).
func (tr UserTeams) roleIn(team uint32) RoleSet {
	for _, m := range tr.list {
		if m.team == team {
			return m.role.set()
		}
	}
	return 0
}

// RoleSet is a set of team roles (teamgate.MemberRoles), as UserTeams.In and Reader.Access serve
// a user's roles in several teams: which role is highest is the policy's to say (its ranks).
type RoleSet uint8

func (c roleCode) set() RoleSet { return 1 << (c - 1) }

// Has reports whether role is in the set.
func (s RoleSet) Has(role string) bool {
	c := teamRoleCode(role)
	return c != 0 && s&c.set() != 0
}

// All yields each role in the set.
func (s RoleSet) All(yield func(role string) bool) {
	for s != 0 {
		c := roleCode(bits.TrailingZeros8(uint8(s)) + 1)
		if !yield(c.teamRole()) {
			return
		}
		s &^= c.set()
	}
}

// Append appends the roles in the set to dst.
func (s RoleSet) Append(dst []string) []string {
	for r := range s.All {
		dst = append(dst, r)
	}
	return dst
}

// MarshalJSON writes the set as a list of roles.
func (s RoleSet) MarshalJSON() ([]byte, error) { return json.Marshal(slices.Collect(s.All)) }

// Missing says which part of a resource reference does not exist (Access).
type Missing uint8

const (
	Found                Missing = iota // the resource exists
	MissingOrg                          // no such org
	MissingTeam                         // no such team in the org
	MissingProject                      // no such project in the org
	MissingFromTeamSpace                // the project exists but is not in the named team space
)

// Access is what a decision about one user on one resource reads (SPEC §3, §4), served by
// Reader.Access in one call.
type Access struct {
	// Missing is Found when the resource exists; otherwise the first part of the reference that
	// does not, and the fields below are empty (nothing about the user was read).
	Missing Missing
	OrgRole string // the user's org role; "" for non-members
	// Project resources only: the user's grant role ("" for none), the project's effective
	// teams (project teams narrowed by its policy's: ProjectView.Teams' Values; read-only),
	// whether they restrict the project (its Restricted) and its labels.
	Grant      string
	BreakGlass bool // the grant is a break-glass elevation (Grant.BreakGlass)
	Teams      []string
	Restricted bool
	Labels     map[string]string // the project's labels; read-only
	// TeamRoles are, for a project, the roles the user holds in its effective teams; for a team,
	// the user's role in it.
	TeamRoles RoleSet
	// OrgCode and GrantCode are OrgRole and Grant as codes (rego.Codes): 1 + the role's index in
	// teamgate.OrgRoles() and teamgate.MemberRoles(), 0 for none. (TeamRoles' bit i is
	// teamgate.MemberRoles()[i].)
	OrgCode, GrantCode uint8
}

// Access resolves a resource and reads what a decision about user on it reads: an org (team and
// project empty), a team (project empty), or a project, in a team space when team is given (the
// project must then be among the team space's, i.e. its effective teams hold the team). It
// records the stamps Org, Team, Project and OrgRole record for the parts it reads.
func (r Reader) Access(org, team, project, user string) Access {
	var a Access
	r.access(&a, org, team, project, user)
	return a
}

// access is Access into *a, which is zero.
func (r Reader) access(a *Access, org, team, project, user string) {
	r.dep('o', org, "")
	o, ok := r.st.orgs[org]
	if !ok {
		a.Missing = MissingOrg
		return
	}
	var td *teamData
	if team != "" {
		r.dep('t', org, team)
		if td, ok = o.teams[team]; !ok {
			a.Missing = MissingTeam
			return
		}
	}
	var pd *projectData
	if project != "" {
		r.dep('p', org, project)
		if pd = o.project(project); pd == nil {
			a.Missing = MissingProject
			return
		}
		if team != "" && !slices.Contains(pd.teams, team) {
			a.Missing = MissingFromTeamSpace
			return
		}
	}
	r.dep('m', org, user)
	var teams UserTeams
	if m := o.members.get(user); m != nil { // the name compare reads m's line: role and teams are on it
		a.OrgRole, a.OrgCode = m.role.orgRole(), uint8(m.role)
		teams = UserTeams{o: o, list: r.liveTeams(o, m.id, m.teams)}
	}
	switch {
	case pd != nil:
		if len(pd.grants) > 0 { // most projects have none: no lookup
			if g, ok := pd.grants[user]; ok && (len(o.grantExpiry) == 0 || r.live(o.grantExpiry[project][user])) {
				a.Grant, a.GrantCode, a.BreakGlass = g.Role, uint8(teamRoleCode(g.Role)), g.BreakGlass != nil
			}
		}
		// pd's first line, which the map's key compare read (a write replaces the record and the
		// teams, never edits them)
		a.Teams, a.Restricted, a.Labels = pd.teams, pd.restricted, pd.labels
		a.TeamRoles = teams.inIDs(&pd.teamIDs)
	case td != nil:
		a.TeamRoles = teams.roleIn(td.id)
	}
}

// Team returns a team's record.
func (r Reader) Team(org, team string) (Team, bool) {
	r.dep('t', org, team)
	if o, ok := r.st.orgs[org]; ok {
		if td, ok := o.teams[team]; ok {
			return td.team, true
		}
	}
	return Team{}, false
}

// Teams returns an org's team names, sorted.
func (r Reader) Teams(org string) []string {
	r.dep('x', org, "")
	if o, ok := r.st.orgs[org]; ok {
		return sortedKeys(o.teams)
	}
	return nil
}

// TeamMembers returns a team's members (user → team role): a new map, built in time linear in
// the team's members.
func (r Reader) TeamMembers(org, team string) map[string]string {
	r.dep('x', org, "")
	if o, ok := r.st.orgs[org]; ok {
		if td, ok := o.teams[team]; ok {
			m := o.teamMemberMap(td)
			if len(o.memberExpiry) > 0 {
				for u := range m {
					if !r.live(o.teamExpiry(td, u)) {
						delete(m, u)
					}
				}
			}
			return m
		}
	}
	return nil
}

// ProjectView is a project with what the decision path derives from it.
type ProjectView struct {
	Project *Project         // read-only
	Teams   policy.AllowList // effective teams (project teams narrowed by the policy's); read-only
}

// Project returns a project and its effective teams.
func (r Reader) Project(org, name string) (ProjectView, bool) {
	r.dep('p', org, name)
	if o, ok := r.st.orgs[org]; ok {
		if pd := o.project(name); pd != nil {
			return ProjectView{Project: r.liveProject(o, pd), Teams: pd.effective()}, true
		}
	}
	return ProjectView{}, false
}

// Projects returns an org's project names, sorted. The slice is shared: do not modify it.
func (r Reader) Projects(org string) []string {
	r.dep('x', org, "")
	if o, ok := r.st.orgs[org]; ok {
		return o.sortedProjects
	}
	return nil
}

// ProjectCount returns how many projects an org has.
func (r Reader) ProjectCount(org string) int {
	r.dep('x', org, "")
	if o, ok := r.st.orgs[org]; ok {
		return o.projects.len()
	}
	return 0
}

// OpenProjects returns the org's projects with no team restriction, sorted. The slice is
// shared: do not modify it.
func (r Reader) OpenProjects(org string) []string {
	r.dep('x', org, "")
	if o, ok := r.st.orgs[org]; ok {
		return o.sortedOpen
	}
	return nil
}

// GrantProjects returns the projects of org on which user has a grant, sorted.
func (r Reader) GrantProjects(org, user string) []string {
	r.dep('x', org, "")
	if o, ok := r.st.orgs[org]; ok {
		ps := sortedKeys(o.userGrants[user])
		if len(o.grantExpiry) > 0 {
			ps = slices.DeleteFunc(ps, func(p string) bool { return !r.live(o.grantExpiry[p][user]) })
		}
		return ps
	}
	return nil
}

// TeamProjects returns the projects whose effective teams contain team, sorted.
func (r Reader) TeamProjects(org, team string) []string {
	r.dep('x', org, "")
	if o, ok := r.st.orgs[org]; ok {
		return sortedKeys(o.teamProjects[team])
	}
	return nil
}

// Policy returns a policy's record.
func (r Reader) Policy(org, name string) (Policy, bool) {
	r.dep('y', org, name)
	if o, ok := r.st.orgs[org]; ok {
		if pd, ok := o.policies[name]; ok {
			return pd.p, true
		}
	}
	return Policy{}, false
}

// Policies returns an org's policy names, sorted.
func (r Reader) Policies(org string) []string {
	r.dep('x', org, "")
	if o, ok := r.st.orgs[org]; ok {
		return sortedKeys(o.policies)
	}
	return nil
}

// ConnectedProjects returns the projects connected to a policy, sorted.
func (r Reader) ConnectedProjects(org, policyName string) []string {
	r.dep('x', org, "")
	if o, ok := r.st.orgs[org]; ok {
		return sortedKeys(o.policyProjects[policyName])
	}
	return nil
}

// User returns a user's record.
func (r Reader) User(id string) (User, bool) {
	r.dep('u', id, "")
	u, ok := r.st.users[id]
	return u, ok
}

// Users returns every user id with a record, sorted.
func (r Reader) Users() []string {
	r.dep('U', "", "")
	return sortedKeys(r.st.users)
}

// Settings merges a project's effective settings (for user, when non-empty).
func (r Reader) Settings(org, project, user string) (policy.Effective, bool) {
	r.dep('p', org, project)
	o, ok := r.st.orgs[org]
	if !ok {
		return policy.Effective{}, false
	}
	pd := o.project(project)
	if pd == nil {
		return policy.Effective{}, false
	}
	in := policy.Inputs{Org: o.org.Defaults(), Project: pd.p.Settings, ProjectTeams: pd.p.Teams}
	if pd.p.Policy != "" {
		if pol, ok := o.policies[pd.p.Policy]; ok {
			in.Policy = &policy.Named{Name: pol.p.Name, Settings: pol.p.Settings}
		}
	}
	if g, ok := pd.p.Grants[user]; ok && user != "" && r.live(o.grantExpiry[project][user]) {
		in.User = &policy.UserGrant{Queue: g.Queue, Namespace: g.Namespace, DefaultPresets: g.DefaultPresets}
	}
	return policy.Merge(in), true
}

// Rules returns a project's compiled rules in the order of policy.Effective.Rules: its policy's
// rules, then its own. The programs are immutable and safe for concurrent use.
func (r Reader) Rules(org, project string) []*policy.Program {
	r.dep('p', org, project)
	o, ok := r.st.orgs[org]
	if !ok {
		return nil
	}
	pd := o.project(project)
	if pd == nil {
		return nil
	}
	var rules []*policy.Program
	if pol, ok := o.policies[pd.p.Policy]; ok && pd.p.Policy != "" {
		rules = append(rules, pol.rules...)
	}
	return append(rules, pd.compiled()...)
}
