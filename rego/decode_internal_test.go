package rego

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/stretchr/testify/require"
)

// TestDecodeLimit: a reason's limit is read as {attribute, role}; one that is not (no policy of
// default modules makes it, and authors' modules make no reasons) fails the decision as an
// *Error, which the engine denies with reason error, rather than naming a limit that is not one.
func TestDecodeLimit(t *testing.T) {
	t.Parallel()
	decision := func(limit string) ast.Value {
		return ast.MustParseTerm(`{"allow": false, "role": "member", "reasons": [{"code": "insufficient_role", "limit": ` + limit + `}]}`).Value
	}
	res, err := decode(decision(`{"attribute": "target_current_role", "role": "admin"}`))
	require.NoError(t, err)
	require.Equal(t, []Limit{{Attribute: "target_current_role", Role: "admin"}}, res.Limits)
	res, err = decode(decision(`{"attribute": "target_role", "role": ["admin"]}`))
	require.NoError(t, err)
	require.Equal(t, Limit{Attribute: "target_role", Role: `["admin"]`}, res.LimitOf(0), "a role that is not a string keeps its Rego text")
	for _, bad := range []string{`"target_role"`, `{}`, `{"attribute": "target_role"}`, `{"role": "admin"}`, `{"attribute": 3, "role": "admin"}`} {
		_, err := decode(decision(bad))
		var e *Error
		require.ErrorAs(t, err, &e, bad)
		require.Equal(t, "eval", e.Op, bad)
		require.Contains(t, e.Detail, "limit", bad)
	}
}
