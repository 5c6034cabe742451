package authz

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/racedetect"
	"github.com/teamgate/teamgate/store"
)

// TestAttack24bRunsRejoinWhileTaken (run under -race): hitters of one entry, two goroutines per
// stripe word (so their CASes on a run may collide and the loser go through openRun's rejoin;
// every other hit goes to openRun as if its CAS had lost, since real losses are rare), log hits at a revision a writer keeps bumping and at two MinRevisions, while one consumer
// takes the ring (sealing runs under the hitters) on rings of 4, 64 and 4096 slots. Every hit
// is taken or counted as dropped, and no (revision, MinRevision) has more records than hits of
// it: a hit that joined a sealed run would be lost (fewer records than hits with no drop to
// account for it), one that joined a run of another revision or MinRevision would show as a
// record of a key with more records than hits. With no drop, the records per key are exactly
// the hits.
func TestAttack24bRunsRejoinWhileTaken(t *testing.T) {
	t.Parallel()
	p := newAcmeInternal(t).Policy()
	each := 100000
	if racedetect.Enabled {
		each = 20000
	}
	for _, size := range []int{4, 64, 4096} {
		for _, hitters := range []int{4, 8} {
			t.Run(fmt.Sprintf("size=%d/hitters=%d", size, hitters), func(t *testing.T) {
				l := &decisionLog{} // no drainer: the consumer below takes the records
				l.ring.init(size)
				q := &l.ring
				en := &cacheEntry{logKey: "bob\x00runs.stop\x00acme/vision\x00", entry: cached{dec: Decision{Allowed: true, Role: "member"}, policy: p}}
				type key struct{ rev, minRev uint64 }
				var cur atomic.Uint64 // the revision hits are labelled with
				cur.Store(1)
				hits := make([]map[key]int, hitters)
				var wg sync.WaitGroup
				var done atomic.Bool
				for g := range hitters {
					hits[g] = map[key]int{}
					wg.Go(func() {
						latest := &en.logRun[g%(hitters/2)] // two hitters per word
						for i := range each {
							k := key{cur.Load(), uint64(i % 7 / 6)} // MinRevision 1 one hit in 7
							if i%2 == 0 {
								// As a hit whose CAS lost (rare on a loaded machine): openRun,
								// and mostly rejoin, while the consumer seals runs.
								l.openRun(en, latest, k.rev, k.minRev)
							} else if s, st, run := q.runOf(latest); !s.joins(st, run, k.rev, k.minRev) {
								l.openRun(en, latest, k.rev, k.minRev)
							}
							hits[g][k]++
							if i%512 == 0 {
								runtime.Gosched()
							}
						}
					})
				}
				var writer sync.WaitGroup
				writer.Go(func() {
					for !done.Load() {
						cur.Add(1)
						runtime.Gosched()
					}
				})
				taken := map[key]int{}
				batch := make([]DecisionRecord, 0, 16)
				consume := func() int {
					b := q.take(batch[:0], time.Time{})
					for _, r := range b {
						if r.Request.Subject != "bob" || r.Request.Action != "runs.stop" || !r.Decision.Allowed || r.Decision.Role != "member" {
							t.Fatalf("a record of no hit: %+v", r)
						}
						taken[key{r.Decision.Revision, r.Request.MinRevision}]++
					}
					return len(b)
				}
				stopped := make(chan struct{})
				go func() { wg.Wait(); close(stopped) }()
			loop:
				for {
					select {
					case <-stopped:
						break loop
					default:
					}
					if consume() == 0 {
						runtime.Gosched()
					}
				}
				done.Store(true)
				writer.Wait()
				for consume() > 0 { // every position was published before its hitter returned
				}
				require.Equal(t, q.tail.Load(), q.head, "every position taken")
				want := map[key]int{}
				total := 0
				for _, h := range hits {
					for k, n := range h {
						want[k] += n
						total += n
					}
				}
				got := 0
				for k, n := range taken {
					require.LessOrEqual(t, n, want[k], "records of %+v: more than its hits", k)
					got += n
				}
				dropped := l.dropped.Load()
				require.Equal(t, uint64(total), uint64(got)+dropped, "every hit taken or dropped")
				if dropped == 0 {
					require.Equal(t, want, taken)
				}
			})
		}
	}
}

// TestAttack24bHotHitsLoggedOnce (run under -race): 4 and 8 goroutines decide the same three
// cached requests (and, one call in 16, one of them at the store's current revision as its
// MinRevision) while a writer bumps the revision with writes that change none of their decisions
// (another org's members: the hits are labelled with the new revision, new runs) and flushes
// the log, on queues of 4 and 64 slots. Each flush returns with every decision made before it
// written or dropped; at the end, written + dropped is the number of decisions, and the records,
// as a multiset, are among the decisions returned (all of them when none was dropped).
func TestAttack24bHotHitsLoggedOnce(t *testing.T) {
	t.Parallel()
	each := 10000
	if racedetect.Enabled {
		each = 1500
	}
	reqs := []Request{
		{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"},
		{Subject: "vera", Action: "runs.get", Resource: "acme/labs"},
		{Subject: "vera", Action: "runs.get", Resource: "vision", Owner: "acme"},
	}
	for _, queue := range []int{4, 64} {
		for _, workers := range []int{4, 8} {
			t.Run(fmt.Sprintf("queue=%d/workers=%d", queue, workers), func(t *testing.T) {
				ctx := t.Context()
				sink := &attackSink{}
				e := newAcmeInternal(t, WithDecisionLog(sink), WithDecisionLogQueue(queue))
				st := e.Directory().(*store.Store)
				_, err := st.Apply(ctx, store.PutOrg{Org: store.Org{Name: "other"}})
				require.NoError(t, err)
				var decided atomic.Uint64 // calls returned
				made := make([][]string, workers)
				var wg sync.WaitGroup
				for w := range workers {
					wg.Go(func() {
						for i := range each {
							r := reqs[(i/64+w)%len(reqs)] // runs of 64 calls of a request
							if i%16 == 15 {
								r.MinRevision = st.Revision()
							}
							d, err := e.Authorize(ctx, r)
							if err != nil {
								t.Error(err)
								return
							}
							made[w] = append(made[w], fmt.Sprint(r, d))
							decided.Add(1)
						}
					})
				}
				var done atomic.Bool
				var writer sync.WaitGroup
				writer.Go(func() {
					for i := 0; !done.Load(); i++ {
						if _, err := st.Apply(ctx, store.PutMember{Org: "other", User: fmt.Sprintf("u%d", i%5), Role: []string{"member", "admin"}[i/5%2]}); err != nil {
							t.Error(err)
							return
						}
						before := decided.Load()
						if err := e.FlushDecisionLog(ctx); err != nil {
							t.Error(err)
							return
						}
						if s := e.Stats(); s.DecisionLogWritten+s.DecisionLogDropped < before {
							t.Errorf("flush returned with %d written, %d dropped of %d decisions made before it", s.DecisionLogWritten, s.DecisionLogDropped, before)
							return
						}
					}
				})
				wg.Wait()
				done.Store(true)
				writer.Wait()
				require.NoError(t, e.FlushDecisionLog(ctx))
				s := e.Stats()
				total := uint64(workers * each)
				require.Equal(t, total, decided.Load())
				require.Zero(t, s.DecisionLogFailed)
				require.Equal(t, total, s.DecisionLogWritten+s.DecisionLogDropped, "a record or a drop per decision")
				calls := map[string]int{}
				for _, m := range made {
					for _, k := range m {
						calls[k]++
					}
				}
				sink.mu.Lock()
				recs := append([]DecisionRecord(nil), sink.recs...)
				sink.mu.Unlock()
				require.Len(t, recs, int(s.DecisionLogWritten))
				for _, r := range recs {
					k := fmt.Sprint(r.Request, r.Decision)
					require.Positive(t, calls[k], "a record of no decision returned (or one too many): %s", k)
					calls[k]--
				}
				if s.DecisionLogDropped == 0 {
					for k, n := range calls {
						require.Zero(t, n, "decisions not logged: %s", k)
					}
				}
				require.NoError(t, e.Close(ctx))
			})
		}
	}
}

// TestAttack24bRejoinStopsAtFull: hits that all go through openRun (as if each had lost its
// CAS) rejoin the entry's run until its count is countMask-1 — never countMask, the sealed
// count, which the drainer would take as a run of countMask+1 records — and then start a run;
// a run sealed by take is never rejoined, and a rejoin with no run yet (the entry's word 0,
// naming the slot before position 0 with tag 0) starts one, even when that slot holds a run of
// the same revision. Every hit is one record.
func TestAttack24bRejoinStopsAtFull(t *testing.T) {
	t.Parallel()
	p := newAcmeInternal(t).Policy()
	l := &decisionLog{} // no drainer: the test takes the records
	l.ring.init(4)
	q := &l.ring
	en := &cacheEntry{logKey: "bob\x00runs.stop\x00acme/vision\x00", entry: cached{dec: Decision{Allowed: true, Role: "member"}, policy: p}}
	other := &cacheEntry{logKey: "vera\x00runs.get\x00acme/labs\x00", entry: cached{dec: Decision{Role: "viewer"}, policy: p}}
	batch := make([]DecisionRecord, 0, 1024)
	takeAll := func() map[string]int {
		got := map[string]int{}
		for {
			b := q.take(batch[:0], time.Time{})
			if len(b) == 0 {
				return got
			}
			for _, r := range b {
				got[fmt.Sprint(r.Request.Subject, r.Decision.Revision)]++
			}
		}
	}
	// Positions 0-3: other's runs, the last (slot 3, the slot a word of 0 names: position -1's)
	// at revision 7 as en's hit below, and left unsealed (the first three taken).
	for i := range 4 {
		l.openRun(other, &other.logRun[0], uint64(4+i), 0)
	}
	require.Len(t, q.take(batch[:0:3], time.Time{}), 3)
	l.openRun(en, &en.logRun[1], 7, 0) // word 0: a run at position 4, not a join of position 3's
	require.EqualValues(t, 5, q.tail.Load())
	require.EqualValues(t, 5, en.logRun[1].Load())
	require.Equal(t, map[string]int{"vera7": 1, "bob7": 1}, takeAll())

	// Runs filled by rejoins: 2*countMask+2 hits are two runs, full, and one of 2.
	const hits = 2*countMask + 2
	for range hits {
		l.openRun(en, &en.logRun[0], 9, 0)
	}
	require.EqualValues(t, 5+3, q.tail.Load(), "runs of countMask records (a count of countMask-1) each")
	require.Equal(t, map[string]int{"bob9": hits}, takeAll())
	require.Zero(t, l.dropped.Load())
	// Sealed by take: the next hit starts a run.
	l.openRun(en, &en.logRun[0], 9, 0)
	require.EqualValues(t, 9, q.tail.Load())
	require.Equal(t, map[string]int{"bob9": 1}, takeAll())
}
