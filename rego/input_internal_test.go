package rego

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/scope"
)

// TestDefaultRulesReadNoNames: the default rules read neither the subject's id outside own_run
// nor the resource's org, project or labels, so Input.value leaves the last three out of what
// OPA is given; every role fact stays. The subject's team_roles and the resource's team and teams
// are read only by team_role's fallback, for an input without subject.team_role (never the
// engine's): they are left out too, unless another module reads them.
func TestDefaultRulesReadNoNames(t *testing.T) {
	t.Parallel()
	p, err := New(t.Context(), nil)
	require.NoError(t, err)
	for _, c := range []struct {
		doc, field *ast.Term
		read       bool
	}{
		{keySubject, keyID, true}, // own_run compares it with the run's creator
		{keySubject, keyOrgRole, true},
		{keySubject, keyGrant, true},
		{keySubject, keyTeamRoles, false},
		{keySubject, keyTeamRole, true},
		{keyResource, keyKind, true},
		{keyResource, keyTeam, false},
		{keyResource, keyTeams, false},
		{keyResource, keyRestricted, true},
		{keyResource, keyExists, true},
		{keyResource, keyMissing, true},
		{keyResource, keyOrg, false},
		{keyResource, keyProject, false},
		{keyResource, keyLabels, false},
	} {
		require.Equal(t, c.read, p.reads.has(c.doc, c.field), "%v.%v", c.doc, c.field)
	}
	obj := (&Input{Resource: Resource{Kind: "project", Org: "acme", Project: "vision", Exists: true,
		Labels: map[string]string{"tier": "gold"}}}).value(p).(ast.Object)
	res := obj.Get(keyResource).Value.(ast.Object)
	for _, k := range []*ast.Term{keyOrg, keyProject, keyLabels, keyTeam, keyTeams} {
		require.Nil(t, res.Get(k), "%v is passed although no rule reads it", k)
	}
	require.NotNil(t, res.Get(keyExists))
}

// TestTeamFactsPassedToAuthors: an author's module that reads the subject's team roles or the
// resource's teams gets them, and decides on them.
func TestTeamFactsPassedToAuthors(t *testing.T) {
	t.Parallel()
	src := "package teamgate.ext\n\nimport rego.v1\n\n" +
		"deny contains \"in ops\" if input.subject.team_roles.ops == \"admin\"\n" +
		"deny contains \"owned by ml\" if \"ml\" in input.resource.teams\n"
	p, err := New(t.Context(), []Module{{Name: "ext.rego", Source: src}})
	require.NoError(t, err)
	require.True(t, p.reads.has(keySubject, keyTeamRoles))
	require.True(t, p.reads.has(keyResource, keyTeams))
	require.False(t, p.reads.has(keyResource, keyTeam))
	in := &Input{Action: "runs.get",
		Subject:  Subject{OrgRole: "admin", TeamRoles: map[string]string{"ops": "admin"}},
		Resource: Resource{Kind: "project", Exists: true, Teams: []string{"ml"}}}
	res, err := p.Eval(t.Context(), in)
	require.NoError(t, err)
	require.False(t, res.Allow)
	var msgs []string
	for _, r := range res.Reasons {
		msgs = append(msgs, r.Message)
	}
	require.ElementsMatch(t, []string{"in ops", "owned by ml"}, msgs)
}

// TestLeftOutFieldsDecideAlike: the default policy decides the same on the engine's input with
// the fields no rule needs left out as on the whole input (every field passed), over random
// requests of every kind, with grants, break-glass, restricted projects, member-management and
// own-run attributes and runs.transfer destinations.
func TestLeftOutFieldsDecideAlike(t *testing.T) {
	t.Parallel()
	p, err := New(t.Context(), nil)
	require.NoError(t, err)
	require.False(t, p.reads.has(keySubject, keyTeamRoles)) // the case under test
	whole := *p
	whole.reads = inputReads{all: true}
	for i, in := range randomInputs(t, p, rand.New(rand.NewPCG(7, 9)), 3000) {
		got, err := p.Eval(t.Context(), in)
		require.NoError(t, err)
		want, err := whole.Eval(t.Context(), in)
		require.NoError(t, err)
		require.Equal(t, want, got, "request %d: %+v", i, in)
	}
}

// randomInputs returns n random requests of every kind of p's catalog, with grants, break-glass,
// restricted projects, member-management and own-run attributes (the run's creator, or a run
// that is no object) and runs.transfer destinations.
func randomInputs(t testing.TB, p *Policy, rng *rand.Rand, n int) []*Input {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	roles := []string{"none", "viewer", "member", "contributor", "admin"}
	orgRoles := []string{"none", "owner", "manager", "admin", "member", "viewer", "billing", "outsider"}
	subject := func() Subject {
		s := Subject{ID: pick("u1", "u2"), OrgRole: pick(orgRoles...), TeamRoles: map[string]string{}}
		for range rng.IntN(4) {
			s.TeamRoles[fmt.Sprintf("t%d", rng.IntN(4))] = pick(roles[1:]...)
		}
		if rng.IntN(4) == 0 {
			s.Grant, s.BreakGlass = pick(roles[1:]...), rng.IntN(2) == 0
		}
		return s
	}
	resource := func(kind scope.Kind) Resource {
		r := Resource{Kind: kind, Exists: rng.IntN(10) > 0, Team: fmt.Sprintf("t%d", rng.IntN(4))}
		if !r.Exists {
			r.Missing = "project"
		}
		if kind == scope.KindProject {
			r.Restricted = rng.IntN(2) == 0
			for range rng.IntN(3) {
				r.Teams = append(r.Teams, fmt.Sprintf("t%d", rng.IntN(4)))
			}
		}
		return r
	}
	runs := []any{false, nil, 0, "", []any{"u1"}}
	actions := p.Actions()
	out := make([]*Input, 0, n)
	for range n {
		action := actions[rng.IntN(len(actions))]
		spec, _ := p.Action(action)
		in := Input{Subject: subject(), Action: action, Resource: resource(spec.Kind)}
		attrs := map[string]any{}
		if rng.IntN(3) == 0 {
			attrs["target_role"] = pick(append(roles, orgRoles...)...)
		}
		if rng.IntN(3) == 0 {
			attrs["target_current_role"] = pick(append(roles, orgRoles...)...)
		}
		switch rng.IntN(6) {
		case 0, 1:
			attrs["run"] = map[string]any{"created_by": pick("u1", "u2")}
		case 2:
			attrs["run"] = runs[rng.IntN(len(runs))]
		}
		var err error
		in.Attributes, err = NewAttributes(attrs)
		require.NoError(t, err)
		if spec.DestinationRole != "" && rng.IntN(4) > 0 {
			in.Destination = &Destination{Subject: subject(), Resource: resource(scope.KindProject)}
		}
		out = append(out, &in)
	}
	return out
}
