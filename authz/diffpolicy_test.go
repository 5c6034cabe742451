package authz_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
	"github.com/teamgate/teamgate/store"
)

// optionsOf are the engine options that load c.
func optionsOf(c authz.Candidate, more ...authz.Option) []authz.Option {
	// A minute's evaluation budget, as randomDirectory's: under -race at load 19 one evaluation
	// of a random module in DiffPolicy ran past the default second and denied with reason
	// error, failing TestDiffPolicyEqualsBruteForce (stop 19). more may set another.
	opts := append([]authz.Option{authz.WithEvalBudget(time.Minute), authz.WithModules(c.Modules...)}, more...)
	for _, d := range c.Data {
		opts = append(opts, authz.WithData(d))
	}
	return opts
}

// randomCandidate is the default policy, random data (re-ranked roles, re-mapped org roles), a
// random ext.allow/ext.deny module, or both.
func randomCandidate(rng *rand.Rand, users, teams, projects []string) authz.Candidate {
	var c authz.Candidate
	k := rng.IntN(4)
	if k&1 != 0 {
		c.Data = []map[string]any{randomData(rng)}
	}
	if k&2 != 0 {
		c.Modules = []rego.Module{randomExtModule(rng, users, teams, projects)}
	}
	return c
}

// knownSubjects are the org's members and the holders of grants on its projects, and with anyone
// the directory's user records, sorted.
func knownSubjects(t *testing.T, eng *authz.Engine, anyone bool) []string {
	t.Helper()
	var out []string
	require.NoError(t, eng.Directory().View(func(r store.Reader) error {
		out = slices.Collect(maps.Keys(r.Members("o")))
		if anyone {
			out = append(out, r.Users()...)
		}
		for _, p := range r.Projects("o") {
			pv, _ := r.Project("o", p)
			out = append(out, slices.Collect(maps.Keys(pv.Project.Grants))...)
		}
		return nil
	}))
	slices.Sort(out)
	return slices.Compact(out)
}

// bruteForceDiff decides every (subject, resource, action) — the org, its teams and its
// projects, each with the actions of its kind — with an engine of each policy and lists the
// decisions that differ, as DiffPolicy orders them.
func bruteForceDiff(t *testing.T, cur, cand *authz.Engine, subjects, teams, projects []string) []authz.DecisionChange {
	t.Helper()
	type resource struct {
		name string
		kind scope.Kind
	}
	resources := []resource{{"o", scope.KindOrg}}
	for _, team := range teams {
		resources = append(resources, resource{"o/" + team, scope.KindTeam})
	}
	for _, p := range projects {
		resources = append(resources, resource{"o/" + p, scope.KindProject})
	}
	slices.SortFunc(resources, func(a, b resource) int { return strings.Compare(a.name, b.name) })
	actions := func(kind scope.Kind) []string {
		var out []string
		for _, a := range cur.Policy().Actions() {
			x, _ := cur.Policy().Action(a)
			y, ok := cand.Policy().Action(a)
			if x.Kind == kind && ok && y.Kind == kind {
				out = append(out, a)
			}
		}
		slices.Sort(out)
		return out
	}
	out := []authz.DecisionChange{}
	for _, u := range subjects {
		for _, res := range resources {
			for _, a := range actions(res.kind) {
				req := authz.Request{Subject: u, Action: a, Resource: res.name}
				b, err := cur.Authorize(t.Context(), req)
				require.NoError(t, err)
				f, err := cand.Authorize(t.Context(), req)
				require.NoError(t, err)
				if b.Allowed != f.Allowed || b.Role != f.Role || !slices.Equal(reasonCodes(b), reasonCodes(f)) {
					ch := authz.DecisionChange{Subject: u, Action: a, Before: b, After: f}
					if res.kind == scope.KindProject {
						ch.Project = res.name
					} else {
						ch.Resource = res.name
					}
					out = append(out, ch)
				}
			}
		}
	}
	return out
}

// TestDiffPolicyEqualsBruteForce: over random directories, with random current and candidate
// policies (data, authors' modules, both or neither), DiffPolicy lists exactly the decisions
// that differ between an engine of each policy, with their decisions as Authorize makes them,
// and counts them per action.
func TestDiffPolicyEqualsBruteForce(t *testing.T) {
	t.Parallel()
	changed, resources, methods := 0, 0, map[string]int{}
	// Four seeds under the race detector (iterations): both methods, org and team changes still
	// come up (the checks after the loop).
	for seed := range iterations[uint64](10, 4) {
		rng := rand.New(rand.NewPCG(seed, 12))
		base, users, teams, projects := randomDirectory(t, seed)
		curC, candC := randomCandidate(rng, users, teams, projects), randomCandidate(rng, users, teams, projects)
		st := base.Directory().(*store.Store)
		// u12 is no member but has a user record: only authors' modules can change its decisions.
		_, err := st.Apply(t.Context(), store.PutUser{User: store.User{ID: "u12"}})
		require.NoError(t, err)
		cur, err := authz.New(t.Context(), st, optionsOf(curC)...)
		require.NoError(t, err)
		cand, err := authz.New(t.Context(), st, optionsOf(candC)...)
		require.NoError(t, err)
		label := fmt.Sprintf("seed %d current %+v candidate %+v", seed, curC, candC)

		got, err := cur.DiffPolicy(t.Context(), candC, 0)
		require.NoError(t, err, label)
		anyone := curC.Modules != nil || candC.Modules != nil
		subjects := knownSubjects(t, cur, anyone)
		want := bruteForceDiff(t, cur, cand, subjects, teams, projects)
		for i := range got.Decisions {
			got.Decisions[i].Before.Revision, got.Decisions[i].After.Revision = 0, 0
		}
		for i := range want {
			want[i].Before.Revision, want[i].After.Revision = 0, 0
		}
		require.Equal(t, want, got.Decisions, label)
		require.False(t, got.Truncated)
		require.Equal(t, len(subjects)*(1+len(teams)+len(projects)), got.Pairs)
		total := 0
		for _, a := range got.Actions {
			total += a.Decisions
			require.LessOrEqual(t, a.Granted+a.Revoked, a.Decisions)
		}
		require.Equal(t, len(want), total, label)
		changed += total
		for _, d := range got.Decisions {
			if d.Resource != "" {
				resources++
			}
		}
		methods[got.Method]++
		if curC.Modules != nil || candC.Modules != nil {
			require.Equal(t, authz.DiffByEvaluation, got.Method)
			require.Empty(t, got.Cells)
		}
	}
	require.Positive(t, changed, "some candidate changes some decision")
	require.Positive(t, resources, "some candidate changes an org or team decision")
	require.Positive(t, methods[authz.DiffByTable], "the table path is exercised")
	require.Positive(t, methods[authz.DiffByEvaluation], "the evaluation path is exercised")
}

// TestDiffPolicyTableEqualsEvaluation: where both policies have a decision table, the table path
// and full evaluation (compiled path off) give the same diff, fingerprint included.
func TestDiffPolicyTableEqualsEvaluation(t *testing.T) {
	t.Parallel()
	// Two seeds under the race detector (iterations): an even and an odd one, the current
	// policy default and random data.
	for seed := range iterations[uint64](4, 2) {
		rng := rand.New(rand.NewPCG(seed, 13))
		base, _, _, _ := randomDirectory(t, seed)
		st := base.Directory().(*store.Store)
		curC, candC := authz.Candidate{}, authz.Candidate{Data: []map[string]any{randomData(rng)}}
		if seed%2 == 1 {
			curC.Data = []map[string]any{randomData(rng)}
		}
		table, err := authz.New(t.Context(), st, optionsOf(curC)...)
		require.NoError(t, err)
		eval, err := authz.New(t.Context(), st, optionsOf(curC, authz.WithCompiledPath(false))...)
		require.NoError(t, err)
		a, err := table.DiffPolicy(t.Context(), candC, 0)
		require.NoError(t, err)
		b, err := eval.DiffPolicy(t.Context(), candC, 0)
		require.NoError(t, err)
		require.Equal(t, authz.DiffByTable, a.Method)
		require.Equal(t, authz.DiffByEvaluation, b.Method)
		b.Method = a.Method
		require.Equal(t, a, b, "seed %d", seed)
		require.NotEmpty(t, a.Cells, "seed %d: random data changes some cell", seed)
	}
}

// TestDiffPolicyCellsAndActions: the fact space lists the cells a data change flips even where
// the directory has no such subject, catalog changes are reported, and a limit cuts the lists
// but neither the counts nor the fingerprint.
func TestDiffPolicyCellsAndActions(t *testing.T) {
	t.Parallel()
	eng, _ := newAcme(t)
	cand := authz.Candidate{Data: []map[string]any{{"teamgate": map[string]any{"actions": map[string]any{
		"project.get": map[string]any{"kind": "project", "role": "member"},
		"runs.export": map[string]any{"kind": "project", "role": "viewer"},
	}}}}}
	d, err := eng.DiffPolicy(t.Context(), cand, 0)
	require.NoError(t, err)
	require.Equal(t, authz.DiffByTable, d.Method)
	require.Equal(t, []string{"runs.export"}, d.ActionsAdded)
	require.Equal(t, []string{}, d.ActionsRemoved)
	viewer := authz.CellChange{Action: "project.get", Exists: true, OrgRole: "viewer", Grant: "", TeamRoles: []string{},
		Before: authz.CellVerdict{Allowed: true, Role: "viewer", Codes: []rego.Code{rego.CodeOrgRole}},
		After:  authz.CellVerdict{Allowed: false, Role: "viewer", Codes: []rego.Code{rego.CodeInsufficientRole}}}
	require.Contains(t, d.Cells, viewer)
	for _, c := range d.Cells {
		require.Equal(t, "project.get", c.Action, "only project.get is re-ranked")
		require.True(t, c.Before.Allowed && !c.After.Allowed)
	}
	require.Equal(t, []authz.ActionDiff{{Action: "project.get", Cells: len(d.Cells), Decisions: len(d.Decisions), Revoked: len(d.Decisions)}}, d.Actions)
	require.NotEmpty(t, d.Decisions)

	cut, err := eng.DiffPolicy(t.Context(), cand, 1)
	require.NoError(t, err)
	require.True(t, cut.Truncated)
	require.Len(t, cut.Cells, 1)
	require.Len(t, cut.Decisions, 1)
	require.Equal(t, d.Actions, cut.Actions)
	require.Equal(t, d.Fingerprint, cut.Fingerprint)

	same, err := eng.DiffPolicy(t.Context(), authz.Candidate{}, 0)
	require.NoError(t, err)
	require.Equal(t, authz.PolicyDiff{Revision: d.Revision, Fingerprint: same.Fingerprint, Method: authz.DiffByTable,
		ActionsAdded: []string{}, ActionsRemoved: []string{}, Pairs: d.Pairs, Actions: []authz.ActionDiff{},
		Cells: []authz.CellChange{}, Decisions: []authz.DecisionChange{}}, same, "the policy in force changes nothing")
	require.NotEqual(t, d.Fingerprint, same.Fingerprint)

	_, err = eng.DiffPolicy(t.Context(), cand, -1)
	require.ErrorIs(t, err, teamgate.ErrInvalid)
}

// TestSetPolicyIf: the reviewed diff applies; after a write that changes the diff the same
// fingerprint is refused with ErrConflict and nothing changes; after a write that does not change
// TestDiffPolicyCellsAreCopies: a cell change's verdicts are read from the decision tables the
// engine decides with, so their reason codes must be copies: a caller changing them (here every
// code of every cell, before and after) changes neither a later DiffPolicy nor any decision.
func TestDiffPolicyCellsAreCopies(t *testing.T) {
	t.Parallel()
	eng, _ := newAcme(t, authz.WithDecisionCache(0)) // every decision from the table
	cand := authz.Candidate{Data: []map[string]any{{"teamgate": map[string]any{"actions": map[string]any{
		"project.get": map[string]any{"kind": "project", "role": "member"},
	}}}}}
	d, err := eng.DiffPolicy(t.Context(), cand, 0)
	require.NoError(t, err)
	require.NotEmpty(t, d.Cells)
	require.NotEmpty(t, d.Decisions)
	want, err := json.Marshal(d)
	require.NoError(t, err)
	decide := func() []authz.Decision {
		var out []authz.Decision
		for _, ch := range d.Decisions {
			got, err := eng.Authorize(t.Context(), authz.Request{Subject: ch.Subject, Action: ch.Action, Resource: ch.Project + ch.Resource})
			require.NoError(t, err)
			out = append(out, got)
		}
		return out
	}
	decisions := decide()
	for _, c := range d.Cells {
		for _, codes := range [][]rego.Code{c.Before.Codes, c.After.Codes} {
			for i := range codes {
				codes[i] = rego.CodeOrgOverride
			}
		}
	}
	again, err := eng.DiffPolicy(t.Context(), cand, 0)
	require.NoError(t, err)
	got, err := json.Marshal(again)
	require.NoError(t, err)
	require.JSONEq(t, string(want), string(got))
	require.Equal(t, decisions, decide())
}

// it, it applies.
func TestSetPolicyIf(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	otto := rego.Module{Name: "otto.rego", Source: `package teamgate.ext

import rego.v1

allow contains "otto reads open" if {
	input.action == "project.get"
	input.subject.id == "otto"
	input.resource.project == "open"
}
`}
	cand := authz.Candidate{Modules: []rego.Module{otto}}

	eng := newSmall(t)
	reviewed, err := eng.DiffPolicy(ctx, cand, 0)
	require.NoError(t, err)
	require.Len(t, reviewed.Decisions, 1)
	// An unrelated write (a new project otto cannot reach either way) leaves the diff as it was.
	_, err = eng.Directory().Apply(ctx, store.PutProject{Project: store.Project{Org: "acme", Name: "unrelated", Teams: []string{"research"}}})
	require.NoError(t, err)
	require.NoError(t, eng.SetPolicyIf(ctx, reviewed.Fingerprint, cand))
	d, err := eng.Authorize(ctx, authz.Request{Subject: "otto", Action: "project.get", Resource: "acme/open"})
	require.NoError(t, err)
	require.True(t, d.Allowed)

	eng = newSmall(t)
	reviewed, err = eng.DiffPolicy(ctx, cand, 0)
	require.NoError(t, err)
	// otto leaves the org: the module no longer changes his decision the same way.
	_, err = eng.Directory().Apply(ctx, store.DeleteMember{Org: "acme", User: "otto"})
	require.NoError(t, err)
	before := eng.Policy()
	err = eng.SetPolicyIf(ctx, reviewed.Fingerprint, cand)
	require.ErrorIs(t, err, teamgate.ErrConflict)
	require.Same(t, before, eng.Policy(), "a refused candidate changes nothing")
	now, err := eng.DiffPolicy(ctx, cand, 0)
	require.NoError(t, err)
	require.NotEqual(t, reviewed.Fingerprint, now.Fingerprint)
	require.NoError(t, eng.SetPolicyIf(ctx, now.Fingerprint, cand), "the diff reviewed again applies")
	require.NotSame(t, before, eng.Policy())
}

// newSmall is an engine over testdata/small.yaml, with a minute's evaluation budget: a diff
// evaluates every pair, and a loaded machine must stop none.
func newSmall(t *testing.T) *authz.Engine {
	st, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.LoadFile(t.Context(), filepath.Join("testdata", "small.yaml"))
	require.NoError(t, err)
	eng, err := authz.New(t.Context(), st, authz.WithEvalBudget(time.Minute))
	require.NoError(t, err)
	return eng
}

// TestDiffPolicyBadCandidate: a candidate that does not compile gets SetPolicy's error from
// DiffPolicy and SetPolicyIf, and the policy in force stays.
func TestDiffPolicyBadCandidate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for _, c := range []authz.Candidate{
		{Modules: []rego.Module{{Name: "bad.rego", Source: "package teamgate.ext\n\nallow contains x if {\n"}}},
		{Modules: []rego.Module{{Name: "other.rego", Source: "package other\n\nimport rego.v1\n\nx := 1\n"}}},
		{Data: []map[string]any{{"teamgate": map[string]any{"ranks": "high"}}}},
	} {
		eng, _ := newAcme(t)
		before := eng.Policy()
		want := eng.SetPolicy(ctx, c.Modules, c.Data...)
		require.ErrorIs(t, want, teamgate.ErrInvalid)
		_, err := eng.DiffPolicy(ctx, c, 0)
		require.Equal(t, want.Error(), err.Error())
		require.ErrorIs(t, err, teamgate.ErrInvalid)
		err = eng.SetPolicyIf(ctx, "", c)
		require.Equal(t, want.Error(), err.Error())
		require.Same(t, before, eng.Policy())
	}
}

// TestDiffPolicyHonoursContext: a cancelled context stops a diff with its error, on both paths.
func TestDiffPolicyHonoursContext(t *testing.T) {
	t.Parallel()
	for _, c := range []authz.Candidate{
		{Data: []map[string]any{{"teamgate": map[string]any{"actions": map[string]any{"runs.stop": map[string]any{"role": "admin"}}}}}},
		{Modules: []rego.Module{{Name: "m.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"no\" if input.action == \"runs.stop\"\n"}}},
	} {
		eng, _ := newAcme(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := eng.DiffPolicy(ctx, c, 0)
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, eng.SetPolicyIf(ctx, "", c), context.Canceled)
	}
}

// TestDiffPolicySaysWhenNondeterministic: a candidate that reads randomness or the clock makes
// a diff of one moment, and the diff says so; a deterministic one does not.
func TestDiffPolicySaysWhenNondeterministic(t *testing.T) {
	t.Parallel()
	eng := newSmall(t)
	for src, want := range map[string]bool{
		"deny contains \"coin\" if rand.intn(\"coin\", 2) == 0\n":               true,
		"deny contains \"late\" if time.weekday(time.now_ns()) == \"Friday\"\n": true,
		"deny contains \"frozen\" if input.resource.project == \"vision\"\n":    false,
	} {
		mod := rego.Module{Name: "m.rego", Source: "package teamgate.ext\nimport rego.v1\n" + src}
		d, err := eng.DiffPolicy(t.Context(), authz.Candidate{Modules: []rego.Module{mod}}, 1)
		require.NoError(t, err, src)
		require.Equal(t, want, d.Nondeterministic, src)
	}
	d, err := eng.DiffPolicy(t.Context(), authz.Candidate{}, 0)
	require.NoError(t, err)
	require.False(t, d.Nondeterministic)
}
