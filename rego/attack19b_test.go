package rego_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/rego"
)

// tableDiffers returns the first key on which p's table differs from full evaluation of an input
// with those facts ("" when none does, or when p has no table).
func tableDiffers(t *testing.T, p *rego.Policy) string {
	t.Helper()
	if p.Table() == nil {
		return ""
	}
	orgRoles := []string{"none", "owner", "admin", "member", "viewer", "outsider"}
	roles := []string{"", "viewer", "contributor", "admin"}
	for _, action := range []string{"runs.stop", "project.get", "team.update", "org.get"} {
		spec, ok := p.Action(action)
		require.True(t, ok, action)
		for _, orgRole := range orgRoles {
			for _, grant := range roles {
				for _, teamRole := range roles {
					for _, restricted := range []bool{false, true} {
						for _, breakGlass := range []bool{false, true} {
							k := factKey{Action: action, Exists: true, OrgRole: orgRole, Grant: grant, TeamRole: teamRole, Restricted: restricted, BreakGlass: breakGlass}
							in := concrete(p, k, spec.Kind)
							want, wantErr := p.Eval(t.Context(), &in)
							got, err := cellWithMessages(t, p, k)
							if wantErr != nil || err != nil {
								if (wantErr == nil) != (err == nil) || wantErr.Error() != err.Error() {
									return fmt.Sprintf("%+v: cell error %v, full evaluation %v", k, err, wantErr)
								}
								continue
							}
							msgs := make([]string, len(want.Reasons))
							for i, r := range want.Reasons {
								msgs[i] = r.Message
							}
							w := cellWith{cellOf{want.Allow, want.Role, codes(want.Reasons), want.Limits}, msgs}
							if fmt.Sprint(w) != fmt.Sprint(got) {
								return fmt.Sprintf("%+v: cell %+v, full evaluation %+v", k, got, w)
							}
						}
					}
				}
			}
		}
	}
	return ""
}

// TestAttack19bTableProbes: authors' modules that try to read more than the table's key, or
// something that changes from one call to the next, by ways the walk might not see: each either
// turns the table off or is decided by the table exactly as by full evaluation.
func TestAttack19bTableProbes(t *testing.T) {
	t.Parallel()
	probes := map[string]string{
		"metadata chain":    `deny contains json.marshal(rego.metadata.chain()) if input.subject.org_role == "member"`,
		"metadata rule":     "# METADATA\n# title: frozen\ndeny contains rego.metadata.rule().title if input.subject.org_role == \"member\"",
		"trace":             `deny contains "x" if { trace(input.subject.org_role); input.subject.org_role == "member" }`,
		"render template":   `deny contains strings.render_template("{{.r}}", {"r": input.subject.org_role}) if true`,
		"import alias":      "import input as i\n\n" + `deny contains "x" if i.subject.id == "someone-else"`,
		"import subject":    "import input.subject\n\n" + `deny contains "x" if subject.id == "someone-else"`,
		"import data root":  "import data.teamgate as tg\n\n" + `deny contains "x" if tg.authz.team_role == "admin"`,
		"some in subject":   `deny contains "x" if { some x in input.subject; x == "someone-else" }`,
		"object.keys":       `deny contains "x" if count(object.keys(input.subject)) > 7`,
		"json.marshal":      `deny contains "x" if contains(json.marshal(input), "someone-else")`,
		"ref head":          `deny[input.subject.id] := "x" if true`,
		"ref head key":      `flags[input.resource.project] := true` + "\n\n" + `deny contains "x" if flags.vision`,
		"data by key fact":  `deny contains "x" if data.mycompany.rank[input.subject.team_role] >= 3`,
		"ext via var path":  "helper := input.subject.id\n\n" + `deny contains "x" if { k := "helper"; data.teamgate.ext[k] == "someone-else" }`,
		"ext whole":         "helper := input.subject.id\n\n" + `deny contains "x" if { some k; data.teamgate.ext.lib[k] == "someone-else" }`,
		"io.jwt verify":     `deny contains "x" if { [v, _, _] := io.jwt.decode_verify("a.b.c", {"secret": "s"}); not v; input.subject.org_role == "member" }`,
		"time.parse":        `deny contains "x" if { time.parse_rfc3339_ns("2020-01-01T00:00:00Z") > 0; input.subject.org_role == "member" }`,
		"net.cidr":          `deny contains "x" if { net.cidr_contains("10.0.0.0/8", "10.1.1.1"); input.subject.org_role == "member" }`,
		"walk subject":      `deny contains "x" if { walk(input.subject, [p, v]); v == "someone-else" }`,
		"with in lib":       `deny contains "x" if data.teamgate.ext.lib.named`,
		"every key":         `deny contains "x" if every _, v in {"a": input.subject.org_role} { v == "member" }`,
		"input as function": "f(x) := x\n\n" + `deny contains "x" if f(input).subject.id == "someone-else"`,
		"comprehension key": `deny contains "x" if count({k | input.subject[k]}) > 3`,
		"is_object input":   `deny contains "x" if is_object(input.attributes)`,
		"object.get path":   `deny contains "x" if object.get(input.subject, "id", "") == "someone-else"`,
		"json.filter":       `deny contains "x" if count(json.filter(input, ["subject/id"])) > 0`,
		"object.union":      `deny contains "x" if object.union(input.subject, {}).id == "someone-else"`,
		"graph":             `deny contains "x" if count(graph.reachable({"a": [input.subject.org_role]}, ["a"])) > 1`,
	}
	lib := rego.Module{Name: "lib.rego", Source: "package teamgate.ext.lib\n\nimport rego.v1\n\nnamed if input.subject.id == \"someone-else\"\n\nid := input.subject.id\n"}
	for name, src := range probes {
		mods := []rego.Module{{Name: "probe.rego", Source: extHeader + src + "\n"}}
		if name == "with in lib" || name == "ext whole" {
			mods = append(mods, lib)
		}
		p, err := rego.New(t.Context(), mods, authorData())
		require.NoError(t, err, name)
		t.Logf("%s: table %v %s", name, p.Table() != nil, p.NoTable())
		require.Empty(t, tableDiffers(t, p), name)
	}
}
