package rego

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEditDistanceStopsAtItsLimit: the distance is exact below the limit and the limit at or
// above it, computed in a band of the limit's width: two 1 MB names that differ everywhere cost
// a few rows, not a trillion cells.
func TestEditDistanceStopsAtItsLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b  string
		limit int
		want  int
	}{
		{"runs.delte", "runs.delete", 4, 1},
		{"kitten", "sitting", 4, 3},
		{"kitten", "sitting", 3, 3},
		{"", "abc", 9, 3},
		{"abc", "", 2, 2},
		{"same", "same", 1, 0},
		{"runs.delete", strings.Repeat("x", 1<<20), 9, 9},
		{strings.Repeat("a", 1<<20), strings.Repeat("b", 1<<20), 9, 9},
		{strings.Repeat("a", 1<<20), strings.Repeat("a", 1<<20-2) + "bb", 9, 2},
	} {
		require.Equal(t, tc.want, editDistance(tc.a, tc.b, tc.limit), "%.20q %.20q %d", tc.a, tc.b, tc.limit)
	}
	require.Equal(t, "runs.delete", nearest("runs.delte", []string{"runs.stop", "runs.delete"}))
	require.Empty(t, nearest(strings.Repeat("runs.delete", 100_000), []string{"runs.delete"}))
}
