package store

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// attack20bKeys are stamp keys of every kind: three orgs (a, a group-mate of a's org group, and
// another), projects of a in one part and in another, a project of the group-mate named like one
// of a's, teams, memberships, lists, policies, users and the global lists. None exists at first:
// the first bump of each creates its cell (the absent shard's path).
func attack20bKeys(t *testing.T) []stampKey {
	t.Helper()
	mate := ""
	for i := 0; mate == ""; i++ {
		if n := fmt.Sprint("mate", i); epochGroup(stampKey{'o', n, ""})/EpochParts == epochGroup(stampKey{'o', "a", ""})/EpochParts {
			mate = n
		}
	}
	near, far := "", ""
	for i := 0; near == "" || far == ""; i++ {
		n := fmt.Sprint("p", i)
		switch g := epochGroup(stampKey{'p', "a", n}); {
		case n == "p0":
		case g == epochGroup(stampKey{'p', "a", "p0"}) && near == "":
			near = n
		case g != epochGroup(stampKey{'p', "a", "p0"}) && far == "":
			far = n
		}
	}
	var ks []stampKey
	for _, o := range []string{"a", mate, "z"} {
		ks = append(ks, stampKey{'o', o, ""}, stampKey{'x', o, ""}, stampKey{'m', o, "u1"}, stampKey{'m', o, "u2"},
			stampKey{'t', o, "t1"}, stampKey{'y', o, "pol"}, stampKey{'p', o, "p0"})
	}
	ks = append(ks, stampKey{'p', "a", near}, stampKey{'p', "a", far}, stampKey{'p', "z", far},
		stampKey{'u', "u1", ""}, stampKey{'u', "u2", ""}, stampKey{'O', "", ""}, stampKey{'U', "", ""})
	return ks
}

// TestAttack20bEveryChangeMovesTheDepsGroup checks the epoch invariant exhaustively over key
// kinds: for every Deps over one or two keys (and random sets of up to six), whether each key is
// absent or written, and every key changed next (a new cell or a written one), a change that makes
// the Deps stale moves the epoch of the Deps' group (Deps.EpochGroup) — through the cell's part,
// an org-wide cell's moving every part, or EpochAll. And the partition is not vacuous: a change
// to a project of another part leaves a project's Deps' epoch unmoved.
func TestAttack20bEveryChangeMovesTheDepsGroup(t *testing.T) {
	t.Parallel()
	ks := attack20bKeys(t)
	check := func(s *stamps, deps []stampKey, k3 stampKey, rev *uint64) (stale, movedG bool) {
		d := Deps{src: s}
		for _, k := range deps {
			d.add(k)
		}
		if !d.Current() {
			t.Fatalf("Deps over %v not current when made", deps)
		}
		g := d.EpochGroup()
		e0 := s.epoch.Load(g)
		*rev++
		s.bump(k3.String(), *rev)
		stale, movedG = !d.Current(), s.epoch.Load(g) != e0
		if stale && !movedG {
			t.Fatalf("Deps over %v (group %d) stale after a change of %v (group %d), the group's epoch unmoved", deps, g, k3, epochGroup(k3))
		}
		return stale, movedG
	}
	var kept int
	for i, k1 := range ks {
		for _, k2 := range ks[i:] {
			s := new(stamps) // nothing written: every key absent
			var rev uint64
			for pass := range 2 { // absent keys first, then written ones
				for _, k3 := range ks {
					if _, moved := check(s, []stampKey{k1, k2}, k3, &rev); !moved && pass == 1 {
						kept++
					}
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(20, 2))
	s := new(stamps)
	var rev uint64
	for range 20000 {
		deps := make([]stampKey, 1+rng.IntN(6))
		for i := range deps {
			deps[i] = ks[rng.IntN(len(ks))]
		}
		check(s, deps, ks[rng.IntN(len(ks))], &rev)
	}
	// Not vacuous: p0 of a and its far neighbour lie in different parts of one org.
	far := ks[len(ks)-6]
	if _, moved := check(s, []stampKey{{'o', "a", ""}, {'p', "a", "p0"}}, far, &rev); moved {
		t.Fatalf("a change of %v moved the epoch of a Deps of another project's part", far)
	}
	if kept == 0 {
		t.Fatal("no change left a Deps' epoch unmoved")
	}
	t.Logf("%d (Deps, change) pairs kept their epoch", kept)
}
