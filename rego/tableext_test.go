package rego_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	opa "github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/racedetect"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
)

const extHeader = "package teamgate.ext\n\nimport rego.v1\n\n"

// init registers a built-in of the program's own, as a host may (OPA's rego.RegisterBuiltin1),
// before any test runs: OPA's registry is a global map that evaluations read.
func init() {
	opa.RegisterBuiltin1(&opa.Function{Name: "teamgate_test.echo", Decl: types.NewFunction(types.Args(types.S), types.S)},
		func(_ opa.BuiltinContext, a *ast.Term) (*ast.Term, error) { return a, nil })
}

// authorData is the static data the random modules read beside the default data.
func authorData() map[string]any {
	return map[string]any{"mycompany": map[string]any{
		"frozen_roles": []any{"member", "billing"},
		"rank":         map[string]any{"none": 0, "viewer": 1, "member": 2, "contributor": 3, "admin": 4},
		"note":         "from data",
	}}
}

// randomAuthorModule is an author's module of 1 to 4 deny or allow rules over the table's key
// paths and static data, from a small grammar: conditions on each key fact (equality, `in`,
// negation, a data lookup keyed by a fact, a built-in), messages constant, read from data or
// formatted from the facts, a helper rule of another package, and now and then a rule that fails
// (a conversion error, a conflict) on some keys only.
func randomAuthorModule(rng *rand.Rand) []rego.Module {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	roles := []string{"none", "viewer", "member", "contributor", "admin"}
	grants := []string{"", "viewer", "member", "contributor", "admin"}
	orgRoles := []string{"none", "owner", "manager", "admin", "member", "viewer", "billing", "outsider"}
	var cond func(lib bool) string
	cond = func(lib bool) string {
		c := ""
		n := rng.IntN(13)
		if lib && n == 11 {
			n = 0 // the helper does not refer to itself
		}
		switch n {
		case 0:
			c = fmt.Sprintf("input.subject.org_role == %q", pick(orgRoles...))
		case 1:
			c = "input.subject.org_role in data.mycompany.frozen_roles"
		case 2:
			c = fmt.Sprintf("input.subject.grant == %q", pick(grants...))
		case 3:
			c = "input.subject.break_glass == true"
		case 4:
			c = fmt.Sprintf("input.subject.team_role == %q", pick(roles...))
		case 5:
			c = "input.resource.restricted"
		case 6:
			c = fmt.Sprintf("input.resource.kind == %q", pick("org", "team", "project"))
		case 7:
			c = fmt.Sprintf("input.action == %q", pick("runs.stop", "project.get", "team.update", "org.get", "runs.delete"))
		case 8:
			c = fmt.Sprintf("startswith(input.action, %q)", pick("runs.", "project", "team"))
		case 9:
			c = fmt.Sprintf("data.mycompany.rank[input.subject.team_role] >= %d", rng.IntN(5))
		case 10:
			c = "data.teamgate.ranks[input.subject.grant] > data.teamgate.ranks[input.subject.team_role]"
		case 11:
			c = "data.teamgate.ext.lib.elevated"
		case 12:
			c = "input.resource.exists"
		}
		if rng.IntN(4) == 0 {
			c = "not " + c
		}
		return c
	}
	msg := func() string {
		switch rng.IntN(4) {
		case 0:
			return fmt.Sprintf("%q", pick("frozen", "closed for audit", ""))
		case 1:
			return "data.mycompany.note"
		case 2:
			return `sprintf("%s %s on %s: grant %q%v, team %s, restricted %v", [input.subject.org_role, input.action, input.resource.kind, input.subject.grant, input.subject.break_glass, input.subject.team_role, input.resource.restricted])`
		}
		return `concat("/", [input.subject.org_role, input.subject.team_role])`
	}
	var b strings.Builder
	b.WriteString(extHeader)
	for i := range 1 + rng.IntN(4) {
		head := pick("deny", "allow")
		fmt.Fprintf(&b, "%s contains m%d if {\n", head, i)
		for range 1 + rng.IntN(3) {
			fmt.Fprintf(&b, "\t%s\n", cond(false))
		}
		fmt.Fprintf(&b, "\tm%d := %s\n}\n\n", i, msg())
	}
	switch rng.IntN(6) {
	case 0: // a conversion that fails on some keys
		fmt.Fprintf(&b, "deny contains x if {\n\t%s\n\tx := sprintf(\"%%d\", [to_number(input.subject.org_role)])\n}\n", cond(false))
	case 1: // a conflict on some keys
		fmt.Fprintf(&b, "one := 1 if %s\n\none := 2 if %s\n\ndeny contains \"conflict\" if one > 0\n", cond(false), cond(false))
	}
	lib := "package teamgate.ext.lib\n\nimport rego.v1\n\n" +
		fmt.Sprintf("elevated if {\n\tinput.subject.grant != \"\"\n\t%s\n}\n", cond(true))
	return []rego.Module{{Name: "ext.rego", Source: b.String()}, {Name: "lib.rego", Source: lib}}
}

// cellWith is a verdict's contents with the policy's own messages.
type cellWith struct {
	cellOf
	Messages []string
}

// TestAuthorTableIsThePolicy: for random authors' modules over the table's key paths and data,
// every key of the table's exact key space (every fact with every other, whatever the kind) and
// every action of a distinct catalog entry: the cell equals full evaluation of a differently named
// input with those facts — allow, role, codes, limits and the policy's own messages — and a cell
// whose evaluation fails is a failure on both.
func TestAuthorTableIsThePolicy(t *testing.T) {
	t.Parallel()
	n := 16
	if testing.Short() || racedetect.Enabled {
		// Four modules still draw from every production of the grammar; under the race detector
		// OPA's evaluator costs 20–50× more (16 modules made half of rego's CI time), and the
		// concurrency it is there for is not exercised here. go test ./... runs all 16.
		n = 4
	}
	rng := rand.New(rand.NewPCG(19, 9))
	failing := 0
	orgRoles := []string{"none", "owner", "manager", "admin", "member", "viewer", "billing", "outsider"}
	roles := []string{"", "viewer", "member", "contributor", "admin"}
	for m := range n {
		mods := randomAuthorModule(rng)
		data := []map[string]any{authorData()}
		if m%2 == 1 {
			data = append(data, reRanked())
		}
		p, err := rego.New(t.Context(), mods, data...)
		require.NoError(t, err, mods[0].Source)
		require.NotNil(t, p.Table(), "%s: %s", p.NoTable(), mods[0].Source)
		require.Empty(t, p.NoTable())
		failures, cells := 0, 0
		for _, action := range []string{"runs.stop", "project.get", "runs.transfer", "project.access", "team.update", "org.get", "members.manage"} {
			spec, ok := p.Action(action)
			require.True(t, ok, action)
			for _, exists := range []bool{true, false} {
				for _, orgRole := range orgRoles {
					for _, grant := range roles {
						for _, teamRole := range roles {
							for _, restricted := range []bool{false, true} {
								for _, breakGlass := range []bool{false, true} {
									if !exists && (orgRole != "none" || grant != "" || teamRole != "" || restricted || breakGlass) {
										continue // a missing resource has no facts
									}
									k := factKey{Action: action, Exists: exists, OrgRole: orgRole, Grant: grant, TeamRole: teamRole, Restricted: restricted, BreakGlass: breakGlass}
									in := concrete(p, k, spec.Kind)
									want, wantErr := p.Eval(t.Context(), &in)
									got, err := cellWithMessages(t, p, k)
									cells++
									if wantErr != nil {
										failures++
										require.EqualError(t, err, wantErr.Error(), "%+v: the cell fails as full evaluation does\n%s", k, mods[0].Source)
										continue
									}
									require.NoError(t, err, "%+v\n%s", k, mods[0].Source)
									msgs := make([]string, len(want.Reasons))
									for i, r := range want.Reasons {
										if r.Code != rego.CodeNotFound { // input.resource.missing: the engine writes it from the request
											msgs[i] = r.Message
										}
									}
									require.Equal(t, cellWith{cellOf{want.Allow, want.Role, codes(want.Reasons), want.Limits}, msgs}, got, "%+v\n%s", k, mods[0].Source)
								}
							}
						}
					}
				}
			}
		}
		require.Greater(t, cells, 5000)
		t.Logf("module %d: %d cells, %d failing", m, cells, failures)
		failing += min(failures, 1)
	}
	if n == 16 { // the 4 modules of -short and -race need not draw a failing one
		require.NotZero(t, failing, "some module fails on some keys")
	}
}

func cellWithMessages(t *testing.T, p *rego.Policy, k factKey) (cellWith, error) {
	t.Helper()
	spec, _ := p.Spec(k.Action)
	c := codesOf(t, k)
	v, err := p.Table().VerdictOfCodes(t.Context(), spec, &c, 0)
	if err != nil {
		return cellWith{}, err
	}
	msgs := make([]string, v.NumCodes())
	for i := range msgs {
		msgs[i] = v.Message(i)
	}
	return cellWith{contents(v), msgs}, nil
}

// TestAuthorTableOnOff: what keeps the table for an author's module and what turns it off, each
// said by NoTable with the module's file and line. Every module here would decide the same on the
// table's key as on the request (the rule ends in a key fact); the one thing named turns it off.
func TestAuthorTableOnOff(t *testing.T) {
	t.Parallel()
	on := map[string]string{
		"key facts":       `deny contains "x" if { input.subject.org_role == "member"; input.action == "runs.stop"; input.subject.team_role != "admin"; not input.resource.restricted; input.subject.grant == ""; not input.subject.break_glass; input.resource.kind == "project"; input.resource.exists }`,
		"data":            `deny contains data.mycompany.note if input.subject.org_role in data.mycompany.frozen_roles`,
		"default data":    `deny contains "x" if data.teamgate.ranks[input.subject.team_role] > 2`,
		"own functions":   "f(r) := upper(r)\n\n" + `deny contains f(input.subject.org_role) if true`,
		"import":          "import input.subject as s\n\n" + `deny contains "x" if s.org_role == "member"`,
		"every over data": `deny contains "x" if every r in data.mycompany.frozen_roles { r != input.subject.org_role }`,
		"comprehension":   `deny contains "x" if count([r | some r in data.mycompany.frozen_roles; r == input.subject.org_role]) > 0`,
		"no input at all": `allow contains "always" if true`,
	}
	off := map[string]string{
		"subject id":                 `deny contains "x" if input.subject.id == "bob"`,
		"labels":                     `deny contains "x" if input.resource.labels.frozen == "true"`,
		"attributes":                 `deny contains "x" if input.attributes.ticket == ""`,
		"destination":                `deny contains "x" if input.destination.resource.exists`,
		"resource missing":           `deny contains input.resource.missing if true`,
		"team roles":                 `deny contains "x" if input.subject.team_roles.t1 == "admin"`,
		"project name":               `deny contains "x" if input.resource.project == "vision"`,
		"dynamic key":                `deny contains "x" if { k := concat("_", ["org", "role"]); input.subject[k] == "member" }`,
		"iteration":                  `deny contains "x" if some k, v in input.subject`,
		"whole subject":              `deny contains "x" if count(input.subject) > 100`,
		"whole input":                `deny contains "x" if input == {}`,
		"object.get":                 `deny contains "x" if object.get(input, ["subject", "org_role"], "") == "member"`,
		"walk":                       `deny contains "x" if walk(input, [["subject", "id"], "bob"])`,
		"function taking input":      "f(x) := x.subject.org_role\n\n" + `deny contains "x" if f(input) == "member"`,
		"function taking subject":    "f(s) := s.org_role\n\n" + `deny contains "x" if f(input.subject) == "member"`,
		"comprehension over subject": `deny contains "x" if count([v | some v in input.subject; v == "bob"]) > 0`,
		"every over subject":         `deny contains "x" if every v in input.subject { v != "bob" }`,
		"data by input":              `deny contains "x" if data.mycompany[input.subject.id]`,
		"default rules":              `deny contains "x" if data.teamgate.authz.team_role == "admin"`,
		"time.now_ns":                `deny contains "x" if { time.now_ns() > 0; input.subject.org_role == "member" }`,
		"rand.intn":                  `deny contains "x" if { rand.intn("k", 2) == 0; input.subject.org_role == "member" }`,
		"uuid":                       `deny contains uuid.rfc4122("k") if input.subject.org_role == "member"`,
		"opa.runtime":                `deny contains "x" if { opa.runtime().env.X == "1"; input.subject.org_role == "member" }`,
		"x509 verification":          `deny contains "x" if { crypto.x509.parse_and_verify_certificates("")[0]; input.subject.org_role == "member" }`,
		"print":                      `deny contains "x" if { print("asked"); input.subject.org_role == "member" }`,
		"with input":                 "member if input.subject.org_role == \"member\"\n\n" + `deny contains "x" if member with input.subject.org_role as "member"`,
		"with data":                  `deny contains "x" if { input.subject.org_role in data.mycompany.frozen_roles with data.mycompany.frozen_roles as ["viewer"] }`,
		"with built-in":              `deny contains "x" if { upper(input.subject.org_role) == "MEMBER" with upper as lower }`,
	}
	// A built-in the program registered (init, below): its determinism is unknown.
	off["custom built-in"] = `deny contains "x" if teamgate_test.echo(input.subject.org_role) == "member"`
	for name, src := range on {
		p, err := rego.New(t.Context(), []rego.Module{{Name: "on.rego", Source: extHeader + src + "\n"}}, authorData())
		require.NoError(t, err, name)
		require.NotNil(t, p.Table(), "%s: %s", name, p.NoTable())
		require.Empty(t, p.NoTable(), name)
		require.True(t, p.HasModules() && p.Extended(), name)
	}
	for name, src := range off {
		p, err := rego.New(t.Context(), []rego.Module{{Name: "off.rego", Source: extHeader + src + "\n"}}, authorData())
		require.NoError(t, err, name)
		require.Nil(t, p.Table(), name)
		require.Contains(t, p.NoTable(), "off.rego:", name)
		t.Logf("%s: %s", name, p.NoTable())
	}
	// Data as a whole, or by a computed key, under data.teamgate could reach the default rules:
	// OPA refuses it (a recursion through data.teamgate.authz.decision), before the table is asked.
	for _, src := range []string{
		`deny contains "x" if data.teamgate[input.subject.org_role]`,
		`deny contains "x" if count(data) > 100`,
		`deny contains "x" if count(data.teamgate) > 100`,
	} {
		p, err := rego.New(t.Context(), []rego.Module{{Name: "off.rego", Source: extHeader + src + "\n"}})
		require.ErrorContains(t, err, "rego_recursion_error", src)
		require.Nil(t, p)
	}
	// A rule of a helper package counts as the deciding module's own: its reads are checked too.
	p, err := rego.New(t.Context(), []rego.Module{
		{Name: "ext.rego", Source: extHeader + `deny contains "x" if data.teamgate.ext.lib.named` + "\n"},
		{Name: "lib.rego", Source: "package teamgate.ext.lib\n\nimport rego.v1\n\nnamed if input.subject.id == \"bob\"\n"},
	})
	require.NoError(t, err)
	require.Nil(t, p.Table())
	require.Contains(t, p.NoTable(), "lib.rego:")
	// Test modules never decide: they read what they like.
	p, err = rego.New(t.Context(), []rego.Module{{Name: "x_test.rego", Source: extHeader + `test_x if input.subject.id == "bob"` + "\n"}})
	require.NoError(t, err)
	require.NotNil(t, p.Table())
	require.False(t, p.HasModules() || p.Extended())
	// Data that defines teamgate.ext keeps the table (static), and its messages are the cells'.
	p, err = rego.New(t.Context(), nil, map[string]any{"teamgate": map[string]any{"ext": map[string]any{"deny": []any{"frozen"}}}})
	require.NoError(t, err)
	require.NotNil(t, p.Table())
	require.True(t, p.Extended() && !p.HasModules())
	got, err := cellWithMessages(t, p, factKey{Action: "runs.get", Exists: true, OrgRole: "owner"})
	require.NoError(t, err)
	require.Equal(t, []string{"frozen"}, got.Messages)
	require.Equal(t, []rego.Code{rego.CodeExtensionDeny}, got.Codes)
}

// TestAuthorCellFailuresAreNotStored: a cell whose evaluation fails (here: past its budget once)
// denies with the failure and is computed again on the next call, which may succeed: a failure
// on a loaded moment does not stick. A missing resource never evaluates the authors' rules.
func TestAuthorCellFailuresAreNotStored(t *testing.T) {
	t.Parallel()
	// Slow for org members only: thousands of times the budget below, a blink without it.
	p, err := rego.New(t.Context(), []rego.Module{{Name: "slow.rego", Source: extHeader +
		`deny contains "slow" if { input.subject.org_role == "member"; count([1 | some i in numbers.range(1, 1000); some j in numbers.range(1, 100); i == j + 10000000]) > 0 }` + "\n" +
		`deny contains "boom" if { input.subject.org_role == "viewer"; to_number("x") }` + "\n"}})
	require.NoError(t, err)
	require.NotNil(t, p.Table())
	spec, _ := p.Spec("runs.stop")
	c := codesOf(t, factKey{Action: "runs.stop", Exists: true, OrgRole: "member"})
	_, err = p.Table().VerdictOfCodes(t.Context(), spec, &c, 1) // 1 ns: spent before the first check
	require.ErrorIs(t, err, rego.ErrBudget)
	v, err := p.Table().VerdictOfCodes(t.Context(), spec, &c, 0) // computed again, with no budget
	require.NoError(t, err)
	require.Equal(t, []rego.Code{rego.CodeOrgRole}, v.Codes(), "the slow rule holds for no request: the default verdict")
	c = codesOf(t, factKey{Action: "runs.stop", Exists: true, OrgRole: "viewer"})
	for range 2 {
		_, err = p.Table().VerdictOfCodes(t.Context(), spec, &c, 0)
		var re *rego.Error
		require.True(t, errors.As(err, &re), "%v", err)
		in := concrete(p, factKey{Action: "runs.stop", Exists: true, OrgRole: "viewer"}, scope.KindProject)
		_, full := p.Eval(t.Context(), &in)
		require.EqualError(t, err, full.Error(), "the cell fails as full evaluation does")
	}
	// A rule that fails on every request: a missing resource is not_found before it runs.
	p, err = rego.New(t.Context(), []rego.Module{{Name: "boom.rego", Source: extHeader + `deny contains "boom" if to_number("x")` + "\n"}})
	require.NoError(t, err)
	c = codesOf(t, factKey{Action: "runs.stop"})
	v, err = p.Table().VerdictOfCodes(t.Context(), spec, &c, 0)
	require.Error(t, err, "another policy's spec")
	spec, _ = p.Spec("runs.stop")
	v, err = p.Table().VerdictOfCodes(t.Context(), spec, &c, 0)
	require.NoError(t, err, "a missing resource is not_found before any author's rule runs")
	require.Equal(t, []rego.Code{rego.CodeNotFound}, v.Codes())
	c = codesOf(t, factKey{Action: "runs.stop", Exists: true, OrgRole: "owner"})
	_, err = p.Table().VerdictOfCodes(t.Context(), spec, &c, 0)
	require.Error(t, err)
}
