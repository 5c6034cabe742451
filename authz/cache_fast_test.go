package authz

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/clocktest"
	"github.com/teamgate/teamgate/internal/expirytest"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// fastKey is the cache key of r in e's cache.
func fastKey(e *Engine, r Request) *cacheKey {
	k := new(cacheKey)
	e.decisions.key(k, r.Subject, r.Action, r.Resource, r.Owner)
	return k
}

// orgGroup is the epoch group of the facts of org (store.Deps.EpochGroup).
func orgGroup(t testing.TB, st *store.Store, org string) int {
	var d store.Deps
	require.NoError(t, st.View(func(r store.Reader) error { r.Track(&d).Org(org); return nil }))
	return d.EpochGroup()
}

// wordGroup is the epoch group of the word holding k (-1: none).
func wordGroup(c *decisionCache, k *cacheKey) int {
	ix := c.shard(k.ih).index.Load()
	if pos, ok := ix.find(int(k.ih), k.fp1, k.fp2); ok {
		return group(ix.words[pos].meta.Load())
	}
	return -1
}

// sameDecision reports whether got is want, the revision aside.
func sameDecision(got, want Decision) bool {
	return got.Allowed == want.Allowed && got.Role == want.Role && slices.Equal(got.Reasons, want.Reasons)
}

// hammer runs readers that decide reqs through e (mostly fast hits: the requests repeat between
// changes) while change(1), change(2), ... are made; want[s%2] are the answers after change s (and
// want[0] before any). A reader checks a decision only when no change was in flight from before
// its call began until after it returned: a change that returned before the call began is seen.
// change(s) may also end the decisions: then want is nil and every such call fails with closed.
func hammer(t *testing.T, e *Engine, reqs []Request, want func(s int) []Decision, changes int, change func(s int)) {
	t.Helper()
	var phase atomic.Uint64 // 2s: change s returned and s+1 has not begun; odd: a change in flight
	var calls atomic.Int64
	var done, failed atomic.Bool
	errs := make(chan error, 2)
	var readers sync.WaitGroup
	for g := range 2 {
		readers.Go(func() {
			defer func() {
				if !done.Load() {
					failed.Store(true) // the writer stops waiting for calls
				}
			}()
			for i := g; !done.Load(); i++ {
				r := reqs[i%len(reqs)]
				ph := phase.Load()
				d, err := e.Authorize(t.Context(), r)
				if ph2 := phase.Load(); ph == ph2 && ph%2 == 0 {
					w := want(int(ph / 2))
					switch {
					case w == nil && !errorsIsClosed(err):
						errs <- fmt.Errorf("after change %d (closing): %+v, %v", ph/2, d, err)
						return
					case w != nil && (err != nil || !sameDecision(d, w[i%len(reqs)])):
						errs <- fmt.Errorf("after change %d, %+v: got %+v, %v; want %+v", ph/2, r, d, err, w[i%len(reqs)])
						return
					}
				}
				calls.Add(1)
			}
		})
	}
	wait := func() { // for hits, stamps and fast hits
		for seen := calls.Load(); calls.Load() < seen+int64(4*len(reqs)) && !failed.Load(); {
			runtime.Gosched()
		}
	}
	for s := 1; s <= changes && !failed.Load(); s++ {
		wait()
		phase.Add(1)
		change(s)
		phase.Add(1)
	}
	wait()
	done.Store(true)
	readers.Wait()
	close(errs)
	require.NoError(t, <-errs)
}

func errorsIsClosed(err error) bool { return errors.Is(err, teamgate.ErrClosed) }

// answers are the uncached answers to reqs of an engine over st with modules.
func answers(t *testing.T, st *store.Store, reqs []Request, modules ...rego.Module) []Decision {
	plain, err := New(t.Context(), st, WithDecisionCache(0), WithModules(modules...))
	require.NoError(t, err)
	out := make([]Decision, len(reqs))
	for i, r := range reqs {
		out[i], err = plain.Authorize(t.Context(), r)
		require.NoError(t, err)
	}
	return out
}

// TestFastHitNeverStale: readers hammer cached decisions, most of them fast hits, while a writer
// changes facts they depend on back and forth: after a write returns, no call that begins
// afterwards, on any goroutine, is answered as before it. This is the stamp's ordering under
// test (decisionCache.stamp: epoch read before the check, the writer's epoch moved after its
// cells): a word stamped with an epoch read before a racing write is never served after it.
func TestFastHitNeverStale(t *testing.T) {
	t.Parallel()
	e := newAcmeInternal(t)
	st := e.Directory().(*store.Store)
	reqs := collidingRequests()
	toggle := []store.Change{
		store.PutTeamMember{Org: "acme", Team: "engineering", User: "vera", Role: "contributor"},
		store.DeleteTeamMember{Org: "acme", Team: "engineering", User: "vera"},
	}
	want := [2][]Decision{} // want[j]: after toggle[j]
	for _, j := range []int{1, 0} {
		_, err := st.Apply(t.Context(), toggle[j])
		require.NoError(t, err)
		want[j] = answers(t, st, reqs)
	}
	require.NotEqual(t, want[0], want[1], "the writes change answers")
	for i := range reqs { // cached and stamped before the writes begin
		for range 2 {
			_, err := e.Authorize(t.Context(), reqs[i])
			require.NoError(t, err)
		}
	}
	require.True(t, stampedNow(e.decisions, fastKey(e, reqs[0])), "hits are fast")
	hammer(t, e, reqs, func(s int) []Decision { return want[s%2] }, 200, func(s int) {
		_, err := st.Apply(t.Context(), toggle[s%2])
		require.NoError(t, err)
	})
}

// TestStampRacingWrite: a write that lands between a slow hit's check and its stamp (the check
// found the entry current; the write then stores its cells and moves the epoch) leaves the word
// stamped with the epoch read before the check, so the next call is not served the decision the
// write changed. (Stamped with an epoch read after the check, the word would be a fast hit.)
func TestStampRacingWrite(t *testing.T) {
	t.Parallel()
	e := newAcmeInternal(t)
	st := e.Directory().(*store.Store)
	r := Request{Subject: "vera", Action: "runs.stop", Resource: "acme/engineering/vision"}
	for _, role := range []string{"viewer", "contributor", "viewer"} {
		before, err := e.Authorize(t.Context(), r) // a miss, or a fast hit after the last round
		require.NoError(t, err)
		// An unrelated write: the entry stays current, its word is behind the epoch (a slow hit).
		_, err = st.Apply(t.Context(), store.PutMember{Org: "acme", User: "ghost-" + role, Role: "member"})
		require.NoError(t, err)
		e.decisions.afterCheck = func() {
			e.decisions.afterCheck = nil
			_, err := st.Apply(t.Context(), store.PutTeamMember{Org: "acme", Team: "engineering", User: "vera", Role: role})
			require.NoError(t, err)
		}
		d, err := e.Authorize(t.Context(), r) // checked before the write: its answer
		require.NoError(t, err)
		require.True(t, sameDecision(d, before))
		require.Nil(t, e.decisions.afterCheck, "the write ran between check and stamp")
		want := answers(t, st, []Request{r})[0]
		require.False(t, sameDecision(want, before), "the write changes the answer")
		for range 2 {
			d, err = e.Authorize(t.Context(), r)
			require.NoError(t, err)
			require.True(t, sameDecision(d, want), "%s: got %+v, want %+v", role, d, want)
		}
	}
}

// TestFastHitPolicySwap: the same with the policy swapped back and forth (SetPolicy and
// SetPolicyIf's swap move the cache's epoch after the swap).
func TestFastHitPolicySwap(t *testing.T) {
	t.Parallel()
	e := newAcmeInternal(t)
	st := e.Directory().(*store.Store)
	reqs := collidingRequests()
	frozen := rego.Module{Name: "x.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"frozen\" if input.subject.id == \"bob\"\n"}
	want := [2][]Decision{answers(t, st, reqs), answers(t, st, reqs, frozen)}
	require.NotEqual(t, want[0], want[1], "the policies answer differently")
	hammer(t, e, reqs, func(s int) []Decision { return want[s%2] }, 20, func(s int) {
		if s%2 == 1 {
			require.NoError(t, e.SetPolicy(t.Context(), []rego.Module{frozen}))
		} else {
			require.NoError(t, e.SetPolicy(t.Context(), nil))
		}
	})
}

// TestFastHitClose: once the store's Close returns, no call is answered, fast hits included.
func TestFastHitClose(t *testing.T) {
	t.Parallel()
	e := newAcmeInternal(t)
	st := e.Directory().(*store.Store)
	reqs := collidingRequests()
	want := answers(t, st, reqs)
	hammer(t, e, reqs, func(s int) []Decision {
		if s > 0 {
			return nil
		}
		return want
	}, 1, func(int) { require.NoError(t, st.Close()) })
}

// TestEpochWrap: with stamps narrowed to 4 bits of the epoch, a word stamped at epoch E is not
// served at E+16, where its stamp's bits are the epoch's again: neither the word of a decision a
// write changed meanwhile, nor (the era's walk clears every stamp of the group) any other word of
// the group (acme's part holding vision) stamped at E.
func TestEpochWrap(t *testing.T) {
	t.Parallel()
	e := newAcmeInternal(t)
	c := e.decisions
	c.setEpochBits(4)
	st := e.Directory().(*store.Store)
	r := Request{Subject: "vera", Action: "runs.stop", Resource: "acme/engineering/vision"}
	other := Request{Subject: "olga", Action: "runs.get", Resource: "acme/vision"}
	for round := range 6 { // several eras, the change toggled each time
		for _, q := range []Request{r, other} {
			for range 3 { // a miss or a slow hit, then hits that stamp (the first may move the era)
				_, err := e.Authorize(t.Context(), q)
				require.NoError(t, err)
			}
			require.True(t, stampedNow(c, fastKey(e, q)), "round %d: %+v", round, q)
		}
		g := wordGroup(c, fastKey(e, r))
		require.Equal(t, g, wordGroup(c, fastKey(e, other)), "one group")
		e0 := c.now(g)
		var change store.Change = store.PutTeamMember{Org: "acme", Team: "engineering", User: "vera", Role: "viewer"}
		if round%2 == 1 {
			change = store.PutTeamMember{Org: "acme", Team: "engineering", User: "vera", Role: "contributor"}
		}
		_, err := st.Apply(t.Context(), change)
		require.NoError(t, err)
		moved := c.now(g) - e0
		require.Less(t, moved, uint64(16))
		c.policySwaps.Add(16 - moved) // the epoch is now e0+16: the stamps' bits match it again
		require.Equal(t, e0+16, c.now(g))
		want := answers(t, st, []Request{r, other})
		got, err := e.Authorize(t.Context(), r)
		require.NoError(t, err)
		require.True(t, sameDecision(got, want[0]), "round %d: got %+v, want %+v", round, got, want[0])
		_, err = e.Authorize(t.Context(), r) // a slow hit: moves acme's era, clearing its group's stamps
		require.NoError(t, err)
		require.Equal(t, (e0+16)>>4, c.eras[g].Load(), "round %d", round)
		require.False(t, stampedNow(c, fastKey(e, other)), "round %d: a stamp of the old era", round)
		got, err = e.Authorize(t.Context(), other)
		require.NoError(t, err)
		require.True(t, sameDecision(got, want[1]), "round %d", round)
	}
}

// TestExpiringDecisionsAreNeverFast: a decision that read an expiring grant is never stamped (its
// hits read the clock), and stops being served at the expiry though nothing is written, while a
// decision without expiry is served from its word.
func TestExpiringDecisionsAreNeverFast(t *testing.T) {
	t.Parallel()
	clock, st := expiryStore(t)
	e, err := New(t.Context(), st)
	require.NoError(t, err)
	bob := Request{Subject: "bob", Action: "project.get", Resource: "a/p"}   // expires in an hour
	carl := Request{Subject: "carl", Action: "project.get", Resource: "a/p"} // never
	for range 3 {
		d, err := e.Authorize(t.Context(), bob)
		require.NoError(t, err)
		require.True(t, d.Allowed)
		_, err = e.Authorize(t.Context(), carl)
		require.NoError(t, err)
	}
	require.False(t, stampedNow(e.decisions, fastKey(e, bob)), "an expiring decision")
	require.True(t, stampedNow(e.decisions, fastKey(e, carl)))
	hits := e.Stats().CacheHits
	clock.Advance(time.Hour)
	d, err := e.Authorize(t.Context(), bob)
	require.NoError(t, err)
	require.False(t, d.Allowed, "expired, nothing written")
	want, err := e.Authorize(t.Context(), carl)
	require.NoError(t, err)
	require.Equal(t, hits+1, e.Stats().CacheHits, "carl's is still a hit")
	require.True(t, stampedNow(e.decisions, fastKey(e, carl)))
	require.Equal(t, answers(t, st, []Request{carl})[0].Allowed, want.Allowed)
}

// TestFastHitCollisions: with every request in one probe run (the index hash narrowed, the
// fingerprints not), fast hits answer each request with its own decision.
func TestFastHitCollisions(t *testing.T) {
	t.Parallel()
	e := newAcmeInternal(t)
	weakHashes(e)
	reqs := collidingRequests()
	want := answers(t, e.Directory().(*store.Store), reqs)
	for round := range 3 {
		for i, r := range reqs {
			got, err := e.Authorize(t.Context(), r)
			require.NoError(t, err)
			require.True(t, sameDecision(got, want[i]), "round %d: %+v: got %+v, want %+v", round, r, got, want[i])
		}
	}
	fast := 0
	for _, r := range reqs {
		if stampedNow(e.decisions, fastKey(e, r)) {
			fast++
		}
	}
	require.Equal(t, len(reqs), fast, "every word stamped: the rounds after the first two were fast hits")
}

// expiryStore is a store on a test clock holding expirytest's org (memberships and grants that
// expire), closed when t ends.
func expiryStore(t *testing.T) (*clocktest.Clock, *store.Store) {
	t.Helper()
	clock := clocktest.New(expirytest.Start())
	st, err := store.Open(t.Context(), store.Options{Clock: clock, NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.Apply(t.Context(), expirytest.Org()...)
	require.NoError(t, err)
	return clock, st
}
