package store

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// runNames returns n names whose home slot in tb (keys and size as they are) is home: brute
// force over names of the lengths at the compare's edges (tb.inline-1 to +1, and 300: past the
// tag's length byte), made of NUL, 0xFF and letters, differing only in their last bytes or only
// beyond the inline prefix.
func runNames(tb *table[tabEntry], home uint64, n int) []string {
	in := tb.inline
	bases := []string{
		strings.Repeat("\x00", in-1), strings.Repeat("\xff", in), strings.Repeat("a", in+1),
		strings.Repeat("\x00", 300), strings.Repeat("\xff", in-3), "\x00\xff",
	}
	var out []string
	for i := 0; len(out) < n; i++ {
		b := []byte(bases[i%len(bases)])
		// the counter in the last two bytes: names of one base differ only there
		k := i / len(bases)
		b[len(b)-1], b[len(b)-2] = byte(k), byte(k>>8)
		s := string(b)
		if tb.tag(s)>>tb.shift == home {
			out = append(out, s)
		}
	}
	return out
}

// TestTableOneProbeRun: dozens of names brute-forced into one home slot, the table's last (so
// the run wraps to slot 0), at the inline edge, with NUL and 0xFF bytes, with the empty name,
// under random puts, removes of any member of the run (the later ones move back over the gap
// and across the wrap), logged batches rolled back and redone, and a growth that spreads the
// run: every name is found as a Go map says and no entry is past an empty slot from its home.
func TestTableOneProbeRun(t *testing.T) {
	t.Parallel()
	tb := newTable[tabEntry](600, 16) // 1024 slots: no growth below 768 entries
	tb.keys = [2]uint64{0x9e3779b97f4a7c15, 0xbf58476d1ce4e5b9}
	last := uint64(len(tb.slots) - 1)
	names := append(runNames(&tb, last, 40), runNames(&tb, last-1, 20)...)
	names = append(names, runNames(&tb, 0, 10)...)
	names = append(names, "")
	rng := rand.New(rand.NewPCG(21, 3))
	model := map[string]*tabEntry{}
	v := 0
	op := func(tx *txn) {
		n := names[rng.IntN(len(names))]
		del := rng.IntN(5) < 2
		if !del {
			v++
		}
		tableStep(t, tx, &tb, model, n, del, v)
	}
	for i, n := range names { // the run: from slot 1022 over the end to slot 68 or beyond
		model[n] = newTabEntry(n, -i)
		require.Nil(t, tb.put(n, model[n]))
	}
	for i := range 68 {
		require.NotNil(t, tb.slots[i].e, "slot %d: the run does not wrap", i)
	}
	checkTable(t, &tb, model, names, -3)
	for step := range 4000 {
		if rng.IntN(8) == 0 {
			before := maps.Clone(model)
			tx := newTxn(newState(), false)
			for range 1 + rng.IntN(30) {
				op(tx)
			}
			after := maps.Clone(model)
			tx.rollback()
			checkTable(t, &tb, before, names, step)
			tx.redo()
			checkTable(t, &tb, after, names, step)
			if rng.IntN(2) == 0 {
				tx.rollback()
				model = before
			}
		} else {
			op(nil)
		}
		checkTable(t, &tb, model, names, step)
	}
	// Grow mid-batch, then roll it back: the run spread over twice the slots, then the batch's
	// entries gone from the grown table.
	before := maps.Clone(model)
	tx := newTxn(newState(), false)
	var fill []string
	for i := range 800 {
		n := fmt.Sprintf("fill%d", i)
		fill = append(fill, n)
		e := newTabEntry(n, i)
		setEntry(tx, &tb, n, e)
		model[n] = e
	}
	for _, n := range names[:30] {
		delEntry(tx, &tb, n)
		delete(model, n)
	}
	all := append(slices.Clone(names), fill...)
	require.Len(t, tb.slots, 2048)
	checkTable(t, &tb, model, all, -1)
	tx.rollback()
	checkTable(t, &tb, before, all, -2)
}

// TestTableSameTagNames: two entries under one tag (a full collision of the hash's 56 bits and
// the length, made by hand: no search finds one) whose names differ only in their last byte,
// only beyond the inline bytes, or are inline-long NULs against 0xFFs: each name finds its own
// entry, never the other one first in the run, and a put or remove of it changes only its own.
// (The other entry sits under a tag not its name's, so only its slot is looked at.)
func TestTableSameTagNames(t *testing.T) {
	t.Parallel()
	const in = 16
	pad := func(c byte, n int) string { return strings.Repeat(string([]byte{c}), n) }
	pairs := [][2]string{
		{pad('a', in-1) + "x", pad('a', in-1) + "y"}, // last inline byte
		{pad('a', in-2) + "x", pad('a', in-2) + "y"}, // under the inline bytes
		{pad('a', in) + "x", pad('a', in) + "y"},     // beyond the inline prefix
		{pad('a', 40) + "x", pad('a', 40) + "y"},     // long, last byte
		{pad(0, in), pad(0xff, in)},                  // NUL against 0xFF
		{pad(0, in-1) + "\xff", pad(0, in)},          // last byte NUL against 0xFF
		{"x" + pad('a', 299), "y" + pad('a', 299)},   // past the length byte, first byte
		{pad('a', 299) + "x", pad('a', 299) + "y"},   // 300 bytes each, last byte
	}
	for _, p := range pairs {
		if len(p[0]) != len(p[1]) || p[0] == p[1] {
			t.Fatalf("pair %q %q", p[0], p[1])
		}
		tb := newTable[tabEntry](4, in)
		a, b := newTabEntry(p[0], 1), newTabEntry(p[1], 2)
		require.Nil(t, tb.put(p[0], a))
		// b under a's tag in a's home slot, a moved to the next: a lookup of a meets b first.
		tag := tb.tag(p[0])
		home := tag >> tb.shift
		next := (home + 1) & uint64(len(tb.slots)-1)
		require.Nil(t, tb.slots[next].e)
		tb.slots[home], tb.slots[next] = slot[tabEntry]{tag, b}, slot[tabEntry]{tag, a}
		tb.n++
		if len(p[1]) > in {
			tb.long[b] = p[1]
		}
		require.Same(t, a, tb.find(p[0]), "%q", p[0])
		c := newTabEntry(p[0], 3)
		require.Same(t, a, tb.put(p[0], c), "%q replaced", p[0])
		require.Same(t, b, tb.slots[home].e, "%q's entry replaced for %q", p[1], p[0])
		require.Same(t, c, tb.find(p[0]), "%q", p[0])
		require.Same(t, c, tb.remove(p[0]), "%q removed", p[0])
		require.Same(t, b, tb.slots[home].e, "%q's entry removed for %q", p[1], p[0])
		require.Equal(t, 1, tb.len())
		require.Nil(t, tb.find(p[0]))
	}
}

// TestNameTableDecisionsRandomBatches: members named at member.key's edge (34, 35, 36 bytes) and
// past it (37, 128) in pairs that differ only in their last byte or only beyond the key's 35
// bytes, projects likewise at projectData.key's (14, 15, 16, 40), under random batches of joins,
// leaves, project puts and deletes, grants (some batches fail and are rolled back after growing
// the tables, some are only simulated): after each, every user's decision facts on every project
// (found, org role, grant) are the records' (a model of them), Store.Check is clean, and again
// after a reopen from a snapshot and the records after it.
func TestNameTableDecisionsRandomBatches(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pairs := func(lens []int) []string {
		var out []string
		for _, n := range lens {
			for _, c := range "ab" {
				out = append(out, strings.Repeat("m", n-1)+string(c))
			}
			if n > 36 { // differ only beyond the first 35 bytes, the last byte the same
				out = append(out, strings.Repeat("m", 35)+strings.Repeat("z", n-36)+"a")
			}
		}
		return out
	}
	users := append(pairs([]int{34, 35, 36, 37, 128}), "a", "b")
	projects := append(pairs([]int{14, 15, 16, 17, 40}), "p", "q")
	for i := range 40 { // filler: the tables grow and shrink through several sizes
		users = append(users, fmt.Sprintf("u%d", i))
	}
	dir := t.TempDir()
	opts := Options{Dir: dir, NoSync: true, SnapshotRevisions: 5}
	s, err := Open(ctx, opts)
	require.NoError(t, err)
	defer func() { _ = s.Close() }()
	_, err = s.Apply(ctx, PutOrg{Org: Org{Name: "o"}})
	require.NoError(t, err)

	rng := rand.New(rand.NewPCG(21, 9))
	roles := map[string]string{}             // member → org role
	grants := map[string]map[string]string{} // project → member → grant role
	verify := func(view func(func(Reader) error) error, step int) {
		t.Helper()
		require.NoError(t, view(func(r Reader) error {
			for _, p := range projects {
				for _, u := range users {
					a := r.Access("o", "", p, u)
					g, ok := grants[p]
					if !ok {
						require.Equal(t, MissingProject, a.Missing, "step %d: %s on %s", step, u, p)
						continue
					}
					require.Equal(t, Found, a.Missing, "step %d: %s on %s", step, u, p)
					require.Equal(t, roles[u], a.OrgRole, "step %d: %s's org role", step, u)
					require.Equal(t, g[u], a.Grant, "step %d: %s's grant on %s", step, u, p)
				}
			}
			return nil
		}))
	}
	type op struct {
		c     Change
		model func()
	}
	random := func() op {
		u, p := users[rng.IntN(len(users))], projects[rng.IntN(len(projects))]
		role := string(teamRoles[rng.IntN(len(teamRoles))])
		switch rng.IntN(6) {
		case 0, 1:
			r := string(orgRoles[rng.IntN(len(orgRoles))])
			return op{PutMember{Org: "o", User: u, Role: r}, func() { roles[u] = r }}
		case 2:
			return op{DeleteMember{Org: "o", User: u}, func() {
				delete(roles, u)
				for _, g := range grants {
					delete(g, u)
				}
			}}
		case 3:
			if rng.IntN(2) == 0 {
				return op{DeleteProject{Org: "o", Name: p}, func() { delete(grants, p) }}
			}
			return op{PutProject{Project: Project{Org: "o", Name: p}}, func() { grants[p] = map[string]string{} }}
		case 4:
			return op{PutGrant{Org: "o", Project: p, User: u, Grant: Grant{Role: role}}, func() { grants[p][u] = role }}
		default:
			return op{DeleteGrant{Org: "o", Project: p, User: u}, func() {
				if g := grants[p]; g != nil {
					delete(g, u)
				}
			}}
		}
	}
	failed, simulated := 0, 0
	for step := range 600 {
		var ops []op
		for range 1 + rng.IntN(5) {
			ops = append(ops, random())
		}
		var cs []Change
		for _, o := range ops {
			cs = append(cs, o.c)
		}
		if rng.IntN(6) == 0 {
			sim, err := s.Simulate(ctx, cs...)
			if err == nil { // the simulation's state is the batch's; the model is put back after
				simulated++
				keptRoles, keptGrants := maps.Clone(roles), map[string]map[string]string{}
				for p, g := range grants {
					keptGrants[p] = maps.Clone(g)
				}
				for _, o := range ops {
					o.model()
				}
				verify(sim.ViewAfter, step)
				roles, grants = keptRoles, keptGrants
			}
		} else if _, err := s.Apply(ctx, cs...); err == nil {
			for _, o := range ops {
				o.model()
			}
		} else {
			failed++
		}
		verify(s.View, step)
		require.NoError(t, s.Check(), "step %d", step)
	}
	require.Greater(t, failed, 50, "batches that failed")
	require.Greater(t, simulated, 20, "simulations that succeeded")
	require.Greater(t, len(roles), 5)
	require.Greater(t, len(grants), 3)
	require.NoError(t, s.Close())
	s, err = Open(ctx, opts)
	require.NoError(t, err)
	verify(s.View, -1)
	require.NoError(t, s.Check())
}
