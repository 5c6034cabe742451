package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCustomRule(t *testing.T) {
	t.Parallel()
	before := time.Now().UTC().Weekday()
	var out strings.Builder
	require.NoError(t, run(t.Context(), &out, time.Now()))
	after := time.Now().UTC().Weekday()
	got := out.String()
	for _, want := range []string{
		"policy/: 10 Rego tests pass",
		"decisions cached: false",
		"allow ci-bot runs.stop    acme/vision extension_allow: service account ci-bot may runs.stop in acme/engineering",
		"deny  ci-bot runs.stop    acme/labs   restricted:",
		"allow olga   runs.approve acme/nlp    team_role:",
		"deny  olga   runs.approve acme/vision extension_deny: runs of a project labelled approval=admin-only are approved by org admins only",
		"allow adam   runs.approve acme/vision",
	} {
		require.Contains(t, got, want)
	}
	// The Friday rule reads the engine's clock: on a Friday (UTC) alice may not delete runs.
	// (Across midnight either day's answer is right.)
	allowed := strings.Contains(got, "allow alice  runs.delete  acme/nlp")
	denied := strings.Contains(got, "deny  alice  runs.delete  acme/nlp    extension_deny: runs are not deleted on Fridays")
	require.True(t, allowed != denied, got)
	require.True(t, denied == (before == time.Friday) || denied == (after == time.Friday), got)
}
