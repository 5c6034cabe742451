package rego

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
)

// TestPackedRolesAreTheVocabulary: the switches of orgRoleIndex and roleIndex restate the role
// vocabulary (teamgate.OrgRoles, teamgate.MemberRoles: what the store accepts) for speed; each role of it packs to its
// own index, so two roles never share a cell, and the array sizes are the vocabulary's. A
// role's index is its code (Codes, store.Access): 1 + its place in the vocabulary's list.
func TestPackedRolesAreTheVocabulary(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		none  string
		roles []string
		index func(string) int
		size  int
	}{
		{"org roles", "none", names(teamgate.OrgRoles()), orgRoleIndex, numOrgRoles},
		{"project roles", "", names(teamgate.MemberRoles()), roleIndex, numRoles},
	} {
		require.Equal(t, 0, tc.index(tc.none), tc.name)
		require.Equal(t, tc.size, len(tc.roles)+1, tc.name)
		seen := map[int]string{0: tc.none}
		for code, r := range tc.roles {
			i := tc.index(r)
			require.Equal(t, code+1, i, "%s: %q packs to %d, not its code (Codes)", tc.name, r, i)
			require.True(t, i > 0 && i < tc.size, "%s: %q packs to %d", tc.name, r, i)
			require.NotContains(t, seen, i, "%s: %q packs to the index of %q", tc.name, r, seen[i])
			seen[i] = r
		}
		require.Equal(t, -1, tc.index("emperor"), tc.name)
	}
}

func names[R ~string](roles []R) []string {
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = string(r)
	}
	return out
}
