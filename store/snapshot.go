package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// The membership snapshot: the org member tables, the team memberships and the stamps, the bulk
// of a large directory, written at Close and read by Open instead of the member, team
// membership and stamp records when it is exactly as new as they are. The package doc ("Membership snapshot")
// describes when it is used; this file is its encoding.
const (
	prefixSnapshot     = "v1/snapshot/"
	keySnapshotHead    = prefixSnapshot + "head"
	prefixSnapshotData = prefixSnapshot + "data/" // + {seq:010d}
	snapshotMagic      = "teamgate membership snapshot"
	snapshotVersion    = 1
	snapshotChunkBytes = 4 << 20 // one Badger value each (values this size go to the value log)

	stepSnapshot = "snapshot" // after each commit of a snapshot write (testHooks.at)
)

var snapshotCRC = crc32.MakeTable(crc32.Castagnoli)

// snapshotHead is the head record: what the data chunks hold and which records they match.
type snapshotHead struct {
	version uint32
	rev     uint64 // the revision whose records the snapshot equals
	chunks  uint32
	length  uint64 // bytes of data, all chunks together
	crc     uint32 // CRC-32C of the data
}

func (h snapshotHead) encode() []byte {
	b := binary.AppendUvarint(nil, uint64(len(snapshotMagic)))
	b = append(b, snapshotMagic...)
	b = binary.BigEndian.AppendUint32(b, h.version)
	b = binary.BigEndian.AppendUint64(b, h.rev)
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
	if len(b) != 4+8+4+8+4 {
		return snapshotHead{}, errors.New("malformed head")
	}
	h.rev = binary.BigEndian.Uint64(b[4:])
	h.chunks = binary.BigEndian.Uint32(b[12:])
	h.length = binary.BigEndian.Uint64(b[16:])
	h.crc = binary.BigEndian.Uint32(b[24:])
	return h, nil
}

func snapshotChunkKey(seq int) string { return fmt.Sprintf("%s%010d", prefixSnapshotData, seq) }

// The data, in order (uvarint counts and lengths; str is a uvarint length and the bytes):
//
//	the org roles and the team roles, each a count and its names (role codes index them)
//	the number of orgs, then per org:
//	  str name
//	  uvarint members n; uvarint bytes of all names; the names, concatenated; n uvarint name
//	  lengths; n org role codes (a member's id is its place here)
//	  uvarint teams, then per team: str name; uvarint k; k member ids (uint32, little endian);
//	  k team role codes
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
	ids   []byte // k member ids, uint32 little endian
	roles []byte // k team role codes
}

// writeSnapshot writes the snapshot of st, at revision st.rev, and of the stamps, in a fresh
// set of Badger transactions: the old head is deleted first, then the data chunks are written,
// stale chunks deleted, and the head written last, so a crash at any point leaves no head or a head whose
// chunks are whole (and whose checksum says so). The head is the store's last write: Open uses
// the snapshot only while it is (see readSnapshot).
func (s *Store) writeSnapshot(st *state) error {
	if err := s.writeChunked([]op{{key: keySnapshotHead}}, stepSnapshot); err != nil {
		return err
	}
	h := snapshotHead{version: snapshotVersion, rev: st.rev}
	size := snapshotChunkBytes
	if s.snapChunk > 0 {
		size = s.snapChunk
	}
	var buf []byte
	flush := func() error {
		h.crc = crc32.Update(h.crc, snapshotCRC, buf)
		h.length += uint64(len(buf))
		err := s.writeChunked([]op{{snapshotChunkKey(int(h.chunks)), buf}}, stepSnapshot)
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
	orgs := sortedKeys(st.orgs)
	buf = binary.AppendUvarint(buf, uint64(len(orgs)))
	for _, name := range orgs {
		o := st.orgs[name]
		p := &o.members
		str(name)
		// Ids are compacted: free ids are left out, the others keep their order.
		ids := make([]uint32, len(p.names))
		n, size := uint32(0), 0
		for id, r := range p.roles {
			if r != 0 {
				ids[id] = n
				n++
				size += len(p.names[id])
			}
		}
		buf = binary.AppendUvarint(buf, uint64(n))
		buf = binary.AppendUvarint(buf, uint64(size))
		for id, r := range p.roles {
			if r != 0 {
				if err := long([]byte(p.names[id])); err != nil {
					return err
				}
			}
		}
		for id, r := range p.roles {
			if r != 0 {
				buf = binary.AppendUvarint(buf, uint64(len(p.names[id])))
				if err := grow(); err != nil {
					return err
				}
			}
		}
		for _, r := range p.roles {
			if r != 0 {
				buf = append(buf, byte(r))
				if err := grow(); err != nil {
					return err
				}
			}
		}
		teams := sortedKeys(o.teams)
		buf = binary.AppendUvarint(buf, uint64(len(teams)))
		for _, tn := range teams {
			td := o.teams[tn]
			str(tn)
			buf = binary.AppendUvarint(buf, uint64(len(td.members)))
			roles := make([]byte, 0, len(td.members))
			for id, r := range td.members {
				buf = binary.LittleEndian.AppendUint32(buf, ids[id])
				roles = append(roles, byte(r))
				if err := grow(); err != nil {
					return err
				}
			}
			if err := long(roles); err != nil {
				return err
			}
		}
	}
	// The stamps: keys concatenated, then their lengths, then their revisions.
	keys := make([]string, 0, len(s.stamps.cells))
	revs := make([]uint64, 0, len(s.stamps.cells))
	size = 0
	for k, c := range s.stamps.cells {
		keys = append(keys, k.String())
		revs = append(revs, c.Load())
		size += len(keys[len(keys)-1])
	}
	buf = binary.AppendUvarint(buf, uint64(len(keys)))
	buf = binary.AppendUvarint(buf, uint64(size))
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
	for _, r := range revs {
		buf = binary.AppendUvarint(buf, r)
		if err := grow(); err != nil {
			return err
		}
	}
	if err := flush(); err != nil {
		return err
	}
	// Chunks of an older, longer snapshot.
	var stale []op
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixSnapshotData)})
		defer it.Close()
		for it.Seek([]byte(snapshotChunkKey(int(h.chunks)))); it.Valid(); it.Next() {
			stale = append(stale, op{key: string(it.Item().Key())})
		}
		return nil
	})
	if err == nil {
		err = s.writeChunked(stale, stepSnapshot)
	}
	if err == nil {
		err = s.writeChunked([]op{{keySnapshotHead, h.encode()}}, stepSnapshot)
	}
	return err
}

// errSnapshotStale: the snapshot is older than the records (not an error in it).
var errSnapshotStale = errors.New("stale")

// readSnapshot returns the snapshot Open may use instead of the member, team membership and
// stamp records at revision rev, or nil and why not (nil, nil when there is none). It is used only
// when its head is the last thing written to Badger (nothing, not even a write this store did
// not make, came after it), it names revision rev, its format is this version's and its data is
// whole (length and checksum). It sets s.snapAt when it returns a snapshot.
func (s *Store) readSnapshot(txn *badger.Txn, rev uint64) (*memberSnapshot, error) {
	item, err := txn.Get([]byte(keySnapshotHead))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	var h snapshotHead
	if err := item.Value(func(v []byte) error { h, err = decodeSnapshotHead(v); return err }); err != nil {
		return nil, err
	}
	if h.rev != rev {
		return nil, fmt.Errorf("%w: snapshot of revision %d, records at %d", errSnapshotStale, h.rev, rev)
	}
	if v, last := item.Version(), s.db.MaxVersion(); v != last {
		return nil, fmt.Errorf("%w: written to after the snapshot (version %d, last %d)", errSnapshotStale, v, last)
	}
	if h.length > 1<<40 {
		return nil, fmt.Errorf("implausible length %d", h.length)
	}
	data := make([]byte, 0, h.length)
	for seq := range int(h.chunks) {
		item, err := txn.Get([]byte(snapshotChunkKey(seq)))
		if err != nil {
			return nil, fmt.Errorf("chunk %d: %w", seq, err)
		}
		if err := item.Value(func(v []byte) error {
			if uint64(len(data)+len(v)) > h.length {
				return errors.New("longer than its head says")
			}
			data = append(data, v...)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("chunk %d: %w", seq, err)
		}
	}
	if uint64(len(data)) != h.length {
		return nil, fmt.Errorf("%d bytes of %d", len(data), h.length)
	}
	if crc32.Checksum(data, snapshotCRC) != h.crc {
		return nil, errors.New("checksum mismatch")
	}
	snap, err := decodeSnapshot(data)
	if err != nil {
		return nil, err
	}
	s.snapAt = item.Version()
	return snap, nil
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
			if l == 0 && r.err == nil {
				r.fail("empty member name")
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
// teams the records give and no member yet. It fails, changing st partly (the caller then loads
// from the records alone), when the snapshot does not name exactly st's orgs and teams or lists
// a member twice.
func (snap *memberSnapshot) install(st *state, workers int) error {
	if len(snap.orgs) != len(st.orgs) {
		return fmt.Errorf("snapshot holds %d orgs, the records %d", len(snap.orgs), len(st.orgs))
	}
	for name, o := range st.orgs {
		og, ok := snap.orgs[name]
		if !ok {
			return fmt.Errorf("snapshot lacks org %s", name)
		}
		if len(og.teams) != len(o.teams) {
			return fmt.Errorf("org %s: snapshot holds %d teams, the records %d", name, len(og.teams), len(o.teams))
		}
		tds := make([]*teamData, 0, len(og.teams))
		tss := make([]teamSnapshot, 0, len(og.teams))
		for tn, ts := range og.teams {
			td, ok := o.teams[tn]
			if !ok {
				return fmt.Errorf("org %s: snapshot names missing team %s", name, tn)
			}
			tds, tss = append(tds, td), append(tss, ts)
		}
		n := len(og.names)
		p := &o.members
		p.names, p.roles, p.teams = og.names, og.roles, make([][]teamRole, n)
		p.ids = make(map[string]uint32, n)
		for id, u := range og.names {
			p.ids[u] = uint32(id)
		}
		if len(p.ids) != n {
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
		}
		for id := range n {
			if a, b := off[id], off[id+1]; b > a {
				p.teams[id] = all[a:b:b]
			}
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	return nil
}

// installStamps loads the snapshot's stamps into ss, which holds none yet: one map sized once,
// the cells in one array (cells are never removed).
func (snap *memberSnapshot) installStamps(ss *stamps) error {
	ss.cells = make(map[stampKey]*atomic.Uint64, len(snap.stampKeys))
	cells := make([]atomic.Uint64, len(snap.stampKeys))
	for i, key := range snap.stampKeys {
		k, ok := parseStampKey(key)
		if !ok {
			return fmt.Errorf("snapshot: bad stamp key %q", truncate(key))
		}
		cells[i].Store(snap.stampRevs[i])
		ss.cells[k] = &cells[i]
		ss.absentCell(k).Add(1)
	}
	if len(ss.cells) != len(snap.stampKeys) {
		return errors.New("snapshot: a stamp is listed twice")
	}
	return nil
}
