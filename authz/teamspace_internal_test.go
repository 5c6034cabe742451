package authz

import (
	"fmt"
	"math/rand/v2"
	"slices"
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

// TestMergeListingAgainstSets compares mergeListing with set arithmetic on random sorted lists.
func TestMergeListingAgainstSets(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	names := make([]string, 40)
	for i := range names {
		names[i] = fmt.Sprintf("p%02d", i)
	}
	subset := func(from []string, p int) []string {
		out := []string{}
		for _, n := range from {
			if rng.IntN(p) == 0 {
				out = append(out, n)
			}
		}
		return out
	}
	for range 2000 {
		class := subset(names, 2)
		skip := subset(class, 3)
		denied := subset(names, 6)
		var extra []string
		for _, n := range subset(names, 5) {
			if !slices.Contains(class, n) || slices.Contains(skip, n) {
				extra = append(extra, n)
			}
		}
		want := []string{}
		for _, n := range names {
			inClass := slices.Contains(class, n) && !slices.Contains(skip, n) && !slices.Contains(denied, n)
			if inClass || slices.Contains(extra, n) {
				want = append(want, n)
			}
		}
		limit := rng.IntN(6)
		if limit > 0 && len(want) > limit {
			want = want[:limit]
		}
		got := mergeListing(class, skip, denied, extra, limit)
		require.Equal(t, want, got, "class %v skip %v denied %v extra %v limit %d", class, skip, denied, extra, limit)
	}
}
