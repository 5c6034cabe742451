package store_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/store"
)

// TestReplicateRefusesDirectWrites: once replicated, only the Replica writes.
func TestReplicateRefusesDirectWrites(t *testing.T) {
	t.Parallel()
	s, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	defer s.Close()
	r, err := s.Replicate()
	require.NoError(t, err)
	_, err = s.Replicate()
	require.ErrorIs(t, err, teamgate.ErrConflict)

	org := store.PutOrg{Org: store.Org{Name: "acme"}}
	_, err = s.Apply(t.Context(), org)
	require.ErrorIs(t, err, teamgate.ErrConflict)
	_, err = s.ApplyEvent(t.Context(), store.Event{Revision: 1, Changes: store.Changes{org}})
	require.ErrorIs(t, err, teamgate.ErrConflict)
	_, err = s.LoadFile(t.Context(), acme)
	require.ErrorIs(t, err, teamgate.ErrConflict)
	require.Zero(t, s.Revision())

	rev, err := r.ApplyEvent(t.Context(), store.Event{Revision: 1, Changes: store.Changes{org}})
	require.NoError(t, err)
	require.Equal(t, uint64(1), rev)
	require.NoError(t, s.Close())
	_, err = s.Replicate()
	require.ErrorIs(t, err, teamgate.ErrClosed)
}

// TestReplicaGuardSurvivesReopen: a store that was a replica refuses direct writes after it is
// reopened, can be replicated again, and writes directly again only after Detach (which refuses
// while its Replica is handed out).
func TestReplicaGuardSurvivesReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	open := func() *store.Store {
		s, err := store.Open(t.Context(), store.Options{Dir: dir, NoSync: true})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	org := store.PutOrg{Org: store.Org{Name: "acme"}}
	s := open()
	require.False(t, s.Replicated())
	r, err := s.Replicate()
	require.NoError(t, err)
	_, err = r.ApplyEvent(t.Context(), store.Event{Revision: 1, Changes: store.Changes{org}})
	require.NoError(t, err)
	require.ErrorIs(t, s.Detach(), teamgate.ErrConflict, "its Replica is in use")
	require.True(t, s.Replicated())
	require.NoError(t, s.Close())

	// Reopened: still a replica, whatever writes directly.
	s = open()
	require.True(t, s.Replicated())
	for name, write := range map[string]func() error{
		"apply": func() error {
			_, err := s.Apply(t.Context(), store.PutMember{Org: "acme", User: "zed", Role: "member"})
			return err
		},
		"apply event": func() error {
			_, err := s.ApplyEvent(t.Context(), store.Event{Revision: 2, Changes: store.Changes{store.PutMember{Org: "acme", User: "zed", Role: "member"}}})
			return err
		},
		"load file": func() error { _, err := s.LoadFile(t.Context(), acme); return err },
	} {
		require.ErrorIs(t, write(), teamgate.ErrConflict, name)
	}
	require.Equal(t, uint64(1), s.Revision())

	// A node resumes it: replicated again, and the marker stays.
	r, err = s.Replicate()
	require.NoError(t, err)
	_, err = r.ApplyEvent(t.Context(), store.Event{Revision: 2, Changes: store.Changes{store.PutMember{Org: "acme", User: "zed", Role: "member"}}})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	// Detached after a reopen: direct writes work, also after the next reopen.
	s = open()
	require.NoError(t, s.Detach())
	require.False(t, s.Replicated())
	require.NoError(t, s.Detach(), "detaching a standalone store changes nothing")
	require.NoError(t, s.Close())
	s = open()
	require.False(t, s.Replicated())
	rev, err := s.Apply(t.Context(), store.PutMember{Org: "acme", User: "amy", Role: "member"})
	require.NoError(t, err)
	require.Equal(t, uint64(3), rev)
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Detach(), teamgate.ErrClosed)
}

// TestReplicaValidateEachChangesNothing: ValidateEach reports for each batch what Apply would,
// each against the state the valid batches before it leave, and leaves the store as it was; the
// valid batches, concatenated, then replay as one batch at the next revision.
func TestReplicaValidateEachChangesNothing(t *testing.T) {
	t.Parallel()
	s, err := store.Open(t.Context(), store.Options{Dir: t.TempDir(), NoSync: true})
	require.NoError(t, err)
	defer s.Close()
	_, err = s.LoadFile(t.Context(), acme)
	require.NoError(t, err)
	r, err := s.Replicate()
	require.NoError(t, err)
	before, rev := export(t, s), s.Revision()

	for _, tc := range []struct {
		name    string
		changes []store.Change
		want    error
	}{
		{"unknown role", []store.Change{store.PutMember{Org: "acme", User: "zed", Role: "emperor"}}, teamgate.ErrInvalid},
		{"missing org", []store.Change{store.PutMember{Org: "nope", User: "zed", Role: "member"}}, teamgate.ErrNotFound},
		{"second change fails", []store.Change{store.DeleteMember{Org: "acme", User: "bob"}, store.PutOrg{Org: store.Org{Name: "Bad Name"}}}, teamgate.ErrInvalid},
		{"nil change", []store.Change{nil}, teamgate.ErrInvalid},
		{"empty batch", nil, teamgate.ErrInvalid},
	} {
		_, errs, err := r.ValidateEach(t.Context(), [][]store.Change{tc.changes})
		require.NoError(t, err)
		require.ErrorIs(t, errs[0], tc.want, tc.name)
	}
	first := []store.Change{store.DeleteMember{Org: "acme", User: "bob"}, store.PutOrg{Org: store.Org{Name: "beta"}}}
	second := []store.Change{store.CreateProject{Project: store.Project{Org: "beta", Name: "x"}}}
	dup := []store.Change{store.CreateProject{Project: store.Project{Org: "beta", Name: "x"}}}
	third := []store.Change{store.PutMember{Org: "beta", User: "zed", Role: "member"}}
	at, errs, err := r.ValidateEach(t.Context(), [][]store.Change{first, second, dup, third})
	require.NoError(t, err)
	require.Equal(t, rev, at)
	require.NoError(t, errs[0])
	require.NoError(t, errs[1], "valid on the state the first batch leaves")
	require.ErrorIs(t, errs[2], teamgate.ErrConflict, "the project the batch before it created exists")
	require.NoError(t, errs[3])
	require.Equal(t, before, export(t, s))
	require.Equal(t, rev, s.Revision())
	require.NoError(t, s.Check())

	all := append(append(append([]store.Change{}, first...), second...), third...)
	got, err := r.ApplyEvent(t.Context(), store.Event{Revision: rev + 1, Changes: all})
	require.NoError(t, err)
	require.Equal(t, rev+1, got)
	require.Contains(t, export(t, s), "name: beta")
}

// TestReplicaRestore: a replica holding other data restores a snapshot of another store at its
// revision (orgs and users the snapshot lacks are deleted), survives a reopen and replays on.
func TestReplicaRestore(t *testing.T) {
	t.Parallel()
	src, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	defer src.Close()
	_, err = src.LoadFile(t.Context(), acme)
	require.NoError(t, err)
	_, err = src.Apply(t.Context(), store.PutOrg{Org: store.Org{Name: "beta"}}, store.PutMember{Org: "beta", User: "bob", Role: "admin"})
	require.NoError(t, err)
	var snap *store.File
	require.NoError(t, src.View(func(r store.Reader) error { snap = r.Snapshot(); return nil }))

	dir := t.TempDir()
	dst, err := store.Open(t.Context(), store.Options{Dir: dir, NoSync: true})
	require.NoError(t, err)
	_, err = dst.Apply(t.Context(), store.PutOrg{Org: store.Org{Name: "gone"}}, store.PutMember{Org: "gone", User: "olaf", Role: "member"},
		store.PutUser{User: store.User{ID: "stray"}})
	require.NoError(t, err)
	r, err := dst.Replicate()
	require.NoError(t, err)

	_, err = r.Restore(t.Context(), dst.Revision(), snap)
	require.ErrorIs(t, err, teamgate.ErrConflict, "a snapshot must be ahead of the store")
	bad := *snap
	bad.Orgs = append([]store.FileOrg{{Name: "Not A Slug"}}, bad.Orgs...)
	_, err = r.Restore(t.Context(), 40, &bad)
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	require.Contains(t, export(t, dst), "gone")

	rev, err := r.Restore(t.Context(), 40, snap)
	require.NoError(t, err)
	require.Equal(t, uint64(40), rev)
	require.Equal(t, export(t, src), export(t, dst))
	require.NotContains(t, export(t, dst), "stray")
	require.NoError(t, dst.Check())

	next := store.Changes{store.PutOrg{Org: store.Org{Name: "gamma"}}}
	_, err = r.ApplyEvent(t.Context(), store.Event{Revision: 41, Changes: next})
	require.NoError(t, err)
	want := export(t, dst)
	require.NoError(t, dst.Close())

	dst, err = store.Open(t.Context(), store.Options{Dir: dir, NoSync: true})
	require.NoError(t, err)
	defer dst.Close()
	require.Equal(t, uint64(41), dst.Revision())
	require.Equal(t, want, export(t, dst))
	require.True(t, strings.Contains(want, "gamma"))
	require.NoError(t, dst.Check())
}
