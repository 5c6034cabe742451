package bench

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/maypok86/otter/v2"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/store"
)

// distinctRequests returns n distinct random requests of the small tier (subject, action,
// project), in random order.
func distinctRequests(s Scenario, n int) []authz.Request {
	rng := rand.New(rand.NewPCG(11, 11))
	actions := []string{"runs.get", "runs.stop", "runs.approve", "runs.bookmark"}
	seen := make(map[reqKey]bool, n)
	out := make([]authz.Request, 0, n)
	for len(out) < n {
		user := fmt.Sprintf("u%d", rng.IntN(s.Users))
		if rng.IntN(20) == 0 {
			user = fmt.Sprintf("o%d", rng.IntN(s.Outsiders))
		}
		r := authz.Request{Subject: user, Action: actions[rng.IntN(len(actions))], Resource: fmt.Sprintf("org/p%d", rng.IntN(s.Projects))}
		if k := keyOf(r); !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	return out
}

// reqKey is a request without attributes, as a map key.
type reqKey struct{ subject, action, resource, owner string }

func keyOf(r authz.Request) reqKey { return reqKey{r.Subject, r.Action, r.Resource, r.Owner} }

// distinctKeys is how many distinct requests the L1 benchmarks spread over (SPEC §9).
const distinctKeys = 100_000

// BenchmarkL1Distinct: decisions served from the in-memory cache over 100k distinct requests
// (all cached: the cache keeps 100k), in random order, on one core (with p50/p99 of batches of
// lookupBatch lookups, per lookup: see timedOver) and on every core (-parallel). The
// references, in the same run on the same keys and the same harness:
//   - map: the decisions in a plain Go map, no lock, no dependency check (the floor);
//   - otter, golang-lru: what a hit would cost on those caches (otter v2, and golang-lru v2, the
//     previous tier): the lookup, the Deps check and the decision's copy;
//   - onetable32, onetable48: the floor of a hit that reads one slot of a compact table (see
//     oneTable): 32-byte slots whose currency a writer would clear, and 48-byte slots that check
//     three stamp cells by index, as a hit must when nobody clears it;
//   - harness: no lookup, only what every variant pays around one: the walk over the Request
//     values, the call, reading the first and last byte of the subject and resource (a lookup
//     reads them all), and the batch timing.
func BenchmarkL1Distinct(b *testing.B) {
	st, eng := open(b, Small, authz.WithDecisionCache(distinctKeys))
	ctx := b.Context()
	reqs := distinctRequests(Small, distinctKeys)
	ref := make(map[reqKey]authz.Decision, len(reqs))
	oc := otter.Must(&otter.Options[reqKey, *cacheEntry]{MaximumSize: distinctKeys})
	lc, err := lru.New[reqKey, *cacheEntry](distinctKeys)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range reqs {
		d, err := eng.Authorize(ctx, r)
		if err != nil {
			b.Fatal(err)
		}
		ref[keyOf(r)] = d
		e := trackedEntry(b, st, r, d)
		oc.Set(keyOf(r), e)
		lc.Add(keyOf(r), e)
	}
	held := 0
	for _, r := range reqs {
		if _, ok := oc.GetIfPresent(keyOf(r)); ok {
			held++
		}
	}
	b.Logf("otter holds %d of the %d decisions", held, len(reqs))
	distinct, roles := map[string]bool{}, map[string]bool{}
	for _, d := range ref {
		distinct[fmt.Sprint(d.Allowed, d.Role, d.Reasons)], roles[d.Role] = true, true
	}
	b.Logf("%d distinct decisions (verdict, role, reasons), %d roles: messages name the subject and project", len(distinct), len(roles))
	one32, one48 := newOneTable(32, reqs, ref), newOneTable(48, reqs, ref)
	for _, r := range reqs {
		for _, t := range []*oneTable{one32, one48} {
			if d, ok := t.get(r); !ok || d.Allowed != ref[keyOf(r)].Allowed || d.Role != ref[keyOf(r)].Role || len(d.Reasons) != len(ref[keyOf(r)].Reasons) {
				b.Fatalf("onetable%d: %v %v for %v, want %v", t.slot, d, ok, r, ref[keyOf(r)])
			}
		}
	}
	before := eng.Stats()
	fromEntry := func(e *cacheEntry, ok bool) bool {
		if !ok || !e.deps.Current() {
			return false
		}
		d := e.dec
		d.Revision = st.Revision()
		return d.Allowed
	}
	// The two deciders of every case, with and without writes.
	viaEngine := func(r authz.Request) bool {
		d, err := eng.Authorize(ctx, r)
		return err == nil && d.Allowed
	}
	viaMap := func(r authz.Request) bool { return ref[keyOf(r)].Allowed }
	for _, v := range []struct {
		name   string
		decide func(authz.Request) bool
	}{
		{"teamgate", viaEngine},
		{"map", viaMap},
		{"otter", func(r authz.Request) bool { return fromEntry(oc.GetIfPresent(keyOf(r))) }},
		{"golang-lru", func(r authz.Request) bool { return fromEntry(lc.Get(keyOf(r))) }},
		{"onetable32", func(r authz.Request) bool { d, ok := one32.get(r); return ok && d.Allowed }},
		{"onetable48", func(r authz.Request) bool { d, ok := one48.get(r); return ok && d.Allowed }},
		{"harness", func(r authz.Request) bool {
			return r.Subject[0]^r.Subject[len(r.Subject)-1]^r.Resource[0]^r.Resource[len(r.Resource)-1] == 0
		}},
	} {
		b.Run(v.name, func(b *testing.B) { timedOver(b, reqs, v.decide) })
		b.Run(v.name+"-parallel", func(b *testing.B) { parallelOver(b, reqs, v.decide) })
	}
	if s := eng.Stats(); s.CacheMisses != before.CacheMisses {
		b.Fatalf("%d misses: not every request was a hit", s.CacheMisses-before.CacheMisses)
	}
	// The same hits while writers write unrelated facts (nothing any request reads): the roles
	// of the members of org noise, no request's org, 1,000 times a second (-writes) and 10,000
	// (-writes10k: ten writers), and the grants of a project of the requests' own org that no request names
	// (-sameorg). A write moves the epochs of its groups only (store.Epoch): a membership all of
	// its org's, noise's under -writes, none of org's, so the words stay stamped; a grant its
	// project's group and its org's list group, under -sameorg the group of org's projects that
	// project noise shares (one of 14), so the hits on those projects check their Deps again once
	// per write and the others stay fast (nothing is evicted either way). writes/s is the rate
	// reached.
	if _, err := st.Apply(ctx, store.PutOrg{Org: store.Org{Name: "noise"}},
		store.PutProject{Project: store.Project{Org: "org", Name: "noise"}}); err != nil {
		b.Fatal(err)
	}
	if group(b, st, "noise") == group(b, st, "org") {
		b.Fatal("orgs noise and org share an epoch group")
	}
	for _, w := range []struct {
		suffix  string
		writers int
		every   time.Duration
		write   func(n int) store.Change
	}{
		{"-writes", 1, time.Millisecond, noiseWrite},
		{"-writes10k", 10, time.Millisecond, noiseWrite},
		{"-sameorg", 1, time.Millisecond, func(n int) store.Change {
			return store.PutGrant{Org: "org", Project: "noise", User: fmt.Sprint("u", n%100),
				Grant: store.Grant{Role: []string{"viewer", "admin"}[n/100%2]}}
		}},
	} {
		for _, v := range []struct {
			name   string
			decide func(authz.Request) bool
		}{
			{"teamgate", viaEngine},
			{"map", viaMap},
		} {
			b.Run(v.name+w.suffix, func(b *testing.B) {
				stop, done := make(chan struct{}), make(chan int)
				go unrelatedWrites(b, st, w.writers, w.every, w.write, stop, done)
				t0, misses := time.Now(), eng.Stats().CacheMisses
				timedOver(b, reqs, v.decide)
				close(stop)
				b.ReportMetric(float64(<-done)/time.Since(t0).Seconds(), "writes/s")
				b.ReportMetric(float64(eng.Stats().CacheMisses-misses), "misses")
			})
		}
	}
}

// group is the epoch group of org's facts in st.
func group(b *testing.B, st *store.Store, org string) int {
	var d store.Deps
	if err := st.View(func(r store.Reader) error { r.Track(&d).Org(org); return nil }); err != nil {
		b.Fatal(err)
	}
	return d.EpochGroup()
}

// noiseWrite is the n-th write of a member's role in org noise.
func noiseWrite(n int) store.Change {
	return store.PutMember{Org: "noise", User: fmt.Sprint("u", n%100), Role: []string{"member", "admin"}[n/100%2]}
}

// unrelatedWrites applies write(0), write(1), ... from writers goroutines, each once per tick of
// every, until stop is closed, then sends the number of writes to done. (One writer reaches
// ≈ 2,000 writes/s on the developer machine; the store commits concurrent writes together.)
func unrelatedWrites(b *testing.B, st *store.Store, writers int, every time.Duration, write func(int) store.Change, stop <-chan struct{}, done chan<- int) {
	var n atomic.Int64
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := st.Apply(b.Context(), write(int(n.Add(1)-1))); err != nil {
					b.Error(err)
				}
			}
		})
	}
	<-stop
	wg.Wait()
	done <- int(n.Load())
}

// cacheEntry is what an L1 built on a general-purpose cache keeps per request: the decision and
// the Deps of the snapshot that read its facts.
type cacheEntry struct {
	dec  authz.Decision
	deps store.Deps
}

// trackedEntry records the Deps of the facts a project decision reads (SPEC §4).
func trackedEntry(b *testing.B, st *store.Store, r authz.Request, d authz.Decision) *cacheEntry {
	e := &cacheEntry{dec: d}
	project := r.Resource[len("org/"):]
	if err := st.View(func(rd store.Reader) error {
		rd = rd.Track(&e.deps)
		rd.Org("org")
		rd.Project("org", project)
		rd.OrgRole("org", r.Subject)
		rd.TeamRoles("org", r.Subject)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	return e
}

// lookupBatch is how many consecutive lookups timedOver times together. Reading the clock twice
// costs ~76 ns on the developer machine, as much as what is measured: timed one by one, a
// lookup's p50 would be a third clock. A batch also lets a lookup's memory accesses overlap the
// next one's, as they do in a server's loop. The percentiles are those of a batch's mean per
// lookup (a p99 of batch means is lower than a p99 of single lookups would be).
const lookupBatch = 16

// timedOver runs decide over reqs in order and reports p50/p99 from the timings of batches of
// lookupBatch consecutive calls, per call; ns/op is the whole run's mean, clock reads included.
func timedOver(b *testing.B, reqs []authz.Request, decide func(authz.Request) bool) {
	lat := make([]time.Duration, 0, 1<<14)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		n := min(lookupBatch, b.N-i)
		t0 := time.Now()
		for j := range n {
			decide(reqs[(i+j)%len(reqs)])
		}
		if elapsed := time.Since(t0); n == lookupBatch && len(lat) < cap(lat) {
			lat = append(lat, elapsed)
		}
		i += n
	}
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	perCall := func(q int) float64 { return float64(lat[len(lat)*q/100].Nanoseconds()) / lookupBatch }
	b.ReportMetric(perCall(50), "p50-ns")
	b.ReportMetric(perCall(99), "p99-ns")
}

func parallelOver(b *testing.B, reqs []authz.Request, decide func(authz.Request) bool) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(reqs))
		for pb.Next() {
			decide(reqs[i%len(reqs)])
			i++
		}
	})
}

// BenchmarkMemoryLatency is the floor under BenchmarkL1Distinct: ns/op is one load that depends
// on the previous one (a random cyclic walk over the lines of a working set of the size named),
// so each costs the latency of the level of the memory hierarchy that holds the set. A hit over
// 100k distinct keys reads lines of a set of tens of MB in random order.
func BenchmarkMemoryLatency(b *testing.B) {
	for _, mib := range []int{1, 4, 8, 16, 64} {
		b.Run(fmt.Sprintf("%dMiB", mib), func(b *testing.B) {
			const line = 8 // uint64s per 64-byte line
			n := mib << 20 / 64
			mem := make([]uint64, n*line)
			perm := rand.New(rand.NewPCG(1, 2)).Perm(n)
			for i, p := range perm {
				mem[p*line] = uint64(perm[(i+1)%n] * line)
			}
			p := uint64(perm[0] * line)
			for range n {
				p = mem[p]
			}
			b.ResetTimer()
			for range b.N {
				p = mem[p]
			}
			if p == 1 {
				b.Log(p) // keeps the walk
			}
		})
	}
}
