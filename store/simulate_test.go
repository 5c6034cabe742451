package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/store"
)

func simulateFixture(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.Apply(t.Context(),
		store.PutOrg{Org: store.Org{Name: "a"}}, store.PutOrg{Org: store.Org{Name: "b"}},
		store.PutMember{Org: "a", User: "ann", Role: "member"},
		store.PutMember{Org: "b", User: "ann", Role: "member"},
		store.PutTeam{Team: store.Team{Org: "a", Name: "t"}},
		store.PutTeamMember{Org: "a", Team: "t", User: "ann", Role: "admin"},
		store.PutUser{User: store.User{ID: "ann", DefaultTeam: "a/t"}},
		store.PutProject{Project: store.Project{Org: "a", Name: "p", Teams: []string{"t"}}})
	require.NoError(t, err)
	return st
}

func snapshotOf(t *testing.T, view func(func(store.Reader) error) error) *store.File {
	t.Helper()
	var f *store.File
	require.NoError(t, view(func(r store.Reader) error {
		f = r.Snapshot()
		return nil
	}))
	return f
}

// TestSimulateEqualsApply: for batches of every shape — single changes, a data file, a whole
// directory, a default team moving to another org — the simulation's After is what Apply leaves
// (for the orgs it touches), its Before and the store are unchanged, and its event is Apply's.
func TestSimulateEqualsApply(t *testing.T) {
	t.Parallel()
	file, err := store.ParseFile([]byte("orgs:\n  - name: a\n    members: {ann: owner, bo: member}\n    teams:\n      - name: u\n        members: {bo: viewer}\n"))
	require.NoError(t, err)
	for _, tc := range []struct {
		name  string
		batch []store.Change
		orgs  []string // the orgs After holds
	}{
		{"team member", []store.Change{store.DeleteTeamMember{Org: "a", Team: "t", User: "ann"}}, []string{"a"}},
		{"default team to another org", []store.Change{
			store.PutTeam{Team: store.Team{Org: "b", Name: "x"}},
			store.PutTeamMember{Org: "b", Team: "x", User: "ann", Role: "viewer"},
			store.PutUser{User: store.User{ID: "ann", DefaultTeam: "b/x"}}}, []string{"a", "b"}},
		{"new org", []store.Change{store.PutOrg{Org: store.Org{Name: "c", Queue: "q"}}}, []string{"c"}},
		{"delete org", []store.Change{store.DeleteOrg{Name: "a"}}, nil},
		{"data file", []store.Change{store.PutFile{File: *file}}, []string{"a"}},
		{"data file by pointer", []store.Change{&store.PutFile{File: *file}}, []string{"a"}},
		{"whole directory", []store.Change{store.PutDirectory{File: *file}}, []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			st, copy := simulateFixture(t), simulateFixture(t)
			whole := snapshotOf(t, st.View)
			sim, err := st.Simulate(ctx, tc.batch...)
			require.NoError(t, err)
			rev, err := copy.Apply(ctx, tc.batch...)
			require.NoError(t, err)
			require.Equal(t, rev, sim.Revision+1)

			want := snapshotOf(t, copy.View)
			var kept []store.FileOrg
			for _, o := range want.Orgs {
				for _, name := range tc.orgs {
					if o.Name == name {
						kept = append(kept, o)
					}
				}
			}
			want.Orgs = kept
			require.Equal(t, want, snapshotOf(t, sim.ViewAfter))
			require.Equal(t, whole, snapshotOf(t, st.View), "the store is unchanged")
			require.Equal(t, uint64(1), st.Revision())

			var ev store.Event
			events, err := copy.Watch(ctx, 1)
			require.NoError(t, err)
			ev = <-events
			ev.Changes, sim.Event.Changes = nil, nil
			require.Equal(t, ev, sim.Event)
		})
	}
}

// TestSimulateErrorsAreApplys: a closed store, a cancelled context.
func TestSimulateErrorsAreApplys(t *testing.T) {
	t.Parallel()
	st := simulateFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := st.Simulate(ctx, store.PutOrg{Org: store.Org{Name: "c"}})
	require.ErrorIs(t, err, context.Canceled)
	require.NoError(t, st.Close())
	_, err = st.Simulate(t.Context(), store.PutOrg{Org: store.Org{Name: "c"}})
	require.ErrorIs(t, err, teamgate.ErrClosed)
}
