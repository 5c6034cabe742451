package bench

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/teamgate/teamgate/authz"
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
// (all cached: the cache keeps 100k), in random order, one core (with p50/p99) and every core;
// "map" is the reference: the same decisions looked up in a plain Go map, no locking and no
// dependency check.
func BenchmarkL1Distinct(b *testing.B) {
	_, eng := open(b, Small, authz.WithDecisionCache(distinctKeys))
	ctx := b.Context()
	reqs := distinctRequests(Small, distinctKeys)
	ref := make(map[reqKey]authz.Decision, len(reqs))
	for _, r := range reqs {
		d, err := eng.Authorize(ctx, r)
		if err != nil {
			b.Fatal(err)
		}
		ref[keyOf(r)] = d
	}
	before := eng.Stats()
	b.Run("teamgate", func(b *testing.B) {
		timedOver(b, reqs, func(r authz.Request) bool {
			d, err := eng.Authorize(ctx, r)
			return err == nil && d.Allowed
		})
		if s := eng.Stats(); s.CacheMisses != before.CacheMisses {
			b.Fatalf("%d misses: not every request was a hit", s.CacheMisses-before.CacheMisses)
		}
	})
	b.Run("map", func(b *testing.B) {
		timedOver(b, reqs, func(r authz.Request) bool { return ref[keyOf(r)].Allowed })
	})
	b.Run("teamgate-parallel", func(b *testing.B) {
		parallelOver(b, reqs, func(r authz.Request) bool {
			d, err := eng.Authorize(ctx, r)
			return err == nil && d.Allowed
		})
	})
	b.Run("map-parallel", func(b *testing.B) {
		parallelOver(b, reqs, func(r authz.Request) bool { return ref[keyOf(r)].Allowed })
	})
}

// timedOver runs decide over reqs in order and reports p50/p99 from per-call timings.
func timedOver(b *testing.B, reqs []authz.Request, decide func(authz.Request) bool) {
	lat := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		t0 := time.Now()
		decide(reqs[i%len(reqs)])
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t0))
		}
		i++
	}
	reportPercentiles(b, lat)
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
