package authz_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// requireListingsMatchDecisions checks, for every user and every scope (org "o" and each team
// space), that ListProjects — whole and page by page — and ProjectFilter equal the project.get
// decisions on the scope's projects.
func requireListingsMatchDecisions(t *testing.T, eng *authz.Engine, users, teams, projects []string, label string) {
	t.Helper()
	ctx := t.Context()
	universe := map[string][]string{"o": slices.Sorted(slices.Values(projects))}
	require.NoError(t, eng.Directory().View(func(r store.Reader) error {
		for _, team := range teams {
			universe["o/"+team] = slices.Clone(r.TeamProjects("o", team))
		}
		return nil
	}))
	for _, u := range users {
		for owner, names := range universe {
			want := []string{}
			for _, p := range names {
				d, err := eng.Authorize(ctx, authz.Request{Subject: u, Action: "project.get", Resource: owner + "/" + p})
				require.NoError(t, err)
				if d.Allowed {
					want = append(want, p)
				}
			}
			where := fmt.Sprintf("%s: user %s owner %s", label, u, owner)
			listed, err := eng.ListProjects(ctx, u, owner, authz.Page{})
			require.NoError(t, err)
			require.Equal(t, want, listed.Projects, where)
			require.Empty(t, listed.Next, where)
			for limit := 1; limit <= 3; limit++ {
				paged := []string{}
				pg := authz.Page{Limit: limit}
				for {
					part, err := eng.ListProjects(ctx, u, owner, pg)
					require.NoError(t, err)
					require.LessOrEqual(t, len(part.Projects), limit, where)
					paged = append(paged, part.Projects...)
					if part.Next == "" {
						break
					}
					require.Equal(t, part.Projects[len(part.Projects)-1], part.Next, where)
					require.Greater(t, part.Next, pg.After, "%s: the cursor moves on", where)
					pg.After = part.Next
				}
				require.Equal(t, want, paged, "%s limit %d", where, limit)
			}
			f, err := eng.ProjectFilter(ctx, u, owner)
			require.NoError(t, err)
			require.Equal(t, "o", f.Org, where)
			if f.All {
				require.Equal(t, "o", owner, "%s: only an org filter is All", where)
				require.Equal(t, universe["o"], want, where)
				require.Empty(t, f.Projects, where)
			} else {
				require.Equal(t, want, f.Projects, where)
			}
		}
	}
}

// randomExtModule writes an author's module of a few ext.allow and ext.deny rules, each on one or
// two random conditions a listing cannot see from the role facts: a project name, an org role, a
// user id, a team membership, the team space of the reference, a project's teams.
func randomExtModule(rng *rand.Rand, users, teams, projects []string) rego.Module {
	pick := func(from []string) string { return from[rng.IntN(len(from))] }
	cond := func() string {
		switch rng.IntN(7) {
		case 0:
			return fmt.Sprintf("input.resource.project == %q", pick(projects))
		case 1:
			return fmt.Sprintf("input.subject.org_role == %q", pick(store.OrgRoles()))
		case 2:
			return fmt.Sprintf("input.subject.id == %q", pick(users))
		case 3:
			return fmt.Sprintf("input.subject.team_roles[%q]", pick(teams))
		case 4:
			return fmt.Sprintf("input.subject.team_roles[%q] == %q", pick(teams), pick(store.TeamRoles()))
		case 5:
			return fmt.Sprintf("input.resource.team == %q", pick(teams))
		default:
			return fmt.Sprintf("%q in input.resource.teams", pick(teams))
		}
	}
	var b strings.Builder
	b.WriteString("package teamgate.ext\n\nimport rego.v1\n")
	for i := range 2 + rng.IntN(4) {
		kind := "allow"
		if i > 0 && rng.IntN(3) == 0 {
			kind = "deny"
		}
		fmt.Fprintf(&b, "\n%s contains \"rule %d\" if {\n", kind, i)
		if rng.IntN(2) == 0 {
			b.WriteString("\tinput.action == \"project.get\"\n")
		}
		for range 1 + rng.IntN(2) {
			b.WriteString("\t" + cond() + "\n")
		}
		b.WriteString("}\n")
	}
	return rego.Module{Name: "random_ext.rego", Source: b.String()}
}

// TestListingsEqualDecisionsUnderRandomExtModules: with authors' modules that open and close
// projects on facts the role rule does not read, listings still equal project.get (an ext.allow
// that opens a project used to be missing from every listing).
func TestListingsEqualDecisionsUnderRandomExtModules(t *testing.T) {
	t.Parallel()
	opened := 0
	for seed := range uint64(16) {
		plain, users, teams, projects := randomDirectory(t, seed)
		mod := randomExtModule(rand.New(rand.NewPCG(seed, 7)), users, teams, projects)
		eng, _, _, _ := randomDirectory(t, seed, authz.WithModules(mod))
		requireListingsMatchDecisions(t, eng, users, teams, projects, fmt.Sprintf("seed %d\n%s", seed, mod.Source))
		for _, u := range users {
			base, err := plain.ListProjects(t.Context(), u, "o", authz.Page{})
			require.NoError(t, err)
			ext, err := eng.ListProjects(t.Context(), u, "o", authz.Page{})
			require.NoError(t, err)
			for _, p := range ext.Projects {
				if !slices.Contains(base.Projects, p) {
					opened++
				}
			}
		}
	}
	require.Positive(t, opened, "some module opens a project the default policy keeps closed")
}

// TestListingsEqualDecisionsUnderDataOnlyPolicies: data that re-maps org roles changes listings
// exactly as it changes decisions.
func TestListingsEqualDecisionsUnderDataOnlyPolicies(t *testing.T) {
	t.Parallel()
	docs := []map[string]any{
		{"teamgate": map[string]any{"org_base": map[string]any{"billing": "viewer", "outsider": "viewer"}}},
		{"teamgate": map[string]any{"org_base": map[string]any{"member": "none", "viewer": "none"}}},
		{"teamgate": map[string]any{"actions": map[string]any{"project.get": map[string]any{"kind": "project", "role": "contributor"}}}},
	}
	for i, doc := range docs {
		for seed := range uint64(6) {
			eng, users, teams, projects := randomDirectory(t, seed, authz.WithData(doc))
			requireListingsMatchDecisions(t, eng, users, teams, projects, fmt.Sprintf("data %d seed %d", i, seed))
		}
	}
}

// TestListingsEqualDecisionsWithoutCompiledPath: listings ask the table even when Authorize does
// not use it.
func TestListingsEqualDecisionsWithoutCompiledPath(t *testing.T) {
	t.Parallel()
	for seed := range uint64(6) {
		eng, users, teams, projects := randomDirectory(t, seed, authz.WithCompiledPath(false))
		requireListingsMatchDecisions(t, eng, users, teams, projects, fmt.Sprintf("seed %d", seed))
	}
}

func TestListingsFollowPolicyChanges(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	eng, _ := newAcme(t)
	list := func(subject, owner string) []string {
		t.Helper()
		p, err := eng.ListProjects(ctx, subject, owner, authz.Page{})
		require.NoError(t, err)
		return p.Projects
	}
	require.Equal(t, []string{"vision"}, list("otto", "acme"))
	require.Empty(t, list("bill", "acme"))

	// An ext.allow opens acme/open to otto: the listing, the filter and the decision agree.
	openToOtto := rego.Module{Name: "otto.rego", Source: `package teamgate.ext

import rego.v1

allow contains "otto reads open" if {
	input.action == "project.get"
	input.subject.id == "otto"
	input.resource.project == "open"
}
`}
	require.NoError(t, eng.SetPolicy(ctx, []rego.Module{openToOtto}))
	d, err := eng.Authorize(ctx, authz.Request{Subject: "otto", Action: "project.get", Resource: "acme/open"})
	require.NoError(t, err)
	require.True(t, d.Allowed)
	require.Equal(t, []string{"open", "vision"}, list("otto", "acme"))
	f, err := eng.ProjectFilter(ctx, "otto", "acme")
	require.NoError(t, err)
	require.Equal(t, []string{"open", "vision"}, f.Projects)

	// Data alone: billing's base role becomes viewer, so bill sees the open projects.
	require.NoError(t, eng.SetPolicy(ctx, nil, map[string]any{"teamgate": map[string]any{"org_base": map[string]any{"billing": "viewer"}}}))
	require.Equal(t, []string{"archive", "open"}, list("bill", "acme"))

	// Back to the default policy.
	require.NoError(t, eng.SetPolicy(ctx, nil))
	require.Equal(t, []string{"vision"}, list("otto", "acme"))
	require.Empty(t, list("bill", "acme"))
}

func TestListingHonoursContext(t *testing.T) {
	t.Parallel()
	mod := rego.Module{Name: "m.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\nallow contains \"x\" if input.subject.id == \"otto\"\n"}
	for _, opts := range [][]authz.Option{nil, {authz.WithModules(mod)}} {
		eng, _ := newAcme(t, opts...)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := eng.ListProjects(ctx, "otto", "acme", authz.Page{})
		require.ErrorIs(t, err, context.Canceled)
	}
}

func TestBulkVersionListings(t *testing.T) {
	t.Parallel()
	eng, st := newAcme(t)
	// A project that excludes artifacts itself (vision excludes components through gpu-policy).
	_, err := st.Apply(t.Context(), store.PutProject{Project: store.Project{Org: "acme", Name: "sealed",
		Teams: []string{"engineering"}, Settings: policy.Settings{ExcludedFeatures: []string{"artifact"}}}})
	require.NoError(t, err)
	runs := []authz.RunRef{{UUID: "r1", Project: "vision"}, {UUID: "r2", Project: "nlp"}, {UUID: "r3", Project: "sealed"}, {UUID: "r4", Project: "open"}}
	type want struct {
		allowed bool
		code    rego.Code
	}
	for _, tc := range []struct {
		subject, owner, op string
		want               []want
	}{
		{"olga", "acme/engineering", "list_component_versions", []want{
			{false, "feature_excluded"}, {true, "team_role"}, {true, "team_role"}, {false, "not_in_scope"}}},
		{"olga", "acme/engineering", "list_model_versions", []want{
			{true, "team_role"}, {true, "team_role"}, {true, "team_role"}, {false, "not_in_scope"}}},
		{"olga", "acme/engineering", "list_artifact_versions", []want{
			{true, "team_role"}, {true, "team_role"}, {false, "feature_excluded"}, {false, "not_in_scope"}}},
		// Org scope: adam (org admin) reaches every project.
		{"adam", "acme", "list_component_versions", []want{
			{false, "feature_excluded"}, {true, "org_role"}, {true, "org_role"}, {true, "org_role"}}},
		{"adam", "acme", "list_artifact_versions", []want{
			{true, "org_role"}, {true, "org_role"}, {false, "feature_excluded"}, {true, "org_role"}}},
		// The permission comes first: otto is denied by the scope, before any feature check.
		{"otto", "acme", "list_component_versions", []want{
			{false, "insufficient_role"}, {false, "insufficient_role"}, {false, "insufficient_role"}, {false, "insufficient_role"}}},
	} {
		res, err := eng.BulkRuns(t.Context(), tc.subject, tc.owner, tc.op, runs, "")
		require.NoError(t, err)
		require.Len(t, res, len(runs))
		for i, w := range tc.want {
			where := fmt.Sprintf("%s %s %s run %s: %+v", tc.subject, tc.owner, tc.op, runs[i].UUID, res[i].Decision)
			require.NoError(t, res[i].Err, where)
			require.Equal(t, w.allowed, res[i].Decision.Allowed, where)
			require.True(t, res[i].Decision.Has(w.code), where)
			if w.code == rego.CodeFeatureExcluded {
				kind := strings.TrimSuffix(strings.TrimPrefix(tc.op, "list_"), "_versions")
				require.Contains(t, res[i].Decision.Reasons[0].Message, "feature "+kind+" is excluded", where)
				require.NotEqual(t, "none", res[i].Decision.Role, "the role is the one versions.list found: %s", where)
				// The same kind is refused by AdmitVersion: one check.
				adm, err := eng.AdmitVersion(t.Context(), "alice", "acme/"+runs[i].Project, kind)
				require.NoError(t, err)
				require.False(t, adm.Allowed)
			}
		}
	}
	for op, action := range map[string]string{"list_component_versions": "versions.list", "list_model_versions": "versions.list", "list_artifact_versions": "versions.list"} {
		got, ok := authz.BulkAction(op)
		require.True(t, ok, op)
		require.Equal(t, action, got)
	}
	_, err = eng.BulkRuns(t.Context(), "bob", "acme/engineering", "list_runtime_versions", runs, "")
	require.ErrorIs(t, err, teamgate.ErrInvalid)
}

// TestListingPathFollowsTheTable: with the default rules — authors' data included — a listing
// asks the decision table and makes no per-project decision; with an author's module it decides
// project.get for the projects it lists from.
func TestListingPathFollowsTheTable(t *testing.T) {
	t.Parallel()
	mod := rego.Module{Name: "m.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\nallow contains \"x\" if input.subject.id == \"otto\"\n"}
	data := map[string]any{"teamgate": map[string]any{"org_base": map[string]any{"billing": "viewer"}}}
	for _, tc := range []struct {
		name      string
		opts      []authz.Option
		decisions bool
	}{
		{"default", nil, false},
		{"data only", []authz.Option{authz.WithData(data)}, false},
		{"data only, compiled path off", []authz.Option{authz.WithData(data), authz.WithCompiledPath(false)}, false},
		{"module", []authz.Option{authz.WithModules(mod)}, true},
	} {
		eng, _ := newAcme(t, append(tc.opts, authz.WithDecisionCache(0))...)
		for _, owner := range []string{"acme", "acme/engineering"} {
			_, err := eng.ListProjects(t.Context(), "bill", owner, authz.Page{})
			require.NoError(t, err)
		}
		s := eng.Stats()
		require.Equal(t, tc.decisions, s.Evaluated+s.Compiled > 0, "%s: %+v", tc.name, s)
	}
}

// randomData is a data-only policy that re-ranks the team roles, re-maps every org role, picks
// which org roles override and re-ranks a few actions.
func randomData(rng *rand.Rand) map[string]any {
	roles := store.TeamRoles()
	ranks := map[string]any{"none": 0}
	for i, r := range rng.Perm(len(roles)) {
		ranks[roles[r]] = i + 1
	}
	projectRoles := append([]string{"none"}, roles...)
	base := map[string]any{}
	override := []any{}
	for _, o := range store.OrgRoles() {
		base[o] = projectRoles[rng.IntN(len(projectRoles))]
		if rng.IntN(3) == 0 {
			override = append(override, o)
		}
	}
	actions := map[string]any{}
	for _, a := range []string{"project.get", "runs.stop", "runs.approve", "team.get", "team.update", "project.access", "team.members.manage"} {
		actions[a] = map[string]any{"role": roles[rng.IntN(len(roles))]}
	}
	return map[string]any{"teamgate": map[string]any{"ranks": ranks, "org_base": base, "org_override": override, "actions": actions}}
}

// TestRandomDataAgreesOnEveryPath: under random data-only policies (re-ranked roles, re-mapped
// org roles, other overriding roles, re-ranked actions) full evaluation, the decision table and
// the cache decide alike on random directories, and listings equal project.get. Grants and team
// roles (project.access, team.members.manage) are asked with and without the roles they give
// and change (valid and not), and keep within the subject's own role (requireWithinOwnRole).
func TestRandomDataAgreesOnEveryPath(t *testing.T) {
	t.Parallel()
	actions := []string{"project.get", "runs.get", "runs.stop", "runs.approve", "org.get", "projects.create", "org.runs",
		"team.get", "team.update", "team.delete", "team.projects.create", "project.access", "team.members.manage"}
	targets := append(store.TeamRoles(), "owner", "none", "")
	limited := 0 // requests the limit denied that were allowed without attributes
	// Four seeds under the race detector (iterations); the limit still denies some request.
	for seed := range iterations[uint64](12, 4) {
		rng := rand.New(rand.NewPCG(seed, 11))
		data := randomData(rng)
		cached, users, teams, projects := randomDirectory(t, seed, authz.WithData(data))
		engs := engines(t, cached.Directory().(*store.Store), authz.WithData(data))
		label := fmt.Sprintf("seed %d data %v", seed, data)
		for range 400 {
			req := randomRequest(rng, actions, users, teams, projects)
			if spec, _ := engs["rego"].Policy().Action(req.Action); spec.ManagesMembers && rng.IntN(3) > 0 {
				req.Attributes = map[string]any{}
				for _, k := range []string{"target_role", "target_current_role"} {
					if r := targets[rng.IntN(len(targets))]; r != "" {
						req.Attributes[k] = r
					}
				}
				if len(req.Attributes) > 0 && rng.IntN(2) == 0 {
					plain := req
					plain.Attributes = nil
					p, err := engs["compiled"].Authorize(t.Context(), plain)
					d, errA := engs["compiled"].Authorize(t.Context(), req)
					if err == nil && errA == nil && p.Allowed && !d.Allowed {
						limited++
					}
				}
			}
			want, err := engs["rego"].Authorize(t.Context(), req)
			for _, name := range []string{"compiled", "cached", "cached"} {
				got, gotErr := engs[name].Authorize(t.Context(), req)
				require.Equal(t, err == nil, gotErr == nil, "%s %s %+v", label, name, req)
				if err == nil {
					want.Revision = got.Revision
					require.Equal(t, want, got, "%s %s %+v", label, name, req)
				}
			}
		}
		requireListingsMatchDecisions(t, engs["rego"], users, teams, projects, label)
		requireListingsMatchDecisions(t, engs["compiled"], users, teams, projects, label)
		for _, u := range users[:6] {
			requireWithinOwnRole(t, engs["compiled"], u, "project.access", "o/"+projects[int(seed)%len(projects)], label)
			requireWithinOwnRole(t, engs["compiled"], u, "team.members.manage", "o/"+teams[int(seed)%len(teams)], label)
		}
	}
	require.Positive(t, limited, "random data where the member-management limit denies")
}
