package bench

import (
	"github.com/teamgate/teamgate/store"
)

// directory is the benchmark org copied into plain Go maps: what the peers that take the facts
// from their host (OPA with facts as input, the map reference) read per request.
type directory struct {
	orgRoles  map[string]string            // user → org role
	teamRoles map[string]map[string]string // user → team → role
	projects  map[string]dirProject
}

type dirProject struct {
	teams      []string          // effective teams
	restricted bool              // the effective teams restrict
	grants     map[string]string // user → grant role
}

// facts are what SPEC §4's project role reads of one request, looked up in the directory.
type facts struct {
	orgRole    string            // "none" for non-members
	grant      string            // "" for none
	teamRoles  map[string]string // the subject's roles in every team of the org
	teams      []string
	restricted bool
}

func newDirectory(st *store.Store) (*directory, error) {
	d := &directory{orgRoles: map[string]string{}, teamRoles: map[string]map[string]string{}, projects: map[string]dirProject{}}
	err := st.View(func(r store.Reader) error {
		for u, role := range r.Members("org") {
			d.orgRoles[u] = role
		}
		for _, t := range r.Teams("org") {
			for u, role := range r.TeamMembers("org", t) {
				if d.teamRoles[u] == nil {
					d.teamRoles[u] = map[string]string{}
				}
				d.teamRoles[u][t] = role
			}
		}
		for _, p := range r.Projects("org") {
			pv, _ := r.Project("org", p)
			grants := map[string]string{}
			for u, g := range pv.Project.Grants {
				grants[u] = g.Role
			}
			d.projects[p] = dirProject{teams: pv.Teams.Values, restricted: pv.Teams.Restricted, grants: grants}
		}
		return nil
	})
	return d, err
}

// facts looks up a request's facts; ok is false for a project that does not exist.
func (d *directory) facts(subject, project string) (facts, bool) {
	p, ok := d.projects[project]
	if !ok {
		return facts{}, false
	}
	f := facts{orgRole: "none", grant: p.grants[subject], teamRoles: d.teamRoles[subject], teams: p.teams, restricted: p.restricted}
	if r, ok := d.orgRoles[subject]; ok {
		f.orgRole = r
	}
	return f, true
}

// Ranks, org base roles and the least role of the four benchmarked actions (SPEC §4), for the
// peers that do not read them from teamgate's policy data.
var (
	mapRanks   = map[string]int{"none": 0, "viewer": 1, "member": 2, "contributor": 3, "admin": 4}
	mapOrgBase = map[string]string{"owner": "admin", "manager": "admin", "admin": "admin", "member": "contributor", "viewer": "viewer", "billing": "none", "outsider": "none"}
	mapNeed    = map[string]string{"runs.get": "viewer", "runs.bookmark": "member", "runs.stop": "contributor", "runs.approve": "admin"}
)

// peerMaps is the plain-Go reference: SPEC §4's project role computed with map lookups, the
// lower bound for any engine that reads the same directory.
type peerMaps struct{ dir *directory }

func newPeerMaps(st *store.Store) (*peerMaps, error) {
	d, err := newDirectory(st)
	return &peerMaps{dir: d}, err
}

func (p *peerMaps) allow(subject, action, project string) bool {
	f, ok := p.dir.facts(subject, project)
	if !ok {
		return false
	}
	return mapRanks[projectRole(f)] >= mapRanks[mapNeed[action]]
}

// projectRole is SPEC §4 steps 1-6 in Go.
func projectRole(f facts) string {
	switch f.orgRole {
	case "none":
		return "none"
	case "owner", "manager":
		return "admin"
	}
	base := mapOrgBase[f.orgRole]
	if f.grant != "" {
		base = f.grant
	}
	if !f.restricted {
		return base
	}
	team := "none"
	for _, t := range f.teams {
		if r, ok := f.teamRoles[t]; ok && mapRanks[r] > mapRanks[team] {
			team = r
		}
	}
	if team == "none" && f.grant == "" {
		return "none"
	}
	if mapRanks[team] > mapRanks[base] {
		return team
	}
	return base
}
