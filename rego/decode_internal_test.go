package rego

import (
	"strings"
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
	for _, bad := range []string{`"target_role"`, `{}`, `{"attribute": "target_role"}`, `{"role": "admin"}`, `{"attribute": 3, "role": "admin"}`,
		// An attribute the engine would render as a given role, though no rule names it.
		`{"attribute": "destination", "role": "admin"}`, `{"attribute": "target_role\u001b[2J", "role": "admin"}`,
		`{"attribute": "target_rol", "role": "` + strings.Repeat("x", 100000) + `"}`} {
		_, err := decode(decision(bad))
		var e *Error
		require.ErrorAs(t, err, &e, bad)
		require.Equal(t, "eval", e.Op, bad)
		require.Contains(t, e.Detail, "decision.reasons[0].limit ", bad)
		require.Less(t, len(e.Detail), 300, "the value is shown by a prefix")
	}
	// A limit on a reason other than insufficient_role (an allow's, a destination's) is no
	// limit the rules name: it fails the decision rather than being rendered or dropped.
	for _, code := range []string{"org_role", "destination_denied", "extension_deny"} {
		_, err := decode(ast.MustParseTerm(`{"allow": false, "role": "member", "reasons": [{"code": "insufficient_role"}, {"code": "` + code + `", "limit": {"attribute": "target_role", "role": "admin"}}]}`).Value)
		var e *Error
		require.ErrorAs(t, err, &e, code)
		require.Contains(t, e.Detail, `decision.reasons[1].limit`, code)
		require.Contains(t, e.Detail, `not "`+code+`"`, code)
	}
	_, err = decode(ast.MustParseTerm(`{"allow": true, "role": "admin", "reasons": [{"code": "insufficient_role", "limit": {"attribute": "target_role", "role": "admin"}}]}`).Value)
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Contains(t, e.Detail, "decision.reasons[0].limit")
	require.Contains(t, e.Detail, "a decision that allows crossed no limit")
}

// TestFoldDropsExtCheck: with nothing defining data.teamgate.ext, the default rules' `not
// data.teamgate.ext` is left out of each body it shares with other expressions (their indexes
// renumbered) and is `true` where it is the whole body; with ext defined it stays everywhere.
func TestFoldDropsExtCheck(t *testing.T) {
	t.Parallel()
	mods, _, _, err := parse(nil)
	require.NoError(t, err)
	mod := mods[DefaultModules()[0].Name]
	count := func(m *ast.Module) (checks, trues int) {
		ast.WalkRules(m, func(r *ast.Rule) bool {
			require.NotEmpty(t, r.Body)
			for i, e := range r.Body {
				require.Equal(t, i, e.Index, "rule %s", r.Head.Name)
				if tm, ok := e.Terms.(*ast.Term); ok {
					if e.Negated && tm.Value.Compare(extRef) == 0 {
						checks++
					}
					if tm.Value.Compare(ast.Boolean(true)) == 0 {
						trues++
					}
				}
			}
			return false
		})
		return checks, trues
	}
	checks, trues := count(mod) // a rule without a body has the body `true`
	require.Equal(t, 2, checks) // decision's project shortcut and its default-verdict branch
	checks, folded := count(foldData(mod, DefaultData(), true))
	require.Zero(t, checks)
	require.Equal(t, trues+1, folded) // the default-verdict branch's whole body
	checks, _ = count(foldData(mod, DefaultData(), false))
	require.Equal(t, 2, checks)
	again, _ := count(mod)
	require.Equal(t, 2, again, "folding changed the parsed module")
}
