package rego_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
)

// benchInputs are project requests shaped like bench's small tier: random org roles, three team
// memberships out of 200 teams, 40 % of projects restricted to one or two teams, a few grants.
func benchInputs(n int) []rego.Input {
	rng := rand.New(rand.NewPCG(1, 2))
	orgRoles := []string{"owner", "admin", "member", "member", "member", "viewer", "viewer", "billing", "outsider", "none"}
	teamRoles := []string{"viewer", "member", "contributor", "admin"}
	actions := []string{"runs.get", "runs.stop", "runs.approve", "runs.bookmark"}
	out := make([]rego.Input, n)
	for i := range out {
		roles := map[string]string{}
		for range 3 {
			roles[fmt.Sprintf("t%d", rng.IntN(20))] = teamRoles[rng.IntN(4)]
		}
		s := rego.Subject{ID: fmt.Sprintf("u%d", i), OrgRole: orgRoles[rng.IntN(len(orgRoles))], TeamRoles: roles}
		if s.OrgRole == "outsider" {
			s.Grant = "viewer"
		}
		r := rego.Resource{Kind: scope.KindProject, Org: "org", Project: fmt.Sprintf("p%d", i), Teams: []string{}, Exists: true}
		if rng.Float64() < 0.4 {
			r.Restricted = true
			r.Teams = []string{fmt.Sprintf("t%d", rng.IntN(20))}
			if rng.IntN(3) == 0 {
				r.Teams = append(r.Teams, fmt.Sprintf("t%d", 20+rng.IntN(20)))
			}
		}
		out[i] = rego.Input{Subject: s, Action: actions[rng.IntN(len(actions))], Resource: r}
	}
	return out
}

// BenchmarkEval: full evaluation of the default policy on project requests (the engine's
// uncached path without the store). Compare with OPA on the same facts in bench/.
func BenchmarkEval(b *testing.B) {
	p, err := rego.New(b.Context(), nil)
	if err != nil {
		b.Fatal(err)
	}
	ins := benchInputs(256)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := p.Eval(b.Context(), &ins[i%len(ins)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
