package rego

import (
	"math/rand/v2"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/stretchr/testify/require"
)

// TestAuthorsSeeWhatTheyRead: an author's module decides the same on the engine's input (the
// fields no module reads left out, see readsOf) as on the whole input, however it reaches the
// subject's and resource's fields: by name, through an import, a computed key, an iteration, a
// built-in taking a document, a function argument, a rule of another package, or by replacing
// input.subject with `with` so that the default team_role rule's fallback runs on the engine's
// resource. Each probe's deny message carries what it observed, so any difference shows.
func TestAuthorsSeeWhatTheyRead(t *testing.T) {
	t.Parallel()
	const h = "package teamgate.ext\n\nimport rego.v1\n\n"
	probes := map[string][]string{
		"by name":        {h + `deny contains sprintf("%v %v %v", [input.subject.team_roles, input.resource.teams, input.resource.team]) if true`},
		"import":         {h + "import input.subject as s\n\n" + `deny contains sprintf("%v", [s.team_roles]) if true`},
		"computed key":   {h + `deny contains sprintf("%v", [input.subject[k]]) if k := concat("_", ["team", "roles"])`},
		"some k, v":      {h + `deny contains sprintf("%v=%v", [k, v]) if some k, v in input.resource`},
		"object.get":     {h + `deny contains sprintf("%v", [object.get(input, ["resource", "teams"], "absent")]) if true`},
		"walk":           {h + `deny contains sprintf("%v", [p]) if walk(input, [p, _])`},
		"json.marshal":   {h + `deny contains json.marshal(input) if true`},
		"count":          {h + `deny contains sprintf("%d %d", [count(input.subject), count(input.resource)]) if true`},
		"equality":       {h + `deny contains "whole" if input.resource == object.union(input.resource, {})`},
		"object.keys":    {h + `deny contains sprintf("%v", [object.keys(input.subject)]) if true`},
		"function":       {h + "roles(x) := x.subject.team_roles\n\n" + `deny contains sprintf("%v", [roles(input)]) if true`},
		"alias rule":     {h + "r := input.resource\n\n" + `deny contains sprintf("%v", [r.teams]) if true`},
		"every":          {h + `deny contains "all admin" if every _, r in input.subject.team_roles { r == "admin" }`},
		"comprehension":  {h + `deny contains sprintf("%v", [[t | some t in input.resource.teams]]) if true`},
		"other package":  {h + `deny contains sprintf("%v", [data.teamgate.ext.lib.teams]) if true`, "package teamgate.ext.lib\n\nteams := input.resource.teams\n"},
		"with subject":   {h + `deny contains team_role if team_role := data.teamgate.authz.team_role with input.subject as {"org_role": "member", "team_roles": {"t1": "admin", "t2": "viewer"}}`},
		"without role":   {h + `deny contains r if r := data.teamgate.authz.project_role[0] with input.subject as object.remove(input.subject, ["team_role"])`},
		"with input":     {h + `deny contains r if r := data.teamgate.authz.team_role with input as object.remove(input, ["subject"])`},
		"with one field": {h + `deny contains r if r := data.teamgate.authz.team_role with input.subject.org_role as "admin"`},
	}
	for name, srcs := range probes {
		var mods []Module
		for i, src := range srcs {
			mods = append(mods, Module{Name: string(rune('a'+i)) + ".rego", Source: src})
		}
		p, err := New(t.Context(), mods)
		require.NoError(t, err, name)
		whole := *p
		whole.reads = inputReads{all: true}
		for i, in := range randomInputs(t, p, rand.New(rand.NewPCG(3, 5)), 300) {
			got, err := p.Eval(t.Context(), in)
			require.NoError(t, err, name)
			want, err := whole.Eval(t.Context(), in)
			require.NoError(t, err, name)
			require.Equal(t, want, got, "%s, request %d: %+v", name, i, in)
		}
	}
}

// TestWithSubjectReachesFallback: an author's `with input.subject as ...` can leave out
// team_role, so the default team_role rule's fallback runs and reads the engine's team facts:
// they are passed (they were not, and such a rule saw a project in no team).
func TestWithSubjectReachesFallback(t *testing.T) {
	t.Parallel()
	src := "package teamgate.ext\n\nimport rego.v1\n\n" +
		`deny contains "team admin" if "admin" == data.teamgate.authz.team_role with input.subject as object.remove(input.subject, ["team_role"])`
	p, err := New(t.Context(), []Module{{Name: "ext.rego", Source: src}})
	require.NoError(t, err)
	for _, f := range []*ast.Term{keyTeamRoles, keyTeams, keyTeam} {
		doc := keyResource
		if f == keyTeamRoles {
			doc = keySubject
		}
		require.True(t, p.reads.has(doc, f), "%v", f)
	}
	in := &Input{Action: "runs.get",
		Subject:  Subject{OrgRole: "member", TeamRoles: map[string]string{"ml": "admin"}},
		Resource: Resource{Kind: "project", Exists: true, Teams: []string{"ml"}}}
	res, err := p.Eval(t.Context(), in)
	require.NoError(t, err)
	require.False(t, res.Allow)
	require.Equal(t, []Reason{{Code: CodeExtensionDeny, Message: "team admin"}}, res.Reasons)
	// The default rules' own `with input.subject` (the destination's) does not pass them.
	p, err = New(t.Context(), nil)
	require.NoError(t, err)
	require.False(t, p.reads.has(keySubject, keyTeamRoles))
}
