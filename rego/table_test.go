package rego_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
)

// reRanked swaps member and contributor and maps org members to viewer: every path must follow.
func reRanked() map[string]any {
	return map[string]any{"teamgate": map[string]any{
		"ranks":    map[string]any{"none": 0, "viewer": 1, "contributor": 2, "member": 3, "admin": 4},
		"org_base": map[string]any{"member": "viewer"},
	}}
}

// factKey is a table cell's facts by name: what the default rules read of a request without
// attributes (the action, whether the resource exists, the subject's org role, grant and
// highest team role, whether the project restricts).
type factKey struct {
	Action     string
	Exists     bool
	OrgRole    string // "none" for non-members
	Grant      string
	BreakGlass bool
	TeamRole   string
	Restricted bool
}

// codesOf is k as role codes: its team role the only one held.
func codesOf(t *testing.T, k factKey) rego.Codes {
	t.Helper()
	o, ok1 := rego.OrgRoleCode(k.OrgRole)
	g, ok2 := rego.RoleCode(k.Grant)
	tr, ok3 := rego.RoleCode(k.TeamRole)
	require.True(t, ok1 && ok2 && ok3, "%+v", k)
	c := rego.Codes{Exists: k.Exists, OrgRole: o, Grant: g, BreakGlass: k.BreakGlass, Restricted: k.Restricted}
	if tr > 0 {
		c.TeamRoles = 1 << (tr - 1)
	}
	return c
}

// cellOf is a verdict's contents, copied out of the read-only view.
type cellOf struct {
	Allow  bool
	Role   string
	Codes  []rego.Code
	Limits []rego.Limit
}

func contents(v rego.VerdictView) cellOf {
	return cellOf{Allow: v.Allow(), Role: v.Role(), Codes: v.Codes(), Limits: v.Limits()}
}

// verdictOf asks p's table for k's cell, as the engine does: the action by its Spec (the zero
// Spec for an action outside the catalog), the roles as codes.
func verdictOf(t *testing.T, p *rego.Policy, k factKey) (cellOf, error) {
	t.Helper()
	spec, _ := p.Spec(k.Action)
	c := codesOf(t, k)
	v, err := p.Table().VerdictOfCodes(t.Context(), spec, &c, 0)
	if err != nil {
		return cellOf{}, err
	}
	return contents(v), nil
}

// concrete is an input with the key's facts under other names: several project teams, roles
// in teams the project does not have, a lower role in another of its teams, labels (no default
// rule reads them, so the table keys on none).
func concrete(p *rego.Policy, k factKey, kind scope.Kind) rego.Input {
	roles := map[string]string{"elsewhere": "admin"}
	if k.TeamRole != "" {
		roles["vision-team"] = k.TeamRole
		top, _ := p.Rank(k.TeamRole)
		for _, r := range []string{"viewer", "member", "contributor", "admin"} {
			if n, _ := p.Rank(r); n < top {
				roles["second"] = r
				break
			}
		}
	}
	in := rego.Input{
		Subject:  rego.Subject{ID: "someone-else", OrgRole: k.OrgRole, Grant: k.Grant, BreakGlass: k.BreakGlass, TeamRoles: roles},
		Action:   k.Action,
		Resource: rego.Resource{Kind: kind, Org: "acme", Exists: k.Exists, Teams: []string{}, Restricted: k.Restricted},
	}
	if k.Exists && kind == scope.KindProject {
		in.Resource.Labels = map[string]string{"approval": "admin-only", "frozen": "true", "tier": "gold"}
	}
	if !k.Exists {
		in.Resource.Missing = "gone"
	}
	switch kind {
	case scope.KindTeam:
		in.Resource.Team = "vision-team"
	case scope.KindProject:
		in.Resource.Team, in.Resource.Project = "second", "vision"
		if k.Restricted || k.TeamRole != "" { // an open project's teams are read by no rule
			in.Resource.Teams = []string{"second", "vision-team", "third"}
		}
	}
	return in
}

func codes(rs []rego.Reason) []rego.Code {
	out := []rego.Code{}
	for _, r := range rs {
		out = append(out, r.Code)
	}
	return out
}

// TestTableIsThePolicy enumerates the table's whole key space for one action of each distinct
// catalog entry, with the default data and with re-ranked data, and checks that every cell
// equals full evaluation of a differently named concrete input with the same facts: the rules
// read nothing the table does not key on, and the table follows the data.
func TestTableIsThePolicy(t *testing.T) {
	t.Parallel()
	for name, data := range map[string][]map[string]any{"default": nil, "re-ranked": {reRanked()}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := rego.New(t.Context(), nil, data...)
			require.NoError(t, err)
			table := p.Table()
			require.NotNil(t, table, "data alone keeps the table")
			seen := map[string]bool{}
			var actions []string
			for _, a := range p.Actions() {
				spec, _ := p.Action(a)
				key := fmt.Sprintf("%s %s %v %v %s %s", spec.Kind, spec.Role, spec.OrgRoles, spec.ManagesMembers, spec.DestinationRole, spec.OwnRunRole)
				if !seen[key] {
					seen[key] = true
					actions = append(actions, a)
				}
			}
			require.GreaterOrEqual(t, len(actions), 8)
			orgRoles := []string{"none", "owner", "manager", "admin", "member", "viewer", "billing", "outsider"}
			roles := []string{"", "viewer", "member", "contributor", "admin"}
			cells := 0
			for _, action := range actions {
				spec, _ := p.Action(action)
				for _, exists := range []bool{true, false} {
					for _, orgRole := range orgRoles {
						for _, grant := range roles {
							for _, teamRole := range roles {
								for _, restricted := range []bool{false, true} {
									for _, breakGlass := range []bool{false, true} {
										if spec.Kind != scope.KindProject && (grant != "" || restricted || breakGlass) || grant == "" && breakGlass {
											continue // not facts of org and team resources; break-glass is a kind of grant
										}
										k := factKey{Action: action, Exists: exists, OrgRole: orgRole, Grant: grant, TeamRole: teamRole, Restricted: restricted, BreakGlass: breakGlass}
										got, err := verdictOf(t, p, k)
										require.NoError(t, err)
										in := concrete(p, k, spec.Kind)
										want, err := p.Eval(t.Context(), &in)
										require.NoError(t, err)
										require.Equal(t, want.Allow, got.Allow, "%+v", k)
										require.Equal(t, want.Role, got.Role, "%+v", k)
										require.Equal(t, codes(want.Reasons), got.Codes, "%+v", k)
										require.Equal(t, want.Limits, got.Limits, "%+v", k)
										cells++
									}
								}
							}
						}
					}
				}
			}
			require.Greater(t, cells, 1000)
		})
	}
}

// TestTableFollowsData checks single cells that re-ranking changes, the way listings ask.
func TestTableFollowsData(t *testing.T) {
	t.Parallel()
	def, err := rego.New(t.Context(), nil)
	require.NoError(t, err)
	rr, err := rego.New(t.Context(), nil, reRanked())
	require.NoError(t, err)
	for _, c := range []struct {
		key      factKey
		def, rer cellOf
	}{
		{factKey{Action: "runs.stop", Exists: true, OrgRole: "viewer", TeamRole: "member", Restricted: true},
			cellOf{Allow: false, Role: "member", Codes: []rego.Code{rego.CodeInsufficientRole}},
			cellOf{Allow: true, Role: "member", Codes: []rego.Code{rego.CodeTeamRole}}},
		{factKey{Action: "runs.stop", Exists: true, OrgRole: "member"},
			cellOf{Allow: true, Role: "contributor", Codes: []rego.Code{rego.CodeOrgRole}},
			cellOf{Allow: false, Role: "viewer", Codes: []rego.Code{rego.CodeInsufficientRole}}},
		{factKey{Action: "project.get", Exists: true, OrgRole: "owner", Restricted: true},
			cellOf{Allow: true, Role: "admin", Codes: []rego.Code{rego.CodeOrgOverride}},
			cellOf{Allow: true, Role: "admin", Codes: []rego.Code{rego.CodeOrgOverride}}},
	} {
		got, err := verdictOf(t, def, c.key)
		require.NoError(t, err)
		require.Equal(t, c.def, got, "default %+v", c.key)
		got, err = verdictOf(t, rr, c.key)
		require.NoError(t, err)
		require.Equal(t, c.rer, got, "re-ranked %+v", c.key)
	}
	_, err = verdictOf(t, def, factKey{Action: "runs.fly"})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
}

// TestTableOnlyForTheDefaultRules: the table keys on role facts only, so a policy with an
// author's module that reads another fact — the subject's id, the project's labels — has none,
// and every decision is evaluated on the request's own input (TestAuthorTableOnOff lists what
// keeps it and what turns it off).
func TestTableOnlyForTheDefaultRules(t *testing.T) {
	t.Parallel()
	for _, src := range []string{
		"allow contains \"x\" if input.subject.id == \"bob\"\n",
		"deny contains \"admin-only\" if input.resource.labels.approval == \"admin-only\"\n",
	} {
		p, err := rego.New(t.Context(), []rego.Module{{Name: "x.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\n" + src}})
		require.NoError(t, err)
		require.Nil(t, p.Table(), "authors' modules may read any fact: %s", src)
	}
}

// TestLabelsReachThePolicy: input.resource.labels is the project's labels, {} when it has none.
func TestLabelsReachThePolicy(t *testing.T) {
	t.Parallel()
	p, err := rego.New(t.Context(), []rego.Module{{Name: "x.rego", Source: `package teamgate.ext

import rego.v1

deny contains "labels are an object" if not is_object(input.resource.labels)

deny contains "admin-only" if input.resource.labels["example.com/approval"] == "admin-only"
`}})
	require.NoError(t, err)
	for _, c := range []struct {
		labels map[string]string
		allow  bool
	}{
		{nil, true},
		{map[string]string{"example.com/approval": "anyone"}, true},
		{map[string]string{"example.com/approval": "admin-only"}, false},
	} {
		in := rego.Input{Subject: rego.Subject{ID: "alice", OrgRole: "owner"}, Action: "runs.approve",
			Resource: rego.Resource{Kind: scope.KindProject, Org: "acme", Project: "vision", Exists: true, Labels: c.labels}}
		res, err := p.Eval(t.Context(), &in)
		require.NoError(t, err)
		require.Equal(t, c.allow, res.Allow, "%v: %+v", c.labels, res.Reasons)
	}
}

func TestHighestRoleFollowsDataRanks(t *testing.T) {
	t.Parallel()
	def, err := rego.New(t.Context(), nil)
	require.NoError(t, err)
	rr, err := rego.New(t.Context(), nil, reRanked())
	require.NoError(t, err)
	m := map[string]string{"a": "member", "b": "contributor", "c": "admin"}
	roles := func(team string) (string, bool) { r, ok := m[team]; return r, ok }
	require.Equal(t, "contributor", def.HighestRole(roles, []string{"a", "b"}))
	require.Equal(t, "member", rr.HighestRole(roles, []string{"a", "b"}))
	require.Equal(t, "admin", rr.HighestRole(roles, []string{"a", "b", "c"}))
	require.Empty(t, def.HighestRole(roles, []string{"x"}))
	require.Empty(t, def.HighestRole(roles, nil))
}

func TestRanksAreChecked(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		ranks map[string]any
		want  string
	}{
		{map[string]any{"member": 3}, "rank 3 is also contributor's"},
		{map[string]any{"viewer": 0}, "none and only none ranks 0"},
		{map[string]any{"none": 1}, "none and only none ranks 0"},
		{map[string]any{"viewer": 1.5}, "not a whole number"},
		{map[string]any{"viewer": "high"}, "not a whole number"},
	} {
		_, err := rego.New(t.Context(), nil, map[string]any{"teamgate": map[string]any{"ranks": c.ranks}})
		var re *rego.Error
		require.ErrorAs(t, err, &re, "%v", c.ranks)
		require.ErrorContains(t, err, c.want)
	}
}

// TestAttributesAreBounded: attributes that nest too deep (a self-referencing map included),
// hold too much or hold what JSON cannot are invalid input, rejected without a stack overflow.
func TestAttributesAreBounded(t *testing.T) {
	t.Parallel()
	self := map[string]any{}
	self["x"] = self
	list := []any{nil}
	list[0] = list
	deep := map[string]any{}
	cur := deep
	for range rego.MaxAttributeDepth + 1 {
		next := map[string]any{}
		cur["d"] = next
		cur = next
	}
	wide := make([]any, rego.MaxAttributeValues+1)
	many := map[string]any{}
	for i := range rego.MaxAttributeValues {
		many[fmt.Sprint(i)] = i
	}
	for name, attrs := range map[string]map[string]any{
		"self-referencing map":  self,
		"self-referencing list": {"l": list},
		"too deep":              deep,
		"too wide":              {"w": wide},
		"too many values":       many,
		"too much text":         {"s": strings.Repeat("x", rego.MaxAttributeBytes+1)},
		"a channel":             {"c": make(chan int)},
		"a struct":              {"s": struct{ A int }{1}},
		"map with int keys":     {"m": map[int]string{1: "a"}},
		"NaN":                   {"n": nan()},
		// json.Number texts that parse as floats but are not JSON: OPA panicked comparing them.
		"json.Number NaN":      {"n": json.Number("NaN")},
		"json.Number Inf":      {"n": json.Number("-Inf")},
		"json.Number hex":      {"n": json.Number("0x10")},
		"json.Number too big":  {"n": json.Number("1e999999")},
		"json.Number sign":     {"n": json.Number("+3")},
		"json.Number dot":      {"n": json.Number(".5")},
		"json.Number zeros":    {"n": json.Number("007")},
		"json.Number spaced":   {"n": json.Number(" 1")},
		"json.Number in lists": {"l": []any{json.Number("1"), json.Number("NaN")}},
	} {
		_, err := rego.NewAttributes(attrs)
		require.ErrorIs(t, err, teamgate.ErrInvalid, name)
	}

	a, err := rego.NewAttributes(map[string]any{"run": map[string]any{"created_by": "bob", "gpus": 4, "tags": []string{"a"}},
		"n": json.Number("1.5"), "f": 2.5, "ok": true, "none": nil, "e": json.Number("-0.5E+3"), "z": json.Number("0")})
	require.NoError(t, err)
	raw, err := json.Marshal(a)
	require.NoError(t, err)
	require.JSONEq(t, `{"run":{"created_by":"bob","gpus":4,"tags":["a"]},"n":1.5,"f":2.5,"ok":true,"none":null,"e":-500,"z":0}`, string(raw))
	empty, err := rego.NewAttributes(nil)
	require.NoError(t, err)
	raw, _ = json.Marshal(empty)
	require.Equal(t, "{}", string(raw))
}

func nan() float64 {
	zero := 0.0
	return zero / zero
}

// TestInputReachesThePolicy evaluates a typed input whose every field the default rules read,
// the runs.transfer destination included.
func TestInputReachesThePolicy(t *testing.T) {
	t.Parallel()
	p, err := rego.New(t.Context(), nil)
	require.NoError(t, err)
	attrs, err := rego.NewAttributes(map[string]any{"destination": "acme/labs"})
	require.NoError(t, err)
	src := rego.Resource{Kind: scope.KindProject, Org: "acme", Project: "vision", Teams: []string{"engineering"}, Restricted: true, Exists: true}
	dst := rego.Resource{Kind: scope.KindProject, Org: "acme", Project: "labs", Teams: []string{}, Restricted: true, Exists: true}
	beth := rego.Subject{ID: "beth", OrgRole: "member", Grant: "admin", TeamRoles: map[string]string{"research": "viewer"}}
	in := rego.Input{Subject: beth, Action: "runs.transfer", Resource: src, Attributes: attrs}
	for _, c := range []struct {
		dest  *rego.Destination
		allow bool
	}{
		{nil, false},
		{&rego.Destination{Subject: rego.Subject{ID: "beth", OrgRole: "member", TeamRoles: beth.TeamRoles}, Resource: dst}, false},
		{&rego.Destination{Subject: rego.Subject{ID: "beth", OrgRole: "member", Grant: "contributor", TeamRoles: beth.TeamRoles}, Resource: dst}, true},
		{&rego.Destination{Subject: rego.Subject{ID: "beth", OrgRole: "member", TeamRoles: map[string]string{}},
			Resource: rego.Resource{Kind: scope.KindProject, Org: "acme", Project: "open", Teams: []string{}, Exists: true}}, true},
	} {
		in.Destination = c.dest
		res, err := p.Eval(t.Context(), &in)
		require.NoError(t, err)
		require.Equal(t, c.allow, res.Allow, "%+v", c.dest)
		require.Equal(t, "admin", res.Role)
	}
}

// TestTableWithRolesOutsideTheVocabulary: data may rank a role the store never holds (one only
// the data names); the table, keyed by codes of the store's vocabulary, has no code for it
// (OrgRoleCode, RoleCode say so) and still answers every key of the vocabulary as full
// evaluation does, the first time and from the table after.
func TestTableWithRolesOutsideTheVocabulary(t *testing.T) {
	t.Parallel()
	p, err := rego.New(t.Context(), nil, map[string]any{"teamgate": map[string]any{
		"ranks": map[string]any{"maintainer": 5},
	}})
	require.NoError(t, err)
	_, ok := rego.RoleCode("maintainer")
	require.False(t, ok)
	_, ok = rego.OrgRoleCode("maintainer")
	require.False(t, ok)
	for _, k := range []factKey{
		{Action: "runs.approve", Exists: true, OrgRole: "viewer", TeamRole: "admin", Restricted: true},
		{Action: "runs.approve", Exists: true, OrgRole: "member", Grant: "contributor"},
		{Action: "team.update", Exists: true, OrgRole: "member", TeamRole: "admin"},
	} {
		spec, _ := p.Action(k.Action)
		in := concrete(p, k, spec.Kind)
		want, err := p.Eval(t.Context(), &in)
		require.NoError(t, err)
		for range 2 {
			got, err := verdictOf(t, p, k)
			require.NoError(t, err, "%+v", k)
			require.Equal(t, want.Allow, got.Allow, "%+v", k)
			require.Equal(t, want.Role, got.Role, "%+v", k)
			require.Equal(t, codes(want.Reasons), got.Codes, "%+v", k)
			require.Equal(t, want.Limits, got.Limits, "%+v", k)
		}
	}
	m := map[string]string{"a": "admin", "b": "maintainer"}
	roles := func(team string) (string, bool) { r, ok := m[team]; return r, ok }
	require.Equal(t, "maintainer", p.HighestRole(roles, []string{"a", "b"}))
}

// TestFoldedDataFollowsDataAndWith: the default module is evaluated with its data folded in at
// load (New). Folded values are the policy's own data (re-ranked data re-ranks a full
// evaluation, with an author's module loaded or not), and an author's rule that replaces that
// data with `with` still sees the replacement take effect: such a policy is not folded.
func TestFoldedDataFollowsDataAndWith(t *testing.T) {
	t.Parallel()
	// A team member on a restricted project: contributor by default, member outranks it re-ranked.
	in := rego.Input{
		Subject:  rego.Subject{ID: "vera", OrgRole: "viewer", TeamRoles: map[string]string{"eng": "member", "ops": "contributor"}},
		Action:   "runs.stop",
		Resource: rego.Resource{Kind: scope.KindProject, Org: "acme", Project: "vision", Teams: []string{"eng", "ops"}, Restricted: true, Exists: true},
	}
	annotate := rego.Module{Name: "note.rego", Source: ext("teamgate.ext", `deny contains "never" if false`)}
	for _, c := range []struct {
		name    string
		modules []rego.Module
		data    []map[string]any
		role    string
	}{
		{"default", nil, nil, "contributor"},
		{"re-ranked", nil, []map[string]any{reRanked()}, "member"},
		{"re-ranked beside an author's module", []rego.Module{annotate}, []map[string]any{reRanked()}, "member"},
	} {
		p, err := rego.New(t.Context(), c.modules, c.data...)
		require.NoError(t, err, c.name)
		res, err := p.Eval(t.Context(), &in)
		require.NoError(t, err, c.name)
		require.True(t, res.Allow, c.name)
		require.Equal(t, c.role, res.Role, c.name)
	}

	// A billing member has no role on an open project; an author's rule asking the default
	// decision with billing mapped to admin allows through ext.allow.
	billing := rego.Input{
		Subject:  rego.Subject{ID: "bill", OrgRole: "billing", TeamRoles: map[string]string{}},
		Action:   "runs.get",
		Resource: rego.Resource{Kind: scope.KindProject, Org: "acme", Project: "open", Teams: []string{}, Exists: true},
	}
	what := rego.Module{Name: "whatif.rego", Source: ext("teamgate.ext",
		`allow contains "as admin" if {`,
		`	d := data.teamgate.authz.project_verdict with data.teamgate.org_base as {"billing": "admin"}`,
		`	d.allow`,
		`}`)}
	p, err := rego.New(t.Context(), []rego.Module{what})
	require.NoError(t, err)
	res, err := p.Eval(t.Context(), &billing)
	require.NoError(t, err)
	require.True(t, res.Allow, "%+v", res)
	require.Equal(t, rego.CodeExtensionAllow, res.Reasons[0].Code)
}

// TestActionFindsEveryCatalogName: the catalog's index (Policy.Action) finds each action of the
// catalog, with its own spec, and no other name: near misses of every name (a byte changed, one
// more or one less) and names of other lengths.
func TestActionFindsEveryCatalogName(t *testing.T) {
	t.Parallel()
	p, err := rego.New(t.Context(), nil, map[string]any{"teamgate": map[string]any{"actions": map[string]any{
		"zz.extra": map[string]any{"kind": "project", "role": "viewer"},
	}}})
	require.NoError(t, err)
	names := p.Actions()
	require.Contains(t, names, "zz.extra")
	extra, _ := p.Action("zz.extra")
	require.Equal(t, scope.KindProject, extra.Kind)
	require.Equal(t, "viewer", extra.Role)
	var specs []rego.ActionSpec
	for _, name := range names {
		spec, ok := p.Action(name)
		require.True(t, ok, name)
		for _, other := range specs {
			require.NotEqual(t, other, spec, "%s: every action has its own entry", name)
		}
		specs = append(specs, spec)
		own, _ := p.Spec(name)
		_, err := p.Table().VerdictOfCodes(t.Context(), own, &rego.Codes{}, 0)
		require.NoError(t, err, "%s: the spec found is the table's own entry", name)
		for _, miss := range []string{name + "x", name[:len(name)-1], "x" + name, name[:len(name)-1] + "#", strings.ToUpper(name)} {
			if slices.Contains(names, miss) {
				continue
			}
			_, ok := p.Action(miss)
			require.False(t, ok, miss)
		}
	}
	for _, miss := range []string{"", ".", strings.Repeat("a", 10_000)} {
		_, ok := p.Action(miss)
		require.False(t, ok, "%q", miss)
	}
}

// TestCodesAreTheKey: on every key of the store's vocabulary, for every action (and, with other
// data ranks, for an action of each kind), the verdict found by role codes (VerdictOfCodes,
// before and after the cell is computed) is full evaluation's on an input with those roles by
// name, the team role being the highest by data rank of the roles held; a code outside the
// vocabulary, or a spec of another catalog, is an invalid-input error, not a cell.
func TestCodesAreTheKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	def, err := rego.New(ctx, nil)
	require.NoError(t, err)
	rr, err := rego.New(ctx, nil, reRanked())
	require.NoError(t, err)
	orgRoles, roles := teamgate.OrgRoles(), teamgate.MemberRoles()
	name := func(code uint8, all []teamgate.ProjectRole) string {
		if code == 0 {
			return ""
		}
		return string(all[code-1])
	}
	for _, pc := range []struct {
		p       *rego.Policy
		actions []string
	}{{def, def.Actions()}, {rr, []string{"org.get", "team.get", "project.get"}}} {
		p, tab := pc.p, pc.p.Table()
		for _, action := range pc.actions {
			spec, ok := p.Spec(action)
			require.True(t, ok, action)
			check := func(c rego.Codes, k factKey) {
				t.Helper()
				got, err := tab.VerdictOfCodes(ctx, spec, &c, 0)
				require.NoError(t, err, "%s %+v", action, c)
				in := concrete(p, k, spec.Kind())
				res, err := p.Eval(ctx, &in)
				require.NoError(t, err, "%s %+v", action, k)
				want := cellOf{Allow: res.Allow, Role: res.Role, Codes: codes(res.Reasons), Limits: res.Limits}
				require.Equal(t, want, contents(got), "%s %+v", action, c)
				again, err := tab.VerdictOfCodes(ctx, spec, &c, 0)
				require.NoError(t, err)
				require.Equal(t, want, contents(again), "%s %+v, computed", action, c)
			}
			check(rego.Codes{OrgRole: 3, TeamRoles: 5}, factKey{Action: action, OrgRole: "admin", TeamRole: "member"})
			for o := uint8(0); o <= uint8(len(orgRoles)); o++ {
				for g := uint8(0); g <= uint8(len(roles)); g++ {
					for set := uint8(0); set < 1<<len(roles); set++ {
						var held []string
						for i, r := range roles {
							if set&(1<<i) != 0 {
								held = append(held, string(r))
							}
						}
						for _, restricted := range []bool{false, true} {
							for _, bg := range []bool{false, true} {
								top := p.HighestRole(func(r string) (string, bool) { return r, true }, held)
								k := factKey{Action: action, Exists: true, OrgRole: "none", Grant: name(g, roles),
									BreakGlass: bg, TeamRole: top, Restricted: restricted}
								if o > 0 {
									k.OrgRole = string(orgRoles[o-1])
								}
								check(rego.Codes{Exists: true, OrgRole: o, Grant: g, BreakGlass: bg, TeamRoles: set, Restricted: restricted}, k)
							}
						}
					}
				}
			}
		}
	}
	spec, _ := def.Spec("project.get")
	for _, c := range []rego.Codes{
		{Exists: true, OrgRole: uint8(len(orgRoles) + 1)},
		{Exists: true, Grant: uint8(len(roles) + 1)},
		{Exists: true, TeamRoles: 1 << len(roles)},
	} {
		_, err := def.Table().VerdictOfCodes(ctx, spec, &c, 0)
		require.ErrorIs(t, err, teamgate.ErrInvalid, "%+v", c)
	}
	// A spec not the table's policy's own (the zero Spec, another policy's): invalid, not a cell
	// found by a name the spec does not carry.
	c := rego.Codes{Exists: true, OrgRole: 4}
	other, _ := rr.Spec("project.get")
	for _, s := range []rego.Spec{{}, other} {
		_, err := def.Table().VerdictOfCodes(ctx, s, &c, 0)
		require.ErrorIs(t, err, teamgate.ErrInvalid)
	}
}
