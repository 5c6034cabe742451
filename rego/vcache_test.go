package rego

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// TestVCacheMatchesOPA runs the same random Push, Pop, Put, Get and Keys calls on the pooled
// virtual cache and on OPA's own, and wants the same answers: references that share prefixes,
// differ in length, repeat, are put undefined and then defined, in nested frames; the scratch
// reference OPA passes is overwritten after each call, as OPA does.
func TestVCacheMatchesOPA(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	words := []*ast.Term{ast.StringTerm("a"), ast.StringTerm("b"), ast.IntNumberTerm(1), ast.StringTerm("decision"),
		ast.ObjectTerm(ast.Item(ast.StringTerm("k"), ast.StringTerm("v"))), ast.ArrayTerm(ast.StringTerm("a"))}
	scratch := make(ast.Ref, 0, 8)
	randRef := func() ast.Ref {
		scratch = append(scratch[:0], ast.DefaultRootDocument)
		for range 1 + rng.IntN(3) {
			scratch = append(scratch, words[rng.IntN(len(words))])
		}
		return scratch
	}
	for round := range 200 {
		ours := getEvalState()
		theirs := topdown.NewVirtualCache()
		depth := 0
		for step := range 300 {
			where := fmt.Sprintf("round %d step %d", round, step)
			switch op := rng.IntN(20); {
			case op == 0:
				ours.cache.Push()
				theirs.Push()
				depth++
			case op == 1 && depth > 0:
				ours.cache.Pop()
				theirs.Pop()
				depth--
			case op < 8:
				ref := randRef()
				var v *ast.Term
				if rng.IntN(4) > 0 {
					v = ast.IntNumberTerm(step)
				}
				ours.cache.Put(ref, v)
				theirs.Put(ref, v)
				scratch[len(scratch)-1] = ast.StringTerm("overwritten") // OPA reuses its slice
			case op == 8:
				a, b := ours.cache.Keys(), theirs.Keys()
				key := func(x, y ast.Ref) int { return x.Compare(y) }
				slices.SortFunc(a, key)
				slices.SortFunc(b, key)
				if !slices.EqualFunc(a, b, func(x, y ast.Ref) bool { return x.Equal(y) }) {
					t.Fatalf("%s: Keys = %v, OPA's %v", where, a, b)
				}
			default:
				ref := randRef()
				v1, u1 := ours.cache.Get(ref)
				v2, u2 := theirs.Get(ref)
				if v1 != v2 || u1 != u2 {
					t.Fatalf("%s: Get(%v) = %v, %v; OPA's %v, %v", where, ref, v1, u1, v2, u2)
				}
			}
		}
		putEvalState(ours)
	}
}

// TestEvalStatePooledClean: a state going back to the pool holds no evaluation's terms, stopper or
// input, and one that cached more than maxPooledEntries is not kept.
func TestEvalStatePooledClean(t *testing.T) {
	s := getEvalState()
	s.stop.budget, s.stop.asked = 5, 7
	s.stop.cancelled.Store(true)
	s.cache.Push()
	s.cache.Put(ast.MustParseRef("data.x.y"), ast.StringTerm("kept?"))
	s.opts[4], s.opts[5] = evalKeepAST, evalKeepAST
	if !s.reset() {
		t.Fatal("a small state is not kept")
	}
	if s.stop.budget != 0 || s.stop.asked != 0 || s.stop.cancelled.Load() || s.stop.ctx != nil {
		t.Errorf("stopper not reset: %+v", &s.stop)
	}
	if len(s.cache.entries) != 0 || len(s.cache.terms) != 0 || len(s.cache.index) != 0 || len(s.cache.frames) != 1 {
		t.Errorf("cache not reset: %d entries, %d terms, %d index keys, %d frames", len(s.cache.entries), len(s.cache.terms), len(s.cache.index), len(s.cache.frames))
	}
	if s.opts[4] != nil || s.opts[5] != nil {
		t.Error("the policy's transaction or the input option is kept")
	}
	for _, e := range s.cache.entries[:cap(s.cache.entries)] {
		if e.value != nil {
			t.Fatal("a cached value is kept alive by the pooled state")
		}
	}

	big := getEvalState()
	for i := range maxPooledEntries + 1 {
		big.cache.Put(ast.Ref{ast.DefaultRootDocument, ast.IntNumberTerm(i)}, ast.BooleanTerm(true))
	}
	if got := len(big.cache.entries); got != maxPooledEntries+1 {
		t.Fatalf("%d entries, want %d", got, maxPooledEntries+1)
	}
	if big.reset() {
		t.Error("a state over maxPooledEntries is kept")
	}
}
