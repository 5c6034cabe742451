package bench

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
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

// roleOnlyPolicy is an author's policy whose module reads only role facts (org role, action):
// the policy suite that pins its compiled path (stop 19).
const roleOnlyPolicy = "../testdata/regression/policies/role-facts-only"

// BenchmarkAuthorizeRoleOnly: BenchmarkAuthorizeCompiled's requests with roleOnlyPolicy loaded,
// evaluated in full (rego: how every policy with an author's module was decided before stop 19)
// and answered from the decision table of the author's policy (compiled), no cache either way.
func BenchmarkAuthorizeRoleOnly(b *testing.B) {
	for _, c := range []struct {
		name string
		opts []authz.Option
	}{
		{"rego", []authz.Option{authz.WithDecisionCache(0), authz.WithCompiledPath(false)}},
		{"compiled", []authz.Option{authz.WithDecisionCache(0)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			_, eng := open(b, Small, append(c.opts, authz.WithPolicyDir(roleOnlyPolicy))...)
			if eng.Policy().Table() == nil {
				b.Fatalf("the role-only module keeps no table: %s", eng.Policy().NoTable())
			}
			timed(b, eng)
			if st := eng.Stats(); (c.name == "compiled") != (st.Compiled > 0 && st.Evaluated == 0) {
				b.Fatalf("%s: %d compiled, %d evaluated", c.name, st.Compiled, st.Evaluated)
			}
		})
	}
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

// BenchmarkCompiledWindows: BenchmarkAuthorizeCompiled's decisions on one engine, timed per call
// and cut into consecutive windows of 65,536 (the window BenchmarkAuthorizeCompiled's p50 is
// taken from), reporting the lowest and the highest window p50 and how many windows the run
// had: when p50 differs between runs, equal windows within a run would put it on the engine
// (its memory layout, made anew each run), unequal ones on the machine over time.
func BenchmarkCompiledWindows(b *testing.B) {
	_, eng := open(b, Small, authz.WithDecisionCache(0))
	reqs := requests(Small, 4096)
	ctx := b.Context()
	lat := make([]time.Duration, 1<<16)
	var p50s []time.Duration
	i := 0
	for b.Loop() {
		t0 := time.Now()
		if _, err := eng.Authorize(ctx, reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		lat[i%len(lat)] = time.Since(t0)
		i++
		if i%len(lat) == 0 {
			slices.Sort(lat)
			p50s = append(p50s, lat[len(lat)/2])
		}
	}
	if len(p50s) == 0 {
		return
	}
	b.ReportMetric(float64(slices.Min(p50s).Nanoseconds()), "min-window-p50-ns")
	b.ReportMetric(float64(slices.Max(p50s).Nanoseconds()), "max-window-p50-ns")
	b.ReportMetric(float64(len(p50s)), "windows")
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
func BenchmarkPeerOPAStore(b *testing.B) { benchPeer(b, opaStorePeer) }

// BenchmarkPeerCedar: cedar-go with the directory as entities, the same requests.
// TestPeerCedarAgrees checks it decides as teamgate does.
func BenchmarkPeerCedar(b *testing.B) { benchPeer(b, cedarPeer) }

// openDisk builds s in an on-disk store (loaded without fsync), then reopens it, written with or
// without fsync as noSync asks.
func openDisk(b *testing.B, s Scenario, noSync bool, opts ...authz.Option) (*store.Store, *authz.Engine) {
	b.Helper()
	ctx := b.Context()
	dir := b.TempDir()
	st, err := store.Open(ctx, store.Options{Dir: dir, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.Apply(ctx, s.Changes()...); err != nil {
		b.Fatal(err)
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	st, err = store.Open(ctx, store.Options{Dir: dir, NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	eng, err := authz.New(ctx, st, opts...)
	if err != nil {
		b.Fatal(err)
	}
	return st, eng
}

// writeLoop starts writers goroutines, each giving its own user (a member no request names) a
// new team role in a loop, one Apply per write. The returned stop ends them and returns how
// many writes were acknowledged.
func writeLoop(b *testing.B, st *store.Store, writers int) (stop func() int64) {
	ctx := b.Context()
	for w := range writers {
		if _, err := st.Apply(ctx, store.PutMember{Org: "org", User: fmt.Sprintf("writer%d", w), Role: "member"}); err != nil {
			b.Fatal(err)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var n atomic.Int64
	for w := range writers {
		wg.Go(func() {
			roles := []string{"viewer", "admin"}
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				if _, err := st.Apply(ctx, store.PutTeamMember{Org: "org", Team: "t0", User: fmt.Sprintf("writer%d", w), Role: roles[i%2]}); err != nil {
					b.Error(err)
					return
				}
				n.Add(1)
			}
		})
	}
	return func() int64 {
		close(done)
		wg.Wait()
		return n.Load()
	}
}

// BenchmarkAuthorizeUnderWrites: uncached Authorize (compiled path, no decision cache) on an
// on-disk store of the small tier while writers change unrelated memberships in a loop, each
// write fsynced or not (NoSync): readers never wait for a writer's fsync, so the fsync p50 and
// p99 stay within 2× of NoSync's (SPEC §9). "idle" is the same store without writes. Reports
// p50/p99 of the checks and the writes acknowledged per second.
func BenchmarkAuthorizeUnderWrites(b *testing.B) {
	for _, tc := range []struct {
		name    string
		noSync  bool
		writers int
	}{
		{"idle", false, 0},
		{"fsync/writers=1", false, 1},
		{"nosync/writers=1", true, 1},
		{"fsync/writers=4", false, 4},
		{"nosync/writers=4", true, 4},
	} {
		b.Run(tc.name, func(b *testing.B) {
			st, eng := openDisk(b, Small, tc.noSync, authz.WithDecisionCache(0))
			stop := writeLoop(b, st, tc.writers)
			t0 := time.Now()
			timed(b, eng)
			writes := stop()
			b.ReportMetric(float64(writes)/time.Since(t0).Seconds(), "writes/s")
		})
	}
}

// BenchmarkWriteVisible: on the small tier, a grant given or revoked and the next Authorize
// (through the decision cache), which must see it: p50/p99 of the write and the check together,
// and of the check alone ("check-"), on disk with and without fsync and in memory.
func BenchmarkWriteVisible(b *testing.B) {
	for _, tc := range []struct {
		name   string
		disk   bool
		noSync bool
	}{{"fsync", true, false}, {"nosync", true, true}, {"memory", false, false}} {
		b.Run(tc.name, func(b *testing.B) {
			var st *store.Store
			var eng *authz.Engine
			if tc.disk {
				st, eng = openDisk(b, Small, tc.noSync)
			} else {
				st, eng = open(b, Small)
			}
			ctx := b.Context()
			req := authz.Request{Subject: "o0", Action: "runs.get", Resource: "org/p1"}
			grant, revoke := store.PutGrant{Org: "org", Project: "p1", User: "o0", Grant: store.Grant{Role: "viewer"}}, store.DeleteGrant{Org: "org", Project: "p1", User: "o0"}
			both := make([]time.Duration, 0, 1<<14)
			check := make([]time.Duration, 0, 1<<14)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				var c store.Change = grant
				if i%2 == 1 {
					c = revoke
				}
				t0 := time.Now()
				if _, err := st.Apply(ctx, c); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				d, err := eng.Authorize(ctx, req)
				if err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				if d.Allowed != (i%2 == 0) {
					b.Fatalf("write %d not visible to the next check: allowed=%v", i, d.Allowed)
				}
				if len(both) < cap(both) {
					both = append(both, t2.Sub(t0))
					check = append(check, t2.Sub(t1))
				}
				i++
			}
			reportPercentiles(b, both)
			sort.Slice(check, func(i, j int) bool { return check[i] < check[j] })
			b.ReportMetric(float64(check[len(check)/2].Nanoseconds()), "check-p50-ns")
			b.ReportMetric(float64(check[len(check)*99/100].Nanoseconds()), "check-p99-ns")
		})
	}
}
