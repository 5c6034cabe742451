package authz_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// newAcme opens an in-memory store with the conformance data and an engine over it.
func newAcme(t testing.TB, opts ...authz.Option) (*authz.Engine, *store.Store) {
	t.Helper()
	st := conformance.OpenStore(t, store.Options{})
	eng, err := authz.New(t.Context(), st, opts...)
	require.NoError(t, err)
	return eng, st
}

// openDisk opens an on-disk store in dir (a restart when dir was used before) and an engine.
func openDisk(t *testing.T, dir string) (*store.Store, *authz.Engine) {
	t.Helper()
	st, err := store.Open(t.Context(), store.Options{Dir: dir, NoSync: true})
	require.NoError(t, err)
	eng, err := authz.New(t.Context(), st)
	require.NoError(t, err)
	return st, eng
}

func TestConformanceAuthorize(t *testing.T) {
	t.Parallel()
	cases, err := conformance.Load()
	require.NoError(t, err)
	require.NotEmpty(t, cases.Authorize)
	cached, _ := newAcme(t)
	rego, _ := newAcme(t, authz.WithDecisionCache(0), authz.WithCompiledPath(false))
	compiled, _ := newAcme(t, authz.WithDecisionCache(0))
	// Full Rego evaluation, the compiled path, and the cached engine twice (the second pass comes
	// from the cache).
	for pass, eng := range []*authz.Engine{rego, compiled, cached, cached} {
		checkAuthorizeCorpus(t, fmt.Sprint("pass ", pass), eng, cases.Authorize)
	}
	require.NotZero(t, cached.Stats().CacheHits)
	// Every path gives the same decision, messages included, byte for byte.
	for i, c := range cases.Authorize {
		req := authz.Request{Subject: c.Subject, Action: c.Action, Resource: c.Resource, Attributes: c.Attributes}
		want, err := rego.Authorize(t.Context(), req)
		if c.Error {
			continue
		}
		require.NoError(t, err)
		for name, eng := range map[string]*authz.Engine{"compiled": compiled, "cached": cached} {
			got, err := eng.Authorize(t.Context(), req)
			require.NoError(t, err)
			require.Equal(t, want, got, "%03d %s %+v", i, name, req)
		}
	}
}

func checkAuthorizeCorpus(t *testing.T, pass string, eng *authz.Engine, cases []conformance.Authorize) {
	t.Helper()
	for i, c := range cases {
		name := fmt.Sprintf("%s %03d %s %s %s", pass, i, c.Subject, c.Action, c.Resource)
		d, err := eng.Authorize(t.Context(), authz.Request{Subject: c.Subject, Action: c.Action, Resource: c.Resource, Attributes: c.Attributes})
		if c.Error {
			require.ErrorIs(t, err, teamgate.ErrInvalid, name)
			continue
		}
		require.NoError(t, err, name)
		require.Equal(t, c.Allowed, d.Allowed, "%s: %+v", name, d)
		require.Equal(t, c.Role, d.Role, "%s: %+v", name, d)
		if c.Reason != "" {
			require.True(t, d.Has(rego.Code(c.Reason)), "%s: want reason %s in %+v", name, c.Reason, d.Reasons)
		}
		require.NotZero(t, d.Revision, name)
	}
}

func TestConformanceAdmit(t *testing.T) {
	t.Parallel()
	cases, err := conformance.Load()
	require.NoError(t, err)
	require.NotEmpty(t, cases.Admit)
	eng, _ := newAcme(t)
	for i, c := range cases.Admit {
		name := fmt.Sprintf("%03d %s %s %v", i, c.Subject, c.Project, c.Run)
		run, err := conformance.Run(c.Run)
		require.NoError(t, err, name)
		a, err := eng.Admit(t.Context(), c.Subject, c.Project, run)
		require.NoError(t, err, name)
		require.Equal(t, c.Allowed, a.Allowed, "%s: %+v", name, a)
		require.Equal(t, c.Queue, a.Queue, "%s: %+v", name, a)
		require.Equal(t, nonNil(c.Presets), a.Presets, "%s: %+v", name, a)
		require.ElementsMatch(t, nonNil(c.Violations), fields(a.Violations), "%s: %+v", name, a)
	}
}

func TestConformanceSettings(t *testing.T) {
	t.Parallel()
	cases, err := conformance.Load()
	require.NoError(t, err)
	require.NotEmpty(t, cases.Settings)
	eng, _ := newAcme(t)
	for _, c := range cases.Settings {
		s, err := eng.EffectiveSettings(t.Context(), c.Project, c.User)
		require.NoError(t, err, c.Project)
		raw, err := json.Marshal(s)
		require.NoError(t, err)
		conformance.CheckSettings(t, c, raw)
	}
}

func fields(v []policy.Violation) []string {
	out := []string{}
	for _, x := range v {
		out = append(out, x.Field)
	}
	return out
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

func TestConformanceList(t *testing.T) {
	t.Parallel()
	cases, err := conformance.Load()
	require.NoError(t, err)
	require.NotEmpty(t, cases.List)
	eng, _ := newAcme(t)
	for _, c := range cases.List {
		page, err := eng.ListProjects(t.Context(), c.Subject, c.Owner, authz.Page{})
		require.NoError(t, err, "%s %s", c.Subject, c.Owner)
		require.Equal(t, nonNil(c.Projects), page.Projects, "%s %q", c.Subject, c.Owner)
	}
}
