package authz

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
	"github.com/teamgate/teamgate/store"
)

// Explanation is a decision with the facts it was made from and the path to it, for people.
type Explanation struct {
	Request  Request    `json:"request"`
	Input    rego.Input `json:"input"` // the policy input: the facts read from the store
	Path     []string   `json:"path"`  // the steps from the facts to the decision
	Decision Decision   `json:"decision"`
	// Suggestions are, on a deny, the smallest directory changes that would allow the request
	// and who may make each (see Suggestion); [] when allowed.
	Suggestions []Suggestion `json:"suggestions"`
}

// Explain decides req like Authorize, always by full evaluation of the policy, and also returns
// the facts used and the path to the decision, including how the project's effective teams
// came about (its teams narrowed by its policy's), and on a deny the smallest directory changes
// that would allow it with who may make them (Explanation.Suggestions). It is meant for people
// (CLI explain, support tools), not for the hot path. With a decision log, its decision (or
// error) is logged like Authorize's, on the path rego.
func (e *Engine) Explain(ctx context.Context, req Request) (Explanation, error) {
	req.Suggest = false // an explanation carries its suggestions itself
	q, d, t, err := e.decide(ctx, req, nil, true)
	if e.declog != nil {
		e.record(&req, &d, &t, err)
	}
	if err != nil {
		return Explanation{}, err
	}
	sg, err := e.suggest(ctx, q, d)
	if err != nil {
		return Explanation{}, err
	}
	return Explanation{Request: req, Input: ownInput(*q.in), Decision: d, Path: q.path(d), Suggestions: sg}, nil
}

// ownInput is in with copies of what it holds of the store's snapshot (a project's teams and
// labels, read-only: the caller may edit its explanation).
func ownInput(in rego.Input) rego.Input {
	own := func(r *rego.Resource) {
		r.Teams, r.Labels = slices.Clone(r.Teams), maps.Clone(r.Labels)
	}
	own(&in.Resource)
	if in.Destination != nil {
		d := *in.Destination
		own(&d.Resource)
		in.Destination = &d
	}
	return in
}

// origin is how a project's effective teams came about: its own teams narrowed by the teams of
// its policy (SPEC §6).
type origin struct {
	projectTeams []string
	policy       string   // "" when the project has no policy
	policyTeams  []string // empty when the policy does not restrict teams
}

// teamsOrigin reads a resolved project's teams and its policy's, inside the snapshot that read
// its facts; nil when the project does not exist.
func teamsOrigin(r store.Reader, ref scope.Ref, res rego.Resource) *origin {
	if !res.Exists {
		return nil
	}
	pv, ok := r.Project(ref.Org, ref.Project)
	if !ok {
		return nil
	}
	o := &origin{projectTeams: slices.Clone(pv.Project.Teams), policy: pv.Project.Policy}
	if o.policy != "" {
		if pol, ok := r.Policy(ref.Org, o.policy); ok {
			o.policyTeams = slices.Clone(pol.Settings.Teams)
		}
	}
	return o
}

// describe narrates the intersection that gave the effective teams of res.
func (o *origin) describe(res rego.Resource) string {
	proj := "project teams " + teamList(o.projectTeams)
	if len(o.projectTeams) == 0 {
		proj = "project teams: none"
	}
	pol := "no policy"
	switch {
	case o.policy != "" && len(o.policyTeams) > 0:
		pol = "policy " + o.policy + " teams " + teamList(o.policyTeams)
	case o.policy != "":
		pol = "policy " + o.policy + " restricts no teams"
	}
	if !res.Restricted {
		return "effective teams: " + proj + "; " + pol + " → no restriction (open to every org member by org role)"
	}
	op := " ∩ "
	if len(o.projectTeams) == 0 || len(o.policyTeams) == 0 {
		op = "; "
	}
	out := "effective teams: " + proj + op + pol + " = " + teamList(res.Teams) + " → restricted"
	if len(res.Teams) == 0 {
		out += " to no team (only a grant or an overriding org role, data.teamgate.org_override, reaches it)"
	}
	return out
}

// path narrates the facts in the order SPEC §4 uses them, then the policy's reasons.
func (q *query) path(d Decision) []string {
	s, res := q.in.Subject, q.in.Resource
	var out []string
	add := func(f string, a ...any) { out = append(out, fmt.Sprintf(f, a...)) }
	add("action %s takes %s resource and needs %s", q.req.Action, article(q.spec.Kind()), requirement(q))
	if !res.Exists {
		add("resolve %s: %s", q.req.Resource, res.Missing)
	} else {
		add("resolve %s: found", q.req.Resource)
		if q.origin != nil {
			add("%s", q.origin.describe(res))
		}
	}
	add("org role of %s: %s", q.req.Subject, s.OrgRole)
	if s.Grant != "" {
		add("grant on the project: %s (overrides the org role)", s.Grant)
	}
	if len(s.TeamRoles) > 0 {
		add("team roles: %s", roleList(s.TeamRoles))
	}
	if dst := q.in.Destination; dst != nil {
		if !dst.Resource.Exists {
			add("destination %s: %s", q.dest, dst.Resource.Missing)
		} else {
			add("destination %s: found", q.dest)
			if q.destOrigin != nil {
				add("destination %s", q.destOrigin.describe(dst.Resource))
			}
			add("destination facts (the project role rule applies to them): org role %s, grant %q, team roles: %s",
				dst.Subject.OrgRole, dst.Subject.Grant, roleList(dst.Subject.TeamRoles))
		}
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

func roleList(roles map[string]string) string {
	if len(roles) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(roles))
	for k, v := range roles {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func requirement(q *query) string {
	if a := q.spec.Action(); len(a.OrgRoles) > 0 {
		return "org role " + strings.Join(a.OrgRoles, " or ")
	}
	return string(q.spec.Kind()) + " role " + q.spec.Role() + " or higher"
}
