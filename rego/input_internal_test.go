package rego

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/stretchr/testify/require"
)

// TestDefaultRulesReadNoNames: the default rules read neither the subject's id outside own_run
// nor the resource's org, project or labels, so Input.value leaves the last three out of what
// OPA is given; every role fact stays.
func TestDefaultRulesReadNoNames(t *testing.T) {
	t.Parallel()
	p, err := New(t.Context(), nil)
	require.NoError(t, err)
	for _, c := range []struct {
		doc, field *ast.Term
		read       bool
	}{
		{keySubject, keyID, true}, // own_run compares it with the run's creator
		{keySubject, keyOrgRole, true},
		{keySubject, keyGrant, true},
		{keySubject, keyTeamRoles, true},
		{keySubject, keyTeamRole, true},
		{keyResource, keyKind, true},
		{keyResource, keyTeam, true},
		{keyResource, keyTeams, true},
		{keyResource, keyRestricted, true},
		{keyResource, keyExists, true},
		{keyResource, keyMissing, true},
		{keyResource, keyOrg, false},
		{keyResource, keyProject, false},
		{keyResource, keyLabels, false},
	} {
		require.Equal(t, c.read, p.reads.has(c.doc, c.field), "%v.%v", c.doc, c.field)
	}
	obj := (&Input{Resource: Resource{Kind: "project", Org: "acme", Project: "vision", Exists: true,
		Labels: map[string]string{"tier": "gold"}}}).value(p).(ast.Object)
	res := obj.Get(keyResource).Value.(ast.Object)
	for _, k := range []*ast.Term{keyOrg, keyProject, keyLabels} {
		require.Nil(t, res.Get(k), "%v is passed although no rule reads it", k)
	}
	require.NotNil(t, res.Get(keyExists))
}
