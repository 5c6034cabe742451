package bench

import (
	"context"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/teamgate/teamgate/store"
)

// peerOPAInputPolicy is SPEC §4's project role for the four benchmarked actions, written the way
// an OPA user would when the host passes the facts of the request as input: the subject's org
// role, grant and team roles, the project's effective teams and whether they restrict.
const peerOPAInputPolicy = `package peer

import rego.v1

ranks := {"none": 0, "viewer": 1, "member": 2, "contributor": 3, "admin": 4}

roles := ["none", "viewer", "member", "contributor", "admin"]

need := {"runs.get": "viewer", "runs.bookmark": "member", "runs.stop": "contributor", "runs.approve": "admin"}

org_base := {"owner": "admin", "manager": "admin", "admin": "admin", "member": "contributor", "viewer": "viewer", "billing": "none", "outsider": "none"}

org_role := input.subject.org_role

grant := input.subject.grant

base := grant if grant != ""

else := org_base[org_role]

default team_rank := 0

team_rank := max([ranks[input.subject.team_roles[t]] | some t in input.resource.teams])

role := "none" if {
	org_role == "none"
} else := "admin" if {
	org_role in {"owner", "manager"}
} else := base if {
	not input.resource.restricted
} else := "none" if {
	team_rank == 0
	grant == ""
} else := roles[team_rank] if {
	team_rank > ranks[base]
} else := base

default allow := false

allow if ranks[role] >= ranks[need[input.action]]
`

// peerOPAInput decides with OPA, the facts of each request passed as input (the host reads them
// from its own maps). SPEC §9's binding ratio is teamgate's full Rego evaluation against this.
//
// It calls OPA as teamgate does (a prepared query, the input built as OPA's AST, cancellation
// through a callback rather than a goroutine per evaluation, no metrics, the result read as
// AST), so the comparison measures the policies and what surrounds them, not OPA call options.
type peerOPAInput struct {
	pq  rego.PreparedEvalQuery
	dir *directory
}

func newPeerOPAInput(ctx context.Context, st *store.Store) (*peerOPAInput, error) {
	dir, err := newDirectory(st)
	if err != nil {
		return nil, err
	}
	pq, err := rego.New(rego.Query("data.peer.allow"), rego.Module("peer.rego", peerOPAInputPolicy)).PrepareForEval(ctx)
	if err != nil {
		return nil, err
	}
	return &peerOPAInput{pq: pq, dir: dir}, nil
}

var (
	peerKeyAction    = ast.StringTerm("action")
	peerKeySubject   = ast.StringTerm("subject")
	peerKeyResource  = ast.StringTerm("resource")
	peerKeyOrgRole   = ast.StringTerm("org_role")
	peerKeyGrant     = ast.StringTerm("grant")
	peerKeyTeamRoles = ast.StringTerm("team_roles")
	peerKeyTeams     = ast.StringTerm("teams")
	peerKeyRestrict  = ast.StringTerm("restricted")
)

func (p *peerOPAInput) allow(ctx context.Context, subject, action, project string) (bool, error) {
	f, ok := p.dir.facts(subject, project)
	if !ok {
		return false, nil
	}
	roles := make([][2]*ast.Term, 0, len(f.teamRoles))
	for t, r := range f.teamRoles {
		roles = append(roles, ast.Item(ast.StringTerm(t), ast.StringTerm(r)))
	}
	teams := make([]*ast.Term, len(f.teams))
	for i, t := range f.teams {
		teams[i] = ast.StringTerm(t)
	}
	in := ast.NewObject(
		ast.Item(peerKeyAction, ast.StringTerm(action)),
		ast.Item(peerKeySubject, ast.ObjectTerm(
			ast.Item(peerKeyOrgRole, ast.StringTerm(f.orgRole)),
			ast.Item(peerKeyGrant, ast.StringTerm(f.grant)),
			ast.Item(peerKeyTeamRoles, ast.ObjectTerm(roles...)),
		)),
		ast.Item(peerKeyResource, ast.ObjectTerm(
			ast.Item(peerKeyTeams, ast.ArrayTerm(teams...)),
			ast.Item(peerKeyRestrict, ast.BooleanTerm(f.restricted)),
		)),
	)
	cancel := topdown.NewCancel()
	stop := context.AfterFunc(ctx, cancel.Cancel)
	defer stop()
	rs, err := p.pq.Eval(ctx, rego.EvalParsedInput(in), rego.EvalExternalCancel(cancel), rego.EvalGenerateJSON(asTerm), rego.EvalMetrics(metrics.NoOp()))
	if err != nil {
		return false, err
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return false, fmt.Errorf("no result")
	}
	t, _ := rs[0].Expressions[0].Value.(*ast.Term)
	if t == nil {
		return false, fmt.Errorf("result is %T", rs[0].Expressions[0].Value)
	}
	b, _ := t.Value.(ast.Boolean)
	return bool(b), nil
}

// asTerm hands OPA's result through unconverted.
func asTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }
