package store

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/teamgate/teamgate/policy"
)

// Check verifies that every in-memory index agrees with the records it is derived from
// (team memberships, effective teams, team → projects, policy → projects, grants, open projects,
// users' default teams) and that every default team is one its user can enter.
// It is meant for tests and for operators after an incident; it takes the read lock and walks
// the whole directory.
func (s *Store) Check() error {
	return s.View(func(r Reader) error {
		for name, o := range r.st.orgs {
			if err := o.check(); err != nil {
				return fmt.Errorf("store: org %s: %w", name, err)
			}
		}
		return r.st.checkDefaults()
	})
}

// checkDefaults verifies the team → default users index and that each user can enter their
// default team.
func (st *state) checkDefaults() error {
	want := map[string]map[string]map[string]struct{}{} // org → team → users
	for id, u := range st.users {
		if u.DefaultTeam == "" {
			continue
		}
		org, team, _ := strings.Cut(u.DefaultTeam, "/")
		o, ok := st.orgs[org]
		if !ok {
			return fmt.Errorf("store: user %s: default team %s in a missing org", id, u.DefaultTeam)
		}
		td, ok := o.teams[team]
		if !ok {
			return fmt.Errorf("store: user %s: default team %s is missing", id, u.DefaultTeam)
		}
		if !canEnter(o, td, id) {
			return fmt.Errorf("store: user %s cannot enter their default team %s", id, u.DefaultTeam)
		}
		if want[org] == nil {
			want[org] = map[string]map[string]struct{}{}
		}
		if want[org][team] == nil {
			want[org][team] = map[string]struct{}{}
		}
		want[org][team][id] = struct{}{}
	}
	for name, o := range st.orgs {
		w := want[name]
		if w == nil {
			w = map[string]map[string]struct{}{}
		}
		if !reflect.DeepEqual(w, o.defaultUsers) {
			return fmt.Errorf("store: org %s: default team index differs: have %v, want %v", name, o.defaultUsers, w)
		}
	}
	return nil
}

func (o *orgData) check() error {
	if err := o.checkMembers(); err != nil {
		return err
	}
	teamProjects := map[string]map[string]struct{}{}
	policyProjects := map[string]map[string]struct{}{}
	userGrants := map[string]map[string]struct{}{}
	open := map[string]struct{}{}
	add := func(m map[string]map[string]struct{}, k1, k2 string) {
		if m[k1] == nil {
			m[k1] = map[string]struct{}{}
		}
		m[k1][k2] = struct{}{}
	}
	for pn, pd := range o.projects {
		var pol *policy.Named
		if pd.p.Policy != "" {
			poly, ok := o.policies[pd.p.Policy]
			if !ok {
				return fmt.Errorf("project %s names missing policy %s", pn, pd.p.Policy)
			}
			pol = &policy.Named{Name: poly.p.Name, Settings: poly.p.Settings}
			add(policyProjects, pd.p.Policy, pn)
		}
		want := policy.EffectiveTeams(pd.p.Teams, pol)
		if !reflect.DeepEqual(want, pd.teams) {
			return fmt.Errorf("project %s effective teams %v, want %v", pn, pd.teams, want)
		}
		for _, t := range want.Values {
			add(teamProjects, t, pn)
		}
		if !want.Restricted {
			open[pn] = struct{}{}
		}
		for _, t := range pd.p.Teams {
			if _, ok := o.teams[t]; !ok {
				return fmt.Errorf("project %s names missing team %s", pn, t)
			}
		}
		for u := range pd.p.Grants {
			if _, ok := o.members.ids[u]; !ok {
				return fmt.Errorf("project %s grantee %s is not an org member", pn, u)
			}
			add(userGrants, u, pn)
		}
	}
	for what, pair := range map[string][2]map[string]map[string]struct{}{
		"team → projects": {teamProjects, o.teamProjects}, "policy → projects": {policyProjects, o.policyProjects},
		"user → grants": {userGrants, o.userGrants},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			return fmt.Errorf("%s index differs: have %v, want %v", what, pair[1], pair[0])
		}
	}
	if !maps.Equal(open, o.openProjects) {
		return fmt.Errorf("open projects index differs: have %v, want %v", o.openProjects, open)
	}
	if !slices.Equal(o.sortedProjects, sortedKeys(o.projects)) || !slices.Equal(o.sortedOpen, sortedKeys(open)) {
		return fmt.Errorf("sorted project views differ from the sets")
	}
	return nil
}

// checkMembers verifies the member and team tables: ids and names agree, every membership is
// recorded on both sides (the team's members, the member's teams) with the same role, and
// free ids hold nothing.
func (o *orgData) checkMembers() error {
	p := &o.members
	if len(p.names) != len(p.roles) || len(p.names) != len(p.teams) {
		return fmt.Errorf("member tables differ in length: %d names, %d roles, %d team lists", len(p.names), len(p.roles), len(p.teams))
	}
	for u, id := range p.ids {
		if int(id) >= len(p.names) || p.names[id] != u || p.roles[id] == 0 || int(p.roles[id]) > len(orgRoles) {
			return fmt.Errorf("member %s: id %d does not hold it", u, id)
		}
	}
	free := map[uint32]bool{}
	for _, id := range p.free {
		if int(id) >= len(p.names) || free[id] || p.names[id] != "" || p.roles[id] != 0 || p.teams[id] != nil {
			return fmt.Errorf("free member id %d is in use or listed twice", id)
		}
		free[id] = true
	}
	if len(p.ids)+len(free) != len(p.names) {
		return fmt.Errorf("%d member ids, of which %d members and %d free", len(p.names), len(p.ids), len(free))
	}
	if err := p.list.check(); err != nil {
		return fmt.Errorf("sorted member list: %w", err)
	}
	if have, want := p.list.all(), p.sorted(); !slices.Equal(have, want) {
		return fmt.Errorf("sorted member list differs from the members: have %d names, want %d", len(have), len(want))
	}
	teams := 0
	for id, td := range o.teamByID {
		if td == nil {
			continue
		}
		teams++
		if td.id != uint32(id) || o.teams[td.team.Name] != td {
			return fmt.Errorf("team id %d does not hold team %s", id, td.team.Name)
		}
		for m, role := range td.members {
			if int(m) >= len(p.names) || p.roles[m] == 0 {
				return fmt.Errorf("team %s member id %d is not an org member", td.team.Name, m)
			}
			if role == 0 || int(role) > len(teamRoles) {
				return fmt.Errorf("team %s member %s: bad role code %d", td.team.Name, p.names[m], role)
			}
			if i := slices.Index(p.teams[m], teamRole{td.id, role}); i < 0 {
				return fmt.Errorf("team %s member %s: missing from the member's teams", td.team.Name, p.names[m])
			}
		}
	}
	if teams != len(o.teams) || teams+len(o.freeTeam) != len(o.teamByID) {
		return fmt.Errorf("%d teams but %d team ids, %d free", len(o.teams), len(o.teamByID), len(o.freeTeam))
	}
	for _, id := range o.freeTeam {
		if int(id) >= len(o.teamByID) || o.teamByID[id] != nil {
			return fmt.Errorf("free team id %d is in use", id)
		}
	}
	for m, list := range p.teams {
		seen := map[uint32]bool{}
		for _, tr := range list {
			if int(tr.team) >= len(o.teamByID) || o.teamByID[tr.team] == nil || seen[tr.team] ||
				o.teamByID[tr.team].members[uint32(m)] != tr.role {
				return fmt.Errorf("member %s: team membership %v is not its team's", p.names[m], tr)
			}
			seen[tr.team] = true
		}
	}
	return nil
}
