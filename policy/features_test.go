package policy_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
)

// TestFeatureErrorsListTheFeatures: a settings field and a single feature argument are checked
// by one function, whose error names the value and lists the features policy knows.
func TestFeatureErrorsListTheFeatures(t *testing.T) {
	t.Parallel()
	known := strings.Join(policy.Features(), ", ")
	for _, f := range policy.Features() {
		require.NoError(t, policy.CheckFeature("feature", f))
	}
	err := policy.CheckFeature("feature", "dataset")
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	require.ErrorContains(t, err, `"dataset"`)
	require.ErrorContains(t, err, known)

	s := policy.Settings{ExcludedFeatures: []string{"model", "dataset"}}
	err = s.Validate("policy acme/gpu")
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	require.ErrorContains(t, err, "policy acme/gpu excluded_features")
	require.ErrorContains(t, err, known)
}
