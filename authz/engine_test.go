package authz_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

func TestInvalidRequestsAreTypedErrors(t *testing.T) {
	t.Parallel()
	eng, st := newAcme(t)
	rev := st.Revision()
	for _, tc := range []struct {
		req   authz.Request
		value string
	}{
		{authz.Request{Subject: "bob", Action: "runs.explode", Resource: "acme/vision"}, "runs.explode"},
		{authz.Request{Subject: "bob", Action: "org.get", Resource: "acme/engineering"}, "acme/engineering"},
		{authz.Request{Subject: "bob", Action: "team.get", Resource: "acme.engineering"}, "acme.engineering"},
		{authz.Request{Subject: "bob", Action: "runs.get", Resource: "acme//vision"}, "acme//vision"},
		{authz.Request{Subject: "bo b", Action: "runs.get", Resource: "acme/vision"}, "bo b"},
		{authz.Request{Subject: "bob", Action: "runs.get", Resource: "vision", Owner: "acme.eng"}, "acme.eng"},
		{authz.Request{Subject: "alice", Action: "members.manage", Resource: "acme", Attributes: map[string]any{"target_role": 3}}, "3"},
		{authz.Request{Subject: "alice", Action: "members.manage", Resource: "acme", Attributes: map[string]any{"target_current_role": "emperor"}}, "emperor"},
		// project.access and team.members.manage take the roles a grant or a team member may hold.
		{authz.Request{Subject: "beth", Action: "project.access", Resource: "acme/vision", Attributes: map[string]any{"target_role": "owner"}}, "owner"},
		{authz.Request{Subject: "beth", Action: "project.access", Resource: "acme/vision", Attributes: map[string]any{"target_role": "none"}}, "none"},
		{authz.Request{Subject: "beth", Action: "project.access", Resource: "acme/vision", Attributes: map[string]any{"target_role": "viewer", "target_current_role": 4}}, "4"},
		{authz.Request{Subject: "olga", Action: "team.members.manage", Resource: "acme/engineering", Attributes: map[string]any{"target_role": []any{"admin"}}}, "[admin]"},
		{authz.Request{Subject: "olga", Action: "team.members.manage", Resource: "acme/engineering", Attributes: map[string]any{"target_current_role": "Admin"}}, "Admin"},
		{authz.Request{Subject: "beth", Action: "runs.transfer", Resource: "acme/vision", Attributes: map[string]any{"destination": "open"}}, "open"},
		{authz.Request{Subject: "beth", Action: "runs.transfer", Resource: "acme/vision", Attributes: map[string]any{"destination": 7}}, "7"},
	} {
		d, err := eng.Authorize(t.Context(), tc.req)
		require.ErrorIs(t, err, teamgate.ErrInvalid, "%+v", tc.req)
		var ie *teamgate.InvalidError
		require.ErrorAs(t, err, &ie, "%+v", tc.req)
		require.Equal(t, tc.value, ie.Value)
		require.False(t, d.Allowed)
	}
	require.Equal(t, rev, st.Revision(), "errors change nothing")
	var zero authz.Decision
	require.False(t, zero.Allowed, "the zero decision denies")
}

func TestDestinationAbsentOrUnknownDenies(t *testing.T) {
	t.Parallel()
	eng, _ := newAcme(t)
	for _, attrs := range []map[string]any{nil, {"destination": "acme/nowhere"}, {"destination": "other/misc"}} {
		d, err := eng.Authorize(t.Context(), authz.Request{Subject: "beth", Action: "runs.transfer", Resource: "acme/vision", Attributes: attrs})
		require.NoError(t, err)
		require.False(t, d.Allowed, "%v", attrs)
		require.True(t, d.Has("destination_denied"), "%v: %+v", attrs, d)
		require.Equal(t, "admin", d.Role, "Role stays the source's")
	}
	// bob is a viewer in org other: below contributor there.
	d, err := eng.Authorize(t.Context(), authz.Request{Subject: "alice", Action: "runs.transfer", Resource: "acme/vision", Attributes: map[string]any{"destination": "other/misc"}})
	require.NoError(t, err)
	require.False(t, d.Allowed)
}

func TestFailClosedOnEvaluationError(t *testing.T) {
	t.Parallel()
	broken := rego.Module{Name: "broken.rego", Source: `package teamgate.ext

import rego.v1

deny contains msg if {
	msg := sprintf("%d", [to_number(input.subject.id)])
}
`}
	eng, _ := newAcme(t, authz.WithModules(broken))
	d, err := eng.Authorize(t.Context(), authz.Request{Subject: "alice", Action: "org.get", Resource: "acme"})
	require.NoError(t, err)
	require.False(t, d.Allowed)
	require.True(t, d.Has("error"), "%+v", d)
	require.Equal(t, uint64(1), eng.Stats().EvalErrors)
}

func TestExtensionsAndHotSwap(t *testing.T) {
	t.Parallel()
	eng, _ := newAcme(t)
	req := authz.Request{Subject: "bill", Action: "runs.get", Resource: "acme/open"}
	d, err := eng.Authorize(t.Context(), req)
	require.NoError(t, err)
	require.False(t, d.Allowed)

	allow := rego.Module{Name: "allow.rego", Source: `package teamgate.ext

import rego.v1

allow contains "billing reads open projects" if {
	input.subject.org_role == "billing"
	input.action == "runs.get"
}

deny contains "olga is suspended" if input.subject.id == "olga"
`}
	require.NoError(t, eng.SetPolicy(t.Context(), []rego.Module{allow}))
	d, err = eng.Authorize(t.Context(), req)
	require.NoError(t, err)
	require.True(t, d.Allowed)
	require.True(t, d.Has("extension_allow"))

	d, err = eng.Authorize(t.Context(), authz.Request{Subject: "olga", Action: "runs.get", Resource: "acme/vision"})
	require.NoError(t, err)
	require.False(t, d.Allowed, "ext.deny wins over the default allow")
	require.True(t, d.Has("extension_deny"))
	page, err := eng.ListProjects(t.Context(), "olga", "acme", authz.Page{})
	require.NoError(t, err)
	require.Empty(t, page.Projects, "an ext.deny hides projects from listings too")
	page, err = eng.ListProjects(t.Context(), "bob", "acme", authz.Page{})
	require.NoError(t, err)
	require.Equal(t, []string{"archive", "nlp", "open", "vision"}, page.Projects)

	d, err = eng.Authorize(t.Context(), authz.Request{Subject: "bill", Action: "runs.get", Resource: "acme/nope"})
	require.NoError(t, err)
	require.False(t, d.Allowed, "ext.allow does not open a missing resource")
	require.True(t, d.Has("not_found"))

	// A module that does not compile leaves the old policy in place.
	err = eng.SetPolicy(t.Context(), []rego.Module{{Name: "bad.rego", Source: "package x\n\nallow if {"}})
	var re *rego.Error
	require.ErrorAs(t, err, &re)
	d, _ = eng.Authorize(t.Context(), req)
	require.True(t, d.Allowed)
}

func TestAuthorizeBatch(t *testing.T) {
	t.Parallel()
	eng, _ := newAcme(t)
	res, err := eng.AuthorizeBatch(t.Context(), []authz.Request{
		{Subject: "bob", Action: "runs.get", Resource: "acme/vision"},
		{Subject: "bob", Action: "runs.nope", Resource: "acme/vision"},
		{Subject: "amir", Action: "runs.get", Resource: "acme/vision"},
	})
	require.NoError(t, err)
	require.Len(t, res, 3)
	require.True(t, res[0].Decision.Allowed)
	require.ErrorIs(t, res[1].Err, teamgate.ErrInvalid)
	require.False(t, res[2].Decision.Allowed)
	require.True(t, res[2].Decision.Has("restricted"))
}

func TestMinRevision(t *testing.T) {
	t.Parallel()
	eng, st := newAcme(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err := eng.Authorize(ctx, authz.Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision", MinRevision: st.Revision() + 1})
	require.ErrorIs(t, err, teamgate.ErrStale)
	d, err := eng.Authorize(t.Context(), authz.Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision", MinRevision: st.Revision()})
	require.NoError(t, err)
	require.Equal(t, st.Revision(), d.Revision)
}

func TestWritesAreSeenByTheNextDecision(t *testing.T) {
	t.Parallel()
	eng, st := newAcme(t)
	req := authz.Request{Subject: "amir", Action: "runs.get", Resource: "acme/vision"}
	d, _ := eng.Authorize(t.Context(), req)
	require.False(t, d.Allowed)
	rev, err := st.Apply(t.Context(), store.PutTeamMember{Org: "acme", Team: "engineering", User: "amir", Role: "viewer"})
	require.NoError(t, err)
	d, _ = eng.Authorize(t.Context(), req)
	require.True(t, d.Allowed)
	require.Equal(t, "admin", d.Role, "org admin keeps admin once a team lets them in")
	require.Equal(t, rev, d.Revision)
	// A policy narrowing teams closes the project on the next decision.
	_, err = st.Apply(t.Context(), store.PutPolicy{Policy: store.Policy{Org: "acme", Name: "gpu-policy", Settings: policy.Settings{Teams: []string{"research"}}}})
	require.NoError(t, err)
	d, _ = eng.Authorize(t.Context(), req)
	require.False(t, d.Allowed)
	require.True(t, d.Has("restricted"))
}

func TestExplain(t *testing.T) {
	t.Parallel()
	eng, _ := newAcme(t)
	x, err := eng.Explain(t.Context(), authz.Request{Subject: "vera", Action: "runs.get", Resource: "acme/nlp"})
	require.NoError(t, err)
	require.True(t, x.Decision.Allowed)
	require.Equal(t, "viewer", x.Input.Subject.OrgRole)
	require.Equal(t, map[string]string{"engineering": "member", "research": "contributor"}, x.Input.Subject.TeamRoles)
	require.Contains(t, x.Path[len(x.Path)-1], "decision: allow, role contributor")
	_, err = eng.Explain(t.Context(), authz.Request{Subject: "vera", Action: "x", Resource: "acme/nlp"})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
}

// TestExplainEffectiveTeams checks that Explain shows how a project's effective teams came
// about: its teams narrowed by its policy's, naming the policy, for the resource and for a
// runs.transfer destination.
func TestExplainEffectiveTeams(t *testing.T) {
	t.Parallel()
	eng, _ := newAcme(t)
	for _, c := range []struct {
		req  authz.Request
		want string
	}{
		{authz.Request{Subject: "vera", Action: "runs.get", Resource: "acme/labs"},
			"effective teams: project teams [engineering] ∩ policy research-only teams [research] = [] → restricted to no team"},
		{authz.Request{Subject: "vera", Action: "runs.get", Resource: "acme/vision"},
			"effective teams: project teams [engineering]; policy gpu-policy restricts no teams = [engineering] → restricted"},
		{authz.Request{Subject: "vera", Action: "runs.get", Resource: "acme/nlp"},
			"effective teams: project teams [research engineering]; no policy = [engineering research] → restricted"},
		{authz.Request{Subject: "vera", Action: "runs.get", Resource: "acme/open"},
			"effective teams: project teams: none; no policy → no restriction"},
		{authz.Request{Subject: "beth", Action: "runs.transfer", Resource: "acme/vision", Attributes: map[string]any{"destination": "acme/labs"}},
			"destination effective teams: project teams [engineering] ∩ policy research-only teams [research] = [] → restricted"},
	} {
		x, err := eng.Explain(t.Context(), c.req)
		require.NoError(t, err)
		found := false
		for _, step := range x.Path {
			found = found || strings.HasPrefix(step, c.want)
		}
		require.True(t, found, "%+v: want a step %q in\n%s", c.req, c.want, strings.Join(x.Path, "\n"))
	}
	// The narration does not restate the role rule: with managers no longer overriding (data),
	// a project restricted to no team is closed to mona, and no step says managers reach it.
	eng, _ = newAcme(t, authz.WithData(map[string]any{"teamgate": map[string]any{"org_override": []any{"owner"}}}))
	x, err := eng.Explain(t.Context(), authz.Request{Subject: "mona", Action: "runs.get", Resource: "acme/labs"})
	require.NoError(t, err)
	require.False(t, x.Decision.Allowed)
	require.True(t, x.Decision.Has(rego.CodeRestricted))
	require.NotContains(t, strings.Join(x.Path, "\n"), "managers")
}

func TestSettingsFollowPolicyChanges(t *testing.T) {
	t.Parallel()
	eng, st := newAcme(t)
	s, err := eng.EffectiveSettings(t.Context(), "acme/vision", "")
	require.NoError(t, err)
	require.Equal(t, []string{"gpu/a100"}, s.Queues.Values)
	again, err := eng.EffectiveSettings(t.Context(), "acme/vision", "")
	require.NoError(t, err)
	require.Equal(t, s.Effective, again.Effective, "a cached read equals the computed one")

	_, err = st.Apply(t.Context(), store.PutPolicy{Policy: store.Policy{Org: "acme", Name: "gpu-policy", Settings: policy.Settings{
		Queues: []string{"gpu/h100"}, ArchivedDeletionInterval: 3}}})
	require.NoError(t, err)
	s, err = eng.EffectiveSettings(t.Context(), "acme/vision", "")
	require.NoError(t, err)
	require.True(t, s.Queues.Restricted)
	require.Empty(t, s.Queues.Values, "project [gpu/a100] ∩ policy [gpu/h100]")
	require.Equal(t, 3, s.ArchivedDeletionInterval.Value)
	require.Equal(t, "policy:gpu-policy", s.ArchivedDeletionInterval.Source)
	require.NotEmpty(t, s.Conflicts)

	_, err = st.Apply(t.Context(), store.PutOrg{Org: store.Org{Name: "acme", Queue: "cpu/small", DefaultPresets: []string{"tiny"}}})
	require.NoError(t, err)
	s, err = eng.EffectiveSettings(t.Context(), "acme/open", "")
	require.NoError(t, err)
	require.Equal(t, "cpu/small", s.Queue.Value, "org defaults reach projects on the next read")

	_, err = eng.EffectiveSettings(t.Context(), "acme/missing", "")
	require.ErrorIs(t, err, teamgate.ErrNotFound)
	_, err = eng.EffectiveSettings(t.Context(), "vision", "")
	require.ErrorIs(t, err, teamgate.ErrInvalid)
}

func TestAdmitErrorsAndFailClosedRules(t *testing.T) {
	t.Parallel()
	eng, st := newAcme(t)
	_, err := eng.Admit(t.Context(), "bob", "acme/vision", policy.Run{Kind: "rocket"})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	_, err = eng.Admit(t.Context(), "bob", "acme/vision", policy.Run{Kind: "job", Runtime: "grid"})
	require.ErrorIs(t, err, teamgate.ErrInvalid, "only matrix and schedule runs have a runtime")

	// A rule that errors at evaluation is a violation.
	_, err = st.Apply(t.Context(), store.PutProject{Project: store.Project{Org: "acme", Name: "open",
		Grants:   map[string]store.Grant{"bob": {Role: "viewer"}},
		Settings: policy.Settings{Rules: []policy.Rule{{Name: "needs-team", Expression: "run.labels.team == 'ml'", Message: "label team=ml"}}}}})
	require.NoError(t, err)
	a, err := eng.Admit(t.Context(), "alice", "acme/open", policy.Run{Kind: "job"})
	require.NoError(t, err)
	require.False(t, a.Allowed)
	require.Equal(t, "rules", a.Violations[0].Field)
	require.Contains(t, a.Violations[0].Message, "could not be evaluated")
	a, err = eng.Admit(t.Context(), "alice", "acme/open", policy.Run{Kind: "job", Labels: map[string]string{"team": "ml"}})
	require.NoError(t, err)
	require.True(t, a.Allowed, "%+v", a)

	// Versions: features are checked like runs.
	v, err := eng.AdmitVersion(t.Context(), "bob", "acme/vision", "component")
	require.NoError(t, err)
	require.False(t, v.Allowed)
	require.Equal(t, "features", v.Violations[0].Field)
	v, err = eng.AdmitVersion(t.Context(), "bob", "acme/vision", "model")
	require.NoError(t, err)
	require.True(t, v.Allowed)
	_, err = eng.AdmitVersion(t.Context(), "bob", "acme/vision", "dataset")
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	require.ErrorContains(t, err, strings.Join(policy.Features(), ", "), "the error lists the features policy knows")
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	eng, _ := newAcme(t)
	var all []string
	page := authz.Page{Limit: 2}
	for {
		p, err := eng.ListProjects(t.Context(), "alice", "acme", page)
		require.NoError(t, err)
		require.LessOrEqual(t, len(p.Projects), 2)
		all = append(all, p.Projects...)
		if p.Next == "" {
			break
		}
		page.After = p.Next
	}
	require.Equal(t, []string{"archive", "labs", "nlp", "open", "vision"}, all)
	p, err := eng.ListProjects(t.Context(), "alice", "nope/team", authz.Page{})
	require.NoError(t, err)
	require.Empty(t, p.Projects)
	_, err = eng.ListProjects(t.Context(), "alice", "a.b", authz.Page{})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	_, err = eng.ListProjects(t.Context(), "alice", "acme", authz.Page{Limit: -1})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	_, err = eng.ListProjects(t.Context(), "al ice", "acme", authz.Page{})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	_, err = eng.ProjectFilter(t.Context(), "al ice", "acme")
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	_, err = eng.ListProjects(t.Context(), "alice", "", authz.Page{})
	require.ErrorIs(t, err, teamgate.ErrInvalid, "alice has no default team")

	f, err := eng.ProjectFilter(t.Context(), "alice", "acme")
	require.NoError(t, err)
	require.True(t, f.All)
	f, err = eng.ProjectFilter(t.Context(), "otto", "acme")
	require.NoError(t, err)
	require.False(t, f.All)
	require.Equal(t, []string{"vision"}, f.Projects)
}

func TestBulkRuns(t *testing.T) {
	t.Parallel()
	eng, _ := newAcme(t)
	runs := []authz.RunRef{
		{UUID: "r1", Project: "vision", CreatedBy: "bob"},
		{UUID: "r2", Project: "nlp", CreatedBy: "olga"},
		{UUID: "r3", Project: "open"},
		{UUID: "r4", Project: "bad..ref"},
	}
	res, err := eng.BulkRuns(t.Context(), "bob", "acme/engineering", "delete_runs", runs, "")
	require.NoError(t, err)
	require.Len(t, res, 4)
	require.True(t, res[0].Decision.Allowed)
	require.True(t, res[0].Decision.Has("own_run"))
	require.False(t, res[1].Decision.Allowed)
	require.True(t, res[1].Decision.Has("insufficient_role"))
	require.False(t, res[2].Decision.Allowed)
	require.True(t, res[2].Decision.Has("not_in_scope"))
	require.ErrorIs(t, res[3].Err, teamgate.ErrInvalid)

	// The scope is checked first: beth is not in engineering.
	res, err = eng.BulkRuns(t.Context(), "beth", "acme/engineering", "get_run", runs[:2], "")
	require.NoError(t, err)
	for _, r := range res {
		require.False(t, r.Decision.Allowed)
		require.True(t, r.Decision.Has("insufficient_role"))
	}
	// Org scope needs org.runs.
	res, err = eng.BulkRuns(t.Context(), "adam", "acme", "stop_runs", runs[:3], "")
	require.NoError(t, err)
	for _, r := range res {
		require.True(t, r.Decision.Allowed, "%+v", r)
	}
	res, err = eng.BulkRuns(t.Context(), "olga", "acme/engineering", "transfer_runs", runs[:1], "acme/nlp")
	require.NoError(t, err)
	require.True(t, res[0].Decision.Allowed)
	_, err = eng.BulkRuns(t.Context(), "olga", "acme/engineering", "transfer_runs", runs[:1], "")
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	_, err = eng.BulkRuns(t.Context(), "olga", "acme", "explode_runs", runs, "")
	require.ErrorIs(t, err, teamgate.ErrInvalid)

	// A run's project named in a team space is resolved in it, as Authorize resolves it: vision
	// is not in research, so that run is not_found even for an owner in org scope (the team part
	// used to be dropped and the run allowed).
	named := []authz.RunRef{{UUID: "r5", Project: "acme/research/vision"}, {UUID: "r6", Project: "acme.research.nlp"}}
	for _, owner := range []string{"acme", "acme/engineering"} {
		res, err = eng.BulkRuns(t.Context(), "alice", owner, "get_run", named, "")
		require.NoError(t, err)
		for i, r := range res {
			want, err := eng.Authorize(t.Context(), authz.Request{Subject: "alice", Action: "runs.get", Resource: named[i].Project})
			require.NoError(t, err)
			require.Equal(t, want.Allowed, r.Decision.Allowed, "%s %+v", owner, r)
		}
		require.True(t, res[0].Decision.Has(rego.CodeNotFound), "%+v", res[0])
		require.True(t, res[1].Decision.Allowed, "%+v", res[1])
	}
}

func TestCreateProject(t *testing.T) {
	t.Parallel()
	eng, st := newAcme(t)
	// bob's default team is acme/engineering, linked to gpu-policy.
	c, err := eng.CreateProject(t.Context(), "bob", "", authz.NewProject{Name: "detector"})
	require.NoError(t, err)
	require.True(t, c.Decision.Allowed)
	require.Equal(t, "acme/detector", c.Project)
	require.Equal(t, st.Revision(), c.Revision)
	require.NoError(t, st.View(func(r store.Reader) error {
		pv, ok := r.Project("acme", "detector")
		require.True(t, ok)
		require.Equal(t, []string{"engineering"}, pv.Project.Teams)
		require.Equal(t, "gpu-policy", pv.Project.Policy)
		require.Equal(t, "bob", pv.Project.CreatedBy)
		return nil
	}))
	p, err := eng.ListProjects(t.Context(), "bob", "acme/engineering", authz.Page{})
	require.NoError(t, err)
	require.Contains(t, p.Projects, "detector")

	_, err = eng.CreateProject(t.Context(), "bob", "acme/engineering", authz.NewProject{Name: "detector"})
	require.ErrorIs(t, err, teamgate.ErrConflict)
	// vera is a member of engineering: below contributor.
	c, err = eng.CreateProject(t.Context(), "vera", "acme/engineering", authz.NewProject{Name: "x"})
	require.NoError(t, err)
	require.False(t, c.Decision.Allowed)
	require.Zero(t, c.Revision)
	// bob may not create at org level; adam may.
	c, _ = eng.CreateProject(t.Context(), "bob", "acme", authz.NewProject{Name: "y"})
	require.False(t, c.Decision.Allowed)
	c, err = eng.CreateProject(t.Context(), "adam", "acme", authz.NewProject{Name: "y"})
	require.NoError(t, err)
	require.True(t, c.Decision.Allowed)
	_, err = eng.CreateProject(t.Context(), "adam", "acme", authz.NewProject{Name: "bad name"})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
}

// randomDirectory builds a random org: members of every role, teams, memberships, policies with
// and without teams, projects open and restricted, grants (outsiders included); opts configure
// the engine.
func randomDirectory(t *testing.T, seed uint64, opts ...authz.Option) (*authz.Engine, []string, []string, []string) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	st, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	cs := []store.Change{store.PutOrg{Org: store.Org{Name: "o"}}}
	var users, teams, projects []string
	for i := range 14 {
		u := fmt.Sprintf("u%d", i)
		users = append(users, u)
		if i < 12 { // u12, u13 are not members
			cs = append(cs, store.PutMember{Org: "o", User: u, Role: store.OrgRoles()[rng.IntN(7)]})
		}
	}
	for i := range 4 {
		team := fmt.Sprintf("t%d", i)
		teams = append(teams, team)
		cs = append(cs, store.PutTeam{Team: store.Team{Org: "o", Name: team}})
		for _, u := range users[:12] {
			if rng.IntN(3) == 0 {
				cs = append(cs, store.PutTeamMember{Org: "o", Team: team, User: u, Role: store.TeamRoles()[rng.IntN(4)]})
			}
		}
	}
	cs = append(cs,
		store.PutPolicy{Policy: store.Policy{Org: "o", Name: "p0", Settings: policy.Settings{Teams: teams[:2]}}},
		store.PutPolicy{Policy: store.Policy{Org: "o", Name: "p1"}})
	for i := range 10 {
		p := store.Project{Org: "o", Name: fmt.Sprintf("proj%d", i), Grants: map[string]store.Grant{}}
		for _, team := range teams {
			if rng.IntN(3) == 0 {
				p.Teams = append(p.Teams, team)
			}
		}
		switch rng.IntN(3) {
		case 0:
			p.Policy = "p0"
		case 1:
			p.Policy = "p1"
		}
		for _, u := range users[:12] {
			if rng.IntN(6) == 0 {
				p.Grants[u] = store.Grant{Role: store.TeamRoles()[rng.IntN(4)]}
			}
		}
		projects = append(projects, p.Name)
		cs = append(cs, store.PutProject{Project: p})
	}
	_, err = st.Apply(t.Context(), cs...)
	require.NoError(t, err)
	// A minute's evaluation budget, not the default second: these are property tests of the
	// rules, and under -race on a loaded 2-core machine an author's module once ran past a
	// second, denied with reason error, and failed TestSuggestionsAllowUnderPoliciesAndData
	// (stop 18). The budget has tests of its own (budget_test.go); opts may set another.
	eng, err := authz.New(t.Context(), st, append([]authz.Option{authz.WithEvalBudget(time.Minute)}, opts...)...)
	require.NoError(t, err)
	return eng, users, teams, projects
}

// TestListingEqualsDecisionsAndSecurityProperties checks, over random directories, that listings
// equal project.get decisions and that the security properties of SPEC §10 hold.
func TestListingEqualsDecisionsAndSecurityProperties(t *testing.T) {
	t.Parallel()
	// Eight seeds under the race detector (iterations): every page size (1 + seed%3) still.
	for seed := range iterations[uint64](25, 8) {
		eng, users, teams, projects := randomDirectory(t, seed)
		ctx := t.Context()
		err := eng.Directory().View(func(r store.Reader) error {
			for _, u := range users {
				orgRole, member := r.OrgRole("o", u)
				listed, err := eng.ListProjects(ctx, u, "o", authz.Page{})
				require.NoError(t, err)
				var want []string
				for _, p := range projects {
					d, err := eng.Authorize(ctx, authz.Request{Subject: u, Action: "project.get", Resource: "o/" + p})
					require.NoError(t, err)
					if d.Allowed {
						want = append(want, p)
					}
					pv, _ := r.Project("o", p)
					_, hasGrant := pv.Project.Grants[u]
					inTeam := false
					for team := range r.TeamRoles("o", u).All {
						inTeam = inTeam || slices.Contains(pv.Teams.Values, team)
					}
					switch {
					case !member:
						require.False(t, d.Allowed, "non-members never get access")
					case orgRole == "owner" || orgRole == "manager":
						require.True(t, d.Allowed)
						require.Equal(t, "admin", d.Role, "owners and managers are always admin")
					case orgRole == "outsider" && d.Allowed:
						require.True(t, hasGrant || inTeam, "outsiders only through a grant or a team")
					case pv.Teams.Restricted && !hasGrant && !inTeam:
						require.False(t, d.Allowed, "restricted projects are closed outside their teams")
					}
				}
				require.Equal(t, nonNil(want), listed.Projects, "seed %d user %s", seed, u)
				// Page by page, the listing is the same.
				var paged []string
				pg := authz.Page{Limit: 1 + int(seed%3)}
				for {
					part, err := eng.ListProjects(ctx, u, "o", pg)
					require.NoError(t, err)
					require.LessOrEqual(t, len(part.Projects), pg.Limit)
					paged = append(paged, part.Projects...)
					if part.Next == "" {
						break
					}
					pg.After = part.Next
				}
				require.Equal(t, nonNil(want), nonNil(paged), "paged, seed %d user %s", seed, u)
				for _, team := range teams {
					listed, err := eng.ListProjects(ctx, u, "o/"+team, authz.Page{})
					require.NoError(t, err)
					var want []string
					for _, p := range r.TeamProjects("o", team) {
						d, _ := eng.Authorize(ctx, authz.Request{Subject: u, Action: "project.get", Resource: "o/" + team + "/" + p})
						if d.Allowed {
							want = append(want, p)
						}
					}
					require.Equal(t, nonNil(want), listed.Projects, "seed %d user %s team %s", seed, u, team)
				}
				// Nobody assigns a role above their own.
				for _, target := range store.OrgRoles() {
					d, err := eng.Authorize(ctx, authz.Request{Subject: u, Action: "members.manage", Resource: "o", Attributes: map[string]any{"target_role": target}})
					require.NoError(t, err)
					if d.Allowed {
						require.LessOrEqual(t, orgRank[target], orgRank[orgRole], "%s (%s) assigned %s", u, orgRole, target)
					}
				}
				// Nor grants or team roles above their own (on a sample of projects, every team).
				for _, res := range append(prefixed("o/", projects[:3]), prefixed("o/", teams)...) {
					action := "project.access"
					if slices.Contains(teams, res[len("o/"):]) {
						action = "team.members.manage"
					}
					requireWithinOwnRole(t, eng, u, action, res, fmt.Sprintf("seed %d", seed))
				}
			}
			return nil
		})
		require.NoError(t, err)
	}
}

// requireWithinOwnRole checks the member-management limit of a project or team action (SPEC
// §4, §10) for subject u on res, against the engine's own answer without attributes: with
// target_role (and target_current_role) the request is allowed exactly when it is without them
// and neither role ranks, by the policy's data, above the subject's own role there.
func requireWithinOwnRole(t *testing.T, eng *authz.Engine, u, action, res, label string) {
	t.Helper()
	ctx := t.Context()
	plain, err := eng.Authorize(ctx, authz.Request{Subject: u, Action: action, Resource: res})
	require.NoError(t, err)
	rank := func(r string) int {
		n, ok := eng.Policy().Rank(r)
		require.True(t, ok, r)
		return n
	}
	for _, target := range store.TeamRoles() {
		for _, current := range append([]string{""}, store.TeamRoles()...) {
			attrs := map[string]any{"target_role": target}
			if current != "" {
				attrs["target_current_role"] = current
			}
			d, err := eng.Authorize(ctx, authz.Request{Subject: u, Action: action, Resource: res, Attributes: attrs})
			require.NoError(t, err)
			within := rank(target) <= rank(plain.Role) && (current == "" || rank(current) <= rank(plain.Role))
			where := fmt.Sprintf("%s: %s (%s) %s %s %v", label, u, plain.Role, action, res, attrs)
			require.Equal(t, plain.Allowed && within, d.Allowed, where)
			require.Equal(t, plain.Role, d.Role, where)
			switch {
			case !plain.Allowed: // the attributes change no other deny
				require.Equal(t, plain.Reasons[0].Code, d.Reasons[0].Code, where)
			case !within:
				require.Equal(t, rego.CodeInsufficientRole, d.Reasons[0].Code, where)
				require.Contains(t, d.Reasons[0].Message, "above their own role "+plain.Role, where)
			}
		}
	}
}

// orgRank is SPEC's order of org roles (members.manage: nobody assigns a role above their own),
// written out rather than read from the policy's data so that the test checks the data against it.
var orgRank = map[string]int{"outsider": 0, "billing": 1, "viewer": 1, "member": 2, "admin": 3, "manager": 4, "owner": 5}

func TestSettingsCacheSurvivesRestartAndNeverGoesStale(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	open := func() (*store.Store, *authz.Engine) { return openDisk(t, dir) }
	st, eng := open()
	_, err := st.LoadFile(ctx, conformance.DataFile())
	require.NoError(t, err)
	first, err := eng.EffectiveSettings(ctx, "acme/vision", "beth")
	require.NoError(t, err)
	require.NoError(t, st.Close())

	st, eng = open()
	again, err := eng.EffectiveSettings(ctx, "acme/vision", "beth")
	require.NoError(t, err)
	require.Equal(t, first.Effective, again.Effective)
	_, err = st.Apply(ctx, store.PutGrant{Org: "acme", Project: "vision", User: "beth", Grant: store.Grant{Role: "admin", Queue: "gpu/h100"}})
	require.NoError(t, err)
	changed, err := eng.EffectiveSettings(ctx, "acme/vision", "beth")
	require.NoError(t, err)
	require.Equal(t, "gpu/a100", changed.Queue.Value, "gpu/h100 is not in the project's queues: ignored")
	require.Equal(t, "queue", changed.Conflicts[0].Field, "the grant change is seen, not the cached value")
	require.NoError(t, st.Close())

	// After another restart the new value is served, not the one cached before the change.
	st, eng = open()
	defer st.Close()
	after, err := eng.EffectiveSettings(ctx, "acme/vision", "beth")
	require.NoError(t, err)
	require.Equal(t, changed.Effective, after.Effective)
	// Mutating a returned value does not reach the cache.
	after.Queues.Values[0] = "mutated"
	fresh, err := eng.EffectiveSettings(ctx, "acme/vision", "beth")
	require.NoError(t, err)
	require.Equal(t, "gpu/a100", fresh.Queues.Values[0])
}

// TestConcurrentDecisionsAndWrites runs decisions while memberships flip; every decision must
// match one of the two states, and after each write returns the next decision sees it.
func TestConcurrentDecisionsAndWrites(t *testing.T) {
	t.Parallel()
	eng, st := newAcme(t)
	ctx := t.Context()
	req := authz.Request{Subject: "amir", Action: "runs.get", Resource: "acme/vision"}
	done := make(chan struct{})
	errs := make(chan error, 4)
	for range 3 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				d, err := eng.Authorize(ctx, req)
				if err != nil {
					errs <- err
					return
				}
				if d.Allowed != (d.Role == "admin") {
					errs <- fmt.Errorf("inconsistent decision %+v", d)
					return
				}
			}
		}()
	}
	for i := range 40 {
		var c store.Change = store.PutTeamMember{Org: "acme", Team: "engineering", User: "amir", Role: "viewer"}
		want := true
		if i%2 == 1 {
			c, want = store.DeleteTeamMember{Org: "acme", Team: "engineering", User: "amir"}, false
		}
		rev, err := st.Apply(ctx, c)
		require.NoError(t, err)
		d, err := eng.Authorize(ctx, req)
		require.NoError(t, err)
		require.Equal(t, want, d.Allowed, "write %d", i)
		require.GreaterOrEqual(t, d.Revision, rev)
	}
	close(done)
	for range 3 {
		require.NoError(t, <-errs)
	}
}

func TestCancelledContextIsAnError(t *testing.T) {
	t.Parallel()
	eng, _ := newAcme(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	d, err := eng.Authorize(ctx, authz.Request{Subject: "alice", Action: "org.get", Resource: "acme"})
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, d.Allowed)
}

// TestGrantMessagesHaveTheirArticle: a grant's message reads "an admin grant", "a viewer grant"
// on every decision path (the compiled path renders the same message as full evaluation).
func TestGrantMessagesHaveTheirArticle(t *testing.T) {
	for _, opts := range [][]authz.Option{nil, {authz.WithDecisionCache(0)}, {authz.WithDecisionCache(0), authz.WithCompiledPath(false)}} {
		eng, _ := newAcme(t, opts...)
		dec, err := eng.Authorize(t.Context(), authz.Request{Subject: "beth", Action: "runs.stop", Resource: "acme/vision"})
		require.NoError(t, err)
		require.Equal(t, []authz.Reason{{Code: rego.CodeGrant, Message: "beth has an admin grant on project acme/vision"}}, dec.Reasons)
	}
}

// TestCreateProjectMinRevision: CreateProject with MinRevision decides only once its store has
// the write it names (a membership written elsewhere, e.g. through another cluster node), and
// writes nothing when ctx ends first.
func TestCreateProjectMinRevision(t *testing.T) {
	t.Parallel()
	eng, st := newAcme(t)
	ctx := t.Context()
	promote := st.Revision() + 1
	done := make(chan authz.Created, 1)
	go func() {
		c, err := eng.CreateProject(ctx, "vera", "acme/engineering", authz.NewProject{Name: "later", MinRevision: promote})
		if err != nil {
			t.Error(err)
		}
		done <- c
	}()
	// vera is a member of engineering (below contributor) until this write.
	_, err := st.Apply(ctx, store.PutTeamMember{Org: "acme", Team: "engineering", User: "vera", Role: "contributor"})
	require.NoError(t, err)
	c := <-done
	require.True(t, c.Decision.Allowed, "%+v", c.Decision)
	require.Greater(t, c.Decision.Revision, promote-1)

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	before := st.Revision()
	_, err = eng.CreateProject(short, "adam", "acme", authz.NewProject{Name: "never", MinRevision: before + 100})
	require.ErrorIs(t, err, teamgate.ErrStale)
	require.Equal(t, before, st.Revision(), "nothing written")
}
