package store_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/store"
)

// randomFile draws a data file over a small vocabulary of names, so that two draws share and
// differ in members, teams, links, projects, grants, policies and default teams. Every draw names
// the orgs o and q and lists every user, so that a reload and a fresh load can be compared whole.
func randomFile(rng *rand.Rand) *store.File {
	users := []string{"ann", "ben", "cat", "dan"}
	teams := []string{"red", "blue", "green"}
	some := func(names []string) []string {
		var out []string
		for _, n := range names {
			if rng.IntN(2) == 0 {
				out = append(out, n)
			}
		}
		return out
	}
	one := func(names []string) string {
		if i := rng.IntN(len(names) + 1); i < len(names) {
			return names[i]
		}
		return ""
	}
	f := &store.File{Users: map[string]store.FileUser{}}
	for _, name := range []string{"o", "q"} {
		o := store.FileOrg{Name: name, Members: map[string]string{}, ArchivedDeletionInterval: rng.IntN(2)}
		for _, u := range some(users) {
			o.Members[u] = store.OrgRoles()[rng.IntN(len(store.OrgRoles()))]
		}
		members := make([]string, 0, len(o.Members))
		for _, u := range users {
			if _, ok := o.Members[u]; ok {
				members = append(members, u)
			}
		}
		pols := some([]string{"pa", "pb"})
		for _, p := range pols {
			o.Policies = append(o.Policies, store.FilePolicy{Name: p, Settings: policy.Settings{Teams: some(teams)}})
		}
		ts := some(teams)
		for _, tm := range ts {
			ft := store.FileTeam{Name: tm, Policy: one(pols), Members: map[string]store.FileMember{}}
			for _, u := range some(members) {
				ft.Members[u] = store.FileMember{Role: store.TeamRoles()[rng.IntN(len(store.TeamRoles()))]}
			}
			o.Teams = append(o.Teams, ft)
		}
		for _, p := range some([]string{"p1", "p2", "p3"}) {
			fp := store.FileProject{Name: p, Teams: some(ts), Policy: one(pols), Grants: map[string]store.FileGrant{}}
			for _, u := range some(members) {
				fp.Grants[u] = store.FileGrant{Role: store.TeamRoles()[rng.IntN(len(store.TeamRoles()))]}
			}
			o.Projects = append(o.Projects, fp)
		}
		f.Orgs = append(f.Orgs, o)
	}
	for _, u := range users {
		var in []string // mostly a team the user is in; sometimes one they are not
		for _, o := range f.Orgs {
			for _, tm := range o.Teams {
				if _, ok := tm.Members[u]; ok || rng.IntN(8) == 0 {
					in = append(in, o.Name+"/"+tm.Name)
				}
			}
		}
		f.Users[u] = store.FileUser{DefaultTeam: one(in)}
	}
	return f
}

// editFile returns a copy of f with a few random edits: members and team members dropped or
// their roles changed, team links and project policies and teams re-drawn, teams, projects,
// policies and grants dropped, default teams cleared. Editing a loaded file, rather than
// drawing another, keeps most records equal, which is where a reload can go wrong.
func editFile(t *testing.T, rng *rand.Rand, f *store.File) *store.File {
	t.Helper()
	g, err := store.ParseFile(encode(t, f))
	require.NoError(t, err)
	often := func() bool { return rng.IntN(4) == 0 }
	for i := range g.Orgs {
		o := &g.Orgs[i]
		var pols []string
		for _, p := range o.Policies {
			pols = append(pols, p.Name)
		}
		redraw := func(cur string) string {
			if !often() {
				return cur
			}
			if i := rng.IntN(len(pols) + 1); i < len(pols) {
				return pols[i]
			}
			return ""
		}
		for u := range o.Members {
			if often() {
				o.Members[u] = store.OrgRoles()[rng.IntN(len(store.OrgRoles()))]
			}
		}
		for j := range o.Teams {
			tm := &o.Teams[j]
			tm.Policy = redraw(tm.Policy)
			for u := range tm.Members {
				if often() {
					delete(tm.Members, u)
				}
			}
		}
		for j := range o.Projects {
			p := &o.Projects[j]
			p.Policy = redraw(p.Policy)
			if often() && len(p.Teams) > 0 {
				p.Teams = p.Teams[1:]
			}
			for u := range p.Grants {
				if often() {
					delete(p.Grants, u)
				}
			}
		}
		if often() && len(o.Projects) > 0 {
			o.Projects = o.Projects[1:]
		}
		// What goes next is mostly also removed where it is named, so that most edits load.
		tidy := rng.IntN(8) != 0
		if often() && len(o.Teams) > 0 {
			gone := o.Teams[0].Name
			o.Teams = o.Teams[1:]
			for j := range o.Projects {
				if tidy {
					o.Projects[j].Teams = slices.DeleteFunc(o.Projects[j].Teams, func(s string) bool { return s == gone })
				}
			}
		}
		if often() && len(o.Policies) > 0 {
			gone := o.Policies[0].Name
			o.Policies = o.Policies[1:]
			for j := range o.Teams {
				if tidy && o.Teams[j].Policy == gone {
					o.Teams[j].Policy = ""
				}
			}
			for j := range o.Projects {
				if tidy && o.Projects[j].Policy == gone {
					o.Projects[j].Policy = ""
				}
			}
		}
		for u := range o.Members {
			if !often() {
				continue
			}
			delete(o.Members, u)
			for j := range o.Teams {
				if tidy {
					delete(o.Teams[j].Members, u)
				}
			}
			for j := range o.Projects {
				if tidy {
					delete(o.Projects[j].Grants, u)
				}
			}
		}
	}
	for u, fu := range g.Users { // a default team the user left is mostly cleared
		org, tm, _ := strings.Cut(fu.DefaultTeam, "/")
		in := false
		for _, o := range g.Orgs {
			for _, ft := range o.Teams {
				if _, ok := ft.Members[u]; ok && o.Name == org && ft.Name == tm {
					in = true
				}
			}
		}
		if often() || (!in && rng.IntN(8) != 0) {
			g.Users[u] = store.FileUser{}
		}
	}
	return g
}

// TestReloadEqualsFreshLoad: loading file B over a store holding file A leaves exactly what a
// fresh load of B gives (or fails, changing nothing, exactly when a fresh load of B fails),
// whatever A and B hold: members, team members and teams dropped, links changed beside
// projects' own policies, default teams, grants.
func TestReloadEqualsFreshLoad(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(8, 2))
	loaded := 0
	for i := range 200 {
		fa := randomFile(rng)
		fb := editFile(t, rng, fa)
		if i%4 == 0 {
			fb = randomFile(rng)
		}
		a, b := encode(t, fa), encode(t, fb)
		fresh, err := store.Open(ctx, store.Options{})
		require.NoError(t, err)
		_, freshErr := fresh.Load(ctx, bytes.NewReader(b))
		s, err := store.Open(ctx, store.Options{})
		require.NoError(t, err)
		if _, err := s.Load(ctx, bytes.NewReader(a)); err != nil {
			require.NoError(t, s.Close())
			require.NoError(t, fresh.Close())
			continue
		}
		before, rev := export(t, s), s.Revision()
		_, err = s.Load(ctx, bytes.NewReader(b))
		require.NoError(t, s.Check())
		if freshErr != nil {
			require.Error(t, err, "draw %d: a fresh load fails (%v), the reload does not\nA:\n%s\nB:\n%s", i, freshErr, a, b)
			require.Equal(t, before, export(t, s), "draw %d: a failed reload changed nothing", i)
			require.Equal(t, rev, s.Revision())
		} else {
			require.NoError(t, err, "draw %d: a fresh load succeeds\nA:\n%s\nB:\n%s", i, a, b)
			require.Equal(t, export(t, fresh), export(t, s), "draw %d\nA:\n%s\nB:\n%s", i, a, b)
			loaded++
		}
		require.NoError(t, s.Close())
		require.NoError(t, fresh.Close())
	}
	t.Log("loaded", loaded)
	require.Greater(t, loaded, 50, "enough draws load")
}

// TestReplicaReplaysLoadsRenamesAndCreates: a replica that applies a primary's events, each
// decoded from JSON, through random reloads (edited or new files), team renames and project
// creations — failed ones included — ends with the same directory.
func TestReplicaReplaysLoadsRenamesAndCreates(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(3, 4))
	primary, err := store.Open(ctx, store.Options{})
	require.NoError(t, err)
	defer primary.Close()
	replica, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	require.NoError(t, err)
	defer replica.Close()
	f := randomFile(rng)
	kinds := map[string]int{}
	for range 300 {
		switch rng.IntN(4) {
		case 0:
			f = randomFile(rng)
			_, _ = primary.Load(ctx, bytes.NewReader(encode(t, f)))
		case 1:
			f = editFile(t, rng, f)
			_, _ = primary.Load(ctx, bytes.NewReader(encode(t, f)))
		case 2:
			teams := []string{"red", "blue", "green", "x"}
			_, _ = primary.Apply(ctx, store.RenameTeam{Org: "o", From: teams[rng.IntN(4)], To: teams[rng.IntN(4)]})
		case 3:
			_, _ = primary.Apply(ctx, store.CreateProject{
				Project: store.Project{Org: "o", Name: []string{"p1", "p2", "p4"}[rng.IntN(3)]},
				Team:    []string{"red", "blue", "green", ""}[rng.IntN(4)]})
		}
	}
	events, err := primary.Watch(ctx, 0)
	require.NoError(t, err)
	for ev := range events {
		raw, err := json.Marshal(ev)
		require.NoError(t, err)
		var decoded store.Event
		require.NoError(t, json.Unmarshal(raw, &decoded))
		_, err = replica.ApplyEvent(ctx, decoded)
		require.NoError(t, err, "revision %d (%s)", ev.Revision, ev.Kind)
		kinds[ev.Kind]++
		if ev.Revision == primary.Revision() {
			break
		}
	}
	for _, kind := range []string{"put_file", "rename_team", "create_project"} {
		require.NotZero(t, kinds[kind], "%s events replayed: %v", kind, kinds)
	}
	require.Equal(t, export(t, primary), export(t, replica))
	require.NoError(t, replica.Check())
}

// TestReplicaFollowsALoadOfManyRecords: loading a file of more records than an event lists
// (MaxEventEntries) is one change, the file: the event's lists are cut, but it still carries the
// file, so a replica follows it instead of having to resync.
func TestReplicaFollowsALoadOfManyRecords(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := &store.File{Orgs: []store.FileOrg{{Name: "big", Members: map[string]string{}}}}
	for i := range store.MaxEventEntries + 5000 {
		f.Orgs[0].Members[fmt.Sprintf("user%05d", i)] = "member"
	}
	primary, err := store.Open(ctx, store.Options{})
	require.NoError(t, err)
	defer primary.Close()
	replica, err := store.Open(ctx, store.Options{})
	require.NoError(t, err)
	defer replica.Close()
	rev, err := primary.Load(ctx, bytes.NewReader(encode(t, f)))
	require.NoError(t, err)
	events, err := primary.Watch(ctx, rev-1)
	require.NoError(t, err)
	ev := <-events
	require.True(t, ev.Truncated, "more keys than an event lists")
	require.Zero(t, len(ev.Keys), "left out to keep the changes")
	require.Len(t, ev.Changes, 1, "the file itself")
	raw, err := json.Marshal(ev)
	require.NoError(t, err)
	var decoded store.Event
	require.NoError(t, json.Unmarshal(raw, &decoded))
	_, err = replica.ApplyEvent(ctx, decoded)
	require.NoError(t, err)
	require.Equal(t, export(t, primary), export(t, replica))
}
