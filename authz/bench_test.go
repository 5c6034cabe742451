package authz_test

import (
	"testing"

	"github.com/teamgate/teamgate/authz"
)

// BenchmarkAuthorize measures one uncached decision (facts from the store's indexes + the
// prepared Rego query) on the conformance directory.
func BenchmarkAuthorize(b *testing.B) {
	eng, _ := newAcme(b)
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
