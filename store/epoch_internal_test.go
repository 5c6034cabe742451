package store

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// epochs returns every group's epoch.
func epochs(s *Store) [EpochGroups]uint64 {
	var out [EpochGroups]uint64
	for g := range out {
		out[g] = s.stamps.epoch.Load(g)
	}
	return out
}

// absentIndex is the index of k's absent shard.
func absentIndex(s *Store, k stampKey) int {
	c := s.stamps.absentCell(k)
	for i := range s.stamps.absent {
		if &s.stamps.absent[i] == c {
			return i
		}
	}
	return -1
}

// moved returns the groups whose epoch differs between a and b.
func moved(a, b [EpochGroups]uint64) []int {
	var out []int
	for g := range a {
		if a[g] != b[g] {
			out = append(out, g)
		}
	}
	return out
}

// TestEpochGroups: a write moves the epochs of the groups whose cells it changed, and EpochAll's,
// and no other: an org's facts lie in its group, a user's record in the user's; a Deps over one
// org's facts is of that org's group, over several groups of EpochAll; an absent key's shard lies
// in its group; Close moves every group.
func TestEpochGroups(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), Options{})
	require.NoError(t, err)
	ga, gb := epochGroup(stampKey{'o', "a", ""}), epochGroup(stampKey{'o', "b", ""})
	gu := epochGroup(stampKey{'u', "bob", ""})
	require.Len(t, map[int]bool{ga: true, gb: true, gu: true, EpochAll: true}, 4, "distinct groups (the names are chosen for it)")
	for _, k := range []stampKey{{'x', "a", ""}, {'m', "a", "bob"}, {'t', "a", "ml"}, {'p', "a", "p"}, {'y', "a", "gpu"}} {
		require.Equal(t, ga, epochGroup(k), "%s: in its org's group", k)
		require.Equal(t, ga, absentIndex(s, k)/absentPerGroup, "%s: its absent shard too", k)
	}
	_, err = s.Apply(t.Context(), PutOrg{Org: Org{Name: "a"}}, PutOrg{Org: Org{Name: "b"}},
		PutMember{Org: "a", User: "bob", Role: "member"}, PutMember{Org: "b", User: "bob", Role: "member"},
		PutProject{Project: Project{Org: "a", Name: "p"}}, PutProject{Project: Project{Org: "b", Name: "p"}})
	require.NoError(t, err)

	carl := "" // a user whose membership of b has another absent shard than nobody's
	for i := 0; carl == ""; i++ {
		if u := fmt.Sprint("carl", i); absentIndex(s, stampKey{'m', "b", u}) != absentIndex(s, stampKey{'m', "b", "nobody"}) {
			carl = u
		}
	}
	var da, db, both, none Deps
	require.NoError(t, s.View(func(r Reader) error {
		r.Track(&da).Access("a", "", "p", "bob")
		r.Track(&db).Access("b", "", "p", "nobody") // an absent membership
		rb := r.Track(&both)
		rb.Access("a", "", "p", "bob")
		rb.Org("b")
		r.Track(&none)
		return nil
	}))
	require.Equal(t, ga, da.EpochGroup())
	require.Equal(t, gb, db.EpochGroup())
	require.Equal(t, EpochAll, both.EpochGroup())
	require.Equal(t, EpochAll, none.EpochGroup())
	for _, d := range []*Deps{&da, &db, &both} {
		enc, err := d.MarshalBinary()
		require.NoError(t, err)
		dec, _, err := s.DecodeDeps(enc)
		require.NoError(t, err)
		require.Equal(t, d.EpochGroup(), dec.EpochGroup(), "decoded")
	}

	for _, w := range []struct {
		change Change
		groups []int
	}{
		{PutMember{Org: "a", User: "bob", Role: "admin"}, []int{ga, EpochAll}},
		{PutMember{Org: "b", User: carl, Role: "admin"}, []int{gb, EpochAll}}, // a new cell: its absent shard is b's
		{PutUser{User: User{ID: "bob"}}, []int{gu, epochGroup(stampKey{'U', "", ""}), EpochAll}},
	} {
		before := epochs(s)
		_, err := s.Apply(t.Context(), w.change)
		require.NoError(t, err)
		require.ElementsMatch(t, w.groups, moved(before, epochs(s)), "%+v", w.change)
	}
	require.False(t, da.Current())
	require.True(t, db.Current(), "b's write named another user (and another shard)")

	before := epochs(s)
	require.NoError(t, s.Close())
	require.Len(t, moved(before, epochs(s)), EpochGroups, "Close moves every group")
}

// TestEpochInvariant: over random writes in three orgs (two sharing a group) and to users —
// memberships, team roles, grants, projects, new and deleted cells, orgs created and removed —
// a Deps found current after its group's epoch read E is still current while the group's epoch
// reads E. The property is checked after every write for Deps of single-org reads (decisions'),
// absent facts, user records and reads across orgs (EpochAll), and it is not vacuous: some Deps
// keep their epoch through writes, and some go stale.
func TestEpochInvariant(t *testing.T) {
	t.Parallel()
	orgs := []string{"a", "b", ""}
	for i := 0; orgs[2] == ""; i++ { // an org sharing a's group
		if n := fmt.Sprint("c", i); epochGroup(stampKey{'o', n, ""}) == epochGroup(stampKey{'o', "a", ""}) {
			orgs[2] = n
		}
	}
	users := []string{"u0", "u1", "u2", "u3", "u4"}
	s, err := Open(t.Context(), Options{})
	require.NoError(t, err)
	defer s.Close()
	for _, o := range orgs {
		_, err = s.Apply(t.Context(), PutOrg{Org: Org{Name: o}}, PutTeam{Team: Team{Org: o, Name: "t"}},
			PutMember{Org: o, User: "u0", Role: "member"},
			PutProject{Project: Project{Org: o, Name: "p", Teams: []string{"t"}}}, PutProject{Project: Project{Org: o, Name: "q"}})
		require.NoError(t, err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	write := func() Change {
		o, u := pick(orgs), pick(users)
		switch rng.IntN(9) {
		case 0:
			return PutMember{Org: o, User: u, Role: pick([]string{"member", "viewer", "admin"})}
		case 1:
			return DeleteMember{Org: o, User: u}
		case 2:
			return PutTeamMember{Org: o, Team: "t", User: "u0", Role: pick([]string{"viewer", "admin"})}
		case 3:
			return PutGrant{Org: o, Project: "p", User: "u0", Grant: Grant{Role: pick([]string{"viewer", "admin"})}}
		case 4:
			return PutProject{Project: Project{Org: o, Name: pick([]string{"q", "r", "s"})}}
		case 5:
			return PutUser{User: User{ID: u}}
		case 6:
			return PutOrg{Org: Org{Name: pick([]string{"d", "e"})}}
		case 7:
			return DeleteOrg{Name: pick([]string{"d", "e"})}
		}
		return PutTeam{Team: Team{Org: o, Name: "t", Description: fmt.Sprint(rng.IntN(3))}}
	}
	read := func(r Reader) {
		o, u := pick(orgs), pick(users)
		switch rng.IntN(6) {
		case 0:
			r.Access(o, "", pick([]string{"p", "q", "r"}), u)
		case 1:
			r.Access(o, "t", "p", u)
		case 2:
			r.User(u)
		case 3:
			r.Access(pick([]string{"d", "e", "nowhere"}), "", "p", u)
		case 4:
			r.Members(o)
			r.Org(pick(orgs))
		default:
			r.Orgs()
		}
	}
	type watched struct {
		d    Deps
		seen uint64 // its group's epoch, read before Current
	}
	var kept, stale int
	for step := range 400 {
		ws := make([]watched, 30)
		for i := range ws {
			require.NoError(t, s.View(func(r Reader) error { read(r.Track(&ws[i].d)); return nil }))
			ws[i].seen = s.stamps.epoch.Load(ws[i].d.EpochGroup())
			require.True(t, ws[i].d.Current())
		}
		for range 1 + rng.IntN(3) {
			if _, err := s.Apply(t.Context(), write()); err != nil {
				continue // e.g. a grant for a member just removed: nothing written
			}
			for i := range ws {
				w := &ws[i]
				if w.seen == 0 {
					continue // gone stale already
				}
				switch now := s.stamps.epoch.Load(w.d.EpochGroup()); {
				case now == w.seen:
					require.True(t, w.d.Current(), "step %d: a Deps of group %d went stale, the group's epoch unmoved", step, w.d.EpochGroup())
					kept++
				case !w.d.Current():
					stale++
					w.seen = 0
				default:
					w.seen = now
				}
			}
		}
	}
	require.NotZero(t, kept, "Deps kept their epoch through writes")
	require.NotZero(t, stale, "Deps went stale")
	t.Logf("%d kept their epoch, %d went stale", kept, stale)
}
