package rego

import (
	"fmt"
	"github.com/teamgate/teamgate/scope"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
)

func BenchmarkScratch(b *testing.B) {
	src, err := os.ReadFile(os.Getenv("SCRATCH"))
	if err != nil {
		b.Fatal(err)
	}
	p, _ := New(b.Context(), nil)
	mod := ast.MustParseModuleWithOpts(string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
	if in := os.Getenv("INLINE"); in != "" {
		inlineData(mod, p.data, strings.Split(in, ","))
	}
	pq, err := rego.New(rego.Query(os.Getenv("QUERY")), rego.ParsedModule(mod),
		rego.Store(inmem.NewFromObjectWithOpts(p.data, inmem.OptReturnASTValuesOnRead(true))),
		rego.StoreReadAST(true)).PrepareForEval(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	ins := scratchInputs(256)
	vals := make([]ast.Value, len(ins))
	for i := range ins {
		vals[i] = p.scratchValue(&ins[i])
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		scratchEval(b, pq, vals[i%len(vals)])
		i++
	}
}

//go:noinline
func scratchEval(b *testing.B, pq rego.PreparedEvalQuery, v ast.Value) {
	cancel := topdown.NewCancel()
	rs, err := pq.Eval(b.Context(), rego.EvalParsedInput(v), rego.EvalExternalCancel(cancel), rego.EvalGenerateJSON(keepAST))
	if err != nil || len(rs) != 1 {
		b.Fatal(err, rs)
	}
}
func scratchInputs(n int) []Input {
	rng := rand.New(rand.NewPCG(1, 2))
	orgRoles := []string{"owner", "admin", "member", "member", "member", "viewer", "viewer", "billing", "outsider", "none"}
	teamRoles := []string{"viewer", "member", "contributor", "admin"}
	actions := []string{"runs.get", "runs.stop", "runs.approve", "runs.bookmark"}
	out := make([]Input, n)
	for i := range out {
		roles := map[string]string{}
		for range 3 {
			roles[fmt.Sprintf("t%d", rng.IntN(20))] = teamRoles[rng.IntN(4)]
		}
		s := Subject{ID: fmt.Sprintf("u%d", i), OrgRole: orgRoles[rng.IntN(len(orgRoles))], TeamRoles: roles}
		if s.OrgRole == "outsider" {
			s.Grant = "viewer"
		}
		r := Resource{Kind: scope.KindProject, Org: "org", Project: fmt.Sprintf("p%d", i), Teams: []string{}, Exists: true}
		if rng.Float64() < 0.4 {
			r.Restricted = true
			r.Teams = []string{fmt.Sprintf("t%d", rng.IntN(20))}
			if rng.IntN(3) == 0 {
				r.Teams = append(r.Teams, fmt.Sprintf("t%d", 20+rng.IntN(20)))
			}
		}
		out[i] = Input{Subject: s, Action: actions[rng.IntN(len(actions))], Resource: r}
	}
	return out
}

func (p *Policy) scratchValue(in *Input) ast.Value { return in.value(p) }

func inlineData(mod *ast.Module, data map[string]any, paths []string) {
	lits := map[string]*ast.Term{}
	tg := data["teamgate"].(map[string]any)
	for _, p := range paths {
		v, err := ast.InterfaceToValue(tg[p])
		if err != nil {
			panic(err)
		}
		lits[p] = ast.NewTerm(v)
	}
	_, err := ast.TransformRefs(mod, func(r ast.Ref) (ast.Value, error) {
		if len(r) < 3 || !r[0].Equal(ast.DefaultRootDocument) || !r[1].Equal(ast.StringTerm("teamgate")) {
			return r, nil
		}
		s, ok := r[2].Value.(ast.String)
		if !ok {
			return r, nil
		}
		lit, ok := lits[string(s)]
		if !ok {
			return r, nil
		}
		if len(r) == 3 {
			return lit.Value, nil
		}
		return append(ast.Ref{lit}, r[3:]...), nil
	})
	if err != nil {
		panic(err)
	}
}
