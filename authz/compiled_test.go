package authz_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// badInputs are requests the compiled path's first step (names split, checked only when the
// store does not find them) must refuse or decide exactly as full evaluation does: empty, NUL,
// huge and non-slug names in every part, shapes a split could misread, unknown actions, names
// the store does not hold, and two faults at once (the first one prepare checks is the error).
func badInputs() []authz.Request {
	huge := strings.Repeat("a", 10_000)
	long := strings.Repeat("b", 129) // one byte over scope.MaxSlugLen
	max := strings.Repeat("c", 128)
	var reqs []authz.Request
	subjects := []string{"bob", "nobody", "", "bo b", "bob\x00", "\x00", "b--b", "-", huge, long, max, "BOB", "bob/acme", "bøb"}
	resources := []string{
		"acme/vision", "acme/engineering/vision", "acme.vision", "acme.engineering.vision",
		"", "/", ".", "//", "acme", "acme/", "/vision", "acme//vision", "acme/vision/", "acme/engineering//vision",
		"acme/engineering/vision/x", "a/b/c/d/e", "acme/vis\x00ion", "acme\x00/vision", "acme/vi sion", "acme/vi--sion",
		"acme/" + long, long + "/vision", "acme/" + long + "/vision", "acme/" + huge, huge, "acme/" + max, max + "/" + max + "/" + max,
		"acme/nope", "nope/vision", "acme/nope/vision", "acme/research/vision", "ACME/vision", "acme/VISION", "acme/víson",
	}
	for _, s := range subjects {
		for _, r := range resources {
			reqs = append(reqs, authz.Request{Subject: s, Action: "runs.stop", Resource: r})
		}
	}
	for _, a := range []string{"", "runs.nope", "runs.stop\x00", "RUNS.STOP", huge, "org.get", "team.get"} {
		for _, s := range []string{"bob", "bo b", ""} {
			for _, r := range []string{"acme/vision", "acme//vision", "acme"} {
				reqs = append(reqs, authz.Request{Subject: s, Action: a, Resource: r})
			}
		}
	}
	for _, o := range []string{"acme", "acme/engineering", "acme.x", "", "nope"} {
		reqs = append(reqs, authz.Request{Subject: "bob", Action: "runs.stop", Resource: "vision", Owner: o},
			authz.Request{Subject: "bo b", Action: "runs.stop", Resource: "vision", Owner: o})
	}
	return reqs
}

// fastPaths opens the conformance store with full evaluation only (plain) and, on the same
// store, the engines whose answers must equal it: the compiled path uncached ("compiled"), with
// the decision cache ("cached"), and through a wrapping Directory's View ("through View").
func fastPaths(t *testing.T) (plain *authz.Engine, st *store.Store, fast map[string]*authz.Engine) {
	t.Helper()
	plain, st = newAcme(t, authz.WithDecisionCache(0), authz.WithCompiledPath(false))
	fast = map[string]*authz.Engine{}
	for name, opts := range map[string][]authz.Option{"compiled": {authz.WithDecisionCache(0)}, "cached": nil} {
		eng, err := authz.New(t.Context(), st, opts...)
		require.NoError(t, err)
		fast[name] = eng
	}
	eng, err := authz.New(t.Context(), wrapped{st}, authz.WithDecisionCache(0))
	require.NoError(t, err)
	fast["through View"] = eng
	return plain, st, fast
}

// TestCompiledPathBadInput: on bad input the compiled path (uncached, cached, and through a
// wrapping Directory's View) gives full evaluation's error, byte for byte, or its decision.
func TestCompiledPathBadInput(t *testing.T) {
	t.Parallel()
	plain, _, fast := fastPaths(t)
	invalid, decided := 0, 0
	for _, req := range badInputs() {
		want, wantErr := plain.Authorize(t.Context(), req)
		for name, eng := range fast {
			for range 2 { // the second time from the cache, for the cached engine
				got, err := eng.Authorize(t.Context(), req)
				if wantErr != nil {
					require.Error(t, err, "%s %+v", name, req)
					require.Equal(t, wantErr.Error(), err.Error(), "%s %+v", name, req)
					require.ErrorIs(t, err, teamgate.ErrInvalid, "%s %+v", name, req)
					var ie *teamgate.InvalidError
					require.ErrorAs(t, err, &ie)
					require.Equal(t, authz.Decision{}, got, "%s %+v", name, req)
					continue
				}
				require.NoError(t, err, "%s %+v", name, req)
				require.Equal(t, want, got, "%s %+v", name, req)
			}
		}
		if wantErr != nil {
			invalid++
		} else {
			decided++
		}
	}
	require.Greater(t, invalid, 300)
	require.Greater(t, decided, 20)
	require.NotZero(t, fast["compiled"].Stats().Compiled)

	// Admissions decide in the snapshot that reads the project's settings: the same errors.
	for _, s := range []string{"bob", "nobody", "", "bo b", "bob\x00", strings.Repeat("a", 10_000)} {
		for _, project := range []string{"acme/vision", "acme/engineering/vision", "acme/nope", "acme//vision"} {
			want, wantErr := plain.Admit(t.Context(), s, project, policy.Run{Kind: "job"})
			got, err := fast["compiled"].Admit(t.Context(), s, project, policy.Run{Kind: "job"})
			if wantErr != nil {
				require.Error(t, err, "%q %q", s, project)
				require.Equal(t, wantErr.Error(), err.Error(), "%q %q", s, project)
				continue
			}
			require.NoError(t, err, "%q %q", s, project)
			require.Equal(t, want, got, "%q %q", s, project)
		}
	}
}

// TestCompiledPathBadInputOnAClosedStore: once the store is closed, a malformed request is
// still refused for what it is (teamgate.ErrInvalid, the same error as full evaluation gives),
// not with the store's ErrClosed, on every path; a well-formed one fails with ErrClosed.
func TestCompiledPathBadInputOnAClosedStore(t *testing.T) {
	t.Parallel()
	plain, st, fast := fastPaths(t)
	require.NoError(t, st.Close())
	invalid := 0
	for _, req := range badInputs() {
		_, wantErr := plain.Authorize(t.Context(), req)
		require.Error(t, wantErr, "%+v", req)
		if !errors.Is(wantErr, teamgate.ErrClosed) {
			require.ErrorIs(t, wantErr, teamgate.ErrInvalid, "%+v", req)
			invalid++
		}
		for name, eng := range fast {
			got, err := eng.Authorize(t.Context(), req)
			require.Error(t, err, "%s %+v", name, req)
			require.Equal(t, wantErr.Error(), err.Error(), "%s %+v", name, req)
			require.Equal(t, authz.Decision{}, got, "%s %+v", name, req)
		}
	}
	require.Greater(t, invalid, 300)
}

// TestCompiledPathDuringReload: decisions on the compiled path while the policy is swapped back
// and forth (data that re-ranks roles, so the two tables answer differently) and the store is
// written; every decision is one of the two policies' answers for the directory it read, never
// an error. Run it with -race.
func TestCompiledPathDuringReload(t *testing.T) {
	t.Parallel()
	eng, st := newAcme(t, authz.WithDecisionCache(0))
	ctx := t.Context()
	// Two policies: the default, and one where runs.stop needs admin.
	stricter := map[string]any{"teamgate": map[string]any{"actions": map[string]any{
		"runs.stop": map[string]any{"kind": "project", "role": "admin"},
	}}}
	reqs := []authz.Request{
		{Subject: "bob", Action: "runs.stop", Resource: "acme/vision"},
		{Subject: "vera", Action: "runs.stop", Resource: "acme/engineering/vision"},
		{Subject: "nobody", Action: "runs.stop", Resource: "acme/vision"},
		{Subject: "bo b", Action: "runs.stop", Resource: "acme/vision"},
		{Subject: "bob", Action: "runs.stop", Resource: "acme//vision"},
	}
	// Every answer each request may get: from either policy, before or after the writes.
	type answer struct {
		allowed bool
		err     string
	}
	allowedAnswers := make([]map[answer]bool, len(reqs))
	record := func() {
		for i, r := range reqs {
			d, err := eng.Authorize(ctx, r)
			a := answer{allowed: d.Allowed}
			if err != nil {
				a.err = err.Error()
			}
			if allowedAnswers[i] == nil {
				allowedAnswers[i] = map[answer]bool{}
			}
			allowedAnswers[i][a] = true
		}
	}
	write := func(role string) {
		_, err := st.Apply(ctx, store.PutTeamMember{Org: "acme", Team: "engineering", User: "vera", Role: role})
		require.NoError(t, err)
	}
	for _, data := range []map[string]any{stricter, nil} {
		for _, role := range []string{"admin", "viewer"} {
			require.NoError(t, eng.SetPolicy(ctx, nil, data))
			write(role)
			record()
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			data := []map[string]any{stricter, nil}[i%2]
			if err := eng.SetPolicy(context.Background(), nil, data); err != nil {
				t.Error(err)
				return
			}
			write([]string{"admin", "viewer"}[i%2])
		}
	})
	for n := 0; n < 2000; n++ {
		i := n % len(reqs)
		d, err := eng.Authorize(ctx, reqs[i])
		a := answer{allowed: d.Allowed}
		if err != nil {
			a.err = err.Error()
		}
		require.True(t, allowedAnswers[i][a], "%+v: %+v %v", reqs[i], d, err)
		if err == nil {
			require.NotEmpty(t, d.Reasons)
			require.False(t, d.Has(rego.CodeError), "%+v", d)
		}
	}
	close(stop)
	wg.Wait()
	require.NotZero(t, eng.Stats().Compiled)
}
