package store

import (
	"strings"
	"sync"
	"sync/atomic"
)

// Stamps tell caches what changed. A stamp is a cell holding the revision of the last write that
// touched one thing a decision can depend on:
//
//	o/{org}            the org's record (existence, defaults)
//	m/{org}/{user}     the user's membership and team roles in the org
//	t/{org}/{team}     the team's record (existence, linked policy)
//	p/{org}/{project}  the project's record, grants, effective teams and settings (its policy
//	                   and its org's defaults included)
//
// Apply bumps the cells of everything it touched before it returns, under the write lock; a
// reader that captures cells inside View sees them consistent with the facts it reads. A cache
// entry that kept the cells and their values is current exactly while every cell still holds
// the value it saw, so an unrelated write never invalidates it and a related one always does.
type stamps struct{ cells sync.Map } // string → *atomic.Uint64; cells are never removed

// cell returns the cell of key, creating it (at 0) on first use.
func (s *stamps) cell(key string) *atomic.Uint64 {
	if c, ok := s.cells.Load(key); ok {
		return c.(*atomic.Uint64)
	}
	c, _ := s.cells.LoadOrStore(key, new(atomic.Uint64))
	return c.(*atomic.Uint64)
}

// bump stores rev in the cell of key. Cells mirror the stamps stored in Badger, so every key
// ever written has one.
func (s *stamps) bump(key string, rev uint64) { s.cell(key).Store(rev) }

// stampKeys lists the stamps a txn touches: those of its records and of its affected projects.
func (t *txn) stampKeys() []string {
	set := map[string]struct{}{}
	for key := range t.dirty {
		if sk := stampOf(key); sk != "" {
			set[sk] = struct{}{}
		}
	}
	for p := range t.projects {
		set["p/"+p] = struct{}{}
	}
	return sortedKeys(set)
}

// stampOf maps a record key to the stamp key it touches ("" for none).
func stampOf(record string) string {
	parts := strings.Split(strings.TrimPrefix(record, prefixRecords), "/")
	switch {
	case parts[0] == "org" && len(parts) == 2:
		return "o/" + parts[1]
	case parts[0] == "member" && len(parts) == 3:
		return "m/" + parts[1] + "/" + parts[2]
	case parts[0] == "tmember" && len(parts) == 4:
		return "m/" + parts[1] + "/" + parts[3]
	case parts[0] == "team" && len(parts) == 3:
		return "t/" + parts[1] + "/" + parts[2]
	case parts[0] == "project" && len(parts) == 3:
		return "p/" + parts[1] + "/" + parts[2]
	}
	return ""
}

// Stamp returns the cell of a stamp key (see Reader.Stamp). Stamps are stored with every write
// and loaded at Open, so a cache entry kept across a restart (authz's Badger tier) is checked
// against the same revisions.
func (s *Store) Stamp(key string) *atomic.Uint64 { return s.stamps.cell(key) }

// Stamp returns the cell of a stamp key (see the stamps type): read it inside View to get a
// value consistent with the facts of the same snapshot, keep the cell to check it later.
func (r Reader) Stamp(key string) *atomic.Uint64 { return r.stamps.cell(key) }
