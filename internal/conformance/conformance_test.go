package conformance_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/conformance"
)

// TestRunDecodesLikeTheCLI: a case's run goes through the CLI's strict rules, so a case variant
// of a field (which encoding/json would have matched) or an unknown field fails the case.
func TestRunDecodesLikeTheCLI(t *testing.T) {
	t.Parallel()
	r, err := conformance.Run(map[string]any{"kind": "job", "queue": "gpu/a100", "resources": map[string]any{"gpu": 2}})
	require.NoError(t, err)
	require.Equal(t, "gpu/a100", r.Queue)
	for name, doc := range map[string]map[string]any{
		"case variant": {"kind": "job", "Queue": "gpu/h100"},
		"unknown":      {"kind": "job", "gpus": 2},
	} {
		_, err := conformance.Run(doc)
		require.ErrorIs(t, err, teamgate.ErrInvalid, name)
	}
}
