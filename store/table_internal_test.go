package store

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// tabEntry is a table entry of the tests: its name's first bytes (the table's inline bytes), its
// name and a value to tell two entries of one name apart.
type tabEntry struct {
	key  [16]byte
	name string
	v    int
}

func newTabEntry(name string, v int) *tabEntry {
	e := &tabEntry{name: name, v: v}
	copy(e.key[:], name)
	return e
}

// checkTable checks tb against model: the same entries, each found by its name, every name of
// names not in model not found, the count, the long names, and the probing invariant (no empty
// slot between an entry and its home slot). (Plain compares: it runs ≈ 10,000 times a test.)
func checkTable(t *testing.T, tb *table[tabEntry], model map[string]*tabEntry, names []string, step int) {
	t.Helper()
	if tb.len() != len(model) {
		t.Fatalf("step %d: %d entries, want %d", step, tb.len(), len(model))
	}
	for _, n := range names {
		if got := tb.find(n); got != model[n] { // nil when absent
			t.Fatalf("step %d: find %q = %v, want %v", step, n, got, model[n])
		}
	}
	seen, long := 0, 0
	for e := range tb.all {
		seen++
		if model[e.name] != e {
			t.Fatalf("step %d: %q (%d) is not the model's", step, e.name, e.v)
		}
		if len(e.name) > tb.inline {
			long++
			if tb.long[e] != e.name {
				t.Fatalf("step %d: long name of %q is %q", step, e.name, tb.long[e])
			}
		}
	}
	if seen != len(model) || long != len(tb.long) {
		t.Fatalf("step %d: %d entries yielded, want %d; %d long names kept, want %d", step, seen, len(model), len(tb.long), long)
	}
	if tb.slots == nil {
		return
	}
	if tb.n*8 > len(tb.slots)*maxLoad {
		t.Fatalf("step %d: %d entries in %d slots", step, tb.n, len(tb.slots))
	}
	mask := uint64(len(tb.slots) - 1)
	for i, s := range tb.slots {
		if s.e == nil {
			continue
		}
		if s.tag != tb.tag(s.e.name) {
			t.Fatalf("step %d: slot %d's tag", step, i)
		}
		for j := s.tag >> tb.shift; j != uint64(i); j = (j + 1) & mask {
			if tb.slots[j].e == nil {
				t.Fatalf("step %d: %q at slot %d, an empty slot %d after its home", step, s.e.name, i, j)
			}
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
			// Names of 2 to 4 bytes, at the edge of the 16 inline bytes (15–17), and past the tag's
			// length byte (300).
			names := make([]string, 600)
			for i := range names {
				names[i] = fmt.Sprintf("n%d", i)
				switch i % 5 {
				case 1:
					names[i] = fmt.Sprintf("%-*d", 15+i%3, i)
				case 2:
					names[i] = fmt.Sprintf("%0300d", i)
				}
			}
			tb := newTable[tabEntry](0, 16)
			if seed == 3 {
				tb = table[tabEntry]{} // every name long
			}
			model := map[string]*tabEntry{}
			v := 0
			op := func(tx *txn, tb *table[tabEntry], model map[string]*tabEntry, pool int) {
				v++
				tableStep(t, tx, tb, model, names[rng.IntN(pool)], rng.IntN(3) == 0, v)
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
					c := tb.clone(func(e *tabEntry) *tabEntry { return newTabEntry(e.name, e.v) })
					cm := map[string]*tabEntry{}
					for e := range c.all {
						cm[e.name] = e
						if e == model[e.name] || *e != *model[e.name] {
							t.Fatalf("step %d: the clone's %q is tb's, or not a copy of it", step, e.name)
						}
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
	require.Nil(t, tb.find("a"))
	require.Nil(t, tb.remove("a"))
	require.Zero(t, tb.len())
	for range tb.all {
		t.Fatal("an entry in the zero table")
	}
	e := newTabEntry("a", 1)
	require.Nil(t, tb.put("a", e))
	require.Same(t, e, tb.find("a"))
	require.Equal(t, map[*tabEntry]string{e: "a"}, tb.long, "the zero table keeps every name")
	require.Len(t, tb.slots, minSlots)

	for _, n := range []int{0, 1, 6, 7, 100, 1000} {
		tb := newTable[tabEntry](n, 16)
		size := len(tb.slots)
		for i := range n {
			tb.put(fmt.Sprint(i), newTabEntry(fmt.Sprint(i), i))
		}
		require.Len(t, tb.slots, size, "newTable(%d) grew", n)
		require.LessOrEqual(t, size, max(minSlots, 4*n), "newTable(%d)", n)
	}
}

// tableStep removes name n from tb and model (del) or puts a new entry of version v under it in
// both: through tx's log when tx is not nil, else directly, checking that the table returns the
// entry the model held.
func tableStep(t *testing.T, tx *txn, tb *table[tabEntry], model map[string]*tabEntry, n string, del bool, v int) {
	t.Helper()
	if del {
		if tx != nil {
			delEntry(tx, tb, n)
		} else {
			require.Same(t, model[n], tb.remove(n))
		}
		delete(model, n)
		return
	}
	e := newTabEntry(n, v)
	if tx != nil {
		setEntry(tx, tb, n, e)
	} else {
		require.Same(t, model[n], tb.put(n, e))
	}
	model[n] = e
}
