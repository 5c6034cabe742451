package rego_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

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
