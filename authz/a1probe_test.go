package authz_test

import (
	"testing"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/rego"
)

func TestA1Probe(t *testing.T) {
	ctx := t.Context()
	for _, src := range []string{
		"deny if input.subject.id == \"bob\"",
		"deny := \"maintenance\" if input.subject.id == \"bob\"",
		"deny contains {\"x\": 1} if input.subject.id == \"bob\"",
		"deny[\"k\"] := \"v\" if input.subject.id == \"bob\"",
		"allow if input.subject.id == \"vera\"",
	} {
		eng, err := newAcmeErr(t, authz.WithModules(rego.Module{Name: "x.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\n" + src + "\n"}))
		if err != nil {
			t.Logf("%s: %v", src, err)
			continue
		}
		for _, s := range []string{"bob", "vera"} {
			d, err := eng.Authorize(ctx, authz.Request{Subject: s, Action: "runs.stop", Resource: "acme/vision"})
			t.Logf("%s | %s: %v %v %v", src, s, d.Allowed, d.Reasons, err)
		}
	}
}

func newAcmeErr(t *testing.T, opts ...authz.Option) (*authz.Engine, error) {
	_, st := newAcme(t)
	return authz.New(t.Context(), st, opts...)
}
