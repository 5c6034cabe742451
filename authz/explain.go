package authz

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Explanation is a decision with the facts it was made from and the path to it, for people.
type Explanation struct {
	Request  Request        `json:"request"`
	Input    map[string]any `json:"input"` // the policy input: the facts read from the store
	Path     []string       `json:"path"`  // the steps from the facts to the decision
	Decision Decision       `json:"decision"`
}

// Explain decides req like Authorize and also returns the facts used and the path to the
// decision. It is meant for people (CLI explain, support tools), not for the hot path.
func (e *Engine) Explain(ctx context.Context, req Request) (Explanation, error) {
	q, in, d, err := e.decide(ctx, req, nil, true)
	if err != nil {
		return Explanation{}, err
	}
	facts, err := ast.JSON(in)
	if err != nil {
		return Explanation{}, err
	}
	m, _ := facts.(map[string]any)
	return Explanation{Request: req, Input: m, Decision: d, Path: path(q, m, d)}, nil
}

// path narrates the facts in the order SPEC §4 uses them, then the policy's reasons.
func path(q *query, in map[string]any, d Decision) []string {
	res, _ := in["resource"].(map[string]any)
	subj, _ := in["subject"].(map[string]any)
	var out []string
	add := func(f string, a ...any) { out = append(out, fmt.Sprintf(f, a...)) }
	add("action %s takes a%s resource and needs %s", q.req.Action, article(q.spec.Kind), requirement(q))
	if exists, _ := res["exists"].(bool); !exists {
		add("resolve %s: %s", q.req.Resource, res["missing"])
	} else {
		add("resolve %s: found", q.req.Resource)
		if q.spec.Kind == "project" {
			teams, _ := res["teams"].([]any)
			if r, _ := res["restricted"].(bool); r {
				add("project teams (narrowed by its policy): %v — restricted", teams)
			} else {
				add("project is open to the org (no team restriction)")
			}
		}
	}
	add("org role of %s: %v", q.req.Subject, subj["org_role"])
	if g, _ := subj["grant"].(string); g != "" {
		add("grant on the project: %s (overrides the org role)", g)
	}
	if tr, _ := subj["team_roles"].(map[string]any); len(tr) > 0 {
		var parts []string
		for k, v := range tr {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
		sort.Strings(parts)
		add("team roles: %s", strings.Join(parts, " "))
	}
	for _, r := range d.Reasons {
		add("%s: %s", r.Code, r.Message)
	}
	verdict := "deny"
	if d.Allowed {
		verdict = "allow"
	}
	add("decision: %s, role %s", verdict, d.Role)
	return out
}

func requirement(q *query) string {
	if len(q.spec.OrgRoles) > 0 {
		return "org role " + strings.Join(q.spec.OrgRoles, " or ")
	}
	return q.spec.Kind + " role " + q.spec.Role + " or higher"
}
