package bench

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/store"
)

func open(b *testing.B, s Scenario, opts ...authz.Option) (*store.Store, *authz.Engine) {
	b.Helper()
	st, err := store.Open(b.Context(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	if _, err := st.Apply(b.Context(), s.Changes()...); err != nil {
		b.Fatal(err)
	}
	eng, err := authz.New(b.Context(), st, opts...)
	if err != nil {
		b.Fatal(err)
	}
	return st, eng
}

func requests(s Scenario, n int) []authz.Request { return requestsFrom(s, n, 7) }

// requestsFrom draws n random requests from s's users and projects, seeded.
func requestsFrom(s Scenario, n int, seed uint64) []authz.Request {
	rng := rand.New(rand.NewPCG(seed, 7))
	actions := []string{"runs.get", "runs.stop", "runs.approve", "runs.bookmark"}
	out := make([]authz.Request, n)
	for i := range out {
		user := fmt.Sprintf("u%d", rng.IntN(s.Users))
		if rng.IntN(20) == 0 {
			user = fmt.Sprintf("o%d", rng.IntN(s.Outsiders))
		}
		out[i] = authz.Request{Subject: user, Action: actions[rng.IntN(len(actions))], Resource: fmt.Sprintf("org/p%d", rng.IntN(s.Projects))}
	}
	return out
}

// BenchmarkAuthorizeRego: facts from the store's indexes + full evaluation of the prepared Rego
// query (no cache, no compiled path), on the small tier, random requests. Reports p50/p99 from
// per-call timings.
func BenchmarkAuthorizeRego(b *testing.B) {
	_, eng := open(b, Small, authz.WithDecisionCache(0), authz.WithCompiledPath(false))
	timed(b, eng)
}

// BenchmarkAuthorizeCompiled: the same requests on the compiled path (no cache).
func BenchmarkAuthorizeCompiled(b *testing.B) {
	_, eng := open(b, Small, authz.WithDecisionCache(0))
	timed(b, eng)
}

func timed(b *testing.B, eng *authz.Engine) {
	ctx := b.Context()
	timedFunc(b, func(r authz.Request) error {
		_, err := eng.Authorize(ctx, r)
		return err
	})
}

// timedFunc runs decide over the small tier's random requests and reports p50/p99.
func timedFunc(b *testing.B, decide func(authz.Request) error) {
	reqs := requests(Small, 4096)
	lat := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		t0 := time.Now()
		if err := decide(reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t0))
		}
		i++
	}
	reportPercentiles(b, lat)
}

// BenchmarkAuthorizeParallel: full evaluation from every core.
func BenchmarkAuthorizeParallel(b *testing.B) {
	_, eng := open(b, Small, authz.WithDecisionCache(0), authz.WithCompiledPath(false))
	reqs := requests(Small, 4096)
	ctx := b.Context()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(reqs))
		for pb.Next() {
			if _, err := eng.Authorize(ctx, reqs[i%len(reqs)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkAuthorizeCachedMix: the same random requests through the decision cache (4096
// distinct requests: after the first round every one is an L1 hit).
func BenchmarkAuthorizeCachedMix(b *testing.B) {
	_, eng := open(b, Small)
	reqs := requests(Small, 4096)
	ctx := b.Context()
	for _, r := range reqs {
		if _, err := eng.Authorize(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := eng.Authorize(ctx, reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkListProjects lists a member's projects in the whole org and in one team space.
func BenchmarkListProjects(b *testing.B) {
	_, eng := open(b, Small)
	ctx := b.Context()
	for _, owner := range []string{"org", "org/t7"} {
		b.Run(owner, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := eng.ListProjects(ctx, "u10", owner, authz.Page{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkListProjectsWide lists over 100k projects: a member's whole org (≈60k open projects
// plus their teams') and a team space, with p99 from per-call timings.
func BenchmarkListProjectsWide(b *testing.B) {
	_, eng := open(b, Wide)
	ctx := b.Context()
	for _, tc := range []struct {
		name  string
		owner string
		page  authz.Page
	}{{"org", "org", authz.Page{}}, {"org/t7", "org/t7", authz.Page{}}, {"org-page50", "org", authz.Page{After: "p5", Limit: 50}}} {
		b.Run(tc.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, 1<<14)
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				if _, err := eng.ListProjects(ctx, "u10", tc.owner, tc.page); err != nil {
					b.Fatal(err)
				}
				if len(lat) < cap(lat) {
					lat = append(lat, time.Since(t0))
				}
			}
			reportPercentiles(b, lat)
		})
	}
}

// BenchmarkWriteThenAuthorize: a membership change and the next decision that must see it
// (through the decision cache: the write invalidates exactly that decision).
func BenchmarkWriteThenAuthorize(b *testing.B) {
	st, eng := open(b, Small)
	ctx := b.Context()
	roles := []string{"viewer", "admin"}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.Apply(ctx, store.PutTeamMember{Org: "org", Team: "t1", User: "u11", Role: roles[i%2]}); err != nil {
			b.Fatal(err)
		}
		if _, err := eng.Authorize(ctx, authz.Request{Subject: "u11", Action: "runs.get", Resource: "org/p1"}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkPeerOPAStore: OPA with the directory in its own store (SPEC §9's "opa (data in its
// store)"), the same requests. TestPeerOPAAgrees checks it decides as teamgate does.
func BenchmarkPeerOPAStore(b *testing.B) {
	st, _ := open(b, Small)
	peer, err := newPeerOPA(b.Context(), st)
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	timedFunc(b, func(r authz.Request) error {
		_, err := peer.allow(ctx, r.Subject, r.Action, r.Resource[len("org/"):])
		return err
	})
}

// BenchmarkPeerCedar: cedar-go with the directory as entities, the same requests.
// TestPeerCedarAgrees checks it decides as teamgate does.
func BenchmarkPeerCedar(b *testing.B) {
	st, _ := open(b, Small)
	peer, err := newPeerCedar(st)
	if err != nil {
		b.Fatal(err)
	}
	timedFunc(b, func(r authz.Request) error {
		peer.allow(r.Subject, r.Action, r.Resource[len("org/"):])
		return nil
	})
}
