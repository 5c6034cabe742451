package authz_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/rego"
)

// slowModule's deny rule runs about nine million iterations (many seconds of OPA time) and
// allocates almost nothing while it runs, so only a budget or a context ends it soon.
var slowModule = rego.Module{Name: "slow.rego", Source: `package teamgate.ext

deny contains "slow" if {
	count([1 | some i in numbers.range(1, 3000); some j in numbers.range(1, 3000); i == j + 10000000]) > 0
}
`}

func TestEvalBudgetDeniesAndCounts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		opts   []authz.Option
		budget time.Duration
	}{
		{"default", nil, authz.DefaultEvalBudget},
		{"configured", []authz.Option{authz.WithEvalBudget(5 * time.Millisecond)}, 5 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			eng, _ := newAcme(t, append(tc.opts, authz.WithModules(slowModule))...)
			want := "time budget of " + tc.budget.String()

			d, err := eng.Authorize(t.Context(), authz.Request{Subject: "alice", Action: "org.get", Resource: "acme"})
			require.NoError(t, err)
			require.False(t, d.Allowed)
			require.Len(t, d.Reasons, 1)
			require.Equal(t, rego.CodeError, d.Reasons[0].Code)
			require.Contains(t, d.Reasons[0].Message, want)

			x, err := eng.Explain(t.Context(), authz.Request{Subject: "alice", Action: "runs.get", Resource: "acme/vision"})
			require.NoError(t, err)
			require.False(t, x.Decision.Allowed)
			require.True(t, x.Decision.Has(rego.CodeError), "%+v", x.Decision)

			// Admission's permission check is the same evaluation; the rest of the admission
			// (settings, CEL rules) still runs.
			a, err := eng.Admit(t.Context(), "alice", "acme/vision", policy.Run{Kind: "job"})
			require.NoError(t, err)
			require.False(t, a.Allowed)
			require.Equal(t, "permission", a.Violations[0].Field)
			require.Contains(t, a.Violations[0].Message, want)

			s := eng.Stats()
			require.Equal(t, uint64(3), s.OverBudget)
			require.Equal(t, uint64(3), s.EvalErrors)
			require.Zero(t, s.CacheHits, "a decision that failed is never cached")
		})
	}
}

func TestContextDeadlineStopsEvaluation(t *testing.T) {
	t.Parallel()
	eng, _ := newAcme(t, authz.WithEvalBudget(0), authz.WithModules(slowModule))
	// The module runs for seconds; the deadline ends it long before.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	d, err := eng.Authorize(ctx, authz.Request{Subject: "alice", Action: "org.get", Resource: "acme"})
	require.NoError(t, err, "the deadline passed during evaluation, which denies")
	require.False(t, d.Allowed)
	require.True(t, d.Has(rego.CodeError), "%+v", d)
	require.Contains(t, d.Reasons[0].Message, context.DeadlineExceeded.Error())
	s := eng.Stats()
	require.Equal(t, uint64(1), s.EvalErrors)
	require.Zero(t, s.OverBudget, "the caller's deadline is not the budget")
}

func TestEvalBudgetOption(t *testing.T) {
	t.Parallel()
	eng, _ := newAcme(t, authz.WithEvalBudget(time.Nanosecond))
	d, err := eng.Authorize(t.Context(), authz.Request{Subject: "alice", Action: "org.get", Resource: "acme"})
	require.NoError(t, err)
	require.True(t, d.Allowed, "the compiled path evaluates nothing, so no budget applies")

	st := eng.Directory()
	_, err = authz.New(t.Context(), st, authz.WithEvalBudget(-time.Second))
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	var ie *teamgate.InvalidError
	require.ErrorAs(t, err, &ie)
	require.Equal(t, "-1s", ie.Value)
}

// TestDefaultRulesHaveNoBudget: only authors' modules are budgeted; the default rules (with any
// authors' data) are never denied for slowness, however small the budget.
func TestDefaultRulesHaveNoBudget(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string][]authz.Option{
		"default policy": {authz.WithEvalBudget(time.Nanosecond), authz.WithCompiledPath(false), authz.WithDecisionCache(0)},
		"authors' data":  {authz.WithEvalBudget(time.Nanosecond), authz.WithCompiledPath(false), authz.WithDecisionCache(0), authz.WithData(map[string]any{"teamgate": map[string]any{"org_base": map[string]any{"billing": "viewer"}}})},
	} {
		eng, _ := newAcme(t, opts...)
		d, err := eng.Authorize(t.Context(), authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"})
		require.NoError(t, err, name)
		require.True(t, d.Allowed, "%s: %+v", name, d)
		require.Zero(t, eng.Stats().OverBudget, name)
	}
}
