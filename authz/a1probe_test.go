package authz_test

import (
	"encoding/json"
	"testing"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/rego"
)

func TestA1Probe(t *testing.T) {
	ctx := t.Context()
	eng, _ := newAcme(t, authz.WithModules(rego.Module{Name: "x.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"big\" if input.attributes.n > 5\n\ndeny contains sprintf(\"%v\", [input.attributes.n + 1]) if true\n"}))
	for _, n := range []string{"NaN", "Inf", "-Inf", "infinity", "0x10", "0x1p-2", "1e999999", "1e308", "-0", "1E5", "00012", ".5", "5.", "+3"} {
		d, err := eng.Authorize(ctx, authz.Request{Subject: "bob", Action: "runs.delete", Resource: "acme/vision", Attributes: map[string]any{"n": json.Number(n), "run": map[string]any{"created_by": "bob"}}})
		t.Logf("%s: %v %v %v", n, d.Allowed, d.Reasons, err)
	}
}
