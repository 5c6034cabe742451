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

// absentGroup is the epoch group of k's absent shard.
func absentGroup(s *Store, k stampKey) int {
	c := s.stamps.absentCell(k)
	for i := range s.stamps.absent {
		if &s.stamps.absent[i] == c {
			org, r := i/absentPerOrg, i%absentPerOrg
			if r < absentOrgWide {
				return org * EpochParts
			}
			return org*EpochParts + 1 + (r-absentOrgWide)/absentPerPart
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

// parts returns the groups of the given parts of the org group of g, and EpochAll.
func parts(g int, ps ...int) []int {
	out := []int{EpochAll}
	for _, p := range ps {
		out = append(out, g/EpochParts*EpochParts+p)
	}
	return out
}

// allParts are the parts of an org group.
var allParts = func() []int {
	var ps []int
	for p := range EpochParts {
		ps = append(ps, p)
	}
	return ps
}()

// TestEpochGroups: a write moves the epochs of the groups whose cells it changed — every part of
// the org for an org-wide cell (o, m, t), one part for a project's (p), the org's list part for
// x and y — and EpochAll's, and no other: a Deps over an org's org-wide facts and one project's
// is of that project's part, over two projects of different parts or several orgs of EpochAll;
// an absent key's shard lies in its group; Close moves every group.
func TestEpochGroups(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), Options{})
	require.NoError(t, err)
	ga, gb := epochGroup(stampKey{'o', "a", ""}), epochGroup(stampKey{'o', "b", ""})
	gu := epochGroup(stampKey{'u', "bob", ""})
	gp, gq := epochGroup(stampKey{'p', "a", "p"}), epochGroup(stampKey{'p', "a", "q"})
	require.Len(t, map[int]bool{ga / EpochParts: true, gb / EpochParts: true, gu / EpochParts: true, EpochAll / EpochParts: true}, 4,
		"distinct org groups (the names are chosen for it)")
	require.Zero(t, ga%EpochParts, "org-wide cells: part 0")
	require.Equal(t, gu%EpochParts, listPart, "a user's record: a list part")
	require.NotEqual(t, gp, gq, "projects p and q lie in different parts")
	for _, g := range []int{gp, gq} {
		require.Equal(t, ga/EpochParts, g/EpochParts, "a project of a: a's org group")
		require.True(t, g%EpochParts >= 1 && g%EpochParts <= projectParts, "a project part")
	}
	for _, c := range []struct {
		k     stampKey
		group int
	}{
		{stampKey{'o', "a", ""}, ga}, {stampKey{'m', "a", "bob"}, ga}, {stampKey{'t', "a", "ml"}, ga},
		{stampKey{'p', "a", "p"}, gp}, {stampKey{'x', "a", ""}, ga + listPart}, {stampKey{'y', "a", "gpu"}, ga + listPart},
		{stampKey{'u', "bob", ""}, gu},
	} {
		require.Equal(t, c.group, epochGroup(c.k), "%s", c.k)
		require.Equal(t, c.group, absentGroup(s, c.k), "%s: its absent shard too", c.k)
	}
	_, err = s.Apply(t.Context(), PutOrg{Org: Org{Name: "a"}}, PutOrg{Org: Org{Name: "b"}},
		PutMember{Org: "a", User: "bob", Role: "member"}, PutMember{Org: "b", User: "bob", Role: "member"},
		PutProject{Project: Project{Org: "a", Name: "p"}}, PutProject{Project: Project{Org: "a", Name: "q"}},
		PutProject{Project: Project{Org: "b", Name: "p"}})
	require.NoError(t, err)

	carl := "" // a user whose membership of b has another absent shard than nobody's
	for i := 0; carl == ""; i++ {
		if u := fmt.Sprint("carl", i); s.stamps.absentCell(stampKey{'m', "b", u}) != s.stamps.absentCell(stampKey{'m', "b", "nobody"}) {
			carl = u
		}
	}
	var da, dq, db, dorg, dlist, two, both, none Deps
	require.NoError(t, s.View(func(r Reader) error {
		r.Track(&da).Access("a", "", "p", "bob")
		r.Track(&dq).Access("a", "", "q", "bob")
		r.Track(&db).Access("b", "", "p", "nobody") // an absent membership
		r.Track(&dorg).Access("a", "", "", "bob")
		rl := r.Track(&dlist)
		rl.Members("a")
		rl.Org("a")
		r2 := r.Track(&two)
		r2.Access("a", "", "p", "bob")
		r2.Project("a", "q")
		rb := r.Track(&both)
		rb.Access("a", "", "p", "bob")
		rb.Org("b")
		r.Track(&none)
		return nil
	}))
	require.Equal(t, gp, da.EpochGroup())
	require.Equal(t, gq, dq.EpochGroup())
	require.Equal(t, epochGroup(stampKey{'p', "b", "p"}), db.EpochGroup())
	require.Equal(t, ga, dorg.EpochGroup())
	require.Equal(t, ga+listPart, dlist.EpochGroup())
	require.Equal(t, EpochAll, two.EpochGroup(), "two projects of different parts")
	require.Equal(t, EpochAll, both.EpochGroup())
	require.Equal(t, EpochAll, none.EpochGroup())
	for _, d := range []*Deps{&da, &db, &dorg, &dlist, &two, &both} {
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
		{PutGrant{Org: "a", Project: "q", User: "bob", Grant: Grant{Role: "viewer"}}, parts(ga, gq%EpochParts, listPart)},
		{PutMember{Org: "a", User: "bob", Role: "admin"}, parts(ga, allParts...)},
		{PutMember{Org: "b", User: carl, Role: "admin"}, parts(gb, allParts...)}, // a new cell: its absent shard is b's
		{PutUser{User: User{ID: "bob"}}, []int{gu, epochGroup(stampKey{'U', "", ""}), EpochAll}},
	} {
		before := epochs(s)
		_, err := s.Apply(t.Context(), w.change)
		require.NoError(t, err)
		require.ElementsMatch(t, w.groups, moved(before, epochs(s)), "%+v", w.change)
		if _, ok := w.change.(PutGrant); ok {
			require.True(t, da.Current(), "a grant on q leaves p's decision current")
			require.False(t, dq.Current())
		}
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
// reads E. The property is checked after every write for Deps of single-org reads (decisions',
// of a project's part or of the org-wide part), absent facts, user records, the org's lists and
// reads across orgs or projects (EpochAll), and it is not vacuous: some Deps keep their epoch
// through writes, some of a project's part through a write in their own org, and some go stale.
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
	var wrote string // the org of the last write (pick below)
	write := func() Change {
		o, u := pick(orgs), pick(users)
		wrote = o
		switch rng.IntN(10) {
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
			wrote = "" // in no org of orgs
			return PutUser{User: User{ID: u}}
		case 6:
			wrote = ""
			return PutOrg{Org: Org{Name: pick([]string{"d", "e"})}}
		case 7:
			wrote = ""
			return DeleteOrg{Name: pick([]string{"d", "e"})}
		case 8:
			return PutGrant{Org: o, Project: pick([]string{"q", "r", "s"}), User: "u0", Grant: Grant{Role: pick([]string{"viewer", "admin"})}}
		}
		return PutTeam{Team: Team{Org: o, Name: "t", Description: fmt.Sprint(rng.IntN(3))}}
	}
	read := func(r Reader) {
		o, u := pick(orgs), pick(users)
		switch rng.IntN(8) {
		case 0:
			r.Access(o, "", pick([]string{"p", "q", "r", "s"}), u)
		case 6:
			r.Access(o, "", "", u)
			r.Settings(o, pick([]string{"p", "q"}), u)
		case 7:
			r.Access(o, "", "p", u)
			r.Project(o, pick([]string{"q", "r", "s"})) // two projects: EpochAll unless they share a part
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
	var kept, keptProject, stale int
	for step := range 400 {
		ws := make([]watched, 30)
		for i := range ws {
			require.NoError(t, s.View(func(r Reader) error { read(r.Track(&ws[i].d)); return nil }))
			ws[i].seen = s.stamps.epoch.Load(ws[i].d.EpochGroup())
			require.True(t, ws[i].d.Current())
		}
		for range 1 + rng.IntN(3) {
			c := write()
			if _, err := s.Apply(t.Context(), c); err != nil {
				continue // e.g. a grant for a member just removed: nothing written
			}
			for i := range ws {
				w := &ws[i]
				if w.seen == 0 {
					continue // gone stale already
				}
				switch now := s.stamps.epoch.Load(w.d.EpochGroup()); {
				case now == w.seen:
					require.True(t, w.d.Current(), "step %d: a Deps of group %d went stale, the group's epoch unmoved by %+v", step, w.d.EpochGroup(), c)
					kept++
					if g := w.d.EpochGroup(); g%EpochParts != 0 && g%EpochParts != listPart && wrote != "" && g/EpochParts == epochGroup(stampKey{'o', wrote, ""})/EpochParts {
						keptProject++
					}
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
	require.NotZero(t, keptProject, "Deps of a project's part kept their epoch through a write in their org")
	require.NotZero(t, stale, "Deps went stale")
	t.Logf("%d kept their epoch (%d of a project's part through a write in their org), %d went stale", kept, keptProject, stale)
}
