package authz

import (
	"fmt"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
	"github.com/teamgate/teamgate/store"
)

// trackedDeps returns the store and the Deps of reading vera's facts on acme/nlp.
func trackedDeps(t testing.TB) (*store.Store, store.Deps) {
	st, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.LoadFile(t.Context(), "../testdata/conformance/acme.yaml")
	require.NoError(t, err)
	var d store.Deps
	require.NoError(t, st.View(func(r store.Reader) error {
		r = r.Track(&d)
		r.Org("acme")
		r.OrgRole("acme", "vera")
		r.Project("acme", "nlp")
		return nil
	}))
	return st, d
}

func TestEntryEncoding(t *testing.T) {
	t.Parallel()
	p, err := rego.New(t.Context(), nil)
	require.NoError(t, err)
	st, deps := trackedDeps(t)
	d := Decision{Allowed: true, Role: "contributor", Reasons: []Reason{{Code: "team_role", Message: "vera is contributor"}}}
	raw := encodeEntry(p.Fingerprint(), &deps, d)
	c, ok := decodeEntry(raw, p, st)
	require.True(t, ok)
	require.Equal(t, d, c.dec)
	require.Equal(t, 3, c.deps.Len())
	require.True(t, c.deps.Current())
	_, err = st.Apply(t.Context(), store.PutMember{Org: "acme", User: "vera", Role: "admin"})
	require.NoError(t, err)
	require.False(t, c.deps.Current(), "the decoded entry watches the stamps it was encoded with")

	other, err := rego.New(t.Context(), []rego.Module{{Name: "x.rego", Source: "package x\n\ny := 1\n"}})
	require.NoError(t, err)
	_, ok = decodeEntry(raw, other, st)
	require.False(t, ok, "another policy's entry")
	for i := range raw {
		_, _ = decodeEntry(raw[:i], p, st) // truncated: never panics
	}
}

func FuzzDecodeEntry(f *testing.F) {
	p, err := rego.New(f.Context(), nil)
	if err != nil {
		f.Fatal(err)
	}
	st, deps := trackedDeps(f)
	f.Add(encodeEntry(p.Fingerprint(), &deps, Decision{Role: "none", Reasons: []Reason{{Code: "x"}}}))
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = decodeEntry(raw, p, st)
	})
}

// concreteInput is another input with the abstract a: other names, several teams, roles in
// teams the project does not have.
func concreteInput(a abstract, kind scope.Kind) ast.Value {
	roles := ast.NewObject(ast.Item(ast.StringTerm("elsewhere"), ast.StringTerm("admin")))
	if a.teamRank > 0 {
		roles.Insert(ast.StringTerm("vision-team"), ast.StringTerm(rankRole[a.teamRank]))
		if a.teamRank > 1 {
			roles.Insert(ast.StringTerm("second"), ast.StringTerm(rankRole[a.teamRank-1]))
		}
	}
	subject := ast.ObjectTerm(
		ast.Item(ast.StringTerm("id"), ast.StringTerm("someone-else")),
		ast.Item(ast.StringTerm("org_role"), ast.StringTerm(a.orgRole)),
		ast.Item(ast.StringTerm("grant"), ast.StringTerm(a.grant)),
		ast.Item(ast.StringTerm("team_roles"), ast.NewTerm(roles)),
	)
	var resource *ast.Term
	switch kind {
	case scope.KindProject:
		var teams []string
		if a.restricted {
			teams = []string{"second", "vision-team", "third"}
		}
		resource = ast.NewTerm(projectFacts{exists: a.exists, org: "acme", team: "second", project: "vision", teams: teams, restricted: a.restricted}.value())
	default:
		team := ""
		if kind == scope.KindTeam {
			team = "vision-team"
		}
		resource = ast.ObjectTerm(
			ast.Item(ast.StringTerm("kind"), ast.StringTerm(string(kind))),
			ast.Item(ast.StringTerm("org"), ast.StringTerm("acme")),
			ast.Item(ast.StringTerm("team"), ast.StringTerm(team)),
			ast.Item(ast.StringTerm("exists"), ast.BooleanTerm(a.exists)),
			ast.Item(ast.StringTerm("missing"), ast.StringTerm("gone")),
		)
	}
	return ast.NewObject(
		ast.Item(ast.StringTerm("subject"), subject),
		ast.Item(ast.StringTerm("action"), ast.StringTerm(a.action)),
		ast.Item(ast.StringTerm("resource"), resource),
		ast.Item(ast.StringTerm("attributes"), ast.ObjectTerm()),
	)
}

// TestCompiledPathIsTheDefaultPolicy enumerates the table's whole key space for one action of
// each distinct catalog entry and checks that the default policy gives the canonical input and
// a differently named concrete input with the same facts the same allow, role and reason codes:
// the policy reads nothing the table does not key on.
func TestCompiledPathIsTheDefaultPolicy(t *testing.T) {
	t.Parallel()
	p, err := rego.New(t.Context(), nil)
	require.NoError(t, err)
	seen := map[string]bool{}
	var actions []string
	for _, name := range p.Actions() {
		spec, _ := p.Action(name)
		key := fmt.Sprintf("%s %s %v %v %s %s", spec.Kind, spec.Role, spec.OrgRoles, spec.ManagesMembers, spec.DestinationRole, spec.OwnRunRole)
		if !seen[key] {
			seen[key] = true
			actions = append(actions, name)
		}
	}
	require.GreaterOrEqual(t, len(actions), 8)
	orgRoles := append([]string{"none"}, "owner", "manager", "admin", "member", "viewer", "billing", "outsider")
	grants := []string{"", "viewer", "member", "contributor", "admin"}
	cells := 0
	for _, action := range actions {
		spec, _ := p.Action(action)
		kind := scope.Kind(spec.Kind)
		for _, exists := range []bool{true, false} {
			for _, orgRole := range orgRoles {
				for _, grant := range grants {
					for rank := int8(0); rank <= 4; rank++ {
						for _, restricted := range []bool{false, true} {
							if kind != scope.KindProject && (grant != "" || restricted) {
								continue // not facts of org and team resources
							}
							a := abstract{action: action, exists: exists, orgRole: orgRole, grant: grant, teamRank: rank, restricted: restricted}
							want, err := p.Eval(t.Context(), canonicalInput(a, kind))
							require.NoError(t, err)
							got, err := p.Eval(t.Context(), concreteInput(a, kind))
							require.NoError(t, err)
							require.Equal(t, want.Allow, got.Allow, "%+v", a)
							require.Equal(t, want.Role, got.Role, "%+v", a)
							require.Equal(t, codes(want.Reasons), codes(got.Reasons), "%+v", a)
							cells++
						}
					}
				}
			}
		}
	}
	require.Greater(t, cells, 1000)
}

func codes(rs []rego.Reason) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Code)
	}
	return out
}
