package authz_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
	"github.com/teamgate/teamgate/store"
)

// engines returns, over one store, an engine per decision path: full Rego evaluation, the
// decision table, and the cached engine.
func engines(t *testing.T, st *store.Store, opts ...authz.Option) map[string]*authz.Engine {
	t.Helper()
	out := map[string]*authz.Engine{}
	for name, o := range map[string][]authz.Option{
		"rego":     {authz.WithDecisionCache(0), authz.WithCompiledPath(false)},
		"compiled": {authz.WithDecisionCache(0)},
		"cached":   nil,
	} {
		eng, err := authz.New(t.Context(), st, append(o, opts...)...)
		require.NoError(t, err)
		out[name] = eng
	}
	return out
}

// TestTransferDestinationIsClosed is the regression test of the runs.transfer hole: the
// destination role comes from the project role rule, so every way a destination is closed
// denies, on every path. Each subject administers the source through a grant.
func TestTransferDestinationIsClosed(t *testing.T) {
	t.Parallel()
	st, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	members := map[string]string{"bill": "billing", "olga": "outsider", "vera": "viewer", "amir": "admin",
		"eve": "member", "gus": "member", "mona": "manager", "alice": "owner"}
	admins := map[string]store.Grant{"zoe": {Role: "admin"}}
	cs := []store.Change{store.PutOrg{Org: store.Org{Name: "o"}}, store.PutOrg{Org: store.Org{Name: "x"}},
		store.PutMember{Org: "o", User: "zoe", Role: "outsider"}}
	for u, role := range members {
		cs = append(cs, store.PutMember{Org: "o", User: u, Role: role})
		admins[u] = store.Grant{Role: "admin"}
	}
	cs = append(cs,
		store.PutTeam{Team: store.Team{Org: "o", Name: "eng"}}, store.PutTeam{Team: store.Team{Org: "o", Name: "research"}},
		store.PutPolicy{Policy: store.Policy{Org: "o", Name: "research-only", Settings: policy.Settings{Teams: []string{"research"}}}},
		store.PutTeamMember{Org: "o", Team: "eng", User: "eve", Role: "admin"},
		store.PutTeamMember{Org: "o", Team: "eng", User: "olga", Role: "member"},
		store.PutProject{Project: store.Project{Org: "x", Name: "elsewhere"}})
	cs = append(cs,
		store.PutProject{Project: store.Project{Org: "o", Name: "src", Grants: admins}},
		store.PutProject{Project: store.Project{Org: "o", Name: "open"}},
		store.PutProject{Project: store.Project{Org: "o", Name: "closed", Teams: []string{"eng"}}},
		store.PutProject{Project: store.Project{Org: "o", Name: "narrowed", Teams: []string{"eng"}, Policy: "research-only"}},
		store.PutProject{Project: store.Project{Org: "o", Name: "lowered", Grants: map[string]store.Grant{"gus": {Role: "viewer"}}}})
	_, err = st.Apply(t.Context(), cs...)
	require.NoError(t, err)

	for _, c := range []struct {
		subject, dest string
		allowed       bool
		why           string
	}{
		{"zoe", "x/elsewhere", false, "not a member of the destination's org"},
		{"alice", "x/elsewhere", false, "an owner of o is nobody in x"},
		{"bill", "o/open", false, "billing: base none on an open project"},
		{"olga", "o/open", false, "outsider: base none on an open project"},
		{"vera", "o/open", false, "viewer: below contributor"},
		{"olga", "o/closed", false, "a team member only: member is below contributor"},
		{"amir", "o/closed", false, "restricted, in no team, no grant"},
		{"eve", "o/narrowed", false, "project teams ∩ policy teams = ∅"},
		{"gus", "o/lowered", false, "a viewer grant lowers the member base"},
		{"gus", "o/nope", false, "unknown project"},
		{"gus", "nope/p", false, "unknown org"},
		{"gus", "o/eng/open", false, "outside the named team space"},
		{"eve", "o/closed", true, "team admin"},
		{"gus", "o/open", true, "member base contributor"},
		{"mona", "o/narrowed", true, "managers reach everything"},
		{"alice", "o/closed", true, "owners reach everything"},
	} {
		for name, eng := range engines(t, st) {
			for range 2 { // the second from the cache, where one is kept
				d, err := eng.Authorize(t.Context(), authz.Request{Subject: c.subject, Action: "runs.transfer", Resource: "o/src",
					Attributes: map[string]any{"destination": c.dest}})
				require.NoError(t, err)
				require.Equal(t, c.allowed, d.Allowed, "%s %s → %s (%s): %+v", name, c.subject, c.dest, c.why, d)
				require.Equal(t, "admin", d.Role, "the source's role")
				if !c.allowed {
					require.True(t, d.Has(rego.CodeDestinationDenied), "%+v", d)
					require.Contains(t, d.Reasons[0].Message, c.dest)
				}
			}
		}
	}
}

// TestReRankedDataAgreesOnEveryPath re-ranks roles in data (member above contributor, org
// members mapped to viewer) and checks that full evaluation, the decision table and the cache
// agree on every request without attributes over the conformance directory, that listings
// equal project.get, and that the change took effect.
func TestReRankedDataAgreesOnEveryPath(t *testing.T) {
	t.Parallel()
	data := map[string]any{"teamgate": map[string]any{
		"ranks":    map[string]any{"none": 0, "viewer": 1, "contributor": 2, "member": 3, "admin": 4},
		"org_base": map[string]any{"member": "viewer"},
	}}
	_, st := newAcme(t)
	engs := engines(t, st, authz.WithData(data))
	require.NotNil(t, engs["compiled"].Policy().Table(), "data alone keeps the decision table")
	for _, c := range []struct {
		subject, action, resource string
		allowed                   bool
		role                      string
	}{
		{"vera", "runs.stop", "acme/vision", true, "member"},     // engineering member now outranks contributor
		{"beth", "runs.stop", "acme/archive", false, "viewer"},   // org member → viewer
		{"bob", "runs.stop", "acme/vision", true, "contributor"}, // team contributor above the viewer base
		{"vera", "team.projects.create", "acme/engineering", true, "member"},
	} {
		for name, eng := range engs {
			d, err := eng.Authorize(t.Context(), authz.Request{Subject: c.subject, Action: c.action, Resource: c.resource})
			require.NoError(t, err)
			require.Equal(t, c.allowed, d.Allowed, "%s %+v: %+v", name, c, d)
			require.Equal(t, c.role, d.Role, "%s %+v", name, c)
		}
	}
	subjects := []string{"alice", "mona", "adam", "amir", "bob", "beth", "vera", "bill", "olga", "otto", "zed", "nobody"}
	resources := map[string][]string{
		"org":     {"acme", "other", "gone"},
		"team":    {"acme/engineering", "acme/research", "acme/platform", "acme/gone"},
		"project": {"acme/vision", "acme/nlp", "acme/open", "acme/labs", "acme/archive", "acme/engineering/nlp", "acme/research/vision", "other/misc"},
	}
	p := engs["rego"].Policy()
	checks := 0
	for _, action := range p.Actions() {
		spec, _ := p.Action(action)
		for _, res := range resources[string(spec.Kind)] {
			for _, s := range subjects {
				req := authz.Request{Subject: s, Action: action, Resource: res}
				want, err := engs["rego"].Authorize(t.Context(), req)
				require.NoError(t, err)
				for _, name := range []string{"compiled", "cached", "cached"} {
					got, err := engs[name].Authorize(t.Context(), req)
					require.NoError(t, err)
					require.Equal(t, want, got, "%s %+v", name, req)
				}
				checks++
			}
		}
	}
	require.Greater(t, checks, 1000)
	// The engine's own callers of the policy follow the data too: admission's runs.create, bulk
	// run operations and CreateProject's team.projects.create. vera is a member of engineering,
	// a role that now outranks contributor.
	for name, eng := range engs {
		adm, err := eng.Admit(t.Context(), "vera", "acme/vision", policy.Run{Kind: "job", Queue: "gpu/a100"})
		require.NoError(t, err)
		require.NotContains(t, fields(adm.Violations), "permission", "%s: %+v", name, adm)
		runs, err := eng.BulkRuns(t.Context(), "vera", "acme/engineering", "stop_runs", []authz.RunRef{{UUID: "r", Project: "vision"}}, "")
		require.NoError(t, err)
		require.True(t, runs[0].Decision.Allowed, "%s: %+v", name, runs[0])
		require.Equal(t, "member", runs[0].Decision.Role)
		created, err := eng.CreateProject(t.Context(), "vera", "acme/engineering", authz.NewProject{Name: "by-" + name})
		require.NoError(t, err)
		require.True(t, created.Decision.Allowed, "%s: %+v", name, created.Decision)
		// beth, an org member, is a viewer now: no run in the open archive project.
		adm, err = eng.Admit(t.Context(), "beth", "acme/archive", policy.Run{Kind: "job"})
		require.NoError(t, err)
		require.Contains(t, fields(adm.Violations), "permission", "%s: %+v", name, adm)
	}
	for _, s := range subjects {
		for _, owner := range []string{"acme", "acme/engineering", "acme/research", "other"} {
			listed, err := engs["compiled"].ListProjects(t.Context(), s, owner, authz.Page{})
			require.NoError(t, err)
			o, err := scope.ParseOwner(owner)
			require.NoError(t, err)
			var candidates []string
			require.NoError(t, st.View(func(r store.Reader) error {
				candidates = r.Projects(o.Org)
				if o.IsTeam() {
					candidates = r.TeamProjects(o.Org, o.Team)
				}
				return nil
			}))
			want := []string{}
			for _, proj := range candidates {
				d, err := engs["rego"].Authorize(t.Context(), authz.Request{Subject: s, Action: "project.get", Resource: owner + "/" + proj})
				require.NoError(t, err)
				if d.Allowed {
					want = append(want, proj)
				}
			}
			require.Equal(t, want, nonNil(listed.Projects), "%s %s", s, owner)
		}
	}
}

// TestSelfReferencingAttributesAreInvalid: attributes that refer to themselves used to overflow
// the stack of the host process; they are invalid input now, like attributes too big.
func TestSelfReferencingAttributesAreInvalid(t *testing.T) {
	t.Parallel()
	eng, _ := newAcme(t)
	self := map[string]any{}
	self["x"] = self
	huge := map[string]any{"run": map[string]any{"tags": make([]any, rego.MaxAttributeValues+1)}}
	for _, attrs := range []map[string]any{self, {"run": self}, huge} {
		_, err := eng.Authorize(t.Context(), authz.Request{Subject: "bob", Action: "runs.delete", Resource: "acme/vision", Attributes: attrs})
		require.ErrorIs(t, err, teamgate.ErrInvalid)
		_, err = eng.Explain(t.Context(), authz.Request{Subject: "bob", Action: "runs.delete", Resource: "acme/vision", Attributes: attrs})
		require.ErrorIs(t, err, teamgate.ErrInvalid)
	}
}

// TestNonJSONNumberAttributesAreInvalid: a json.Number that is not JSON ("NaN", "0x10") used to
// reach OPA, which panicked in the host process when a rule compared it. It is invalid input now.
func TestNonJSONNumberAttributesAreInvalid(t *testing.T) {
	t.Parallel()
	eng, _ := newAcme(t, authz.WithModules(rego.Module{Name: "cap.rego",
		Source: "package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"too many\" if input.attributes.gpus > 8\n"}))
	for _, n := range []string{"NaN", "Inf", "0x10", "1e999999"} {
		_, err := eng.Authorize(t.Context(), authz.Request{Subject: "bob", Action: "runs.create", Resource: "acme/vision",
			Attributes: map[string]any{"gpus": json.Number(n)}})
		require.ErrorIs(t, err, teamgate.ErrInvalid, n)
		require.ErrorContains(t, err, "attributes.gpus")
	}
	d, err := eng.Authorize(t.Context(), authz.Request{Subject: "bob", Action: "runs.create", Resource: "acme/vision",
		Attributes: map[string]any{"gpus": json.Number("16")}})
	require.NoError(t, err)
	require.True(t, d.Has(rego.CodeExtensionDeny), "%+v", d)
}

// limitCase is a member-managing request and its decision on every path; a denial's one reason
// is insufficient_role with message.
type limitCase struct {
	subject, action, resource string
	attrs                     map[string]any
	allowed                   bool
	role, message             string
}

func checkLimits(t *testing.T, engs map[string]*authz.Engine, cases []limitCase) {
	t.Helper()
	for _, c := range cases {
		req := authz.Request{Subject: c.subject, Action: c.action, Resource: c.resource, Attributes: c.attrs}
		for name, eng := range engs {
			d, err := eng.Authorize(t.Context(), req)
			require.NoError(t, err, "%s %+v", name, req)
			require.Equal(t, c.allowed, d.Allowed, "%s %+v: %+v", name, req, d)
			require.Equal(t, c.role, d.Role, "%s %+v", name, req)
			if !c.allowed {
				require.Equal(t, []authz.Reason{{Code: rego.CodeInsufficientRole, Message: c.message}}, d.Reasons, "%s %+v", name, req)
			}
		}
	}
}

// TestNobodyGrantsAboveTheirOwnRole is the regression test of issue 12: the member-management
// limit of project.access (grants) and team.members.manage (team roles) is the policy's, so a
// host that asks Authorize before making a grant gets it — it used to live only in the Go filter
// of a suggestion's approvers. The data lets contributors manage grants and team members, so
// the limit bites under acme.yaml.
func TestNobodyGrantsAboveTheirOwnRole(t *testing.T) {
	t.Parallel()
	data := map[string]any{"teamgate": map[string]any{"actions": map[string]any{
		"project.access":      map[string]any{"role": "contributor"},
		"team.members.manage": map[string]any{"role": "contributor"},
	}}}
	_, st := newAcme(t)
	engs := engines(t, st, authz.WithData(data))
	type attrs = map[string]any
	checkLimits(t, engs, []limitCase{
		// vera: contributor on nlp (team research), contributor of research.
		{"vera", "project.access", "acme/nlp", nil, true, "contributor", ""},
		{"vera", "project.access", "acme/nlp", attrs{"target_role": "contributor", "target_current_role": "viewer"}, true, "contributor", ""},
		{"vera", "project.access", "acme/nlp", attrs{"target_role": "admin"}, false, "contributor",
			"vera may not give role admin on project acme/nlp: it ranks above their own role contributor there"},
		{"vera", "project.access", "acme/nlp", attrs{"target_role": "viewer", "target_current_role": "admin"}, false, "contributor",
			"vera may not change role admin on project acme/nlp: it ranks above their own role contributor there"},
		{"vera", "team.members.manage", "acme/research", attrs{"target_role": "contributor"}, true, "contributor", ""},
		{"vera", "team.members.manage", "acme/research", attrs{"target_role": "admin"}, false, "contributor",
			"vera may not give role admin on team acme/research: it ranks above their own role contributor there"},
		{"vera", "team.members.manage", "acme/engineering", attrs{"target_role": "viewer"}, false, "member",
			"team.members.manage needs contributor on team acme/engineering; vera has member"},
		// beth administers vision by a grant; adam is an org admin in engineering; mona overrides.
		{"beth", "project.access", "acme/vision", attrs{"target_role": "admin", "target_current_role": "admin"}, true, "admin", ""},
		{"adam", "team.members.manage", "acme/engineering", attrs{"target_role": "admin"}, true, "admin", ""},
		{"mona", "team.members.manage", "acme/research", attrs{"target_role": "admin", "target_current_role": "admin"}, true, "admin", ""},
		// bob is a contributor on vision through engineering.
		{"bob", "project.access", "acme/vision", attrs{"target_role": "admin"}, false, "contributor",
			"bob may not give role admin on project acme/vision: it ranks above their own role contributor there"},
	})
	// A suggestion's approvers are the same decisions: otto may get contributor on nlp from its
	// contributors too (beth, bob, vera), admin only from its admins.
	approvers := func(action string) []string {
		d, err := engs["cached"].Authorize(t.Context(), authz.Request{Subject: "otto", Action: action, Resource: "acme/nlp", Suggest: true})
		require.NoError(t, err)
		require.NotEmpty(t, d.Suggestions, action)
		step := d.Suggestions[0].Steps[0]
		require.Equal(t, authz.ChangeGrant, step.Kind, action)
		require.Equal(t, map[string]any{"target_role": step.Role}, step.Attributes, action)
		var who []string
		for _, a := range step.Approvers {
			who = append(who, a.Subject)
		}
		return who
	}
	require.Equal(t, []string{"adam", "alice", "beth", "bob", "mona", "olga", "vera"}, approvers("runs.stop"))
	require.Equal(t, []string{"adam", "alice", "mona", "olga"}, approvers("runs.approve"))
}

// TestLimitMessagesFollowThePolicy: which member-management limit denied, and the role it names,
// is the policy's to say (the reason's limit, rego.Limit); the message renders only that. With
// re-ranked data — member above contributor, org admin above manager — the limits move and every
// message moves with them on every path; under the default ranks bob gives member and mona
// gives admin. A subject whose role does not suffice is told so, whatever it tries to give.
func TestLimitMessagesFollowThePolicy(t *testing.T) {
	t.Parallel()
	data := map[string]any{"teamgate": map[string]any{
		"ranks":     map[string]any{"none": 0, "viewer": 1, "contributor": 2, "member": 3, "admin": 4},
		"org_ranks": map[string]any{"manager": 3, "admin": 4},
		"actions": map[string]any{
			"project.access":      map[string]any{"role": "contributor"},
			"team.members.manage": map[string]any{"role": "contributor"},
		},
	}}
	_, st := newAcme(t)
	type attrs = map[string]any
	checkLimits(t, engines(t, st, authz.WithData(data)), []limitCase{
		// bob: org member (base contributor), contributor of engineering; vera: org viewer, member
		// of engineering (now above research's contributor), contributor of research.
		{"bob", "project.access", "acme/vision", attrs{"target_role": "contributor", "target_current_role": "viewer"}, true, "contributor", ""},
		{"bob", "project.access", "acme/vision", attrs{"target_role": "member"}, false, "contributor",
			"bob may not give role member on project acme/vision: it ranks above their own role contributor there"},
		{"bob", "project.access", "acme/vision", attrs{"target_role": "viewer", "target_current_role": "member"}, false, "contributor",
			"bob may not change role member on project acme/vision: it ranks above their own role contributor there"},
		{"vera", "project.access", "acme/nlp", attrs{"target_role": "member"}, true, "member", ""},
		{"vera", "project.access", "acme/nlp", attrs{"target_current_role": "admin"}, false, "member",
			"vera may not change role admin on project acme/nlp: it ranks above their own role member there"},
		{"vera", "team.members.manage", "acme/research", attrs{"target_role": "member"}, false, "contributor",
			"vera may not give role member on team acme/research: it ranks above their own role contributor there"},
		{"vera", "team.members.manage", "acme/engineering", attrs{"target_role": "member"}, true, "member", ""},
		{"vera", "team.members.manage", "acme/platform", attrs{"target_role": "admin"}, false, "none",
			"team.members.manage needs contributor on team acme/platform; vera has none"},
		{"mona", "members.manage", "acme", attrs{"target_role": "admin"}, false, "manager",
			"mona may not assign role admin on org acme: it ranks above their own role manager"},
		{"mona", "members.manage", "acme", attrs{"target_current_role": "owner"}, false, "manager",
			"mona may not change role owner on org acme: only an owner may, and their own role is manager"},
		// The owner rule denies a role within mona's own: the message names the owner, not the
		// role given (which does not rank above hers).
		{"mona", "members.manage", "acme", attrs{"target_role": "member", "target_current_role": "owner"}, false, "manager",
			"mona may not change role owner on org acme: only an owner may, and their own role is manager"},
		{"mona", "members.manage", "acme", attrs{"target_role": "admin", "target_current_role": "owner"}, false, "manager",
			"mona may not assign role admin on org acme: it ranks above their own role manager"},
		{"mona", "members.manage", "acme", attrs{"target_role": "member"}, true, "manager", ""},
	})
	// The same requests under the default ranks (and the same catalog): allowed.
	defaults := engines(t, st, authz.WithData(map[string]any{"teamgate": map[string]any{"actions": data["teamgate"].(map[string]any)["actions"]}}))
	for _, req := range []authz.Request{
		{Subject: "bob", Action: "project.access", Resource: "acme/vision", Attributes: attrs{"target_role": "member"}},
		{Subject: "mona", Action: "members.manage", Resource: "acme", Attributes: attrs{"target_role": "admin"}},
	} {
		d, err := defaults["rego"].Authorize(t.Context(), req)
		require.NoError(t, err)
		require.True(t, d.Allowed, "%+v: %+v", req, d)
	}
}
