package store

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// tabEntry is a table entry of the tests: its name and a value to tell two entries of one name
// apart.
type tabEntry struct {
	name string
	v    int
}

func tabNamed(e *tabEntry, name string) bool { return e.name == name }

// checkTable checks tb against model: the same entries, each found by its name, every name of
// names not in model not found, the count, and the probing invariant (no empty slot between an
// entry and its home slot).
func checkTable(t *testing.T, tb *table[tabEntry], model map[string]*tabEntry, names []string, step int) {
	t.Helper()
	require.Equal(t, len(model), tb.len(), "step %d: count", step)
	for _, n := range names {
		require.Same(t, model[n], tb.find(n, tabNamed), "step %d: find %q", step, n) // nil when absent
	}
	seen := map[string]*tabEntry{}
	for e := range tb.all {
		require.NotContains(t, seen, e.name, "step %d: %q twice", step, e.name)
		seen[e.name] = e
	}
	require.Equal(t, model, seen, "step %d: entries", step)
	if tb.slots == nil {
		return
	}
	mask := uint64(len(tb.slots) - 1)
	require.LessOrEqual(t, tb.n*8, len(tb.slots)*maxLoad, "step %d: over the load", step)
	for i, s := range tb.slots {
		if s.e == nil {
			continue
		}
		require.Equal(t, tb.tag(s.e.name), s.tag, "step %d: slot %d's tag", step, i)
		for j := s.tag >> tb.shift; j != uint64(i); j = (j + 1) & mask {
			require.NotNil(t, tb.slots[j].e, "step %d: %q at slot %d, an empty slot %d after its home", step, s.e.name, i, j)
		}
	}
}

// TestTableRandomOperations: random puts (new names and replacements), removes (present and
// absent), growth from empty through several doublings and back down to few entries, batches
// logged in a txn and rolled back and redone, and clones changed apart from their source keep
// a table equal to a Go map, every entry reachable from its home slot.
func TestTableRandomOperations(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 7))
			names := make([]string, 600)
			for i := range names {
				names[i] = fmt.Sprintf("n%d", i)
				if i%5 == 0 { // and some long ones, past any length byte
					names[i] += fmt.Sprintf("%0300d", i)
				}
			}
			var tb table[tabEntry]
			model := map[string]*tabEntry{}
			v := 0
			op := func(tx *txn, tb *table[tabEntry], model map[string]*tabEntry, pool int) {
				n := names[rng.IntN(pool)]
				if rng.IntN(3) == 0 {
					if tx != nil {
						delEntry(tx, tb, n, tabNamed)
					} else {
						require.Same(t, model[n], tb.remove(n, tabNamed))
					}
					delete(model, n)
					return
				}
				v++
				e := &tabEntry{n, v}
				if tx != nil {
					setEntry(tx, tb, n, e, tabNamed)
				} else {
					require.Same(t, model[n], tb.put(n, e, tabNamed))
				}
				model[n] = e
			}
			for step := range 3000 {
				// The pool of names widens, then narrows: the table grows and then holds few.
				pool := min(len(names), 8+step/4)
				if step > 2000 {
					pool = 40
				}
				switch k := rng.IntN(10); {
				case k < 7:
					op(nil, &tb, model, pool)
				case k < 9: // a batch logged, rolled back, redone, maybe rolled back for good
					before := maps.Clone(model)
					tx := newTxn(newState(), false)
					for range 1 + rng.IntN(20) {
						op(tx, &tb, model, pool)
					}
					after := maps.Clone(model)
					checkTable(t, &tb, after, names, step)
					tx.rollback()
					checkTable(t, &tb, before, names, step)
					tx.redo()
					checkTable(t, &tb, after, names, step)
					if rng.IntN(2) == 0 {
						tx.rollback()
						model = before
					}
				default: // a clone of copies, changed apart from tb
					c := tb.clone(func(e *tabEntry) *tabEntry { cp := *e; return &cp })
					cm := map[string]*tabEntry{}
					for e := range c.all {
						cm[e.name] = e
						require.NotSame(t, model[e.name], e, "step %d: the clone's %q is tb's", step, e.name)
						require.Equal(t, *model[e.name], *e, "step %d", step)
					}
					for range 30 {
						op(nil, &c, cm, pool)
					}
					checkTable(t, &c, cm, names, step)
				}
				checkTable(t, &tb, model, names, step)
			}
		})
	}
}

// TestTableZero: the zero table finds and removes nothing and grows on its first put; newTable
// sizes for its entries without growing.
func TestTableZero(t *testing.T) {
	t.Parallel()
	var tb table[tabEntry]
	require.Nil(t, tb.find("a", tabNamed))
	require.Nil(t, tb.remove("a", tabNamed))
	require.Zero(t, tb.len())
	for range tb.all {
		t.Fatal("an entry in the zero table")
	}
	e := &tabEntry{"a", 1}
	require.Nil(t, tb.put("a", e, tabNamed))
	require.Same(t, e, tb.find("a", tabNamed))
	require.Len(t, tb.slots, minSlots)

	for _, n := range []int{0, 1, 6, 7, 100, 1000} {
		tb := newTable[tabEntry](n)
		size := len(tb.slots)
		for i := range n {
			tb.put(fmt.Sprint(i), &tabEntry{fmt.Sprint(i), i}, tabNamed)
		}
		require.Len(t, tb.slots, size, "newTable(%d) grew", n)
		require.LessOrEqual(t, size, max(minSlots, 4*n), "newTable(%d)", n)
	}
}
