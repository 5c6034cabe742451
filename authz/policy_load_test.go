package authz_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/rego"
)

// TestNondeterministicBuiltinsAreNeverCached loads modules whose ext.deny message is a fresh
// UUID, reached in the ways `with` and functions allow: the same request asked twice is
// evaluated twice (no cache hit) and gets two different messages.
func TestNondeterministicBuiltinsAreNeverCached(t *testing.T) {
	t.Parallel()
	const head = "import rego.v1\n\n"
	cases := []struct {
		name    string
		modules []rego.Module
	}{
		{"with replaces a built-in by a random one", []rego.Module{{Name: "x.rego", Source: "package teamgate.ext\n\n" + head +
			`deny contains x if { x := upper("a") with upper as uuid.rfc4122 }` + "\n"}}},
		{"with inside a function of a subpackage", []rego.Module{
			{Name: "lib.rego", Source: "package teamgate.ext.lib\n\n" + head + `coin(s) := x if { x := upper(s) with upper as uuid.rfc4122 }` + "\n"},
			{Name: "x.rego", Source: "package teamgate.ext\n\n" + head + "import data.teamgate.ext.lib\n\n" + `deny contains lib.coin("a") if true` + "\n"},
		}},
		{"with value is a function calling the built-in", []rego.Module{{Name: "x.rego", Source: "package teamgate.ext\n\n" + head +
			"g(s) := uuid.rfc4122(s)\n\n" + `deny contains x if { x := upper("a") with upper as g }` + "\n"}}},
		{"in a comprehension", []rego.Module{{Name: "x.rego", Source: "package teamgate.ext\n\n" + head +
			`deny contains x if { some x in {u | u := uuid.rfc4122("k")} }` + "\n"}}},
	}
	req := authz.Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision"}
	ask := func(t *testing.T, eng *authz.Engine) string {
		d, err := eng.Authorize(t.Context(), req)
		require.NoError(t, err)
		require.False(t, d.Allowed)
		require.True(t, d.Has("extension_deny"), "%+v", d)
		return d.Reasons[0].Message
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			eng, _ := newAcme(t, authz.WithModules(c.modules...))
			require.False(t, eng.Policy().Deterministic())
			before := eng.Stats()
			first, second := ask(t, eng), ask(t, eng)
			after := eng.Stats()
			require.NotEqual(t, first, second, "a random decision was replayed")
			require.Equal(t, before.Evaluated+2, after.Evaluated, "both requests are evaluated")
			require.Equal(t, before.CacheHits, after.CacheHits)
		})
	}
	t.Run("swapped in with SetPolicy", func(t *testing.T) {
		t.Parallel()
		eng, _ := newAcme(t)
		for range 2 {
			d, err := eng.Authorize(t.Context(), req)
			require.NoError(t, err)
			require.True(t, d.Allowed)
		}
		require.Equal(t, uint64(1), eng.Stats().CacheHits, "the default policy is cached")
		require.NoError(t, eng.SetPolicy(t.Context(), cases[0].modules))
		before := eng.Stats()
		require.NotEqual(t, ask(t, eng), ask(t, eng))
		require.Equal(t, before.CacheHits, eng.Stats().CacheHits)
	})
}

// TestSetPolicyRefusesOtherPackages: an author's module outside teamgate.ext is an ErrInvalid
// naming the file and package, and the policy in force stays.
func TestSetPolicyRefusesOtherPackages(t *testing.T) {
	t.Parallel()
	eng, _ := newAcme(t)
	before := eng.Policy()
	err := eng.SetPolicy(t.Context(), []rego.Module{{Name: "mine.rego", Source: "package teamgate.authz\n\nimport rego.v1\n\nextra := 1\n"}})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	require.ErrorContains(t, err, "mine.rego:1: package teamgate.authz is not allowed")
	require.Same(t, before, eng.Policy())
	_, err = authz.New(t.Context(), eng.Directory(), authz.WithModules(rego.Module{Name: "x.rego", Source: "package helpers\n\nx := 1\n"}))
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	require.ErrorContains(t, err, "x.rego:1: package helpers is not allowed")
}

// TestSetPolicyRacingAuthorize swaps the policy back and forth while other goroutines decide
// and list (filling the cache with decisions of whichever policy they loaded): once SetPolicy
// returns, the next decision and listing are the new policy's, and so is every cached one.
func TestSetPolicyRacingAuthorize(t *testing.T) {
	t.Parallel()
	eng, _ := newAcme(t)
	ctx := t.Context()
	freeze := []rego.Module{{Name: "freeze.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"frozen\" if input.resource.project == \"vision\"\n"}}
	req := authz.Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision"}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = eng.Authorize(ctx, req)
				_, _ = eng.ListProjects(ctx, "bob", "acme", authz.Page{})
			}
		})
	}
	for i := range 30 {
		frozen := i%2 == 0
		var mods []rego.Module
		if frozen {
			mods = freeze
		}
		require.NoError(t, eng.SetPolicy(ctx, mods))
		for range 3 { // the second and third may come from the cache
			d, err := eng.Authorize(ctx, req)
			require.NoError(t, err)
			require.Equal(t, !frozen, d.Allowed, "swap %d: %+v", i, d)
		}
		page, err := eng.ListProjects(ctx, "bob", "acme", authz.Page{})
		require.NoError(t, err)
		require.Equal(t, !frozen, slices.Contains(page.Projects, "vision"), "swap %d: %v", i, page.Projects)
	}
	close(stop)
	wg.Wait()
}
