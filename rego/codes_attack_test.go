package rego_test

import (
	"context"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/rego"
)

// allCodes is every Codes of the store's vocabulary, the missing resource's included.
func allCodes() []rego.Codes {
	out := []rego.Codes{{}}
	for o := range uint8(8) {
		for g := range uint8(5) {
			for set := range uint8(16) {
				for _, restricted := range []bool{false, true} {
					for _, bg := range []bool{false, true} {
						out = append(out, rego.Codes{Exists: true, OrgRole: o, Grant: g, TeamRoles: set, Restricted: restricted, BreakGlass: bg})
					}
				}
			}
		}
	}
	return out
}

// TestCodesConcurrentFirstUse: goroutines that ask VerdictOfCodes for the same cells of a fresh
// table at once, in different orders (the cells computed while others read them), all get the
// verdict a table filled one cell at a time gives; a first use under a cancelled context is an
// error and stores nothing, so the cell is then computed right. Run it with -race.
func TestCodesConcurrentFirstUse(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for _, data := range []map[string]any{nil, reRanked()} {
		var ds []map[string]any
		if data != nil {
			ds = append(ds, data)
		}
		ref, err := rego.New(ctx, nil, ds...)
		require.NoError(t, err)
		p, err := rego.New(ctx, nil, ds...)
		require.NoError(t, err)
		codes := allCodes()
		for _, action := range []string{"runs.stop", "team.update", "org.get"} {
			refSpec, _ := ref.Spec(action)
			spec, _ := p.Spec(action)
			want := make([]cellOf, len(codes))
			for i := range codes {
				v, err := ref.Table().VerdictOfCodes(ctx, refSpec, &codes[i], 0)
				require.NoError(t, err)
				want[i] = contents(v)
			}
			// A first use under a cancelled context fails and stores nothing.
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			c := codes[len(codes)/2]
			_, err := p.Table().VerdictOfCodes(cancelled, spec, &c, 0)
			require.Error(t, err, action)
			var wg sync.WaitGroup
			got := make([][]cellOf, 6)
			for w := range got {
				got[w] = make([]cellOf, len(codes))
				wg.Go(func() {
					order := rand.New(rand.NewPCG(uint64(w), 1)).Perm(len(codes))
					for _, i := range order {
						c := codes[i]
						v, err := p.Table().VerdictOfCodes(ctx, spec, &c, 0)
						if err != nil {
							t.Error(action, c, err)
							return
						}
						got[w][i] = contents(v)
					}
				})
			}
			wg.Wait()
			for w := range got {
				require.Equal(t, want, got[w], "%s, goroutine %d", action, w)
			}
		}
	}
}

// TestVerdictOfCodesIsReadOnly: the table has one way in, VerdictOfCodes, and it hands out the
// table's shared cell, so what it returns has no field a caller could write (a *Verdict did:
// setting Allow on it allowed every later decision of the cell) and every accessor that returns
// a slice returns a copy: changing what any of them returned changes nothing a later caller reads.
func TestVerdictOfCodesIsReadOnly(t *testing.T) {
	ctx := context.Background()
	tab := reflect.TypeFor[*rego.Table]()
	var methods []string
	for i := range tab.NumMethod() {
		methods = append(methods, tab.Method(i).Name)
	}
	require.Equal(t, []string{"VerdictOfCodes"}, methods, "the table's one entry")
	m, _ := tab.MethodByName("VerdictOfCodes")
	view := m.Type.Out(0)
	require.Equal(t, reflect.TypeFor[rego.VerdictView](), view)
	for i := range view.NumField() {
		require.False(t, view.Field(i).IsExported(), "VerdictView.%s", view.Field(i).Name)
	}

	p, err := rego.New(ctx, nil, map[string]any{"teamgate": map[string]any{"ranks": map[string]any{"maintainer": 5}}})
	require.NoError(t, err)
	spec, ok := p.Spec("runs.delete")
	require.True(t, ok)
	c := rego.Codes{Exists: true, OrgRole: 4} // a member without grant or team: denied, with a reason
	v, err := p.Table().VerdictOfCodes(ctx, spec, &c, 0)
	require.NoError(t, err)
	before := contents(v)
	require.False(t, before.Allow)
	require.NotEmpty(t, before.Codes)
	slices := 0
	for i := range view.NumMethod() {
		meth := view.Method(i)
		if meth.Type.NumIn() != 1 || meth.Type.NumOut() != 1 {
			continue
		}
		out := meth.Type.Out(0)
		require.NotContains(t, []reflect.Kind{reflect.Pointer, reflect.Map, reflect.Chan, reflect.Func, reflect.UnsafePointer}, out.Kind(),
			"VerdictView.%s hands out a reference", meth.Name)
		if out.Kind() != reflect.Slice {
			continue
		}
		slices++
		got := reflect.ValueOf(v).Method(i).Call(nil)[0]
		for j := range got.Len() { // every element changed: a code no rule gives, a limit no rule names
			switch e := got.Index(j); e.Kind() {
			case reflect.String:
				e.SetString("mutated")
			case reflect.Struct:
				e.Field(0).SetString("mutated")
			default:
				t.Fatalf("VerdictView.%s: elements of kind %s", meth.Name, e.Kind())
			}
		}
		again, err := p.Table().VerdictOfCodes(ctx, spec, &c, 0)
		require.NoError(t, err)
		require.Equal(t, before, contents(again), "after changing what VerdictView.%s returned", meth.Name)
		require.Equal(t, before.Codes[0], again.Code(0))
	}
	require.Equal(t, 2, slices, "Codes and Limits")
}
