package store

import (
	"hash/maphash"
	"math/bits"
)

// table is a hash table of entries that hold their own names: an org's members by name
// (people.byName) and its projects by name (orgData.projects), the two lookups every project
// decision makes. A Go map of string to pointer keeps 24-byte slots (the key's string header
// and the pointer) behind a group's control word, so a lookup read the control word's line, the
// slot's (usually another) and then the entry's, through the key compare. Here a slot is 16
// bytes, the name's hash and the entry, four to a line, and the name's bytes are the entry's
// own: a lookup reads one line of slots and the entry's line, which the decision reads next
// anyway (bench/RESULTS.md, stop 21).
//
// Open addressing with linear probing, at most maxLoad full, and deletion by moving the probe's
// later entries back (no tombstones), so a lookup stops at the first empty slot. The hash is
// hash/maphash's with the table's own seed (names come from users: no fixed seed to collide
// on), kept in the slot with the name's length in its low byte: growing rehashes no name, and a
// name is compared only with an entry whose hash and length are its own.
//
// The entry's name is compared by the function the caller passes (is: the table knows nothing
// of where an entry keeps its name), which must be the same for every call on one table. The
// zero table is empty. Not safe for concurrent use: the Store's mutex guards it, as all of
// state.
type table[E any] struct {
	slots []slot[E] // nil, or a power of two long (at least minSlots)
	n     int       // entries held
	shift uint      // 64 - log2(len(slots)): a tag's home slot is tag >> shift
	seed  maphash.Seed
}

// slot is one place of a table: nil e for an empty one.
type slot[E any] struct {
	tag uint64 // the name's hash, its low byte replaced by the name's length (255: 255 or more)
	e   *E
}

const (
	minSlots = 8
	// maxLoad is how full a table gets, in eighths, before it doubles: at 6/8 (a table between
	// 3/8 and 6/8 full) a found name is ≈ 1.4–2.5 slots from its home, mostly in one line of four.
	maxLoad = 6
)

// newTable returns a table with room for n entries before it grows.
func newTable[E any](n int) table[E] {
	var t table[E]
	t.resize(slotsFor(n))
	return t
}

// slotsFor is the table length that holds n entries.
func slotsFor(n int) int {
	size := minSlots
	for n*8 > size*maxLoad {
		size *= 2
	}
	return size
}

// len is how many entries t holds.
func (t *table[E]) len() int { return t.n }

// tag is name's tag in t (t has slots).
func (t *table[E]) tag(name string) uint64 {
	return maphash.String(t.seed, name)&^0xff | uint64(min(len(name), 0xff))
}

// find returns the entry named name, nil for none. is(e, name) reports whether e, whose name
// has name's hash and length (up to 255), is named name.
func (t *table[E]) find(name string, is func(e *E, name string) bool) *E {
	if t.n == 0 {
		return nil
	}
	tag := t.tag(name)
	mask := uint64(len(t.slots) - 1)
	for i := tag >> t.shift; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.e == nil {
			return nil
		}
		if s.tag == tag && is(s.e, name) {
			return s.e
		}
	}
}

// put makes e the entry of name, which is e's name, and returns the entry it replaces (nil for
// none).
func (t *table[E]) put(name string, e *E, is func(e *E, name string) bool) (old *E) {
	if (t.n+1)*8 > len(t.slots)*maxLoad {
		t.resize(max(minSlots, 2*len(t.slots)))
	}
	tag := t.tag(name)
	mask := uint64(len(t.slots) - 1)
	for i := tag >> t.shift; ; i = (i + 1) & mask {
		s := &t.slots[i]
		switch {
		case s.e == nil:
			*s = slot[E]{tag, e}
			t.n++
			return nil
		case s.tag == tag && is(s.e, name):
			old, s.e = s.e, e
			return old
		}
	}
}

// remove removes the entry of name and returns it (nil: there was none).
func (t *table[E]) remove(name string, is func(e *E, name string) bool) (old *E) {
	if t.n == 0 {
		return nil
	}
	tag := t.tag(name)
	mask := uint64(len(t.slots) - 1)
	i := tag >> t.shift
	for ; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.e == nil {
			return nil
		}
		if s.tag == tag && is(s.e, name) {
			old = s.e
			break
		}
	}
	t.n--
	// Close the gap: a later entry of the probe run moves into it unless its home lies
	// (cyclically) after the gap, where a lookup starting there would not pass the gap.
	for j := i; ; {
		j = (j + 1) & mask
		s := t.slots[j]
		if s.e == nil {
			t.slots[i] = slot[E]{}
			return old
		}
		home := s.tag >> t.shift
		if i <= j && (home <= i || home > j) || i > j && home <= i && home > j {
			t.slots[i] = s
			i = j
		}
	}
}

// resize moves every entry into a table of size slots (a power of two ≥ minSlots), by tag.
func (t *table[E]) resize(size int) {
	old := t.slots
	if old == nil {
		t.seed = maphash.MakeSeed()
	}
	t.slots = make([]slot[E], size)
	t.shift = uint(64 - bits.TrailingZeros(uint(size)))
	mask := uint64(size - 1)
	for _, s := range old {
		if s.e == nil {
			continue
		}
		i := s.tag >> t.shift
		for t.slots[i].e != nil {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

// all yields every entry, in no order. The table must not change meanwhile.
func (t *table[E]) all(yield func(e *E) bool) {
	for _, s := range t.slots {
		if s.e != nil && !yield(s.e) {
			return
		}
	}
}

// clone returns a table of copyOf(e) for each entry e, each where e is: copyOf(e) must have
// e's name.
func (t *table[E]) clone(copyOf func(e *E) *E) table[E] {
	c := *t
	if t.slots != nil {
		c.slots = make([]slot[E], len(t.slots))
		for i, s := range t.slots {
			if s.e != nil {
				c.slots[i] = slot[E]{s.tag, copyOf(s.e)}
			}
		}
	}
	return c
}

// setEntry makes e the entry of name in tb, logged: undone by putting back the entry it
// replaced, or removing e's.
func setEntry[E any](t *txn, tb *table[E], name string, e *E, is func(*E, string) bool) {
	old := tb.put(name, e, is)
	if t.loading {
		return
	}
	t.log = append(t.log, func(undo bool) {
		switch {
		case !undo:
			tb.put(name, e, is)
		case old != nil:
			tb.put(name, old, is)
		default:
			tb.remove(name, is)
		}
	})
}

// delEntry removes the entry of name from tb, logged: undone by putting it back.
func delEntry[E any](t *txn, tb *table[E], name string, is func(*E, string) bool) {
	old := tb.remove(name, is)
	if old == nil || t.loading {
		return
	}
	t.log = append(t.log, func(undo bool) {
		if undo {
			tb.put(name, old, is)
		} else {
			tb.remove(name, is)
		}
	})
}
