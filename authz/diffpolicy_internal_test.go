package authz

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// TestSetPolicyIfInterleavings forces, through the seam between SetPolicyIf's diff and its swap,
// each thing that can happen there: a write that changes no decision (the condition is checked
// again at the new revision and holds), a write that changes the diff (ErrConflict), a policy
// swapped in by someone else (ErrConflict, theirs stays), writes that never stop (ErrStale after
// setPolicyIfAttempts diffs). On every refusal the policy in force is untouched.
func TestSetPolicyIfInterleavings(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	otto := rego.Module{Name: "otto.rego", Source: `package teamgate.ext

import rego.v1

allow contains "otto reads open" if {
	input.action == "project.get"
	input.subject.id == "otto"
	input.resource.project == "open"
}
`}
	cand := Candidate{Modules: []rego.Module{otto}}
	ottoReadsOpen := func(e *Engine) bool {
		d, err := e.Authorize(ctx, Request{Subject: "otto", Action: "project.get", Resource: "acme/open"})
		require.NoError(t, err)
		return d.Allowed
	}
	unrelated := func(e *Engine, n int) {
		_, err := e.dir.Apply(ctx, store.PutProject{Project: store.Project{Org: "acme", Name: fmt.Sprintf("unrelated%d", n), Teams: []string{"research"}}})
		require.NoError(t, err)
	}
	var other *rego.Policy
	for _, tc := range []struct {
		name  string
		hook  func(e *Engine, call int)
		calls int   // how often the seam is reached
		err   error // nil: the candidate is loaded
	}{
		{"nothing happens", func(*Engine, int) {}, 1, nil},
		{"a write that changes no decision", func(e *Engine, call int) {
			if call == 1 {
				unrelated(e, call)
			}
		}, 2, nil},
		{"a write that changes the diff", func(e *Engine, call int) {
			_, err := e.dir.Apply(ctx, store.DeleteMember{Org: "acme", User: "otto"})
			require.NoError(t, err)
		}, 1, teamgate.ErrConflict},
		{"another policy swapped in", func(e *Engine, call int) {
			require.NoError(t, e.SetPolicy(ctx, nil, map[string]any{"teamgate": map[string]any{}}))
			other = e.Policy()
		}, 1, teamgate.ErrConflict},
		{"writes that never stop", unrelated, setPolicyIfAttempts, teamgate.ErrStale},
	} {
		// testdata/small.yaml (diffpolicy_test.go's newSmall): the diff evaluates every pair,
		// with a minute's budget so that a loaded machine stops none.
		st, err := store.Open(ctx, store.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		_, err = st.LoadFile(ctx, filepath.Join("testdata", "small.yaml"))
		require.NoError(t, err)
		e, err := New(ctx, st, WithEvalBudget(time.Minute))
		require.NoError(t, err)
		reviewed, err := e.DiffPolicy(ctx, cand, 0)
		require.NoError(t, err)
		require.Len(t, reviewed.Decisions, 1)
		before := e.Policy()
		calls := 0
		e.afterDiff = func() {
			calls++
			tc.hook(e, calls)
		}
		err = e.SetPolicyIf(ctx, reviewed.Fingerprint, cand)
		require.Equal(t, tc.calls, calls, tc.name)
		if tc.err == nil {
			require.NoError(t, err, tc.name)
			require.NotSame(t, before, e.Policy(), tc.name)
			require.True(t, ottoReadsOpen(e), tc.name)
			continue
		}
		require.ErrorIs(t, err, tc.err, tc.name)
		require.False(t, ottoReadsOpen(e), "%s: the candidate is not in force", tc.name)
		if tc.name == "another policy swapped in" {
			require.Same(t, other, e.Policy(), "theirs stays")
			require.Contains(t, err.Error(), "the policy in force changed while the diff was computed")
		} else {
			require.Same(t, before, e.Policy(), tc.name)
		}
	}
}
