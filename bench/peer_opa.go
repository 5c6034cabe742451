package bench

import (
	"context"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/teamgate/teamgate/store"
)

// peerOPAPolicy is SPEC §4's project role for the four benchmarked actions, written the way an
// OPA user would with the directory in OPA's store: memberships, teams and projects as data,
// only the subject, action and project as input.
const peerOPAPolicy = `package peer

import rego.v1

ranks := {"none": 0, "viewer": 1, "member": 2, "contributor": 3, "admin": 4}

need := {"runs.get": "viewer", "runs.bookmark": "member", "runs.stop": "contributor", "runs.approve": "admin"}

org_base := {"owner": "admin", "manager": "admin", "admin": "admin", "member": "contributor", "viewer": "viewer", "billing": "none", "outsider": "none"}

org_role := data.dir.members[input.subject]

project := data.dir.projects[input.project]

grant := project.grants[input.subject]

base := grant if grant

else := org_base[org_role]

team_rank := max([ranks[r] | some t in project.teams; r := data.dir.team_members[t][input.subject]]) if {
	some t in project.teams
	data.dir.team_members[t][input.subject]
} else := 0

role := "admin" if {
	org_role in {"owner", "manager"}
} else := "none" if {
	count(project.teams) > 0
	team_rank == 0
	not grant
} else := ["none", "viewer", "member", "contributor", "admin"][team_rank] if {
	count(project.teams) > 0
	team_rank > ranks[base]
} else := base

default allow := false

allow if ranks[role] >= ranks[need[input.action]]
`

// peerOPA decides with OPA, the directory in OPA's in-memory store.
type peerOPA struct{ pq rego.PreparedEvalQuery }

func newPeerOPA(ctx context.Context, st *store.Store) (*peerOPA, error) {
	data := map[string]any{}
	err := st.View(func(r store.Reader) error {
		members := map[string]any{}
		for u, role := range r.Members("org") {
			members[u] = role
		}
		teams := map[string]any{}
		for _, t := range r.Teams("org") {
			tm := map[string]any{}
			for u, role := range r.TeamMembers("org", t) {
				tm[u] = role
			}
			teams[t] = tm
		}
		projects := map[string]any{}
		for _, p := range r.Projects("org") {
			pv, _ := r.Project("org", p)
			grants := map[string]any{}
			for u, g := range pv.Project.Grants {
				grants[u] = g.Role
			}
			ts := make([]any, len(pv.Teams.Values))
			for i, t := range pv.Teams.Values {
				ts[i] = t
			}
			projects[p] = map[string]any{"teams": ts, "grants": grants}
		}
		data["dir"] = map[string]any{"members": members, "team_members": teams, "projects": projects}
		return nil
	})
	if err != nil {
		return nil, err
	}
	pq, err := rego.New(
		rego.Query("data.peer.allow"),
		rego.Module("peer.rego", peerOPAPolicy),
		rego.Store(inmem.NewFromObjectWithOpts(data, inmem.OptReturnASTValuesOnRead(true))),
		rego.StoreReadAST(true),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, err
	}
	return &peerOPA{pq: pq}, nil
}

func (p *peerOPA) allow(ctx context.Context, subject, action, project string) (bool, error) {
	in := ast.NewObject(
		ast.Item(ast.StringTerm("subject"), ast.StringTerm(subject)),
		ast.Item(ast.StringTerm("action"), ast.StringTerm(action)),
		ast.Item(ast.StringTerm("project"), ast.StringTerm(project)),
	)
	rs, err := p.pq.Eval(ctx, rego.EvalParsedInput(in))
	if err != nil {
		return false, err
	}
	if len(rs) != 1 {
		return false, fmt.Errorf("no result")
	}
	b, _ := rs[0].Expressions[0].Value.(bool)
	return b, nil
}
