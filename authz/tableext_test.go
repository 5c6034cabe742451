package authz_test

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// keyOnlyModule reads every fact of the decision table's key and nothing else, and puts them in
// its messages: an open door for outsiders on open projects (so listings are unbounded), an
// allow for break-glass grants, and a deny naming every fact, on some actions.
var keyOnlyModule = rego.Module{Name: "keyonly.rego", Source: `package teamgate.ext

import rego.v1

deny contains sprintf("%s on %s by %s: grant %q%v, team role %s, restricted %v", [input.action, input.resource.kind, input.subject.org_role, input.subject.grant, input.subject.break_glass, input.subject.team_role, input.resource.restricted]) if {
	input.action in {"runs.stop", "team.update", "org.get", "members.manage"}
	input.subject.team_role != "admin"
	input.resource.exists
}

allow contains sprintf("break-glass %s", [input.subject.grant]) if input.subject.break_glass

allow contains "outsiders read open projects" if {
	input.subject.org_role == "none"
	input.action == "project.get"
	not input.resource.restricted
}
`}

// TestAuthorCellsAgreeWithEvaluation: with an author's module that reads only the table's key,
// the compiled path (cells of the author's policy) and the cache decide every request of random
// directories exactly as full evaluation — allow, role, reasons and messages, the module's own
// and the engine's — and so do the listings (ListProjects, ListSubjects, unbounded ones too),
// Suggest and DiffPolicy, which ask the table.
func TestAuthorCellsAgreeWithEvaluation(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(19, 91))
	datas := []map[string]any{nil, randomData(rng), randomData(rng)}
	for di, data := range datas {
		st, users, teams, projects := codesDirectory(t, rand.New(rand.NewPCG(uint64(di), 19)), store.Options{})
		// A minute's budget: under -race on a loaded machine a decision may take past the default second.
		opts := []authz.Option{authz.WithModules(keyOnlyModule), authz.WithEvalBudget(time.Minute)}
		if data != nil {
			opts = append(opts, authz.WithData(data))
		}
		engs := engines(t, st, opts...)
		require.NotNil(t, engs["compiled"].Policy().Table(), engs["compiled"].Policy().NoTable())
		var resources []string
		resources = append(resources, "o", "nope", "o/nope")
		for _, tm := range teams {
			resources = append(resources, "o/"+tm)
		}
		for _, p := range projects {
			resources = append(resources, "o/"+p, "o/"+teams[di%len(teams)]+"/"+p)
		}
		actions := []string{"runs.stop", "runs.get", "project.get", "project.access", "team.update", "team.get", "org.get", "members.manage"}
		for _, a := range actions {
			for _, res := range resources {
				for _, u := range users {
					req := authz.Request{Subject: u, Action: a, Resource: res}
					want, wantErr := engs["rego"].Authorize(t.Context(), req)
					for _, name := range []string{"compiled", "cached"} {
						got, err := engs[name].Authorize(t.Context(), req)
						require.Equal(t, wantErr, err, "data %d %s %+v", di, name, req)
						require.Equal(t, want, got, "data %d %s %+v", di, name, req)
					}
					if wantErr == nil && !want.Allowed && di == 0 {
						req.Suggest = true
						want, _ := engs["rego"].Authorize(t.Context(), req)
						got, err := engs["compiled"].Authorize(t.Context(), req)
						require.NoError(t, err)
						require.Equal(t, want, got, "suggestions %+v", req)
					}
				}
			}
		}
		require.NotZero(t, engs["compiled"].Stats().Compiled)
		for _, u := range users {
			want, wantErr := engs["rego"].ListProjects(t.Context(), u, "o", authz.Page{})
			got, err := engs["compiled"].ListProjects(t.Context(), u, "o", authz.Page{})
			require.Equal(t, wantErr, err, u)
			require.Equal(t, want, got, "ListProjects %s", u)
		}
		unbounded := false
		for _, res := range resources {
			for _, a := range []string{"project.get", "runs.stop", "team.update"} {
				want, wantErr := engs["rego"].ListSubjects(t.Context(), a, res, authz.Page{})
				got, err := engs["compiled"].ListSubjects(t.Context(), a, res, authz.Page{})
				require.Equal(t, wantErr, err, "%s %s", a, res)
				require.Equal(t, want, got, "ListSubjects %s %s", a, res)
				unbounded = unbounded || got.Unbounded
			}
		}
		require.True(t, unbounded, "outsiders read open projects: some listing is unbounded")
		// DiffPolicy to the default rules (the module's effect): by the tables (the compiled
		// engine) as by evaluation, decision for decision, messages included.
		var back authz.Candidate
		if data != nil {
			back.Data = []map[string]any{data}
		}
		want, err := engs["rego"].DiffPolicy(t.Context(), back, 0)
		require.NoError(t, err)
		got, err := engs["compiled"].DiffPolicy(t.Context(), back, 0)
		require.NoError(t, err)
		require.Equal(t, authz.DiffByTable, got.Method)
		require.Equal(t, want.Decisions, got.Decisions, "data %d", di)
		require.Equal(t, want.Fingerprint, got.Fingerprint)
		require.NotEmpty(t, got.Decisions, "the module changes decisions")
		require.True(t, slices.ContainsFunc(got.Cells, func(ch authz.CellChange) bool { return ch.BreakGlass }),
			"the cells of an author's table cover break-glass grants")
	}
}
