package rego_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/rego"
)

// TestSpecIsTheCatalogsOwnEntry: Spec finds what Action finds, as the policy's one shared entry
// (the same pointer on every call), and nothing Action does not find.
func TestSpecIsTheCatalogsOwnEntry(t *testing.T) {
	t.Parallel()
	p, err := rego.New(t.Context(), nil)
	require.NoError(t, err)
	for _, name := range p.Actions() {
		spec, ok := p.Spec(name)
		require.True(t, ok, name)
		again, _ := p.Spec(name)
		require.Same(t, spec, again, name)
		copied, _ := p.Action(name)
		require.Equal(t, copied, *spec, name)
	}
	for _, miss := range []string{"", "runs.nope", "runs.stop\x00", "RUNS.STOP"} {
		spec, ok := p.Spec(miss)
		require.False(t, ok, "%q", miss)
		require.Nil(t, spec)
	}
}
