package rego

import (
	"context"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/compile"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/stretchr/testify/require"
)

// optimized returns what OPA's optimizer (`opa build -O=level`: partial evaluation of the
// entrypoint data.teamgate.authz.decision with input unknown and the policy's data known) makes
// of the modules New prepares for authors' modules (the default module folded as New folds it),
// together with those modules, and p with its query prepared on the optimizer's modules instead.
func optimized(t testing.TB, authors []Module, level int) (out, in []*ast.Module, p *Policy) {
	t.Helper()
	ctx := context.Background()
	p, err := New(ctx, authors)
	require.NoError(t, err)
	deciding, _, _, err := parse(authors)
	require.NoError(t, err)
	name := DefaultModules()[0].Name
	deciding[name] = foldData(deciding[name], p.data, !definesExt(deciding, p.data))
	b := &bundle.Bundle{Data: p.data}
	b.SetRegoVersion(ast.RegoV1)
	for _, name := range slices.Sorted(maps.Keys(deciding)) {
		in = append(in, deciding[name])
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: name, Path: name, Parsed: deciding[name], Raw: []byte(deciding[name].String())})
	}
	b.Manifest.Init()
	c := compile.New().WithRegoVersion(ast.RegoV1).WithBundle(b).
		WithEntrypoints("teamgate/authz/decision").WithOptimizationLevel(level)
	require.NoError(t, c.Build(ctx))
	store := inmem.NewFromObjectWithOpts(p.data, inmem.OptReturnASTValuesOnRead(true))
	opts := []func(*rego.Rego){rego.Query(Query), rego.Store(store), rego.StoreReadAST(true), rego.StrictBuiltinErrors(true)}
	for _, mf := range c.Bundle().Modules {
		out = append(out, mf.Parsed)
		opts = append(opts, rego.ParsedModule(mf.Parsed))
	}
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	require.NoError(t, err)
	txn, err := store.NewTransaction(ctx)
	require.NoError(t, err)
	q := *p
	q.prepared, q.txn = pq, rego.EvalTransaction(txn)
	return out, in, &q
}

// TestOptimizerKeepsTheDecision: OPA's optimizer returns the policy it is given, the default
// rules alone and with the example authors' modules (which read labels and the clock: full
// evaluation decides them). OPA does not partially evaluate a rule with `else` that depends on
// an unknown (topdown's evalVirtual: "Partial evaluation of ordered rules is not supported
// currently"; open-policy-agent/opa#9238), every rule on the decision's path is one, so the
// residual query is the decision itself, which the optimizer discards as a self-reference. Full
// evaluation therefore prepares the modules as written (bench/RESULTS.md, "Stop 20: full Rego").
// Should this fail, OPA has learned to: BenchmarkEvalOptimized then says whether it pays.
func TestOptimizerKeepsTheDecision(t *testing.T) {
	t.Parallel()
	example, _, err := LoadDir("../examples/customrule/policy")
	require.NoError(t, err)
	for _, authors := range [][]Module{nil, example} {
		for _, level := range []int{1, 2} {
			out, in, _ := optimized(t, authors, level)
			require.Equal(t, len(in), len(out), "-O=%d: modules", level)
			for _, m := range out {
				require.True(t, slices.ContainsFunc(in, m.Equal), "-O=%d changed %s:\n%s", level, m.Package, m)
			}
		}
	}
}

// BenchmarkEvalOptimized: full evaluation of the default policy as New prepares it and as
// prepared from OPA's optimizer at -O=1 and -O=2, on random requests of every kind.
func BenchmarkEvalOptimized(b *testing.B) {
	asWritten, err := New(b.Context(), nil)
	require.NoError(b, err)
	ins := randomInputs(b, asWritten, rand.New(rand.NewPCG(7, 9)), 256)
	_, _, o1 := optimized(b, nil, 1)
	_, _, o2 := optimized(b, nil, 2)
	for _, c := range []struct {
		name string
		p    *Policy
	}{{"as-written", asWritten}, {"O1", o1}, {"O2", o2}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := c.p.Eval(b.Context(), ins[i%len(ins)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
