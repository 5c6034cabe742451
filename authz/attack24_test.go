package authz

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/racedetect"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// TestAttack24HitRecordIsTheCallsDecision: each reader decides requests of its own subject only,
// one call after another, while a writer flips the subjects' org and team roles, the policy is
// swapped back and forth (a "frozen" reason under one policy only) and two goroutines decide the
// readers' requests unlogged (their entries decided again and replaced at the positions the
// readers hit: every request shares one probe run), with a cache that holds all the requests and
// one that evicts on almost every miss, without and with metrics (runs of hits; a record per
// call). No record is dropped (the queue holds every call), so a request's records, in the log's
// order, are its calls' decisions in call order (a hit joins its entry's run only while the entry
// is still cached, and then its decision and revision are the run's): each record — cache hits'
// above all, identified by cacheEntry.served — is exactly the decision its call returned
// (allowed, role, reasons, revision), under the fingerprint of the policy that made it. (A hit's
// entry replaced between get and the log's load of its position is a window of a few
// instructions that this test rarely lands in: TestAttack24SlowHitEntryReplaced makes it happen.)
func TestAttack24HitRecordIsTheCallsDecision(t *testing.T) {
	t.Parallel()
	frozen := rego.Module{Name: "x.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"frozen\" if startswith(input.subject.id, \"u\")\n"}
	var pols [2]*rego.Policy // plain, frozen
	fps := map[string]bool{} // fingerprint → frozen
	for i, mods := range [][]rego.Module{nil, {frozen}} {
		var err error
		pols[i], err = rego.New(t.Context(), mods)
		require.NoError(t, err)
		fps[pols[i].Fingerprint()] = i == 1
	}
	users := []string{"u0", "u1", "u2", "u3"}
	var reqs [][]Request // by user
	for _, u := range users {
		reqs = append(reqs, []Request{
			{Subject: u, Action: "org.update", Resource: "acme"},
			{Subject: u, Action: "runs.get", Resource: "acme/open"},
			{Subject: u, Action: "runs.stop", Resource: "acme/engineering/vision"},
		})
	}
	orgRoles := []string{"member", "admin", "viewer"}
	teamRoles := []string{"contributor", "viewer", "admin"}
	calls := 3000 // per reader: the queue holds every call
	if racedetect.Enabled {
		calls = 500 // OPA under -race: 20–50× the cost
	}
	for _, size := range []int{5, 1000} {
		for _, metrics := range []bool{false, true} {
			t.Run(fmt.Sprintf("size=%d/metrics=%v", size, metrics), func(t *testing.T) {
				ctx := t.Context()
				sink := &attackSink{}
				opts := []Option{WithDecisionCache(size), WithDecisionLog(sink), WithDecisionLogQueue(1 << 16)}
				if metrics {
					opts = append(opts, WithMetrics(prometheus.NewRegistry()))
				}
				e := newAcmeInternal(t, opts...)
				weakHashes(e)
				st := e.Directory().(*store.Store)
				for _, u := range users {
					_, err := st.Apply(ctx, store.PutMember{Org: "acme", User: u, Role: "member"},
						store.PutTeamMember{Org: "acme", Team: "engineering", User: u, Role: "contributor"})
					require.NoError(t, err)
				}
				returned := make([]map[string][]string, len(users)) // by user, then request (reqKey): its calls in order
				var readers, others sync.WaitGroup
				done := make(chan struct{})
				until := func(f func(s int) bool) { // f(0), f(1), ... until the readers are done or f fails
					for s := 0; ; s++ {
						select {
						case <-done:
							return
						default:
						}
						if !f(s) {
							return
						}
					}
				}
				for g, u := range users {
					returned[g] = map[string][]string{}
					readers.Go(func() {
						for i := range calls {
							r := reqs[g][i/3%len(reqs[g])] // each request thrice in a row: hits
							d, err := e.Authorize(ctx, r)
							if err != nil {
								t.Errorf("%s: %v", u, err)
								return
							}
							returned[g][reqKey(r)] = append(returned[g][reqKey(r)], attackLine(r, d))
							if i%3 == 2 {
								runtime.Gosched() // the writers run between a reader's hits
							}
						}
					})
				}
				others.Go(func() { // roles flip: entries decided again, replaced in place
					until(func(s int) bool {
						u := users[s%len(users)]
						var c store.Change = store.PutMember{Org: "acme", User: u, Role: orgRoles[s/len(users)%len(orgRoles)]}
						if s%2 == 1 {
							c = store.PutTeamMember{Org: "acme", Team: "engineering", User: u, Role: teamRoles[s/len(users)%len(teamRoles)]}
						}
						_, err := st.Apply(ctx, c)
						if err != nil {
							t.Error(err)
						}
						return err == nil
					})
				})
				others.Go(func() { // policies swap: the frozen reason comes and goes
					until(func(s int) bool {
						e.setPolicy(pols[(s+1)%2])         // as SetPolicy, without compiling each time
						time.Sleep(200 * time.Microsecond) // let decisions run under each policy
						return true
					})
				})
				for g := range 2 { // the readers' requests, unlogged: their entries replaced under the readers' hits
					others.Go(func() {
						until(func(s int) bool {
							r := reqs[(g+s)%len(users)][s%len(reqs[0])]
							r.unlogged = true
							_, err := e.Authorize(ctx, r)
							if err != nil {
								t.Error(err)
							}
							return err == nil
						})
					})
				}
				readers.Wait()
				close(done)
				others.Wait()
				// Quiet: each request twice in a row, the second a hit (nothing is inserted between).
				for g := range users {
					for _, r := range reqs[g] {
						for range 2 {
							d, err := e.Authorize(ctx, r)
							require.NoError(t, err)
							returned[g][reqKey(r)] = append(returned[g][reqKey(r)], attackLine(r, d))
						}
					}
				}
				require.NoError(t, e.Close(ctx))
				s := e.Stats()
				require.Zero(t, s.DecisionLogFailed)
				require.Zero(t, s.DecisionLogDropped, "the queue holds every call")
				logged := map[string][]string{}
				paths := map[DecisionPath]int{}
				for _, rec := range sink.recs {
					require.Empty(t, rec.Error)
					frozenPolicy, known := fps[rec.Policy]
					require.True(t, known, "a policy in force: %q", rec.Policy)
					hasFrozen := slices.ContainsFunc(rec.Decision.Reasons, func(r Reason) bool { return r.Message == "frozen" })
					require.Equal(t, frozenPolicy, hasFrozen, "%s (path %s) under policy frozen=%v", attackLine(rec.Request, rec.Decision), rec.Path, frozenPolicy)
					logged[reqKey(rec.Request)] = append(logged[reqKey(rec.Request)], attackLine(rec.Request, rec.Decision))
					paths[rec.Path]++
				}
				n := 0
				for g := range users {
					for _, r := range reqs[g] {
						require.Equal(t, returned[g][reqKey(r)], logged[reqKey(r)], "%+v: the records are the calls' decisions, in order", r)
						n += len(returned[g][reqKey(r)])
					}
				}
				require.Len(t, sink.recs, n, "a record per call, of no other request")
				require.Positive(t, paths[PathCacheL1], "cache hits logged: %v", paths)
			})
		}
	}
}

// reqKey names a request of TestAttack24HitRecordIsTheCallsDecision (no owner, attributes or
// MinRevision).
func reqKey(r Request) string { return r.Subject + "|" + r.Action + "|" + r.Resource }

// TestAttack24SlowHitEntryReplaced: a logged slow hit whose entry is replaced at its position
// after the hit checked it (cache.afterCheck: the hit's call then decides the entry's decision,
// and authorize loads the position again to log it) — by the same request decided again after a
// write that changes its answer, after a policy swap, or by another request evicting it — is
// logged as the decision the call returned, under the policy that made it, without and with
// metrics.
func TestAttack24SlowHitEntryReplaced(t *testing.T) {
	t.Parallel()
	frozen := rego.Module{Name: "x.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"frozen\" if startswith(input.subject.id, \"u\")\n"}
	frozenPolicy, err := rego.New(t.Context(), []rego.Module{frozen})
	require.NoError(t, err)
	r := Request{Subject: "u0", Action: "org.update", Resource: "acme"}
	other := Request{Subject: "u1", Action: "org.update", Resource: "acme", unlogged: true}
	for _, replace := range []string{"role", "same answer", "policy", "eviction"} {
		for _, metrics := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/metrics=%v", replace, metrics), func(t *testing.T) {
				ctx := t.Context()
				sink := &attackSink{}
				opts := []Option{WithDecisionLog(sink), WithDecisionLogQueue(1 << 10)}
				if replace == "eviction" {
					opts = append(opts, WithDecisionCache(1))
				}
				if metrics {
					opts = append(opts, WithMetrics(prometheus.NewRegistry()))
				}
				e := newAcmeInternal(t, opts...)
				e.decisions.hashMask = 0 // every request's home is position 0: the other request takes the evicted position
				st := e.Directory().(*store.Store)
				_, err := st.Apply(ctx, store.PutMember{Org: "acme", User: "u0", Role: "member"}, store.PutMember{Org: "acme", User: "u1", Role: "admin"})
				require.NoError(t, err)
				plain := e.Policy()
				var armed atomic.Bool
				pos, served := -1, (*cacheEntry)(nil) // the entry the hit checks, and its position
				e.decisions.afterCheck = func() {
					if !armed.Swap(false) {
						return
					}
					switch replace {
					case "role", "same answer":
						_, err := st.Apply(ctx, store.PutMember{Org: "acme", User: "u0", Role: "admin"})
						require.NoError(t, err)
						if replace == "same answer" {
							_, err := st.Apply(ctx, store.PutMember{Org: "acme", User: "u0", Role: "member"})
							require.NoError(t, err)
						}
					case "policy":
						e.setPolicy(frozenPolicy)
					}
					rr := r
					if replace == "eviction" {
						rr = other
					}
					rr.unlogged = true
					d, err := e.Authorize(ctx, rr) // decided and cached at the hit's position
					require.NoError(t, err)
					en := e.decisions.shard(0).index.Load().ents[pos].Load()
					require.NotNil(t, en)
					require.NotSame(t, served, en, "the hit's position holds another entry")
					require.Equal(t, d, en.entry.dec, "the position holds the new decision")
				}
				var want []string
				first, err := e.Authorize(ctx, r) // a miss: cached
				require.NoError(t, err)
				want = append(want, attackLine(r, first))
				var k cacheKey
				e.decisions.key(&k, r.Subject, r.Action, r.Resource, r.Owner)
				ix := e.decisions.shard(k.ih).index.Load()
				for i := range ix.ents {
					if en := ix.ents[i].Load(); en != nil && en.holds(&k) {
						pos, served = i, en
					}
				}
				require.NotNil(t, served, "cached")
				armed.Store(true)
				got, err := e.Authorize(ctx, r) // a slow hit, its entry replaced after the check
				require.NoError(t, err)
				require.False(t, armed.Load(), "a slow hit")
				require.True(t, sameDecision(first, got), "the hit serves the entry it checked")
				want = append(want, attackLine(r, got))
				require.NoError(t, e.Close(ctx))
				var logged []string
				for _, rec := range sink.recs {
					logged = append(logged, attackLine(rec.Request, rec.Decision))
					require.Equal(t, plain.Fingerprint(), rec.Policy, "%s (path %s): the policy that made it", logged[len(logged)-1], rec.Path)
				}
				require.Equal(t, want, logged)
				require.Equal(t, PathCacheL1, sink.recs[1].Path)
			})
		}
	}
}
