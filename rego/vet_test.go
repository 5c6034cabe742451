package rego_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/rego"
)

// TestWarningsFindNeverMatchingComparisons: an author's comparison of an input fact with a value
// outside its vocabulary (an action not in the catalog, an unknown kind or role), by ==, !=, `in`,
// startswith, endswith or glob.match, directly or through a local variable or a rule aliasing
// the fact, is reported at the literal's file:line:col with the nearest value; so is a reference
// to an input field the document does not have. The module still loads.
func TestWarningsFindNeverMatchingComparisons(t *testing.T) {
	t.Parallel()
	const head = "package teamgate.ext\n\nimport rego.v1\n\n" // the rule is on line 5
	for _, tc := range []struct {
		name, rules string
		want        []string // each warning's String(), in order
		fix         string   // the first warning's Fix
	}{
		{"==", `deny contains "x" if input.action == "runs.delte"`,
			[]string{`x.rego:5:38: input.action is compared with "runs.delte", which is not an action of the catalog (data.teamgate.actions), so this comparison never holds; did you mean "runs.delete"?`},
			`write "runs.delete", or add the action to the catalog in a JSON file of the policy`},
		{"== reversed", `deny contains "x" if "runs.delte" == input.action`,
			[]string{`x.rego:5:22: input.action is compared with "runs.delte", which is not an action of the catalog (data.teamgate.actions), so this comparison never holds; did you mean "runs.delete"?`}, ""},
		{"!=", `deny contains "x" if input.action != "runs.delte"`,
			[]string{`x.rego:5:38: input.action is compared with "runs.delte", which is not an action of the catalog (data.teamgate.actions), so this comparison always holds; did you mean "runs.delete"?`}, ""},
		{"not ==", `deny contains "x" if not input.action == "runs.delte"`,
			[]string{`x.rego:5:42: input.action is compared with "runs.delte", which is not an action of the catalog (data.teamgate.actions), so this comparison always holds; did you mean "runs.delete"?`}, ""},
		{"in a set", `deny contains "x" if input.action in {"runs.stop", "runs.delte"}`,
			[]string{`x.rego:5:52: input.action is tested for membership in a collection holding "runs.delte", which is not an action of the catalog (data.teamgate.actions): that element never matches; did you mean "runs.delete"?`}, ""},
		{"not in an array", `deny contains "x" if not input.action in ["runs.delte"]`,
			[]string{`x.rego:5:43: input.action is tested for membership in a collection holding "runs.delte", which is not an action of the catalog (data.teamgate.actions): that element never matches; did you mean "runs.delete"?`}, ""},
		{"in a constant rule", "frozen := {\"runs.stop\", \"runs.delte\"}\n\ndeny contains \"x\" if input.action in frozen",
			[]string{`x.rego:5:25: input.action is tested for membership in a collection holding "runs.delte", which is not an action of the catalog (data.teamgate.actions): that element never matches; did you mean "runs.delete"?`}, ""},
		{"startswith", `deny contains "x" if startswith(input.action, "runz.")`,
			[]string{`x.rego:5:47: startswith(input.action, "runz.") holds for no value that is an action of the catalog (data.teamgate.actions); did you mean "runs."?`},
			`write "runs.", or add the action to the catalog in a JSON file of the policy`},
		{"endswith", `deny contains "x" if endswith(input.action, ".delte")`,
			[]string{`x.rego:5:45: endswith(input.action, ".delte") holds for no value that is an action of the catalog (data.teamgate.actions); did you mean ".delete"?`}, ""},
		{"glob.match", `deny contains "x" if glob.match("runz.*", [], input.action)`,
			[]string{`x.rego:5:33: glob.match("runz.*", [], input.action) holds for no value that is an action of the catalog (data.teamgate.actions)`},
			"fix the pattern, or add the action to the catalog in a JSON file of the policy"},
		{"local variable", `deny contains "x" if { a := input.action; b := a; b == "runs.delte" }`,
			[]string{`x.rego:5:56: input.action is compared with "runs.delte", which is not an action of the catalog (data.teamgate.actions), so this comparison never holds; did you mean "runs.delete"?`}, ""},
		{"literal in a variable", `deny contains "x" if { d := "runs.delte"; input.action == d }`,
			[]string{`x.rego:5:29: input.action is compared with "runs.delte", which is not an action of the catalog (data.teamgate.actions), so this comparison never holds; did you mean "runs.delete"?`}, ""},
		{"rule aliasing the fact", "action := input.action\n\ndeny contains \"x\" if action == \"runs.delte\"",
			[]string{`x.rego:7:32: input.action is compared with "runs.delte", which is not an action of the catalog (data.teamgate.actions), so this comparison never holds; did you mean "runs.delete"?`}, ""},
		{"resource kind", `deny contains "x" if input.resource.kind == "projects"`,
			[]string{`x.rego:5:45: input.resource.kind is compared with "projects", which is not a resource kind, so this comparison never holds; did you mean "project"?`},
			`write "project"`},
		{"org role", `deny contains "x" if input.subject.org_role == "admn"`,
			[]string{`x.rego:5:48: input.subject.org_role is compared with "admn", which is not an org role (or none), so this comparison never holds; did you mean "admin"?`}, ""},
		{"destination team role", `deny contains "x" if input.destination.subject.team_role == "owner"`,
			[]string{`x.rego:5:61: input.destination.subject.team_role is compared with "owner", which is not a role of teamgate.ranks (none included), so this comparison never holds`},
			"fix the value"},
		{"weekday", `deny contains "x" if { d := time.weekday(time.now_ns()); d in {"saturday", "Sunday"}; time.weekday(time.now_ns()) != "Fri" }`,
			[]string{
				`x.rego:5:64: time.weekday(...) is tested for membership in a collection holding "saturday", which is not a day time.weekday returns (Monday … Sunday, capitalised): that element never matches; did you mean "Saturday"?`,
				`x.rego:5:118: time.weekday(...) is compared with "Fri", which is not a day time.weekday returns (Monday … Sunday, capitalised), so this comparison always holds`,
			}, `write "Saturday"`},
		{"input field", `deny contains "x" if input.resource.lables.approval == "admin-only"`,
			[]string{`x.rego:5:37: input.resource has no field "lables" (the input document: rego/README.md, "Input"), so input.resource.lables.approval is never defined and an expression reading it never holds; did you mean input.resource.labels?`},
			"write input.resource.labels"},
		{"input field of a scalar", `deny contains "x" if input.action.name == "x"`,
			[]string{`x.rego:5:35: input.action has no field "name" (the input document: rego/README.md, "Input"), so input.action.name is never defined and an expression reading it never holds`},
			"it holds one value (a string, a number or a boolean), not an object: read input.action itself"},
		{"input field of a label", `deny contains "x" if every l in input.resource.labels { l.approval == "admin-only" }`,
			[]string{`x.rego:5:59: input.resource.labels[_] has no field "approval" (the input document: rego/README.md, "Input"), so input.resource.labels[_].approval is never defined and an expression reading it never holds`},
			"it holds one value (a string, a number or a boolean), not an object: read input.resource.labels[_] itself"},
		{"input field through some", `deny contains "x" if { some t in input.resource.teams; t.name == "ml" }`,
			[]string{`x.rego:5:58: input.resource.teams[_] has no field "name" (the input document: rego/README.md, "Input"), so input.resource.teams[_].name is never defined and an expression reading it never holds`}, ""},
		{"input field through a variable", `deny contains "x" if { r := input.resource; r.lables.approval == "x" }`,
			[]string{`x.rego:5:47: input.resource has no field "lables" (the input document: rego/README.md, "Input"), so input.resource.lables.approval is never defined and an expression reading it never holds; did you mean input.resource.labels?`},
			"write input.resource.labels"},
		{"two in one rule", `deny contains "x" if { input.action == "runs.delte"; input.subjet.id == "bob" }`,
			[]string{
				`x.rego:5:40: input.action is compared with "runs.delte", which is not an action of the catalog (data.teamgate.actions), so this comparison never holds; did you mean "runs.delete"?`,
				`x.rego:5:60: input has no field "subjet" (the input document: rego/README.md, "Input"), so input.subjet.id is never defined and an expression reading it never holds; did you mean input.subject?`,
			}, ""},
		{"print", `deny contains "x" if { print("action", input.action); input.action == "runs.delete" }`,
			[]string{"x.rego:5:24: print is called here, but a policy that decides runs without its print calls (OPA's compiler erases them): its output shows only under `teamgate test` (with -v, or on a failure)"},
			"remove the call, or print from a test"},
		{"function argument", "f(x) if x == \"runs.delte\"\n\ndeny contains \"x\" if f(input.action)",
			[]string{`x.rego:5:14: input.action is compared with "runs.delte", which is not an action of the catalog (data.teamgate.actions), so this comparison never holds; did you mean "runs.delete"? (through teamgate.ext.f called with it at x.rego:7)`}, ""},
		{"function through a function", "f(x, y) if { y == 1; x != \"runs.delte\" }\n\ng(a) := f(a, 1)\n\ndeny contains \"x\" if { g(input.action); g(input.action) }",
			[]string{`x.rego:5:27: input.action is compared with "runs.delte", which is not an action of the catalog (data.teamgate.actions), so this comparison always holds; did you mean "runs.delete"? (through teamgate.ext.g called with it at x.rego:9)`}, ""},
		{"function argument and literal", "f(x, y) if x == y\n\ndeny contains \"x\" if f(\"admn\", input.subject.org_role)",
			[]string{`x.rego:7:24: input.subject.org_role is compared with "admn", which is not an org role (or none), so this comparison never holds; did you mean "admin"? (through teamgate.ext.f called with it at x.rego:7)`}, ""},
		{"function reading the fact itself", "f(x) if { x == 1; input.action == \"runs.delte\" }\n\ndeny contains \"x\" if f(1)\n\ndeny contains \"y\" if f(input.action)",
			[]string{`x.rego:5:35: input.action is compared with "runs.delte", which is not an action of the catalog (data.teamgate.actions), so this comparison never holds; did you mean "runs.delete"?`}, ""},
		{"every over a literal", `deny contains "x" if every a in ["runs.get", "runs.delte"] { a != input.action }`,
			[]string{`x.rego:5:46: input.action is compared with "runs.delte", which is not an action of the catalog (data.teamgate.actions), so this comparison always holds; did you mean "runs.delete"?`}, ""},
		{"every over team roles", `deny contains "x" if every r in input.subject.team_roles { r != "admn" }`,
			[]string{`x.rego:5:65: input.subject.team_roles[_] is compared with "admn", which is not a role of teamgate.ranks, so this comparison always holds; did you mean "admin"?`}, ""},
		{"some in team roles", `deny contains "x" if { some r in input.subject.team_roles; r == "contrib" }`,
			[]string{`x.rego:5:65: input.subject.team_roles[_] is compared with "contrib", which is not a role of teamgate.ranks, so this comparison never holds`}, ""},
		{"with a fact", `deny contains "x" if { input.action == "runs.get" with input.action as "runs.delte" }`,
			[]string{`x.rego:5:72: input.action is replaced (with) by "runs.delte", which is not an action of the catalog (data.teamgate.actions): the engine never passes it, so this expression tests a request that never comes; did you mean "runs.delete"?`}, ""},
		{"with the input", `deny contains "x" if { input.action == "runs.get" with input as {"action": "runs.get", "subject": {"org_role": "ownr", "team_roles": {"eng": "admn"}}, "resource": {"lables": {}}} }`,
			[]string{
				`x.rego:5:112: input.subject.org_role is replaced (with) by "ownr", which is not an org role (or none): the engine never passes it, so this expression tests a request that never comes; did you mean "owner"?`,
				`x.rego:5:142: input.subject.team_roles[_] is replaced (with) by "admn", which is not a role of teamgate.ranks: the engine never passes it, so this expression tests a request that never comes; did you mean "admin"?`,
				`x.rego:5:165: input.resource has no field "lables" (the input document: rego/README.md, "Input"), so input.resource.lables is never defined and an expression reading it never holds; did you mean input.resource.labels?`,
			}, ""},
		{"what the catalog and document hold", strings.Join([]string{
			`deny contains "a" if input.action in {"runs.delete", "runs.stop"}`,
			`deny contains "b" if { startswith(input.action, "runs."); endswith(input.action, ".delete"); glob.match("runs.*", [], input.action) }`,
			`deny contains "c" if { input.subject.grant == ""; input.subject.team_role == "none"; input.subject.org_role != "none" }`,
			`deny contains "d" if { input.resource.labels["example.com/tier"] == "gold"; input.attributes.run.created_by == "bob" }`,
			`deny contains "e" if { input.subject.team_roles.engineering == "admin"; input.resource.teams[_] == "x"; input.destination.resource.exists }`,
			`deny contains "f" if { some k; input.subject[k] == "x"; input.resource.kind == "project"; input.action == input.destination.subject.id }`,
			`deny contains "g" if { x := "unrelated"; x == "runs.delte" }`,
			`f(x) if x == "runs.delete"`,
			`deny contains "h" if { f(input.action); f(input.subject.id); every l in input.resource.labels { l != "runs.delte" } }`,
			`deny contains "i" if { every a in ["runs.get", "runs.delete"] { a != input.action }; some r in input.subject.team_roles; r == "admin" }`,
			`deny contains "j" if { f("x") with input.action as "runs.delete"; f("x") with input as {"action": "projects.create", "attributes": {"lables": 1}} }`,
			`deny contains "k" if { every k, v in input.attributes { v.x == k }; some t in input.resource.teams; t == "ml"; r := input.resource; r.labels.tier == "gold" }`,
		}, "\n"), nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := rego.New(t.Context(), []rego.Module{{Name: "x.rego", Source: head + tc.rules + "\n"}})
			require.NoError(t, err, "a warning never keeps a module from loading")
			var got []string
			for _, w := range p.Warnings() {
				got = append(got, w.String())
			}
			require.Equal(t, tc.want, got)
			if tc.fix != "" {
				require.True(t, strings.HasPrefix(p.Warnings()[0].Fix, tc.fix), p.Warnings()[0].Fix)
			}
		})
	}
}

// TestWarningsFollowTheCatalogData: the catalog the warnings check against is the policy's,
// with its JSON data merged: an action an author adds is known, one data removes is not.
func TestWarningsFollowTheCatalogData(t *testing.T) {
	t.Parallel()
	mod := []rego.Module{{Name: "x.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"x\" if input.action == \"artifacts.delete\"\n"}}
	p, err := rego.New(t.Context(), mod)
	require.NoError(t, err)
	require.Len(t, p.Warnings(), 1)
	require.Equal(t, rego.WarnUnknownValue, p.Warnings()[0].Code)
	p, err = rego.New(t.Context(), mod, map[string]any{"teamgate": map[string]any{"actions": map[string]any{
		"artifacts.delete": map[string]any{"kind": "project", "role": "contributor"},
	}}})
	require.NoError(t, err)
	require.Empty(t, p.Warnings())
}

// TestShippedPoliciesHaveNoWarnings: the default policy, the worked examples and the policy
// suites lint clean (a suite's modules are written to test the engine, not to be wrong; those
// that test print call it).
func TestShippedPoliciesHaveNoWarnings(t *testing.T) {
	t.Parallel()
	p, err := rego.New(t.Context(), nil)
	require.NoError(t, err)
	require.Nil(t, p.Warnings())
	dirs := append(suitePolicies(t), "../examples/customrule/policy")
	for _, dir := range dirs {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			continue
		}
		mods, data, err := rego.LoadDir(dir)
		require.NoError(t, err)
		p, err := rego.New(t.Context(), mods, data...)
		if err != nil {
			continue // a suite whose policy must not load
		}
		for _, w := range p.Warnings() {
			require.Equal(t, rego.WarnPrint, w.Code, "%s: %s", dir, w)
		}
	}
}

// TestTestRunWarnsOfUnknownRules: a test module's reference to a rule the default policy or the
// test helper does not define — through an import or as data.… — is a warning at its
// file:line:col with the nearest rule; the default policy's own tests have none.
func TestTestRunWarnsOfUnknownRules(t *testing.T) {
	t.Parallel()
	src := "package x_test\n\nimport rego.v1\n\nimport data.teamgate.authz\n\n" +
		"test_a if not authz.decison.allow\n\ntest_b if not data.teamgate.testing.defualts\n"
	run, err := rego.RunTests(t.Context(), []rego.Module{{Name: "x_test.rego", Source: src}}, rego.TestOptions{})
	require.NoError(t, err)
	require.Len(t, run.Results, 2)
	for _, r := range run.Results {
		require.True(t, r.Pass(), "the negation of an undefined rule passes: why the warning")
	}
	var got []string
	for _, w := range run.Warnings {
		require.Equal(t, rego.WarnUnknownRule, w.Code)
		got = append(got, w.String()+" | "+w.Fix)
	}
	require.Equal(t, []string{
		`x_test.rego:7:21: data.teamgate.authz defines no rule "decison", so authz.decison.allow is undefined (a test of it fails, a test of its negation passes); did you mean decision? | write decision`,
		`x_test.rego:9:37: data.teamgate.testing defines no rule "defualts", so data.teamgate.testing.defualts is undefined (a test of it fails, a test of its negation passes); did you mean defaults? | write defaults`,
	}, got)

	run, err = rego.RunTests(t.Context(), rego.DefaultTests(), rego.TestOptions{})
	require.NoError(t, err)
	require.Empty(t, run.Warnings)
}

// TestTestRunWarnsOfWithValues: a test's `with input... as` literal that the engine never
// passes — a value outside a fact's vocabulary (the catalog with the policy's data merged), a
// field the input does not have — is a warning at its file:line:col: the test checks a request
// that never comes.
func TestTestRunWarnsOfWithValues(t *testing.T) {
	t.Parallel()
	src := "package x_test\n\nimport rego.v1\n\nimport data.teamgate.authz\n\n" +
		"test_a if not authz.decision.allow with input.action as \"runs.delte\"\n\n" +
		"test_b if not authz.decision.allow with input as {\"action\": \"artifacts.delete\", \"subjet\": {}}\n"
	run, err := rego.RunTests(t.Context(), []rego.Module{{Name: "x_test.rego", Source: src}}, rego.TestOptions{},
		map[string]any{"teamgate": map[string]any{"actions": map[string]any{"artifacts.delete": map[string]any{"kind": "project", "role": "contributor"}}}})
	require.NoError(t, err)
	var got []string
	for _, w := range run.Warnings {
		got = append(got, string(w.Code)+" "+w.String())
	}
	require.Equal(t, []string{
		`unknown_value x_test.rego:7:57: input.action is replaced (with) by "runs.delte", which is not an action of the catalog (data.teamgate.actions): the engine never passes it, so this expression tests a request that never comes; did you mean "runs.delete"?`,
		`unknown_field x_test.rego:9:81: input has no field "subjet" (the input document: rego/README.md, "Input"), so input.subjet is never defined and an expression reading it never holds; did you mean input.subject?`,
	}, got)
}

// suitePolicies are the directories of the policy suites that hold a policy, as
// internal/conformance reads them: a suite run under the default policy on its own data, or
// whose data file must be refused, has none (Suite.Policy "").
func suitePolicies(t *testing.T) []string {
	t.Helper()
	all, err := conformance.Suites()
	require.NoError(t, err)
	var dirs []string
	for _, s := range all {
		if s.Policy != "" {
			dirs = append(dirs, s.Policy)
		}
	}
	require.NotEmpty(t, dirs)
	return dirs
}
