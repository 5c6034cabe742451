package authz_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/clocktest"
	"github.com/teamgate/teamgate/internal/expirytest"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// codesDirectory is a random org for the compiled path's role codes: members of every org
// role, outsiders holding grants (plain and break-glass), non-members, team memberships of
// every role (several per user, so the highest by data rank decides), open and restricted
// projects, and the teams of a team space. With a clock (opts.Clock), a third of the team
// memberships and grants expire, at random times in the hour from its now.
func codesDirectory(t *testing.T, rng *rand.Rand, opts store.Options) (st *store.Store, users, teams, projects []string) {
	t.Helper()
	st, err := store.Open(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	cs := []store.Change{store.PutOrg{Org: store.Org{Name: "o"}}}
	for i := range 16 {
		u := fmt.Sprintf("u%d", i)
		users = append(users, u)
		if i < 14 { // u14, u15 are not members
			cs = append(cs, store.PutMember{Org: "o", User: u, Role: store.OrgRoles()[i%7]})
		}
	}
	now := time.Now()
	if opts.Clock != nil {
		now = opts.Clock.Now()
	}
	ends := func() time.Time {
		if opts.Clock == nil || rng.IntN(3) > 0 {
			return time.Time{}
		}
		return now.Add(time.Duration(1+rng.IntN(3600)) * time.Second)
	}
	for i := range 4 {
		team := fmt.Sprintf("t%d", i)
		teams = append(teams, team)
		cs = append(cs, store.PutTeam{Team: store.Team{Org: "o", Name: team}})
		for _, u := range users[:14] {
			if rng.IntN(2) == 0 {
				cs = append(cs, store.PutTeamMember{Org: "o", Team: team, User: u, Role: store.TeamRoles()[rng.IntN(4)], ExpiresAt: ends()})
			}
		}
	}
	expires := now.Add(24 * time.Hour)
	for i := range 8 {
		p := store.Project{Org: "o", Name: fmt.Sprintf("p%d", i), Grants: map[string]store.Grant{}}
		for _, team := range teams {
			if i%2 == 1 && rng.IntN(2) == 0 { // odd projects restricted (when a team was drawn)
				p.Teams = append(p.Teams, team)
			}
		}
		for _, u := range users[:14] { // grantees are members (outsiders included)
			switch rng.IntN(5) {
			case 0:
				p.Grants[u] = store.Grant{Role: store.TeamRoles()[rng.IntN(4)], ExpiresAt: ends()}
			case 1:
				end := ends()
				if end.IsZero() {
					end = expires
				}
				p.Grants[u] = store.Grant{Role: store.TeamRoles()[rng.IntN(4)], ExpiresAt: end,
					BreakGlass: &store.BreakGlass{Actor: "u0", At: now, Justification: "incident"}}
			}
		}
		projects = append(projects, p.Name)
		cs = append(cs, store.PutProject{Project: p})
	}
	_, err = st.Apply(t.Context(), cs...)
	require.NoError(t, err)
	return st, users, teams, projects
}

// TestRoleCodesAgreeWithEvaluation attacks the compiled path's role codes (rego.Codes from
// store.Access): under the default data and data that re-ranks every role (each permutation
// of the four team roles' ranks, re-mapped org roles, other overriding org roles, a role the
// store cannot hold ranked among its own), on random
// directories with outsiders and non-members holding plain and break-glass grants, several
// team roles per user and restricted projects, every action of the catalog on every resource
// form (org, team, project, team-space project, missing ones; a third of the catalog per data,
// in turn, a ninth under the race detector) decides exactly as full
// evaluation does, on the compiled path and the cache (twice: the second from the cache).
func TestRoleCodesAgreeWithEvaluation(t *testing.T) {
	t.Parallel()
	roles := store.TeamRoles()
	var datas []map[string]any
	for perm := range permutations(len(roles)) {
		ranks := map[string]any{"none": 0}
		for i, r := range perm {
			ranks[roles[r]] = i + 1
		}
		datas = append(datas, map[string]any{"teamgate": map[string]any{"ranks": ranks}})
	}
	rng := rand.New(rand.NewPCG(17, 35))
	for range 4 {
		datas = append(datas, randomData(rng))
	}
	// A role the store cannot hold, ranked among the store's: org roles map to it and actions
	// need it, so codes and names of the store's roles meet a rank order with a gap.
	datas = append(datas, map[string]any{"teamgate": map[string]any{
		"ranks":    map[string]any{"none": 0, "viewer": 10, "member": 20, "lead": 25, "contributor": 30, "admin": 40},
		"org_base": map[string]any{"member": "lead", "outsider": "none", "viewer": "viewer", "billing": "none", "owner": "admin", "manager": "admin", "admin": "lead"},
		"actions": map[string]any{"runs.stop": map[string]any{"kind": "project", "role": "lead"},
			"team.update": map[string]any{"kind": "team", "role": "lead"}},
	}}, nil)
	for di, data := range datas {
		st, users, teams, projects := codesDirectory(t, rand.New(rand.NewPCG(uint64(di), 3)), store.Options{})
		var opts []authz.Option
		if data != nil {
			opts = append(opts, authz.WithData(data))
		}
		engs := engines(t, st, opts...)
		require.NotNil(t, engs["compiled"].Policy().Table())
		actions := engs["rego"].Policy().Actions()
		var resources []string
		resources = append(resources, "o", "nope")
		for _, tm := range teams {
			resources = append(resources, "o/"+tm)
		}
		for _, p := range append(projects, "nope") {
			resources = append(resources, "o/"+p, "o/"+teams[di%len(teams)]+"/"+p)
		}
		// A third of the catalog per data (a ninth under the race detector: iterations), every
		// action over three (nine) consecutive data, those the data names always: with 30 data,
		// every action of the catalog is checked on every resource form under 3 (or more) data.
		share := iterations(3, 9)
		for ai, a := range actions {
			if (ai+di)%share != 0 && !slices.Contains([]string{"runs.stop", "team.update", "project.get"}, a) {
				continue
			}
			for _, res := range resources {
				for _, u := range users {
					req := authz.Request{Subject: u, Action: a, Resource: res}
					want, wantErr := engs["rego"].Authorize(t.Context(), req)
					for _, name := range []string{"compiled", "cached"} {
						got, err := engs[name].Authorize(t.Context(), req)
						require.Equal(t, wantErr, err, "data %d %s %+v", di, name, req)
						require.Equal(t, want, got, "data %d %s %+v (data %v)", di, name, req, data)
					}
				}
			}
		}
		require.NotZero(t, engs["compiled"].Stats().Compiled, "data %d", di)
	}
}

// permutations yields every permutation of 0..n-1.
func permutations(n int) func(yield func([]int) bool) {
	return func(yield func([]int) bool) {
		p := make([]int, n)
		for i := range p {
			p[i] = i
		}
		var rec func(k int) bool
		rec = func(k int) bool {
			if k == n {
				return yield(slices.Clone(p))
			}
			for i := k; i < n; i++ {
				p[k], p[i] = p[i], p[k]
				if !rec(k + 1) {
					return false
				}
				p[k], p[i] = p[i], p[k]
			}
			return true
		}
		rec(0)
	}
}

// TestCallerMutationPoisonsNothing: a caller that writes into the Decision it got (its reasons'
// codes and messages, the slice appended to) changes no later decision on full evaluation or
// the compiled path, whose cells (read through rego.VerdictView) are shared by every decision: each decision's
// reasons are its own. (A cached decision's reasons are the cache entry's, documented on
// Authorize as not to be modified, so the cached engine is not asked.)
func TestCallerMutationPoisonsNothing(t *testing.T) {
	t.Parallel()
	reqs := []authz.Request{
		{Subject: "bob", Action: "runs.stop", Resource: "acme/vision"},
		{Subject: "nobody", Action: "runs.stop", Resource: "acme/vision"},
		{Subject: "vera", Action: "runs.approve", Resource: "acme/engineering/vision"},
		{Subject: "bob", Action: "org.get", Resource: "acme"},
		{Subject: "bob", Action: "team.get", Resource: "acme/engineering"},
	}
	for name, opts := range map[string][]authz.Option{
		"rego":     {authz.WithDecisionCache(0), authz.WithCompiledPath(false)},
		"compiled": {authz.WithDecisionCache(0)},
	} {
		eng, _ := newAcme(t, opts...)
		for _, r := range reqs {
			first, err := eng.Authorize(t.Context(), r)
			require.NoError(t, err)
			want := first
			want.Reasons = slices.Clone(first.Reasons)
			require.NotEmpty(t, first.Reasons, "%s %+v", name, r)
			for i := range first.Reasons {
				first.Reasons[i] = authz.Reason{Code: rego.CodeOrgRole, Message: "poisoned"}
			}
			_ = append(first.Reasons[:0], authz.Reason{Code: rego.CodeGrant, Message: "appended"})
			first.Allowed = !first.Allowed
			for range 2 {
				got, err := eng.Authorize(t.Context(), r)
				require.NoError(t, err)
				require.Equal(t, want, got, "%s %+v", name, r)
			}
		}
	}
}

// TestRoleCodesDuringReload: decisions on the compiled path while the policy is swapped between
// the default and a policy whose catalog and ranks differ (an action added ahead of the others,
// so that every action's index in the catalog moves; member ranked above contributor;
// runs.stop needing admin). Each decision, error for error, is one of the two policies' own
// answers (full evaluation on the same directory), uncached and through the decision cache: the
// codes, the action's spec, the table and a cached decision are never taken from two policies.
// Run it with -race.
func TestRoleCodesDuringReload(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, users, teams, projects := codesDirectory(t, rand.New(rand.NewPCG(5, 8)), store.Options{})
	other := map[string]any{"teamgate": map[string]any{
		"ranks": map[string]any{"none": 0, "viewer": 1, "contributor": 2, "member": 3, "admin": 4},
		"actions": map[string]any{
			"aaa.deploy": map[string]any{"kind": "project", "role": "member"},
			"runs.stop":  map[string]any{"kind": "project", "role": "admin"},
		}}}
	before, err := authz.New(ctx, st, authz.WithDecisionCache(0), authz.WithCompiledPath(false))
	require.NoError(t, err)
	after, err := authz.New(ctx, st, authz.WithDecisionCache(0), authz.WithCompiledPath(false), authz.WithData(other))
	require.NoError(t, err)
	eng, err := authz.New(ctx, st, authz.WithDecisionCache(0))
	require.NoError(t, err)
	cached, err := authz.New(ctx, st)
	require.NoError(t, err)
	var reqs []authz.Request
	for _, u := range users {
		for _, a := range []string{"aaa.deploy", "runs.stop", "runs.get", "project.access"} {
			for _, p := range projects {
				reqs = append(reqs, authz.Request{Subject: u, Action: a, Resource: "o/" + p})
			}
		}
		for _, tm := range teams {
			reqs = append(reqs, authz.Request{Subject: u, Action: "team.update", Resource: "o/" + tm})
		}
		reqs = append(reqs, authz.Request{Subject: u, Action: "org.get", Resource: "o"})
	}
	type answer struct {
		d   authz.Decision
		err string
	}
	answerOf := func(e *authz.Engine, r authz.Request) answer {
		d, err := e.Authorize(ctx, r)
		if err != nil {
			return answer{err: err.Error()}
		}
		return answer{d: d}
	}
	want := make([][2]answer, len(reqs))
	differ := 0
	for i, r := range reqs {
		want[i] = [2]answer{answerOf(before, r), answerOf(after, r)}
		if fmt.Sprint(want[i][0]) != fmt.Sprint(want[i][1]) {
			differ++
		}
	}
	require.Greater(t, differ, len(reqs)/4, "the two policies must disagree often")
	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			var data []map[string]any
			if i%2 == 0 {
				data = append(data, other)
			}
			for _, e := range []*authz.Engine{eng, cached} {
				if err := e.SetPolicy(context.Background(), nil, data...); err != nil {
					done <- err
					return
				}
			}
		}
	}()
	for n := range 6000 {
		i := n % len(reqs)
		for _, e := range []*authz.Engine{eng, cached} {
			got := answerOf(e, reqs[i])
			ok := fmt.Sprint(got) == fmt.Sprint(want[i][0]) || fmt.Sprint(got) == fmt.Sprint(want[i][1])
			require.True(t, ok, "%+v: got %+v, want one of %+v", reqs[i], got, want[i])
		}
	}
	close(stop)
	require.NoError(t, <-done)
	require.NotZero(t, eng.Stats().Compiled)
}

// TestRoleCodesAfterExpiry: as team memberships and grants (plain and break-glass) expire, the
// compiled path's codes (store.Access) drop them exactly as full evaluation's facts do, on a
// store that writes the revocations and on a replica that never does (its node would).
func TestRoleCodesAfterExpiry(t *testing.T) {
	t.Parallel()
	for _, held := range []bool{false, true} {
		clock := clocktest.New(expirytest.Start())
		st, users, teams, projects := codesDirectory(t, rand.New(rand.NewPCG(9, 1)), store.Options{Clock: clock})
		if held {
			_, err := st.Replicate()
			require.NoError(t, err)
		}
		engs := engines(t, st)
		var reqs []authz.Request
		for _, u := range users {
			for _, p := range projects {
				for _, a := range []string{"runs.stop", "project.get", "runs.approve"} {
					reqs = append(reqs, authz.Request{Subject: u, Action: a, Resource: "o/" + p},
						authz.Request{Subject: u, Action: a, Resource: "o/" + teams[0] + "/" + p})
				}
			}
			for _, tm := range teams {
				reqs = append(reqs, authz.Request{Subject: u, Action: "team.update", Resource: "o/" + tm})
			}
		}
		changed := 0
		var last []authz.Decision
		for step := range 8 {
			var now []authz.Decision
			for _, r := range reqs {
				want, err := engs["rego"].Authorize(t.Context(), r)
				require.NoError(t, err)
				for _, name := range []string{"compiled", "cached"} {
					got, err := engs[name].Authorize(t.Context(), r)
					require.NoError(t, err)
					// (the store writes the revocations as they fall due, between two calls)
					got.Revision = want.Revision
					require.Equal(t, want, got, "held %v step %d %s %+v", held, step, name, r)
				}
				now = append(now, want)
			}
			for i := range last {
				if last[i].Allowed != now[i].Allowed {
					changed++
				}
			}
			last = now
			clock.Advance(10 * time.Minute)
		}
		require.NotZero(t, changed, "held %v: some expiry changed a decision", held)
	}
}
