package rego_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
)

// regoSet writes keys as a Rego set of strings.
func regoSet(keys []string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = fmt.Sprintf("%q", k)
	}
	return "{" + strings.Join(q, ", ") + "}"
}

// TestTestHelpersHoldTheWholeInput: teamgate.testing's defaults have exactly the fields of the
// input document (rego.Input's JSON form, for a project request), so a test built with
// request / input_for never lacks a fact the engine passes, and the helper cannot fall behind
// the input when a field is added.
func TestTestHelpersHoldTheWholeInput(t *testing.T) {
	t.Parallel()
	raw, err := json.Marshal(rego.Input{Resource: rego.Resource{Kind: scope.KindProject}})
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	keys := func(m any) string { return regoSet(slices.Sorted(maps.Keys(m.(map[string]any)))) }
	src := fmt.Sprintf(`package helpers_test

import rego.v1

import data.teamgate.authz
import data.teamgate.testing

test_top_level if object.keys(testing.defaults) == %s

test_subject if object.keys(testing.defaults.subject) == %s

test_resource if object.keys(testing.defaults.resource) == %s

test_request_merges_key_by_key if {
	r := testing.request({"subject": {"org_role": "owner"}, "resource": {"labels": {"tier": "gold"}}})
	r.subject.org_role == "owner"
	r.subject.id == testing.defaults.subject.id
	r.resource.labels == {"tier": "gold"}
	r.resource.exists
}

test_input_for_decides if {
	authz.decision.allow with input as testing.input_for({"org_role": "owner"}, "runs.delete", {})
	not authz.decision.allow with input as testing.input_for({"org_role": "viewer"}, "runs.delete", {})
}
`, keys(doc), keys(doc["subject"]), keys(doc["resource"]))
	run, err := rego.RunTests(t.Context(), []rego.Module{{Name: "helpers_test.rego", Source: src}}, rego.TestOptions{})
	require.NoError(t, err)
	require.Len(t, run.Results, 5)
	for _, r := range run.Results {
		require.True(t, r.Pass(), "%s: %v\n%s", r.Name, r.Error, src)
	}
}

// TestTestHelpersRefuseActionsOutsideTheCatalog: a test that asks the helpers for an action the
// catalog does not hold errors, naming the action, also under `not` — the rules alone would only
// deny it (insufficient_role), so a test of a deny would pass on a misspelt action the engine
// refuses; the error is the helper's message alone. An action the policy's JSON adds to the
// catalog is taken.
func TestTestHelpersRefuseActionsOutsideTheCatalog(t *testing.T) {
	t.Parallel()
	const src = `package helpers_test

import rego.v1

import data.teamgate.authz
import data.teamgate.testing

test_misspelt_deny if {
	not authz.decision.allow with input as testing.input_for({"org_role": "viewer"}, "runs.delet", {})
}

test_misspelt_request if {
	r := testing.request({"action": "artifacts.delete"})
	r.action == "artifacts.delete"
}

test_added_action if {
	authz.decision.allow with input as testing.input_for({"org_role": "member"}, "runs.pin", {})
	not authz.decision.allow with input as testing.input_for({"org_role": "viewer"}, "runs.pin", {})
}
`
	modules := []rego.Module{{Name: "helpers_test.rego", Source: src}}
	added := map[string]any{"teamgate": map[string]any{"actions": map[string]any{
		"runs.pin": map[string]any{"kind": "project", "role": "contributor"},
	}}}
	run, err := rego.RunTests(t.Context(), modules, rego.TestOptions{}, added)
	require.NoError(t, err)
	got := map[string]string{}
	for _, r := range run.Results {
		got[r.Name] = fmt.Sprint(r.Error)
		if r.Name == "test_added_action" {
			require.True(t, r.Pass(), "%v", r.Error)
			continue
		}
		require.False(t, r.Pass(), r.Name)
		require.Error(t, r.Error, r.Name)
	}
	require.Len(t, got, 3)
	require.Contains(t, got["test_misspelt_deny"], "action runs.delet is not in the catalog")
	require.Contains(t, got["test_misspelt_request"], "action artifacts.delete is not in the catalog")
	// The message is the helper's own, not wrapped in a built-in's complaint about it.
	require.Contains(t, got["test_misspelt_deny"], "eval_builtin_error: teamgate.test_error: action runs.delet is not in the catalog (data.teamgate.actions): add it in a JSON file of the policy, or fix the name")
	require.NotContains(t, got["test_misspelt_deny"], "ParseFloat")
}

// TestTestHelpersLoadInPlainOPA: an author's suite that imports the test helper runs under plain
// `opa test` too (rego/README.md, "Testing a rule"): loaded as `opa test rego/authz.rego
// rego/data.json rego/testing.rego DIR` loads it and run as it runs it (OPA's tester, no
// teamgate built-in, built-in errors undefined), the worked examples' tests pass, and a test
// asking for an action outside the catalog errors under `not` too, its output the helper's
// message.
func TestTestHelpersLoadInPlainOPA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "typo_test.rego"), []byte(`package teamgate.ext_test

import rego.v1

import data.teamgate.authz
import data.teamgate.testing

test_misspelt_deny if {
	not authz.decision.allow with input as testing.input_for({}, "runs.delte", {})
}
`), 0o644))
	modules, store, err := tester.LoadWithParserOptions([]string{"authz.rego", "data.json", "testing.rego", "../examples/customrule/policy", dir}, nil, ast.ParserOptions{RegoVersion: ast.RegoV1})
	require.NoError(t, err)
	ctx := t.Context()
	txn, err := store.NewTransaction(ctx)
	require.NoError(t, err)
	defer store.Abort(ctx, txn)
	ch, err := tester.NewRunner().SetCompiler(ast.NewCompiler().WithEnablePrintStatements(true)).SetStore(store).
		CapturePrintOutput(true).SetModules(modules).SetTimeout(5*time.Second).RunTests(ctx, txn)
	require.NoError(t, err, "plain OPA compiles the helper")
	passed := 0
	for r := range ch {
		if r.Name == "test_misspelt_deny" {
			require.False(t, r.Pass())
			require.ErrorContains(t, r.Error, "eval_conflict_error")
			require.Contains(t, string(r.Output), "action runs.delte is not in the catalog (data.teamgate.actions)")
			continue
		}
		require.True(t, r.Pass(), "%s: %v", r.Name, r.Error)
		passed++
	}
	require.Equal(t, 10, passed, "the worked examples' tests")
}
