package bench

import (
	"hash/maphash"
	"sync/atomic"
	"unsafe"

	"github.com/teamgate/teamgate/authz"
)

// oneTable is the floor of the one-line L1 hit that issue 9's stop 17 brief proposed, measured
// beside the real cache in BenchmarkL1Distinct (bench/RESULTS.md, "Stop 17: L1 over 100k distinct
// keys"): an open-addressed table of fixed-size slots, each a 128-bit keyed fingerprint of the
// packed key (two maphash seeds: never compared in full), the decision's reasons by pointer (never
// read by a hit), its role by index and verdict, and what currency needs inline. It is a
// reference, not a cache: no writer, no eviction, no torn-slot protection (a lock-free reader of
// a real one would read the slot through a sequence word on the same line: no extra line).
//
//   - slot 32 bytes (onetable32): currency is one state word a writer would clear (invalidation by
//     the writer: the store would have to find, on every bump, the slots that read the stamp).
//   - slot 48 bytes (onetable48): currency checked by the hit, as store.Deps does: three stamp
//     cells by 32-bit index and the snapshot's revision (every cell at most that revision).
//
// Both tables hold 2^17 slots for the 100k keys (load 0.76): 4 MiB and 6 MiB.
type oneTable struct {
	slot            uintptr // bytes per slot: 32 or 48
	mem             []uint64
	mask            uint64
	seed1, seed2    maphash.Seed
	roles           []string
	cells           []atomic.Uint64 // stands for the store's stamp cells (≈ 12k on the small tier)
	closed          atomic.Bool
	users, projects map[string]uint32
}

// oneSlot is a slot's first 32 bytes; onetable48 adds oneDeps after it.
type oneSlot struct {
	fp1, fp2 uint64
	reasons  unsafe.Pointer // the decision's []Reason array (kept alive by the reference map)
	meta     uint64         // 1 | allowed<<1 | role<<8 | nReasons<<16 (0: empty); onetable48: | a third cell<<32
}

// oneDeps is the rest of a 48-byte slot: two stamp cells' indexes and the revision read at.
type oneDeps struct {
	cell [2]uint32
	mark uint64
}

func newOneTable(slot uintptr, reqs []authz.Request, ref map[reqKey]authz.Decision) *oneTable {
	const slots = 1 << 17
	t := &oneTable{slot: slot, mem: make([]uint64, slots*slot/8), mask: slots - 1,
		seed1: maphash.MakeSeed(), seed2: maphash.MakeSeed(),
		users: map[string]uint32{}, projects: map[string]uint32{}}
	role := map[string]int{}
	for _, r := range reqs {
		if _, ok := t.users[r.Subject]; !ok {
			t.users[r.Subject] = uint32(len(t.users))
		}
		if _, ok := t.projects[r.Resource]; !ok {
			t.projects[r.Resource] = uint32(len(t.projects))
		}
	}
	t.cells = make([]atomic.Uint64, 1+len(t.users)+len(t.projects))
	for i := range t.cells {
		t.cells[i].Store(uint64(i % 97))
	}
	for _, r := range reqs {
		d := ref[keyOf(r)]
		if _, ok := role[d.Role]; !ok {
			role[d.Role] = len(t.roles)
			t.roles = append(t.roles, d.Role)
		}
		f1, f2 := t.fingerprint(r)
		pos := f1 & t.mask
		for t.at(pos).meta != 0 {
			pos = (pos + 1) & t.mask
		}
		s := t.at(pos)
		s.fp1, s.fp2, s.reasons = f1, f2, unsafe.Pointer(unsafe.SliceData(d.Reasons))
		allowed := uint64(0)
		if d.Allowed {
			allowed = 2
		}
		s.meta = 1 | allowed | uint64(role[d.Role])<<8 | uint64(len(d.Reasons))<<16
		if slot == 48 {
			dp := (*oneDeps)(unsafe.Add(unsafe.Pointer(s), 32))
			dp.cell = [2]uint32{1 + t.users[r.Subject], uint32(1 + len(t.users) + int(t.projects[r.Resource]))}
			dp.mark = 100     // every cell holds less
			s.meta |= 0 << 32 // the org's cell
		}
	}
	return t
}

func (t *oneTable) at(pos uint64) *oneSlot {
	return (*oneSlot)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(t.mem)), uintptr(pos)*t.slot))
}

// fingerprint hashes the packed key (NUL-joined parts, as authz packs it) with both seeds.
func (t *oneTable) fingerprint(r authz.Request) (uint64, uint64) {
	var buf [64]byte
	b := append(append(append(append(append(append(append(buf[:0], r.Subject...), 0), r.Action...), 0), r.Resource...), 0), r.Owner...)
	return maphash.Bytes(t.seed1, b), maphash.Bytes(t.seed2, b)
}

// get is a hit: the decision when the table holds r and it is current.
func (t *oneTable) get(r authz.Request) (authz.Decision, bool) {
	f1, f2 := t.fingerprint(r)
	for pos := f1 & t.mask; ; pos = (pos + 1) & t.mask {
		s := t.at(pos)
		if s.meta == 0 {
			return authz.Decision{}, false
		}
		if (s.fp1^f1)|(s.fp2^f2) != 0 {
			continue
		}
		if t.closed.Load() {
			return authz.Decision{}, false
		}
		if t.slot == 48 {
			dp := (*oneDeps)(unsafe.Add(unsafe.Pointer(s), 32))
			if max(t.cells[s.meta>>32].Load(), t.cells[dp.cell[0]].Load(), t.cells[dp.cell[1]].Load()) > dp.mark {
				return authz.Decision{}, false
			}
		}
		m := s.meta
		return authz.Decision{Allowed: m&2 != 0, Role: t.roles[uint8(m>>8)],
			Reasons: unsafe.Slice((*authz.Reason)(s.reasons), int(uint16(m>>16)))}, true
	}
}
