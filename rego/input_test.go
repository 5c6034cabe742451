package rego_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
)

// TestInputJSONIsTheDocument: the JSON form of a rego.Input (what `teamgate explain` shows as the
// policy input) is exactly the document the policy reads, empty team roles and teams included.
func TestInputJSONIsTheDocument(t *testing.T) {
	t.Parallel()
	// An ext.deny whose message is the input as the policy sees it.
	p, err := rego.New(t.Context(), []rego.Module{{Name: "echo.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\ndeny contains json.marshal(input)\n"}})
	require.NoError(t, err)
	attrs, err := rego.NewAttributes(map[string]any{"destination": "acme/labs", "run": map[string]any{"created_by": "bob"}})
	require.NoError(t, err)
	project := rego.Resource{Kind: scope.KindProject, Org: "acme", Project: "vision", Exists: true}
	for name, in := range map[string]rego.Input{
		"non-member, open project": {Subject: rego.Subject{ID: "nobody", OrgRole: "none"}, Action: "project.get", Resource: project},
		"team roles and teams": {
			Subject: rego.Subject{ID: "bob", OrgRole: "member", Grant: "viewer", TeamRoles: map[string]string{"engineering": "admin"}},
			Action:  "project.get",
			Resource: rego.Resource{Kind: scope.KindProject, Org: "acme", Team: "engineering", Project: "vision",
				Teams: []string{"engineering"}, Restricted: true, Exists: true},
		},
		"org resource": {Subject: rego.Subject{ID: "bob", OrgRole: "member"}, Action: "org.get",
			Resource: rego.Resource{Kind: scope.KindOrg, Org: "acme", Exists: true}},
		"transfer with attributes": {Subject: rego.Subject{ID: "bob", OrgRole: "member"}, Action: "runs.transfer",
			Resource: project, Attributes: attrs,
			Destination: &rego.Destination{Subject: rego.Subject{ID: "bob", OrgRole: "none"},
				Resource: rego.Resource{Kind: scope.KindProject, Org: "other", Project: "labs", Missing: "org other does not exist"}}},
	} {
		res, err := p.Eval(t.Context(), &in)
		require.NoError(t, err, name)
		require.Len(t, res.Reasons, 1, name)
		require.Equal(t, rego.CodeExtensionDeny, res.Reasons[0].Code, name)
		raw, err := json.Marshal(in)
		require.NoError(t, err, name)
		// The policy also sees the derived subject.team_role (README.md).
		var want map[string]any
		require.NoError(t, json.Unmarshal(raw, &want), name)
		want["subject"].(map[string]any)["team_role"] = teamRole(p, in.Subject, in.Resource)
		if d := in.Destination; d != nil {
			want["destination"].(map[string]any)["subject"].(map[string]any)["team_role"] = teamRole(p, d.Subject, d.Resource)
		}
		raw, err = json.Marshal(want)
		require.NoError(t, err, name)
		require.JSONEq(t, string(raw), res.Reasons[0].Message, name)
	}
}

// teamRole is input.subject.team_role as README.md defines it.
func teamRole(p *rego.Policy, s rego.Subject, r rego.Resource) string {
	teams := r.Teams
	if r.Kind == scope.KindTeam {
		teams = []string{r.Team}
	}
	if r.Kind == scope.KindOrg {
		teams = nil
	}
	lookup := func(t string) (string, bool) { r, ok := s.TeamRoles[t]; return r, ok }
	if role := p.HighestRole(lookup, teams); role != "" {
		return role
	}
	return "none"
}

// TestAttributeLimitErrorsNameThePath: an attribute document over a limit is an InvalidError whose
// value is the path where the limit was hit (not an empty value).
func TestAttributeLimitErrorsNameThePath(t *testing.T) {
	t.Parallel()
	deep := map[string]any{}
	cur := deep
	for range rego.MaxAttributeDepth + 1 {
		next := map[string]any{}
		cur["d"] = next
		cur = next
	}
	for name, tc := range map[string]struct {
		attrs map[string]any
		path  string
	}{
		"too deep":      {deep, "attributes" + strings.Repeat(".d", rego.MaxAttributeDepth+1)},
		"too wide":      {map[string]any{"w": make([]any, rego.MaxAttributeValues+1)}, "attributes.w"},
		"too much text": {map[string]any{"s": strings.Repeat("x", rego.MaxAttributeBytes+1)}, "attributes.s"},
	} {
		_, err := rego.NewAttributes(tc.attrs)
		require.ErrorIs(t, err, teamgate.ErrInvalid, name)
		var ie *teamgate.InvalidError
		require.ErrorAs(t, err, &ie, name)
		require.Equal(t, "attributes", ie.What, name)
		require.Equal(t, tc.path, ie.Value, name)
	}
}

// TestEveryWayOfReadingAFieldSeesIt: the engine leaves the fields no module reads out of the
// input it passes OPA (subject.id, resource.org, resource.project, resource.labels), so a
// module that reads one, by name or through the document as a whole, must get it whatever way
// it is written.
func TestEveryWayOfReadingAFieldSeesIt(t *testing.T) {
	t.Parallel()
	in := rego.Input{
		Subject: rego.Subject{ID: "bob", OrgRole: "member", TeamRoles: map[string]string{"eng": "admin"}},
		Action:  "runs.transfer",
		Resource: rego.Resource{Kind: scope.KindProject, Org: "acme", Project: "vision", Teams: []string{"eng"},
			Restricted: true, Exists: true, Labels: map[string]string{"tier": "gold"}},
		Destination: &rego.Destination{Subject: rego.Subject{ID: "bob", OrgRole: "viewer"},
			Resource: rego.Resource{Kind: scope.KindProject, Org: "other", Project: "labs", Exists: true,
				Labels: map[string]string{"tier": "bronze"}}},
	}
	for _, c := range []struct{ rules, want string }{
		{`deny contains input.subject.id`, "bob"},
		{`deny contains input.resource.org`, "acme"},
		{`deny contains input.resource.project`, "vision"},
		{`deny contains input.resource.labels.tier`, "gold"},
		{`deny contains r.org if r := input.resource`, "acme"},
		{`deny contains input.resource[k] if k := concat("", ["pro", "ject"])`, "vision"},
		{"deny contains v if {\n\tsome k, v in input.resource\n\tk == \"org\"\n}", "acme"},
		{"deny contains org(input.resource)\n\norg(r) := r.org", "acme"},
		{`deny contains input[k].id if k := "subject"`, "bob"},
		{`deny contains object.get(input, ["resource", "labels", "tier"], "none")`, "gold"},
		{`deny contains input.destination.resource.project`, "labs"},
		{`deny contains input.destination.resource.labels.tier`, "bronze"},
		{"deny contains p if p := project with input.resource as input.destination.resource\n\nproject := input.resource.project", "labs"},
		{"import input.resource as res\n\ndeny contains res.org", "acme"},
	} {
		src := "package teamgate.ext\n\nimport rego.v1\n\n" + c.rules + "\n"
		if strings.HasPrefix(c.rules, "import") {
			src = "package teamgate.ext\n\nimport rego.v1\n" + c.rules + "\n"
		}
		p, err := rego.New(t.Context(), []rego.Module{{Name: "x.rego", Source: src}})
		require.NoError(t, err, c.rules)
		res, err := p.Eval(t.Context(), &in)
		require.NoError(t, err, c.rules)
		require.Equal(t, []rego.Reason{{Code: rego.CodeExtensionDeny, Message: c.want}}, res.Reasons, c.rules)
	}
}
