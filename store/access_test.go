package store_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/store"
)

// accessBase extends depsBase: bob is also an admin of t2 and a viewer of t3; p3 is restricted
// to t1, t2 and t3 (no policy); p4 to t3 only; carl is in no team; erin is an outsider with a grant
// on p3.
func accessBase() []store.Change {
	return append(depsBase(),
		store.PutMember{Org: "a", User: "erin", Role: "outsider"},
		store.PutTeam{Team: store.Team{Org: "a", Name: "t3"}},
		store.PutTeamMember{Org: "a", Team: "t2", User: "bob", Role: "admin"},
		store.PutTeamMember{Org: "a", Team: "t3", User: "bob", Role: "viewer"},
		store.PutProject{Project: store.Project{Org: "a", Name: "p3", Teams: []string{"t1", "t2", "t3"},
			Grants: map[string]store.Grant{"erin": {Role: "contributor"}}}},
		store.PutProject{Project: store.Project{Org: "a", Name: "p4", Teams: []string{"t3"}}},
	)
}

func TestAccess(t *testing.T) {
	t.Parallel()
	s := openWith(t, accessBase())
	set := func(roles ...string) store.RoleSet {
		var rs store.RoleSet
		require.NoError(t, s.View(func(r store.Reader) error {
			// The roles bob holds in t1 (member), t2 (admin), t3 (viewer).
			for _, role := range roles {
				team := map[string]string{"member": "t1", "admin": "t2", "viewer": "t3"}[role]
				rs |= r.TeamRoles("a", "bob").In([]string{team})
			}
			return nil
		}))
		return rs
	}
	for _, c := range []struct {
		name                     string
		org, team, project, user string
		want                     store.Access
	}{
		{"missing org", "b", "", "p1", "bob", store.Access{Missing: store.MissingOrg}},
		{"missing team", "a", "t9", "", "bob", store.Access{Missing: store.MissingTeam}},
		{"missing team space", "a", "t9", "p1", "bob", store.Access{Missing: store.MissingTeam}},
		{"missing project", "a", "", "p9", "bob", store.Access{Missing: store.MissingProject}},
		{"outside the team space", "a", "t2", "p1", "bob", store.Access{Missing: store.MissingFromTeamSpace}},
		{"org", "a", "", "", "bob", store.Access{OrgRole: "member"}},
		{"org, non-member", "a", "", "", "zed", store.Access{}},
		{"team", "a", "t2", "", "bob", store.Access{OrgRole: "member", TeamRoles: set("admin")}},
		{"team, not in it", "a", "t1", "", "carl", store.Access{OrgRole: "member"}},
		{"project narrowed by its policy", "a", "", "p1", "bob", withTeams(store.Access{OrgRole: "member", TeamRoles: set("member")}, s.mustTeams(t, "p1"))},
		{"project in a team space", "a", "t1", "p1", "bob", withTeams(store.Access{OrgRole: "member", TeamRoles: set("member")}, s.mustTeams(t, "p1"))},
		{"project, three teams", "a", "", "p3", "bob", withTeams(store.Access{OrgRole: "member", TeamRoles: set("member", "admin", "viewer")}, s.mustTeams(t, "p3"))},
		{"project, grant", "a", "", "p1", "carl", withTeams(store.Access{OrgRole: "member", Grant: "viewer"}, s.mustTeams(t, "p1"))},
		{"project, grant of an outsider", "a", "", "p3", "erin", withTeams(store.Access{OrgRole: "outsider", Grant: "contributor"}, s.mustTeams(t, "p3"))},
		{"open project", "a", "", "p2", "alice", withTeams(store.Access{OrgRole: "owner"}, s.mustTeams(t, "p2"))},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.NoError(t, s.View(func(r store.Reader) error {
				require.Equal(t, withCodes(c.want), r.Access(c.org, c.team, c.project, c.user))
				return nil
			}))
		})
	}
}

// TestAccessAgreesWithTheAccessors: on every combination of existing and missing names, Access
// serves what the single-fact accessors serve, and records the same stamps they do; so does
// Store.ViewAccess, with the snapshot's revision, and nothing once the store is closed.
func TestAccessAgreesWithTheAccessors(t *testing.T) {
	t.Parallel()
	s := openWith(t, accessBase())
	for _, org := range []string{"a", "b"} {
		for _, team := range []string{"", "t1", "t2", "t3", "t9"} {
			for _, project := range []string{"", "p1", "p2", "p3", "p4", "p9"} {
				for _, user := range []string{"alice", "bob", "carl", "erin", "zed"} {
					var got, want store.Access
					var gotDeps, wantDeps store.Deps
					require.NoError(t, s.View(func(r store.Reader) error {
						got = r.Access(org, team, project, user)
						r.Track(&gotDeps).Access(org, team, project, user)
						want = accessByParts(r.Track(&wantDeps), org, team, project, user)
						return nil
					}))
					require.Equal(t, want, got, "%s %s %s %s", org, team, project, user)
					wb, err := wantDeps.MarshalBinary()
					require.NoError(t, err)
					gb, err := gotDeps.MarshalBinary()
					require.NoError(t, err)
					require.Equal(t, wb, gb, "stamps of %s %s %s %s", org, team, project, user)

					var viewDeps store.Deps
					var viewed store.Access
					rev, err := s.ViewAccess(&viewed, org, team, project, user, &viewDeps)
					require.NoError(t, err)
					require.Equal(t, want, viewed, "ViewAccess %s %s %s %s", org, team, project, user)
					require.Equal(t, s.Revision(), rev)
					vb, err := viewDeps.MarshalBinary()
					require.NoError(t, err)
					require.Equal(t, wb, vb, "ViewAccess stamps of %s %s %s %s", org, team, project, user)
					var untracked store.Access
					_, err = s.ViewAccess(&untracked, org, team, project, user, nil)
					require.NoError(t, err)
					require.Equal(t, want, untracked)
				}
			}
		}
	}
	require.NoError(t, s.Close())
	var closed store.Access
	_, err := s.ViewAccess(&closed, "a", "", "p1", "bob", nil)
	require.ErrorIs(t, err, teamgate.ErrClosed)
	require.Equal(t, store.Access{}, closed, "nothing read once closed")
}

// accessByParts is Access from the single-fact accessors.
func accessByParts(r store.Reader, org, team, project, user string) store.Access {
	if _, ok := r.Org(org); !ok {
		return store.Access{Missing: store.MissingOrg}
	}
	if team != "" {
		if _, ok := r.Team(org, team); !ok {
			return store.Access{Missing: store.MissingTeam}
		}
	}
	var pv store.ProjectView
	if project != "" {
		var ok bool
		if pv, ok = r.Project(org, project); !ok {
			return store.Access{Missing: store.MissingProject}
		}
		if team != "" && !slices.Contains(pv.Teams.Values, team) {
			return store.Access{Missing: store.MissingFromTeamSpace}
		}
	}
	var a store.Access
	a.OrgRole, _ = r.OrgRole(org, user)
	tr := r.TeamRoles(org, user)
	switch {
	case project != "":
		a.Grant = pv.Project.Grants[user].Role
		a.Teams, a.Restricted, a.Labels = pv.Teams.Values, pv.Teams.Restricted, pv.Project.Labels
		a.TeamRoles = tr.In(pv.Teams.Values)
	case team != "":
		a.TeamRoles = tr.In([]string{team})
	}
	return withCodes(a)
}

// withCodes is a with its roles' codes set as Access documents them (1 + the role's index in
// teamgate.OrgRoles() and teamgate.MemberRoles(), 0 for none).
func withCodes(a store.Access) store.Access {
	a.OrgCode = uint8(slices.Index(teamgate.OrgRoles(), teamgate.OrgRole(a.OrgRole)) + 1)
	a.GrantCode = uint8(slices.Index(teamgate.MemberRoles(), teamgate.ProjectRole(a.Grant)) + 1)
	return a
}

func TestRoleSet(t *testing.T) {
	t.Parallel()
	s := openWith(t, accessBase())
	require.NoError(t, s.View(func(r store.Reader) error {
		bob := r.TeamRoles("a", "bob")
		all := bob.In([]string{"t1", "t2", "t3", "t9"})
		require.ElementsMatch(t, []string{"member", "admin", "viewer"}, slices.Collect(all.All))
		require.ElementsMatch(t, []string{"x", "member", "admin", "viewer"}, all.Append([]string{"x"}))
		for _, role := range []string{"viewer", "member", "admin"} {
			require.True(t, all.Has(role), role)
		}
		for _, role := range []string{"contributor", "none", "", "owner"} {
			require.False(t, all.Has(role), role)
		}
		require.Zero(t, bob.In(nil))
		require.Zero(t, bob.In([]string{"t9"}))
		require.Zero(t, r.TeamRoles("a", "carl").In([]string{"t1", "t2"}))
		one := bob.In([]string{"t2"})
		require.Equal(t, []string{"admin"}, one.Append(nil))
		b, err := json.Marshal(one)
		require.NoError(t, err)
		require.JSONEq(t, `["admin"]`, string(b))
		return nil
	}))
}

func openWith(t *testing.T, changes []store.Change) *accessStore {
	t.Helper()
	s, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	_, err = s.Apply(t.Context(), changes...)
	require.NoError(t, err)
	return &accessStore{s}
}

type accessStore struct{ *store.Store }

// withTeams is a with the effective teams l as Access serves them.
func withTeams(a store.Access, l policy.AllowList) store.Access {
	a.Teams, a.Restricted = l.Values, l.Restricted
	return a
}

// mustTeams is a project's effective teams.
func (s *accessStore) mustTeams(t *testing.T, project string) policy.AllowList {
	t.Helper()
	var teams policy.AllowList
	require.NoError(t, s.View(func(r store.Reader) error {
		pv, ok := r.Project("a", project)
		require.True(t, ok)
		teams = pv.Teams
		return nil
	}))
	return teams
}

// TestUserTeamsIn: a user's roles in a list of teams, whether they are in few teams (names
// compared) or many (names looked up), agree with UserTeams.Role team by team.
func TestUserTeamsIn(t *testing.T) {
	t.Parallel()
	roles := []string{"viewer", "member", "contributor", "admin"}
	changes := []store.Change{
		store.PutOrg{Org: store.Org{Name: "a"}},
		store.PutMember{Org: "a", User: "few", Role: "member"},
		store.PutMember{Org: "a", User: "many", Role: "member"},
	}
	var teams []string
	for i := range 12 {
		team := fmt.Sprintf("t%d", i)
		teams = append(teams, team)
		changes = append(changes, store.PutTeam{Team: store.Team{Org: "a", Name: team}},
			store.PutTeamMember{Org: "a", Team: team, User: "many", Role: roles[i%len(roles)]})
		if i%4 == 1 {
			changes = append(changes, store.PutTeamMember{Org: "a", Team: team, User: "few", Role: roles[i%3]})
		}
	}
	s := openWith(t, changes)
	lists := [][]string{nil, {"t1"}, {"t0", "t4"}, {"t5", "nope"}, {"t2", "t3", "t6", "t7", "t10", "t11"}, teams}
	require.NoError(t, s.View(func(r store.Reader) error {
		for _, user := range []string{"few", "many", "nobody"} {
			tr := r.TeamRoles("a", user)
			for _, list := range lists {
				var want []string
				for _, team := range list {
					if role, ok := tr.Role(team); ok && !slices.Contains(want, role) {
						want = append(want, role)
					}
				}
				require.ElementsMatch(t, want, tr.In(list).Append(nil), "%s in %v", user, list)
			}
		}
		require.Greater(t, r.TeamRoles("a", "many").Len(), 6, "many is in more teams than the names are compared for")
		return nil
	}))
}

// TestAccessFollowsTheTeamsAProjectNames: Access compares a member's teams with a project's
// effective teams by id, and those ids follow the teams a policy's allow-list names as they come
// and go: a team created under a name the list holds counts, a deleted one stops counting, a
// new team that reuses a deleted one's id does not count under its own name, a rename to a
// listed name counts, and a failed batch leaves the ids as they were. At every step Access
// agrees with UserTeams.In on the effective teams' names, and Check passes.
func TestAccessFollowsTheTeamsAProjectNames(t *testing.T) {
	t.Parallel()
	s := openWith(t, append(depsBase(),
		store.PutPolicy{Policy: store.Policy{Org: "a", Name: "later", Settings: policy.Settings{Teams: []string{"t8", "t9"}}}},
		store.PutProject{Project: store.Project{Org: "a", Name: "p5", Policy: "later"}}, // effective t8, t9: neither exists
	))
	step := func(name string, want store.RoleSet, changes ...store.Change) {
		t.Helper()
		if len(changes) > 0 {
			_, err := s.Apply(t.Context(), changes...)
			require.NoError(t, err, name)
		}
		require.NoError(t, s.Check(), name)
		require.NoError(t, s.View(func(r store.Reader) error {
			pv, ok := r.Project("a", "p5")
			require.True(t, ok)
			got := r.Access("a", "", "p5", "bob").TeamRoles
			require.Equal(t, r.TeamRoles("a", "bob").In(pv.Teams.Values), got, name)
			require.Equal(t, want, got, name)
			return nil
		}), name)
	}
	var admin, viewer store.RoleSet // bob's roles as sets, read from the store below
	step("no listed team exists", 0)
	step("t9 created, bob its admin", 0, store.PutTeam{Team: store.Team{Org: "a", Name: "t9"}})
	_, err := s.Apply(t.Context(), store.PutTeamMember{Org: "a", Team: "t9", User: "bob", Role: "admin"})
	require.NoError(t, err)
	require.NoError(t, s.View(func(r store.Reader) error {
		admin = r.TeamRoles("a", "bob").In([]string{"t9"})
		return nil
	}))
	require.NotZero(t, admin)
	step("bob admin of t9", admin)
	step("t9 deleted", 0, store.DeleteTeam{Org: "a", Name: "t9"})
	step("tx reuses t9's id, bob its viewer", 0,
		store.PutTeam{Team: store.Team{Org: "a", Name: "tx"}},
		store.PutTeamMember{Org: "a", Team: "tx", User: "bob", Role: "viewer"})
	require.NoError(t, s.View(func(r store.Reader) error {
		viewer = r.TeamRoles("a", "bob").In([]string{"tx"})
		return nil
	}))
	require.NotZero(t, viewer)
	step("tx renamed t8", viewer, store.RenameTeam{Org: "a", From: "tx", To: "t8"})
	_, err = s.Apply(t.Context(),
		store.PutTeam{Team: store.Team{Org: "a", Name: "t9"}},
		store.PutTeamMember{Org: "a", Team: "t9", User: "bob", Role: "admin"},
		store.PutTeamMember{Org: "a", Team: "t9", User: "nobody", Role: "admin"}) // not a member: the batch fails
	require.Error(t, err)
	step("a failed batch that created t9", viewer)
	step("t9 created again, bob its admin", admin|viewer,
		store.PutTeam{Team: store.Team{Org: "a", Name: "t9"}},
		store.PutTeamMember{Org: "a", Team: "t9", User: "bob", Role: "admin"})
	step("t8 renamed t7 (the allow-list follows)", admin|viewer, store.RenameTeam{Org: "a", From: "t8", To: "t7"})
}
