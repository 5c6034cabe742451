package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/store"
)

// acme is the conformance data file.
var acme = conformance.DataFile()

// modes runs the suite against both the in-memory and on-disk stores.
func modes(t *testing.T, fn func(t *testing.T, open func() *store.Store)) {
	t.Helper()
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		fn(t, func() *store.Store {
			s, err := store.Open(t.Context(), store.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			return s
		})
	})
	t.Run("disk", func(t *testing.T) {
		t.Parallel()
		fn(t, func() *store.Store {
			s, err := store.Open(t.Context(), store.Options{Dir: t.TempDir(), NoSync: true})
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			return s
		})
	})
}

func loadAcme(t *testing.T, s *store.Store) uint64 {
	t.Helper()
	rev, err := s.LoadFile(t.Context(), acme)
	require.NoError(t, err)
	require.NoError(t, s.Check())
	t.Cleanup(func() {
		if err := s.Check(); !errors.Is(err, teamgate.ErrClosed) { // a test that closed the store checked it itself
			require.NoError(t, err, "indexes agree with records at the end of the test")
		}
	})
	return rev
}

func TestLoadAcme(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, open func() *store.Store) {
		s := open()
		rev := loadAcme(t, s)
		require.Equal(t, uint64(1), rev)
		require.NoError(t, s.View(func(r store.Reader) error {
			require.Equal(t, []string{"acme", "other"}, r.Orgs())
			role, ok := r.OrgRole("acme", "olga")
			require.True(t, ok)
			require.Equal(t, "outsider", role)
			_, ok = r.OrgRole("acme", "zed")
			require.False(t, ok)
			require.Equal(t, map[string]string{"engineering": "contributor"}, r.TeamRoles("acme", "bob").Map())
			require.Equal(t, map[string]string{"engineering": "member", "research": "contributor"}, r.TeamRoles("acme", "vera").Map())
			pv, ok := r.Project("acme", "labs")
			require.True(t, ok)
			require.True(t, pv.Teams.Restricted, "labs: engineering ∩ research is restricted and empty")
			require.Empty(t, pv.Teams.Values)
			require.Equal(t, []string{"nlp", "vision"}, r.TeamProjects("acme", "engineering"))
			require.Equal(t, []string{"nlp"}, r.TeamProjects("acme", "research"))
			require.Equal(t, []string{"vision"}, r.ConnectedProjects("acme", "gpu-policy"))
			require.Equal(t, []string{"archive", "open"}, r.OpenProjects("acme"))
			u, ok := r.User("bob")
			require.True(t, ok)
			require.Equal(t, "acme/engineering", u.DefaultTeam)
			pv, _ = r.Project("acme", "vision")
			require.Equal(t, "admin", pv.Project.Grants["beth"].Role)
			return nil
		}))
	})
}

func TestApplyRejectsAndChangesNothing(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		change []store.Change
		is     error
		names  string
	}{
		{"unknown org role", []store.Change{store.PutMember{Org: "acme", User: "zoe", Role: "emperor"}}, teamgate.ErrInvalid, "emperor"},
		{"bad slug", []store.Change{store.PutMember{Org: "acme", User: "zo--e", Role: "member"}}, teamgate.ErrInvalid, "zo--e"},
		{"team member not in org", []store.Change{store.PutTeamMember{Org: "acme", Team: "research", User: "zed", Role: "viewer"}}, teamgate.ErrNotFound, "zed"},
		{"unknown team role", []store.Change{store.PutTeamMember{Org: "acme", Team: "research", User: "bob", Role: "owner"}}, teamgate.ErrInvalid, "owner"},
		{"grantee not in org", []store.Change{store.PutGrant{Org: "acme", Project: "open", User: "zed", Grant: store.Grant{Role: "viewer"}}}, teamgate.ErrNotFound, "zed"},
		{"project names unknown team", []store.Change{store.PutProject{Project: store.Project{Org: "acme", Name: "x", Teams: []string{"nope"}}}}, teamgate.ErrNotFound, "nope"},
		{"project names unknown policy", []store.Change{store.PutProject{Project: store.Project{Org: "acme", Name: "x", Policy: "nope"}}}, teamgate.ErrNotFound, "nope"},
		{"team links unknown policy", []store.Change{store.PutTeam{Team: store.Team{Org: "acme", Name: "t", Policy: "nope"}}}, teamgate.ErrNotFound, "nope"},
		{"settings.teams", []store.Change{store.PutProject{Project: store.Project{Org: "acme", Name: "x", Settings: policy.Settings{Teams: []string{"research"}}}}}, teamgate.ErrInvalid, "acme/x"},
		{"rule not bool", []store.Change{store.PutPolicy{Policy: store.Policy{Org: "acme", Name: "p", Settings: policy.Settings{Rules: []policy.Rule{{Name: "r", Expression: "run.kind"}}}}}}, teamgate.ErrInvalid, `rule "r"`},
		{"rule does not compile", []store.Change{store.PutPolicy{Policy: store.Policy{Org: "acme", Name: "p", Settings: policy.Settings{Rules: []policy.Rule{{Name: "r", Expression: "run.kind ==="}}}}}}, teamgate.ErrInvalid, `rule "r"`},
		{"delete assigned team", []store.Change{store.DeleteTeam{Org: "acme", Name: "engineering"}}, teamgate.ErrConflict, "labs"},
		{"delete connected policy", []store.Change{store.DeletePolicy{Org: "acme", Name: "gpu-policy"}}, teamgate.ErrConflict, "vision"},
		{"unknown org", []store.Change{store.PutMember{Org: "nope", User: "bob", Role: "member"}}, teamgate.ErrNotFound, "nope"},
		{"bad excluded runtime", []store.Change{store.PutProject{Project: store.Project{Org: "acme", Name: "x", Settings: policy.Settings{ExcludedRuntimes: []string{"rocket"}}}}}, teamgate.ErrInvalid, "rocket"},
		{"second change fails", []store.Change{
			store.PutMember{Org: "acme", User: "zoe", Role: "member"},
			store.PutTeamMember{Org: "acme", Team: "research", User: "zoe", Role: "viewer"},
			store.PutTeamMember{Org: "acme", Team: "nope", User: "zoe", Role: "viewer"},
		}, teamgate.ErrNotFound, "nope"},
	}
	modes(t, func(t *testing.T, open func() *store.Store) {
		s := open()
		rev := loadAcme(t, s)
		var before bytes.Buffer
		require.NoError(t, s.Export(t.Context(), &before))
		for _, tc := range cases {
			_, err := s.Apply(t.Context(), tc.change...)
			require.ErrorIs(t, err, tc.is, tc.name)
			require.Contains(t, err.Error(), tc.names, tc.name)
			var after bytes.Buffer
			require.NoError(t, s.Export(t.Context(), &after))
			require.Equal(t, before.String(), after.String(), tc.name)
			require.Equal(t, rev, s.Revision(), tc.name)
		}
	})
}

func TestPersistsAcrossReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := t.Context()
	s, err := store.Open(ctx, store.Options{Dir: dir})
	require.NoError(t, err)
	loadAcme(t, s)
	rev, err := s.Apply(ctx,
		store.DeleteMember{Org: "acme", User: "vera"},
		store.PutPolicy{Policy: store.Policy{Org: "acme", Name: "research-only", Settings: policy.Settings{Teams: []string{"engineering"}}}},
	)
	require.NoError(t, err)
	require.Equal(t, uint64(2), rev)
	var before bytes.Buffer
	require.NoError(t, s.Export(ctx, &before))
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Close(), teamgate.ErrClosed)

	s, err = store.Open(ctx, store.Options{Dir: dir})
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, rev, s.Revision())
	require.NoError(t, s.Check())
	var after bytes.Buffer
	require.NoError(t, s.Export(ctx, &after))
	require.Equal(t, before.String(), after.String())
	require.NoError(t, s.View(func(r store.Reader) error {
		require.Nil(t, r.TeamRoles("acme", "vera").Map(), "delete member cascades to teams")
		pv, _ := r.Project("acme", "labs")
		require.Equal(t, []string{"engineering"}, pv.Teams.Values, "policy change recomputed effective teams")
		return nil
	}))
}

func TestExportRoundTrip(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, open func() *store.Store) {
		a := open()
		loadAcme(t, a)
		var first bytes.Buffer
		require.NoError(t, a.Export(t.Context(), &first))
		b := open()
		if b == a {
			t.Fatal("same store")
		}
		_, err := b.Load(t.Context(), strings.NewReader(first.String()))
		require.NoError(t, err)
		var second bytes.Buffer
		require.NoError(t, b.Export(t.Context(), &second))
		require.Equal(t, first.String(), second.String())
		require.Contains(t, first.String(), "gpu-cap")
	})
}

func TestWatchStreamsEvents(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, open func() *store.Store) {
		s := open()
		loadAcme(t, s)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		ch, err := s.Watch(ctx, 0)
		require.NoError(t, err)
		ev := <-ch
		require.Equal(t, uint64(1), ev.Revision)
		require.Equal(t, "put_file", ev.Kind)

		_, err = s.Apply(ctx, store.PutPolicy{Policy: store.Policy{Org: "acme", Name: "gpu-policy", Settings: policy.Settings{Queues: []string{"gpu/a100"}}}})
		require.NoError(t, err)
		ev = <-ch
		require.Equal(t, uint64(2), ev.Revision)
		require.Equal(t, "put_policy", ev.Kind)
		require.Equal(t, []string{"v1/policy/acme/gpu-policy"}, ev.Keys)
		require.Equal(t, []string{"acme/vision"}, ev.Projects, "a policy change lists its connected projects")
	})
}

func TestWaitRevision(t *testing.T) {
	t.Parallel()
	s, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	defer s.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, s.WaitRevision(ctx, 1), teamgate.ErrStale)
	done := make(chan error, 1)
	go func() { done <- s.WaitRevision(t.Context(), 1) }()
	loadAcme(t, s)
	require.NoError(t, <-done)
}

func TestLargeBatchIsCommittedAndItsEventTruncated(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, open func() *store.Store) {
		s := open()
		ctx := t.Context()
		cs := []store.Change{store.PutOrg{Org: store.Org{Name: "big"}}}
		for i := range 30_000 {
			cs = append(cs, store.PutMember{Org: "big", User: fmt.Sprintf("user-%05d", i), Role: "member"})
		}
		rev, err := s.Apply(ctx, cs...)
		require.NoError(t, err)
		ch, err := s.Watch(ctx, rev-1)
		require.NoError(t, err)
		ev := <-ch
		require.True(t, ev.Truncated)
		require.Len(t, ev.Keys, store.MaxEventEntries)
		require.NoError(t, s.View(func(r store.Reader) error {
			require.Len(t, r.Members("big"), 30_000)
			return nil
		}))
	})
}
