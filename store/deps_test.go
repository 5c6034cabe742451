package store_test

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/store"
)

// depsBase is a small directory every dependency case starts from: p1 is restricted to t1 and t2
// and connected to pol, whose teams narrow it to t1; p2 is open.
func depsBase() []store.Change {
	return []store.Change{
		store.PutOrg{Org: store.Org{Name: "a", Queue: "q/one"}},
		store.PutMember{Org: "a", User: "alice", Role: "owner"},
		store.PutMember{Org: "a", User: "bob", Role: "member"},
		store.PutMember{Org: "a", User: "carl", Role: "member"},
		store.PutTeam{Team: store.Team{Org: "a", Name: "t1"}},
		store.PutTeam{Team: store.Team{Org: "a", Name: "t2"}},
		store.PutTeamMember{Org: "a", Team: "t1", User: "bob", Role: "member"},
		store.PutPolicy{Policy: store.Policy{Org: "a", Name: "pol", Settings: policy.Settings{Teams: []string{"t1"}}}},
		store.PutProject{Project: store.Project{Org: "a", Name: "p1", Teams: []string{"t1", "t2"}, Policy: "pol",
			Grants: map[string]store.Grant{"carl": {Role: "viewer"}}}},
		store.PutProject{Project: store.Project{Org: "a", Name: "p2"}},
		store.PutUser{User: store.User{ID: "bob"}},
	}
}

// depsCase reads with one accessor; write changes what it reads.
type depsCase struct {
	accessor string
	read     func(r store.Reader) any
	write    []store.Change
}

func depsCases() []depsCase {
	p1 := store.Project{Org: "a", Name: "p1", Teams: []string{"t1", "t2"}, Policy: "pol", Grants: map[string]store.Grant{"carl": {Role: "viewer"}}}
	return []depsCase{
		{"Org", func(r store.Reader) any { return pair(r.Org("a")) }, []store.Change{store.PutOrg{Org: store.Org{Name: "a", Queue: "q/two"}}}},
		{"Org", func(r store.Reader) any { return pair(r.Org("b")) }, []store.Change{store.PutOrg{Org: store.Org{Name: "b"}}}},
		{"Org", func(r store.Reader) any { return pair(r.Org("a")) }, []store.Change{store.DeleteOrg{Name: "a"}}},
		{"Orgs", func(r store.Reader) any { return r.Orgs() }, []store.Change{store.PutOrg{Org: store.Org{Name: "b"}}}},
		{"OrgRole", func(r store.Reader) any { return pair(r.OrgRole("a", "bob")) }, []store.Change{store.PutMember{Org: "a", User: "bob", Role: "admin"}}},
		{"OrgRole", func(r store.Reader) any { return pair(r.OrgRole("a", "dave")) }, []store.Change{store.PutMember{Org: "a", User: "dave", Role: "viewer"}}},
		{"OrgRole", func(r store.Reader) any { return pair(r.OrgRole("a", "bob")) }, []store.Change{store.DeleteOrg{Name: "a"}}},
		{"Members", func(r store.Reader) any { return r.Members("a") }, []store.Change{store.PutMember{Org: "a", User: "dave", Role: "viewer"}}},
		{"MemberList", func(r store.Reader) any { return slices.Collect(r.MemberList("a").After("")) }, []store.Change{store.PutMember{Org: "a", User: "dave", Role: "viewer"}}},
		{"MemberList", func(r store.Reader) any { return slices.Collect(r.MemberList("a").After("")) }, []store.Change{store.DeleteMember{Org: "a", User: "bob"}}},
		{"TeamRoles", func(r store.Reader) any { return r.TeamRoles("a", "bob").Map() }, []store.Change{store.PutTeamMember{Org: "a", Team: "t2", User: "bob", Role: "admin"}}},
		{"TeamRoles", func(r store.Reader) any { return r.TeamRoles("a", "bob").Map() }, []store.Change{store.DeleteMember{Org: "a", User: "bob"}}},
		{"Team", func(r store.Reader) any { return pair(r.Team("a", "t1")) }, []store.Change{store.PutTeam{Team: store.Team{Org: "a", Name: "t1", Policy: "pol"}}}},
		{"Team", func(r store.Reader) any { return pair(r.Team("a", "t3")) }, []store.Change{store.PutTeam{Team: store.Team{Org: "a", Name: "t3"}}}},
		{"Teams", func(r store.Reader) any { return r.Teams("a") }, []store.Change{store.PutTeam{Team: store.Team{Org: "a", Name: "t3"}}}},
		{"TeamMembers", func(r store.Reader) any { return r.TeamMembers("a", "t1") }, []store.Change{store.PutTeamMember{Org: "a", Team: "t1", User: "carl", Role: "viewer"}}},
		{"TeamMemberExpiry", func(r store.Reader) any { return pair(r.TeamMemberExpiry("a", "t1", "bob")) },
			[]store.Change{store.PutTeamMember{Org: "a", Team: "t1", User: "bob", Role: "member", ExpiresAt: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)}}},
		{"TeamMemberExpiry", func(r store.Reader) any { return pair(r.TeamMemberExpiry("a", "t1", "carl")) }, []store.Change{store.PutTeamMember{Org: "a", Team: "t1", User: "carl", Role: "viewer"}}},
		{"TeamMemberExpiry", func(r store.Reader) any { return pair(r.TeamMemberExpiry("a", "t1", "bob")) }, []store.Change{store.DeleteMember{Org: "a", User: "bob"}}},
		{"Project", func(r store.Reader) any { return pair(r.Project("a", "p1")) }, []store.Change{store.PutGrant{Org: "a", Project: "p1", User: "bob", Grant: store.Grant{Role: "admin"}}}},
		{"Project", func(r store.Reader) any { return pair(r.Project("a", "p1")) }, []store.Change{store.PutPolicy{Policy: store.Policy{Org: "a", Name: "pol", Settings: policy.Settings{Teams: []string{"t1", "t2"}}}}}},
		{"Project", func(r store.Reader) any { return pair(r.Project("a", "p3")) }, []store.Change{store.PutProject{Project: store.Project{Org: "a", Name: "p3"}}}},
		// Labels are project facts a policy reads (input.resource.labels): changing only them,
		// through the API or a data file, bumps the project's stamp.
		{"Project", func(r store.Reader) any { return pair(r.Project("a", "p2")) }, []store.Change{store.PutProject{Project: store.Project{Org: "a", Name: "p2", Labels: map[string]string{"approval": "admin-only"}}}}},
		{"Project", func(r store.Reader) any { return pair(r.Project("a", "p1")) }, []store.Change{store.PutFile{File: func() store.File {
			f := depsFile()
			f.Orgs[0].Projects[0].Labels = map[string]string{"tier": "gold"}
			return f
		}()}}},
		{"Projects", func(r store.Reader) any { return r.Projects("a") }, []store.Change{store.PutProject{Project: store.Project{Org: "a", Name: "p3"}}}},
		{"ProjectCount", func(r store.Reader) any { return r.ProjectCount("a") }, []store.Change{store.DeleteProject{Org: "a", Name: "p2"}}},
		{"OpenProjects", func(r store.Reader) any { return r.OpenProjects("a") }, []store.Change{store.PutProject{Project: store.Project{Org: "a", Name: "p2", Teams: []string{"t2"}}}}},
		{"GrantProjects", func(r store.Reader) any { return r.GrantProjects("a", "carl") }, []store.Change{store.PutGrant{Org: "a", Project: "p2", User: "carl", Grant: store.Grant{Role: "admin"}}}},
		{"GrantProjects", func(r store.Reader) any { return r.GrantProjects("a", "carl") }, []store.Change{store.DeleteMember{Org: "a", User: "carl"}}},
		{"TeamProjects", func(r store.Reader) any { return r.TeamProjects("a", "t2") }, []store.Change{store.PutPolicy{Policy: store.Policy{Org: "a", Name: "pol", Settings: policy.Settings{Teams: []string{"t1", "t2"}}}}}},
		{"Policy", func(r store.Reader) any { return pair(r.Policy("a", "pol")) }, []store.Change{store.PutPolicy{Policy: store.Policy{Org: "a", Name: "pol", Settings: policy.Settings{Queues: []string{"q/one"}}}}}},
		{"Policy", func(r store.Reader) any { return pair(r.Policy("a", "pol2")) }, []store.Change{store.PutPolicy{Policy: store.Policy{Org: "a", Name: "pol2"}}}},
		{"Policies", func(r store.Reader) any { return r.Policies("a") }, []store.Change{store.PutPolicy{Policy: store.Policy{Org: "a", Name: "pol2"}}}},
		{"ConnectedProjects", func(r store.Reader) any { return r.ConnectedProjects("a", "pol") }, []store.Change{store.PutProject{Project: store.Project{Org: "a", Name: "p2", Policy: "pol"}}}},
		{"User", func(r store.Reader) any { return pair(r.User("bob")) }, []store.Change{store.PutUser{User: store.User{ID: "bob", DefaultTeam: "a/t1"}}}},
		{"User", func(r store.Reader) any { return pair(r.User("erin")) }, []store.Change{store.PutUser{User: store.User{ID: "erin"}}}},
		{"Users", func(r store.Reader) any { return r.Users() }, []store.Change{store.PutUser{User: store.User{ID: "erin"}}}},
		{"Settings", func(r store.Reader) any { return pair(r.Settings("a", "p1", "carl")) }, []store.Change{store.PutOrg{Org: store.Org{Name: "a", Queue: "q/two"}}}},
		{"Settings", func(r store.Reader) any { return pair(r.Settings("a", "p1", "carl")) }, []store.Change{store.PutGrant{Org: "a", Project: "p1", User: "carl", Grant: store.Grant{Role: "viewer", Queue: "q/three"}}}},
		{"Settings", func(r store.Reader) any { return pair(r.Settings("a", "p1", "carl")) }, []store.Change{store.PutPolicy{Policy: store.Policy{Org: "a", Name: "pol", Settings: policy.Settings{Teams: []string{"t1"}, Agents: []string{"k8s"}}}}}},
		{"Settings", func(r store.Reader) any { return pair(r.Settings("a", "p1", "carl")) }, []store.Change{store.PutProject{Project: func() store.Project {
			p := p1
			p.Settings.Presets = []string{"small"}
			return p
		}()}}},
		{"Snapshot", func(r store.Reader) any { return r.Snapshot() }, []store.Change{store.PutTeamMember{Org: "a", Team: "t2", User: "carl", Role: "admin"}}},
		{"Snapshot", func(r store.Reader) any { return r.Snapshot() }, []store.Change{store.PutUser{User: store.User{ID: "erin"}}}},
		{"Expiries", func(r store.Reader) any { due, next := r.Expiries(time.Unix(1e9, 0)); return []any{due, next} }, []store.Change{
			store.PutTeamMember{Org: "a", Team: "t1", User: "carl", Role: "viewer", ExpiresAt: time.Unix(2e9, 0)}}},
		{"Access", func(r store.Reader) any { return r.Access("a", "", "p1", "bob") }, []store.Change{store.PutTeamMember{Org: "a", Team: "t1", User: "bob", Role: "admin"}}},
		{"Access", func(r store.Reader) any { return r.Access("a", "", "p1", "carl") }, []store.Change{store.PutGrant{Org: "a", Project: "p1", User: "carl", Grant: store.Grant{Role: "admin"}}}},
		{"Access", func(r store.Reader) any { return r.Access("a", "t1", "p1", "bob") }, []store.Change{store.PutPolicy{Policy: store.Policy{Org: "a", Name: "pol", Settings: policy.Settings{Teams: []string{"t2"}}}}}},
		{"Access", func(r store.Reader) any { return r.Access("a", "t9", "", "bob") }, []store.Change{store.PutTeam{Team: store.Team{Org: "a", Name: "t9"}}}},
		{"Access", func(r store.Reader) any { return r.Access("a", "t1", "", "bob") }, []store.Change{store.DeleteMember{Org: "a", User: "bob"}}},
		{"Access", func(r store.Reader) any { return r.Access("b", "", "", "bob") }, []store.Change{store.PutOrg{Org: store.Org{Name: "b"}}}},
		{"Access", func(r store.Reader) any { return r.Access("a", "", "p3", "bob") }, []store.Change{store.PutProject{Project: store.Project{Org: "a", Name: "p3"}}}},
		{"Access", func(r store.Reader) any { return r.Access("a", "", "", "bob") }, []store.Change{store.PutMember{Org: "a", User: "bob", Role: "admin"}}},
		{"Rules", func(r store.Reader) any { return r.Rules("a", "p1") }, []store.Change{store.PutPolicy{Policy: store.Policy{Org: "a", Name: "pol",
			Settings: policy.Settings{Teams: []string{"t1"}, Rules: []policy.Rule{{Name: "r", Expression: "true"}}}}}}},
	}
}

// depsFile is depsBase as a data file.
func depsFile() store.File {
	s, err := store.Open(context.Background(), store.Options{})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	if _, err := s.Apply(context.Background(), depsBase()...); err != nil {
		panic(err)
	}
	var f *store.File
	_ = s.View(func(r store.Reader) error { f = r.Snapshot(); return nil })
	return *f
}

// pair keeps both results of a two-result accessor.
func pair[T any](v T, ok bool) any { return []any{v, ok} }

// TestEveryReaderAccessorRecordsItsStamps is the store's dependency contract: every fact a Reader
// serves has a stamp that every write changing the fact bumps. For each exported accessor (the
// table must name them all), a tracking read is followed by a write that changes the answer; the
// recorded Deps must then no longer be current.
func TestEveryReaderAccessorRecordsItsStamps(t *testing.T) {
	t.Parallel()
	cases := depsCases()
	exempt := []string{"Revision", "Track"} // the snapshot's revision is not a fact; Track starts tracking
	var methods, covered []string
	rt := reflect.TypeFor[store.Reader]()
	for i := range rt.NumMethod() {
		if name := rt.Method(i).Name; !slices.Contains(exempt, name) {
			methods = append(methods, name)
		}
	}
	for _, c := range cases {
		if !slices.Contains(covered, c.accessor) {
			covered = append(covered, c.accessor)
		}
	}
	require.ElementsMatch(t, methods, covered, "every Reader accessor has a case")

	for _, c := range cases {
		t.Run(c.accessor, func(t *testing.T) {
			t.Parallel()
			s := openDeps(t)
			var d store.Deps
			var before []byte
			require.NoError(t, s.View(func(r store.Reader) error {
				before = snapshot(t, c.read(r.Track(&d)))
				return nil
			}))
			require.True(t, d.Current())
			require.Positive(t, d.Len())
			_, err := s.Apply(t.Context(), c.write...)
			require.NoError(t, err)
			var after []byte
			require.NoError(t, s.View(func(r store.Reader) error {
				after = snapshot(t, c.read(r))
				return nil
			}))
			require.NotEqual(t, string(before), string(after), "the case's write changes the answer")
			require.False(t, d.Current(), "the write bumped a stamp the read recorded")
		})
	}
}

// snapshot encodes an answer inside the View, where its maps may still be read.
func snapshot(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func openDeps(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	_, err = s.Apply(t.Context(), depsBase()...)
	require.NoError(t, err)
	return s
}

// decisionReads reads what a decision on bob and p1 reads, plus a team that does not exist.
func decisionReads(r store.Reader) {
	r.Org("a")
	r.Team("a", "t9")
	r.Project("a", "p1")
	r.OrgRole("a", "bob")
	r.TeamRoles("a", "bob")
}

func TestDepsUnrelatedWritesKeepThemCurrent(t *testing.T) {
	t.Parallel()
	s := openDeps(t)
	var d store.Deps
	require.NoError(t, s.View(func(r store.Reader) error { decisionReads(r.Track(&d)); return nil }))
	require.Equal(t, 4, d.Len(), "org, team, project, bob's membership: each once")
	for _, c := range []store.Change{
		store.PutMember{Org: "a", User: "carl", Role: "admin"},
		store.PutGrant{Org: "a", Project: "p2", User: "bob", Grant: store.Grant{Role: "admin"}},
		store.PutTeamMember{Org: "a", Team: "t2", User: "carl", Role: "admin"},
		store.PutUser{User: store.User{ID: "bob", DefaultTeam: "a/t1"}}, // a user record exists already
	} {
		_, err := s.Apply(t.Context(), c)
		require.NoError(t, err)
		require.True(t, d.Current(), "%s", c.Kind())
	}
	var untracked store.Deps
	require.False(t, untracked.Current(), "the zero Deps is never current")
}

// TestDepsBeyondTheInlineWatches: a Deps of more stamps than it holds inline (Current reads the
// rest only then) stops being current when any of them is written, the last one read included.
func TestDepsBeyondTheInlineWatches(t *testing.T) {
	t.Parallel()
	s := openDeps(t)
	var d store.Deps
	read := func(r store.Reader) {
		decisionReads(r) // four stamps
		for _, u := range []string{"alice", "carl", "dan", "erin"} {
			r.OrgRole("a", u)
		}
		r.Project("a", "p2")
		r.User("bob") // the tenth
	}
	require.NoError(t, s.View(func(r store.Reader) error { read(r.Track(&d)); return nil }))
	require.Equal(t, 10, d.Len())
	_, err := s.Apply(t.Context(), store.PutTeamMember{Org: "a", Team: "t2", User: "carl", Role: "admin"})
	require.NoError(t, err)
	require.False(t, d.Current(), "carl's membership, the sixth stamp")
	require.NoError(t, s.View(func(r store.Reader) error { read(r.Track(&d)); return nil }))
	require.True(t, d.Current())
	_, err = s.Apply(t.Context(), store.PutUser{User: store.User{ID: "bob", DefaultTeam: "a/t1"}})
	require.NoError(t, err)
	require.False(t, d.Current(), "bob's user record, the last stamp")
}

// TestDepsSurviveARestart: encoded Deps decode against the reopened store's stamps.
func TestDepsSurviveARestart(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	open := func() *store.Store {
		s, err := store.Open(ctx, store.Options{Dir: dir, NoSync: true})
		require.NoError(t, err)
		return s
	}
	s := open()
	_, err := s.Apply(ctx, depsBase()...)
	require.NoError(t, err)
	var d store.Deps
	require.NoError(t, s.View(func(r store.Reader) error { decisionReads(r.Track(&d)); return nil }))
	raw, err := d.MarshalBinary()
	require.NoError(t, err)
	var stale store.Deps // recorded, then invalidated before the restart
	require.NoError(t, s.View(func(r store.Reader) error { r.Track(&stale).OrgRole("a", "carl"); return nil }))
	staleRaw, err := stale.MarshalBinary()
	require.NoError(t, err)
	_, err = s.Apply(ctx, store.PutMember{Org: "a", User: "carl", Role: "admin"})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.False(t, d.Current(), "a closed store has no current Deps")
	_, _, err = s.DecodeDeps(raw)
	require.ErrorIs(t, err, teamgate.ErrClosed)

	s = open()
	defer s.Close()
	back, rest, err := s.DecodeDeps(append(raw, 7))
	require.NoError(t, err)
	require.Equal(t, []byte{7}, rest)
	require.Equal(t, d.Len(), back.Len())
	require.True(t, back.Current())
	again, err := back.MarshalBinary()
	require.NoError(t, err)
	require.Equal(t, raw, again, "decoded Deps encode as they were read")
	old, _, err := s.DecodeDeps(staleRaw)
	require.NoError(t, err)
	require.False(t, old.Current(), "written before the restart")

	_, err = s.Apply(ctx, store.PutTeam{Team: store.Team{Org: "a", Name: "t9"}}) // the team read as missing
	require.NoError(t, err)
	require.False(t, back.Current())
	decoded, _, err := s.DecodeDeps(raw)
	require.NoError(t, err)
	require.False(t, decoded.Current(), "recorded missing, written since")

	for i := range raw {
		_, _, _ = s.DecodeDeps(raw[:i]) // truncated: an error or a shorter set, never a panic
	}
	for _, bad := range [][]byte{nil, {0xff}, {1, 3, 'z', '/', 'a', 0}, {1, 2, 'o', '/', 0}} {
		_, _, err := s.DecodeDeps(bad)
		require.ErrorIs(t, err, teamgate.ErrInvalid, "%q", bad)
	}
}
