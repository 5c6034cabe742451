package authz_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// requireSuggestionsWork asks Authorize for suggestions on each denied request of reqs and checks
// each suggestion: its changes apply (store.Apply: valid in the model) and then Authorize allows
// the request with the suggestion's role and reasons; and each step's approvers are exactly the
// known users Authorize allows the step's management request, within their limits (a grant or
// team role no higher than their own role there). The store is reset between suggestions. It
// returns how many suggestions of each shape it checked.
func requireSuggestionsWork(t *testing.T, eng *authz.Engine, st *store.Store, known []string, reqs []authz.Request, label string) map[string]int {
	t.Helper()
	ctx := t.Context()
	var snapshot bytes.Buffer
	require.NoError(t, st.Export(ctx, &snapshot))
	shapes := map[string]int{}
	for _, req := range reqs {
		where := fmt.Sprintf("%s: %s %s %s", label, req.Subject, req.Action, req.Resource)
		plain, err := eng.Authorize(ctx, req)
		require.NoError(t, err, where)
		require.Nil(t, plain.Suggestions, "%s: suggestions only when asked", where)
		asked := req
		asked.Suggest = true
		d, err := eng.Authorize(ctx, asked)
		require.NoError(t, err, where)
		require.Equal(t, plain.Allowed, d.Allowed, where)
		if d.Allowed {
			require.Nil(t, d.Suggestions, where)
			continue
		}
		require.NotNil(t, d.Suggestions, where)
		for _, sg := range d.Suggestions {
			require.NotEmpty(t, sg.Steps, where)
			require.Len(t, sg.Changes, len(sg.Steps), where)
			shape := ""
			for _, step := range sg.Steps {
				shape += string(step.Kind) + " "
				requireApprovers(t, eng, known, step, where+": "+step.Summary)
			}
			shapes[shape]++
			_, err := st.Apply(ctx, sg.Changes...)
			require.NoError(t, err, "%s: %s", where, shape)
			after, err := eng.Authorize(ctx, req)
			require.NoError(t, err, where)
			require.True(t, after.Allowed, "%s: after %s: %+v", where, shape, after)
			require.Equal(t, sg.Role, after.Role, where)
			require.Equal(t, sg.Reasons, after.Reasons, where)
			_, err = st.Load(ctx, bytes.NewReader(snapshot.Bytes()))
			require.NoError(t, err)
		}
	}
	return shapes
}

// requireApprovers: a step's approvers are exactly the known users Authorize allows its
// management request with the step's attributes (the role given, and the role replaced), and
// none of them gives or changes a role above their own there (SPEC §10; for an org role the
// policy's org ranks, checked in TestListingEqualsDecisionsAndSecurityProperties) unless an
// author's ext.allow allows them.
func requireApprovers(t *testing.T, eng *authz.Engine, known []string, step authz.Step, where string) {
	t.Helper()
	want := map[string]authz.Decision{}
	var wantNames []string
	for _, u := range slices.Sorted(slices.Values(known)) {
		d, err := eng.Authorize(t.Context(), authz.Request{Subject: u, Action: step.Action, Resource: step.Resource, Attributes: step.Attributes})
		require.NoError(t, err, where)
		if d.Allowed {
			want[u] = d
			wantNames = append(wantNames, u)
		}
	}
	require.Equal(t, step.Role, step.Attributes["target_role"], where)
	if step.From != "" {
		require.Equal(t, step.From, step.Attributes["target_current_role"], where)
	} else {
		require.NotContains(t, step.Attributes, "target_current_role", where)
	}
	got := []string{}
	for _, a := range step.Approvers {
		got = append(got, a.Subject)
		require.Equal(t, want[a.Subject].Role, a.Role, where)
		require.Equal(t, want[a.Subject].Reasons, a.Reasons, where)
		if step.Kind == authz.ChangeOrgRole || a.Reasons[0].Code == rego.CodeExtensionAllow {
			continue // an author's ext.allow lifts any deny of the default rules, this limit's too
		}
		have, _ := eng.Policy().Rank(a.Role)
		for _, r := range []string{step.Role, step.From} {
			if r != "" {
				n, _ := eng.Policy().Rank(r)
				require.LessOrEqual(t, n, have, "%s: %s (%s) may not give or change %s", where, a.Subject, a.Role, r)
			}
		}
	}
	require.Equal(t, nonNil(wantNames), got, where)
}

// randomDenials draws up to n random requests (without attributes) that Authorize denies, each
// action with a resource of its kind (resources: kind → references).
func randomDenials(t *testing.T, eng *authz.Engine, rng *rand.Rand, users, actions []string, resources map[string][]string, n int) []authz.Request {
	var out []authz.Request
	for range 50 * n {
		if len(out) == n {
			break
		}
		a := actions[rng.IntN(len(actions))]
		spec, ok := eng.Policy().Action(a)
		require.True(t, ok, a)
		fit := resources[string(spec.Kind)]
		req := authz.Request{Subject: users[rng.IntN(len(users))], Action: a, Resource: fit[rng.IntN(len(fit))]}
		d, err := eng.Authorize(t.Context(), req)
		require.NoError(t, err)
		if !d.Allowed {
			out = append(out, req)
		}
	}
	return out
}

// TestSuggestionsAllowOnAcme: on the conformance directory, every suggestion for random denied
// requests of every kind allows once applied, and names exactly who may make each change.
func TestSuggestionsAllowOnAcme(t *testing.T) {
	t.Parallel()
	eng, st := newAcme(t)
	users := []string{"alice", "mona", "adam", "amir", "bob", "beth", "vera", "bill", "olga", "otto", "zed"}
	actions := []string{"project.get", "runs.get", "runs.tag", "runs.stop", "runs.approve", "project.access",
		"team.get", "team.projects.create", "team.members.manage", "team.delete", "org.get", "projects.create", "org.billing"}
	resources := map[string][]string{
		"org":     {"acme"},
		"team":    {"acme/engineering", "acme/research", "acme/platform"},
		"project": {"acme/vision", "acme/nlp", "acme/open", "acme/labs", "acme/archive", "acme/engineering/vision"},
	}
	reqs := randomDenials(t, eng, rand.New(rand.NewPCG(12, 1)), append(users, "nobody"), actions, resources, 60)
	require.Len(t, reqs, 60)
	shapes := requireSuggestionsWork(t, eng, st, users, reqs, "acme")
	for _, shape := range []string{"grant ", "team_role ", "org_role ", "org_role grant ", "org_role team_role "} {
		require.Positive(t, shapes[shape], "a suggestion of shape %q, in %v", shape, shapes)
	}
}

// TestSuggestionsAllowUnderPoliciesAndData: suggestions hold under random data (re-ranked roles,
// re-mapped org roles) and under authors' modules (found by full evaluation), on random
// directories.
func TestSuggestionsAllowUnderPoliciesAndData(t *testing.T) {
	t.Parallel()
	for seed := range uint64(3) {
		rng := rand.New(rand.NewPCG(seed, 5))
		_, users, teams, projects := randomDirectory(t, seed)
		resources := map[string][]string{"org": {"o"}, "team": prefixed("o/", teams), "project": prefixed("o/", projects)}
		actions := []string{"project.get", "runs.stop", "runs.approve", "team.get", "team.update", "org.get", "projects.create"}
		for name, opts := range map[string][]authz.Option{
			"random data": {authz.WithData(randomData(rng))},
			"random ext":  {authz.WithModules(randomExtModule(rng, users, teams, projects))},
		} {
			eng, _, _, _ := whoCanDirectory(t, seed, opts...)
			label := fmt.Sprintf("seed %d %s", seed, name)
			reqs := randomDenials(t, eng, rng, users, actions, resources, 15)
			shapes := requireSuggestionsWork(t, eng, eng.Directory().(*store.Store), users[:13], reqs, label)
			require.NotEmpty(t, shapes, label)
		}
	}
}

// TestSuggestionsWhereNothingHelps: an allowed request, a resource that does not exist and a
// request an ext.deny refuses for everyone get no suggestions; Explain carries them on a deny.
func TestSuggestionsWhereNothingHelps(t *testing.T) {
	t.Parallel()
	frozen := rego.Module{Name: "frozen.rego", Source: "package teamgate.ext\nimport rego.v1\ndeny contains \"frozen\" if input.resource.project == \"archive\"\n"}
	eng, _ := newAcme(t, authz.WithModules(frozen))
	for _, req := range []authz.Request{
		{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}, // allowed
		{Subject: "bob", Action: "runs.stop", Resource: "acme/nope"},               // not_found
		{Subject: "vera", Action: "runs.get", Resource: "acme/archive"},            // extension_deny
	} {
		req.Suggest = true
		d, err := eng.Authorize(t.Context(), req)
		require.NoError(t, err)
		require.Empty(t, d.Suggestions, "%+v", req)
		req.Suggest = false
		x, err := eng.Explain(t.Context(), req)
		require.NoError(t, err)
		require.NotNil(t, x.Suggestions)
		require.Empty(t, x.Suggestions)
	}
	x, err := eng.Explain(t.Context(), authz.Request{Subject: "vera", Action: "runs.get", Resource: "acme/labs"})
	require.NoError(t, err)
	require.False(t, x.Decision.Allowed)
	require.NotEmpty(t, x.Suggestions)
	require.Equal(t, authz.ChangeGrant, x.Suggestions[0].Steps[0].Kind, "the narrowest change first")
	require.Equal(t, "grant vera viewer on project acme/labs", x.Suggestions[0].Steps[0].Summary)
}

// TestSuggestedGrantKeepsItsSettings: raising an existing grant keeps its queue and presets.
func TestSuggestedGrantKeepsItsSettings(t *testing.T) {
	t.Parallel()
	eng, st := newAcme(t)
	// otto (outsider) holds a viewer grant on vision, here with a queue; runs.stop needs contributor.
	viewer := store.Grant{Role: "viewer", Queue: "gpu/h100", DefaultPresets: []string{"large"}}
	_, err := st.Apply(t.Context(), store.PutGrant{Org: "acme", Project: "vision", User: "otto", Grant: viewer})
	require.NoError(t, err)
	d, err := eng.Authorize(t.Context(), authz.Request{Subject: "otto", Action: "runs.stop", Resource: "acme/vision", Suggest: true})
	require.NoError(t, err)
	require.NotEmpty(t, d.Suggestions)
	step := d.Suggestions[0].Steps[0]
	require.Equal(t, authz.ChangeGrant, step.Kind)
	require.Equal(t, "viewer", step.From)
	require.Equal(t, "contributor", step.Role)
	require.Equal(t, store.PutGrant{Org: "acme", Project: "vision", User: "otto", Grant: store.Grant{Role: "contributor", Queue: "gpu/h100", DefaultPresets: []string{"large"}}}, d.Suggestions[0].Changes[0])
}
