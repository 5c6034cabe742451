package authz

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/store"
)

// TestAttack21DiskTierNeverServesAnInvalidRequest: a hit validates nothing, on the claim that a
// request gets an entry only once decided (validated). A miss consults the Badger tier before it
// validates, and the Badger key is the packed form, the parts joined by NUL bytes: an action may
// hold a NUL (an author's catalog names any string), so an invalid request whose parts, joined,
// are a cached valid request's (the NUL moved from the action into the resource or owner) was
// served its decision from Badger, then cached in memory under its own key and served by L1
// hits. Each must get its typed error and leave no entry, after a restart (Badger holding the
// valid request's entry) and in the engine that stored it.
func TestAttack21DiskTierNeverServesAnInvalidRequest(t *testing.T) {
	t.Parallel()
	data := map[string]any{"teamgate": map[string]any{"actions": map[string]any{
		"runs.x\x00y": map[string]any{"kind": "project", "role": "viewer"},
		"runs.x":      map[string]any{"kind": "project", "role": "viewer"},
	}}}
	valid := []Request{
		{Subject: "bob", Action: "runs.x\x00y", Resource: "acme/vision"},
		{Subject: "bob", Action: "runs.x\x00y", Resource: "vision", Owner: "acme"},
	}
	invalid := []Request{ // each joins to a valid one's packed form
		{Subject: "bob", Action: "runs.x", Resource: "y\x00acme/vision"},
		{Subject: "bob", Action: "runs.x", Resource: "y", Owner: "acme/vision\x00"},
		{Subject: "bob", Action: "runs.x", Resource: "y\x00vision", Owner: "acme"},
		{Subject: "bob", Action: "runs.x", Resource: "y", Owner: "vision\x00acme"},
		{Subject: "bob\x00runs.x", Action: "y", Resource: "acme/vision"},
	}
	dir := t.TempDir()
	open := func() (*store.Store, *Engine) {
		st, err := store.Open(t.Context(), store.Options{Dir: dir, NoSync: true})
		require.NoError(t, err)
		e, err := New(t.Context(), st, WithData(data))
		require.NoError(t, err)
		return st, e
	}
	st, e := open()
	_, err := st.LoadFile(t.Context(), conformance.DataFile())
	require.NoError(t, err)
	for _, r := range valid {
		d, err := e.Authorize(t.Context(), r)
		require.NoError(t, err, "%q", r)
		require.True(t, d.Allowed, "%q", r)
	}
	require.NoError(t, e.Close(t.Context()))
	require.NoError(t, st.Close()) // waits for the Badger tier's writes
	st, e = open()
	defer st.Close()
	for _, r := range invalid {
		for range 3 { // a miss (Badger), then what memory holds
			d, err := e.Authorize(t.Context(), r)
			require.ErrorIs(t, err, teamgate.ErrInvalid, "%q", r)
			require.Equal(t, Decision{}, d, "%q", r)
		}
	}
	require.Zero(t, e.Stats().CacheDiskHits, "an invalid request served from Badger")
	require.Zero(t, e.Stats().CacheHits, "an invalid request served from memory")
	for _, r := range valid {
		d, err := e.Authorize(t.Context(), r)
		require.NoError(t, err, "%q", r)
		require.True(t, d.Allowed, "%q", r)
	}
	require.Equal(t, uint64(len(valid)), e.Stats().CacheDiskHits, "the valid requests still come from Badger")
}

// attack21Data is a catalog of actions of every length around the key's word boundaries, one
// with a NUL (the action is the part that may hold one), besides the default catalog.
var attack21Data = map[string]any{"teamgate": map[string]any{"actions": map[string]any{
	"r":                  map[string]any{"kind": "project", "role": "viewer"},
	"runs.ab":            map[string]any{"kind": "project", "role": "viewer"},
	"runs.x\x00y":        map[string]any{"kind": "project", "role": "viewer"},
	"runs.abcdefghijk":   map[string]any{"kind": "project", "role": "contributor"},
	"runs.abcdefghijkl":  map[string]any{"kind": "project", "role": "viewer"},
	"runs.abcdefghijklm": map[string]any{"kind": "project", "role": "admin"},
	"runs.\xff\xfe":      map[string]any{"kind": "project", "role": "viewer"},
}}}

// attack21Slug is a slug of n bytes (none for 0), different for different n.
func attack21Slug(n int) string {
	const letters = "bcdefghijklmnopqrstuvwxyz"
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[(i*7+n)%len(letters)]
	}
	return string(b)
}

// attack21Lengths are requests whose parts have every length around the key's word boundaries
// (0, 1, 7, 8, 9, 15, 16, 17 bytes; subjects and projects of the conformance directory among
// them), in totals on both sides of the inline key's limit (keyBytes: 47, 48, 49 and more), with
// and without an owner.
func attack21Lengths() []Request {
	subjects := []string{"bob", "vera"}
	projects := []string{"vision", "nlp"}
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17} {
		subjects = append(subjects, attack21Slug(n))
		projects = append(projects, attack21Slug(n))
	}
	actions := []string{"", "r", "runs.ab", "runs.get", "runs.stop", "runs.x\x00y", "runs.abcdefghijk", "runs.abcdefghijkl", "runs.abcdefghijklm"}
	var reqs []Request
	for _, s := range subjects {
		for _, a := range actions {
			for _, p := range projects {
				reqs = append(reqs,
					Request{Subject: s, Action: a, Resource: "acme/" + p},
					Request{Subject: s, Action: a, Resource: p, Owner: "acme"},
					Request{Subject: s, Action: a, Resource: p, Owner: "acme/engineering"})
			}
		}
	}
	return reqs
}

// attack21Splits are the requests holding base's bytes with the parts' boundaries anywhere (all
// of them for a short base, those within two bytes of base's for a long one), base with any one
// byte changed (its lowest bit, its case bit, to NUL, to 0xFF), and base with a NUL, a 0xFF or an
// invalid UTF-8 pair added at either end of each part.
func attack21Splits(base Request) []Request {
	parts := [4]string{base.Subject, base.Action, base.Resource, base.Owner}
	all := parts[0] + parts[1] + parts[2] + parts[3]
	at := [3]int{len(parts[0]), len(parts[0]) + len(parts[1]), len(parts[0]) + len(parts[1]) + len(parts[2])}
	near := func(b, i int) bool { return len(all) <= 24 || b-2 <= i && i <= b+2 }
	var reqs []Request
	for i := 0; i <= len(all); i++ {
		for j := i; j <= len(all); j++ {
			for k := j; k <= len(all); k++ {
				if near(at[0], i) && near(at[1], j) && near(at[2], k) {
					reqs = append(reqs, Request{Subject: all[:i], Action: all[i:j], Resource: all[j:k], Owner: all[k:]})
				}
			}
		}
	}
	for p := range parts {
		for i := range len(parts[p]) { // one byte changed: the same lengths
			for _, c := range []byte{parts[p][i] ^ 1, parts[p][i] ^ 0x20, 0, 0xff} {
				q := parts
				q[p] = parts[p][:i] + string([]byte{c}) + parts[p][i+1:]
				reqs = append(reqs, Request{Subject: q[0], Action: q[1], Resource: q[2], Owner: q[3]})
			}
		}
		for _, b := range []string{"\x00", "\xff", "\xc3\x28"} {
			for _, x := range []string{parts[p] + b, b + parts[p]} {
				q := parts
				q[p] = x
				reqs = append(reqs, Request{Subject: q[0], Action: q[1], Resource: q[2], Owner: q[3]})
			}
		}
	}
	return reqs
}

// attack21Bases are the requests attack21Splits moves the boundaries of.
func attack21Bases() []Request {
	return []Request{
		{Subject: "bob", Action: "runs.get", Resource: "acme/vision"},
		{Subject: "bob", Action: "runs.get", Resource: "vision", Owner: "acme"},
		{Subject: "bob", Action: "runs.x\x00y", Resource: "acme/nlp"},
		{Subject: "vera", Action: "r", Resource: "nlp", Owner: "acme"},
		{Subject: attack21Slug(17), Action: "runs.abcdefghijklm", Resource: "acme/" + attack21Slug(9)},  // 48 bytes
		{Subject: attack21Slug(16), Action: "runs.abcdefghijklm", Resource: "acme/" + attack21Slug(9)},  // 47
		{Subject: attack21Slug(17), Action: "runs.abcdefghijklm", Resource: "acme/" + attack21Slug(10)}, // 49
		{Subject: "bob", Action: "runs.abcdefghijklm", Resource: attack21Slug(17), Owner: "acme/engineering"},
	}
}

// attack21Same asks r of the cached engine and of the plain one (no cache, the same store and
// catalog) and fails unless the answers are the same: the decision field by field, or the same
// error. It returns whether r was decided.
func attack21Same(t testing.TB, cached, plain *Engine, r Request) bool {
	t.Helper()
	d, err := cached.Authorize(t.Context(), r)
	want, wantErr := plain.Authorize(t.Context(), r)
	if wantErr != nil {
		if err == nil || err.Error() != wantErr.Error() {
			t.Fatalf("%s: cached answer %+v, %v; uncached error %v", attack21Name(r), d, err, wantErr)
		}
		if !errors.Is(err, teamgate.ErrInvalid) || !reflect.DeepEqual(d, Decision{}) {
			t.Fatalf("%s: %+v, %v: not a typed error alone", attack21Name(r), d, err)
		}
		return false
	}
	if err != nil || !reflect.DeepEqual(d, want) {
		t.Fatalf("%s: cached answer %+v, %v; uncached %+v", attack21Name(r), d, err, want)
	}
	return true
}

// TestAttack21KeysAtEveryBoundary: every request of attack21Lengths and attack21Splits, asked
// three times (a miss, a slow hit that stamps, a fast hit) of a cache where they all share one
// probe run (only fingerprints tell entries apart), gets the uncached engine's answer or error;
// every decided request hits on its second and third asks, no invalid one ever does; and the
// same with a cache of 7 entries (every miss evicts).
func TestAttack21KeysAtEveryBoundary(t *testing.T) {
	t.Parallel()
	reqs := attack21Lengths()
	for _, b := range attack21Bases() {
		reqs = append(reqs, attack21Splits(b)...)
	}
	for _, n := range []int{0, 1, 8, 9} { // short totals: invalid requests
		reqs = append(reqs, Request{Subject: attack21Slug(n)}, Request{Resource: attack21Slug(n)}, Request{Owner: attack21Slug(n)})
	}
	totals := map[int]bool{}
	for _, r := range reqs {
		totals[len(r.Subject)+len(r.Action)+len(r.Resource)+len(r.Owner)] = true
	}
	for _, n := range []int{0, 1, 8, 9, keyBytes - 1, keyBytes, keyBytes + 1, keyBytes + 2} {
		require.True(t, totals[n], "no request of %d bytes in all", n)
	}
	for _, size := range []int{0, 7} {
		t.Run(fmt.Sprint("size=", size), func(t *testing.T) {
			t.Parallel()
			opts := []Option{WithData(attack21Data)}
			if size > 0 {
				opts = append(opts, WithDecisionCache(size))
			}
			cached := newAcmeInternal(t, opts...)
			weakHashes(cached)
			plain, err := New(t.Context(), cached.Directory(), WithDecisionCache(0), WithData(attack21Data))
			require.NoError(t, err)
			seen := map[[4]string]bool{}
			decided, decidedTotals := 0, map[int]bool{}
			for _, r := range reqs {
				if k := [4]string{r.Subject, r.Action, r.Resource, r.Owner}; seen[k] {
					continue
				} else {
					seen[k] = true
				}
				for round := range 3 {
					hits := cached.Stats().CacheHits
					ok := attack21Same(t, cached, plain, r)
					if ok && round == 0 {
						decided++
						decidedTotals[len(r.Subject)+len(r.Action)+len(r.Resource)+len(r.Owner)] = true
					}
					if size == 0 {
						require.Equal(t, hits+uint64(min(round, b2i(ok))), cached.Stats().CacheHits, "%q, ask %d", r, round)
					}
				}
			}
			require.Greater(t, decided, 1000, "requests decided")
			for _, n := range []int{keyBytes - 1, keyBytes, keyBytes + 1} {
				require.True(t, decidedTotals[n], "no request of %d bytes in all decided", n)
			}
			if size == 0 {
				require.Equal(t, uint64(2*decided), cached.Stats().CacheHits)
			}
		})
	}
}

// attack21Name shows a request's four parts.
func attack21Name(r Request) string {
	return fmt.Sprintf("%q %q %q %q", r.Subject, r.Action, r.Resource, r.Owner)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FuzzAttack21CachedIsUncached: any request (four arbitrary parts) gets from a cached engine
// exactly the uncached engine's answer or error, asked three times (a miss, a slow hit that
// stamps, a fast hit) after the valid requests of attack21Bases were cached and stamped, in a
// cache of 64 entries where every key shares one probe run (only fingerprints tell entries
// apart; misses evict); those valid requests still get their own answers afterwards.
func FuzzAttack21CachedIsUncached(f *testing.F) {
	for _, b := range attack21Bases() {
		f.Add(b.Subject, b.Action, b.Resource, b.Owner)
	}
	f.Add("bob", "runs.x", "y\x00acme/nlp", "")
	f.Add("", "bob", "runs.get", "acme/vision")
	f.Add("bob\x00", "runs.get", "acme/vision", "")
	f.Add("bob", "runs.get", "vision", "\x00")
	cached, err := New(f.Context(), conformance.OpenStore(f, store.Options{}), WithData(attack21Data), WithDecisionCache(64))
	require.NoError(f, err)
	weakHashes(cached)
	plain, err := New(f.Context(), cached.Directory(), WithDecisionCache(0), WithData(attack21Data))
	require.NoError(f, err)
	var valid []Request
	for _, b := range attack21Bases() {
		if _, err := plain.Authorize(f.Context(), b); err == nil {
			valid = append(valid, b)
		}
	}
	require.Greater(f, len(valid), 4)
	f.Fuzz(func(t *testing.T, subject, action, resource, owner string) {
		for range 2 { // cached, then stamped
			for _, b := range valid {
				attack21Same(t, cached, plain, b)
			}
		}
		r := Request{Subject: subject, Action: action, Resource: resource, Owner: owner}
		for range 3 {
			attack21Same(t, cached, plain, r)
		}
		for _, b := range valid {
			attack21Same(t, cached, plain, b)
		}
	})
}

// TestAttack21HitsRaceMissesEvictionsWrites: readers ask valid requests of every key length (an
// action with a NUL, owners and none, totals up to keyBytes+) mixed with invalid requests one
// byte or one boundary off them, of a 9-entry cache where every key shares one probe run (each
// miss evicts, words are rewritten and stamped all the time), while a writer toggles a fact their
// answers depend on: a valid request gets the uncached answer of the state no write in flight
// disturbs, an invalid one always its typed error, never a decision. Run under -race.
func TestAttack21HitsRaceMissesEvictionsWrites(t *testing.T) {
	t.Parallel()
	e := newAcmeInternal(t, WithData(attack21Data), WithDecisionCache(9))
	weakHashes(e)
	st := e.Directory().(*store.Store)
	plain, err := New(t.Context(), st, WithDecisionCache(0), WithData(attack21Data))
	require.NoError(t, err)
	var valid, invalid []Request
	for _, s := range []string{"vera", attack21Slug(17)} {
		for _, a := range []string{"r", "runs.get", "runs.x\x00y", "runs.abcdefghijklm"} {
			for _, ro := range [][2]string{{"acme/engineering/vision", ""}, {"vision", "acme/engineering"}, {"acme/vision", ""}} {
				v := Request{Subject: s, Action: a, Resource: ro[0], Owner: ro[1]}
				valid = append(valid, v)
				for i, r := range attack21Splits(v) {
					if _, err := plain.Authorize(t.Context(), r); err != nil && i%37 == 0 {
						invalid = append(invalid, r)
					}
				}
			}
		}
	}
	require.Greater(t, len(invalid), 4*len(valid))
	_, err = st.Apply(t.Context(), attackToggle[0])
	require.NoError(t, err)
	var want [2][]Decision // after attackToggle[0], [1]
	for j := range 2 {
		for _, r := range valid {
			d, err := plain.Authorize(t.Context(), r)
			require.NoError(t, err)
			want[j] = append(want[j], d)
		}
		_, err = st.Apply(t.Context(), attackToggle[1-j])
		require.NoError(t, err)
	}
	require.NotEqual(t, want[0], want[1], "the writes change answers")
	// The store is after attackToggle[0] again: state s (after change s) is want[s%2].
	var phase atomic.Uint64 // 2s: change s returned, s+1 not begun; odd: a change in flight
	var calls atomic.Int64
	var done atomic.Bool
	errs := make(chan error, 2)
	var readers sync.WaitGroup
	for g := range 2 {
		readers.Go(func() {
			for i := g; !done.Load(); i++ {
				calls.Add(1)
				if i%3 == 0 {
					r := invalid[i/3%len(invalid)]
					if d, err := e.Authorize(t.Context(), r); !errors.Is(err, teamgate.ErrInvalid) || !reflect.DeepEqual(d, Decision{}) {
						errs <- fmt.Errorf("%s: %+v, %v", attack21Name(r), d, err)
						return
					}
					continue
				}
				k := i % len(valid)
				ph := phase.Load()
				d, err := e.Authorize(t.Context(), valid[k])
				if ph2 := phase.Load(); ph == ph2 && ph%2 == 0 {
					if w := want[ph/2%2][k]; err != nil || !sameDecision(d, w) {
						errs <- fmt.Errorf("after change %d, %s: %+v, %v; want %+v", ph/2, attack21Name(valid[k]), d, err, w)
						return
					}
				}
			}
		})
	}
	for s := 1; s <= 40 && len(errs) == 0; s++ {
		for seen := calls.Load(); calls.Load() < seen+int64(6*len(valid)) && len(errs) == 0; {
			runtime.Gosched()
		}
		phase.Add(1)
		_, err := st.Apply(t.Context(), attackToggle[s%2])
		require.NoError(t, err)
		phase.Add(1)
	}
	done.Store(true)
	readers.Wait()
	close(errs)
	require.NoError(t, <-errs)
	require.NotZero(t, e.Stats().CacheHits)
}

// TestAttack21InvalidAfterNearestValid: each valid request is cached and its word stamped (its
// next hit fast); then the invalid requests nearest to it — an unknown action a byte off, an
// action of another resource kind, malformed references and owners, a malformed subject, its
// own parts with attributes the engine refuses — each get their typed error and no hit, and the
// valid one is still served, fast, its own decision.
func TestAttack21InvalidAfterNearestValid(t *testing.T) {
	t.Parallel()
	e := newAcmeInternal(t)
	weakHashes(e)
	plain, err := New(t.Context(), e.Directory(), WithDecisionCache(0))
	require.NoError(t, err)
	bad := map[string]any{"x": make(chan int)}
	for _, c := range []struct {
		valid   Request
		invalid []Request
	}{
		{Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision"}, []Request{
			{Subject: "bob", Action: "runs.gex", Resource: "acme/vision"},
			{Subject: "bob", Action: "runs.ge", Resource: "acme/vision"},
			{Subject: "bob", Action: "runs.get\x00", Resource: "acme/vision"},
			{Subject: "bob", Action: "org.get", Resource: "acme/vision"},
			{Subject: "bob", Action: "runs.get", Resource: "acme"},
			{Subject: "bob", Action: "runs.get", Resource: "acme//vision"},
			{Subject: "bob", Action: "runs.get", Resource: "acme/vision/"},
			{Subject: "bob", Action: "runs.get", Resource: "/acme/vision"},
			{Subject: "bob", Action: "runs.get", Resource: "acme/a/b/vision"},
			{Subject: "bob", Action: "runs.get", Resource: "acme/vis ion"},
			{Subject: "bob", Action: "runs.get", Resource: "acme/vision", Owner: "acme//x"},
			{Subject: "bob!", Action: "runs.get", Resource: "acme/vision"},
			{Subject: "", Action: "runs.get", Resource: "acme/vision"},
			{Subject: "bob", Action: "runs.get", Resource: "acme/vision", Attributes: bad},
		}},
		{Request{Subject: "bob", Action: "runs.get", Resource: "vision", Owner: "acme"}, []Request{
			{Subject: "bob", Action: "runs.get", Resource: "vision"},
			{Subject: "bob", Action: "runs.get", Resource: "vision", Owner: "acme/"},
			{Subject: "bob", Action: "runs.get", Resource: "vision", Owner: "/acme"},
			{Subject: "bob", Action: "runs.get", Resource: "vision", Owner: "acme\x00"},
			{Subject: "bob", Action: "runs.get", Resource: "vision", Owner: "ac me"},
			{Subject: "bob", Action: "runs.get", Resource: "vision/", Owner: "acme"},
			{Subject: "bob", Action: "runs.get", Resource: "vision", Owner: "acme", Attributes: bad},
		}},
		{Request{Subject: "alice", Action: "members.manage", Resource: "acme"}, []Request{
			{Subject: "alice", Action: "members.manage", Resource: "acme/vision"},
			{Subject: "alice", Action: "members.manage", Resource: "acme/"},
			{Subject: "alice", Action: "members.manage", Resource: ""},
			{Subject: "alice", Action: "runs.get", Resource: "acme"},
			{Subject: "alice", Action: "members.manage", Resource: "acme", Attributes: map[string]any{"target_role": 5}},
			{Subject: "alice", Action: "members.manage", Resource: "acme", Attributes: map[string]any{"target_role": "emperor"}},
			{Subject: "alice", Action: "members.manage", Resource: "acme", Attributes: bad},
		}},
	} {
		want, err := plain.Authorize(t.Context(), c.valid)
		require.NoError(t, err)
		for range 3 { // a miss, a slow hit that stamps, a fast hit
			_, err := e.Authorize(t.Context(), c.valid)
			require.NoError(t, err)
		}
		require.True(t, stampedNow(e.decisions, fastKey(e, c.valid)), "%s", attack21Name(c.valid))
		for _, r := range c.invalid {
			_, err := plain.Authorize(t.Context(), r)
			require.ErrorIs(t, err, teamgate.ErrInvalid, "%s: the case is invalid", attack21Name(r))
			hits := e.Stats().CacheHits
			d, err := e.Authorize(t.Context(), r)
			require.ErrorIs(t, err, teamgate.ErrInvalid, "%s after %s", attack21Name(r), attack21Name(c.valid))
			require.Equal(t, Decision{}, d)
			require.Equal(t, hits, e.Stats().CacheHits, "%s hit", attack21Name(r))
		}
		hits := e.Stats().CacheHits
		d, err := e.Authorize(t.Context(), c.valid)
		require.NoError(t, err)
		require.True(t, sameDecision(d, want) && d.Revision == want.Revision, "%+v, want %+v", d, want)
		require.Equal(t, hits+1, e.Stats().CacheHits)
		require.True(t, stampedNow(e.decisions, fastKey(e, c.valid)), "still fast")
	}
}
