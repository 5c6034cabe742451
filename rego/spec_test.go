package rego_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
)

// TestSpecIsTheCatalogsOwnEntry: Spec finds what Action finds, as the policy's one shared entry
// (the same handle on every call), and nothing Action does not find.
func TestSpecIsTheCatalogsOwnEntry(t *testing.T) {
	t.Parallel()
	p, err := rego.New(t.Context(), nil)
	require.NoError(t, err)
	for _, name := range p.Actions() {
		spec, ok := p.Spec(name)
		require.True(t, ok, name)
		require.True(t, spec.Valid(), name)
		again, _ := p.Spec(name)
		require.Equal(t, spec, again, name)
		copied, _ := p.Action(name)
		require.Equal(t, copied, spec.Action(), name)
		require.Equal(t, copied.Kind, spec.Kind(), name)
		require.Equal(t, copied.Role, spec.Role(), name)
		require.Equal(t, copied.ManagesMembers, spec.ManagesMembers(), name)
		require.Equal(t, copied.DestinationRole, spec.DestinationRole(), name)
		require.Equal(t, len(copied.OrgRoles), spec.NumOrgRoles(), name)
		for i, r := range copied.OrgRoles {
			require.Equal(t, r, spec.OrgRole(i), name)
		}
	}
	for _, miss := range []string{"", "runs.nope", "runs.stop\x00", "RUNS.STOP"} {
		spec, ok := p.Spec(miss)
		require.False(t, ok, "%q", miss)
		require.False(t, spec.Valid())
		require.Equal(t, rego.ActionSpec{}, spec.Action())
		require.Empty(t, spec.Kind())
		require.Zero(t, spec.NumOrgRoles())
	}
}

// TestCatalogCannotBeChangedByItsReaders: what Action and Spec hand out are copies, so a caller
// that changes one (its kind, its roles, the elements of its OrgRoles) changes nothing another
// caller reads, and a Spec of another policy whose catalog gives the same action another kind
// (at the same position) neither answers for this policy's action nor fills this table's cells
// for the wrong kind: the table shared by every decision stays the policy's own.
func TestCatalogCannotBeChangedByItsReaders(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// A catalog of one more project action; another gives that action (at the same position in
	// the sorted catalog) to the org, for billing and outsiders.
	const action = "zz.custom"
	custom := func(spec map[string]any) map[string]any {
		return map[string]any{"teamgate": map[string]any{"actions": map[string]any{action: spec}}}
	}
	asProject := map[string]any{"kind": "project", "role": "admin"}
	p, err := rego.New(ctx, nil, custom(asProject))
	require.NoError(t, err)
	clean, err := rego.New(ctx, nil, custom(asProject))
	require.NoError(t, err)
	other, err := rego.New(ctx, nil, custom(map[string]any{"kind": "org", "org_roles": []any{"billing", "outsider"}}))
	require.NoError(t, err)
	require.Equal(t, p.Actions(), other.Actions())
	for _, name := range p.Actions() {
		a, _ := p.Action(name)
		a.Kind, a.Role = scope.KindOrg, "viewer"
		for i := range a.OrgRoles {
			a.OrgRoles[i] = "outsider"
		}
		s, _ := p.Spec(name)
		a2 := s.Action()
		for i := range a2.OrgRoles {
			a2.OrgRoles[i] = "outsider"
		}
		want, _ := clean.Action(name)
		got, _ := p.Action(name)
		require.Equal(t, want, got, name)
		require.Equal(t, want, s.Action(), name)
	}

	foreign, _ := other.Spec(action)
	require.Equal(t, scope.KindOrg, foreign.Kind())
	// Another policy's spec is refused (it does not stand for this table's action), and fills no
	// cell: the own spec then answers as a clean policy's table does, for every key.
	c := rego.Codes{Exists: true, OrgRole: 6} // billing: allowed by the other catalog's entry
	_, err = p.Table().VerdictOfCodes(ctx, foreign, &c, 0)
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	own, _ := p.Spec(action)
	cleanSpec, _ := clean.Spec(action)
	for _, c := range allCodes() {
		want, wantErr := clean.Table().VerdictOfCodes(ctx, cleanSpec, &c, 0)
		got, err := p.Table().VerdictOfCodes(ctx, own, &c, 0)
		require.Equal(t, wantErr, err, "%+v", c)
		if err == nil {
			require.Equal(t, contents(want), contents(got), "a cell filled for another kind: %+v", c)
		}
	}
}
