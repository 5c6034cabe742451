package authz

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// DefaultDecisionCacheSize is the number of decisions the in-memory cache keeps by default.
const DefaultDecisionCacheSize = 100_000

// WithDecisionCache sets how many decisions the in-memory cache keeps; 0 turns it off. The cache
// never holds more, and holds that many distinct requests however their keys spread over its shards.
// Default DefaultDecisionCacheSize.
func WithDecisionCache(size int) Option {
	return func(c *config) error {
		if size < 0 {
			return errInvalidSize(size)
		}
		c.cacheSize = size
		c.cacheSet = true
		return nil
	}
}

// cacheKey identifies a cacheable request: one without attributes (attributes make decisions
// depend on more than the facts the store tracks, so such requests are always evaluated).
type cacheKey struct {
	subject, action, resource, owner string
}

// packedLen is the length of the key's packed form: its parts joined by NUL bytes (no part
// holds one: only requests that were decided are stored, and their parts are slugs,
// references and action names).
func (k *cacheKey) packedLen() int {
	return len(k.subject) + len(k.action) + len(k.resource) + len(k.owner) + 3
}

// appendPacked appends the packed form.
func (k *cacheKey) appendPacked(b []byte) []byte {
	b = append(append(b, k.subject...), 0)
	b = append(append(b, k.action...), 0)
	b = append(append(b, k.resource...), 0)
	return append(b, k.owner...)
}

// matches reports whether packed is k's packed form, without building it.
func (k *cacheKey) matches(packed []byte) bool {
	if len(packed) != k.packedLen() {
		return false
	}
	for _, part := range [...]string{k.subject, k.action, k.resource} {
		n := len(part)
		if packed[n] != 0 || string(packed[:n]) != part {
			return false
		}
		packed = packed[n+1:]
	}
	return string(packed) == k.owner
}

// cached is a decision with what it depends on: the policy it was made with and the Deps of the
// snapshot that read its facts (store.Reader.Track records them as the facts are read; nothing
// here knows which facts a decision reads). It is current exactly while the policy is in force
// and the Deps are current — never once the store is closed.
type cached struct {
	policy *rego.Policy
	dec    Decision
	deps   store.Deps
}

func (c *cached) current(p *rego.Policy) bool { return c.policy == p && c.deps.Current() }

// decisionCache is the bounded in-memory tier. A hit takes no global lock, writes no shared
// memory but its shard's lock word and counter, and allocates nothing.
//
// A key is hashed (maphash with the cache's own seed) once; the hash picks a shard. A shard is a
// fixed number of slots, each holding the key's bytes, the decision and its Deps inline (the
// first stamps included, see store.Deps), and an open-addressing index from hash to slot: a hit
// reads the index and one slot, a few adjacent cache lines, and checks the stamps the slot
// names. Hits take the shard's read lock and set the slot's CLOCK bit (when not yet set); a
// miss's insert takes the write lock and evicts with CLOCK (second chance), which approximates
// LRU without a write per hit. The design was measured against otter v2 and golang-lru v2 (the
// previous tier) in bench/ (BenchmarkL1Distinct; bench/RESULTS.md has the figures).
type decisionCache struct {
	seed             maphash.Seed
	shards           []cacheShard
	shardShift       uint // the hash's top bits pick the shard
	size             int64
	used             atomic.Int64 // slots in use, at most size (inserts only: hits never touch it)
	diskHits, misses atomic.Uint64
}

type cacheShard struct {
	mu       sync.RWMutex // guards index, slots and hand; not the slots' ref bits, which are atomic
	hits     atomic.Uint64
	index    []uint64 // 0: empty; else the hash's upper 32 bits << 32 | slot+1 (linear probing)
	slots    []cacheSlot
	capacity int // slots at most: twice the shard's share, so that uneven shards still hold size decisions in all
	hand     int // CLOCK hand
	_        [48]byte
}

// cacheSlot is one cached decision, laid out for a hit: the first cache line holds what a lookup
// compares (hash and key), the next the policy and the decision, then the Deps and its first
// stamps; the slot's size is a multiple of 128 bytes, so lines pair up for the prefetcher.
type cacheSlot struct {
	hash   uint64
	ref    uint32 // CLOCK: referenced since the hand last passed (atomic)
	keyLen uint16 // of the packed key when inline; 0 when it is in long
	key    [slotKeyBytes]byte
	entry  cached
	long   []byte // the packed key when longer than slotKeyBytes
	_      [(128 - unsafe.Sizeof(slotLayout{})%128) % 128]byte
}

// slotLayout is cacheSlot without its padding.
type slotLayout struct {
	hash   uint64
	ref    uint32
	keyLen uint16
	key    [slotKeyBytes]byte
	entry  cached
	long   []byte
}

// slotKeyBytes is the inline room for packed keys: typical keys fit, so a lookup compares
// them without touching other memory.
const slotKeyBytes = 48

func (sl *cacheSlot) packed() []byte {
	if sl.keyLen == 0 {
		return sl.long
	}
	return sl.key[:sl.keyLen]
}

// shardSlots is the smallest number of slots a shard holds; maxShards bounds the shards.
const (
	shardSlots = 16
	maxShards  = 256
)

func newDecisionCache(size int) *decisionCache {
	if size == 0 {
		return nil
	}
	n := 1
	for n < maxShards && size/(2*n) >= shardSlots {
		n *= 2
	}
	c := &decisionCache{seed: maphash.MakeSeed(), shards: make([]cacheShard, n), shardShift: uint(64 - bits.TrailingZeros(uint(n)))}
	c.size = int64(size)
	per := 2 * ((size + n - 1) / n)
	for i := range c.shards {
		c.shards[i].capacity = per
		c.shards[i].index = make([]uint64, 1<<bits.Len(uint(2*per-1))) // a power of two >= 2 per: at most half full
	}
	return c
}

// hash is never 0 (a free slot's hash).
func (c *decisionCache) hash(k *cacheKey) uint64 {
	h := maphash.String(c.seed, k.subject)
	h = (h ^ maphash.String(c.seed, k.action)) * 0x9e3779b97f4a7c15
	h = (h ^ maphash.String(c.seed, k.resource)) * 0x9e3779b97f4a7c15
	if k.owner != "" {
		h = (h ^ maphash.String(c.seed, k.owner)) * 0x9e3779b97f4a7c15
	}
	return h | 1
}

func (c *decisionCache) shard(h uint64) *cacheShard {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	return &c.shards[h>>c.shardShift]
}

// get returns the cached decision for k when it is current under policy p.
func (c *decisionCache) get(k *cacheKey, p *rego.Policy) (Decision, bool) {
	h := c.hash(k)
	s := c.shard(h)
	s.mu.RLock()
	i, _ := s.find(h, k)
	if i < 0 {
		s.mu.RUnlock()
		return Decision{}, false
	}
	sl := &s.slots[i]
	if !sl.entry.current(p) {
		s.mu.RUnlock()
		return Decision{}, false
	}
	if atomic.LoadUint32(&sl.ref) == 0 {
		atomic.StoreUint32(&sl.ref, 1)
	}
	d := sl.entry.dec
	s.mu.RUnlock()
	s.hits.Add(1)
	return d, true
}

// put stores e under k, replacing k's previous entry or evicting another.
func (c *decisionCache) put(k *cacheKey, e *cached) {
	h := c.hash(k)
	s := c.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put(h, k, e, &c.used, c.size)
}

func (c *decisionCache) hits() uint64 {
	var n uint64
	for i := range c.shards {
		n += c.shards[i].hits.Load()
	}
	return n
}

// len is the number of cached decisions.
func (c *decisionCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.slots)
		s.mu.RUnlock()
	}
	return n
}

// find returns the slot holding k (hash h) and its index position; -1 when there is none. The
// caller holds the lock.
func (s *cacheShard) find(h uint64, k *cacheKey) (slot, pos int) {
	mask := len(s.index) - 1
	tag := h >> 32
	for pos = int(h) & mask; s.index[pos] != 0; pos = (pos + 1) & mask {
		if s.index[pos]>>32 != tag {
			continue
		}
		i := int(uint32(s.index[pos])) - 1
		if sl := &s.slots[i]; sl.hash == h && k.matches(sl.packed()) {
			return i, pos
		}
	}
	return -1, pos
}

// put stores e under k (hash h); used counts the slots of every shard, at most size. The caller
// holds the write lock.
func (s *cacheShard) put(h uint64, k *cacheKey, e *cached, used *atomic.Int64, size int64) {
	i, pos := s.find(h, k)
	if i < 0 {
		if i = s.free(used, size); i < 0 {
			return // full, and nothing of this shard's to evict: not cached
		}
		_, pos = s.find(h, k) // the eviction may have moved index entries
		s.index[pos] = h>>32<<32 | uint64(i+1)
	}
	sl := &s.slots[i]
	sl.hash, sl.long, sl.entry = h, nil, *e
	atomic.StoreUint32(&sl.ref, 0)
	if n := k.packedLen(); n <= slotKeyBytes {
		sl.keyLen = uint16(n)
		k.appendPacked(sl.key[:0])
	} else {
		sl.keyLen, sl.long = 0, k.appendPacked(make([]byte, 0, n))
	}
}

// free returns a slot for a new entry: a new one while the cache holds fewer than size and the
// shard is below its capacity, else the one CLOCK evicts in this shard (taken out of the index);
// -1 when the cache is full and this shard holds nothing to evict. The caller holds the write
// lock.
func (s *cacheShard) free(used *atomic.Int64, size int64) int {
	if len(s.slots) < s.capacity {
		if used.Add(1) <= size {
			if len(s.slots) == cap(s.slots) { // grow by doubling, up to the capacity
				grown := make([]cacheSlot, len(s.slots), min(max(2*cap(s.slots), 8), s.capacity))
				copy(grown, s.slots)
				s.slots = grown
			}
			s.slots = s.slots[:len(s.slots)+1]
			return len(s.slots) - 1
		}
		used.Add(-1)
	}
	if len(s.slots) == 0 {
		return -1
	}
	for {
		i := s.hand
		s.hand = (s.hand + 1) % len(s.slots)
		if atomic.LoadUint32(&s.slots[i].ref) != 0 {
			atomic.StoreUint32(&s.slots[i].ref, 0)
			continue
		}
		s.unindex(i)
		s.slots[i] = cacheSlot{} // the evicted decision and Deps are garbage now
		return i
	}
}

// unindex removes slot i's index entry, shifting later entries of its probe run back so every
// entry stays reachable from its home position.
func (s *cacheShard) unindex(i int) {
	mask := len(s.index) - 1
	pos := int(s.slots[i].hash) & mask
	for int(uint32(s.index[pos]))-1 != i {
		pos = (pos + 1) & mask
	}
	for {
		s.index[pos] = 0
		j := pos
		for {
			j = (j + 1) & mask
			if s.index[j] == 0 {
				return
			}
			home := int(s.slots[int(uint32(s.index[j]))-1].hash) & mask
			// The entry at j stays unless its home lies cyclically outside (pos, j].
			if (pos < j && (home <= pos || home > j)) || (pos > j && home <= pos && home > j) {
				s.index[pos] = s.index[j]
				pos = j
				break
			}
		}
	}
}

// diskKey is the Badger key of a request's entry (below the store's cache prefix): the packed
// key.
func diskKey(k *cacheKey) string {
	return string(k.appendPacked(append(make([]byte, 0, len("decision/")+k.packedLen()), "decision/"...)))
}

// encodeEntry writes an entry as the Badger tier stores it: the policy fingerprint, the Deps
// (their own encoding) and the decision (length-prefixed strings and uvarints; compact and
// several times faster to read than JSON).
func encodeEntry(fingerprint string, deps *store.Deps, d Decision) []byte {
	b := make([]byte, 0, 128)
	str := func(s string) { b = binary.AppendUvarint(b, uint64(len(s))); b = append(b, s...) }
	str(fingerprint)
	b, _ = deps.AppendBinary(b) // never fails
	if d.Allowed {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	str(d.Role)
	b = binary.AppendUvarint(b, uint64(len(d.Reasons)))
	for _, r := range d.Reasons {
		str(string(r.Code))
		str(r.Message)
	}
	return b
}

// entryReader decodes encodeEntry's format; any malformed input sets err.
type entryReader struct {
	b   []byte
	err error
}

func (r *entryReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *entryReader) str() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errors.New("bad string")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// fromDisk returns the Badger tier's entry for k when it is current for policy p, as an L1
// entry.
func (e *Engine) fromDisk(k *cacheKey, p *rego.Policy) (*cached, bool) {
	if e.disk == nil {
		return nil, false
	}
	raw, ok := e.disk.CacheGet(diskKey(k))
	if !ok {
		return nil, false
	}
	c, ok := decodeEntry(raw, p, e.disk)
	if !ok || !c.current(p) {
		return nil, false
	}
	return c, true
}

// decodeEntry reads encodeEntry's format for policy p, binding the Deps to disk's stamps; it fails
// on another policy's entry or any malformed input.
func decodeEntry(raw []byte, p *rego.Policy, disk PersistentCache) (*cached, bool) {
	r := &entryReader{b: raw}
	if r.str() != p.Fingerprint() || r.err != nil {
		return nil, false
	}
	c := &cached{policy: p}
	var err error
	c.deps, r.b, err = disk.DecodeDeps(r.b)
	if err != nil || len(r.b) == 0 {
		return nil, false
	}
	c.dec.Allowed = r.b[0] == 1
	r.b = r.b[1:]
	c.dec.Role = r.str()
	nr := r.uvarint()
	if r.err != nil || nr > uint64(len(r.b)) {
		return nil, false
	}
	c.dec.Reasons = make([]Reason, 0, nr)
	for range nr {
		c.dec.Reasons = append(c.dec.Reasons, Reason{Code: rego.Code(r.str()), Message: r.str()})
	}
	if r.err != nil {
		return nil, false
	}
	return c, true
}

// toDisk stores an entry in the Badger tier without waiting for the write.
func (e *Engine) toDisk(k *cacheKey, c *cached) {
	if e.disk == nil {
		return
	}
	e.disk.CachePut(diskKey(k), encodeEntry(c.policy.Fingerprint(), &c.deps, c.dec))
}
