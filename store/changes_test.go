package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/store"
)

// memAcme opens an in-memory store holding the conformance data; Check runs at the end.
func memAcme(t *testing.T) *store.Store {
	t.Helper()
	s := memStore(t)
	loadAcme(t, s)
	return s
}

// memStore is an empty in-memory store, closed when the test ends.
func memStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// requireIsFile requires s to hold what a new store that loads data holds: the directory equals
// the file.
func requireIsFile(t *testing.T, s *store.Store, data []byte) {
	t.Helper()
	fresh := memStore(t)
	_, err := fresh.Load(t.Context(), bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, export(t, fresh), export(t, s), "the directory equals the file")
}

func export(t *testing.T, s *store.Store) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, s.Export(t.Context(), &b))
	return b.String()
}

// applyEvent applies changes and returns the event they produced.
func applyEvent(t *testing.T, s *store.Store, cs ...store.Change) store.Event {
	t.Helper()
	rev, err := s.Apply(t.Context(), cs...)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch, err := s.Watch(ctx, rev-1)
	require.NoError(t, err)
	ev := <-ch
	require.NoError(t, ev.Err)
	require.Equal(t, rev, ev.Revision)
	require.NoError(t, s.Check())
	return ev
}

// requireRejected applies a batch that must fail with is and checks that nothing changed.
func requireRejected(t *testing.T, s *store.Store, is error, cs ...store.Change) error {
	t.Helper()
	before, rev := export(t, s), s.Revision()
	_, err := s.Apply(t.Context(), cs...)
	require.ErrorIs(t, err, is)
	require.Equal(t, before, export(t, s))
	require.Equal(t, rev, s.Revision())
	require.NoError(t, s.Check())
	return err
}

func project(t *testing.T, s *store.Store, org, name string) (store.ProjectView, bool) {
	t.Helper()
	var pv store.ProjectView
	var ok bool
	require.NoError(t, s.View(func(r store.Reader) error {
		pv, ok = r.Project(org, name)
		if ok {
			p := *pv.Project // a copy: the record is only valid inside View
			pv.Project = &p
		}
		return nil
	}))
	return pv, ok
}

func user(t *testing.T, s *store.Store, id string) store.User {
	t.Helper()
	var u store.User
	require.NoError(t, s.View(func(r store.Reader) error {
		u, _ = r.User(id)
		return nil
	}))
	return u
}

// TestCreateProjectConcurrently: of many creators of one name exactly one succeeds and its record
// is the one kept (PutProject would let each replace the last).
func TestCreateProjectConcurrently(t *testing.T) {
	t.Parallel()
	s := memAcme(t)
	users := []string{"alice", "mona", "adam", "amir", "bob", "beth", "vera", "bill", "olga", "otto"}
	errs := make([]error, len(users))
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() {
			_, errs[i] = s.Apply(t.Context(), store.CreateProject{Team: "engineering", Project: store.Project{
				Org: "acme", Name: "race", CreatedBy: u, Settings: policy.Settings{Queue: "gpu/" + u}}})
		})
	}
	wg.Wait()
	winner := ""
	for i, err := range errs {
		if err == nil {
			require.Empty(t, winner, "two creators succeeded")
			winner = users[i]
			continue
		}
		require.ErrorIs(t, err, teamgate.ErrConflict)
		require.Contains(t, err.Error(), "acme/race")
	}
	require.NotEmpty(t, winner)
	pv, ok := project(t, s, "acme", "race")
	require.True(t, ok)
	require.Equal(t, winner, pv.Project.CreatedBy)
	require.Equal(t, "gpu/"+winner, pv.Project.Settings.Queue)
	require.Equal(t, []string{"engineering"}, pv.Project.Teams)
	require.Equal(t, "gpu-policy", pv.Project.Policy)
}

func TestCreateProject(t *testing.T) {
	t.Parallel()
	s := memAcme(t)
	// Read the team's link, then another writer changes it before the create: the project gets
	// the link current when the create applies.
	var link string
	require.NoError(t, s.View(func(r store.Reader) error {
		tm, _ := r.Team("acme", "engineering")
		link = tm.Policy
		return nil
	}))
	require.Equal(t, "gpu-policy", link)
	_, err := s.Apply(t.Context(), store.PutTeam{Team: store.Team{Org: "acme", Name: "engineering", Policy: "research-only"}})
	require.NoError(t, err)
	ev := applyEvent(t, s, store.CreateProject{Team: "engineering", Project: store.Project{Org: "acme", Name: "fresh", CreatedBy: "bob"}})
	require.Equal(t, "create_project", ev.Kind)
	require.Equal(t, []string{"acme/fresh"}, ev.Projects)
	pv, _ := project(t, s, "acme", "fresh")
	require.Equal(t, "research-only", pv.Project.Policy)
	require.True(t, pv.Teams.Restricted)
	require.Empty(t, pv.Teams.Values, "engineering ∩ research")

	// In one batch too: the link written earlier in the batch is the one used.
	applyEvent(t, s,
		store.PutTeam{Team: store.Team{Org: "acme", Name: "research", Policy: "gpu-policy"}},
		store.CreateProject{Team: "research", Project: store.Project{Org: "acme", Name: "fresh2"}})
	pv, _ = project(t, s, "acme", "fresh2")
	require.Equal(t, "gpu-policy", pv.Project.Policy)
	require.Equal(t, []string{"research"}, pv.Teams.Values)

	// At org level nothing is assigned or connected.
	applyEvent(t, s, store.CreateProject{Project: store.Project{Org: "acme", Name: "orgwide", Grants: map[string]store.Grant{"olga": {Role: "viewer"}}}})
	pv, _ = project(t, s, "acme", "orgwide")
	require.Empty(t, pv.Project.Policy)
	require.False(t, pv.Teams.Restricted)

	for _, tc := range []struct {
		name  string
		c     store.CreateProject
		is    error
		names string
	}{
		{"exists", store.CreateProject{Project: store.Project{Org: "acme", Name: "vision"}}, teamgate.ErrConflict, "acme/vision"},
		{"exists in team space", store.CreateProject{Team: "research", Project: store.Project{Org: "acme", Name: "nlp"}}, teamgate.ErrConflict, "acme/nlp"},
		{"unknown team", store.CreateProject{Team: "nope", Project: store.Project{Org: "acme", Name: "x"}}, teamgate.ErrNotFound, "acme/nope"},
		{"unknown org", store.CreateProject{Project: store.Project{Org: "nope", Name: "x"}}, teamgate.ErrNotFound, "nope"},
		{"bad name", store.CreateProject{Project: store.Project{Org: "acme", Name: "x--y"}}, teamgate.ErrInvalid, "x--y"},
		{"teams beside a team space", store.CreateProject{Team: "research", Project: store.Project{Org: "acme", Name: "x", Teams: []string{"platform"}}}, teamgate.ErrInvalid, "acme/x"},
		{"policy beside a team space", store.CreateProject{Team: "research", Project: store.Project{Org: "acme", Name: "x", Policy: "gpu-policy"}}, teamgate.ErrInvalid, "acme/x"},
		{"validated like PutProject", store.CreateProject{Project: store.Project{Org: "acme", Name: "x", Grants: map[string]store.Grant{"zed": {Role: "viewer"}}}}, teamgate.ErrNotFound, "zed"},
	} {
		err := requireRejected(t, s, tc.is, tc.c)
		require.Contains(t, err.Error(), tc.names, tc.name)
	}
}

// TestTeamPolicyLinkFollows: changing a team's linked policy from OLD to NEW re-connects the
// team's projects connected to OLD (none included) to NEW, and leaves the others alone.
func TestTeamPolicyLinkFollows(t *testing.T) {
	t.Parallel()
	// acme: engineering links gpu-policy; vision [engineering] gpu-policy; nlp [research,
	// engineering] unconnected; labs [engineering] research-only; open and archive unassigned.
	for _, tc := range []struct {
		name      string
		steps     []string // engineering's successive links
		policies  map[string]string
		effective map[string][]string // effective team values where they change
		affected  []string            // the last step's event projects
	}{
		{"to another policy", []string{"eng-only"},
			map[string]string{"vision": "eng-only", "nlp": "", "labs": "research-only", "open": "", "archive": ""},
			map[string][]string{"vision": {"engineering"}}, []string{"acme/vision"}},
		{"unlinked", []string{""},
			map[string]string{"vision": "", "nlp": "", "labs": "research-only", "open": "", "archive": ""},
			map[string][]string{"vision": {"engineering"}}, []string{"acme/vision"}},
		{"linked from none", []string{"", "eng-only"},
			map[string]string{"vision": "eng-only", "nlp": "eng-only", "labs": "research-only", "open": "", "archive": ""},
			map[string][]string{"vision": {"engineering"}, "nlp": {"engineering"}}, []string{"acme/nlp", "acme/vision"}},
		{"to the policy another project uses", []string{"research-only"},
			map[string]string{"vision": "research-only", "nlp": "", "labs": "research-only", "open": "", "archive": ""},
			map[string][]string{"vision": nil}, []string{"acme/vision"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := memAcme(t)
			_, err := s.Apply(t.Context(), store.PutPolicy{Policy: store.Policy{Org: "acme", Name: "eng-only", Settings: policy.Settings{Teams: []string{"engineering"}}}})
			require.NoError(t, err)
			var ev store.Event
			deps := map[string]*store.Deps{} // each project read just before the last step
			for i, link := range tc.steps {
				if i == len(tc.steps)-1 {
					require.NoError(t, s.View(func(r store.Reader) error {
						for p := range tc.policies {
							d := &store.Deps{}
							r.Track(d).Project("acme", p)
							deps[p] = d
						}
						return nil
					}))
				}
				ev = applyEvent(t, s, store.PutTeam{Team: store.Team{Org: "acme", Name: "engineering", Description: "d", Policy: link}})
			}
			require.Equal(t, tc.affected, ev.Projects)
			connected := map[string][]string{}
			for p, pol := range tc.policies {
				pv, ok := project(t, s, "acme", p)
				require.True(t, ok)
				require.Equal(t, pol, pv.Project.Policy, p)
				if pol != "" {
					connected[pol] = append(connected[pol], p)
				}
				if want, ok := tc.effective[p]; ok && len(want) > 0 {
					require.Equal(t, want, pv.Teams.Values, p)
				} else if ok {
					require.Empty(t, pv.Teams.Values, p)
				}
				if slices.Contains(ev.Projects, "acme/"+p) {
					require.False(t, deps[p].Current(), "%s's stamp follows", p)
				} else {
					require.True(t, deps[p].Current(), "%s is not touched", p)
				}
			}
			require.NoError(t, s.View(func(r store.Reader) error {
				for pol, ps := range connected {
					require.ElementsMatch(t, ps, r.ConnectedProjects("acme", pol), pol)
				}
				return nil
			}))
		})
	}
	t.Run("a description change moves nothing", func(t *testing.T) {
		t.Parallel()
		s := memAcme(t)
		ev := applyEvent(t, s, store.PutTeam{Team: store.Team{Org: "acme", Name: "engineering", Description: "new", Policy: "gpu-policy"}})
		require.Empty(t, ev.Projects)
	})
	t.Run("a failed link changes nothing", func(t *testing.T) {
		t.Parallel()
		s := memAcme(t)
		requireRejected(t, s, teamgate.ErrNotFound,
			store.PutTeam{Team: store.Team{Org: "acme", Name: "engineering"}},
			store.PutTeam{Team: store.Team{Org: "acme", Name: "research", Policy: "nope"}})
	})
}

func TestDefaultTeamMustBeEnterable(t *testing.T) {
	t.Parallel()
	s := memAcme(t)
	for _, tc := range []struct {
		user, team string
		is         error
	}{
		{"vera", "acme/research", nil},                   // a member of the team
		{"alice", "acme/research", teamgate.ErrNotFound}, // an org owner outside the team: memberships decide
		{"mona", "acme/platform", teamgate.ErrNotFound},  // an org manager outside the team
		{"adam", "acme/research", teamgate.ErrNotFound},  // an org admin outside the team
		{"beth", "acme/engineering", teamgate.ErrNotFound},
		{"zed", "acme/research", teamgate.ErrNotFound}, // not an org member
		{"bob", "acme/nope", teamgate.ErrNotFound},
		{"bob", "nope/research", teamgate.ErrNotFound},
		{"bob", "acme", teamgate.ErrInvalid},
		{"bob", "acme/x/y", teamgate.ErrInvalid},
	} {
		c := store.PutUser{User: store.User{ID: tc.user, DefaultTeam: tc.team}}
		if tc.is == nil {
			_, err := s.Apply(t.Context(), c)
			require.NoError(t, err, tc)
			require.Equal(t, tc.team, user(t, s, tc.user).DefaultTeam)
			continue
		}
		err := requireRejected(t, s, tc.is, c)
		require.Contains(t, err.Error(), tc.team, tc)
	}
}

// TestDefaultTeamFollowsItsTeam: a default team the user can no longer enter is cleared in the
// same batch; a renamed one is rewritten.
func TestDefaultTeamFollowsItsTeam(t *testing.T) {
	t.Parallel()
	defaults := map[string]string{"bob": "acme/engineering", "vera": "acme/research", "bill": "acme/platform", "zed": "other/x"}
	for _, tc := range []struct {
		name    string
		changes []store.Change
		want    map[string]string // users whose default changes
	}{
		{"team member removed", []store.Change{store.DeleteTeamMember{Org: "acme", Team: "engineering", User: "bob"}},
			map[string]string{"bob": ""}},
		{"org member removed", []store.Change{store.DeleteMember{Org: "acme", User: "vera"}},
			map[string]string{"vera": ""}},
		{"org role changed inside the team", []store.Change{store.PutMember{Org: "acme", User: "vera", Role: "owner"}},
			map[string]string{}},
		{"owner leaves the team", []store.Change{store.PutMember{Org: "acme", User: "bob", Role: "owner"}, store.DeleteTeamMember{Org: "acme", Team: "engineering", User: "bob"}},
			map[string]string{"bob": ""}},
		{"team deleted", []store.Change{store.DeleteTeam{Org: "acme", Name: "platform"}},
			map[string]string{"bill": ""}},
		{"team renamed", []store.Change{store.RenameTeam{Org: "acme", From: "research", To: "lab"}},
			map[string]string{"vera": "acme/lab"}},
		{"org deleted", []store.Change{store.DeleteOrg{Name: "other"}},
			map[string]string{"zed": ""}},
		{"user deleted", []store.Change{store.DeleteUser{ID: "bob"}},
			map[string]string{"bob": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := memAcme(t)
			setup := []store.Change{store.PutTeam{Team: store.Team{Org: "other", Name: "x"}},
				store.PutTeamMember{Org: "other", Team: "x", User: "zed", Role: "admin"}}
			for _, u := range slices.Sorted(maps.Keys(defaults)) {
				setup = append(setup, store.PutUser{User: store.User{ID: u, DefaultTeam: defaults[u]}})
			}
			_, err := s.Apply(t.Context(), setup...)
			require.NoError(t, err)
			ev := applyEvent(t, s, tc.changes...)
			for u, before := range defaults {
				want, changed := tc.want[u]
				if !changed {
					want = before
				}
				require.Equal(t, want, user(t, s, u).DefaultTeam, u)
				if changed && tc.name != "user deleted" {
					require.Contains(t, ev.Keys, "v1/user/"+u)
				}
			}
		})
	}
}

func TestRenameTeam(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, open func() *store.Store) {
		s := open()
		loadAcme(t, s)
		var before map[string]map[string]string // user → team roles
		var beforeProjects []string
		require.NoError(t, s.View(func(r store.Reader) error {
			before = map[string]map[string]string{}
			for u := range r.Members("acme") {
				before[u] = renameKey(r.TeamRoles("acme", u).Map(), "research", "lab")
			}
			beforeProjects = r.TeamProjects("acme", "research")
			return nil
		}))
		ev := applyEvent(t, s, store.RenameTeam{Org: "acme", From: "research", To: "lab"})
		require.Equal(t, "rename_team", ev.Kind)
		require.Equal(t, []string{"acme/labs", "acme/nlp"}, ev.Projects, "nlp is assigned to it; labs is connected to research-only, whose teams name it")
		require.Equal(t, []string{"acme/beth", "acme/vera"}, ev.Subjects)
		require.Subset(t, ev.Keys, []string{"v1/team/acme/research", "v1/team/acme/lab", "v1/tmember/acme/research/beth",
			"v1/tmember/acme/lab/beth", "v1/project/acme/nlp", "v1/policy/acme/research-only"})
		require.NoError(t, s.View(func(r store.Reader) error {
			_, ok := r.Team("acme", "research")
			require.False(t, ok)
			tm, ok := r.Team("acme", "lab")
			require.True(t, ok)
			require.Equal(t, "lab", tm.Name)
			for u, roles := range before {
				require.Equal(t, roles, nilIfEmpty(r.TeamRoles("acme", u).Map()), u)
			}
			require.Equal(t, map[string]string{"beth": "viewer", "vera": "contributor"}, r.TeamMembers("acme", "lab"))
			require.Equal(t, beforeProjects, r.TeamProjects("acme", "lab"))
			require.Empty(t, r.TeamProjects("acme", "research"))
			pv, _ := r.Project("acme", "nlp")
			require.Equal(t, []string{"lab", "engineering"}, pv.Project.Teams, "the order of the assignment is kept")
			pol, _ := r.Policy("acme", "research-only")
			require.Equal(t, []string{"lab"}, pol.Settings.Teams)
			pv, _ = r.Project("acme", "labs")
			require.True(t, pv.Teams.Restricted)
			require.Empty(t, pv.Teams.Values, "engineering ∩ lab, as engineering ∩ research was")
			return nil
		}))

		// A policy that already names the new team keeps it once.
		applyEvent(t, s, store.PutPolicy{Policy: store.Policy{Org: "acme", Name: "both", Settings: policy.Settings{Teams: []string{"platform", "core"}}}})
		applyEvent(t, s, store.RenameTeam{Org: "acme", From: "platform", To: "core"})
		require.NoError(t, s.View(func(r store.Reader) error {
			pol, _ := r.Policy("acme", "both")
			require.Equal(t, []string{"core"}, pol.Settings.Teams)
			return nil
		}))

		for _, tc := range []struct {
			c  store.RenameTeam
			is error
		}{
			{store.RenameTeam{Org: "acme", From: "lab", To: "engineering"}, teamgate.ErrConflict},
			{store.RenameTeam{Org: "acme", From: "lab", To: "lab"}, teamgate.ErrConflict},
			{store.RenameTeam{Org: "acme", From: "research", To: "x"}, teamgate.ErrNotFound},
			{store.RenameTeam{Org: "nope", From: "lab", To: "x"}, teamgate.ErrNotFound},
			{store.RenameTeam{Org: "acme", From: "lab", To: "a/b"}, teamgate.ErrInvalid},
		} {
			requireRejected(t, s, tc.is, tc.c)
		}
	})
}

func renameKey(m map[string]string, from, to string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := map[string]string{}
	for k, v := range m {
		if k == from {
			k = to
		}
		out[k] = v
	}
	return out
}

func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// TestNewChangesReplay: the new changes travel in events; a replica replays them to the same state.
func TestNewChangesReplay(t *testing.T) {
	t.Parallel()
	primary := memAcme(t)
	replica := memAcme(t)
	for _, c := range []store.Change{
		store.CreateProject{Team: "research", Project: store.Project{Org: "acme", Name: "fresh"}},
		store.RenameTeam{Org: "acme", From: "engineering", To: "eng"},
		store.PutTeam{Team: store.Team{Org: "acme", Name: "eng", Policy: "research-only"}},
	} {
		ev := applyEvent(t, primary, c)
		b, err := json.Marshal(ev)
		require.NoError(t, err)
		var got store.Event
		require.NoError(t, json.Unmarshal(b, &got))
		_, err = replica.ApplyEvent(t.Context(), got)
		require.NoError(t, err)
	}
	require.Equal(t, export(t, primary), export(t, replica))
	require.NoError(t, replica.Check())
}

// TestEventsNameSubjects: membership changes name the subjects whose access they affect, and a
// team membership change the team's projects, without bumping those projects' stamps.
func TestEventsNameSubjects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		changes  []store.Change
		subjects []string
		projects []string
		stamped  []string // projects whose stamp the write bumps
	}{
		{"org role", []store.Change{store.PutMember{Org: "acme", User: "bob", Role: "admin"}}, []string{"acme/bob"}, []string{}, nil},
		{"team member added", []store.Change{store.PutTeamMember{Org: "acme", Team: "research", User: "bob", Role: "viewer"}},
			[]string{"acme/bob"}, []string{"acme/nlp"}, nil},
		{"team member removed", []store.Change{store.DeleteTeamMember{Org: "acme", Team: "engineering", User: "vera"}},
			[]string{"acme/vera"}, []string{"acme/nlp", "acme/vision"}, nil},
		{"grant added", []store.Change{store.PutGrant{Org: "acme", Project: "open", User: "vera", Grant: store.Grant{Role: "viewer"}}},
			[]string{"acme/vera"}, []string{"acme/open"}, []string{"open"}},
		{"grant removed", []store.Change{store.DeleteGrant{Org: "acme", Project: "vision", User: "otto"}},
			[]string{"acme/otto"}, []string{"acme/vision"}, []string{"vision"}},
		{"project rewritten with the same grants", []store.Change{store.PutProject{Project: store.Project{Org: "acme", Name: "open",
			Settings: policy.Settings{ExcludedRuntimes: []string{"tuner"}}, Grants: map[string]store.Grant{"bob": {Role: "viewer"}}}}},
			[]string{}, []string{"acme/open"}, []string{"open"}},
		{"org member removed", []store.Change{store.DeleteMember{Org: "acme", User: "beth"}},
			[]string{"acme/beth"}, []string{"acme/nlp", "acme/vision"}, []string{"vision"}},
		{"team deleted", []store.Change{store.DeleteTeam{Org: "acme", Name: "platform"}}, []string{"acme/bill"}, []string{}, nil},
		{"org deleted", []store.Change{store.DeleteOrg{Name: "other"}}, []string{"other/bob", "other/zed"}, []string{"other/misc"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := memAcme(t)
			deps := map[string]*store.Deps{} // each project's record, read before the write
			require.NoError(t, s.View(func(r store.Reader) error {
				for _, p := range r.Projects("acme") {
					d := &store.Deps{}
					r.Track(d).Project("acme", p)
					deps[p] = d
				}
				return nil
			}))
			ev := applyEvent(t, s, tc.changes...)
			require.Equal(t, tc.subjects, ev.Subjects)
			require.Equal(t, tc.projects, ev.Projects)
			for p, d := range deps {
				if slices.Contains(tc.stamped, p) {
					require.False(t, d.Current(), p)
				} else {
					require.True(t, d.Current(), "%s: a membership change leaves the project's stamp", p)
				}
			}
		})
	}
}

func TestWatchFromTrimmedRevisionFails(t *testing.T) {
	t.Parallel()
	s, err := store.Open(t.Context(), store.KeepEvents(store.Options{Dir: t.TempDir(), NoSync: true}, 3))
	require.NoError(t, err)
	defer s.Close()
	write := func(n int) {
		for range n {
			_, err := s.Apply(t.Context(), store.PutOrg{Org: store.Org{Name: fmt.Sprintf("o%d", s.Revision())}})
			require.NoError(t, err)
		}
	}
	write(6) // events 4, 5, 6 kept
	for _, from := range []uint64{0, 1, 2} {
		_, err = s.Watch(t.Context(), from)
		require.ErrorIs(t, err, teamgate.ErrStale, from)
		var te *store.TrimmedError
		require.ErrorAs(t, err, &te)
		require.Equal(t, store.TrimmedError{Next: from + 1, Oldest: 4}, *te)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch, err := s.Watch(ctx, 3)
	require.NoError(t, err)
	for rev := uint64(4); rev <= 6; rev++ {
		require.Equal(t, rev, (<-ch).Revision)
	}

	// A watcher that falls behind while its events are trimmed gets an error, never a gap: the
	// stream buffers a few events, then the writer runs far ahead of it.
	write(40)
	next := uint64(7)
	var last store.Event
	for ev := range ch {
		last = ev
		if ev.Err != nil {
			break
		}
		require.Equal(t, next, ev.Revision, "no revision is skipped")
		next++
	}
	require.ErrorIs(t, last.Err, teamgate.ErrStale)
	var te *store.TrimmedError
	require.ErrorAs(t, last.Err, &te)
	require.Equal(t, next, te.Next)
	require.Less(t, te.Next, te.Oldest)
	_, ok := <-ch
	require.False(t, ok, "the stream ends after the error")
	_, err = s.ApplyEvent(t.Context(), last)
	require.ErrorIs(t, err, teamgate.ErrStale, "a replica passing events on stops there")
}

// TestOpenDropsAnUnenterableDefaultTeam: a user record written before default teams were checked
// must not stop the store from opening; the default is dropped in memory.
func TestOpenDropsAnUnenterableDefaultTeam(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := store.Open(t.Context(), store.Options{Dir: dir, NoSync: true})
	require.NoError(t, err)
	loadAcme(t, s)
	require.NoError(t, store.PutRawRecord(s, "v1/user/alice", []byte(`{"id":"alice","default_team":"acme/research"}`)))
	require.NoError(t, s.Close())
	s, err = store.Open(t.Context(), store.Options{Dir: dir, NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.Empty(t, user(t, s, "alice").DefaultTeam)
	require.NoError(t, s.Check())
}
