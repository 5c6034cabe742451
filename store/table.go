package store

import (
	"math/bits"
	"math/rand/v2"
	"unsafe"
)

// table is a hash table of entries that hold their own names: an org's members by name
// (people.byName) and its projects by name (orgData.projects), the two lookups every project
// decision makes. A Go map of string to pointer keeps 24-byte slots (the key's string header
// and the pointer) behind a group's control word, so a lookup read the control word's line, the
// slot's (usually another) and then the entry's, through the key compare. Here a slot is 16
// bytes, the name's hash and the entry, four to a line, and a name of up to inline bytes is the
// entry's own first bytes: a lookup reads one line of slots and the entry's first line, which
// the decision reads next anyway (bench/RESULTS.md, stop 21). Longer names, rare, are kept in
// the table's own map (long), looked up by the entry.
//
// Open addressing with linear probing, at most maxLoad full, and deletion by moving the probe's
// later entries back (no tombstones), so a lookup stops at the first empty slot. The hash is
// keyed by the table's own random keys (names come from users: no fixed hash to collide on) and
// kept in the slot with the name's length in its low byte: growing rehashes no name, and a name
// is compared only with an entry whose hash and length are its own.
//
// The zero table is empty and keeps every name in long (inline 0). Not safe for concurrent use:
// the Store's mutex guards it, as all of state.
type table[E any] struct {
	slots []slot[E] // nil, or a power of two long (at least minSlots)
	n     int       // entries held
	shift uint      // 64 - log2(len(slots)): a tag's home slot is tag >> shift
	// inline is how many bytes at the start of an entry hold its name: the name of an entry put
	// under a name of at most inline bytes must be its first bytes, written before it is put and
	// never changed while it is in the table (newTable's caller lays E out so).
	inline int
	long   map[*E]string // the names of the entries whose names are longer than inline
	keys   [2]uint64     // the hash's keys, random, set with the first slots
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

// newTable returns a table with room for n entries before it grows, whose entries hold a name
// of up to inline bytes as their first bytes.
func newTable[E any](n, inline int) table[E] {
	t := table[E]{inline: inline}
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
	return hashName(&t.keys, name)&^0xff | uint64(min(len(name), 0xff))
}

// named reports whether e, whose name has name's hash and length (up to 255), is named name.
func (t *table[E]) named(e *E, name string) bool {
	if len(name) <= t.inline {
		return unsafe.String((*byte)(unsafe.Pointer(e)), len(name)) == name
	}
	return t.long[e] == name
}

// find returns the entry named name, nil for none.
func (t *table[E]) find(name string) *E {
	if t.n == 0 {
		return nil
	}
	tag := t.tag(name)
	mask := uint64(len(t.slots) - 1)
	for i := tag >> (t.shift & 63); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.e == nil {
			return nil
		}
		if s.tag == tag && t.named(s.e, name) {
			return s.e
		}
	}
}

// put makes e the entry of name, which is e's name, and returns the entry it replaces (nil for
// none).
func (t *table[E]) put(name string, e *E) (old *E) {
	if (t.n+1)*8 > len(t.slots)*maxLoad {
		t.resize(max(minSlots, 2*len(t.slots)))
	}
	if len(name) > t.inline {
		if t.long == nil {
			t.long = map[*E]string{}
		}
		t.long[e] = name
	}
	tag := t.tag(name)
	mask := uint64(len(t.slots) - 1)
	for i := tag >> (t.shift & 63); ; i = (i + 1) & mask {
		s := &t.slots[i]
		switch {
		case s.e == nil:
			*s = slot[E]{tag, e}
			t.n++
			return nil
		case s.tag == tag && t.named(s.e, name):
			old, s.e = s.e, e
			if old != e {
				delete(t.long, old)
			}
			return old
		}
	}
}

// remove removes the entry of name and returns it (nil: there was none).
func (t *table[E]) remove(name string) (old *E) {
	if t.n == 0 {
		return nil
	}
	tag := t.tag(name)
	mask := uint64(len(t.slots) - 1)
	i := tag >> (t.shift & 63)
	for ; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.e == nil {
			return nil
		}
		if s.tag == tag && t.named(s.e, name) {
			old = s.e
			break
		}
	}
	t.n--
	delete(t.long, old)
	// Close the gap: a later entry of the probe run moves into it unless its home lies
	// (cyclically) after the gap, where a lookup starting there would not pass the gap.
	for j := i; ; {
		j = (j + 1) & mask
		s := t.slots[j]
		if s.e == nil {
			t.slots[i] = slot[E]{}
			return old
		}
		home := s.tag >> (t.shift & 63)
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
		t.keys = [2]uint64{rand.Uint64(), rand.Uint64()}
	}
	t.slots = make([]slot[E], size)
	t.shift = uint(64 - bits.TrailingZeros(uint(size)))
	mask := uint64(size - 1)
	for _, s := range old {
		if s.e == nil {
			continue
		}
		i := s.tag >> (t.shift & 63)
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

// clone returns a table of copyOf(e) for each entry e, each where e is: copyOf(e) must hold
// e's name as e does.
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
	if t.long != nil {
		c.long = make(map[*E]string, len(t.long))
		for i, s := range t.slots {
			if name, ok := t.long[s.e]; ok && s.e != nil {
				c.long[c.slots[i].e] = name
			}
		}
	}
	return c
}

// m5 is the last multiplier of the Go runtime's wyhash (runtime/hash64.go).
const m5 = 0x1d8e4e27c47d124f

// hashName returns s's hash under keys: wyhash's mixing, as the Go runtime hashes strings where
// it has no AES instructions (runtime.memhashFallback), here with a table's own random keys.
// (hash/maphash.String costs ≈ 40 instructions a call in its wrappers before the runtime's
// hash: a tenth of a decision's store read, bench/RESULTS.md stop 21.)
func hashName(keys *[2]uint64, s string) uint64 {
	n := len(s)
	seed := keys[0]
	var a, b uint64
	switch {
	case n == 0:
		return seed
	case n < 4:
		a = uint64(s[0]) | uint64(s[n>>1])<<8 | uint64(s[n-1])<<16
	case n < 8:
		a, b = le32(s), le32(s[n-4:])
	case n <= 16:
		a, b = le64(s), le64(s[n-8:])
	default:
		for p := s; len(p) > 16; p = p[16:] {
			seed = mix(le64(p)^keys[1], le64(p[8:])^seed)
		}
		a, b = le64(s[n-16:]), le64(s[n-8:])
	}
	return mix(m5^uint64(n), mix(a^keys[1], b^seed))
}

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// le32 is s's first 4 bytes, little-endian.
func le32(s string) uint64 {
	_ = s[3]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24
}

// le64 is s's first 8 bytes, little-endian.
func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// setEntry makes e the entry of name in tb, logged: undone by putting back the entry it
// replaced, or removing e's.
func setEntry[E any](t *txn, tb *table[E], name string, e *E) {
	old := tb.put(name, e)
	if t.loading {
		return
	}
	t.log = append(t.log, func(undo bool) {
		switch {
		case !undo:
			tb.put(name, e)
		case old != nil:
			tb.put(name, old)
		default:
			tb.remove(name)
		}
	})
}

// delEntry removes the entry of name from tb, logged: undone by putting it back.
func delEntry[E any](t *txn, tb *table[E], name string) {
	old := tb.remove(name)
	if old == nil || t.loading {
		return
	}
	t.log = append(t.log, func(undo bool) {
		if undo {
			tb.put(name, old)
		} else {
			tb.remove(name)
		}
	})
}
