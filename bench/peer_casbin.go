package bench

import (
	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	"github.com/casbin/casbin/v2/rbac"
	"github.com/casbin/govaluate"

	"github.com/teamgate/teamgate/store"
)

// casbinModel is RBAC with domains. Domains are the org ("org": the org base role, and
// "override" for owners and managers), each team (the member's team role) and each project with
// grants (the grant role, and "granted"). In every domain the ranks are a role chain (admin →
// contributor → member → viewer), so g(u, "member", d) holds for any role at least member. One
// policy line per action names its least role.
//
// The matcher is SPEC §4's project role: override; or the grant; or a team of the project
// (inTeams, which asks Casbin's role manager about each of the project's effective teams); or
// the org base role unless granted, on an open project or for a member of one of its teams.
const casbinModel = `
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.act == p.act && (g(r.sub, "override", "org") || g(r.sub, p.sub, r.obj) || inTeams(r.sub, p.sub, r.obj) || (!g(r.sub, "granted", r.obj) && g(r.sub, p.sub, "org") && (!restricted(r.obj) || inTeams(r.sub, "viewer", r.obj))))
`

// casbinEnforcer is what the peer needs of Casbin's plain, cached and synced cached enforcers.
type casbinEnforcer interface {
	Enforce(rvals ...any) (bool, error)
	AddPolicies(rules [][]string) (bool, error)
	AddGroupingPolicies(rules [][]string) (bool, error)
	AddFunction(name string, fn govaluate.ExpressionFunction)
	GetRoleManager() rbac.RoleManager
}

// peerCasbin decides with Casbin over the directory loaded as grouping policies.
type peerCasbin struct{ e casbinEnforcer }

// newPeerCasbin loads the directory into an enforcer made by mk (casbin.NewEnforcer,
// casbin.NewCachedEnforcer, casbin.NewSyncedCachedEnforcer).
func newPeerCasbin[E casbinEnforcer](st *store.Store, mk func(params ...any) (E, error)) (*peerCasbin, error) {
	m, err := model.NewModelFromString(casbinModel)
	if err != nil {
		return nil, err
	}
	e, err := mk(m)
	if err != nil {
		return nil, err
	}
	dir, err := newDirectory(st)
	if err != nil {
		return nil, err
	}
	levels := []string{"viewer", "member", "contributor", "admin"}
	var links [][]string
	chain := func(domain string) {
		for i := 1; i < len(levels); i++ {
			links = append(links, []string{levels[i], levels[i-1], domain})
		}
	}
	chain("org")
	for u, role := range dir.orgRoles {
		if base := mapOrgBase[role]; base != "none" {
			links = append(links, []string{u, base, "org"})
		}
		if role == "owner" || role == "manager" {
			links = append(links, []string{u, "override", "org"})
		}
	}
	teams := map[string]bool{}
	for u, roles := range dir.teamRoles {
		for t, role := range roles {
			if !teams[t] {
				teams[t] = true
				chain(t)
			}
			links = append(links, []string{u, role, t})
		}
	}
	restricted := map[string][]string{}
	for name, p := range dir.projects {
		if p.restricted {
			restricted[name] = p.teams
		}
		if len(p.grants) > 0 {
			chain(name)
		}
		for u, g := range p.grants {
			links = append(links, []string{u, g, name}, []string{u, "granted", name})
		}
	}
	if _, err := e.AddGroupingPolicies(links); err != nil {
		return nil, err
	}
	var rules [][]string
	for action, need := range mapNeed {
		rules = append(rules, []string{need, action})
	}
	if _, err := e.AddPolicies(rules); err != nil {
		return nil, err
	}
	rm := e.GetRoleManager()
	e.AddFunction("restricted", func(args ...any) (any, error) {
		_, ok := restricted[args[0].(string)]
		return ok, nil
	})
	e.AddFunction("inTeams", func(args ...any) (any, error) {
		sub, role := args[0].(string), args[1].(string)
		for _, t := range restricted[args[2].(string)] {
			if ok, _ := rm.HasLink(sub, role, t); ok {
				return true, nil
			}
		}
		return false, nil
	})
	return &peerCasbin{e: e}, nil
}

func (p *peerCasbin) allow(subject, action, project string) (bool, error) {
	return p.e.Enforce(subject, project, action)
}

var (
	_ = newPeerCasbin[*casbin.Enforcer]
	_ = newPeerCasbin[*casbin.CachedEnforcer]
	_ = newPeerCasbin[*casbin.SyncedCachedEnforcer]
)
