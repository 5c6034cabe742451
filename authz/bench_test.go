package authz_test

import (
	"context"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/policy"
)

// BenchmarkAuthorize measures one uncached decision by full Rego evaluation (facts from the
// store's indexes + the prepared query) on the conformance directory.
func BenchmarkAuthorize(b *testing.B) {
	eng, _ := newAcme(b, authz.WithDecisionCache(0), authz.WithCompiledPath(false))
	benchRequests(b, eng)
}

// BenchmarkAuthorizeCompiled measures one uncached decision on the compiled path (facts from
// the store's indexes + the decision table computed from the Rego policy).
func BenchmarkAuthorizeCompiled(b *testing.B) {
	eng, _ := newAcme(b, authz.WithDecisionCache(0))
	benchRequests(b, eng)
}

func benchRequests(b *testing.B, eng *authz.Engine) {
	reqs := []authz.Request{
		{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"},
		{Subject: "vera", Action: "runs.get", Resource: "acme/labs"},
		{Subject: "olga", Action: "runs.approve", Resource: "acme/nlp"},
		{Subject: "alice", Action: "org.update", Resource: "acme"},
		{Subject: "bill", Action: "team.update", Resource: "acme/platform"},
	}
	for _, r := range reqs {
		b.Run(r.Subject+"_"+r.Action, func(b *testing.B) {
			ctx := b.Context()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := eng.Authorize(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEffectiveSettings(b *testing.B) {
	eng, _ := newAcme(b)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := eng.EffectiveSettings(ctx, "acme/vision", "beth"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAdmit(b *testing.B) {
	eng, _ := newAcme(b)
	ctx := b.Context()
	run := policy.Run{Kind: "job", Resources: map[string]float64{"gpu": 4}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := eng.Admit(ctx, "bob", "acme/vision", run); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkListProjects(b *testing.B) {
	eng, _ := newAcme(b)
	ctx := b.Context()
	for _, owner := range []string{"acme", "acme/engineering"} {
		b.Run(strings.ReplaceAll(owner, "/", "_"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := eng.ListProjects(ctx, "vera", owner, authz.Page{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// discardSink takes the decision log's records and keeps none.
type discardSink struct{}

func (discardSink) Write(context.Context, []authz.DecisionRecord) error { return nil }

// BenchmarkDecisionLogCost measures what the decision log costs the decision path: one request
// decided on each path (an in-memory cache hit, the compiled path, full Rego evaluation) without
// a log and with one (records to a sink that discards them): log=on has a queue of 65,536 slots,
// log=queue4096 one of 4,096, the default before stop 24 (its dropped/op says whether the drainer
// keeps up). Compare log=off with log=on by
// benchstat's -col /log (bench/RESULTS.md has the commands, and the callgrind ones: the loop is
// decideLoop, for --toggle-collect).
func BenchmarkDecisionLogCost(b *testing.B) {
	benchDecisionLog(b, false)
}

// BenchmarkDecisionLogCostParallel is BenchmarkDecisionLogCost with every core deciding (run
// it with -cpu 1,2): the log must not make cores contend where the path itself does not.
func BenchmarkDecisionLogCostParallel(b *testing.B) {
	benchDecisionLog(b, true)
}

// decisionLogPaths are the engines BenchmarkDecisionLogCost compares: one per decision path.
var decisionLogPaths = []struct {
	name string
	opts []authz.Option
}{
	{"cache", nil},
	{"compiled", []authz.Option{authz.WithDecisionCache(0)}},
	{"rego", []authz.Option{authz.WithDecisionCache(0), authz.WithCompiledPath(false)}},
}

func benchDecisionLog(b *testing.B, parallel bool) {
	req := authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	for _, path := range decisionLogPaths {
		for _, log := range []string{"off", "on", "queue4096"} {
			name := "path=" + path.name + "/log=" + log
			opts, logged := path.opts, log != "off"
			switch log {
			case "on":
				opts = append(opts[:len(opts):len(opts)], authz.WithDecisionLog(discardSink{}), authz.WithDecisionLogQueue(1<<16))
			case "queue4096":
				opts = append(opts[:len(opts):len(opts)], authz.WithDecisionLog(discardSink{}), authz.WithDecisionLogQueue(4096))
			}
			b.Run(name, func(b *testing.B) {
				eng, _ := newAcme(b, opts...)
				ctx := b.Context()
				if _, err := eng.Authorize(ctx, req); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				if parallel {
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if _, err := eng.Authorize(ctx, req); err != nil {
								b.Error(err)
								return
							}
						}
					})
				} else {
					decideLoop(b, eng, &req)
				}
				b.StopTimer()
				if err := eng.Close(ctx); err != nil {
					b.Fatal(err)
				}
				if s := eng.Stats(); logged {
					if s.DecisionLogWritten == 0 {
						b.Fatal("nothing logged")
					}
					// A dropped record costs less than a queued one: say how many were.
					b.ReportMetric(float64(s.DecisionLogDropped)/float64(s.DecisionLogWritten+s.DecisionLogDropped), "dropped/op")
				}
			})
		}
	}
}

// BenchmarkDecisionLogPaired decides BenchmarkDecisionLogCost's request (path: see below) on two
// engines in alternating blocks of 256 decisions, one engine without a log and one with (a queue
// of queue slots), and reports the medians of the blocks' ns per decision (off-ns, on-ns) and of
// the ratios of adjacent blocks (on/off); an op is one decision on each engine. On a shared
// machine the load moves both blocks of a pair alike, so the ratio is steadier than two
// benchmarks run one after the other. What it cannot show is a cost the log puts on the whole
// process, such as garbage collection scanning its ring: both engines pay that alike here.
//
// path=compiled decides uncached (WithDecisionCache(0)), path=cache is a hot hit of the in-memory
// cache (the same request every time: the log's cheapest case per record, and its dearest
// relative to the decision).
func BenchmarkDecisionLogPaired(b *testing.B) {
	req := authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	for _, path := range decisionLogPaths[:2] {
		for _, queue := range []int{1 << 16, authz.DefaultDecisionLogQueue, 4096} {
			b.Run("path="+path.name+"/queue="+strconv.Itoa(queue), func(b *testing.B) {
				benchDecisionLogPaired(b, req, path.opts, queue)
			})
		}
	}
}

func benchDecisionLogPaired(b *testing.B, req authz.Request, opts []authz.Option, queue int) {
	off, _ := newAcme(b, opts...)
	on, _ := newAcme(b, append(opts[:len(opts):len(opts)], authz.WithDecisionLog(discardSink{}), authz.WithDecisionLogQueue(queue))...)
	ctx := b.Context()
	decide := func(eng *authz.Engine, n int) time.Duration {
		start := time.Now()
		for range n {
			if _, err := eng.Authorize(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	const block = 256
	var offNS, onNS, ratios []float64
	b.ResetTimer()
	for i := 0; i < b.N; i += block {
		n := min(block, b.N-i)
		var a, c time.Duration
		if i/block%2 == 0 { // each engine goes first in every other pair
			a, c = decide(off, n), decide(on, n)
		} else {
			c, a = decide(on, n), decide(off, n)
		}
		offNS, onNS = append(offNS, float64(a)/float64(n)), append(onNS, float64(c)/float64(n))
		ratios = append(ratios, float64(c)/float64(a))
	}
	b.StopTimer()
	if err := on.Close(ctx); err != nil {
		b.Fatal(err)
	}
	median := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	b.ReportMetric(median(offNS), "off-ns")
	b.ReportMetric(median(onNS), "on-ns")
	b.ReportMetric(median(ratios), "on/off")
	s := on.Stats()
	b.ReportMetric(float64(s.DecisionLogDropped)/float64(s.DecisionLogWritten+s.DecisionLogDropped), "dropped/op")
}

// decideLoop is the benchmark's loop, a function of its own so that callgrind can count the
// instructions spent in it (--toggle-collect='*authz_test.decideLoop'). It keeps its goroutine
// on one thread, which runs nothing else meanwhile: with --separate-threads=yes that thread's
// count is the decision path's alone, the decision log's goroutine counted on other threads.
//
//go:noinline
func decideLoop(b *testing.B, eng *authz.Engine, req *authz.Request) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ctx := b.Context()
	for b.Loop() {
		if _, err := eng.Authorize(ctx, *req); err != nil {
			b.Fatal(err)
		}
	}
}
