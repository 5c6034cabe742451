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

// TestMemberListFollowsBatches: the sorted member list follows joins and leaves whether a batch
// holds a few (a new list sharing blocks) or thousands (rebuilt), and a failed batch leaves it
// as it was.
func TestMemberListFollowsBatches(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	cs := []Change{PutOrg{Org: Org{Name: "o"}}}
	for i := range 3000 {
		cs = append(cs, PutMember{Org: "o", User: fmt.Sprintf("m%04d", i), Role: "member"})
	}
	_, err = s.Apply(t.Context(), cs...)
	require.NoError(t, err)
	_, err = s.Apply(t.Context(), DeleteMember{Org: "o", User: "m0001"}, PutMember{Org: "o", User: "m0001a", Role: "admin"},
		DeleteMember{Org: "o", User: "m2999"}, PutMember{Org: "o", User: "a", Role: "member"})
	require.NoError(t, err)
	_, err = s.Apply(t.Context(), PutMember{Org: "o", User: "zz", Role: "member"}, PutMember{Org: "nope", User: "x", Role: "member"})
	require.Error(t, err, "a batch naming an unknown org fails whole")
	require.NoError(t, s.Check())
	require.NoError(t, s.View(func(r Reader) error {
		got := slices.Collect(r.MemberList("o").After(""))
		require.Len(t, got, 3000)
		require.Equal(t, []string{"a", "m0000", "m0001a", "m0002"}, got[:4])
		require.Equal(t, "m2998", got[len(got)-1], "zz's batch failed")
		require.Equal(t, []string{"m0002", "m0003"}, slices.Collect(r.MemberList("o").After("m0001a"))[:2])
		return nil
	}))
}
