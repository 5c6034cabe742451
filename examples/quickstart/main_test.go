package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/conformance"
)

// TestDataIsTheCorpus: the embedded acme.yaml is the conformance data, not a copy that drifts.
func TestDataIsTheCorpus(t *testing.T) {
	t.Parallel()
	conformance.RequireDataCopy(t, acme)
}

func TestQuickstart(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	require.NoError(t, run(t.Context(), &out))
	got := out.String()
	for _, want := range []string{
		"loaded acme.yaml at revision 1",
		"acme/labs effective teams: [] (restricted true)",
		`"acme//vision"`,
		"allow alice runs.approve",
		"org_override",
		"deny  amir  runs.get",
		"restricted: project acme/vision is restricted to teams [engineering]; amir is in none",
		"allow otto  runs.get",
		"grant",
		"deny  vera  runs.stop    acme/vision",
		"insufficient_role",
		"allow vera  runs.stop    acme/nlp",
		"own_run",
		"bob's default team space acme/engineering: [nlp vision]",
		"allowed=false queue=gpu/a100",
		"violation rules: at most 8 GPUs per run",
	} {
		require.Contains(t, got, want)
	}
}
