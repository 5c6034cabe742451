package store

import (
	"fmt"
	"iter"
	"slices"
	"sort"
)

// MemberList is an org's member names in order, as of the snapshot that returned it
// (Reader.MemberList). It is immutable: a write makes a new list sharing most of the old one,
// so a reader may keep it after View returns and page through it. The zero value is empty.
type MemberList struct{ l *nameList }

// Len is how many names the list holds.
func (m MemberList) Len() int {
	if m.l == nil {
		return 0
	}
	return m.l.n
}

// After yields the names greater than cursor, in order. Finding the first costs a binary
// search; each further name costs O(1).
func (m MemberList) After(cursor string) iter.Seq[string] {
	return func(yield func(string) bool) {
		if m.l == nil {
			return
		}
		b, i, found := m.l.find(cursor)
		if found {
			i++
		}
		for ; b < len(m.l.blocks); b, i = b+1, 0 {
			for _, name := range m.l.blocks[b][i:] {
				if !yield(name) {
					return
				}
			}
		}
	}
}

// nameBlock is the size a block of a nameList is split to; a block grows to twice that before
// it is split again.
const nameBlock = 256

// nameList is an immutable sorted set of names kept in blocks, so that adding or removing one
// copies one block and the block index (about n/nameBlock pointers), not the whole list: a
// membership write on an org of 200,000 stays in the microseconds. A nil *nameList is empty.
type nameList struct {
	blocks [][]string // each sorted and non-empty; every name of a block is below the next block's
	n      int
}

// newNameList returns the list of sorted (strictly increasing) names; it keeps sorted.
func newNameList(sorted []string) *nameList {
	if len(sorted) == 0 {
		return nil
	}
	l := &nameList{n: len(sorted)}
	for len(sorted) > 0 {
		k := min(nameBlock, len(sorted))
		l.blocks = append(l.blocks, sorted[:k:k])
		sorted = sorted[k:]
	}
	return l
}

// find returns where name is or would be inserted: block b (len(blocks) past the last name)
// and index i in it.
func (l *nameList) find(name string) (b, i int, found bool) {
	b = sort.Search(len(l.blocks), func(j int) bool {
		blk := l.blocks[j]
		return blk[len(blk)-1] >= name
	})
	if b == len(l.blocks) {
		return b, 0, false
	}
	i, found = slices.BinarySearch(l.blocks[b], name)
	return b, i, found
}

// with returns the list with name added (l itself when it holds name already).
func (l *nameList) with(name string) *nameList {
	if l == nil {
		return newNameList([]string{name})
	}
	b, i, found := l.find(name)
	if found {
		return l
	}
	if b == len(l.blocks) { // past the last name: it goes at the end of the last block
		b--
		i = len(l.blocks[b])
	}
	old := l.blocks[b]
	blk := make([]string, 0, len(old)+1)
	blk = append(append(append(blk, old[:i]...), name), old[i:]...)
	var blocks [][]string
	if len(blk) > 2*nameBlock {
		blocks = make([][]string, 0, len(l.blocks)+1)
		blocks = append(blocks, l.blocks[:b]...)
		half := len(blk) / 2
		blocks = append(blocks, blk[:half:half], blk[half:])
		blocks = append(blocks, l.blocks[b+1:]...)
	} else {
		blocks = slices.Clone(l.blocks)
		blocks[b] = blk
	}
	return &nameList{blocks: blocks, n: l.n + 1}
}

// without returns the list with name removed (l itself when it does not hold name).
func (l *nameList) without(name string) *nameList {
	if l == nil {
		return nil
	}
	b, i, found := l.find(name)
	if !found {
		return l
	}
	if l.n == 1 {
		return nil
	}
	old := l.blocks[b]
	blk := make([]string, 0, len(old)-1)
	blk = append(append(blk, old[:i]...), old[i+1:]...)
	blocks := slices.Clone(l.blocks)
	switch {
	case len(blk) == 0:
		blocks = slices.Delete(blocks, b, b+1)
	case len(blk) < nameBlock/4 && b+1 < len(blocks) && len(blk)+len(blocks[b+1]) <= 2*nameBlock:
		// A small block joins the next, so the blocks stay few after many removals.
		blocks[b] = append(blk, blocks[b+1]...)
		blocks = slices.Delete(blocks, b+1, b+2)
	default:
		blocks[b] = blk
	}
	return &nameList{blocks: blocks, n: l.n - 1}
}

// all returns every name, in order.
func (l *nameList) all() []string {
	if l == nil {
		return nil
	}
	out := make([]string, 0, l.n)
	for _, blk := range l.blocks {
		out = append(out, blk...)
	}
	return out
}

// check verifies the list's shape: blocks non-empty and at most twice nameBlock, names strictly
// increasing across them, n their count.
func (l *nameList) check() error {
	if l == nil {
		return nil
	}
	n, last := 0, ""
	for b, blk := range l.blocks {
		if len(blk) == 0 || len(blk) > 2*nameBlock {
			return fmt.Errorf("block %d holds %d names", b, len(blk))
		}
		for _, name := range blk {
			if n > 0 && name <= last {
				return fmt.Errorf("name %q follows %q", name, last)
			}
			n, last = n+1, name
		}
	}
	if n != l.n || n == 0 {
		return fmt.Errorf("holds %d names, counts %d", n, l.n)
	}
	return nil
}
