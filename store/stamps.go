package store

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/teamgate/teamgate"
)

// A stamp is a cell holding the revision of the last write that touched one fact a reader can
// serve. Every Reader accessor records the stamps of what it read (see Deps); every write bumps
// the stamps of what it touched. The stamp keys, in their stored form:
//
//	O                  the set of orgs
//	o/{org}            the org's record (existence, defaults)
//	x/{org}            anything in the org: its lists and indexes (members, teams, team members,
//	                   projects, open projects, grants, team → projects, policies, connections)
//	m/{org}/{user}     the user's membership and team roles in the org
//	t/{org}/{team}     the team's record (existence, linked policy)
//	p/{org}/{project}  the project's record, grants, effective teams, settings and rules (its
//	                   policy and its org's defaults included)
//	y/{org}/{policy}   the policy's record
//	U                  the set of users
//	u/{user}           the user's record
//	E/{unix ns}        not a stamp: in an encoded Deps, the time it stops being current (an
//	                   expiring membership or grant it read ends then)
//
// Apply bumps the stamps of everything it touched before it returns, under the write lock, and
// stores them with the batch, so they survive a restart (Open loads them).
//
// Every cell — a key's own, or the absent shard standing in for a key never written — belongs
// to one epoch group (epochGroup). An org (by its name's hash, one of EpochOrgs-1) has
// EpochParts groups: part 0 holds its org-wide cells (o, m, t: what every decision in the org may
// read), parts 1 to projectParts each a share of its projects' cells (p, by the project name's
// hash), and listPart the cells no decision reads (x, y). O, U and each u/{user} lie in listPart
// of the org group of their kind and name. A change of a part-0 cell moves every part of its org
// (Epoch.move): a Deps over the org-wide cells and one project's part is thus covered by that
// part's epoch alone. A decision's Deps (Reader.Access reads o, t, p and m of the request's org)
// are therefore of its project's part, or of part 0 when it reads no project: a write to another
// project of the org (most often of another part) leaves them be, a membership, team or org write
// moves them.
type stampKey struct {
	kind byte
	a, b string
}

// stampParts returns how many name parts a key of kind has, or -1 for no such kind.
func stampParts(kind byte) int {
	switch kind {
	case 'O', 'U':
		return 0
	case 'o', 'x', 'u', 'E':
		return 1
	case 'm', 't', 'p', 'y':
		return 2
	}
	return -1
}

func (k stampKey) String() string {
	switch {
	case k.a == "":
		return string(k.kind)
	case k.b == "":
		return string(k.kind) + "/" + k.a
	}
	return string(k.kind) + "/" + k.a + "/" + k.b
}

// parseStampKey reads String's form. It allocates nothing: the names are substrings of s.
func parseStampKey(s string) (stampKey, bool) {
	if s == "" {
		return stampKey{}, false
	}
	k := stampKey{kind: s[0]}
	n := stampParts(k.kind)
	rest := s[1:]
	for i := range n {
		if len(rest) < 2 || rest[0] != '/' {
			return stampKey{}, false
		}
		name := rest[1:]
		if i+1 < n {
			j := strings.IndexByte(name, '/')
			if j < 0 {
				return stampKey{}, false
			}
			name = name[:j]
		}
		if name == "" || strings.IndexByte(name, '/') >= 0 {
			return stampKey{}, false
		}
		rest = rest[1+len(name):]
		if i == 0 {
			k.a = name
		} else {
			k.b = name
		}
	}
	if n < 0 || rest != "" {
		return stampKey{}, false
	}
	return k, true
}

// stamps holds a cell per stamp key ever written. Cells are never removed.
type stamps struct {
	// cells is written under the Store's write lock and read under its read lock; the cells
	// themselves are atomic, so a Deps holding them checks them without any lock.
	cells map[stampKey]*atomic.Uint64
	// list holds the same cells in the order they were made, appended to only, so a snapshot
	// copies a prefix of it while writes go on (snapshot.go). Written under the write lock.
	list []stampCell
	// before, while a snapshot copies the stamps, holds the value each cell written since it
	// began had then (nil otherwise). Under the Store's mutex, like cells.
	before map[*atomic.Uint64]uint64
	// absent stands in for the cells of keys never written, in shards by key hash, each shard of
	// one epoch group (absentCell): a write that creates a cell bumps its key's shard, so a fact
	// read while absent is current until a key of its shard is first written. Reading never
	// creates a cell, so requests naming nonexistent things use no memory.
	absent [absentPerOrg * (EpochOrgs - 1)]atomic.Uint64
	closed atomic.Bool // set by Close: no Deps of a closed store is current
	clock  Clock       // ends the Deps of facts that expire (Deps.until); set by Open
	// epoch moves, by group, after every change of a cell and at Close (see Epoch).
	epoch Epoch
}

// Epoch is a store's write epochs: one counter per epoch group (EpochGroups of them), each moving
// whenever a Deps watching the cells of its group may stop being current. Every change of a stamp
// cell adds one to the counters its cell moves (move: its group's, every part of its org for a
// part-0 cell) and to EpochAll's, after storing the cell (bump: local Apply, cluster replay,
// Restore, Open's load); a write adds one more to each counter it moved (and EpochAll) once its
// revision is published; Close and a load that starts over add one to every counter. A Deps
// whose cells all move group g's counter (Deps.EpochGroup: its cells lie in g, or in g's org's
// part 0; EpochAll when they span several orgs or several parts above 0) found current after a
// load of Load(g) returned E therefore stays current while Load(g) still reads E — unless it
// expires (Deps.Expires): time moves no epoch. A write moves its counters before it returns, so
// whoever loads them after a write returned reads a value above any loaded before the write stored
// its cells; and a value loaded after a write's revision was published is followed by a read of
// Revision of at least that revision. A write elsewhere — another org, or another part of the
// same org above 0 — moves other counters (and EpochAll) only: Load(g) stays. A cache validates an
// entry once per epoch of its group with Current and serves it for the rest of that epoch by
// comparing one word (authz's decision cache).
//
// Two orgs, or an org and a user, whose names hash to the same org group share its counters, and
// two projects of an org whose names hash to the same part share one: a write in one makes the
// other's Deps be checked again (Current), never served when not current.
//
// Epoch also holds the store's revision (Revision), published after the cells of its write and
// before the counters move once more, so a cache reads the revision a decision is labelled with
// beside the epochs that validate it.
//
// The counters of an org group lie side by side (EpochParts words: 128 bytes, which span two or
// three cache lines, as nothing aligns Epoch inside the Store to a line): a write in one part
// makes a reader of a neighbouring part or org group take one cache miss, never a slow hit.
type Epoch struct {
	rev    atomic.Uint64 // the store's revision, readable without the lock (Store.Revision)
	_      [56]byte
	groups [EpochGroups]atomic.Uint64
}

// Revision returns the store's revision (Store.Revision).
func (e *Epoch) Revision() uint64 { return e.rev.Load() }

// EpochGroups is the number of epoch groups: EpochOrgs org groups of EpochParts parts each
// (group = org group × EpochParts + part). EpochAll, part 0 of the last org group (which holds no
// cell), is that of a Deps whose cells span several orgs or several parts above 0 of one: it
// moves with every other.
const (
	EpochOrgs   = 256
	EpochParts  = 16
	EpochGroups = EpochOrgs * EpochParts
	EpochAll    = (EpochOrgs - 1) * EpochParts
	// projectParts is how many parts an org's projects are spread over (parts 1 to projectParts);
	// listPart, the last, holds the cells no decision reads.
	projectParts = EpochParts - 2
	listPart     = EpochParts - 1
)

// Load returns group g's epoch (g is taken modulo EpochGroups).
func (e *Epoch) Load(g int) uint64 { return e.groups[g&(EpochGroups-1)].Load() }

// move adds one to the counters a change of a cell of group g moves — g's, or every part of g's
// org when g is a part 0 — and to EpochAll's, after a change it covers.
func (e *Epoch) move(g int) {
	if g%EpochParts == 0 {
		for i := g; i < g+EpochParts; i++ {
			e.groups[i].Add(1)
		}
	} else {
		e.groups[g].Add(1)
	}
	e.groups[EpochAll].Add(1)
}

// moveAll adds one to every group.
func (e *Epoch) moveAll() {
	for i := range e.groups {
		e.groups[i].Add(1)
	}
}

// epochSet is a set of epoch groups: those a write moved.
type epochSet [EpochGroups / 64]uint64

// add adds the groups a change of a cell of group g moves (see move; EpochAll aside).
func (m *epochSet) add(g int) {
	if g%EpochParts == 0 {
		m[g/64] |= (1<<EpochParts - 1) << (g % 64)
	} else {
		m[g/64] |= 1 << (g % 64)
	}
}

// moveSet moves every group of m (EpochAll once).
func (e *Epoch) moveSet(m *epochSet) {
	for i, w := range m {
		for w != 0 {
			e.groups[64*i+bits.TrailingZeros64(w)].Add(1)
			w &= w - 1
		}
	}
	if m[EpochAll/64]&(1<<(EpochAll%64)) == 0 {
		e.groups[EpochAll].Add(1)
	}
}

// epochGroup returns the epoch group of k's cell: its org group is FNV-1a of the org's name for a
// key inside an org, of the key's kind and name for O, U and u/{user}, modulo EpochOrgs-1; its
// part 0 for o, m and t, listPart for x, y, O, U and u, and for p 1 + FNV-1a of the project's name
// modulo projectParts.
func epochGroup(k stampKey) int {
	var org uint64
	part := listPart
	switch k.kind {
	case 'o', 'm', 't':
		org, part = fnvString(fnvOffset, k.a), 0
	case 'p':
		org, part = fnvString(fnvOffset, k.a), 1+int(fnvString(fnvOffset, k.b)%projectParts)
	case 'x', 'y':
		org = fnvString(fnvOffset, k.a)
	default:
		org = fnvString(fnvByte(fnvOffset, k.kind), k.a)
	}
	return int(org%(EpochOrgs-1))*EpochParts + part
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvByte(h uint64, c byte) uint64 { return (h ^ uint64(c)) * fnvPrime }

func fnvString(h uint64, s string) uint64 {
	for i := range len(s) {
		h = fnvByte(h, s[i])
	}
	return h
}

// bump stores rev in the cell of key (the String form), creating it first when needed, and
// returns the cell's epoch group.
func (s *stamps) bump(key string, rev uint64) int {
	k, ok := parseStampKey(key)
	if !ok {
		panic("store: bad stamp key " + key) // the store's own keys only
	}
	g := epochGroup(k)
	if c, ok := s.cells[k]; ok {
		if s.before != nil {
			if _, kept := s.before[c]; !kept {
				s.before[c] = c.Load()
			}
		}
		c.Store(rev)
		s.epoch.move(g) // after the cell: see Epoch
		return g
	}
	c := new(atomic.Uint64)
	c.Store(rev)
	if s.cells == nil {
		s.cells = map[stampKey]*atomic.Uint64{}
	}
	s.cells[k] = c
	s.list = append(s.list, stampCell{k, c})
	s.absentCell(k).Add(1) // of group g
	s.epoch.move(g)
	return g
}

// stampCell is a stamp key and its cell.
type stampCell struct {
	key  stampKey
	cell *atomic.Uint64
}

// reset forgets every cell, at Open, before the store is shared (a load that starts over).
func (s *stamps) reset() {
	s.cells, s.list = nil, nil
	for i := range s.absent {
		s.absent[i].Store(0)
	}
	s.epoch.moveAll()
}

// load sets the cell of a stored stamp key at Open, before the store is shared. A key this
// version does not know is skipped: no reader records it.
func (s *stamps) load(key string, rev uint64) {
	if k, ok := parseStampKey(key); ok && k.kind != 'E' {
		s.bump(key, rev)
	}
}

// stampKeys lists the stamps a txn touches: those of its records and of its affected projects.
func (t *txn) stampKeys() []string {
	set := map[string]struct{}{}
	for key := range t.dirty {
		for _, sk := range stampsOf(key) {
			set[sk.String()] = struct{}{}
		}
	}
	for p := range t.projects {
		org, project, _ := strings.Cut(p, "/")
		set[stampKey{'p', org, project}.String()] = struct{}{}
		set[stampKey{'x', org, ""}.String()] = struct{}{}
	}
	return sortedKeys(set)
}

// stampsOf maps a record key to the stamps a write of it bumps.
func stampsOf(record string) []stampKey {
	parts := strings.Split(strings.TrimPrefix(record, prefixRecords), "/")
	switch {
	case parts[0] == "org" && len(parts) == 2:
		return []stampKey{{'O', "", ""}, {'o', parts[1], ""}, {'x', parts[1], ""}}
	case parts[0] == "member" && len(parts) == 3:
		return []stampKey{{'m', parts[1], parts[2]}, {'x', parts[1], ""}}
	case parts[0] == "tmember" && len(parts) == 4:
		return []stampKey{{'m', parts[1], parts[3]}, {'x', parts[1], ""}}
	case parts[0] == "team" && len(parts) == 3:
		return []stampKey{{'t', parts[1], parts[2]}, {'x', parts[1], ""}}
	case parts[0] == "project" && len(parts) == 3:
		return []stampKey{{'p', parts[1], parts[2]}, {'x', parts[1], ""}}
	case parts[0] == "policy" && len(parts) == 3:
		return []stampKey{{'y', parts[1], parts[2]}, {'x', parts[1], ""}}
	case parts[0] == "user" && len(parts) == 2:
		return []stampKey{{'U', "", ""}, {'u', parts[1], ""}}
	}
	return nil
}

// Deps is what a tracking Reader served: the stamp of every fact it read, with the value the
// stamp held. It is current exactly while none of those facts has been written since (and the
// store is open), so a value derived from the facts — a decision, effective settings — may be
// served from a cache while its Deps are current, and an unrelated write keeps them current.
//
// The zero Deps is never current. A Deps is filled by one tracking Reader (Reader.Track) and must
// not be used while that Reader still reads; once filled, Current is safe for concurrent use and
// takes no lock. MarshalBinary encodes it; Store.DecodeDeps reads it back, also after a restart.
//
// Current reads the start of a Deps (src, n, until and the inline watches) and the cells they
// name; only a Deps of more than inlineWatches stamps reads more. A cache that checks Current once
// per Epoch reads none of it on most hits.
type Deps struct {
	src   *stamps
	n     int                  // stamps covered
	until int64                // unix ns at which a fact read expires (expiry.go); 0: none
	group uint16               // 0: no stamp yet; else 1 + EpochGroup (join)
	first [inlineWatches]watch // the first n (at most inlineWatches), checked by Current
	more  []watch              // the rest (read only when n > inlineWatches)
	keys  []depKey             // same order: what MarshalBinary writes
	index map[stampKey]int     // for large sets only (see add)
	enc   string               // when decoded: the encoding read, instead of keys
}

// inlineWatches is how many stamps a Deps holds without a slice: a project decision reads a few
// (two or three on the conformance directory), so checking them touches no memory but the cells.
const inlineWatches = 5

type watch struct {
	cell *atomic.Uint64
	seen uint64
}

type depKey struct {
	key    stampKey
	absent bool // never written when read: stored as 0
}

// Current reports whether no fact the Deps cover has been written since it was read. It does not
// allocate.
func (d *Deps) Current() bool {
	if d.src == nil || d.src.closed.Load() {
		return false
	}
	if d.until != 0 && clockNanos(d.src.clock.Now()) >= d.until {
		return false // an entry it read has expired, written yet or not
	}
	for i := range min(d.n, inlineWatches) {
		if d.first[i].cell.Load() != d.first[i].seen {
			return false
		}
	}
	if d.n <= inlineWatches {
		return true
	}
	for i := range d.more {
		if d.more[i].cell.Load() != d.more[i].seen {
			return false
		}
	}
	return true
}

// Expires reports whether the Deps stop being current at a time (a fact read expires), whatever
// is written: then Current reads the clock, and no Epoch covers it.
func (d *Deps) Expires() bool { return d.until != 0 }

// Epoch returns the epochs of the Deps' store (nil for the zero Deps): while Load(EpochGroup())
// reads the value it read before Current last returned true, Current still holds, unless the
// Deps Expires.
func (d *Deps) Epoch() *Epoch {
	if d.src == nil {
		return nil
	}
	return &d.src.epoch
}

// EpochGroup is the epoch group whose counter every change of a stamp the Deps cover moves (see
// Epoch): for a decision's facts, its org's part of the project it read (part 0 when it read
// none); EpochAll when they lie in several orgs, or in several parts above 0 of one, or there are
// none.
func (d *Deps) EpochGroup() int {
	if d.group == 0 {
		return EpochAll
	}
	return int(d.group) - 1
}

// join records that the Deps watch a cell of group g: a part 0 joins any part of its org, two
// parts above 0 or two orgs make EpochAll.
func (d *Deps) join(g int) {
	cur := int(d.group) - 1
	switch {
	case d.group == 0 || cur%EpochParts == 0 && cur/EpochParts == g/EpochParts:
		d.group = uint16(g) + 1
	case cur == g || g%EpochParts == 0 && cur/EpochParts == g/EpochParts:
	default:
		d.group = EpochAll + 1
	}
}

// Len is the number of stamps the Deps cover.
func (d *Deps) Len() int { return d.n }

// at returns the i-th stamp's watch.
func (d *Deps) at(i int) *watch {
	if i < inlineWatches {
		return &d.first[i]
	}
	return &d.more[i-inlineWatches]
}

// push appends a watch.
func (d *Deps) push(w watch) {
	if d.n < inlineWatches {
		d.first[d.n] = w
	} else {
		d.more = append(d.more, w)
	}
	d.n++
}

// indexAbove is the size from which add keeps an index instead of scanning.
const indexAbove = 16

// add records the stamp of k as the reader sees it. The caller holds the read lock.
func (d *Deps) add(k stampKey) {
	if d.index != nil {
		if _, ok := d.index[k]; ok {
			return
		}
	} else {
		for i := range d.keys {
			if d.keys[i].key == k {
				return
			}
		}
	}
	w, absent := d.src.watch(k)
	d.join(epochGroup(k))
	if d.keys == nil {
		d.keys = make([]depKey, 0, inlineWatches)
	}
	d.push(w)
	d.keys = append(d.keys, depKey{key: k, absent: absent})
	switch {
	case d.index != nil:
		d.index[k] = len(d.keys) - 1
	case len(d.keys) > indexAbove:
		d.index = make(map[stampKey]int, 2*len(d.keys))
		for i, dk := range d.keys {
			d.index[dk.key] = i
		}
	}
}

// watch returns the cell standing for k and the value it holds, and whether k was never
// written. The caller holds the read lock.
func (s *stamps) watch(k stampKey) (watch, bool) {
	if c, ok := s.cells[k]; ok {
		return watch{cell: c, seen: c.Load()}, false
	}
	a := s.absentCell(k)
	return watch{cell: a, seen: a.Load()}, true
}

// How many cells stand in for keys never written: absentPerOrg for each org group, of which
// absentOrgWide are its part 0's and absentPerPart each other part's. A new key of a group leaves
// current all but one of its group's shards' Deps on absent facts, and those of every other
// group.
const (
	absentOrgWide = 32
	absentPerPart = 2
	absentPerOrg  = absentOrgWide + absentPerPart*(EpochParts-1)
)

// absentCell returns the shard standing in for k while k has no cell: one of its epoch group's
// (FNV-1a of the key), so that creating a cell moves the counters of every Deps that watch its
// shard (their group is k's, or k's org's part when k's is part 0).
func (s *stamps) absentCell(k stampKey) *atomic.Uint64 {
	h := fnvString(fnvByte(fnvString(fnvByte(fnvOffset, k.kind), k.a), '/'), k.b)
	g := epochGroup(k)
	i := g / EpochParts * absentPerOrg
	if part := g % EpochParts; part == 0 {
		i += int(h % absentOrgWide)
	} else {
		i += absentOrgWide + (part-1)*absentPerPart + int(h%absentPerPart)
	}
	return &s.absent[i]
}

// maxEncodedDeps bounds how many stamps DecodeDeps accepts.
const maxEncodedDeps = 1 << 16

// MarshalBinary encodes the stamps and the values seen (a count, then each stamp key and value,
// as uvarint-prefixed strings and uvarints).
func (d *Deps) MarshalBinary() ([]byte, error) { return d.AppendBinary(nil) }

// AppendBinary appends MarshalBinary's encoding to b.
func (d *Deps) AppendBinary(b []byte) ([]byte, error) {
	if d.enc != "" {
		return append(b, d.enc...), nil
	}
	n := len(d.keys)
	if d.until != 0 {
		n++
	}
	b = binary.AppendUvarint(b, uint64(n))
	if d.until != 0 { // a pseudo stamp "E/{unix ns}": when the Deps stop being current
		key := stampKey{kind: 'E', a: strconv.FormatInt(d.until, 10)}.String()
		b = binary.AppendUvarint(b, uint64(len(key)))
		b = append(b, key...)
		b = binary.AppendUvarint(b, 0)
	}
	for i, dk := range d.keys {
		key := dk.key.String()
		b = binary.AppendUvarint(b, uint64(len(key)))
		b = append(b, key...)
		seen := d.at(i).seen
		if dk.absent {
			seen = 0
		}
		b = binary.AppendUvarint(b, seen)
	}
	return b, nil
}

// DecodeDeps reads what Deps.MarshalBinary wrote (possibly by this store before a restart) and
// binds it to this store's stamps: the result is current exactly while every stamp still holds
// the value recorded. It returns the bytes after the encoding. Malformed input is an error
// matching teamgate.ErrInvalid; a closed store gives teamgate.ErrClosed.
func (s *Store) DecodeDeps(data []byte) (Deps, []byte, error) {
	bad := func(why string) (Deps, []byte, error) {
		return Deps{}, nil, teamgate.Invalid("dependency set", fmt.Sprintf("%d bytes", len(data)), why)
	}
	n, w := binary.Uvarint(data)
	if w <= 0 || n > maxEncodedDeps || n > uint64(len(data)) {
		return bad("bad count")
	}
	str := string(data) // one copy: the keys are substrings of it
	off := w
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return Deps{}, nil, teamgate.ErrClosed
	}
	d := Deps{src: &s.stamps}
	for range n {
		l, w := binary.Uvarint(data[off:])
		if w <= 0 || l > uint64(len(data)-off-w) {
			return bad("bad stamp key")
		}
		key := str[off+w : off+w+int(l)]
		k, ok := parseStampKey(key)
		if !ok {
			return bad(fmt.Sprintf("bad stamp key %q", truncate(key)))
		}
		off += w + int(l)
		seen, w2 := binary.Uvarint(data[off:])
		if w2 <= 0 {
			return bad("bad stamp value")
		}
		off += w2
		if k.kind == 'E' {
			until, err := strconv.ParseInt(k.a, 10, 64)
			if err != nil || until <= 0 {
				return bad(fmt.Sprintf("bad expiry %q", truncate(key)))
			}
			d.until = until
			continue
		}
		cur, absent := s.stamps.watch(k)
		switch {
		case absent && seen != 0: // written when recorded, never written now: never current
			cur.seen = ^cur.seen
		case !absent:
			cur.seen = seen
		}
		d.push(cur)
		d.join(epochGroup(k))
	}
	d.enc = str[:off]
	return d, data[off:], nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
