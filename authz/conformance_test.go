package authz_test

import (
	"encoding/json"
	"fmt"
	"slices"
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

// suites loads the corpus and the policy suites (internal/conformance).
func suites(t *testing.T) []conformance.Suite {
	t.Helper()
	all, err := conformance.Suites()
	require.NoError(t, err)
	require.Greater(t, len(all), 1, "the corpus and at least one policy suite")
	return all
}

// newSuite is an engine on the suite's data (acme.yaml unless the suite names its own), under
// its policy (the default one for the corpus) and evaluation budget.
func newSuite(t testing.TB, s conformance.Suite, opts ...authz.Option) *authz.Engine {
	t.Helper()
	if s.Policy != "" {
		opts = append(opts, authz.WithPolicyDir(s.Policy))
	}
	if s.Budget != nil {
		opts = append(opts, authz.WithEvalBudget(*s.Budget))
	}
	eng, err := authz.New(t.Context(), s.OpenStore(t, store.Options{}), opts...)
	require.NoError(t, err)
	return eng
}

// TestConformanceAuthorize runs every suite's authorize cases on full Rego evaluation, the
// compiled path, and the cached engine twice (the second pass from the cache), checks that the
// compiled path answered where the suite says it does (and only there), and that every path
// gives the same decision, messages included. A suite whose policy must not load is refused by
// authz.New with its error; one whose data file must not load, by store.LoadFile.
func TestConformanceAuthorize(t *testing.T) {
	t.Parallel()
	for _, s := range suites(t) {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			if s.DataError != "" {
				st, err := store.Open(t.Context(), store.Options{})
				require.NoError(t, err)
				t.Cleanup(func() { _ = st.Close() })
				_, err = st.LoadFile(t.Context(), s.Data)
				require.ErrorIs(t, err, teamgate.ErrInvalid)
				require.ErrorContains(t, err, s.DataError)
				return
			}
			if s.LoadError != "" {
				_, err := authz.New(t.Context(), s.OpenStore(t, store.Options{}), authz.WithPolicyDir(s.Policy))
				require.ErrorIs(t, err, teamgate.ErrInvalid)
				require.ErrorContains(t, err, s.LoadError)
				return
			}
			require.NotEmpty(t, s.Authorize)
			cached := newSuite(t, s)
			full := newSuite(t, s, authz.WithDecisionCache(0), authz.WithCompiledPath(false))
			compiled := newSuite(t, s, authz.WithDecisionCache(0))
			var passes [][]authz.Decision
			for pass, eng := range []*authz.Engine{full, compiled, cached, cached} {
				passes = append(passes, checkAuthorizeCorpus(t, fmt.Sprint("pass ", pass), eng, s.Authorize))
			}
			require.Zero(t, full.Stats().Compiled)
			if s.CompiledPath {
				require.NotZero(t, compiled.Stats().Compiled, "the compiled path answers this policy")
			} else {
				require.Zero(t, compiled.Stats().Compiled, "this policy is evaluated in full")
			}
			if !cached.Policy().Deterministic() {
				require.Zero(t, cached.Stats().CacheHits, "a non-deterministic policy's decisions are never cached")
			} else if slices.ContainsFunc(s.Authorize, func(c conformance.Authorize) bool { return !c.Error && c.Reason != string(rego.CodeError) }) {
				require.NotZero(t, cached.Stats().CacheHits)
			}
			// Every path gives the same decision as full evaluation, messages included, byte for
			// byte (the passes' own decisions: a case of the budget suite runs until its budget).
			for pass, got := range passes[1:] {
				for i, c := range s.Authorize {
					require.Equal(t, passes[0][i], got[i], "pass %d, %03d %+v", pass+1, i, c)
				}
			}
		})
	}
}

// checkAuthorizeCorpus decides every case on eng, checks it, and returns the decisions (the zero
// Decision for a case whose request is invalid).
func checkAuthorizeCorpus(t *testing.T, pass string, eng *authz.Engine, cases []conformance.Authorize) []authz.Decision {
	t.Helper()
	out := make([]authz.Decision, len(cases))
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
		if c.Message != "" {
			require.Contains(t, d.Reasons, authz.Reason{Code: rego.Code(c.Reason), Message: c.Message}, name)
		}
		require.NotZero(t, d.Revision, name)
		out[i] = d
	}
	return out
}

func TestConformanceAdmit(t *testing.T) {
	t.Parallel()
	n := 0
	for _, s := range suites(t) {
		if len(s.Admit) == 0 {
			continue
		}
		n += len(s.Admit)
		eng := newSuite(t, s)
		for i, c := range s.Admit {
			name := fmt.Sprintf("%s %03d %s %s %v", s.Name, i, c.Subject, c.Project, c.Run)
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
	require.NotZero(t, n)
}

func TestConformanceSettings(t *testing.T) {
	t.Parallel()
	n := 0
	for _, s := range suites(t) {
		if len(s.Settings) == 0 {
			continue
		}
		n += len(s.Settings)
		eng := newSuite(t, s)
		for _, c := range s.Settings {
			x, err := eng.EffectiveSettings(t.Context(), c.Project, c.User)
			require.NoError(t, err, "%s %s", s.Name, c.Project)
			raw, err := json.Marshal(x)
			require.NoError(t, err)
			conformance.CheckSettings(t, c, raw)
		}
	}
	require.NotZero(t, n)
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
	n := 0
	for _, s := range suites(t) {
		if len(s.List) == 0 {
			continue
		}
		n += len(s.List)
		eng := newSuite(t, s)
		for _, c := range s.List {
			page, err := eng.ListProjects(t.Context(), c.Subject, c.Owner, authz.Page{})
			require.NoError(t, err, "%s %s %s", s.Name, c.Subject, c.Owner)
			require.Equal(t, nonNil(c.Projects), page.Projects, "%s %s %q", s.Name, c.Subject, c.Owner)
		}
	}
	require.NotZero(t, n)
}
