package authz

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"math/bits"
	"reflect"
	"strings"
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
// made once per request (decisionCache.key): the four parts, their 128-bit fingerprint and the
// index hash. A hit reads nothing else of it; the packed form the entry keeps (for the decision
// log and the Badger tier) is made from the parts on a miss (decisionCache.entry).
type cacheKey struct {
	subject, action, resource, owner string
	fp1, fp2                         uint64 // the fingerprint: the key's identity in the cache
	ih                               uint64 // the index hash (fp1; tests narrow it, see hashMask)
}

// keyWords is the entry's inline room for packed keys, in words (longer ones are kept as a
// string). A key whose parts hold at most keyBytes bytes in all is hashed in one call per seed,
// from keyBufWords words at most (key); a longer one part by part (hashLong).
const (
	keyWords    = 6
	keyBytes    = 8 * keyWords
	keyBufWords = 1 + (keyBytes+4*7)/8 // the lengths, then four parts of keyBytes bytes in all, each padded to a word
)

// packedLen is the length of the key's packed form: its parts joined by NUL bytes.
func (k *cacheKey) packedLen() int {
	return len(k.subject) + len(k.action) + len(k.resource) + len(k.owner) + 3
}

// splits reports whether k's packed form is k's alone: its subject, resource and owner hold no
// NUL (the action may: an author's catalog names any string), so the first NUL ends the subject
// and the last two begin the resource and the owner. Every valid request's does (those three are
// slugs and references); a request with a NUL in one of them shares its packed form with another
// request's — a valid one's when the NUL was moved out of its action — and must not be looked up
// by it (the Badger tier: fromDisk).
func (k *cacheKey) splits() bool {
	return strings.IndexByte(k.subject, 0) < 0 && strings.IndexByte(k.resource, 0) < 0 &&
		strings.IndexByte(k.owner, 0) < 0
}

// appendPacked appends the packed form.
func (k *cacheKey) appendPacked(b []byte) []byte {
	b = append(append(b, k.subject...), 0)
	b = append(append(b, k.action...), 0)
	b = append(append(b, k.resource...), 0)
	return append(b, k.owner...)
}

// key makes k the cache key of a request: two hash/maphash values under the cache's two seeds
// (random per cache) of an injective encoding of the four parts, so that two requests share a
// fingerprint only by a collision of keyed 128-bit hashes, whatever bytes (NULs included) their
// parts hold. See decisionCache for the bound; nobody can choose colliding requests without the
// seeds.
//
// The encoding of a key whose parts hold at most keyBytes bytes in all: a word of the four
// lengths (a byte each), then each part from a word boundary, its last word zero padded — 8 to
// 80 bytes, read from the parts' strings as words (no copy into a packed form: the lengths say
// where each part ends). A longer key's is hashLong's: its lengths in 32 bytes, then its parts,
// at least 32 + keyBytes + 1 = 81 bytes. The two encodings never have the same length, and each
// is injective.
func (c *decisionCache) key(k *cacheKey, subject, action, resource, owner string) {
	k.subject, k.action, k.resource, k.owner = subject, action, resource, owner
	if len(subject)+len(action)+len(resource)+len(owner) <= keyBytes {
		var buf [keyBufWords]uint64
		buf[0] = uint64(len(subject)) | uint64(len(action))<<8 | uint64(len(resource))<<16 | uint64(len(owner))<<24
		i := putWords(&buf, 1, subject)
		i = putWords(&buf, i, action)
		i = putWords(&buf, i, resource)
		if owner != "" { // mostly empty: no call
			i = putWords(&buf, i, owner)
		}
		raw := unsafe.Slice((*byte)(unsafe.Pointer(&buf)), 8*i)
		k.fp1, k.fp2 = maphash.Bytes(c.seed1, raw), maphash.Bytes(c.seed2, raw)
	} else {
		k.fp1, k.fp2 = k.hashLong(c.seed1), k.hashLong(c.seed2)
	}
	k.ih = k.fp1 & c.hashMask
}

// putWords writes s into buf from word i, its last word zero padded, and returns the word after
// it. The caller made room (key). A part of 8 bytes or more ends with its last 8 bytes, shifted
// down over those already written; a shorter one is read in loads of its own bytes only.
func putWords(buf *[keyBufWords]uint64, i int, s string) int {
	switch n := len(s); {
	case n >= 8:
		for t := s; len(t) > 8; t = t[8:] {
			buf[i] = load64(t)
			i++
		}
		buf[i] = load64(s[n-8:]) >> (-8 * n & 63)
	case n >= 4: // two loads of four bytes, overlapping: the middle bytes are the same in both
		buf[i] = uint64(load32(s)) | uint64(load32(s[n-4:]))<<(8*(n-4))
	case n > 0: // bytes 0, n/2 and n-1 are every byte of one to three
		buf[i] = uint64(s[0]) | uint64(s[n/2])<<(8*(n/2)) | uint64(s[n-1])<<(8*(n-1))
	default:
		return i
	}
	return i + 1
}

// load64 and load32 read the first 8 and 4 bytes of s, little endian (one load each).
func load64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func load32(s string) uint32 {
	_ = s[3]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// hashLong is key's hash of a key that does not fit: the four lengths in 8 bytes each, then the
// parts.
func (k *cacheKey) hashLong(seed maphash.Seed) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	var lens [32]byte
	binary.LittleEndian.PutUint64(lens[0:], uint64(len(k.subject)))
	binary.LittleEndian.PutUint64(lens[8:], uint64(len(k.action)))
	binary.LittleEndian.PutUint64(lens[16:], uint64(len(k.resource)))
	binary.LittleEndian.PutUint64(lens[24:], uint64(len(k.owner)))
	_, _ = h.Write(lens[:])
	_, _ = h.WriteString(k.subject)
	_, _ = h.WriteString(k.action)
	_, _ = h.WriteString(k.resource)
	_, _ = h.WriteString(k.owner)
	return h.Sum64()
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

// decisionCache is the bounded in-memory tier. A hit takes no lock and allocates nothing; a
// fast hit reads one 32-byte word of the index (half a cache line) and its epoch group's epoch,
// and writes no shared memory but a hit counter of its own stripe (and a CLOCK bit, only when
// unset).
//
// A request's key is hashed once (cacheKey): a 128-bit fingerprint, whose first half also picks
// the shard (its top byte's low bits) and the home position in the shard's index (linear
// probing). A hit validates nothing: a request gets an entry only once decided, and deciding
// validates it first (an invalid request returns its typed error and is not cached), or from the
// Badger tier, which holds decided requests' entries and is read only under a packed key naming
// one request (cacheKey.splits; TestAttack21DiskTierNeverServesAnInvalidRequest); the
// fingerprint stands for the four parts (key: an injective encoding, whatever bytes they hold),
// and whether a request is valid depends on those parts and the policy only (a policy swap makes
// every word slow, and a slow hit checks the entry's policy), so a hit's request was valid when
// its decision was made (TestInvalidRequestNeverHits: invalid requests one byte off a cached
// one). An index word
// (cacheWord) holds the fingerprint, the decision's reasons by pointer and one meta word: the
// verdict, the role (by index among the cache's roles), the number of reasons, a CLOCK bit, a
// lock bit, the entry's epoch group and a stamp — the group's epoch at which the entry was last
// found current. The entry itself
// (cacheEntry: the key, the decision, its policy and Deps) sits beside the word in a parallel
// array, read only by a slow hit, by writers and by the decision log.
//
// Currency. An entry's epoch group g is its Deps' (store.Deps.EpochGroup: for a decision, whose
// facts all lie in the request's org, the part of its org holding its project's cell, or the
// org-wide part when it read no project; store.EpochAll for Deps over several orgs or projects'
// parts). The cache's epoch of group g (now) is the store's (store.Epoch.Load(g): it moves after
// every change of a stamp cell it covers — of g, or an org-wide cell of g's org —, after every
// published revision that wrote one, and at Close; EpochAll's after every change) plus the
// number of policy swaps (policySwapped, after the swap). A hit is
// fast when its word's stamp is its group's epoch as read before and after the request's revision
// (get): nothing the decision can depend on has changed since the word was stamped, so the
// decision is served from the word, no other line read. Otherwise (another epoch, an entry never
// stamped, the word being written) the hit is slow: the entry's Deps and policy are checked as
// before the stamps existed (cached.current) and, when current, the word is stamped (stamp) with
// its group's epoch read BEFORE that check.
//
// The invariant: a word stamped E of group g is served fast only while the epoch of g still
// reads E, and every cell its Deps watch moves g's epoch when it changes (store.Epoch: that is
// what Deps.EpochGroup names; EpochAll moves with every change). A write racing the check so leaves the
// word behind the epoch: the writer stores its cells, then moves their groups; if the check saw a
// cell before the write stored it, the epoch load preceding the check preceded the writer's move,
// so the stamp is older than the epoch every later reader reads (TestFastHitNeverStale,
// TestStampRacingWrite). Decisions that expire (store.Deps.Expires) are never stamped: their hits
// are all slow, reading the clock. So a write makes the words of the groups it moved slow once —
// one check each, as every hit was before — evicts nothing, and leaves every other group's words
// fast: a write to a project, those of the org's other parts; a write in an org, those of every
// other org (TestWriteElsewhereLeavesWordsFast; two orgs whose names share a group, or two
// projects of one org a part, share its epoch).
//
// Stamps keep epochBits of the epoch; each group's era (its epoch's bits above them) is the
// cache's. When a group's epoch enters a new era, the stamps of the group's words are cleared
// (advanceEra) before a stamp of the new era is served, so a word stamped E never matches
// E + 2^epochBits (TestEpochWrap narrows the bits).
//
// Identity. A fast hit compares the 128-bit fingerprint, never the key. Two distinct requests
// share a fingerprint with probability 2^-128 per pair under the random seeds; a lookup compares
// its fingerprint with the ≈ 2.6 words of its probe run (load ≤ 0.875), whose first halves share
// up to ≈ 17 of their low bits with it (the shard and home position), so a false hit needs ≈ 111
// bits to agree by chance: ≈ 2.6·2^-111 per lookup, ≈ 10^-15 after a billion lookups a second
// for a hundred years (bench/RESULTS.md, stop 17, has the arithmetic for 128 bits). A reader
// reads a word between two loads of its meta word and gives up (slow hit) when they differ:
// every rewrite of a word changes its meta (a rewrite count of 20 bits), so a torn read needs
// the word rewritten a multiple of 2^20 times between the reader's two meta loads (four loads
// apart), ending with the same verdict, role, reasons count and stamp. (With a 6-bit count, 64
// rewrites of one word during a stalled reader could hand it another entry's reasons pointer
// with this meta's count: wrong reasons, and a slice over a shorter array. 2^20 inserts into one
// word take a second or more under the shard's mutex, and they need a cache churning through
// that one word meanwhile.)
//
// Writers (a miss's insert, CLOCK eviction, stamps, growth) hold the shard's mutex. A word is
// written with its lock bit set, its entry first, and published by its meta word, so a reader sees
// an old word, the new one, or a locked one (a slow hit; whatever entry a slow hit reaches is
// checked to carry the key's fingerprint). CLOCK (second chance, over index positions)
// approximates LRU without a write per hit. A shard's index starts at 1.25 times its share of the
// size and doubles when over 7/8 full (growth: a new index published whole; the old one's words are
// unstamped). The design was measured against a plain map, otter v2, golang-lru v2 and the floors
// of one-word hits in bench/ (BenchmarkL1Distinct; bench/RESULTS.md has the figures).
type decisionCache struct {
	// What a fast hit reads, first.
	shardAt      *[maxShards]cacheShard      // shards, as an array: shard indexes it with no bounds check
	shardMask    uint64                      // len(shards) - 1
	hashMask     uint64                      // all ones; tests narrow it to make keys share homes and shards
	shards       []cacheShard                // shardAt's first len (a power of two)
	epochBits    uint                        // of the epoch, in a stamp; tests narrow it
	epochMask    uint64                      // 1<<epochBits - 1
	epochField   uint64                      // epochMask << metaEpochShift
	epoch        atomic.Pointer[store.Epoch] // the store's, once an entry was first found current
	policySwaps  atomic.Uint64               // part of the epoch (policySwapped)
	roles        [noRole + 1]string          // a word's role index names one: written before any word names it (noRole: none)
	seed1, seed2 maphash.Seed

	policy *atomic.Pointer[rego.Policy] // the engine's policy in force (stamp); nil: no stamps
	// afterCheck, tests only: runs in a slow hit between the check and the stamp.
	afterCheck func()
	eraMu      sync.Mutex  // one advanceEra at a time
	walking    atomic.Bool // advanceEra is clearing stamps: none is made meanwhile
	foreignDir atomic.Bool // the Directory's revisions are not the store's: no stamps (foreign)
	roleMu     sync.Mutex  // guards nroles and roles' writes
	nroles     int
	size       int64
	used       atomic.Int64 // entries, at most size (inserts only: hits never touch it)
	diskHits   atomic.Uint64
	misses     atomic.Uint64
	hitCounts  [hitStripes]hitStripe
	// eras holds each epoch group's era: its epoch's bits above epochBits, for which the stamps of
	// its words are served.
	eras [store.EpochGroups]atomic.Uint64
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

// A word's meta: used, lock, stamped, CLOCK and verdict bits; the role's index (noRole: none, the
// word is never stamped); the number of reasons; a count of the word's rewrites (a reader's two
// loads of the meta differ across any rewrite); the entry's epoch group; and the stamp's epoch
// bits.
const (
	metaUsed       = 1 << 0
	metaLock       = 1 << 1 // being written: readers take the slow path
	metaStamped    = 1 << 2 // the epoch field holds an epoch at which the entry was current
	metaRef        = 1 << 3 // CLOCK: referenced since the hand last passed
	metaAllow      = 1 << 4
	metaRoleShift  = 5  // 5 bits
	metaLenShift   = 10 // 4 bits: a decision with more reasons is never stamped
	metaVerShift   = 14 // 20 bits
	metaGroupShift = 34 // 12 bits: store.EpochGroups
	metaGroupBits  = 12
	metaEpochShift = metaGroupShift + metaGroupBits // the rest: 18 bits
	noRole         = 31
	maxFastReasons = 15
	metaVerMask    = (1<<20 - 1) << metaVerShift
	// metaKept is what a word keeps when moved or re-published with the same entry: its stamp
	// and CLOCK bit.
	metaKept = metaStamped | metaRef | ^uint64(1<<metaEpochShift-1)
	// defaultEpochBits is the stamp's width: 2^18 epochs of a group between walks of its words (a
	// membership write moves each of its org's groups by two or three: at 10,000 a second into one
	// org, each of its 16 groups enters a new era every ≈ 13 s, a walk of the index every ≈ 0.8 s).
	defaultEpochBits = 64 - metaEpochShift
)

// The meta word's group field holds every epoch group.
const (
	_ uint = 1<<metaGroupBits - store.EpochGroups
	_ uint = store.EpochGroups - 1<<metaGroupBits
)

// cacheWord is one position of a shard's index: 32 bytes, two to a cache line (index arrays are
// powers of two of them, so a word never straddles two lines; TestCacheWordLayout).
type cacheWord struct {
	fp1, fp2 atomic.Uint64
	reasons  atomic.Pointer[Reason] // the decision's reasons array (nil when Reasons is nil)
	meta     atomic.Uint64          // 0: never used; else see metaUsed
}

// cacheIndex is a shard's index: the words and, at the same positions, their entries. A shard
// replaces its index when it grows; readers that loaded the old one keep reading it safely.
type cacheIndex struct {
	words []cacheWord
	ents  []atomic.Pointer[cacheEntry]
	mask  int
}

type cacheShard struct {
	index    atomic.Pointer[cacheIndex]
	mu       sync.Mutex // serializes writers: they change index (and its words), n and hand
	n        int        // entries
	capacity int        // entries at most: twice the shard's share, so that uneven shards still hold size decisions in all
	hand     int        // CLOCK hand, an index position
	_        [88]byte   // 128 bytes: a shard's writer shares no line with another shard's readers
}

// cacheEntry is one cached decision, immutable once published. A fast hit never reads it; a
// slow hit reads its fingerprint, policy, decision and Deps; the decision log its key and run words.
type cacheEntry struct {
	fp1, fp2 uint64
	meta     uint64  // its word's meta without stamp, CLOCK bit and rewrite count
	reasons  *Reason // its word's reasons
	// logRun is, per stripe of hits (runStripe), 1 + the decision log's position of the entry's
	// latest run of that stripe's hits (see recordRing.runOf); 0: none yet. Written once per run,
	// not per hit. With a decision log, a hit reads the entry's first four words and its stripe's
	// run (bench/RESULTS.md, "Stop 16: decision log cost" and "Stop 24").
	logRun [logRunStripes]atomic.Uint64
	ih     uint64 // the index hash: the entry's home
	n      uint32 // the packed key's length
	stamps bool   // its word may be stamped: the role is indexed, few reasons, no expiry
	inline [keyWords]uint64
	entry  cached
	long   string // the packed key when longer than keyBytes
	// logKey is the packed key as a string, made by the decision log's goroutine (which alone
	// reads and writes it) when it first records a hit on the entry.
	logKey string
}

// holds reports whether the entry is k's: the same fingerprint.
func (en *cacheEntry) holds(k *cacheKey) bool { return en.fp1 == k.fp1 && en.fp2 == k.fp2 }

// served is en when it is the entry of a word that was k's, of meta m and reasons r (what get
// served), else nil (en may be nil, or another entry: the position was rewritten since). The
// word's verdict, role, number of reasons and epoch group are its entry's meta (the rest of m is
// its stamp, CLOCK bit and rewrite count), its reasons its entry's reasons: an entry that matches
// them all holds the decision served, for its reasons array is that decision's own (allocated
// for it, and held by the decision served, so no later one takes its address). All of it is in
// the entry's first 64 bytes, beside its runs (a line, or two where the allocation straddles
// one): a logged hit compares no string.
//
// A decision without reasons has no array of its own (nil, or the address every zero-size
// allocation shares): its role (when beyond the role index: noRole), its policy, or whether its
// entry keeps more than maxFastReasons reasons (which a word counts as none) may differ from
// another's of the same meta, so it never matches and is logged in full, as is a decision with
// more than maxFastReasons reasons. (No decision the engine makes has no reasons today:
// TestServedNoReasons.)
func (en *cacheEntry) served(k *cacheKey, m uint64, r *Reason) *cacheEntry {
	if en != nil && m&(maxFastReasons<<metaLenShift) != 0 && en.holds(k) && en.meta == m&^(metaKept|metaVerMask) && en.reasons == r {
		return en
	}
	return nil
}

// shardSlots is the smallest number of entries a shard holds; maxShards bounds the shards.
const (
	shardSlots = 16
	maxShards  = 256
)

// newDecisionCache returns a cache of size entries (nil for 0). policy is the engine's policy in
// force: stamps are made only for its decisions (nil: never; tests of the index alone).
func newDecisionCache(size int, policy *atomic.Pointer[rego.Policy]) *decisionCache {
	if size == 0 {
		return nil
	}
	n := 1
	for n < maxShards && size/(2*n) >= shardSlots {
		n *= 2
	}
	c := &decisionCache{seed1: maphash.MakeSeed(), seed2: maphash.MakeSeed(), shardAt: new([maxShards]cacheShard),
		shardMask: uint64(n - 1), policy: policy}
	c.shards = c.shardAt[:n]
	c.hashMask = ^uint64(0)
	c.setEpochBits(defaultEpochBits)
	c.size = int64(size)
	share := (size + n - 1) / n
	for i := range c.shards {
		c.shards[i].capacity = 2 * share
		c.shards[i].index.Store(newCacheIndex(share + share/4))
	}
	return c
}

// setEpochBits sets the stamp's width (tests narrow it). Before the cache is used.
func (c *decisionCache) setEpochBits(b uint) {
	c.epochBits = b
	c.epochMask = 1<<b - 1
	c.epochField = c.epochMask << metaEpochShift
}

// newCacheIndex returns an empty index of a power of two >= n words (8 at least).
func newCacheIndex(n int) *cacheIndex {
	size := 1 << bits.Len(uint(max(n, 8)-1))
	return &cacheIndex{words: lineWords(size), ents: make([]atomic.Pointer[cacheEntry], size), mask: size - 1}
}

// lineWords allocates n words starting on a cache line. (A make would not do: the runtime puts
// an 8-byte header before an object with pointers of 512 bytes to 32 KiB, and then half the
// words straddle two lines.) The words follow a padding chosen for the address the runtime gives.
func lineWords(n int) []cacheWord {
	words := paddedWords(0, n)
	if r := uintptr(unsafe.Pointer(unsafe.SliceData(words))) % 64; r != 0 {
		words = paddedWords(int(64-r)/8, n)
	}
	return words
}

// paddedWords allocates pad words of 8 bytes, then n cacheWords, and returns the latter.
func paddedWords(pad, n int) []cacheWord {
	t := reflect.StructOf([]reflect.StructField{
		{Name: "Pad", Type: reflect.ArrayOf(pad, reflect.TypeFor[uint64]())},
		{Name: "Words", Type: reflect.ArrayOf(n, reflect.TypeFor[cacheWord]())},
	})
	return unsafe.Slice((*cacheWord)(reflect.New(t).Elem().Field(1).Addr().UnsafePointer()), n)
}

// shard is the shard of index hash h: its top byte's low bits. (The shards beyond len(shards)
// are never used: 128 bytes each.)
func (c *decisionCache) shard(h uint64) *cacheShard { return &c.shardAt[h>>56&c.shardMask] }

// now is the cache's epoch of group g: the policy swaps, then the store's epoch of g, read in
// that order (see stamp). All ones before an entry was first found current (no word is stamped
// yet).
func (c *decisionCache) now(g int) uint64 {
	if ep := c.epoch.Load(); ep != nil {
		return c.nowIn(ep, g)
	}
	return ^uint64(0)
}

// nowIn is now with the store's epochs ep.
func (c *decisionCache) nowIn(ep *store.Epoch, g int) uint64 {
	swaps := c.policySwaps.Load()
	return swaps + ep.Load(g)
}

// group is the epoch group of a word's meta.
func group(m uint64) int { return int(m>>metaGroupShift) & (store.EpochGroups - 1) }

// policySwapped moves the cache's epoch after the engine's policy changed, so no word stamped under
// the old policy is a fast hit any more.
func (c *decisionCache) policySwapped() { c.policySwaps.Add(1) }

// get writes to d the decision cached for k when it is current under policy p, and returns where
// its entry is and the meta of its word (for the decision log: the entry there may have been
// replaced since, which cacheEntry.served tells; a fast hit reads no entry) and the revision the
// decision holds at, read before the entry is checked (see authorize). A fast hit
// reads the store's revision (store.Epoch.Revision: the word was stamped for Deps of that store)
// between two loads of the word's group's epoch (now), which must both be the word's stamp, so
// the decision holds at the revision and was made no later (store.Epoch); a slow hit or a miss
// reads dir's. d is zero when called: a fast hit writes its verdict, role and reasons (the word's)
// and leaves the rest, Revision 0. It takes no lock.
func (c *decisionCache) get(k *cacheKey, p *rego.Policy, dir Directory, d *Decision) (*atomic.Pointer[cacheEntry], uint64, uint64, bool) {
	s := c.shard(k.ih)
	ix := s.index.Load()
	pos := int(k.ih) & ix.mask
	for range len(ix.words) {
		w := &ix.words[pos]
		m := w.meta.Load()
		if m&metaUsed == 0 {
			break
		}
		if w.fp1.Load() == k.fp1 && w.fp2.Load() == k.fp2 {
			r := w.reasons.Load()
			if ep := c.epoch.Load(); ep != nil {
				g := group(m)
				before := c.nowIn(ep, g)
				rev := ep.Revision()
				after := c.nowIn(ep, g)
				if before == after && after>>c.epochBits == c.eras[g].Load() &&
					m&(metaLock|metaStamped|c.epochField) == metaStamped|(after&c.epochMask)<<metaEpochShift &&
					(w.meta.Load()^m)&^metaRef == 0 {
					d.Allowed, d.Role = m&metaAllow != 0, c.roles[m>>metaRoleShift&noRole]
					n := int(m>>metaLenShift) & maxFastReasons
					// d.Reasons = unsafe.Slice(r, n), without its overflow checks (n < 16).
					*(*reasonsHeader)(unsafe.Pointer(&d.Reasons)) = reasonsHeader{r, n, n}
					if m&metaRef == 0 {
						w.meta.Or(metaRef)
					}
					c.countHit()
					return &ix.ents[pos], m, rev, true
				}
			}
			return c.slowHit(s, ix, pos, k, p, dir, d)
		}
		pos = (pos + 1) & ix.mask
	}
	return nil, 0, dir.Revision(), false
}

// reasonsHeader is the layout of a []Reason.
type reasonsHeader struct {
	data     *Reason
	len, cap int
}

// The same size as a slice (and the order is the runtime's: pointer, length, capacity).
const (
	_ = uintptr(unsafe.Sizeof(reasonsHeader{}) - unsafe.Sizeof([]Reason(nil)))
	_ = uintptr(unsafe.Sizeof([]Reason(nil)) - unsafe.Sizeof(reasonsHeader{}))
)

// slowHit is get for a word it could not serve alone: the entry's currency checked (and the word
// stamped when current), the revision read from dir before the check.
//
// A fast hit is labelled with the revision of the store whose epochs stamped its word
// (store.Epoch.Revision), a slow hit with dir's: Directory.Revision must be that store's. Read
// between two loads of the store's (r0 and r1), a conforming dir's revision lies between them; one
// outside them makes the cache foreign: no word is stamped any more, so every hit is checked and
// labelled with dir's revision.
//
//go:noinline
func (c *decisionCache) slowHit(s *cacheShard, ix *cacheIndex, pos int, k *cacheKey, p *rego.Policy, dir Directory, d *Decision) (*atomic.Pointer[cacheEntry], uint64, uint64, bool) {
	en := ix.ents[pos].Load()
	if en == nil || !en.holds(k) {
		return nil, 0, dir.Revision(), false // being rewritten: a miss
	}
	if en.stamps && c.epoch.Load() == nil {
		c.epoch.CompareAndSwap(nil, en.entry.deps.Epoch())
	}
	ep := c.epoch.Load()
	var r0 uint64
	if ep != nil {
		r0 = ep.Revision()
	}
	rev := dir.Revision()
	e := c.now(group(en.meta)) // before the check: see stamp
	if !en.entry.current(p) {
		return nil, 0, rev, false
	}
	if c.afterCheck != nil {
		c.afterCheck() // tests: a write racing the check
	}
	*d = en.entry.dec
	if m := ix.words[pos].meta.Load(); m&metaRef == 0 {
		ix.words[pos].meta.Or(metaRef)
	}
	c.countHit()
	if en.stamps && ep != nil {
		if rev < r0 || rev > ep.Revision() {
			c.foreign()
		} else {
			c.stamp(s, ix, pos, en, e)
		}
	}
	return &ix.ents[pos], en.meta, rev, true
}

// foreign records that the Directory's revisions are not the store's whose epochs stamp the words
// (see slowHit): no word is stamped from now on, and the policy swaps move, so that none stamped
// before is served fast.
func (c *decisionCache) foreign() {
	if !c.foreignDir.Swap(true) {
		c.policySwapped()
	}
}

// stamp records that en, at position pos of index ix, was found current after the cache's epoch
// of its group g read e: its word is stamped e, so hits are fast while g's epoch reads e.
//
// Why this is never stale. The caller read e (now(g): the policy swaps, then the store's epoch of
// g), then checked en (its policy is the policy in force, read here after e; its Deps' cells are
// those seen, each moving g's epoch when it changes: g is their Deps.EpochGroup — a cell of g's
// part, an org-wide cell of its org, which moves every part of the org, or any cell when g is
// EpochAll). A store write stores its cells and then moves the epochs they cover and EpochAll's;
// a policy swap stores the policy and then counts a swap. If the check missed a write's cell, it
// read the cell before the write stored it, so e's load of g's epoch came before the write's move
// of g, and every reader after the write returned reads an epoch of g above e (both counts only
// grow): the word is already stale for them. If the check read the old policy, e's load of the
// swaps came before the swap was counted: the same. A stamp is made under the shard's mutex only
// while en is still the entry at pos of the shard's index (no word is stamped for another entry),
// only in g's current era, not while advanceEra clears stamps, and never once the Directory's
// revisions were seen to be another store's (foreign).
func (c *decisionCache) stamp(s *cacheShard, ix *cacheIndex, pos int, en *cacheEntry, e uint64) {
	ep := c.epoch.Load()
	if c.policy == nil || ep == nil || en.entry.deps.Epoch() != ep || en.entry.policy != c.policy.Load() || c.foreignDir.Load() {
		return // another store's Deps, decided under another policy than the one in force, or foreign
	}
	g := group(en.meta)
	if era := e >> c.epochBits; era != c.eras[g].Load() {
		if era > c.eras[g].Load() {
			c.advanceEra(g, era)
		}
		return
	}
	stamp := metaStamped | (e&c.epochMask)<<metaEpochShift
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.index.Load() != ix || ix.ents[pos].Load() != en || c.walking.Load() || e>>c.epochBits != c.eras[g].Load() {
		return
	}
	w := &ix.words[pos]
	for {
		m := w.meta.Load()
		if m&metaStamped != 0 && m&c.epochField >= stamp&c.epochField {
			return // stamped as late already
		}
		if w.meta.CompareAndSwap(m, m&^(metaStamped|c.epochField)|stamp) {
			return // (a CAS: a hit may set the CLOCK bit meanwhile)
		}
	}
}

// advanceEra moves group g's era to era (above the current one): it clears the stamp of every
// word of group g in every index, then publishes the era. No stamp is made meanwhile (walking)
// and none of the old era is served after (a fast hit compares its group's era), so a stamp never
// matches an epoch 2^epochBits later.
func (c *decisionCache) advanceEra(g int, era uint64) {
	c.eraMu.Lock()
	defer c.eraMu.Unlock()
	if c.eras[g].Load() >= era {
		return
	}
	c.walking.Store(true)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.index.Load().unstamp(g)
		s.mu.Unlock()
	}
	c.eras[g].Store(era)
	c.walking.Store(false)
}

// unstamp clears the stamp of every word of group g (of every word when g < 0). The caller holds
// the shard's mutex.
func (ix *cacheIndex) unstamp(g int) {
	for i := range ix.words {
		w := &ix.words[i]
		for {
			m := w.meta.Load()
			if m&metaStamped == 0 || g >= 0 && group(m) != g || w.meta.CompareAndSwap(m, m&^metaStamped) {
				break
			}
		}
	}
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
	en := c.entry(k, e)
	s := c.shard(k.ih)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put(en, &c.used, c.size)
}

// entry makes the entry of e under k.
func (c *decisionCache) entry(k *cacheKey, e *cached) *cacheEntry {
	n := k.packedLen()
	en := &cacheEntry{fp1: k.fp1, fp2: k.fp2, ih: k.ih, n: uint32(n), entry: *e}
	if n > keyBytes {
		en.long = string(k.appendPacked(make([]byte, 0, n)))
	} else {
		b := (*[keyBytes]byte)(unsafe.Pointer(&en.inline))
		i := copy(b[:], k.subject) + 1 // the NUL separators are the zero padding's
		i += copy(b[i:], k.action) + 1
		i += copy(b[i:], k.resource) + 1
		copy(b[i:], k.owner)
	}
	en.meta = metaUsed | uint64(e.deps.EpochGroup())<<metaGroupShift
	if e.dec.Allowed {
		en.meta |= metaAllow
	}
	role := c.roleIndex(e.dec.Role)
	en.meta |= uint64(role) << metaRoleShift
	if n := len(e.dec.Reasons); n <= maxFastReasons {
		en.meta |= uint64(n) << metaLenShift
		en.reasons = unsafe.SliceData(e.dec.Reasons)
		en.stamps = role != noRole && !e.deps.Expires()
	}
	return en
}

// roleIndex is the index of role among the cache's roles, added when new; noRole when there is
// no room (its decisions are never stamped: their hits are slow).
func (c *decisionCache) roleIndex(role string) int {
	c.roleMu.Lock()
	defer c.roleMu.Unlock()
	for i := range c.nroles {
		if c.roles[i] == role {
			return i
		}
	}
	if c.nroles == noRole {
		return noRole
	}
	c.roles[c.nroles] = role
	c.nroles++
	return c.nroles - 1
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

// find returns the position of the word with fingerprint fp1, fp2 and true, or the free position
// ending the probe run from home and false. The caller holds the mutex (the index has a free word:
// see put).
func (ix *cacheIndex) find(home int, fp1, fp2 uint64) (int, bool) {
	for pos := home & ix.mask; ; pos = (pos + 1) & ix.mask {
		w := &ix.words[pos]
		if w.meta.Load()&metaUsed == 0 {
			return pos, false
		}
		if w.fp1.Load() == fp1 && w.fp2.Load() == fp2 {
			return pos, true
		}
	}
}

// set writes en's word at pos, keeping kept of the meta (metaKept bits: 0 for a new word). The
// caller holds the mutex. The word is locked first and published last, with one more rewrite
// counted, so a reader never combines two words' fields unnoticed (decisionCache).
func (ix *cacheIndex) set(pos int, en *cacheEntry, kept uint64) {
	w := &ix.words[pos]
	ver := (w.meta.Load() + 1<<metaVerShift) & metaVerMask
	w.meta.Store(metaUsed | metaLock | ver)
	ix.ents[pos].Store(en)
	w.fp1.Store(en.fp1)
	w.fp2.Store(en.fp2)
	w.reasons.Store(en.reasons)
	w.meta.Store(en.meta | ver | kept&metaKept)
}

// clear empties the word at pos (keeping its rewrite count). The caller holds the mutex.
func (ix *cacheIndex) clear(pos int) {
	w := &ix.words[pos]
	w.meta.Store((w.meta.Load() + 1<<metaVerShift) & metaVerMask)
	ix.ents[pos].Store(nil)
	w.reasons.Store(nil) // the evicted decision is garbage once no reader holds it
}

// put stores en; used counts the entries of every shard, at most size. The caller holds the
// mutex.
func (s *cacheShard) put(en *cacheEntry, used *atomic.Int64, size int64) {
	ix := s.index.Load()
	if pos, ok := ix.find(int(en.ih), en.fp1, en.fp2); ok {
		ix.set(pos, en, 0)
		return
	}
	if !s.free(used, size) {
		return // full, and nothing of this shard's to evict: not cached
	}
	if s.n > len(ix.words)-len(ix.words)/8 {
		ix = s.grow()
	}
	pos, _ := ix.find(int(en.ih), en.fp1, en.fp2) // after the eviction, which may have moved words
	ix.set(pos, en, 0)
}

// free makes room for one more entry: a new one while the cache holds fewer than size and the
// shard is below its capacity (counted in n), else by evicting the entry CLOCK chooses in this
// shard; false when the cache is full and this shard holds nothing to evict. The caller holds
// the mutex.
func (s *cacheShard) free(used *atomic.Int64, size int64) bool {
	if s.n < s.capacity {
		if used.Add(1) <= size {
			s.n++
			return true
		}
		used.Add(-1)
	}
	if s.n == 0 {
		return false
	}
	ix := s.index.Load()
	for {
		pos := s.hand
		s.hand = (s.hand + 1) & ix.mask
		w := &ix.words[pos]
		m := w.meta.Load()
		switch {
		case m&metaUsed == 0:
		case m&metaRef != 0:
			w.meta.And(^uint64(metaRef))
		default:
			ix.remove(pos)
			return true
		}
	}
}

// remove takes the word at pos out, shifting later words of its probe run back so every entry
// stays reachable from its home position. A word moves by being copied over the hole before its
// old place is reused, so a lock-free reader never sees an empty word in the middle of a run (it
// may still miss a word moving behind it: a miss, never a wrong hit). The caller holds the mutex.
func (ix *cacheIndex) remove(pos int) {
	mask := ix.mask
	for j := (pos + 1) & mask; ; j = (j + 1) & mask {
		m := ix.words[j].meta.Load()
		if m&metaUsed == 0 {
			ix.clear(pos)
			return
		}
		en := ix.ents[j].Load()
		home := int(en.ih) & mask
		// The word at j stays unless its home lies cyclically outside (pos, j].
		if (pos < j && (home <= pos || home > j)) || (pos > j && home <= pos && home > j) {
			ix.set(pos, en, m)
			pos = j
		}
	}
}

// grow replaces the shard's index by one twice its size holding the same entries (stamps and
// CLOCK bits kept), and unstamps the old one's words: a reader still on it takes slow hits, which
// stamp no word of a replaced index. The caller holds the mutex.
func (s *cacheShard) grow() *cacheIndex {
	old := s.index.Load()
	ix := newCacheIndex(2 * len(old.words))
	for pos := range old.words {
		if m := old.words[pos].meta.Load(); m&metaUsed != 0 {
			en := old.ents[pos].Load()
			at, _ := ix.find(int(en.ih), en.fp1, en.fp2)
			ix.set(at, en, m)
		}
	}
	s.index.Store(ix)
	s.hand = 0
	old.unstamp(-1)
	return ix
}

// diskKey is the Badger key of a request's entry (below the store's cache prefix): the packed
// key, which names one request only when it splits (fromDisk).
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
// entry. It is read before the request is validated, so only for a key that splits (an entry
// is stored only for a decided request, whose key splits: a key that splits finds its own).
func (e *Engine) fromDisk(k *cacheKey, p *rego.Policy) (*cached, bool) {
	if e.disk == nil || !k.splits() {
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
