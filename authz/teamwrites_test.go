package authz_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/store"
)

// TestCreateProjectConcurrently: creators racing for one name (each allowed on its own) get
// exactly one success; the others ErrConflict, and the winner's project is the one kept.
func TestCreateProjectConcurrently(t *testing.T) {
	t.Parallel()
	eng, st := newAcme(t)
	creators := []string{"alice", "mona", "bob", "alice", "mona", "bob", "alice", "mona"} // contributor or above in engineering
	type result struct {
		c   authz.Created
		err error
	}
	results := make([]result, len(creators))
	var wg sync.WaitGroup
	for i, who := range creators {
		wg.Go(func() {
			c, err := eng.CreateProject(t.Context(), who, "acme/engineering", authz.NewProject{Name: "race",
				Settings: policy.Settings{Queue: fmt.Sprintf("gpu/q%d", i)}})
			results[i] = result{c, err}
		})
	}
	wg.Wait()
	winner := -1
	for i, r := range results {
		require.True(t, r.c.Decision.Allowed, creators[i])
		if r.err == nil {
			require.Equal(t, -1, winner, "two creators were told they created acme/race")
			winner = i
			continue
		}
		require.ErrorIs(t, r.err, teamgate.ErrConflict)
		require.Zero(t, r.c.Revision)
	}
	require.NotEqual(t, -1, winner)
	require.NoError(t, st.View(func(r store.Reader) error {
		pv, ok := r.Project("acme", "race")
		require.True(t, ok)
		require.Equal(t, creators[winner], pv.Project.CreatedBy)
		require.Equal(t, fmt.Sprintf("gpu/q%d", winner), pv.Project.Settings.Queue)
		require.Equal(t, "gpu-policy", pv.Project.Policy)
		return nil
	}))
	require.NoError(t, st.Check())
}

// TestRenameTeamKeepsDecisions: after renaming a team, every subject gets the same decisions on
// every project and on the team under its new name (messages name the team, so codes compare).
func TestRenameTeamKeepsDecisions(t *testing.T) {
	t.Parallel()
	for _, from := range []string{"engineering", "research"} {
		t.Run(from, func(t *testing.T) {
			t.Parallel()
			eng, st := newAcme(t)
			var subjects, projects []string
			require.NoError(t, st.View(func(r store.Reader) error {
				for u := range r.Members("acme") {
					subjects = append(subjects, u)
				}
				projects = r.Projects("acme")
				return nil
			}))
			type key struct{ subject, action, resource string }
			decide := func(team string) map[key]string {
				out := map[key]string{}
				ask := func(subject, action, resource, as string) {
					d, err := eng.Authorize(t.Context(), authz.Request{Subject: subject, Action: action, Resource: resource})
					require.NoError(t, err)
					var codes []string
					for _, r := range d.Reasons {
						codes = append(codes, string(r.Code))
					}
					out[key{subject, action, as}] = fmt.Sprint(d.Allowed, " ", d.Role, " ", strings.Join(codes, ","))
				}
				for _, u := range subjects {
					for _, p := range projects {
						for _, a := range []string{"project.get", "runs.create", "project.update"} {
							ask(u, a, "acme/"+p, "acme/"+p)
							ask(u, a, "acme/"+team+"/"+p, "acme/TEAM/"+p)
						}
					}
					for _, a := range []string{"team.get", "team.projects.create", "team.update"} {
						ask(u, a, "acme/"+team, "acme/TEAM")
					}
				}
				return out
			}
			before := decide(from)
			_, err := st.Apply(t.Context(), store.RenameTeam{Org: "acme", From: from, To: "renamed"})
			require.NoError(t, err)
			require.NoError(t, st.Check())
			require.Equal(t, before, decide("renamed"))
			d, err := eng.Authorize(t.Context(), authz.Request{Subject: "alice", Action: "team.get", Resource: "acme/" + from})
			require.NoError(t, err)
			require.True(t, d.Has("not_found"), "the old name is gone")
		})
	}
}
