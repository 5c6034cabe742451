package authz_test

import (
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
