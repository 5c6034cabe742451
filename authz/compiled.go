package authz

import (
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
)

// WithCompiledPath turns the compiled decision path on or off. Default on: while the default
// policy is in force (no authors' modules or data), a request without attributes is answered from
// a decision table computed from the Rego policy itself. Listings ask the table either way.
func WithCompiledPath(enabled bool) Option {
	return func(c *config) error {
		c.noCompiled = !enabled
		return nil
	}
}

// abstract is everything the default policy's decision on a request without attributes depends
// on: the action, whether the resource exists, and the subject's role facts reduced to ranks.
// Two requests with the same abstract get the same allow, role and reason code from the default
// policy (its rules read nothing else), so the decision computed once by full Rego evaluation of
// a canonical input with that abstract is the decision for all of them. A differential test
// checks the table against full evaluation on random directories.
type abstract struct {
	action     string
	exists     bool
	orgRole    string // "none" for non-members
	grant      string // "" for none
	teamRank   int8   // project: highest role among the effective teams; team: role in the team
	restricted bool
}

// verdict is a table cell: the decision without its messages, which are rendered from the
// request's own facts.
type verdict struct {
	allow bool
	role  string
	codes []string
}

// decisionTable is the compiled path of one policy: cells are computed on first use by
// evaluating the policy, then read lock-free.
type decisionTable struct {
	policy *rego.Policy
	cells  sync.Map // abstract → verdict
}

var roleRank = map[string]int8{"viewer": 1, "member": 2, "contributor": 3, "admin": 4}

var rankRole = [...]string{"", "viewer", "member", "contributor", "admin"}

// abstractOf reduces the facts q read (inside the snapshot) to the table's key.
func abstractOf(q *query, teamRoles map[string]string) abstract {
	f := q.facts
	a := abstract{action: q.req.Action, exists: f.exists, orgRole: f.orgRole, grant: f.grant, restricted: f.restricted}
	if !f.exists {
		return abstract{action: q.req.Action}
	}
	switch q.res.Kind {
	case scope.KindProject:
		for _, t := range f.teams {
			a.teamRank = max(a.teamRank, roleRank[teamRoles[t]])
		}
	case scope.KindTeam:
		a.teamRank = roleRank[teamRoles[f.team]]
	}
	return a
}

// canonicalInput is a policy input with the given abstract, for the resource kind.
func canonicalInput(a abstract, kind scope.Kind) ast.Value {
	roles := ast.NewObject()
	if a.teamRank > 0 {
		roles.Insert(ast.StringTerm("t"), ast.StringTerm(rankRole[a.teamRank]))
	}
	subject := ast.ObjectTerm(
		ast.Item(ast.StringTerm("id"), ast.StringTerm("subject")),
		ast.Item(ast.StringTerm("org_role"), ast.StringTerm(a.orgRole)),
		ast.Item(ast.StringTerm("grant"), ast.StringTerm(a.grant)),
		ast.Item(ast.StringTerm("team_roles"), ast.NewTerm(roles)),
	)
	var resource *ast.Term
	switch kind {
	case scope.KindProject:
		var teams []string
		if a.restricted {
			teams = []string{"t"}
		}
		resource = ast.NewTerm(projectFacts{exists: a.exists, org: "o", project: "p", teams: teams, restricted: a.restricted}.value())
	default:
		team := ""
		if kind == scope.KindTeam {
			team = "t"
		}
		resource = ast.ObjectTerm(
			ast.Item(ast.StringTerm("kind"), ast.StringTerm(string(kind))),
			ast.Item(ast.StringTerm("org"), ast.StringTerm("o")),
			ast.Item(ast.StringTerm("team"), ast.StringTerm(team)),
			ast.Item(ast.StringTerm("exists"), ast.BooleanTerm(a.exists)),
			ast.Item(ast.StringTerm("missing"), ast.StringTerm("")),
		)
	}
	return ast.NewObject(
		ast.Item(ast.StringTerm("subject"), subject),
		ast.Item(ast.StringTerm("action"), ast.StringTerm(a.action)),
		ast.Item(ast.StringTerm("resource"), resource),
		ast.Item(ast.StringTerm("attributes"), ast.ObjectTerm()),
	)
}
