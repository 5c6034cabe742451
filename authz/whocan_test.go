package authz_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// whoCanActions are actions of every kind, the special project rules included.
var whoCanActions = []string{"project.get", "runs.stop", "runs.approve", "runs.delete", "runs.transfer", "project.access",
	"org.get", "members.manage", "projects.create", "org.billing", "team.get", "team.members.manage", "team.delete"}

// whoCanResources are the resources of the random directory for action: the org, each team and
// each project (also through each team space, and some that do not exist).
func whoCanResources(t *testing.T, eng *authz.Engine, action string, teams, projects []string) []string {
	spec, ok := eng.Policy().Action(action)
	require.True(t, ok, action)
	switch spec.Kind {
	case "org":
		return []string{"o", "nope"}
	case "team":
		return append(slices.Clone(prefixed("o/", teams)), "o/nope")
	}
	out := append(prefixed("o/", projects), "o/nope", "nope/proj0")
	for _, tm := range teams[:2] {
		out = append(out, prefixed("o/"+tm+"/", projects)...)
	}
	return out
}

func prefixed(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}

// requireSubjectsMatchDecisions checks, for every action and resource, that ListSubjects — whole
// and page by page — equals Authorize for every user: the same subjects, roles and reasons, and
// team_role reasons name the teams that give the role. users[len-1] is a subject the directory
// has never stored: it is listed never, and allowed only by a listing marked Unbounded. It
// returns how many allowed subjects were not members of the org.
func requireSubjectsMatchDecisions(t *testing.T, eng *authz.Engine, users, teams, projects []string, label string) int {
	t.Helper()
	ctx := t.Context()
	known, unknown := slices.Sorted(slices.Values(users[:len(users)-1])), users[len(users)-1]
	outsiders := 0
	for _, action := range whoCanActions {
		spec, ok := eng.Policy().Action(action)
		require.True(t, ok, action)
		kind := spec.Kind
		for _, res := range whoCanResources(t, eng, action, teams, projects) {
			where := fmt.Sprintf("%s: who can %s %s", label, action, res)
			want := []authz.Access{}
			for _, u := range known {
				d, err := eng.Authorize(ctx, authz.Request{Subject: u, Action: action, Resource: res})
				require.NoError(t, err, where)
				if d.Allowed {
					want = append(want, authz.Access{Subject: u, Role: d.Role, Reasons: d.Reasons})
				}
			}
			page, err := eng.ListSubjects(ctx, action, res, authz.Page{})
			require.NoError(t, err, where)
			require.Empty(t, page.Next, where)
			require.Equal(t, action, page.Action)
			require.Equal(t, res, page.Resource)
			d, err := eng.Authorize(ctx, authz.Request{Subject: unknown, Action: action, Resource: res})
			require.NoError(t, err, where)
			if d.Allowed {
				require.True(t, page.Unbounded, "%s: %s is allowed though stored nowhere: the listing must say it is unbounded", where, unknown)
			}
			got := make([]authz.Access, len(page.Subjects))
			require.NoError(t, eng.Directory().View(func(r store.Reader) error {
				for i, a := range page.Subjects {
					require.NotNil(t, a.Teams, where)
					if _, member := r.OrgRole("o", a.Subject); !member {
						require.True(t, page.Unbounded, "%s: non-member %s listed", where, a.Subject)
						outsiders++
					}
					roles := r.TeamRoles("o", a.Subject)
					for _, tm := range a.Teams {
						role, ok := roles.Role(tm)
						require.True(t, ok, "%s: %s is not in team %s", where, a.Subject, tm)
						if kind == "project" {
							require.Equal(t, a.Role, role, where)
						}
					}
					if a.Reasons[0].Code == rego.CodeTeamRole && kind == "project" {
						require.NotEmpty(t, a.Teams, "%s: %s's team_role names no team", where, a.Subject)
					}
					got[i] = authz.Access{Subject: a.Subject, Role: a.Role, Reasons: a.Reasons}
				}
				return nil
			}))
			require.Equal(t, want, got, where)
			for limit := 1; limit <= 3; limit++ {
				paged := []authz.Access{}
				pg := authz.Page{Limit: limit}
				for {
					part, err := eng.ListSubjects(ctx, action, res, pg)
					require.NoError(t, err, where)
					require.LessOrEqual(t, len(part.Subjects), limit, where)
					for _, a := range part.Subjects {
						paged = append(paged, authz.Access{Subject: a.Subject, Role: a.Role, Reasons: a.Reasons})
					}
					if part.Next == "" {
						break
					}
					require.Equal(t, part.Subjects[len(part.Subjects)-1].Subject, part.Next, where)
					require.Greater(t, part.Next, pg.After, "%s: the cursor moves on", where)
					pg.After = part.Next
				}
				require.Equal(t, want, paged, "%s limit %d", where, limit)
			}
		}
	}
	return outsiders
}

// whoCanDirectory is randomDirectory with a user record for u12 (a subject the directory knows
// that is no member of org o); u13 stays unknown.
func whoCanDirectory(t *testing.T, seed uint64, opts ...authz.Option) (*authz.Engine, []string, []string, []string) {
	eng, users, teams, projects := randomDirectory(t, seed, opts...)
	_, err := eng.Directory().Apply(t.Context(), store.PutUser{User: store.User{ID: "u12"}})
	require.NoError(t, err)
	return eng, users, teams, projects
}

// TestListSubjectsEqualsAuthorize: on random directories, who can do what equals Authorize for
// every user, on the decision table (default rules, random data) and on full evaluation
// (authors' modules, with and without ext.allow).
func TestListSubjectsEqualsAuthorize(t *testing.T) {
	t.Parallel()
	denyOnly := rego.Module{Name: "deny.rego", Source: `package teamgate.ext

import rego.v1

deny contains "frozen" if input.resource.project == "proj1"

deny contains "no t0 members" if input.subject.team_roles.t0
`}
	outsiders := 0
	// Two seeds under the race detector (iterations), each under every policy below; some
	// outsider is still listed (the check after the loop).
	for seed := range iterations[uint64](4, 2) {
		rng := rand.New(rand.NewPCG(seed, 3))
		_, users, teams, projects := randomDirectory(t, seed)
		for name, opts := range map[string][]authz.Option{
			"table":          nil,
			"no compiled":    {authz.WithCompiledPath(false), authz.WithDecisionCache(0)},
			"random data":    {authz.WithData(randomData(rng))},
			"ext.allow data": {authz.WithData(map[string]any{"teamgate": map[string]any{"ext": map[string]any{"allow": []any{"open"}}}})},
			"deny-only ext":  {authz.WithModules(denyOnly)},
			"random ext":     {authz.WithModules(randomExtModule(rng, users, teams, projects))},
			"ext allows u12": {authz.WithModules(rego.Module{Name: "u12.rego", Source: "package teamgate.ext\nimport rego.v1\nallow contains \"auditor\" if input.subject.id == \"u12\"\n"})},
		} {
			eng, _, _, _ := whoCanDirectory(t, seed, opts...)
			n := requireSubjectsMatchDecisions(t, eng, users, teams, projects, fmt.Sprintf("seed %d %s", seed, name))
			if name == "deny-only ext" || name == "table" {
				require.Zero(t, n, name)
			}
			outsiders += n
		}
	}
	require.Positive(t, outsiders, "some policy allows a known non-member, and the listing finds them")
}

// TestListSubjectsRejectsBadInput: malformed requests are the errors Authorize gives; a resource
// that does not exist is an empty listing.
func TestListSubjectsRejectsBadInput(t *testing.T) {
	t.Parallel()
	eng, _ := newAcme(t)
	for _, tc := range []struct{ action, resource string }{
		{"runs.nope", "acme/vision"},
		{"runs.stop", "acme"},          // an org where a project is needed
		{"runs.stop", "vision"},        // one part: a listing has no context owner
		{"team.get", "acme/a/b"},       // a team takes org/team
		{"runs.stop", "acme/vi--sion"}, // bad slug
	} {
		_, err := eng.ListSubjects(t.Context(), tc.action, tc.resource, authz.Page{})
		require.ErrorIs(t, err, teamgate.ErrInvalid, "%s %s", tc.action, tc.resource)
	}
	_, err := eng.ListSubjects(t.Context(), "runs.stop", "acme/vision", authz.Page{Limit: -1})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	for _, res := range []string{"acme/nope", "nope/vision", "acme/research/vision"} {
		page, err := eng.ListSubjects(t.Context(), "runs.get", res, authz.Page{})
		require.NoError(t, err, res)
		require.NotNil(t, page.Subjects, res)
		require.Empty(t, page.Subjects, res)
	}
}

// TestListSubjectsHonoursContext: a cancelled listing is an error, not a short list.
func TestListSubjectsHonoursContext(t *testing.T) {
	t.Parallel()
	for _, opts := range [][]authz.Option{nil, {authz.WithModules(rego.Module{Name: "d.rego", Source: "package teamgate.ext\nimport rego.v1\ndeny contains \"x\" if false\n"})}} {
		eng, _ := newAcme(t, opts...)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := eng.ListSubjects(ctx, "runs.get", "acme/vision", authz.Page{})
		require.Error(t, err)
	}
}

// TestListSubjectsWithExpiryAndBreakGlass: who-can equals Authorize on random directories that
// also hold expiring team memberships and grants — some already past (absent for every reader
// whether or not their revocation is written yet), some ahead — and break-glass grants, on the
// decision table and on full evaluation.
func TestListSubjectsWithExpiryAndBreakGlass(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for seed := range uint64(3) {
		for name, opts := range map[string][]authz.Option{
			"table": nil,
			"ext":   {authz.WithModules(rego.Module{Name: "d.rego", Source: "package teamgate.ext\nimport rego.v1\ndeny contains \"frozen\" if input.resource.project == \"proj1\"\n"})},
		} {
			eng, users, teams, projects := whoCanDirectory(t, seed, opts...)
			rng := rand.New(rand.NewPCG(seed, 11))
			var cs []store.Change
			when := func() time.Time {
				if rng.IntN(2) == 0 {
					return now.Add(-time.Duration(1+rng.IntN(100)) * time.Minute) // past
				}
				return now.Add(time.Duration(1+rng.IntN(100)) * time.Hour)
			}
			for _, u := range users[:12] {
				switch rng.IntN(4) {
				case 0:
					cs = append(cs, store.PutTeamMember{Org: "o", Team: teams[rng.IntN(len(teams))], User: u,
						Role: store.TeamRoles()[rng.IntN(4)], ExpiresAt: when()})
				case 1:
					cs = append(cs, store.PutGrant{Org: "o", Project: projects[rng.IntN(len(projects))], User: u,
						Grant: store.Grant{Role: store.TeamRoles()[rng.IntN(4)], ExpiresAt: when()}})
				case 2:
					cs = append(cs, store.PutGrant{Org: "o", Project: projects[rng.IntN(len(projects))], User: u,
						Grant: store.Grant{Role: store.TeamRoles()[rng.IntN(4)], ExpiresAt: when(),
							BreakGlass: &store.BreakGlass{Actor: u, At: now, Justification: "incident"}}})
				}
			}
			_, err := eng.Directory().Apply(t.Context(), cs...)
			require.NoError(t, err)
			requireSubjectsMatchDecisions(t, eng, users, teams, projects, fmt.Sprintf("seed %d %s", seed, name))
		}
	}
}

// TestListSubjectsPagingAcrossWrites pages who-can while members join, leave and change role
// between pages (names that sort before, at and after the cursor). Each page must be exactly
// the first subjects past its cursor that Authorize allows at that moment; pages never repeat a
// subject; a subject allowed from the first page to the last and untouched by the writes is
// listed. Cursors past the end, and cursors that name no member, are honoured too.
func TestListSubjectsPagingAcrossWrites(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for seed := range uint64(3) {
		for name, opts := range map[string][]authz.Option{
			"table": nil,
			"ext":   {authz.WithModules(rego.Module{Name: "d.rego", Source: "package teamgate.ext\nimport rego.v1\ndeny contains \"frozen\" if input.resource.project == \"proj1\"\n"})},
		} {
			eng, _, teams, projects := whoCanDirectory(t, seed, opts...)
			rng := rand.New(rand.NewPCG(seed, 17))
			members := func() []string {
				var out []string
				require.NoError(t, eng.Directory().View(func(r store.Reader) error {
					out = slices.Collect(r.MemberList("o").After(""))
					return nil
				}))
				return out
			}
			// allowedAfter is what a page past cursor must hold: Authorize over the members.
			allowedAfter := func(action, res, cursor string, limit int) []string {
				out := []string{}
				for _, u := range members() {
					if u <= cursor || len(out) == limit {
						continue
					}
					d, err := eng.Authorize(ctx, authz.Request{Subject: u, Action: action, Resource: res})
					require.NoError(t, err)
					if d.Allowed {
						out = append(out, u)
					}
				}
				return out
			}
			for _, action := range []string{"runs.stop", "project.get", "members.manage"} {
				res := "o/" + projects[rng.IntN(len(projects))]
				if action == "members.manage" {
					res = "o"
				}
				where := fmt.Sprintf("seed %d %s %s %s", seed, name, action, res)
				first := allowedAfter(action, res, "", -1)
				touched := map[string]bool{}
				var listed []string
				pg := authz.Page{Limit: 2}
				for step := 0; ; step++ {
					require.Less(t, step, 100, where)
					page, err := eng.ListSubjects(ctx, action, res, pg)
					require.NoError(t, err, where)
					got := []string{}
					for _, a := range page.Subjects {
						got = append(got, a.Subject)
					}
					require.Equal(t, allowedAfter(action, res, pg.After, pg.Limit), got, "%s page after %q", where, pg.After)
					listed = append(listed, got...)
					if page.Next == "" {
						break
					}
					pg.After = page.Next
					// Writes between pages: a join that sorts right after the cursor, a join at
					// the end, a role change and a leave of random members.
					ms := members()
					joinNear, joinEnd := pg.After+"a", fmt.Sprintf("z%d", step)
					victim, changed := ms[rng.IntN(len(ms))], ms[rng.IntN(len(ms))]
					cs := []store.Change{
						store.PutMember{Org: "o", User: joinNear, Role: "admin"},
						store.PutMember{Org: "o", User: joinEnd, Role: "owner"},
						store.PutTeamMember{Org: "o", Team: teams[rng.IntN(len(teams))], User: joinNear, Role: "admin"},
						store.PutMember{Org: "o", User: changed, Role: store.OrgRoles()[rng.IntN(7)]},
					}
					if victim != changed {
						cs = append(cs, store.DeleteMember{Org: "o", User: victim})
					}
					_, err = eng.Directory().Apply(ctx, cs...)
					require.NoError(t, err, where)
					for _, u := range []string{joinNear, joinEnd, victim, changed} {
						touched[u] = true
					}
				}
				require.True(t, slices.IsSorted(listed), "%s: pages in order, none repeated: %v", where, listed)
				require.Len(t, slices.Compact(slices.Clone(listed)), len(listed), where)
				last := allowedAfter(action, res, "", -1)
				for _, u := range first {
					if slices.Contains(last, u) && !touched[u] {
						require.Contains(t, listed, u, "%s: %s was allowed throughout", where, u)
					}
				}
				// Cursors past the end and between members.
				for _, cursor := range []string{"zzzz", "~", "u1~", "u", ""} {
					page, err := eng.ListSubjects(ctx, action, res, authz.Page{Limit: 3, After: cursor})
					require.NoError(t, err, where)
					got := []string{}
					for _, a := range page.Subjects {
						got = append(got, a.Subject)
					}
					require.Equal(t, allowedAfter(action, res, cursor, 3), got, "%s cursor %q", where, cursor)
					if len(allowedAfter(action, res, cursor, 4)) <= 3 {
						require.Empty(t, page.Next, "%s cursor %q: the last page", where, cursor)
					}
				}
			}
		}
	}
}
