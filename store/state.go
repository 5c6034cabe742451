package store

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
)

// state is the in-memory directory and its indexes. The Store's mutex guards it.
type state struct {
	rev   uint64
	orgs  map[string]*orgData
	users map[string]User
	// snap is the membership snapshot being copied out of this state while writes go on
	// (snapshot.go), nil when none: a write keeps a member's entry as it was before changing it.
	snap *liveCapture
}

type orgData struct {
	org      Org
	members  people // members, their org roles and their team memberships
	teams    map[string]*teamData
	teamByID []*teamData        // team id → team; nil for a free id
	freeTeam []uint32           // team ids free for reuse
	projects table[projectData] // by name (orgData.project)
	policies map[string]*policyData

	teamProjects   map[string]map[string]struct{} // team → projects whose effective teams hold it
	policyProjects map[string]map[string]struct{} // policy → connected projects
	userGrants     map[string]map[string]struct{} // user → projects they have a grant on
	openProjects   map[string]struct{}            // projects with no team restriction
	defaultUsers   map[string]map[string]struct{} // team → users whose default team it is
	// Expiring entries only (expiry.go), in unix nanoseconds: (team id, member id) → expires_at,
	// and project → user → the grant's expires_at.
	memberExpiry map[[2]uint32]int64
	grantExpiry  map[string]map[string]int64

	// Sorted views of projects and openProjects for listings. They are replaced wholesale (never
	// modified) when a committed batch changed the sets, so a reader may keep them.
	sortedProjects []string
	sortedOpen     []string
}

// resort rebuilds the sorted views.
func (o *orgData) resort() {
	o.sortedProjects = o.projectNames()
	o.sortedOpen = sortedKeys(o.openProjects)
}

// project returns the project named name, nil for none.
func (o *orgData) project(name string) *projectData { return o.projects.find(name) }

// projectNames returns the org's project names, sorted.
func (o *orgData) projectNames() []string {
	out := make([]string, 0, o.projects.len())
	for pd := range o.projects.all {
		out = append(out, pd.p.Name)
	}
	slices.Sort(out)
	return out
}

type teamData struct {
	team    Team
	id      uint32              // stays the same when the team is renamed
	members map[uint32]roleCode // member id → team role
}

// Memberships are the bulk of a large directory (SPEC §9's large tier holds 10M), so they are
// kept as integers: each member of an org has an id, each team an id, roles are small codes.
// A team's members are a map of ids to codes and a member's teams a short slice of (team, role)
// pairs, neither holding a pointer the garbage collector must follow; names are resolved
// through the org's member and team tables only when a reader asks for them.

// roleCode is a role as 1 + its index in orgRoles (org roles) or teamRoles (team roles); 0 is
// no role.
type roleCode uint8

func orgRoleCode(role string) roleCode {
	return roleCode(slices.Index(orgRoles, teamgate.OrgRole(role)) + 1)
}

func teamRoleCode(role string) roleCode {
	return roleCode(slices.Index(teamRoles, teamgate.ProjectRole(role)) + 1)
}

func (c roleCode) orgRole() string  { return string(orgRoles[c-1]) }
func (c roleCode) teamRole() string { return string(teamRoles[c-1]) }

// teamRole is one team membership of a member.
type teamRole struct {
	team uint32 // team id
	role roleCode
}

// people holds an org's members by id. An id is taken when a user joins the org and freed when
// they leave (their team memberships and grants are gone by then), so the tables grow with the
// members, not with the writes.
type people struct {
	// byName finds a member's entry by name: it compares a name with the entry's own key bytes
	// (member.key, the entry's first), so the compare reads the line a decision reads next for
	// the role and the team list (TestDecisionReadsFewLines).
	byName table[member]
	names  []string  // id → member; "" for a free id
	byID   []*member // id → the member's entry; noMember for a free id
	free   []uint32  // free ids, reused first
	// list is the members' names in order: immutable, replaced when a batch that joined or left
	// members commits (orgData.relist), built once after loading.
	list *nameList
}

// member is one member of an org, what a decision reads about them: the team memberships, the
// org role and the name's bytes (what byName compares a name with), in one 64-byte object, i.e.
// one cache line (every object of the 64-byte size class starts a line). An entry is made when
// a user joins and dropped when they leave: its key bytes are written once, before it enters
// byName, and never again, so an entry of byName, of a simulation's copy and of the undo log
// keeps the name it was put under. Its role and teams change in place.
type member struct {
	key   [35]byte // the name when it fits (keyName); first, where byName compares names
	role  roleCode // org role; 0 for noMember only
	id    uint32
	teams []teamRole // team memberships, in no order
}

// newMembers returns an empty byName for n members.
func newMembers(n int) table[member] { return newTable[member](n, len(member{}.key)) }

// newEntries returns n new entries (zero), each starting a cache line: one array when it is a
// large object (over 32 KiB, 512 entries), else arrays of at most eight (512 bytes): a small
// object above 512 bytes that holds pointers begins with an 8-byte header, which would put
// every entry of it across two lines.
func newEntries(n int) []*member {
	out := make([]*member, n)
	var all []member
	for i := range out {
		if len(all) == 0 {
			all = make([]member, n-i)
			if len(all) <= 512 {
				all = make([]member, min(8, n-i))
			}
		}
		out[i], all = &all[0], all[1:]
	}
	return out
}

// noMember is the entry of every free id: zero, and never written (Store.Check verifies it).
var noMember member

// newMember returns a new entry for user with id and role, and its name for names[id]: user's
// bytes in the entry when they fit, else a copy of user.
func newMember(user string, id uint32, role roleCode) (*member, string) {
	m := &member{id: id, role: role}
	return m, m.keyName(user)
}

// keyName writes name into m.key when it fits there (a new entry's, before it is shared) and
// returns it as a string of those bytes; a longer name is returned as a copy of its own (not a
// part of a larger string, which the entry would keep alive).
func (m *member) keyName(name string) string {
	if name == "" || len(name) > len(m.key) {
		return strings.Clone(name)
	}
	copy(m.key[:], name)
	return m.ownName(name)
}

// ownName returns name, the entry's, as names[id] holds it: a string of m.key's bytes when it
// fits there (keyName wrote them), else name itself.
func (m *member) ownName(name string) string {
	if name == "" || len(name) > len(m.key) {
		return name
	}
	return unsafe.String(&m.key[0], len(name))
}

// get returns a member's entry, nil for a non-member.
func (p *people) get(user string) *member { return p.byName.find(user) }

// role returns a member's id and org role code (0, 0 for a non-member).
func (p *people) role(user string) (uint32, roleCode) {
	if m := p.get(user); m != nil {
		return m.id, m.role
	}
	return 0, 0
}

// id returns a member's id; ok is false for a non-member.
func (p *people) id(user string) (id uint32, ok bool) {
	if m := p.get(user); m != nil {
		return m.id, true
	}
	return 0, false
}

// count is how many members the org has.
func (p *people) count() int { return p.byName.len() }

// all yields every member and their org role, in no order.
func (p *people) all(yield func(user string, role roleCode) bool) {
	for id := range p.byID {
		if role := p.byID[id].role; role != 0 && !yield(p.names[id], role) {
			return
		}
	}
}

// sorted returns the members' names in order.
func (p *people) sorted() []string {
	out := make([]string, 0, p.count())
	for u := range p.all {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

// putMember makes user a member with role, or changes the role.
func (t *txn) putMember(o *orgData, user string, role roleCode) {
	p := &o.members
	if m := p.get(user); m != nil {
		t.keep(o, m.id)
		old := m.role
		t.logged(func(undo bool) {
			if undo {
				m.role = old
			} else {
				m.role = role
			}
		})
		m.role = role
		return
	}
	var id uint32
	if n := len(p.free); n > 0 {
		id = p.free[n-1]
		t.keep(o, id)
		p.free = p.free[:n-1]
		t.logged(func(undo bool) {
			if undo {
				p.free = append(p.free, id)
			} else {
				p.free = p.free[:len(p.free)-1]
			}
		})
	} else {
		id = uint32(len(p.names))
		t.logged(func(undo bool) {
			if undo {
				p.names, p.byID = p.names[:id], p.byID[:id]
			} else {
				p.names, p.byID = append(p.names, ""), append(p.byID, &noMember)
			}
		})
		p.names, p.byID = append(p.names, ""), append(p.byID, &noMember)
	}
	m, name := newMember(user, id, role)
	t.logged(func(undo bool) {
		if undo {
			p.names[id], p.byID[id] = "", &noMember
		} else {
			p.names[id], p.byID[id] = name, m
		}
	})
	p.names[id], p.byID[id] = name, m
	setEntry(t, &p.byName, name, m)
	t.relist(o, name)
}

// delMember removes a member who is in no team any more, freeing their id.
func (t *txn) delMember(o *orgData, user string) {
	p := &o.members
	m := p.get(user)
	if m == nil {
		return
	}
	id, name := m.id, p.names[m.id]
	t.keep(o, id)
	delEntry(t, &p.byName, name)
	t.logged(func(undo bool) {
		if undo {
			p.names[id], p.byID[id] = name, m
			p.free = p.free[:len(p.free)-1]
		} else {
			p.names[id], p.byID[id] = "", &noMember
			p.free = append(p.free, id)
		}
	})
	p.names[id], p.byID[id] = "", &noMember
	p.free = append(p.free, id)
	t.relist(o, name)
}

// setTeams replaces a member's team memberships (a new slice while not loading, so the undo log
// keeps the old one whole).
func (t *txn) setTeams(o *orgData, id uint32, teams []teamRole) {
	m := o.members.byID[id]
	t.keep(o, id)
	old := m.teams
	t.logged(func(undo bool) {
		if undo {
			m.teams = old
		} else {
			m.teams = teams
		}
	})
	m.teams = teams
}

// putTeamMember adds member id to td with role, or changes the role.
func (t *txn) putTeamMember(o *orgData, td *teamData, id uint32, role roleCode) {
	set(t, td.members, id, role)
	list := o.members.byID[id].teams
	i := slices.IndexFunc(list, func(tr teamRole) bool { return tr.team == td.id })
	switch {
	case t.loading && i < 0: // nothing to undo: grow in place
		o.members.byID[id].teams = append(list, teamRole{td.id, role})
	case i < 0:
		t.setTeams(o, id, append(slices.Clip(list), teamRole{td.id, role}))
	default:
		list = slices.Clone(list)
		list[i].role = role
		t.setTeams(o, id, list)
	}
}

// delTeamMember removes member id from td.
func (t *txn) delTeamMember(o *orgData, td *teamData, id uint32) {
	del(t, td.members, id)
	list := slices.Clone(o.members.byID[id].teams)
	list = slices.DeleteFunc(list, func(tr teamRole) bool { return tr.team == td.id })
	if len(list) == 0 {
		list = nil
	}
	t.setTeams(o, id, list)
}

// newTeam adds a team with no members, giving it an id.
func (t *txn) newTeam(o *orgData, tm Team) {
	td := &teamData{team: tm, members: map[uint32]roleCode{}}
	if n := len(o.freeTeam); n > 0 {
		td.id = o.freeTeam[n-1]
		o.freeTeam = o.freeTeam[:n-1]
		t.logged(func(undo bool) {
			if undo {
				o.teamByID[td.id] = nil
				o.freeTeam = append(o.freeTeam, td.id)
			} else {
				o.freeTeam = o.freeTeam[:len(o.freeTeam)-1]
				o.teamByID[td.id] = td
			}
		})
		o.teamByID[td.id] = td
	} else {
		td.id = uint32(len(o.teamByID))
		t.logged(func(undo bool) {
			if undo {
				o.teamByID = o.teamByID[:td.id]
			} else {
				o.teamByID = append(o.teamByID, td)
			}
		})
		o.teamByID = append(o.teamByID, td)
	}
	set(t, o.teams, tm.Name, td)
	t.teamNamed(o, tm.Name)
}

// indexMemberTeams builds every member's team list from the teams' member maps, at Open (which
// fills the maps first), with the given number of goroutines, each walking every workers-th
// team: a counting pass, then each goroutine writes its entries at offsets no other writes. One
// array holds all the lists, each cut to its length so that a later write copies it rather than
// growing into the next one.
func (o *orgData) indexMemberTeams(workers int) {
	p := &o.members
	each := func(w int, fn func(td *teamData)) {
		for i := w; i < len(o.teamByID); i += workers {
			if td := o.teamByID[i]; td != nil {
				fn(td)
			}
		}
	}
	counts := make([][]uint32, workers) // [w][member id]: entries of worker w, then its next offset
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			c := make([]uint32, len(p.names))
			each(w, func(td *teamData) {
				for id := range td.members {
					c[id]++
				}
			})
			counts[w] = c
		})
	}
	wg.Wait()
	off := 0 // member by member, worker by worker: where each worker's entries go
	for id := range p.names {
		for w := range workers {
			n := counts[w][id]
			counts[w][id] = uint32(off)
			off += int(n)
		}
	}
	all := make([]teamRole, off)
	for w := range workers {
		wg.Go(func() {
			c := counts[w]
			each(w, func(td *teamData) {
				for id, role := range td.members {
					all[c[id]] = teamRole{td.id, role}
					c[id]++
				}
			})
		})
	}
	wg.Wait()
	// Every worker's next offset for a member now ends that member's list in the last worker.
	start := 0
	for id := range p.names {
		if end := int(counts[workers-1][id]); end > start {
			p.byID[id].teams = all[start:end:end]
			start = end
		}
	}
}

// dropTeam removes a team that has no members left, freeing its id.
func (t *txn) dropTeam(o *orgData, td *teamData) {
	del(t, o.teams, td.team.Name)
	t.logged(func(undo bool) {
		if undo {
			o.teamByID[td.id] = td
			o.freeTeam = o.freeTeam[:len(o.freeTeam)-1]
		} else {
			o.teamByID[td.id] = nil
			o.freeTeam = append(o.freeTeam, td.id)
		}
	})
	o.teamByID[td.id] = nil
	o.freeTeam = append(o.freeTeam, td.id)
	t.teamNamed(o, td.team.Name)
}

// teamMembers yields a team's members and their team roles, in no order.
func (o *orgData) teamMembers(td *teamData) func(yield func(user string, role roleCode) bool) {
	return func(yield func(string, roleCode) bool) {
		for id, role := range td.members {
			if !yield(o.members.names[id], role) {
				return
			}
		}
	}
}

// memberMap returns a new map of the org's members to their org roles.
func (o *orgData) memberMap() map[string]string {
	m := make(map[string]string, o.members.count())
	for u, role := range o.members.all {
		m[u] = role.orgRole()
	}
	return m
}

// teamMemberMap returns a new map of td's members to their team roles.
func (o *orgData) teamMemberMap(td *teamData) map[string]string {
	m := make(map[string]string, len(td.members))
	for u, role := range o.teamMembers(td) {
		m[u] = role.teamRole()
	}
	return m
}

// teamExpiry returns when user's membership of td expires, in unix nanoseconds (0: never, or
// not a member).
func (o *orgData) teamExpiry(td *teamData, user string) int64 {
	if id, ok := o.members.id(user); ok {
		return o.memberExpiry[[2]uint32{td.id, id}]
	}
	return 0
}

// teamRole returns a member's role in td (0 when not in it).
func (o *orgData) teamRole(td *teamData, user string) roleCode {
	id, ok := o.members.id(user)
	if !ok {
		return 0
	}
	return td.members[id]
}

// projectData is a project with what the decision path derives from it. Its first cache line
// holds everything a decision reads of it (Reader.access) but the ids of its teams: key, the
// bytes o.projects compares a name with, then the effective teams, whether they restrict, the
// record's Grants and Labels, and the team-id mask (teamIDs.ids, on the next line, is read only
// when the mask matches a member's team). The table's name compare reads that line, and the
// decision reads nothing else of the object (callgrind's cache simulation, bench/RESULTS.md
// stop 20; TestDecisionReadsFewLines).
type projectData struct {
	// key holds the project's name when it fits (most names do), written once, before the
	// project enters o.projects, which compares a name with these bytes, the object's first
	// (setKey, newProjects).
	key        [15]byte
	restricted bool     // the effective teams restrict (policy.AllowList.Restricted)
	teams      []string // effective teams: project teams narrowed by the policy's (SPEC §4 step 4)
	// grants and labels are p.Grants and p.Labels, here for the line (setRecord sets both).
	grants map[string]Grant
	labels map[string]string
	// teamIDs are the ids of the effective teams that exist, in no order (a policy's allow-list
	// may name a team that does not): what Reader.Access compares a member's teams with, by id
	// rather than by name. Set with teams (setProjectTeams) and again whenever a team an
	// effective list names is created, deleted or renamed (teamNamed). Replaced, never edited.
	teamIDs     teamSet
	teamsSource string // the effective teams' Source (policy.AllowList.Source)
	// rules are the record's compiled rules (p.Settings.Rules), nil for none: a pointer rather
	// than a slice keeps the object within 512 bytes, a size class whose objects start a line
	// (TestDecisionReadsFewLines).
	rules *[]*policy.Program
	p     Project
}

// effective returns the project's effective teams.
func (pd *projectData) effective() policy.AllowList {
	return policy.AllowList{Restricted: pd.restricted, Values: pd.teams, Source: pd.teamsSource}
}

// setEffective sets the project's effective teams, logged.
func (t *txn) setEffective(pd *projectData, eff policy.AllowList) {
	old := pd.effective()
	t.logged(func(undo bool) {
		if undo {
			pd.setTeams(old)
		} else {
			pd.setTeams(eff)
		}
	})
	pd.setTeams(eff)
}

// setTeams sets the fields effective returns (not logged: through setEffective).
func (pd *projectData) setTeams(eff policy.AllowList) {
	pd.restricted, pd.teams, pd.teamsSource = eff.Restricted, eff.Values, eff.Source
}

// setRecord sets the project's record, its compiled rules and the copies of its Grants and
// Labels (not logged: for a new project, or through putRecord).
func (pd *projectData) setRecord(p Project, rules []*policy.Program) {
	pd.p, pd.grants, pd.labels, pd.rules = p, p.Grants, p.Labels, nil
	if len(rules) > 0 {
		pd.rules = &rules
	}
}

// compiled returns the record's compiled rules.
func (pd *projectData) compiled() []*policy.Program {
	if pd.rules == nil {
		return nil
	}
	return *pd.rules
}

// putRecord replaces an existing project's record and compiled rules, logged.
func (t *txn) putRecord(pd *projectData, p Project, rules []*policy.Program) {
	old, oldRules := pd.p, pd.compiled()
	t.logged(func(undo bool) {
		if undo {
			pd.setRecord(old, oldRules)
		} else {
			pd.setRecord(p, rules)
		}
	})
	pd.setRecord(p, rules)
}

// setKey writes name, pd's, into pd.key when it fits there, for a new project, before it
// enters o.projects: pd.key is never written again (a simulation's copy has its own).
func (pd *projectData) setKey(name string) {
	if len(name) <= len(pd.key) {
		copy(pd.key[:], name)
	}
}

// newProjects returns an empty o.projects for n projects.
func newProjects(n int) table[projectData] { return newTable[projectData](n, len(projectData{}.key)) }

// teamSet is a set of team ids: their list, and a mask of the ids modulo 64 that tells most
// teams outside the set without a look at the list.
type teamSet struct {
	mask uint64 // first: read on every decision, ids only when it matches
	ids  []uint32
}

// has reports whether the team with this id is in the set.
func (s *teamSet) has(id uint32) bool {
	return s.mask&(1<<(id&63)) != 0 && slices.Contains(s.ids, id)
}

// teamIDs returns the set of the ids of the named teams that exist.
func (o *orgData) teamIDs(names []string) teamSet {
	var s teamSet
	for _, name := range names {
		if td, ok := o.teams[name]; ok {
			s.ids = append(s.ids, td.id)
			s.mask |= 1 << (td.id & 63)
		}
	}
	return s
}

// teamNamed brings up to date the team ids of the projects whose effective teams name team,
// after a team of that name was created, deleted or renamed to or from it (an id is reused
// once its team is deleted, so a stale one could match another team).
func (t *txn) teamNamed(o *orgData, team string) {
	for name := range o.teamProjects[team] {
		pd := o.project(name)
		assign(t, &pd.teamIDs, o.teamIDs(pd.teams))
	}
}

type policyData struct {
	p     Policy
	rules []*policy.Program
}

func newState() *state {
	return &state{orgs: map[string]*orgData{}, users: map[string]User{}}
}

func newOrgData(o Org) *orgData {
	return &orgData{
		org: o, members: people{byName: newMembers(0)}, teams: map[string]*teamData{},
		projects:       newProjects(0),
		policies:       map[string]*policyData{},
		teamProjects:   map[string]map[string]struct{}{},
		policyProjects: map[string]map[string]struct{}{}, userGrants: map[string]map[string]struct{}{},
		openProjects: map[string]struct{}{}, defaultUsers: map[string]map[string]struct{}{},
		memberExpiry: map[[2]uint32]int64{}, grantExpiry: map[string]map[string]int64{},
	}
}

// txn mutates state in place and logs each mutation with how to undo and redo it, so a batch
// that fails halfway leaves the state exactly as it was, and a valid batch can be taken out of
// memory while it commits to Badger and put back, unchanged, when it is durable (see "Writes" in
// the package doc). It only runs under the Store's write lock.
type txn struct {
	st       *state
	log      []func(undo bool)   // every mutation, in order: undone with true, redone with false
	dirty    map[string]struct{} // Badger keys whose records must be rewritten or deleted
	projects map[string]struct{} // projects whose record, policy or org changed, "org/project" (stamped)
	reached  map[string]struct{} // projects whose access a membership change affects (events only)
	subjects map[string]struct{} // subjects whose access may have changed, "org/user" (events only)
	kinds    []string
	loading  bool                             // replaying records at Open: no undo log, no write bookkeeping
	resort   map[*orgData]struct{}            // orgs whose project or open-project sets changed
	fork     *fork                            // set when simulating: orgs are copied on first use (simulate.go)
	expiring []expiryEntry                    // expiries this batch set, queued when it commits (expiryq.go)
	joined   map[*orgData]map[string]struct{} // members who joined or left, per org: relisted at commit
}

// relist notes that user joined or left o (not while loading: Open builds the lists once).
func (t *txn) relist(o *orgData, user string) {
	if t.loading {
		return
	}
	if t.joined == nil {
		t.joined = map[*orgData]map[string]struct{}{}
	}
	if t.joined[o] == nil {
		t.joined[o] = map[string]struct{}{}
	}
	t.joined[o][user] = struct{}{}
}

// relist brings o's sorted member list up to date after users joined or left it: a new list
// sharing most blocks with the old one for a few, a rebuild for many (a bulk load), so neither
// a single join nor a batch of 100,000 costs more than a sort of the org.
func (o *orgData) relist(users map[string]struct{}) {
	if len(users) > 1024 {
		o.members.list = newNameList(o.members.sorted())
		return
	}
	l := o.members.list
	for u := range users {
		if o.members.get(u) != nil {
			l = l.with(u)
		} else {
			l = l.without(u)
		}
	}
	o.members.list = l
}

func newTxn(st *state, loading bool) *txn {
	return &txn{st: st, loading: loading, dirty: map[string]struct{}{}, projects: map[string]struct{}{},
		reached: map[string]struct{}{}, subjects: map[string]struct{}{}, resort: map[*orgData]struct{}{}}
}

// rollback undoes every mutation, last first. The log stays: redo puts them back.
func (t *txn) rollback() {
	for i := len(t.log) - 1; i >= 0; i-- {
		t.log[i](true)
	}
}

// redo repeats every mutation, first first, on the state rollback left.
func (t *txn) redo() {
	for _, f := range t.log {
		f(false)
	}
}

// logged logs a mutation the caller makes (f(false) repeats it, f(true) undoes it), unless the
// txn cannot fail over (loading from disk). Slices are undone and redone by length and index
// through their owner, never by a pointer to an element: an append may move them.
// keep has a snapshot being copied (state.snap) keep member id's entry in o as it is now, before
// the txn changes it, and again when the txn is redone: a snapshot copies the state of the
// revision it began at. A capture begins only between commits, so a txn that saw none at its
// first apply meets none when it is redone; one that ends meanwhile ignores the redo.
func (t *txn) keep(o *orgData, id uint32) {
	c := t.st.snap
	if c == nil || t.loading {
		return
	}
	c.keep(o, id)
	t.log = append(t.log, func(undo bool) {
		if !undo {
			c.keep(o, id)
		}
	})
}

func (t *txn) logged(f func(undo bool)) {
	if !t.loading {
		t.log = append(t.log, f)
	}
}

// assign sets *p to v, logged unless the txn cannot fail over (loading from disk). p must stay
// where it is while the txn is logged (a struct field or a map's inner value, not a slice element
// an append may move).
func assign[V any](t *txn, p *V, v V) {
	if !t.loading {
		old := *p
		t.log = append(t.log, func(undo bool) {
			if undo {
				*p = old
			} else {
				*p = v
			}
		})
	}
	*p = v
}

func (t *txn) touch(key string) {
	if !t.loading {
		t.dirty[key] = struct{}{}
	}
}

func (t *txn) affect(org, project string) {
	if !t.loading {
		t.projects[org+"/"+project] = struct{}{}
	}
}

// reach reports projects whose access changed through a membership, not through their own
// record: the event names them, but their stamps stay (the membership's stamp covers the cached
// decisions that read it).
func (t *txn) reach(org string, projects map[string]struct{}) {
	if !t.loading {
		for p := range projects {
			t.reached[org+"/"+p] = struct{}{}
		}
	}
}

// subject reports a user whose access in org may have changed.
func (t *txn) subject(org, user string) {
	if !t.loading {
		t.subjects[org+"/"+user] = struct{}{}
	}
}

func (t *txn) affectAll(o *orgData) {
	for pd := range o.projects.all {
		t.affect(o.org.Name, pd.p.Name)
	}
}

func set[K comparable, V any](t *txn, m map[K]V, k K, v V) {
	if !t.loading { // no closure at all while loading: one allocation less per record
		old, had := m[k]
		t.log = append(t.log, func(undo bool) {
			switch {
			case !undo:
				m[k] = v
			case had:
				m[k] = old
			default:
				delete(m, k)
			}
		})
	}
	m[k] = v
}

func del[K comparable, V any](t *txn, m map[K]V, k K) {
	old, had := m[k]
	if !had {
		return
	}
	if !t.loading {
		t.log = append(t.log, func(undo bool) {
			if undo {
				m[k] = old
			} else {
				delete(m, k)
			}
		})
	}
	delete(m, k)
}

// setIndex adds k2 under k1 in a two-level index, creating the inner map when needed.
func setIndex[V any](t *txn, m map[string]map[string]V, k1, k2 string, v V) {
	inner, ok := m[k1]
	if !ok {
		inner = map[string]V{}
		set(t, m, k1, inner)
	}
	set(t, inner, k2, v)
}

func delIndex[V any](t *txn, m map[string]map[string]V, k1, k2 string) {
	inner, ok := m[k1]
	if !ok {
		return
	}
	del(t, inner, k2)
	if len(inner) == 0 {
		del(t, m, k1)
	}
}

// setProjectTeams recomputes a project's effective teams and the team → projects index.
func (t *txn) setProjectTeams(o *orgData, pd *projectData) {
	var pol *policy.Named
	if pd.p.Policy != "" {
		if poly, ok := o.policies[pd.p.Policy]; ok {
			pol = &policy.Named{Name: poly.p.Name, Settings: poly.p.Settings}
		}
	}
	eff := policy.EffectiveTeams(pd.p.Teams, pol)
	for _, team := range pd.teams {
		delIndex(t, o.teamProjects, team, pd.p.Name)
	}
	t.setEffective(pd, eff)
	assign(t, &pd.teamIDs, o.teamIDs(eff.Values))
	for _, team := range eff.Values {
		setIndex(t, o.teamProjects, team, pd.p.Name, struct{}{})
	}
	_, wasOpen := o.openProjects[pd.p.Name]
	switch {
	case eff.Restricted && wasOpen:
		del(t, o.openProjects, pd.p.Name)
		t.resort[o] = struct{}{}
	case !eff.Restricted && !wasOpen:
		set(t, o.openProjects, pd.p.Name, struct{}{})
		t.resort[o] = struct{}{}
	}
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
