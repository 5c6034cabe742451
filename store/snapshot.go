package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/teamgate/teamgate/scope"
)

// The membership snapshot: the org member tables, the team memberships and the stamps, the bulk
// of a large directory, written in the background while the store runs and at Close, and read
// by Open instead of the member, team membership and stamp records, with the records changed
// after it. The package doc ("Membership snapshot") describes when it is used; this file is its
// encoding, its capture and its delta.
const (
	prefixSnapshot     = "v1/snapshot/"
	keySnapshotHead    = prefixSnapshot + "head"
	prefixSnapshotData = prefixSnapshot + "data/" // + {generation:020d}/{seq:010d}
	snapshotMagic      = "teamgate membership snapshot"
	snapshotVersion    = 2
	snapshotChunkBytes = 4 << 20 // one Badger value each (values this size go to the value log)

	stepSnapshot = "snapshot" // after each commit of a snapshot write (testHooks.at)

	// Defaults of Options.SnapshotRevisions and Options.SnapshotInterval.
	defaultSnapshotRevisions = 10_000
	defaultSnapshotInterval  = 10 * time.Minute
)

var snapshotCRC = crc32.MakeTable(crc32.Castagnoli)

// snapshotHead is the head record: what the data chunks hold and which records they match.
type snapshotHead struct {
	version uint32
	rev     uint64 // the revision whose records the snapshot equals
	// ts is Badger's read timestamp when the snapshot was taken: every write of a revision after
	// rev has a later version. It also names the chunks (their generation).
	ts     uint64
	chunks uint32
	length uint64 // bytes of data, all chunks together
	crc    uint32 // CRC-32C of the data
}

func (h snapshotHead) encode() []byte {
	b := binary.AppendUvarint(nil, uint64(len(snapshotMagic)))
	b = append(b, snapshotMagic...)
	b = binary.BigEndian.AppendUint32(b, h.version)
	b = binary.BigEndian.AppendUint64(b, h.rev)
	b = binary.BigEndian.AppendUint64(b, h.ts)
	b = binary.BigEndian.AppendUint32(b, h.chunks)
	b = binary.BigEndian.AppendUint64(b, h.length)
	return binary.BigEndian.AppendUint32(b, h.crc)
}

func decodeSnapshotHead(b []byte) (snapshotHead, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n != uint64(len(snapshotMagic)) || len(b) < w+int(n) || string(b[w:w+int(n)]) != snapshotMagic {
		return snapshotHead{}, errors.New("not a membership snapshot")
	}
	b = b[w+int(n):]
	if len(b) < 4 {
		return snapshotHead{}, errors.New("truncated head")
	}
	h := snapshotHead{version: binary.BigEndian.Uint32(b)}
	if h.version != snapshotVersion {
		return snapshotHead{}, fmt.Errorf("format version %d, this store reads %d", h.version, snapshotVersion)
	}
	if len(b) != 4+8+8+4+8+4 {
		return snapshotHead{}, errors.New("malformed head")
	}
	h.rev = binary.BigEndian.Uint64(b[4:])
	h.ts = binary.BigEndian.Uint64(b[12:])
	h.chunks = binary.BigEndian.Uint32(b[20:])
	h.length = binary.BigEndian.Uint64(b[24:])
	h.crc = binary.BigEndian.Uint32(b[32:])
	return h, nil
}

func snapshotChunkKey(gen uint64, seq int) string {
	return fmt.Sprintf("%s%020d/%010d", prefixSnapshotData, gen, seq)
}

// The data, in order (uvarint counts and lengths; str is a uvarint length and the bytes):
//
//	the org roles and the team roles, each a count and its names (role codes index them)
//	the number of orgs, then per org:
//	  str name
//	  uvarint members n; uvarint bytes of all names; the names, concatenated; n uvarint name
//	  lengths; n org role codes (a member's id is its place here)
//	  uvarint teams, then per team: str name; uvarint k; k member ids (uint32, little endian);
//	  k team role codes; uvarint e, then e times: uvarint place in the team's list, varint
//	  expires_at (unix ns) of the memberships that expire
//	the stamps (stamps.go): uvarint count n; uvarint bytes of all keys; the keys (String form),
//	concatenated; n uvarint key lengths; n uvarint revisions

// memberSnapshot is a decoded snapshot: per org, the member table and each team's members; and
// the stamps.
type memberSnapshot struct {
	orgs      map[string]*orgSnapshot
	stampKeys []string // substrings of one string
	stampRevs []uint64
}

type orgSnapshot struct {
	names []string   // id → member name (substrings of one string)
	roles []roleCode // id → org role
	teams map[string]teamSnapshot
}

type teamSnapshot struct {
	ids     []byte // k member ids, uint32 little endian
	roles   []byte // k team role codes
	expires map[uint32]int64
}

// snapCapture is what a snapshot is written from: a copy of the state's member tables at one
// revision, taken while nothing writes (capture), and serialized afterwards while writes go on.
type snapCapture struct {
	rev    uint64
	ts     uint64 // Badger's read timestamp: every write after rev has a later version
	orgs   []orgCapture
	stamps []capturedStamp
}

type orgCapture struct {
	name      string
	names     []string     // id → member ("" for a free id)
	roles     []roleCode   // id → org role (0 for a free id)
	teams     [][]teamRole // id → team memberships: the lists are never changed in place
	teamNames []string     // team id → name ("" for a free id)
	expiry    map[[2]uint32]int64
}

type capturedStamp struct {
	key stampKey
	rev uint64
}

// A snapshot is copied out of the live state while writes go on, so that no writer waits for
// more than one chunk of the copy. beginCapture, run while no write is in flight (at Close, or
// leading the commit pipeline), notes the revision, Badger's read timestamp, the orgs, their
// teams' names and how many member ids and stamp cells there are, and registers the capture in
// the state: O(orgs + teams), no member or stamp is copied. copyCapture then copies the member
// tables and the stamps a chunk at a time, each chunk under the read lock (readers go on;
// writers wait for that chunk only). A write that changes a member entry the copy has not
// reached yet keeps its value first (txn.keep, liveCapture.keep), and a write that bumps a
// stamp keeps the value it had (stamps.before), so the copy reads everything as it was at the
// capture's revision. Member lists are never changed in place (setTeams replaces them), so the
// kept value is the slice header; names and roles are values.
const captureChunk = 1 << 12 // member ids or stamp cells copied per hold of the read lock

// liveCapture is a snapshot being copied (state.snap). Writers touch it under the write lock
// (keep), the copier under the read lock, so each sees the other's work whole.
type liveCapture struct {
	rev, ts uint64
	orgs    []*orgLive            // the orgs at rev, by name
	byOrg   map[*orgData]*orgLive // the same, by their state
	stamps  []stampCell           // the stamp cells at rev: a prefix of stamps.list
}

// orgLive is one org of a liveCapture: how far the copy went and what writes kept for it.
type orgLive struct {
	o    *orgData
	n    int                 // member ids at rev
	done int                 // ids below it are copied
	kept map[uint32]memberAt // ids at or above done changed since rev: their entry at rev
	out  orgCapture
}

// memberAt is a member id's entry at the capture's revision.
type memberAt struct {
	name  string
	role  roleCode
	teams []teamRole
	exp   []int64 // the expires_at of each of teams (0: none); nil when none expires
}

// at returns member id's entry in o now.
func at(o *orgData, id uint32) memberAt {
	p := &o.members
	m := memberAt{name: p.names[id], role: p.byID[id].role, teams: p.byID[id].teams}
	if len(o.memberExpiry) > 0 {
		for i, tr := range m.teams {
			if e, ok := o.memberExpiry[[2]uint32{tr.team, id}]; ok {
				if m.exp == nil {
					m.exp = make([]int64, len(m.teams))
				}
				m.exp[i] = e
			}
		}
	}
	return m
}

// keep saves member id's entry in o as it is, before a write changes it, when the copy has not
// reached it and it existed at the capture's revision. Under the write lock.
func (c *liveCapture) keep(o *orgData, id uint32) {
	ol := c.byOrg[o]
	if ol == nil || int(id) >= ol.n || int(id) < ol.done {
		return
	}
	if _, ok := ol.kept[id]; !ok {
		ol.kept[id] = at(o, id)
	}
}

// beginCapture starts copying the snapshot of the current state. It runs while no write is in
// flight, holding the read lock against Replica.ValidateEach (which validates outside the
// pipeline), and with capMu held: no other capture is live.
func (s *Store) beginCapture() *liveCapture {
	s.mu.RLock()
	defer s.mu.RUnlock()
	txn := s.db.NewTransaction(false)
	ts := txn.ReadTs() // every commit so far is at or below it
	txn.Discard()
	st := s.st
	n := len(s.stamps.list)
	c := &liveCapture{rev: st.rev, ts: ts, orgs: make([]*orgLive, 0, len(st.orgs)),
		byOrg: make(map[*orgData]*orgLive, len(st.orgs)), stamps: s.stamps.list[:n:n]}
	for _, name := range sortedKeys(st.orgs) {
		o := st.orgs[name]
		ol := &orgLive{o: o, n: len(o.members.names), kept: map[uint32]memberAt{},
			out: orgCapture{name: name, teamNames: make([]string, len(o.teamByID))}}
		for id, td := range o.teamByID {
			if td != nil {
				ol.out.teamNames[id] = td.team.Name
			}
		}
		c.orgs = append(c.orgs, ol)
		c.byOrg[o] = ol
	}
	// The read lock excludes every writer: registering under it is seen by the next one.
	st.snap = c
	s.stamps.before = map[*atomic.Uint64]uint64{}
	return c
}

// copyCapture copies the snapshot begun by beginCapture, a chunk at a time, and unregisters it.
// It returns the copy and the longest the read lock was held for one step (what a writer may
// have waited), or errSnapshotStopped when stop closed meanwhile (nil: never).
func (s *Store) copyCapture(c *liveCapture, stop <-chan struct{}) (*snapCapture, time.Duration, error) {
	var longest time.Duration
	chunk := captureChunk
	if s.capChunk > 0 {
		chunk = s.capChunk
	}
	locked := func(f func()) {
		if s.capBetween != nil {
			s.capBetween()
		}
		s.mu.RLock()
		t0 := time.Now()
		f()
		longest = max(longest, time.Since(t0))
		s.mu.RUnlock()
	}
	defer func() {
		s.mu.Lock()
		if s.st.snap == c {
			s.st.snap, s.stamps.before = nil, nil
		}
		s.mu.Unlock()
	}()
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	out := &snapCapture{rev: c.rev, ts: c.ts, orgs: make([]orgCapture, len(c.orgs)), stamps: make([]capturedStamp, len(c.stamps))}
	for i, ol := range c.orgs {
		oc := &ol.out
		oc.names, oc.roles, oc.teams = make([]string, ol.n), make([]roleCode, ol.n), make([][]teamRole, ol.n)
		for ol.done < ol.n {
			if stopped() {
				return nil, longest, errSnapshotStopped
			}
			locked(func() {
				o, from, to := ol.o, ol.done, min(ol.done+chunk, ol.n)
				p := &o.members
				copy(oc.names[from:to], p.names[from:to])
				for id := from; id < to; id++ {
					oc.roles[id], oc.teams[id] = p.byID[id].role, p.byID[id].teams
				}
				if len(o.memberExpiry) > 0 {
					for id := from; id < to; id++ {
						if _, ok := ol.kept[uint32(id)]; !ok {
							oc.addExpiries(uint32(id), at(o, uint32(id)))
						}
					}
				}
				restore := func(id uint32, m memberAt) {
					oc.names[id], oc.roles[id], oc.teams[id] = m.name, m.role, m.teams
					oc.addExpiries(id, m)
				}
				if len(ol.kept) <= to-from { // a step costs O(chunk) however much was kept
					for id, m := range ol.kept {
						if int(id) >= from && int(id) < to {
							restore(id, m)
						}
					}
				} else {
					for id := from; id < to; id++ {
						if m, ok := ol.kept[uint32(id)]; ok {
							restore(uint32(id), m)
						}
					}
				}
				ol.done = to
			})
		}
		out.orgs[i] = *oc
	}
	for from := 0; from < len(c.stamps); from += chunk {
		if stopped() {
			return nil, longest, errSnapshotStopped
		}
		locked(func() {
			before := s.stamps.before
			for i, sc := range c.stamps[from:min(from+chunk, len(c.stamps))] {
				rev, ok := before[sc.cell]
				if !ok {
					rev = sc.cell.Load()
				}
				out.stamps[from+i] = capturedStamp{sc.key, rev}
			}
		})
	}
	return out, longest, nil
}

// addExpiries records the expiring team memberships of member id, given its entry.
func (oc *orgCapture) addExpiries(id uint32, m memberAt) {
	for i, e := range m.exp {
		if e != 0 {
			if oc.expiry == nil {
				oc.expiry = map[[2]uint32]int64{}
			}
			oc.expiry[[2]uint32{m.teams[i].team, id}] = e
		}
	}
}

// capture copies the snapshot of the current state while nothing writes (Close, tests).
func (s *Store) capture() *snapCapture {
	s.capMu.Lock()
	defer s.capMu.Unlock()
	c, _, _ := s.copyCapture(s.beginCapture(), nil)
	return c
}

// errSnapshotStopped: Close stopped a background snapshot write (Close writes its own).
var errSnapshotStopped = errors.New("store closing")

// writeSnapshot writes the snapshot c in a fresh set of Badger transactions: the data chunks
// first, under their own generation (c.ts), then the head, then it deletes the chunks of every
// other generation. A crash at any point leaves the old head with its chunks whole, or the new
// one with its chunks whole. A close of stop (nil: never) ends it before the head is written.
// A capture no newer than the last snapshot written is not written.
func (s *Store) writeSnapshot(c *snapCapture, stop <-chan struct{}) error {
	// One at a time, each newer than the last: each removes every other generation's chunks.
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	if c.rev <= s.snapRev.Load() {
		return nil
	}
	h := snapshotHead{version: snapshotVersion, rev: c.rev, ts: c.ts}
	step := stepSnapshot
	if stop != nil && !s.bgSteps { // in the background: the tests' hooks expect one goroutine
		step = ""
	}
	size := snapshotChunkBytes
	if s.snapChunk > 0 {
		size = s.snapChunk
	}
	var buf []byte
	flush := func() error {
		select {
		case <-stop:
			return errSnapshotStopped
		default:
		}
		h.crc = crc32.Update(h.crc, snapshotCRC, buf)
		h.length += uint64(len(buf))
		err := s.writeChunked([]op{{snapshotChunkKey(h.ts, int(h.chunks)), buf}}, step)
		h.chunks++
		buf = make([]byte, 0, size+64<<10)
		return err
	}
	grow := func() error {
		if len(buf) >= size {
			return flush()
		}
		return nil
	}
	str := func(v string) {
		buf = binary.AppendUvarint(buf, uint64(len(v)))
		buf = append(buf, v...)
	}
	// Names run long (a million of them): appended piecewise, so a chunk never grows far past
	// its size.
	long := func(p []byte) error {
		for len(p) > 0 {
			if err := grow(); err != nil {
				return err
			}
			n := min(len(p), size-len(buf))
			buf = append(buf, p[:n]...)
			p = p[n:]
		}
		return nil
	}
	buf = make([]byte, 0, size+64<<10)
	for _, roles := range [][]string{OrgRoles(), TeamRoles()} {
		buf = binary.AppendUvarint(buf, uint64(len(roles)))
		for _, r := range roles {
			str(r)
		}
	}
	buf = binary.AppendUvarint(buf, uint64(len(c.orgs)))
	for _, o := range c.orgs {
		str(o.name)
		// Ids are compacted, in the order of the members' names (free ids are left out): Open
		// then finds the names already sorted when it builds the member list.
		order := make([]uint32, 0, len(o.names))
		nameBytes := 0
		for id, r := range o.roles {
			if r != 0 {
				order = append(order, uint32(id))
				nameBytes += len(o.names[id])
			}
		}
		slices.SortFunc(order, func(a, b uint32) int { return strings.Compare(o.names[a], o.names[b]) })
		ids := make([]uint32, len(o.names))
		for n, id := range order {
			ids[id] = uint32(n)
		}
		buf = binary.AppendUvarint(buf, uint64(len(order)))
		buf = binary.AppendUvarint(buf, uint64(nameBytes))
		for _, id := range order {
			if err := long([]byte(o.names[id])); err != nil {
				return err
			}
		}
		for _, id := range order {
			buf = binary.AppendUvarint(buf, uint64(len(o.names[id])))
			if err := grow(); err != nil {
				return err
			}
		}
		for _, id := range order {
			buf = append(buf, byte(o.roles[id]))
			if err := grow(); err != nil {
				return err
			}
		}
		// Each team's members, gathered from the members' lists: a count per team, then one
		// array holding every team's (member id, role) pairs.
		off := make([]int, len(o.teamNames)+1)
		for id, list := range o.teams {
			if o.roles[id] != 0 {
				for _, tr := range list {
					off[tr.team+1]++
				}
			}
		}
		for i := range o.teamNames {
			off[i+1] += off[i]
		}
		type entry struct {
			member uint32 // the member's compacted id
			role   roleCode
			exp    int64
		}
		all := make([]entry, off[len(o.teamNames)])
		next := slices.Clone(off)
		for id, list := range o.teams {
			if o.roles[id] != 0 {
				for _, tr := range list {
					all[next[tr.team]] = entry{ids[id], tr.role, o.expiry[[2]uint32{tr.team, uint32(id)}]}
					next[tr.team]++
				}
			}
		}
		teams := make([]int, 0, len(o.teamNames))
		for id, tn := range o.teamNames {
			if tn != "" {
				teams = append(teams, id)
			}
		}
		slices.SortFunc(teams, func(a, b int) int { return strings.Compare(o.teamNames[a], o.teamNames[b]) })
		buf = binary.AppendUvarint(buf, uint64(len(teams)))
		for _, tid := range teams {
			members := all[off[tid]:off[tid+1]]
			str(o.teamNames[tid])
			buf = binary.AppendUvarint(buf, uint64(len(members)))
			roles := make([]byte, 0, len(members))
			expiring := 0
			for _, e := range members {
				buf = binary.LittleEndian.AppendUint32(buf, e.member)
				roles = append(roles, byte(e.role))
				if e.exp != 0 {
					expiring++
				}
				if err := grow(); err != nil {
					return err
				}
			}
			if err := long(roles); err != nil {
				return err
			}
			buf = binary.AppendUvarint(buf, uint64(expiring))
			for i, e := range members {
				if e.exp != 0 {
					buf = binary.AppendUvarint(buf, uint64(i))
					buf = binary.AppendVarint(buf, e.exp)
					if err := grow(); err != nil {
						return err
					}
				}
			}
		}
	}
	// The stamps: keys concatenated, then their lengths, then their revisions.
	keys := make([]string, len(c.stamps))
	keyBytes := 0 // (not size: that is the chunks' size, which long and grow read)
	for i, st := range c.stamps {
		keys[i] = st.key.String()
		keyBytes += len(keys[i])
	}
	buf = binary.AppendUvarint(buf, uint64(len(keys)))
	buf = binary.AppendUvarint(buf, uint64(keyBytes))
	for _, k := range keys {
		if err := long([]byte(k)); err != nil {
			return err
		}
	}
	for _, k := range keys {
		buf = binary.AppendUvarint(buf, uint64(len(k)))
		if err := grow(); err != nil {
			return err
		}
	}
	for _, st := range c.stamps {
		buf = binary.AppendUvarint(buf, st.rev)
		if err := grow(); err != nil {
			return err
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if err := s.writeChunked([]op{{keySnapshotHead, h.encode()}}, step); err != nil {
		return err
	}
	s.snapRev.Store(c.rev)
	// The chunks of every other generation: older snapshots', and any a crash or a Close
	// left half written.
	var stale []op
	own := fmt.Sprintf("%s%020d/", prefixSnapshotData, h.ts)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixSnapshotData)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if k := string(it.Item().Key()); !strings.HasPrefix(k, own) {
				stale = append(stale, op{key: k})
			}
		}
		return nil
	})
	if err == nil {
		err = s.writeChunked(stale, step)
	}
	return err
}

// errSnapshotStale: the snapshot cannot be brought up to the records (not an error in it).
var errSnapshotStale = errors.New("stale")

// readSnapshot returns the snapshot Open may use instead of the member, team membership and
// stamp records at revision rev, with the records changed after it, or nil and why not (nil,
// nil, nil when there is none). The snapshot must not be ahead of the records, its format must
// be this version's and its data whole (length and checksum); readDelta says whether what
// changed after it is known.
func (s *Store) readSnapshot(txn *badger.Txn, rev uint64) (*memberSnapshot, *snapDelta, error) {
	item, err := txn.Get([]byte(keySnapshotHead))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil, nil, nil
	case err != nil:
		return nil, nil, err
	}
	var h snapshotHead
	if err := item.Value(func(v []byte) error { h, err = decodeSnapshotHead(v); return err }); err != nil {
		return nil, nil, err
	}
	if h.rev > rev {
		return nil, nil, fmt.Errorf("snapshot of revision %d, ahead of the records at %d", h.rev, rev)
	}
	delta, err := s.readDelta(txn, h, rev)
	if err != nil {
		return nil, nil, err
	}
	if h.length > 1<<40 {
		return nil, nil, fmt.Errorf("implausible length %d", h.length)
	}
	data := make([]byte, 0, h.length)
	for seq := range int(h.chunks) {
		item, err := txn.Get([]byte(snapshotChunkKey(h.ts, seq)))
		if err != nil {
			return nil, nil, fmt.Errorf("chunk %d: %w", seq, err)
		}
		if err := item.Value(func(v []byte) error {
			if uint64(len(data)+len(v)) > h.length {
				return errors.New("longer than its head says")
			}
			data = append(data, v...)
			return nil
		}); err != nil {
			return nil, nil, fmt.Errorf("chunk %d: %w", seq, err)
		}
	}
	if uint64(len(data)) != h.length {
		return nil, nil, fmt.Errorf("%d bytes of %d", len(data), h.length)
	}
	if crc32.Checksum(data, snapshotCRC) != h.crc {
		return nil, nil, errors.New("checksum mismatch")
	}
	snap, err := decodeSnapshot(data)
	if err != nil {
		return nil, nil, err
	}
	return snap, delta, nil
}

// snapDelta is what the records changed after a snapshot: every member and team membership
// record written since (nil value: deleted), the org and team records written since, and every
// stamp written since (its stored revision).
type snapDelta struct {
	rev     uint64            // the snapshot's revision
	records map[string][]byte // member and team membership keys → value, nil when deleted
	changed map[string]bool   // org and team record keys written after the snapshot
	stamps  map[string]uint64 // stamp key (String form) → stored revision
}

// readDelta finds what changed after the snapshot with head h, the records being at rev. Every
// write after the snapshot is a batch whose event lists the record keys it wrote and the
// projects it affected, from which the stamps it bumped follow (stampsOf): the events of the
// revisions after h.rev name every record and stamp to read again. It fails (errSnapshotStale)
// when an event is no longer kept or does not list everything (Truncated), and when a member,
// team membership or stamp record was written or deleted after the snapshot (a Badger version
// after h.ts) that no event names, or a stamp was deleted: something wrote Badger behind the
// store's back.
func (s *Store) readDelta(txn *badger.Txn, h snapshotHead, rev uint64) (*snapDelta, error) {
	d := &snapDelta{rev: h.rev, records: map[string][]byte{}, changed: map[string]bool{}, stamps: map[string]uint64{}}
	stampSet := map[string]struct{}{}
	// The events after the snapshot, in one pass of an iterator (they are consecutive keys): a
	// key other than the next revision's means that event is not kept.
	events := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixEvent)})
	defer events.Close()
	events.Seek([]byte(eventKey(h.rev + 1)))
	for r := h.rev + 1; r <= rev; r++ {
		if r > h.rev+1 {
			events.Next()
		}
		if !events.Valid() || string(events.Item().Key()) != eventKey(r) {
			return nil, fmt.Errorf("%w: snapshot of revision %d, records at %d, and the event of revision %d is not kept", errSnapshotStale, h.rev, rev, r)
		}
		item := events.Item()
		var ev struct {
			Keys      []string `json:"keys"`
			Projects  []string `json:"projects"`
			Truncated bool     `json:"truncated"`
		}
		if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &ev) }); err != nil {
			return nil, fmt.Errorf("event of revision %d: %w", r, err)
		}
		if ev.Truncated {
			return nil, fmt.Errorf("%w: snapshot of revision %d, records at %d, and the event of revision %d does not list all it wrote", errSnapshotStale, h.rev, rev, r)
		}
		for _, k := range ev.Keys {
			kind, _, _ := strings.Cut(strings.TrimPrefix(k, prefixRecords), "/")
			switch kind {
			case "member", "tmember":
				d.records[k] = nil
			case "org", "team":
				d.changed[k] = true
			}
			for _, sk := range stampsOf(k) {
				stampSet[sk.String()] = struct{}{}
			}
		}
		for _, p := range ev.Projects {
			org, project, _ := strings.Cut(p, "/")
			stampSet[stampKey{'p', org, project}.String()] = struct{}{}
			stampSet[stampKey{'x', org, ""}.String()] = struct{}{}
		}
	}
	// Everything written after the snapshot must be named by an event; what is, is read here.
	// Every version after it is visited, newest first, deletions included (a deleted key's
	// newest version is its tombstone): a record deleted behind the store's back is seen too.
	// A stamp no record after the snapshot names is as the snapshot has it (stamps are only
	// ever set), so the events' stamps are not read one by one.
	seen := map[string]bool{}
	for _, prefix := range []string{prefixRecords + "member/", prefixRecords + "tmember/", prefixStamp} {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), SinceTs: h.ts, AllVersions: true})
		err := func() error {
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				item := it.Item()
				if seen[string(item.Key())] {
					continue // an older version of a key seen
				}
				k := string(item.Key())
				named := false
				if prefix == prefixStamp {
					_, named = stampSet[k[len(prefixStamp):]]
				} else {
					_, named = d.records[k]
				}
				switch {
				case !named:
					return fmt.Errorf("%w: %s was written after the snapshot and no event names it", errSnapshotStale, k)
				case item.IsDeletedOrExpired() && prefix == prefixStamp:
					return fmt.Errorf("%w: %s was deleted after the snapshot (the store never deletes a stamp)", errSnapshotStale, k)
				}
				seen[k] = true
				if item.IsDeletedOrExpired() {
					d.records[k] = nil
					continue
				}
				v, err := item.ValueCopy(nil)
				if err != nil {
					return err
				}
				if prefix == prefixStamp {
					if len(v) != 8 {
						return fmt.Errorf("stamp %s: %d bytes", k, len(v))
					}
					d.stamps[k[len(prefixStamp):]] = binary.BigEndian.Uint64(v)
				} else {
					d.records[k] = v
				}
			}
			return nil
		}()
		if err != nil {
			return nil, err
		}
	}
	// A record an event names was written after the snapshot, so the scan saw it; read again
	// in case compaction dropped a tombstone.
	for k := range d.records {
		if seen[k] {
			continue
		}
		switch item, err := txn.Get([]byte(k)); {
		case errors.Is(err, badger.ErrKeyNotFound):
			d.records[k] = nil
		case err != nil:
			return nil, err
		default:
			if d.records[k], err = item.ValueCopy(nil); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

// snapReader reads the snapshot's data, remembering the first error.
type snapReader struct {
	b   []byte
	err error
}

func (r *snapReader) fail(why string) {
	if r.err == nil {
		r.err = errors.New(why)
	}
	r.b = nil
}

func (r *snapReader) uvarint(limit uint64) uint64 {
	v, w := binary.Uvarint(r.b)
	if w <= 0 || v > limit {
		r.fail("bad count")
		return 0
	}
	r.b = r.b[w:]
	return v
}

func (r *snapReader) varint() int64 {
	v, w := binary.Varint(r.b)
	if w <= 0 {
		r.fail("bad number")
		return 0
	}
	r.b = r.b[w:]
	return v
}

func (r *snapReader) bytes(n uint64) []byte {
	if n > uint64(len(r.b)) {
		r.fail("truncated")
		return nil
	}
	b := r.b[:n:n]
	r.b = r.b[n:]
	return b
}

func (r *snapReader) str() string { return string(r.bytes(r.uvarint(uint64(len(r.b))))) }

// decodeSnapshot decodes the data written by writeSnapshot, checking its structure (the role
// tables are this version's, counts fit the data, codes are roles, ids are members); what it
// cannot check against the state (the orgs and teams exist) install does.
func decodeSnapshot(data []byte) (*memberSnapshot, error) {
	r := &snapReader{b: data}
	for _, want := range [][]string{OrgRoles(), TeamRoles()} {
		n := r.uvarint(uint64(len(r.b)))
		have := make([]string, 0, min(n, 16))
		for range n {
			have = append(have, r.str())
		}
		if r.err == nil && !slices.Equal(have, want) {
			return nil, fmt.Errorf("role tables %v differ from this version's %v", have, want)
		}
	}
	snap := &memberSnapshot{orgs: map[string]*orgSnapshot{}}
	orgs := r.uvarint(uint64(len(r.b)))
	for range orgs {
		name := r.str()
		n := r.uvarint(uint64(len(r.b)))
		all := string(r.bytes(r.uvarint(uint64(len(r.b)))))
		og := &orgSnapshot{names: make([]string, n), roles: make([]roleCode, n), teams: map[string]teamSnapshot{}}
		off := uint64(0)
		for i := range og.names {
			l := r.uvarint(uint64(len(all)) - off)
			og.names[i] = all[off : off+l]
			off += l
			if r.err == nil && !scope.ValidSlug(og.names[i]) {
				// The store holds only names a write would take (the engine's compiled path
				// relies on it: a subject it finds needs no check of its own).
				r.fail(fmt.Sprintf("member name %.64q is not a slug", og.names[i]))
			}
		}
		if off != uint64(len(all)) && r.err == nil {
			r.fail("member names do not add up")
		}
		for i, c := range r.bytes(n) {
			if c == 0 || int(c) > len(orgRoles) {
				r.fail("bad org role code")
				break
			}
			og.roles[i] = roleCode(c)
		}
		teams := r.uvarint(uint64(len(r.b)))
		for range teams {
			tn := r.str()
			k := r.uvarint(uint64(len(r.b)) / 5)
			ts := teamSnapshot{ids: r.bytes(4 * k), roles: r.bytes(k)}
			for i := 0; i+4 <= len(ts.ids); i += 4 {
				if uint64(binary.LittleEndian.Uint32(ts.ids[i:])) >= n {
					r.fail("team member id out of range")
					break
				}
			}
			for _, c := range ts.roles {
				if c == 0 || int(c) > len(teamRoles) {
					r.fail("bad team role code")
					break
				}
			}
			if e := r.uvarint(k); e > 0 {
				ts.expires = make(map[uint32]int64, e)
				for range e {
					i := r.uvarint(k - 1)
					exp := r.varint()
					if _, dup := ts.expires[uint32(i)]; (dup || exp <= 0) && r.err == nil {
						r.fail("bad expiry")
					}
					ts.expires[uint32(i)] = exp
				}
			}
			if _, dup := og.teams[tn]; dup && r.err == nil {
				r.fail("team listed twice")
			}
			og.teams[tn] = ts
		}
		if _, dup := snap.orgs[name]; dup && r.err == nil {
			r.fail("org listed twice")
		}
		snap.orgs[name] = og
	}
	n := r.uvarint(uint64(len(r.b)))
	all := string(r.bytes(r.uvarint(uint64(len(r.b)))))
	snap.stampKeys, snap.stampRevs = make([]string, n), make([]uint64, n)
	off := uint64(0)
	for i := range snap.stampKeys {
		l := r.uvarint(uint64(len(all)) - off)
		snap.stampKeys[i] = all[off : off+l]
		off += l
	}
	if off != uint64(len(all)) && r.err == nil {
		r.fail("stamp keys do not add up")
	}
	for i := range snap.stampRevs {
		snap.stampRevs[i] = r.uvarint(^uint64(0))
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return nil, fmt.Errorf("corrupt snapshot: %w", r.err)
	}
	return snap, nil
}

// install puts the snapshot's members and team memberships into st, which holds the orgs and
// teams the records give and no member yet, then the records d says changed after it. It fails,
// changing st partly (the caller then loads from the records alone), when the snapshot and the
// records disagree in a way the changes after it do not explain: an org or team only one of
// them holds that was not written since (and, when the snapshot holds it, whose memberships
// were not all deleted since), a member listed twice, or a changed record that does not apply.
func (snap *memberSnapshot) install(st *state, workers int, d *snapDelta) error {
	deleted := func(key string) bool { v, ok := d.records[key]; return ok && v == nil }
	// teamGone checks that every membership of a team the records lack was deleted.
	teamGone := func(org, team string, og *orgSnapshot, ts teamSnapshot) error {
		if !d.changed[keyTeam(org, team)] {
			return fmt.Errorf("org %s: snapshot names team %s, which the records lack", org, team)
		}
		for j := 0; j < len(ts.ids); j += 4 {
			if u := og.names[binary.LittleEndian.Uint32(ts.ids[j:])]; !deleted(keyTeamMember(org, team, u)) {
				return fmt.Errorf("org %s: team %s is gone but its member %s was not deleted", org, team, u)
			}
		}
		return nil
	}
	for name, og := range snap.orgs {
		if _, ok := st.orgs[name]; ok {
			continue
		}
		if !d.changed[keyOrg(name)] {
			return fmt.Errorf("snapshot names org %s, which the records lack", name)
		}
		for tn, ts := range og.teams {
			if err := teamGone(name, tn, og, ts); err != nil {
				return err
			}
		}
		for _, u := range og.names {
			if !deleted(keyMember(name, u)) {
				return fmt.Errorf("org %s is gone but its member %s was not deleted", name, u)
			}
		}
	}
	for name, o := range st.orgs {
		og, ok := snap.orgs[name]
		if !ok {
			if !d.changed[keyOrg(name)] {
				return fmt.Errorf("snapshot lacks org %s", name)
			}
			og = &orgSnapshot{}
		}
		tds := make([]*teamData, 0, len(og.teams))
		tss := make([]teamSnapshot, 0, len(og.teams))
		for tn, ts := range og.teams {
			td, ok := o.teams[tn]
			if !ok {
				if err := teamGone(name, tn, og, ts); err != nil {
					return err
				}
				continue
			}
			tds, tss = append(tds, td), append(tss, ts)
		}
		if len(tds) != len(o.teams) {
			for tn := range o.teams {
				if _, ok := og.teams[tn]; !ok && !d.changed[keyTeam(name, tn)] {
					return fmt.Errorf("org %s: snapshot lacks team %s", name, tn)
				}
			}
		}
		n := len(og.names)
		p := &o.members
		p.names, p.byID, p.byName = make([]string, n), newEntries(n), newMembers(n)
		for id, u := range og.names {
			m := p.byID[id]
			m.id, m.role = uint32(id), og.roles[id]
			p.names[id], p.byID[id] = m.keyName(u), m
			p.byName.put(p.names[id], m)
		}
		if p.count() != n {
			return fmt.Errorf("org %s: snapshot lists a member twice", name)
		}
		// The teams' member maps, by several workers (each team is one worker's), while this
		// goroutine builds the members' team lists in one array, as indexMemberTeams does.
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < len(tds); i += workers {
					ts, m := tss[i], make(map[uint32]roleCode, len(tss[i].roles))
					for j, c := range ts.roles {
						m[binary.LittleEndian.Uint32(ts.ids[4*j:])] = roleCode(c)
					}
					if len(m) != len(ts.roles) {
						errs[w] = fmt.Errorf("org %s: snapshot lists a member of team %s twice", name, tds[i].team.Name)
					}
					tds[i].members = m
				}
			})
		}
		off := make([]uint32, n+1)
		for _, ts := range tss {
			for j := 0; j < len(ts.ids); j += 4 {
				off[binary.LittleEndian.Uint32(ts.ids[j:])+1]++
			}
		}
		for i := range n {
			off[i+1] += off[i]
		}
		all := make([]teamRole, off[n])
		next := slices.Clone(off[:n])
		for i, ts := range tss {
			for j, c := range ts.roles {
				id := binary.LittleEndian.Uint32(ts.ids[4*j:])
				all[next[id]] = teamRole{tds[i].id, roleCode(c)}
				next[id]++
			}
			for j, exp := range ts.expires {
				o.memberExpiry[[2]uint32{tds[i].id, binary.LittleEndian.Uint32(ts.ids[4*j:])}] = exp
			}
		}
		for id := range n {
			if a, b := off[id], off[id+1]; b > a {
				p.byID[id].teams = all[a:b:b]
			}
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	return d.apply(newTxn(st, true))
}

// apply writes the records changed after the snapshot into the state the snapshot gave, through
// the same validation as a load from the records: deletions first (team memberships, then
// members, who must be in no team by then), then members, then team memberships. A deletion
// of what the state does not hold (an org or team gone since, a record written and deleted
// since) has nothing to do.
func (d *snapDelta) apply(t *txn) error {
	keys := sortedKeys(d.records)
	parts := func(key string) []string { return strings.Split(strings.TrimPrefix(key, prefixRecords), "/") }
	for _, kind := range []string{"tmember", "member"} {
		for _, k := range keys {
			p := parts(k)
			if d.records[k] != nil || p[0] != kind {
				continue
			}
			o := t.st.orgs[p[1]]
			if o == nil {
				continue
			}
			if kind == "member" {
				id, ok := o.members.id(p[2])
				switch {
				case !ok:
				case len(o.members.byID[id].teams) > 0:
					return fmt.Errorf("record %s was deleted after the snapshot but the member is still in a team", k)
				default:
					t.delMember(o, p[2])
				}
				continue
			}
			if td := o.teams[p[2]]; td != nil && o.teamRole(td, p[3]) != 0 {
				if err := (DeleteTeamMember{Org: p[1], Team: p[2], User: p[3]}).apply(t); err != nil {
					return fmt.Errorf("record %s deleted after the snapshot: %w", k, err)
				}
			}
		}
	}
	for _, kind := range []string{"member", "tmember"} {
		for _, k := range keys {
			v := d.records[k]
			if v == nil || parts(k)[0] != kind {
				continue
			}
			c, err := decodeRecord(k, v)
			if err == nil {
				err = c.apply(t)
			}
			if err != nil {
				return fmt.Errorf("store: load record %s: %w", k, err)
			}
		}
	}
	return nil
}

// installStamps loads the snapshot's stamps into ss, which holds none yet (one map sized once,
// the cells in one array: cells are never removed), then the stamps stored after it.
func (snap *memberSnapshot) installStamps(ss *stamps, d *snapDelta) error {
	ss.cells = make(map[stampKey]*atomic.Uint64, len(snap.stampKeys))
	ss.list = make([]stampCell, len(snap.stampKeys))
	cells := make([]atomic.Uint64, len(snap.stampKeys))
	for i, key := range snap.stampKeys {
		k, ok := parseStampKey(key)
		if !ok {
			return fmt.Errorf("snapshot: bad stamp key %q", truncate(key))
		}
		cells[i].Store(snap.stampRevs[i])
		ss.cells[k] = &cells[i]
		ss.list[i] = stampCell{k, &cells[i]}
		ss.absentCell(k).Add(1)
	}
	if len(ss.cells) != len(snap.stampKeys) {
		return errors.New("snapshot: a stamp is listed twice")
	}
	for key, rev := range d.stamps {
		ss.load(key, rev)
	}
	ss.epoch.moveAll() // the cells stored above
	return nil
}
