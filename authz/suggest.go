package authz

import (
	"cmp"
	"context"
	"maps"
	"slices"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
	"github.com/teamgate/teamgate/store"
)

// ChangeKind is the kind of a directory change a Suggestion makes.
type ChangeKind string

// The changes a Suggestion considers: the facts the default rules read.
const (
	ChangeGrant    ChangeKind = "grant"     // a grant of a role on the project (store.PutGrant)
	ChangeTeamRole ChangeKind = "team_role" // a role in one of the resource's teams (store.PutTeamMember)
	ChangeOrgRole  ChangeKind = "org_role"  // an org role: joining the org, or another role (store.PutMember)
)

// Suggestion is a smallest set of directory changes that would allow a denied request, with the
// decision they would give and, for each change, who may make it. Changes is the batch itself
// (store.Apply, or `teamgate apply --changes` in its JSON form).
type Suggestion struct {
	Steps   []Step        `json:"steps"`
	Changes store.Changes `json:"changes"`
	Role    string        `json:"role"`    // the subject's role after the changes
	Reasons []Reason      `json:"reasons"` // the reasons of the decision after the changes
}

// cloneSuggestions is a copy of ss that shares nothing a caller may edit with ss (a decision
// log's record keeps it): the steps, their attributes, approvers and approvers' teams, the
// changes (the slice; step copies what a change holds of the store) and the reasons. Approvers' Reasons are decisions'
// own, which nobody modifies (Access), and stay shared. nil stays nil, empty stays empty.
func cloneSuggestions(ss []Suggestion) []Suggestion {
	out := slices.Clone(ss)
	for i := range out {
		s := &out[i]
		s.Steps = slices.Clone(s.Steps)
		for j := range s.Steps {
			st := &s.Steps[j]
			st.Attributes = maps.Clone(st.Attributes) // values are role names
			st.Approvers = slices.Clone(st.Approvers)
			for k := range st.Approvers {
				st.Approvers[k].Teams = slices.Clone(st.Approvers[k].Teams)
			}
		}
		s.Changes = slices.Clone(s.Changes)
		s.Reasons = slices.Clone(s.Reasons)
	}
	return out
}

// Step is one change of a Suggestion and the subjects who may make it: those Authorize allows
// the management request (Action on Resource with Attributes), within their limits.
type Step struct {
	Kind    ChangeKind `json:"kind"`
	Summary string     `json:"summary"` // for people: "add vera to team acme/research as viewer"
	Org     string     `json:"org"`
	Team    string     `json:"team,omitempty"`    // ChangeTeamRole
	Project string     `json:"project,omitempty"` // ChangeGrant
	Role    string     `json:"role"`              // the role the change gives
	From    string     `json:"from"`              // the role it replaces; "" when none

	Action     string         `json:"action"` // project.access, team.members.manage or members.manage
	Resource   string         `json:"resource"`
	Attributes map[string]any `json:"attributes,omitempty"` // target_role, and target_current_role when From is set
	Approvers  []Access       `json:"approvers"`            // sorted by subject
}

// change is one candidate change of a subject's facts.
type change struct {
	kind ChangeKind
	team string // ChangeTeamRole
	role string
	from string
}

// authorizeSuggesting is Authorize for a request with Suggest set: the decision by full
// evaluation, with Suggestions when it denies.
// With a non-nil t it says there how the decision was made (for the decision log).
func (e *Engine) authorizeSuggesting(ctx context.Context, req Request, t *decisionTrace) (Decision, error) {
	req.Suggest = false
	q, d, tr, err := e.decide(ctx, req, nil, true)
	if t != nil && err == nil {
		// Suggestions need the full evaluation; decide timed it when the engine logs.
		t.path, t.policy, t.latency = PathRego, e.policy.Load(), tr.latency
		if tr.policy != nil {
			t.policy = tr.policy
		}
	}
	if err != nil {
		return Decision{}, err
	}
	if d.Allowed {
		return d, nil
	}
	if d.Suggestions, err = e.suggest(ctx, q, d); err != nil {
		return Decision{}, err
	}
	return d, nil
}

// suggest finds the smallest changes that would allow q's denied decision d (see the package
// doc, "How to get access"). q holds the request's facts with the subject's team roles.
func (e *Engine) suggest(ctx context.Context, q *query, d Decision) ([]Suggestion, error) {
	out := []Suggestion{}
	f, s := q.in.Resource, q.in.Subject
	if d.Allowed || !f.Exists || d.Has(rego.CodeError) {
		return out, nil
	}
	p := e.policy.Load()
	roles := slices.SortedFunc(slices.Values(teamgate.MemberRoles()), func(a, b teamgate.ProjectRole) int {
		ra, _ := p.Rank(string(a))
		rb, _ := p.Rank(string(b))
		return cmp.Compare(ra, rb)
	})
	orgRoles := slices.SortedFunc(slices.Values(teamgate.OrgRoles()), func(a, b teamgate.OrgRole) int {
		ra, _ := p.OrgRank(string(a))
		rb, _ := p.OrgRank(string(b))
		return cmp.Or(cmp.Compare(ra, rb), cmp.Compare(a, b))
	})
	type found struct {
		changes []change
		d       Decision
	}
	// The search goes from the narrowest change to the broadest — a grant (one project), a role
	// in each of the resource's teams (the team's projects), an org role (the whole org) — and
	// finds are kept in that order; in each dimension the least role (by data rank) that allows.
	var finds []found
	try := func(cs ...change) bool {
		after := e.decideFacts(ctx, p, q, withChanges(*q.in, cs), d.Revision)
		if after.Allowed {
			finds = append(finds, found{cs, after})
		}
		return after.Allowed
	}
	// A non-member must join the org before a grant or a team (SPEC §2): as the least org role,
	// unless that alone allows (the org-role search below finds it then).
	var join []change
	if s.OrgRole == "none" {
		join = []change{{kind: ChangeOrgRole, role: string(orgRoles[0])}}
		if e.decideFacts(ctx, p, q, withChanges(*q.in, join), d.Revision).Allowed {
			join = nil
		}
	}
	composite := s.OrgRole != "none" || join != nil
	if composite && f.Kind == scope.KindProject {
		for _, r := range roles {
			if string(r) != s.Grant && try(append(slices.Clone(join), change{kind: ChangeGrant, role: string(r), from: s.Grant})...) {
				break
			}
		}
	}
	var teams []string
	switch f.Kind {
	case scope.KindProject:
		teams = f.Teams
	case scope.KindTeam:
		teams = []string{f.Team}
	}
	if composite {
		for _, t := range teams {
			from := s.TeamRoles[t]
			for _, r := range roles {
				if string(r) != from && try(append(slices.Clone(join), change{kind: ChangeTeamRole, team: t, role: string(r), from: from})...) {
					break
				}
			}
		}
	}
	from := s.OrgRole
	if from == "none" {
		from = ""
	}
	for _, r := range orgRoles {
		if string(r) != s.OrgRole && try(change{kind: ChangeOrgRole, role: string(r), from: from}) {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	approvers := map[string][]Access{} // by the management request's summary
	for _, fd := range finds {
		sg := Suggestion{Steps: []Step{}, Changes: store.Changes{}, Role: fd.d.Role, Reasons: fd.d.Reasons}
		for _, c := range fd.changes {
			st, write, err := e.step(ctx, p, q, c, approvers)
			if err != nil {
				return nil, err
			}
			sg.Steps = append(sg.Steps, st)
			sg.Changes = append(sg.Changes, write)
		}
		out = append(out, sg)
	}
	return out, nil
}

// decideFacts decides q's request on other facts of the same subject and resource: from the
// decision table when it answers the request, else by full evaluation. A failure denies.
func (e *Engine) decideFacts(ctx context.Context, p *rego.Policy, q *query, in rego.Input, rev uint64) Decision {
	qq := *q
	qq.in = &in // the key and the messages read these facts
	if t := p.Table(); t != nil && in.Attributes.Len() == 0 && in.Destination == nil {
		var held []string // the subject's roles in the project's effective teams, or in the team
		switch q.kind {
		case scope.KindProject:
			for _, team := range in.Resource.Teams {
				if r, ok := in.Subject.TeamRoles[team]; ok {
					held = append(held, r)
				}
			}
		case scope.KindTeam:
			if r, ok := in.Subject.TeamRoles[in.Resource.Team]; ok {
				held = append(held, r)
			}
		}
		spec, ok := p.Spec(in.Action)
		c, err := codesOf(in.Resource.Exists, in.Subject.OrgRole, in.Subject.Grant, in.Subject.BreakGlass, held, in.Resource.Restricted)
		if ok && err == nil { // else a role the table has no cell for: evaluated below
			return e.fromTable(ctx, p, spec, &qq, &c, rev, nil)
		}
	}
	return e.eval(ctx, p, &qq, rev)
}

// withChanges returns in with the subject's facts changed by cs: on the resource, and on a
// runs.transfer destination in the same org (a grant only when it is the same project).
func withChanges(in rego.Input, cs []change) rego.Input {
	out := in
	out.Subject = changed(in.Subject, true, cs)
	if dst := in.Destination; dst != nil && dst.Resource.Exists && dst.Resource.Org == in.Resource.Org {
		c := *dst
		c.Subject = changed(dst.Subject, dst.Resource.Project == in.Resource.Project, cs)
		out.Destination = &c
	}
	return out
}

func changed(s rego.Subject, sameProject bool, cs []change) rego.Subject {
	for _, c := range cs {
		switch c.kind {
		case ChangeOrgRole:
			s.OrgRole = c.role
		case ChangeGrant:
			if sameProject {
				s.Grant = c.role
			}
		case ChangeTeamRole:
			roles := maps.Clone(s.TeamRoles)
			if roles == nil {
				roles = map[string]string{}
			}
			roles[c.team] = c.role
			s.TeamRoles = roles
		}
	}
	return s
}

// step describes change c of q's subject, with its store write and its approvers (memoized in
// seen by management request).
func (e *Engine) step(ctx context.Context, p *rego.Policy, q *query, c change, seen map[string][]Access) (Step, store.Change, error) {
	f, user := q.in.Resource, q.req.Subject
	st := Step{Kind: c.kind, Org: f.Org, Role: c.role, From: c.from}
	var write store.Change
	switch c.kind {
	case ChangeGrant:
		st.Project, st.Action, st.Resource = f.Project, "project.access", f.Org+"/"+f.Project
		st.Summary = "grant " + user + " " + c.role + " on project " + st.Resource
		if c.from != "" {
			st.Summary = "change " + user + "'s grant on project " + st.Resource + " from " + c.from + " to " + c.role
		}
		g := store.Grant{Role: c.role}
		err := e.dir.View(func(r store.Reader) error { // keep the grant's queue, namespace and presets
			if pv, ok := r.Project(f.Org, f.Project); ok {
				if old, ok := pv.Project.Grants[user]; ok {
					g = old // the store's, read-only: its slice and pointer are copied below
					g.Role, g.DefaultPresets = c.role, slices.Clone(old.DefaultPresets)
					if old.BreakGlass != nil {
						bg := *old.BreakGlass
						g.BreakGlass = &bg
					}
				}
			}
			return nil
		})
		if err != nil {
			return Step{}, nil, err
		}
		write = store.PutGrant{Org: f.Org, Project: f.Project, User: user, Grant: g}
	case ChangeTeamRole:
		st.Team, st.Action, st.Resource = c.team, "team.members.manage", f.Org+"/"+c.team
		st.Summary = "add " + user + " to team " + st.Resource + " as " + c.role
		if c.from != "" {
			st.Summary = "make " + user + " " + c.role + " of team " + st.Resource + " (now " + c.from + ")"
		}
		write = store.PutTeamMember{Org: f.Org, Team: c.team, User: user, Role: c.role}
	case ChangeOrgRole:
		st.Action, st.Resource = "members.manage", f.Org
		st.Attributes = map[string]any{"target_role": c.role}
		st.Summary = "add " + user + " to org " + f.Org + " as " + c.role
		if c.from != "" {
			st.Attributes["target_current_role"] = c.from
			st.Summary = "make " + user + " org " + c.role + " of " + f.Org + " (now " + c.from + ")"
		}
		write = store.PutMember{Org: f.Org, User: user, Role: c.role}
	}
	if c.kind != ChangeOrgRole { // the grant's and the team role's limits, as members.manage's
		st.Attributes = map[string]any{"target_role": c.role}
		if c.from != "" {
			st.Attributes["target_current_role"] = c.from
		}
	}
	key := st.Action + " " + st.Resource + " " + c.role + " " + c.from
	if a, ok := seen[key]; ok {
		st.Approvers = a
		return st, write, nil
	}
	a, err := e.approvers(ctx, p, st)
	if err != nil {
		return Step{}, nil, err
	}
	seen[key], st.Approvers = a, a
	return st, write, nil
}

// approvers lists who may make st's change: the subjects Authorize allows its management request
// with its attributes — the role given and the role it replaces — so the policy's own limits
// apply (nobody assigns a role above their own, SPEC §4 and §10; authz.rego).
func (e *Engine) approvers(ctx context.Context, p *rego.Policy, st Step) ([]Access, error) {
	if p.Table() == nil {
		// Authors' modules may allow on the attributes alone: decide every candidate with them.
		withAttrs, err := e.subjects(ctx, Request{Action: st.Action, Resource: st.Resource, Attributes: st.Attributes}, Page{}, false)
		return withAttrs.Subjects, err
	}
	// The default rules' member-management limits only deny (SPEC §4): the approvers are among
	// those allowed the management request at all (a listing from the decision table), each
	// decided with the attributes.
	base, err := e.subjects(ctx, Request{Action: st.Action, Resource: st.Resource}, Page{}, true)
	if err != nil {
		return nil, err
	}
	out := []Access{}
	for _, a := range base.Subjects {
		d, err := e.Authorize(ctx, Request{Subject: a.Subject, Action: st.Action, Resource: st.Resource,
			Attributes: st.Attributes, MinRevision: base.Revision, unlogged: true})
		if err != nil {
			return nil, err
		}
		if d.Allowed {
			out = append(out, Access{Subject: a.Subject, Role: d.Role, Reasons: d.Reasons, Teams: a.Teams})
		}
	}
	return out, nil
}
