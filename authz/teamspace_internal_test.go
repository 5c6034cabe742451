package authz

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMergeListing covers every shape of class the listing merges, including a class of
// restricted projects only (every project minus the open ones), which the default rules never
// produce but a table may.
func TestMergeListing(t *testing.T) {
	t.Parallel()
	all := []string{"a", "b", "c", "d", "e", "f"}
	open := []string{"a", "c", "e"}
	for _, tc := range []struct {
		name                       string
		class, skip, denied, extra []string
		limit                      int
		want                       []string
	}{
		{"nothing", nil, nil, nil, nil, 0, []string{}},
		{"candidates only", nil, nil, nil, []string{"b", "d"}, 0, []string{"b", "d"}},
		{"open class and candidates", open, nil, []string{"c"}, []string{"b", "f"}, 0, []string{"a", "b", "e", "f"}},
		{"every project minus denied", all, nil, []string{"b", "f"}, nil, 0, []string{"a", "c", "d", "e"}},
		{"restricted class", all, open, []string{"d"}, []string{"c"}, 0, []string{"b", "c", "f"}},
		{"restricted class, limited", all, open, []string{"d"}, []string{"c"}, 2, []string{"b", "c"}},
		{"limit cuts the merge", open, nil, nil, []string{"b", "d", "f"}, 4, []string{"a", "b", "c", "d"}},
		{"denied past the class", open, nil, []string{"z"}, nil, 0, open},
	} {
		got := mergeListing(tc.class, tc.skip, tc.denied, tc.extra, tc.limit)
		require.Equal(t, tc.want, got, tc.name)
	}
}
