package authz_test

import (
	"context"
	"os"
	"strings"
	"testing"

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

// BenchmarkDecisionLogCost measures what the decision log costs the decision path: a cache hit
// and the compiled path, without a log, or with one (records to a sink that discards them) when
// TEAMGATE_DECISION_LOG=1. Run it both ways into two files and compare them with benchstat
// (bench/RESULTS.md has the command).
func BenchmarkDecisionLogCost(b *testing.B) {
	logged := os.Getenv("TEAMGATE_DECISION_LOG") == "1"
	req := authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	for _, path := range []struct {
		name string
		opts []authz.Option
	}{{"cache", nil}, {"compiled", []authz.Option{authz.WithDecisionCache(0)}}} {
		b.Run("path="+path.name, func(b *testing.B) {
			opts := path.opts
			if logged {
				opts = append(opts[:len(opts):len(opts)], authz.WithDecisionLog(discardSink{}), authz.WithDecisionLogQueue(1<<16))
			}
			eng, _ := newAcme(b, opts...)
			ctx := b.Context()
			if _, err := eng.Authorize(ctx, req); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := eng.Authorize(ctx, req); err != nil {
					b.Fatal(err)
				}
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
