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
