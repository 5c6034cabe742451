package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNameListMatchesASortedSet adds and removes random names, checking after each step that
// the list holds exactly the set, in order, that After seeks every cursor (held or not, before
// the first, past the last), and that the earlier versions are unchanged (readers keep them).
func TestNameListMatchesASortedSet(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(12, 34))
	set := map[string]bool{}
	var l *nameList
	type version struct {
		l    *nameList
		want []string
	}
	var kept []version
	for step := range 6000 {
		name := fmt.Sprintf("u%04d", rng.IntN(1500))
		if rng.IntN(3) == 0 {
			l = l.without(name)
			delete(set, name)
		} else {
			l = l.with(name)
			set[name] = true
		}
		want := make([]string, 0, len(set))
		for n := range set {
			want = append(want, n)
		}
		slices.Sort(want)
		require.NoError(t, l.check(), "step %d", step)
		require.Equal(t, want, l.all()[:len(want):len(want)], "step %d", step)
		require.Equal(t, len(want), MemberList{l}.Len())
		if step%500 == 0 {
			kept = append(kept, version{l, want})
			for _, cursor := range []string{"", "a", "u0750", name, "u0750x", "z"} {
				i, found := slices.BinarySearch(want, cursor)
				if found {
					i++
				}
				require.Equal(t, want[i:], append([]string{}, slices.Collect(MemberList{l}.After(cursor))...), "step %d cursor %q", step, cursor)
			}
		}
	}
	for _, v := range kept {
		require.Equal(t, v.want, v.l.all()[:len(v.want):len(v.want)], "an earlier version changed")
	}
	require.Empty(t, slices.Collect(MemberList{}.After("")))
	for n := range set {
		l = l.without(n)
	}
	require.Nil(t, l, "removing every name empties the list")
}
