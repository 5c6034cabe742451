package authz

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"math/bits"
	"math/rand/v2"
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
// depend on more than the facts the store tracks, so such requests are always evaluated). It is
// made once per request (decisionCache.key) with its hash and, when it fits, its packed form in
// fixed-size words, so that a lookup hashes and compares a few words rather than four strings.
type cacheKey struct {
	subject, action, resource, owner string
	n                                int              // packedLen
	hash                             uint64           // decisionCache.key's
	inline                           [keyWords]uint64 // the packed form, zero padded, when n <= keyBytes
}

// keyWords is the inline room for packed keys, in words: typical keys fit, so a lookup compares
// them without touching other memory; longer ones are kept out of line and compared part by part.
const (
	keyWords = 6
	keyBytes = 8 * keyWords
)

// packedLen is the length of the key's packed form: its parts joined by NUL bytes. A stored key's
// parts hold no NUL (only requests that were decided are stored, and their parts are slugs,
// references and action names), so two keys with equal packed forms (and lengths) are equal: a
// request whose parts hold NULs has more than three, and cannot equal a stored form.
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

// matches reports whether packed is k's packed form, without building it (keys longer than
// keyBytes).
func (k *cacheKey) matches(packed string) bool {
	if len(packed) != k.n {
		return false
	}
	for _, part := range [...]string{k.subject, k.action, k.resource} {
		n := len(part)
		if packed[n] != 0 || packed[:n] != part {
			return false
		}
		packed = packed[n+1:]
	}
	return packed == k.owner
}

// key makes k, which is zero, the cache key of a request: the packed form in words when it fits, and the hash,
// seeded with the cache's secrets (so that nobody chooses colliding requests on purpose; a
// collision costs a probe, never an answer: a lookup compares the whole key).
func (c *decisionCache) key(k *cacheKey, subject, action, resource, owner string) {
	k.subject, k.action, k.resource, k.owner = subject, action, resource, owner
	k.n = k.packedLen()
	if k.n <= keyBytes {
		b := (*[keyBytes]byte)(unsafe.Pointer(&k.inline))
		i := copy(b[:], subject) + 1 // the NUL separators are the zero padding's
		i += copy(b[i:], action) + 1
		i += copy(b[i:], resource) + 1
		copy(b[i:], owner)
		s, w := &c.secret, &k.inline
		k.hash = mix(mix(w[0]^s[0], w[1]^s[1])^w[2]^uint64(k.n), mix(w[3]^s[2], w[4]^s[3])^w[5])
	} else {
		h := maphash.String(c.seed, subject)
		h = (h ^ maphash.String(c.seed, action)) * 0x9e3779b97f4a7c15
		h = (h ^ maphash.String(c.seed, resource)) * 0x9e3779b97f4a7c15
		k.hash = (h ^ maphash.String(c.seed, owner)) * 0x9e3779b97f4a7c15
	}
	k.hash &= c.hashMask
}

// mix is the folded 128-bit product (wyhash's mum): every input bit reaches the result's bits.
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
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

// decisionCache is the bounded in-memory tier. A hit takes no lock, writes no shared memory but
// a hit counter of its own stripe (and a CLOCK bit, only when unset), and allocates nothing.
//
// A request's key is hashed once (cacheKey); the hash picks a shard. A shard is a fixed array of
// slots, each an atomic pointer to an immutable entry (the key's packed words, the decision and
// its Deps inline, the first stamps included, see store.Deps), and an open-addressing index from
// hash to slot and entry whose words are atomic. A hit reads one line of index and the entry,
// and checks the stamps the entry names; it trusts nothing it read from the index: the entry it
// reaches must carry the key itself (a hash collision is a probe, never a shared answer).
// Writers (a miss's insert, CLOCK eviction) hold the shard's mutex and publish a new entry
// before indexing it, so a concurrent reader sees an old entry, the new one, or none (a miss,
// evaluated again): an entry is served only while it is current, whichever it is. CLOCK (second
// chance) approximates LRU without a write per hit. The design was measured against a plain
// map, otter v2 and golang-lru v2 (the previous tier) in bench/ (BenchmarkL1Distinct;
// bench/RESULTS.md has the figures).
type decisionCache struct {
	shards     []cacheShard
	shardShift uint // the hash's top bits pick the shard
	seed       maphash.Seed
	secret     [4]uint64
	hashMask   uint64 // all ones; tests narrow it to make keys collide
	size       int64
	used       atomic.Int64 // slots in use, at most size (inserts only: hits never touch it)
	diskHits   atomic.Uint64
	misses     atomic.Uint64
	hitCounts  [hitStripes]hitStripe
}

// hitStripe is one of the hit counters, a cache line each: a hit adds to the stripe of its
// goroutine's stack (see countHit), so goroutines on different cores rarely share one.
type hitStripe struct {
	n atomic.Uint64
	_ [56]byte
}

const (
	hitStripeBits = 4
	hitStripes    = 1 << hitStripeBits
)

type cacheShard struct {
	index    []indexWord                  // linear probing
	slots    []atomic.Pointer[cacheEntry] // capacity of them (nil: free), in CLOCK order; read by writers only
	mu       sync.Mutex                   // serializes writers: they change index, slots, n and hand
	n        int                          // slots in use: slots[:n]
	capacity int                          // slots at most: twice the shard's share, so that uneven shards still hold size decisions in all
	hand     int                          // CLOCK hand
	_        [48]byte                     // 128 bytes: a shard's writer shares no line with another shard's readers
}

// indexWord is one position of a shard's index: the slot it names and that slot's entry, side by
// side, so a hit reads one cache line of index and then the entry. A reader may see w and e of
// different moments (they are stored one after the other); it checks the entry it reaches.
type indexWord struct {
	w atomic.Uint64 // 0: empty; else the hash's upper 32 bits << 32 | slot+1
	e atomic.Pointer[cacheEntry]
}

// cacheEntry is one cached decision, immutable once published but for its CLOCK bit, laid out
// for a hit: the first cache line holds what a lookup compares (hash, length and the packed
// key), the next the policy and the decision, the next two the rest of the decision and what
// Deps.Current reads (store.DepsCheckedBytes); a hit reads those four lines and nothing after
// them (hitBytes). Its size is a multiple of 128 bytes (384), and so is the start of every object
// of such a size class from its page, so the four lines are two aligned pairs, the prefetcher's
// unit (TestCacheEntryLayout).
type cacheEntry struct {
	hash   uint64
	n      uint32        // the packed key's length
	ref    atomic.Uint32 // CLOCK: referenced since the hand last passed
	inline [keyWords]uint64
	entry  cached
	long   string // the packed key when longer than keyBytes
	// logKey is the packed key as a string, made by the decision log's goroutine (which alone
	// reads and writes it) when it first records a hit on the entry.
	logKey string
	_      [(128 - unsafe.Sizeof(entryLayout{})%128) % 128]byte // not last: a zero-size last field is padded
	// logRun is 1 + the decision log's position of the entry's latest run of hits (see
	// recordRing.runOf); 0: none yet. Written once per run, not per hit. Beyond hitBytes: with a
	// decision log, a hit reads this line too, the sixth (one more miss on a cold entry; see
	// bench/RESULTS.md, "Stop 16: decision log cost").
	logRun atomic.Uint64
}

// hitBytes is how far into a cacheEntry a hit reads.
const hitBytes = unsafe.Offsetof(cacheEntry{}.entry) + unsafe.Offsetof(cached{}.deps) + store.DepsCheckedBytes

// entryLayout is cacheEntry without its padding.
type entryLayout struct {
	hash   uint64
	n, ref uint32
	inline [keyWords]uint64
	entry  cached
	long   string
	logKey string
	logRun uint64
}

// holds reports whether the entry is k's.
func (en *cacheEntry) holds(k *cacheKey) bool {
	if en.hash != k.hash || int(en.n) != k.n {
		return false
	}
	if k.n > keyBytes {
		return k.matches(en.long)
	}
	a, b := &en.inline, &k.inline
	return (a[0]^b[0])|(a[1]^b[1])|(a[2]^b[2])|(a[3]^b[3])|(a[4]^b[4])|(a[5]^b[5]) == 0
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
	for i := range c.secret {
		c.secret[i] = rand.Uint64() | 1
	}
	c.hashMask = ^uint64(0)
	c.size = int64(size)
	per := 2 * ((size + n - 1) / n)
	for i := range c.shards {
		c.shards[i].init(per)
	}
	return c
}

// init sizes an empty shard for capacity slots: the slot array (a pointer each, so readers never
// see it move) and an index of a power of two >= 1.25 capacity words. A shard holds its share,
// half its capacity, give or take a few per cent, so the index is usually at most 40 % full
// (80 % for a shard holding twice its share); a smaller index is fewer lines for a hit to miss.
func (s *cacheShard) init(capacity int) {
	s.capacity = capacity
	s.slots = make([]atomic.Pointer[cacheEntry], capacity)
	s.index = make([]indexWord, 1<<bits.Len(uint(capacity+capacity/4-1)))
}

func (c *decisionCache) shard(h uint64) *cacheShard {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	return &c.shards[h>>c.shardShift]
}

// get returns the cache entry for k when it is current under policy p. It takes no lock.
func (c *decisionCache) get(k *cacheKey, p *rego.Policy) (*cacheEntry, bool) {
	s := c.shard(k.hash)
	en := s.lookup(k)
	if en == nil || !en.entry.current(p) {
		return nil, false
	}
	if en.ref.Load() == 0 {
		en.ref.Store(1)
	}
	c.countHit()
	return en, true
}

// countHit adds a hit to the stripe of the calling goroutine's stack: goroutines' stacks lie
// apart, so concurrent readers mostly add to different cache lines (a shared counter, or one
// per shard, is a line every core writes on every hit).
func (c *decisionCache) countHit() {
	var here byte
	at := uint64(uintptr(unsafe.Pointer(&here))) >> 11 // a goroutine's stack is 2 KiB at least
	c.hitCounts[(at*0x9e3779b97f4a7c15)>>(64-hitStripeBits)].n.Add(1)
}

// put stores e under k, replacing k's previous entry or evicting another.
func (c *decisionCache) put(k *cacheKey, e *cached) {
	s := c.shard(k.hash)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put(k, e, &c.used, c.size)
}

func (c *decisionCache) hits() uint64 {
	var n uint64
	for i := range c.hitCounts {
		n += c.hitCounts[i].n.Load()
	}
	return n
}

// len is the number of cached decisions.
func (c *decisionCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += s.n
		s.mu.Unlock()
	}
	return n
}

// lookup returns the entry holding k, nil when there is none. It takes no lock: writers may move
// index words meanwhile, so it may miss an entry (never return another key's: the entry it
// returns holds k) and gives up after one pass over the index.
func (s *cacheShard) lookup(k *cacheKey) *cacheEntry {
	mask := len(s.index) - 1
	tag := k.hash >> 32
	pos := int(k.hash) & mask
	for range len(s.index) {
		w := s.index[pos].w.Load()
		if w == 0 {
			return nil
		}
		if w>>32 == tag {
			if en := s.index[pos].e.Load(); en != nil && en.holds(k) {
				return en
			}
		}
		pos = (pos + 1) & mask
	}
	return nil
}

// find returns the slot holding k and its index position, or -1 and the free position ending
// k's probe run. The caller holds the mutex.
func (s *cacheShard) find(k *cacheKey) (slot, pos int) {
	mask := len(s.index) - 1
	tag := k.hash >> 32
	for pos = int(k.hash) & mask; ; pos = (pos + 1) & mask {
		w := s.index[pos].w.Load()
		if w == 0 {
			return -1, pos
		}
		if w>>32 != tag {
			continue
		}
		i := int(uint32(w)) - 1
		if s.slots[i].Load().holds(k) {
			return i, pos
		}
	}
}

// put stores e under k; used counts the slots of every shard, at most size. The caller holds the
// mutex. The new entry is published before it is indexed, so a reader that finds the index word
// finds the entry.
func (s *cacheShard) put(k *cacheKey, e *cached, used *atomic.Int64, size int64) {
	en := &cacheEntry{hash: k.hash, n: uint32(k.n), inline: k.inline, entry: *e}
	if k.n > keyBytes {
		en.long = string(k.appendPacked(make([]byte, 0, k.n)))
	}
	if i, pos := s.find(k); i >= 0 {
		s.slots[i].Store(en)
		s.index[pos].e.Store(en)
		return
	}
	i := s.free(used, size)
	if i < 0 {
		return // full, and nothing of this shard's to evict: not cached
	}
	s.slots[i].Store(en)
	_, pos := s.find(k) // after the eviction, which may have moved index words
	s.index[pos].e.Store(en)
	s.index[pos].w.Store(k.hash>>32<<32 | uint64(i+1))
}

// free returns a slot for a new entry: a new one while the cache holds fewer than size and the
// shard is below its capacity, else the one CLOCK evicts in this shard (taken out of the index,
// then emptied); -1 when the cache is full and this shard holds nothing to evict. The caller
// holds the mutex.
func (s *cacheShard) free(used *atomic.Int64, size int64) int {
	if s.n < s.capacity {
		if used.Add(1) <= size {
			s.n++
			return s.n - 1
		}
		used.Add(-1)
	}
	if s.n == 0 {
		return -1
	}
	for {
		i := s.hand
		s.hand = (s.hand + 1) % s.n
		en := s.slots[i].Load()
		if en.ref.Load() != 0 {
			en.ref.Store(0)
			continue
		}
		s.unindex(i, en.hash)
		s.slots[i].Store(nil) // the evicted decision and Deps are garbage once no reader holds them
		return i
	}
}

// unindex removes slot i's index word (its entry's hash is h), shifting later words of its probe
// run back so every entry stays reachable from its home position. A word moves by being copied
// over the hole before its old place is reused, so a lock-free reader never sees an empty word
// in the middle of a run (it may still miss a word moving behind it: a miss, never a wrong hit).
func (s *cacheShard) unindex(i int, h uint64) {
	mask := len(s.index) - 1
	pos := int(h) & mask
	for int(uint32(s.index[pos].w.Load()))-1 != i {
		pos = (pos + 1) & mask
	}
	for j := (pos + 1) & mask; ; j = (j + 1) & mask {
		w := s.index[j].w.Load()
		if w == 0 {
			s.index[pos].w.Store(0)
			s.index[pos].e.Store(nil)
			return
		}
		en := s.slots[int(uint32(w))-1].Load()
		home := int(en.hash) & mask
		// The word at j stays unless its home lies cyclically outside (pos, j].
		if (pos < j && (home <= pos || home > j)) || (pos > j && home <= pos && home > j) {
			s.index[pos].e.Store(en)
			s.index[pos].w.Store(w)
			pos = j
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
