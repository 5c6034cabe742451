package authz_test

import (
	"maps"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// setLabels replaces a project's labels, keeping the rest of its record.
func setLabels(t *testing.T, st *store.Store, org, name string, labels map[string]string) {
	t.Helper()
	var p store.Project
	require.NoError(t, st.View(func(r store.Reader) error {
		pv, ok := r.Project(org, name)
		require.True(t, ok)
		p = *pv.Project
		p.Grants = maps.Clone(p.Grants)
		return nil
	}))
	p.Labels = labels
	_, err := st.Apply(t.Context(), store.PutProject{Project: p})
	require.NoError(t, err)
}

// TestCachedDecisionFollowsLabels: a decision that reads input.resource.labels is cached like any
// other, and a write that changes only the labels makes it stale (labels are project facts, under
// the project's stamp). The decision table keys on no label, so such a policy is never answered
// from it, compiled path enabled or not.
func TestCachedDecisionFollowsLabels(t *testing.T) {
	t.Parallel()
	frozen := rego.Module{Name: "frozen.rego", Source: `package teamgate.ext

import rego.v1

deny contains "project is frozen" if input.resource.labels.frozen == "true"
`}
	eng, st := newAcme(t, authz.WithModules(frozen), authz.WithCompiledPath(true))
	require.Nil(t, eng.Policy().Table(), "an author's module may read facts the table does not key on")
	req := authz.Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision"}
	check := func(allowed bool, hits uint64) {
		t.Helper()
		d, err := eng.Authorize(t.Context(), req)
		require.NoError(t, err)
		require.Equal(t, allowed, d.Allowed, "%+v", d)
		require.Equal(t, allowed, !d.Has("extension_deny"))
		require.Equal(t, hits, eng.Stats().CacheHits)
	}
	check(true, 0)
	check(true, 1) // cached

	setLabels(t, st, "acme", "vision", map[string]string{"frozen": "true"})
	check(false, 1) // the label change is a miss
	check(false, 2)

	setLabels(t, st, "acme", "vision", map[string]string{"frozen": "true", "tier": "gold"})
	check(false, 2) // any label change is a write to the project: a miss, the same answer
	setLabels(t, st, "acme", "vision", nil)
	check(true, 2)
	require.Zero(t, eng.Stats().Compiled)
}
