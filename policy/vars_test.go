package policy_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/policy"
)

// TestRuleVariablesAndTheirTypes: CEL sees every variable and field of policy.RuleVars, with its
// type, also when the value is absent; the table must list every field of the Go type.
func TestRuleVariablesAndTheirTypes(t *testing.T) {
	t.Parallel()
	want := map[string]string{ // field → its CEL type
		"subject.id": "string", "subject.org_role": "string", "subject.role": "string",
		"project.org": "string", "project.name": "string", "project.teams": "list(string)",
		"run.kind": "string", "run.runtime": "string", "run.queue": "string", "run.agent": "string",
		"run.namespace": "string", "run.presets": "list(string)", "run.connections": "list(string)",
		"run.resources": "map(string, double)", "run.labels": "map(string, string)",
		"settings.connections": "list(string)", "settings.agents": "list(string)", "settings.queues": "list(string)",
		"settings.namespaces": "list(string)", "settings.presets": "list(string)", "settings.teams": "list(string)",
		"settings.projects": "list(string)", "settings.excluded_runtimes": "list(string)",
		"settings.excluded_features": "list(string)", "settings.queue": "string",
		"settings.default_presets": "list(string)", "settings.namespace": "string",
		"settings.archived_deletion_interval": "int",
	}
	var fields []string
	vt := reflect.TypeFor[policy.RuleVars]()
	for i := range vt.NumField() {
		v := vt.Field(i)
		for j := range v.Type.NumField() {
			fields = append(fields, v.Tag.Get("cel")+"."+v.Type.Field(j).Tag.Get("cel"))
		}
	}
	var listed []string
	for f := range want {
		listed = append(listed, f)
	}
	require.ElementsMatch(t, fields, listed, "every field of RuleVars is listed")

	full := policy.RuleVars{
		Subject:  policy.RuleSubject{ID: "bob", OrgRole: "member", Role: "contributor"},
		Project:  policy.RuleProject{Org: "acme", Name: "vision", Teams: []string{"ml"}},
		Run:      policy.Run{Kind: "job", Presets: []string{"small"}, Resources: map[string]float64{"gpu": 2}, Labels: map[string]string{"team": "ml"}},
		Settings: policy.RuleSettings{Queues: []string{"gpu/a100"}, ArchivedDeletionInterval: 7},
	}
	for field, typ := range want {
		// The checker's type of the field: CompileRules names it when the rule is not a bool.
		_, err := policy.CompileRules([]policy.Rule{{Name: "r", Expression: field}}, "test")
		var re *policy.RuleError
		require.ErrorAs(t, err, &re, field)
		require.Contains(t, re.Message, "expression has type "+typ+",", field)

		// Present at run time with its kind of value, whether the value is set or absent.
		kind, _, _ := strings.Cut(typ, "(")
		expr := "type(" + field + ") == " + kind
		prgs, err := policy.CompileRules([]policy.Rule{{Name: "r", Expression: expr}}, "test")
		require.NoError(t, err, expr)
		for _, vars := range []policy.RuleVars{{}, full} {
			ok, err := prgs[0].Eval(t.Context(), vars)
			require.NoError(t, err, expr)
			require.True(t, ok, expr)
		}
	}
	prgs, err := policy.CompileRules([]policy.Rule{
		{Name: "subject", Expression: "subject.id == 'bob' && subject.org_role == 'member' && subject.role == 'contributor'"},
		{Name: "project", Expression: "project.org == 'acme' && project.name == 'vision' && 'ml' in project.teams"},
		{Name: "run", Expression: "run.resources.gpu <= 8 && run.labels.team == 'ml' && run.presets == ['small']"},
		{Name: "settings", Expression: "'gpu/a100' in settings.queues && settings.archived_deletion_interval == 7"},
	}, "test")
	require.NoError(t, err)
	for _, p := range prgs {
		ok, err := p.Eval(t.Context(), full)
		require.NoError(t, err, p.Rule.Name)
		require.True(t, ok, p.Rule.Name)
	}
}
