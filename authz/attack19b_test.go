package authz

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/racedetect"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// attack19bRequests are requests of acme and beta (two epoch groups) over every kind of
// resource: projects by org and team space, a one-part reference with an owner, teams and orgs.
func attack19bRequests() []Request {
	var reqs []Request
	for _, s := range []string{"bob", "vera", "olga", "adam", "alice", "nobody", "ghost0"} {
		for _, org := range []string{"acme", "beta"} {
			for _, a := range []string{"runs.get", "runs.stop", "runs.approve", "project.update"} {
				for _, r := range []string{"vision", "nlp", "open", "p", "q", "engineering/vision", "ml/p", "research/nlp"} {
					reqs = append(reqs, Request{Subject: s, Action: a, Resource: org + "/" + r})
				}
			}
			reqs = append(reqs, Request{Subject: s, Action: "runs.get", Resource: "vision", Owner: org + "/engineering"})
			for _, a := range []string{"team.get", "team.update"} {
				for _, t := range []string{"engineering", "research", "ml"} {
					reqs = append(reqs, Request{Subject: s, Action: a, Resource: org + "/" + t})
				}
			}
			for _, a := range []string{"org.get", "org.update", "members.list"} {
				reqs = append(reqs, Request{Subject: s, Action: a, Resource: org})
			}
		}
	}
	return reqs
}

// attack19bWrite is a random change of acme or beta, or of a user: memberships, team roles,
// teams renamed, deleted and made again, projects restricted, opened, deleted and made again,
// grants, whole orgs deleted and made again with the same name, users' records.
func attack19bWrite(rng *rand.Rand) []store.Change {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	org := pick("acme", "beta")
	team := pick("engineering", "research", "ml")
	project := pick("vision", "nlp", "open", "p", "q")
	user := pick("bob", "vera", "olga", "adam", "alice", "ghost0")
	switch rng.IntN(16) {
	case 14: // a break-glass grant, expiring in a day
		return []store.Change{store.PutGrant{Org: org, Project: project, User: user, Grant: store.Grant{Role: pick("admin", "contributor"),
			ExpiresAt: time.Now().Add(24 * time.Hour), BreakGlass: &store.BreakGlass{Actor: "alice", At: time.Now(), Justification: "incident"}}}}
	case 15: // a grant expiring in a day
		return []store.Change{store.PutGrant{Org: org, Project: project, User: user, Grant: store.Grant{Role: pick("viewer", "admin"), ExpiresAt: time.Now().Add(24 * time.Hour)}}}
	case 0:
		return []store.Change{store.PutMember{Org: org, User: user, Role: pick("member", "viewer", "admin", "outsider", "manager", "owner", "billing")}}
	case 1:
		return []store.Change{store.DeleteMember{Org: org, User: user}}
	case 2:
		return []store.Change{store.PutTeamMember{Org: org, Team: team, User: user, Role: pick("viewer", "member", "contributor", "admin")}}
	case 3:
		return []store.Change{store.DeleteTeamMember{Org: org, Team: team, User: user}}
	case 4:
		return []store.Change{store.PutGrant{Org: org, Project: project, User: user, Grant: store.Grant{Role: pick("viewer", "member", "contributor", "admin")}}}
	case 5:
		return []store.Change{store.DeleteGrant{Org: org, Project: project, User: user}}
	case 6:
		return []store.Change{store.PutProject{Project: store.Project{Org: org, Name: project, Teams: []string{team}}}}
	case 7:
		return []store.Change{store.PutProject{Project: store.Project{Org: org, Name: project}}}
	case 8:
		return []store.Change{store.DeleteProject{Org: org, Name: project}}
	case 9:
		return []store.Change{store.PutTeam{Team: store.Team{Org: org, Name: team}}}
	case 10:
		from, to := team, pick("engineering", "research", "ml")
		return []store.Change{store.RenameTeam{Org: org, From: from, To: to}}
	case 11:
		return []store.Change{store.DeleteTeam{Org: org, Name: team}}
	case 12: // the org deleted and made again with the same name, some of it back
		return []store.Change{store.DeleteOrg{Name: org}}
	}
	if rng.IntN(2) == 0 {
		return []store.Change{store.PutUser{User: store.User{ID: user, DefaultTeam: org + "/" + team}}}
	}
	return []store.Change{store.PutOrg{Org: store.Org{Name: org}}, store.PutMember{Org: org, User: user, Role: pick("member", "owner")}}
}

// TestAttack19bRandomWritesNeverStale: random writes of every kind in two orgs (and users), with
// the stamp narrowed to 1 bit (every other write a new era of the group) and at its default
// width, and after each write every request of both orgs is answered by the cached engine as by
// an uncached one, on a second pass too (fast hits stamped by the first), under the default
// policy and under an author's module with a table and one without.
func TestAttack19bRandomWritesNeverStale(t *testing.T) {
	t.Parallel()
	mods := map[string][]rego.Module{
		"default": nil,
		"table": {{Name: "ext.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\n" +
			`deny contains "frozen" if { input.subject.org_role == "viewer"; input.subject.team_role == "contributor" }` + "\n"}},
		"no table": {{Name: "ext.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\n" +
			`deny contains "labelled" if input.resource.project == "nlp"` + "\n" +
			`allow contains "by name" if input.subject.id == "ghost0"` + "\n"}},
	}
	for name, m := range mods {
		for _, bits := range []uint{1, defaultEpochBits} {
			t.Run(fmt.Sprintf("%s/%d", name, bits), func(t *testing.T) {
				e := newAcmeInternal(t)
				e.decisions.setEpochBits(bits)
				st := e.Directory().(*store.Store)
				betaOrg(t, st)
				if m != nil {
					require.NoError(t, e.SetPolicy(t.Context(), m))
					require.Equal(t, name == "table", e.Policy().Table() != nil, e.Policy().NoTable())
				}
				plain, err := New(t.Context(), st, WithDecisionCache(0))
				require.NoError(t, err)
				if m != nil {
					require.NoError(t, plain.SetPolicy(t.Context(), m))
				}
				reqs := attack19bRequests()
				rng := rand.New(rand.NewPCG(19, uint64(bits)))
				check := func(step int) {
					for pass := range 2 {
						for _, r := range reqs {
							want, werr := plain.Authorize(t.Context(), r)
							got, gerr := e.Authorize(t.Context(), r)
							require.Equal(t, werr == nil, gerr == nil, "step %d pass %d %+v: %v vs %v", step, pass, r, gerr, werr)
							require.True(t, sameDecision(got, want), "step %d pass %d, %+v: got %+v, want %+v", step, pass, r, got, want)
						}
					}
				}
				check(-1)
				steps := 60
				if testing.Short() || racedetect.Enabled { // OPA under -race: 20–50× the cost
					steps = 20
				}
				written := 0
				for step := range steps {
					if _, err := st.Apply(t.Context(), attack19bWrite(rng)...); err != nil {
						// e.g. a write in an org deleted before: both orgs made again, empty
						// when deleted, with the same names
						_, err = st.Apply(t.Context(), store.PutOrg{Org: store.Org{Name: "acme"}}, store.PutOrg{Org: store.Org{Name: "beta"}},
							store.PutTeam{Team: store.Team{Org: "acme", Name: "engineering"}}, store.PutTeam{Team: store.Team{Org: "beta", Name: "ml"}})
						if err != nil {
							continue
						}
					}
					written++
					check(step)
				}
				require.Greater(t, written, steps*3/4)
			})
		}
	}
}

// TestAttack19bAuthorTableIsExplain: an author's module that reads every fact of the table's key
// (and echoes them in its message) keeps the table; on random directories of two orgs, every
// request's Authorize (the table, cached or not) equals Explain's full evaluation of the
// request's own input — open and restricted projects, team spaces, teams, orgs, grants to
// outsiders, non-members, one-part references with an owner.
func TestAttack19bAuthorTableIsExplain(t *testing.T) {
	t.Parallel()
	mod := []rego.Module{{Name: "ext.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\n" +
		`deny contains sprintf("%s %s %s %q %v %s %v %v", [input.subject.org_role, input.action, input.resource.kind, input.subject.grant, input.subject.break_glass, input.subject.team_role, input.resource.restricted, input.resource.exists]) if { input.subject.team_role in {"contributor", "viewer"}; input.subject.org_role != "owner" }` + "\n" +
		`allow contains sprintf("team %s grant %q", [input.subject.team_role, input.subject.grant]) if { input.subject.team_role in {"admin", "member"}; input.subject.org_role in {"outsider", "none", "viewer", "member"} }` + "\n"}}
	e := newAcmeInternal(t)
	st := e.Directory().(*store.Store)
	betaOrg(t, st)
	require.NoError(t, e.SetPolicy(t.Context(), mod))
	require.NotNil(t, e.Policy().Table(), e.Policy().NoTable())
	reqs := attack19bRequests()
	rng := rand.New(rand.NewPCG(19, 2))
	seen := map[rego.Code]int{}
	steps := 60
	if testing.Short() || racedetect.Enabled { // OPA under -race: 20–50× the cost
		steps = 20
	}
	for step := range steps {
		for _, r := range reqs {
			got, gerr := e.Authorize(t.Context(), r)
			x, xerr := e.Explain(t.Context(), r)
			require.Equal(t, xerr == nil, gerr == nil, "step %d %+v: %v vs %v", step, r, gerr, xerr)
			if gerr != nil {
				continue
			}
			require.True(t, sameDecision(got, x.Decision), "step %d, %+v: table %+v, full evaluation %+v\ninput %+v", step, r, got, x.Decision, x.Input)
			for _, rs := range got.Reasons {
				seen[rs.Code]++
			}
		}
		if _, err := st.Apply(t.Context(), attack19bWrite(rng)...); err != nil {
			_, _ = st.Apply(t.Context(), store.PutOrg{Org: store.Org{Name: "acme"}}, store.PutOrg{Org: store.Org{Name: "beta"}},
				store.PutTeam{Team: store.Team{Org: "acme", Name: "engineering"}}, store.PutTeam{Team: store.Team{Org: "beta", Name: "ml"}})
		}
	}
	t.Logf("reasons seen: %v", seen)
	require.NotZero(t, seen[rego.CodeExtensionDeny])
	require.NotZero(t, seen[rego.CodeExtensionAllow])
}

// TestAttack19bSameGroupEraHammer: acme and an org whose name hashes to acme's epoch group, beside
// beta (another group), with stamps narrowed to 1 and 2 bits: a writer toggles a team role in
// acme and in its group-mate in turn while readers decide requests of all three: no call that
// begins after a write returned is answered as before it (the group-mate's words share acme's
// epoch and era walks; beta's are never touched).
func TestAttack19bSameGroupEraHammer(t *testing.T) {
	t.Parallel()
	for _, bits := range []uint{1, 2} {
		e := newAcmeInternal(t)
		e.decisions.setEpochBits(bits)
		st := e.Directory().(*store.Store)
		beta := betaOrg(t, st)
		mate := ""
		for i := 0; mate == ""; i++ {
			if n := fmt.Sprint("mate", i); orgGroup(t, st, n) == orgGroup(t, st, "acme") {
				mate = n
			}
		}
		_, err := st.Apply(t.Context(), store.PutOrg{Org: store.Org{Name: mate}},
			store.PutMember{Org: mate, User: "bob", Role: "member"}, store.PutMember{Org: mate, User: "vera", Role: "viewer"},
			store.PutTeam{Team: store.Team{Org: mate, Name: "ml"}},
			store.PutTeamMember{Org: mate, Team: "ml", User: "vera", Role: "contributor"},
			store.PutProject{Project: store.Project{Org: mate, Name: "p", Teams: []string{"ml"}}})
		require.NoError(t, err)
		require.Equal(t, orgGroup(t, st, "acme"), orgGroup(t, st, mate))
		reqs := append(collidingRequests(), beta...)
		for _, s := range []string{"bob", "vera", "olga"} {
			for _, a := range []string{"runs.get", "runs.stop", "runs.approve"} {
				reqs = append(reqs, Request{Subject: s, Action: a, Resource: mate + "/p"}, Request{Subject: s, Action: a, Resource: mate + "/ml/p"})
			}
		}
		toggles := [2][2]store.Change{ // [org][state]
			{store.PutTeamMember{Org: "acme", Team: "engineering", User: "vera", Role: "viewer"},
				store.PutTeamMember{Org: "acme", Team: "engineering", User: "vera", Role: "contributor"}},
			{store.PutTeamMember{Org: mate, Team: "ml", User: "vera", Role: "contributor"},
				store.PutTeamMember{Org: mate, Team: "ml", User: "vera", Role: "viewer"}},
		}
		state := func(s int) [2]int { return [2]int{(s + 1) / 2 % 2, s / 2 % 2} }
		var want [4][]Decision
		for s := range 4 {
			st2 := state(s)
			for org := range 2 {
				_, err := st.Apply(t.Context(), toggles[org][st2[org]])
				require.NoError(t, err)
			}
			want[st2[0]+2*st2[1]] = answers(t, st, reqs)
		}
		require.NotEqual(t, want[0], want[1], "acme's write changes answers")
		require.NotEqual(t, want[0], want[2], "the group-mate's write changes answers")
		for org := range 2 {
			_, err := st.Apply(t.Context(), toggles[org][0])
			require.NoError(t, err)
		}
		hammer(t, e, reqs, func(s int) []Decision { ss := state(s); return want[ss[0]+2*ss[1]] }, 150, func(s int) {
			org := (s - 1) % 2
			_, err := st.Apply(t.Context(), toggles[org][state(s)[org]])
			require.NoError(t, err)
		})
	}
}
