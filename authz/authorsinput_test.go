package authz_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/rego"
)

// withoutTeamRole is an author's rule that asks the default team_role rule for the subject's
// team role as the policy finds it without the engine's fact (its fallback, from team_roles and
// the resource's teams): cmd/teamgate's TestAuthorsWithSubjectThroughCLI runs the same module.
const withoutTeamRole = "package teamgate.ext\n\nimport rego.v1\n\n" +
	`deny contains "team admin" if "admin" == data.teamgate.authz.team_role with input.subject as object.remove(input.subject, ["team_role"])` + "\n"

// TestAuthorsWithSubjectSeesTeams: an author's `with input.subject as ...` that leaves out
// team_role sees the engine's team facts (olga is an admin of engineering, vision's team), on
// every path: the engine once passed a resource without teams there, and such a rule saw a
// project in no team.
func TestAuthorsWithSubjectSeesTeams(t *testing.T) {
	t.Parallel()
	for _, opts := range [][]authz.Option{
		{authz.WithDecisionCache(0)},
		{},
	} {
		eng, _ := newAcme(t, append(opts, authz.WithModules(rego.Module{Name: "ext.rego", Source: withoutTeamRole}))...)
		for range 2 { // the second from the cache, when there is one
			d, err := eng.Authorize(t.Context(), authz.Request{Subject: "olga", Action: "runs.get", Resource: "acme/vision"})
			require.NoError(t, err)
			require.False(t, d.Allowed, "%+v", d)
			require.Equal(t, []authz.Reason{{Code: rego.CodeExtensionDeny, Message: "team admin"}}, d.Reasons)
		}
		d, err := eng.Authorize(t.Context(), authz.Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision"})
		require.NoError(t, err)
		require.True(t, d.Allowed, "bob is a contributor of engineering: %+v", d)
	}
}

// TestExtDataMessagesOnEveryPath: data alone can define data.teamgate.ext (deny and allow lists
// of messages); its messages are the reasons' messages on every path. The compiled path once
// answered from the decision table, whose cells hold codes, and wrote extension_deny's standard
// message instead of the data's.
func TestExtDataMessagesOnEveryPath(t *testing.T) {
	t.Parallel()
	data := map[string]any{"teamgate": map[string]any{"ext": map[string]any{
		"deny": []any{"frozen"}, "allow": []any{"never reached"}}}}
	want := authz.Decision{Allowed: false, Role: "contributor", Revision: 1,
		Reasons: []authz.Reason{{Code: rego.CodeExtensionDeny, Message: "frozen"}}}
	for name, opts := range map[string][]authz.Option{
		"rego":     {authz.WithDecisionCache(0), authz.WithCompiledPath(false)},
		"compiled": {authz.WithDecisionCache(0)},
		"cached":   {},
	} {
		eng, _ := newAcme(t, append(opts, authz.WithData(data))...)
		require.True(t, eng.Policy().Table() == nil, "%s: data defining ext turns the decision table off", name)
		for range 2 { // the second from the cache, when there is one
			for _, attrs := range []map[string]any{nil, {"note": "x"}} {
				d, err := eng.Authorize(t.Context(), authz.Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision", Attributes: attrs})
				require.NoError(t, err, name)
				d.Suggestions = nil
				require.Equal(t, want, d, name)
			}
		}
	}
}
