package scope

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSplitWellFormedAgrees: the one-pass split accepts exactly the references the general path
// accepts (at most three parts, each a slug), with the same parts; exhaustive over short
// strings of the characters that matter, plus parts at and past the length limit.
func TestSplitWellFormedAgrees(t *testing.T) {
	t.Parallel()
	general := func(s string) ([]string, bool) {
		parts := splitRef(s, nil)
		if len(parts) > 3 {
			return nil, false
		}
		for _, p := range parts {
			if CheckSlug("x", p) != nil {
				return nil, false
			}
		}
		return parts, true
	}
	check := func(s string) {
		var buf [3]string
		n, ok := splitWellFormed(s, &buf)
		want, wantOK := general(s)
		require.Equal(t, wantOK, ok, "%q", s)
		if ok {
			require.True(t, slices.Equal(want, buf[:n]), "%q: %v vs %v", s, want, buf[:n])
		}
	}
	alphabet := []string{"a", "-", "/", ".", "_", "%"}
	var walk func(prefix string, depth int)
	walk = func(prefix string, depth int) {
		if prefix != "" {
			check(prefix)
		}
		if depth == 0 {
			return
		}
		for _, c := range alphabet {
			walk(prefix+c, depth-1)
		}
	}
	walk("", 6)
	long := strings.Repeat("a", MaxSlugLen)
	for _, s := range []string{long, long + "a", "o/" + long, "o/" + long + "a", long + "a/p", "o/t/" + long + "a"} {
		check(s)
	}
}
