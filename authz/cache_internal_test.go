package authz

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// trackedDeps returns the store and the Deps of reading vera's facts on acme/nlp.
func trackedDeps(t testing.TB) (*store.Store, store.Deps) {
	st := conformance.OpenStore(t, store.Options{})
	var d store.Deps
	require.NoError(t, st.View(func(r store.Reader) error {
		r = r.Track(&d)
		r.Org("acme")
		r.OrgRole("acme", "vera")
		r.Project("acme", "nlp")
		return nil
	}))
	return st, d
}

func TestEntryEncoding(t *testing.T) {
	t.Parallel()
	p, err := rego.New(t.Context(), nil)
	require.NoError(t, err)
	st, deps := trackedDeps(t)
	d := Decision{Allowed: true, Role: "contributor", Reasons: []Reason{{Code: "team_role", Message: "vera is contributor"}}}
	raw := encodeEntry(p.Fingerprint(), &deps, d)
	c, ok := decodeEntry(raw, p, st)
	require.True(t, ok)
	require.Equal(t, d, c.dec)
	require.Equal(t, 3, c.deps.Len())
	require.True(t, c.deps.Current())
	_, err = st.Apply(t.Context(), store.PutMember{Org: "acme", User: "vera", Role: "admin"})
	require.NoError(t, err)
	require.False(t, c.deps.Current(), "the decoded entry watches the stamps it was encoded with")

	other, err := rego.New(t.Context(), []rego.Module{{Name: "x.rego", Source: "package teamgate.ext\n\ny := 1\n"}})
	require.NoError(t, err)
	_, ok = decodeEntry(raw, other, st)
	require.False(t, ok, "another policy's entry")
	for i := range raw {
		_, _ = decodeEntry(raw[:i], p, st) // truncated: never panics
	}
}

func FuzzDecodeEntry(f *testing.F) {
	p, err := rego.New(f.Context(), nil)
	if err != nil {
		f.Fatal(err)
	}
	st, deps := trackedDeps(f)
	f.Add(encodeEntry(p.Fingerprint(), &deps, Decision{Role: "none", Reasons: []Reason{{Code: "x"}}}))
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = decodeEntry(raw, p, st)
	})
}

// collidingCache is a cache of 8 entries, in one shard, whose policy in force is p, and n keys
// (subject "u<i>") whose index hashes collide (four homes, runs that wrap; the fingerprints are
// the keys' own). Every longEvery-th key (none for 0) is hashed out of line. deps are current
// while the test writes nothing.
func collidingCache(t testing.TB, n, longEvery int) (*decisionCache, []cacheKey, *rego.Policy, store.Deps, *store.Store) {
	p, err := rego.New(t.Context(), nil)
	require.NoError(t, err)
	pol := new(atomic.Pointer[rego.Policy])
	pol.Store(p)
	c := newDecisionCache(8, pol)
	require.Len(t, c.shards, 1)
	keys := make([]cacheKey, n)
	for i := range keys {
		resource := "o/p"
		if longEvery > 0 && i%longEvery == 0 {
			resource = strings.Repeat("x", keyBytes)
		}
		c.key(&keys[i], fmt.Sprint("u", i), "runs.get", resource, "")
		keys[i].ih = uint64(i%4)*5 | 1
	}
	st, deps := trackedDeps(t)
	return c, keys, p, deps, st
}

// stampedNow reports whether k's word is stamped with the cache's epoch now: its next hit is
// served from the word alone.
func stampedNow(c *decisionCache, k *cacheKey) bool {
	ix := c.shard(k.ih).index.Load()
	pos, ok := ix.find(int(k.ih), k.fp1, k.fp2)
	if !ok {
		return false
	}
	m := ix.words[pos].meta.Load()
	g := group(m)
	e := c.now(g)
	return m&metaStamped != 0 && m&c.epochField == (e&c.epochMask)<<metaEpochShift && e>>c.epochBits == c.eras[g].Load()
}

// TestCacheShardIndex drives one shard with index hashes made to collide (a few home positions)
// through inserts, replacements, hits that stamp words, CLOCK evictions and growth, and checks
// after every step that the index reaches exactly the entries in use, each under its own key,
// and that every word is its entry's.
func TestCacheShardIndex(t *testing.T) {
	t.Parallel()
	c, keys, p, deps, st := collidingCache(t, 60, 7)
	s := &c.shards[0]
	rng := rand.New(rand.NewPCG(1, 2))
	stamped := 0
	for step := range 2000 {
		i := rng.IntN(len(keys))
		c.put(&keys[i], &cached{policy: p, dec: Decision{Role: keys[i].subject}, deps: deps})
		if step%5 == 0 { // hits: CLOCK keeps it a while; the first stamps the word, the second is fast
			for range 2 {
				var d Decision
				_, _, _, ok := c.get(&keys[i], p, st, &d)
				require.True(t, ok, "step %d", step)
				require.Equal(t, keys[i].subject, d.Role, "step %d", step)
			}
			if stampedNow(c, &keys[i]) {
				stamped++
			}
		}
		ix := s.index.Load()
		_, ok := ix.find(int(keys[i].ih), keys[i].fp1, keys[i].fp2)
		require.True(t, ok, "step %d: the key just put", step)
		n := 0
		for j := range keys {
			if pos, ok := ix.find(int(keys[j].ih), keys[j].fp1, keys[j].fp2); ok {
				n++
				require.Equal(t, keys[j].subject, ix.ents[pos].Load().entry.dec.Role, "step %d: key %d finds its own entry", step, j)
			}
		}
		require.Equal(t, s.n, n, "step %d: every entry is reachable, and only those", step)
		require.LessOrEqual(t, s.n, 8)
		indexed := 0
		for pos := range ix.words {
			w, en := &ix.words[pos], ix.ents[pos].Load()
			if w.meta.Load()&metaUsed == 0 {
				require.Nil(t, en, "step %d: an empty word has no entry", step)
				continue
			}
			require.NotNil(t, en, "step %d", step)
			require.Equal(t, [3]uint64{en.fp1, en.fp2, en.meta}, [3]uint64{w.fp1.Load(), w.fp2.Load(), w.meta.Load() &^ (metaKept | metaVerMask)}, "step %d: the word is its entry's", step)
			require.Same(t, en.reasons, w.reasons.Load())
			indexed++
		}
		require.Equal(t, n, indexed, "step %d: one word per entry", step)
	}
	require.EqualValues(t, 8, c.used.Load())
	require.NotZero(t, stamped, "hits stamped words (the keys with one of the first 31 roles)")
}

// TestCacheShardReadsWithoutLock: readers look keys up, without the lock, while a writer puts,
// replaces and evicts in the same shard with colliding index hashes (words moving under them,
// stamped and unstamped). A reader may miss, but whatever it finds, fast or slow, is the decision
// of the key it asked for. Run it with -race: the words' fields are all atomic.
func TestCacheShardReadsWithoutLock(t *testing.T) {
	t.Parallel()
	c, keys, p, deps, st := collidingCache(t, 40, 0)
	put := func(i int) { c.put(&keys[i], &cached{policy: p, dec: Decision{Role: keys[i].subject}, deps: deps}) }
	for i := range 8 {
		put(i) // full before the readers start: from now on it always holds 8 entries
	}
	var readers sync.WaitGroup
	var found atomic.Int64
	errs := make(chan error, 2)
	for r := range 2 {
		readers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			for range 20_000 {
				i := rng.IntN(len(keys))
				var d Decision
				if _, _, _, ok := c.get(&keys[i], p, st, &d); ok {
					if d.Role != keys[i].subject {
						errs <- fmt.Errorf("key %d found the decision of %s", i, d.Role)
						return
					}
					found.Add(1)
				}
			}
		})
	}
	var done atomic.Bool
	go func() { readers.Wait(); done.Store(true); close(errs) }()
	rng := rand.New(rand.NewPCG(3, 4))
	for !done.Load() { // the writer runs as long as the readers do
		put(rng.IntN(len(keys)))
	}
	require.NoError(t, <-errs)
	require.NotZero(t, found.Load(), "the readers found entries")
	n := 0
	for j := range keys {
		var d Decision
		if _, _, _, ok := c.get(&keys[j], p, st, &d); ok {
			n++
		}
	}
	require.Equal(t, 8, n, "once the writer is done, every cached key is found")
}

// TestCacheKeyIdentity: a key's fingerprint is its own: keys whose encoding is another's up to
// the zero padding (an owner of one NUL, a part ending in NULs: the same words but for the
// lengths') or with the parts' boundaries shifted (NULs inside parts), hashed inline or out of
// line, get other fingerprints, so an entry holds its own key only
// even when every index hash is the same.
func TestCacheKeyIdentity(t *testing.T) {
	t.Parallel()
	c := newDecisionCache(8, nil)
	c.hashMask = 0
	long := strings.Repeat("v", keyBytes)
	for _, base := range [][4]string{
		{"bob", "runs.get", "acme/vision", ""},
		{"bob", "runs.get", "acme/" + long, ""},
		{"bob", "runs.get", "acme/" + long, "acme"},
	} {
		var k cacheKey
		c.key(&k, base[0], base[1], base[2], base[3])
		require.Equal(t, k.packedLen() > keyBytes, strings.Contains(base[2], long))
		en := c.entry(&k, &cached{})
		var again cacheKey
		c.key(&again, base[0], base[1], base[2], base[3])
		require.True(t, en.holds(&again), "%q", base)
		for _, other := range [][4]string{
			{base[0], base[1], base[2], base[3] + "\x00"},
			{"bo", "b\x00" + base[1], base[2], base[3]},
			{base[0] + "\x00" + base[1], base[2], base[3], ""},
			{base[0], base[1], base[2] + "x", base[3]},
			{base[0], base[1] + "s", base[2], base[3]},
			{base[0], base[1], base[2][:len(base[2])-1], base[3]},
			{base[0], base[1], base[2], base[3] + "acme"},
			{base[0] + "\x00", base[1], base[2], base[3]}, // the same words but for the lengths'
			{base[0], base[1] + "\x00\x00", base[2], base[3]},
			{base[0], base[1], base[2] + "\x00", base[3]},
		} {
			var o cacheKey
			c.key(&o, other[0], other[1], other[2], other[3])
			require.Equal(t, k.ih, o.ih, "the narrowed index hash is shared")
			require.False(t, en.holds(&o), "%q holds %q", base, other)
			require.NotEqual(t, k.fp1, o.fp1, "%q and %q", base, other)
			require.NotEqual(t, k.fp2, o.fp2, "%q and %q", base, other)
		}
	}
}

// TestDecisionCacheKeepsItsSize: a cache of n holds n distinct decisions (all served again as
// hits) however the keys fall into shards, and a stream of further distinct requests never
// grows it past n.
func TestDecisionCacheKeepsItsSize(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 10, 1000} {
		e := newAcmeInternal(t, WithDecisionCache(n))
		reqs := make([]Request, n)
		for i := range reqs {
			reqs[i] = Request{Subject: fmt.Sprint("user", i), Action: "runs.get", Resource: "acme/vision"}
			_, err := e.Authorize(t.Context(), reqs[i])
			require.NoError(t, err)
		}
		for _, r := range reqs {
			_, err := e.Authorize(t.Context(), r)
			require.NoError(t, err)
		}
		require.EqualValues(t, n, e.Stats().CacheHits, "size %d: every decision stayed", n)
		for i := range 5 * n {
			_, err := e.Authorize(t.Context(), Request{Subject: fmt.Sprint("other", i), Action: "runs.stop", Resource: "acme/vision"})
			require.NoError(t, err)
			require.LessOrEqual(t, e.decisions.len(), n, "size %d", n)
		}
	}
}

func newAcmeInternal(t *testing.T, opts ...Option) *Engine {
	t.Helper()
	e, err := New(t.Context(), conformance.OpenStore(t, store.Options{}), opts...)
	require.NoError(t, err)
	return e
}

// weakHashes narrows an engine's cache index hash to two values, one shard: every request shares
// a probe run with every other, so only the fingerprint tells entries apart.
func weakHashes(e *Engine) { e.decisions.hashMask = 1 }

// collidingRequests are cacheable requests of the conformance directory with different answers,
// keys inline and out of line among them.
func collidingRequests() []Request {
	var reqs []Request
	for _, s := range []string{"bob", "vera", "olga", "adam", "alice", "nobody"} {
		for _, a := range []string{"runs.get", "runs.stop", "runs.approve"} {
			for _, r := range []string{"acme/vision", "acme/nlp", "acme/open", "acme/engineering/vision", "acme/engineering/" + strings.Repeat("x", keyBytes)} {
				reqs = append(reqs, Request{Subject: s, Action: a, Resource: r})
			}
		}
		reqs = append(reqs, Request{Subject: s, Action: "runs.get", Resource: "vision", Owner: "acme"})
	}
	return reqs
}

// TestDecisionCacheCollisions: with every request hashing alike, a cached engine (large enough
// for all, and small enough to evict on almost every miss) answers each request as an uncached
// engine does, through writes that change answers.
func TestDecisionCacheCollisions(t *testing.T) {
	t.Parallel()
	reqs := collidingRequests()
	for _, size := range []int{len(reqs) * 2, 5} {
		cachedEng := newAcmeInternal(t, WithDecisionCache(size))
		weakHashes(cachedEng)
		plain, err := New(t.Context(), cachedEng.Directory(), WithDecisionCache(0))
		require.NoError(t, err)
		st := cachedEng.Directory().(*store.Store)
		rng := rand.New(rand.NewPCG(5, uint64(size)))
		allowed, veraIn := 0, true
		for step := range 3000 {
			if step%200 == 199 {
				var c store.Change = store.PutTeamMember{Org: "acme", Team: "engineering", User: "adam", Role: store.TeamRoles()[rng.IntN(4)]}
				switch {
				case rng.IntN(2) == 0 && veraIn:
					c = store.DeleteTeamMember{Org: "acme", Team: "engineering", User: "vera"}
					veraIn = false
				case rng.IntN(2) == 0:
					c = store.PutTeamMember{Org: "acme", Team: "engineering", User: "vera", Role: store.TeamRoles()[rng.IntN(4)]}
					veraIn = true
				}
				_, err := st.Apply(t.Context(), c)
				require.NoError(t, err)
			}
			r := reqs[rng.IntN(len(reqs))]
			got, err := cachedEng.Authorize(t.Context(), r)
			require.NoError(t, err)
			want, err := plain.Authorize(t.Context(), r)
			require.NoError(t, err)
			require.Equal(t, want, got, "size %d, step %d: %+v", size, step, r)
			if got.Allowed {
				allowed++
			}
		}
		s := cachedEng.Stats()
		require.NotZero(t, s.CacheHits, "size %d", size)
		require.NotZero(t, allowed, "size %d", size)
		require.LessOrEqual(t, cachedEng.decisions.len(), size)
	}
}

// TestDecisionCacheCollisionsConcurrent: readers decide colliding requests while others evict
// (a cache far smaller than the requests) and a writer changes facts none of them depends on.
// Every answer is the request's own. Run it with -race.
func TestDecisionCacheCollisionsConcurrent(t *testing.T) {
	t.Parallel()
	reqs := collidingRequests()
	e := newAcmeInternal(t, WithDecisionCache(8))
	weakHashes(e)
	plain, err := New(t.Context(), e.Directory(), WithDecisionCache(0))
	require.NoError(t, err)
	want := make([]Decision, len(reqs))
	for i, r := range reqs {
		d, err := plain.Authorize(t.Context(), r)
		require.NoError(t, err)
		want[i] = d
	}
	st := e.Directory().(*store.Store)
	var readers sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		readers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for range 3000 {
				i := rng.IntN(len(reqs))
				d, err := e.Authorize(t.Context(), reqs[i])
				if err == nil && (d.Allowed != want[i].Allowed || d.Role != want[i].Role || !slices.Equal(d.Reasons, want[i].Reasons)) {
					err = fmt.Errorf("%+v: got %+v, want %+v", reqs[i], d, want[i])
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var done atomic.Bool
	go func() { readers.Wait(); done.Store(true); close(errs) }()
	for i := 0; !done.Load(); i++ { // unrelated writes, as long as the readers read
		_, err := st.Apply(t.Context(), store.PutMember{Org: "acme", User: fmt.Sprint("ghost", i%50), Role: "member"})
		require.NoError(t, err)
	}
	require.NoError(t, <-errs)
	require.NotZero(t, e.Stats().CacheHits)
}

// TestCacheWordLayout: an index word is 32 bytes and an index's words start on a cache line, so
// a fast hit reads one line of index (two words per line, none straddling two).
func TestCacheWordLayout(t *testing.T) {
	t.Parallel()
	require.Equal(t, uintptr(32), unsafe.Sizeof(cacheWord{}))
	for n := 8; n <= 1<<16; n *= 2 {
		ix := newCacheIndex(n)
		require.Len(t, ix.words, n)
		require.Zero(t, uintptr(unsafe.Pointer(&ix.words[0]))%64, "index of %d words", n)
	}
}

// TestServedEntryIdentity: a logged hit's record is made from the entry it finds at the hit's
// position, which may have been replaced since the hit read the word: served accepts an entry
// only when it is the word's own (its key, verdict, role, number of reasons, epoch group and
// reasons array), whatever the word's stamp, CLOCK bit and rewrite count, and refuses any other
// decision of the same key, so a record never names a decision that was not served.
func TestServedEntryIdentity(t *testing.T) {
	t.Parallel()
	c := newDecisionCache(8, nil)
	var k, other cacheKey
	c.key(&k, "bob", "runs.stop", "acme/engineering/vision", "")
	c.key(&other, "carol", "runs.stop", "acme/engineering/vision", "")
	reasons := []Reason{{Code: rego.CodeTeamRole, Message: "m"}}
	dec := Decision{Allowed: true, Role: "member", Reasons: reasons}
	en := c.entry(&k, &cached{dec: dec})
	r := unsafe.SliceData(reasons)
	word := en.meta | 5<<metaVerShift | metaRef | metaStamped | 7<<metaEpochShift // as published and stamped
	require.Same(t, en, en.served(&k, word, r))
	require.Same(t, en, en.served(&k, en.meta, r), "a slow hit's")
	for name, d := range map[string]Decision{
		"denied":             {Allowed: false, Role: "member", Reasons: reasons},
		"another role":       {Allowed: true, Role: "admin", Reasons: reasons},
		"another reasons":    {Allowed: true, Role: "member", Reasons: []Reason{{Code: rego.CodeTeamRole, Message: "m"}}},
		"fewer reasons":      {Allowed: true, Role: "member", Reasons: reasons[:0]},
		"more than the word": {Allowed: true, Role: "member", Reasons: slices.Repeat(reasons, maxFastReasons+1)},
		"no reasons":         {Allowed: true, Role: "member"},
	} {
		again := c.entry(&k, &cached{dec: d})
		w := again.meta | 5<<metaVerShift | metaStamped
		require.Nil(t, en.served(&k, w, unsafe.SliceData(d.Reasons)), "%s: another decision's word", name)
		require.Nil(t, again.served(&k, word, r), "%s: the entry that replaced the served one", name)
	}
	require.Nil(t, en.served(&other, word, r), "another key")
	require.Nil(t, (*cacheEntry)(nil).served(&k, word, r), "no entry")
	long := c.entry(&k, &cached{dec: Decision{Allowed: true, Role: "member", Reasons: slices.Repeat(reasons, maxFastReasons+1)}})
	require.Nil(t, long.served(&k, long.meta, unsafe.SliceData(long.entry.dec.Reasons)), "an entry that keeps no reasons is logged in full")
}

// TestServedNoReasons: a decision without reasons names no array of its own (nil, or the
// runtime's one address of every zero-size allocation, shared by all of them), so a word's meta
// and reasons pointer do not tell its entry from another decision of the key with none: another
// role beyond the cache's role index (noRole), the same answer under another policy, or one with
// more reasons than a word holds (whose entry keeps none). served accepts none of them, nor the
// served entry itself (logged in full). No decision the engine makes today has no reasons (every
// rule of the policy gives one at least): this guards the log against one that would.
func TestServedNoReasons(t *testing.T) {
	t.Parallel()
	c := newDecisionCache(8, nil)
	for i := range noRole { // the role index is full
		require.Equal(t, i, c.roleIndex(fmt.Sprintf("role%d", i)))
	}
	var k cacheKey
	c.key(&k, "bob", "runs.stop", "acme/engineering/vision", "")
	none := []Reason{} // as every decision without reasons: one address for all
	p1, p2 := new(rego.Policy), new(rego.Policy)
	for name, pair := range map[string][2]cached{
		"roles beyond the index": {{policy: p1, dec: Decision{Role: "x1", Reasons: none}}, {policy: p1, dec: Decision{Role: "x2", Reasons: none}}},
		"another policy":         {{policy: p1, dec: Decision{Role: "role0", Reasons: none}}, {policy: p2, dec: Decision{Role: "role0", Reasons: none}}},
		"nil and many": {{policy: p1, dec: Decision{Role: "role0"}},
			{policy: p1, dec: Decision{Role: "role0", Reasons: slices.Repeat([]Reason{{Code: rego.CodeTeamRole}}, maxFastReasons+1)}}},
	} {
		t.Run(name, func(t *testing.T) {
			en, again := c.entry(&k, &pair[0]), c.entry(&k, &pair[1])
			r := unsafe.SliceData(en.entry.dec.Reasons) // a slow hit's: its meta is en.meta
			require.Nil(t, again.served(&k, en.meta, r), "the entry that replaced the served one")
			require.Nil(t, en.served(&k, en.meta, r), "no reasons: logged in full")
		})
	}
}
