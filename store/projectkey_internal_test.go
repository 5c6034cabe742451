package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// projectKeyNames are project names at the edges of projectData.key (15 bytes): short ones,
// 14, 15, 16 and 17 bytes, 15/16-byte names that share their first 15 bytes, and 16/17-byte
// ones that share their first 16.
var projectKeyNames = []string{
	"a", "b1", "p-14-bytes-lon", "p-15-bytes-long", "p-15-bytes-lon2", "p-15-bytes-longx",
	"p-16-bytes-long1", "p-16-bytes-long2", "p-16-bytes-long1x", "p-17-bytes-long-x",
	"a-name-of-thirty-two-bytes-long1",
}

// checkProjectKeys checks what o.projects relies on, in every org of s: each project is found
// by its name, and a name of ≤ 15 bytes is the project's own key bytes (the layout
// TestDecisionReadsFewLines checks, kept by every path that puts a project in the table).
func checkProjectKeys(t *testing.T, s *Store) {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	checkStateProjectKeys(t, s.st)
}

func checkStateProjectKeys(t *testing.T, st *state) {
	t.Helper()
	for on, o := range st.orgs {
		n := 0
		for pd := range o.projects.all {
			n++
			k := pd.p.Name
			require.Same(t, pd, o.project(k), "org %s: project %q is not found by its name", on, k)
			if len(k) <= len(pd.key) {
				require.Equal(t, k, string(pd.key[:len(k)]), "org %s: key bytes of project %q", on, k)
			}
		}
		require.Equal(t, o.projects.len(), n, "org %s: projects counted", on)
	}
}

// TestProjectKeysRandomWrites: random sequences of project writes (create, put with or without
// a team restriction, delete, re-create in one batch, grants, a batch that fails after a delete
// and is rolled back, a team renamed under restricted projects, simulations), with names of 1 to
// 32 bytes around projectData.key's 15, keep every project found by its name, the map's keys
// its own bytes and Store.Check clean, while readers decide on every name concurrently (run it
// under -race); then again after a reopen from disk.
func TestProjectKeysRandomWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, Options{Dir: dir, NoSync: true})
	require.NoError(t, err)
	defer func() { _ = s.Close() }()
	_, err = s.Apply(ctx, PutOrg{Org: Org{Name: "o"}},
		PutMember{Org: "o", User: "u0", Role: "member"}, PutMember{Org: "o", User: "u1", Role: "admin"},
		PutTeam{Team: Team{Org: "o", Name: "t0"}}, PutTeam{Team: Team{Org: "o", Name: "t1"}},
		PutTeamMember{Org: "o", Team: "t0", User: "u0", Role: "contributor"})
	require.NoError(t, err)

	halt := readAlong(2, func(i, n int, a *Access) bool {
		name := projectKeyNames[(n+i)%len(projectKeyNames)]
		if _, err := s.ViewAccess(a, "o", "", name, "u0", nil); err != nil {
			t.Error(err)
			return false
		}
		if a.Missing == Found && a.OrgRole != "member" {
			t.Errorf("project %s: u0's org role %q", name, a.OrgRole)
			return false
		}
		return true
	})
	defer halt() // before the store closes, also when a check fails

	rng := rand.New(rand.NewPCG(17, 16))
	model := map[string]bool{}
	teams := []string{"t0", "t1"}
	verify := func(step int) {
		t.Helper()
		require.NoError(t, s.View(func(r Reader) error {
			require.Equal(t, slices.Sorted(func(yield func(string) bool) {
				for n := range model {
					if !yield(n) {
						return
					}
				}
			}), r.Projects("o"), "step %d", step)
			for _, n := range projectKeyNames {
				pv, ok := r.Project("o", n)
				require.Equal(t, model[n], ok, "step %d: project %s", step, n)
				if ok {
					require.Equal(t, n, pv.Project.Name, "step %d", step)
				}
				a := r.Access("o", "", n, "u1")
				require.Equal(t, model[n], a.Missing == Found, "step %d: access to %s", step, n)
			}
			return nil
		}), "step %d", step)
		checkProjectKeys(t, s)
	}
	for step := range 300 {
		name := projectKeyNames[rng.IntN(len(projectKeyNames))]
		p := Project{Org: "o", Name: name}
		if rng.IntN(2) == 0 {
			p.Teams = []string{teams[rng.IntN(len(teams))]}
		}
		switch op := rng.IntN(9); {
		case op == 0:
			_, err := s.Apply(ctx, CreateProject{Project: p})
			require.Equal(t, model[name], err != nil, "step %d: create %s: %v", step, name, err)
			model[name] = true
		case op == 1 || op == 2:
			_, err := s.Apply(ctx, PutProject{Project: p})
			require.NoError(t, err, "step %d", step)
			model[name] = true
		case op == 3:
			_, err := s.Apply(ctx, DeleteProject{Org: "o", Name: name})
			require.Equal(t, !model[name], err != nil, "step %d: delete %s: %v", step, name, err)
			delete(model, name)
		case op == 4 && model[name]: // re-created in one batch: a new object under the same name
			_, err := s.Apply(ctx, DeleteProject{Org: "o", Name: name}, CreateProject{Project: p},
				PutGrant{Org: "o", Project: name, User: "u1", Grant: Grant{Role: "viewer"}})
			require.NoError(t, err, "step %d", step)
		case op == 5 && model[name]: // a delete rolled back: the batch fails after it
			_, err := s.Apply(ctx, DeleteProject{Org: "o", Name: name}, DeleteProject{Org: "o", Name: "no-such-project"})
			require.Error(t, err, "step %d", step)
		case op == 6 && model[name]:
			_, err := s.Apply(ctx, PutGrant{Org: "o", Project: name, User: "u0", Grant: Grant{Role: "viewer"}},
				PutGrant{Org: "o", Project: name, User: "u1", Grant: Grant{Role: "admin"}})
			require.NoError(t, err, "step %d", step)
			_, err = s.Apply(ctx, DeleteGrant{Org: "o", Project: name, User: "u0"})
			require.NoError(t, err, "step %d", step)
		case op == 7: // a team renamed and back: restricted projects' effective teams follow
			from, to := teams[rng.IntN(len(teams))], fmt.Sprintf("r%d", step)
			_, err := s.Apply(ctx, RenameTeam{Org: "o", From: from, To: to})
			require.NoError(t, err, "step %d", step)
			_, err = s.Apply(ctx, RenameTeam{Org: "o", From: to, To: from})
			require.NoError(t, err, "step %d", step)
		case op == 8 && model[name]: // a put and a grant rolled back: what a decision reads is as before
			access := func() (a Access) {
				require.NoError(t, s.View(func(r Reader) error { a = r.Access("o", "", name, "u1"); return nil }))
				return a
			}
			before := access()
			_, err := s.Apply(ctx, PutProject{Project: Project{Org: "o", Name: name, Teams: []string{"t0"}, Labels: map[string]string{"k": "v"}}},
				PutGrant{Org: "o", Project: name, User: "u1", Grant: Grant{Role: "admin"}}, DeleteProject{Org: "o", Name: "no-such-project"})
			require.Error(t, err, "step %d", step)
			require.Equal(t, before, access(), "step %d", step)
			require.NoError(t, s.Check(), "step %d", step)
		default: // a simulation (it copies the org's projects): the live state unchanged
			sim, err := s.Simulate(ctx, PutProject{Project: p}, DeleteProject{Org: "o", Name: name}, CreateProject{Project: p})
			require.NoError(t, err, "step %d", step)
			want := len(model)
			if !model[name] {
				want++
			}
			require.NoError(t, sim.ViewAfter(func(r Reader) error {
				require.Len(t, r.Projects("o"), want, "step %d", step)
				return nil
			}))
			checkStateProjectKeys(t, sim.before)
			checkStateProjectKeys(t, sim.after)
		}
		verify(step)
		if step%25 == 0 {
			require.NoError(t, s.Check(), "step %d", step)
		}
	}
	halt()
	require.NoError(t, s.Check())
	require.NoError(t, s.Close())

	s, err = Open(ctx, Options{Dir: dir, NoSync: true})
	require.NoError(t, err)
	verify(-1)
	require.NoError(t, s.Check())
}

// TestCheckFindsAProjectUnderAnotherKey: Store.Check reports a project the table does not find
// by its name: put under another name's hash, or its key bytes changed under the table.
func TestCheckFindsAProjectUnderAnotherKey(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, project string
		edit          func(o *orgData, pd *projectData)
	}{
		{"long name under another's hash", "p-16-bytes-long1", func(o *orgData, pd *projectData) {
			o.projects.remove("p-16-bytes-long1")
			o.projects.put("p-16-bytes-long2", pd)
		}},
		{"short name under another's hash", "p-short", func(o *orgData, pd *projectData) {
			o.projects.remove("p-short")
			o.projects.put("p-shorx", pd)
		}},
		{"key bytes changed", "p-short", func(o *orgData, pd *projectData) { pd.key[6] = 'x' }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, err := Open(t.Context(), Options{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			_, err = s.Apply(t.Context(), PutOrg{Org: Org{Name: "o"}}, PutProject{Project: Project{Org: "o", Name: c.project}})
			require.NoError(t, err)
			require.NoError(t, s.Check())
			s.mu.Lock()
			o := s.st.orgs["o"]
			c.edit(o, o.project(c.project))
			s.mu.Unlock()
			require.ErrorContains(t, s.Check(), "project "+c.project+" is not found by its name")
		})
	}
}

// readAlong starts n readers, reader i calling read(i, 0), read(i, 1), ... with an Access of
// its own until read returns false or halt is called; halt stops them and waits (it may be
// called more than once).
func readAlong(n int, read func(i, step int, a *Access) bool) (halt func()) {
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for i := range n {
		readers.Add(1)
		go func() {
			defer readers.Done()
			var a Access
			for step := 0; ; step++ {
				select {
				case <-stop:
					return
				default:
				}
				if !read(i, step, &a) {
					return
				}
			}
		}()
	}
	return sync.OnceFunc(func() { close(stop); readers.Wait() })
}
