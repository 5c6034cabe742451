package rego_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
)

// TestEvalWithinStopsASlowModule: an author's module that would run for seconds is stopped by
// the budget or by the context, and either way gives no result.
func TestEvalWithinStopsASlowModule(t *testing.T) {
	t.Parallel()
	slow := rego.Module{Name: "slow.rego", Source: ext("teamgate.ext",
		`deny contains "slow" if {`,
		`	count([x | some x in numbers.range(1, 1e7); x < 0]) > 0`,
		`}`)}
	p, err := rego.New(t.Context(), []rego.Module{slow})
	require.NoError(t, err)
	in := rego.Input{Subject: rego.Subject{ID: "alice", OrgRole: "owner"}, Action: "org.get",
		Resource: rego.Resource{Kind: scope.KindOrg, Org: "acme", Teams: []string{}, Exists: true}}

	expired, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		budget time.Duration
		cause  error
	}{
		{"budget", t.Context(), 20 * time.Millisecond, rego.ErrBudget},
		{"context deadline", expired, 0, context.DeadlineExceeded},
	} {
		res, err := p.EvalWithin(tc.ctx, &in, tc.budget)
		require.ErrorIs(t, err, tc.cause, tc.name)
		var re *rego.Error
		require.ErrorAs(t, err, &re, tc.name)
		require.Equal(t, "eval", re.Op)
		require.False(t, res.Allow, tc.name)
		if tc.cause == rego.ErrBudget {
			require.Contains(t, err.Error(), "time budget of 20ms")
		} else {
			require.False(t, errors.Is(err, rego.ErrBudget), "the caller's deadline is not the budget")
		}
	}
}

// TestEvalWithinBudgetDecides: a budget that is not reached changes nothing.
func TestEvalWithinBudgetDecides(t *testing.T) {
	t.Parallel()
	p, err := rego.New(t.Context(), nil)
	require.NoError(t, err)
	in := rego.Input{Subject: rego.Subject{ID: "alice", OrgRole: "owner"}, Action: "org.get",
		Resource: rego.Resource{Kind: scope.KindOrg, Org: "acme", Teams: []string{}, Exists: true}}
	want, err := p.Eval(t.Context(), &in)
	require.NoError(t, err)
	require.True(t, want.Allow)
	got, err := p.EvalWithin(t.Context(), &in, time.Minute)
	require.NoError(t, err)
	require.Equal(t, want, got)
}
