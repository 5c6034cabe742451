package store_test

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/clocktest"
	"github.com/teamgate/teamgate/internal/expirytest"
	"github.com/teamgate/teamgate/store"
)

// TestCheckVerifiesExpiryIndexes: Check reports an *ExpiryIndexError for each way the expiry
// indexes can disagree with the records — an index entry with no expiring record, a record's
// expires_at missing from the index, different times — for grants (in memory and on disk) and
// for team memberships (their records are on disk).
func TestCheckVerifiesExpiryIndexes(t *testing.T) {
	t.Parallel()
	type corrupt func(s *store.Store)
	t9 := t0.Add(9 * time.Hour) // later than every expiry: the expiry loop finds nothing due
	for _, tc := range []struct {
		name     string
		onDisk   bool // the case needs the records on disk
		corrupt  corrupt
		entry    string
		problem  string
		indexed  time.Time
		recorded time.Time
	}{
		{"grant entry without a grant", false, func(s *store.Store) { store.SetGrantExpiryIndex(s, "a", "p", "carl", t9) },
			"project p grant carl", store.ExpiryOrphan, t9, time.Time{}},
		{"grant entry for a grant that never expires", false, func(s *store.Store) { store.SetGrantExpiryIndex(s, "a", "p", "bob", t9) },
			"project p grant bob", store.ExpiryOrphan, t9, time.Time{}},
		{"grant entry of a missing project", false, func(s *store.Store) { store.SetGrantExpiryIndex(s, "a", "gone", "dave", t9) },
			"project gone grant dave", store.ExpiryOrphan, t9, time.Time{}},
		{"expiring grant not indexed", false, func(s *store.Store) { store.SetGrantExpiryIndex(s, "a", "p", "dave", time.Time{}) },
			"project p grant dave", store.ExpiryUnindexed, time.Time{}, t0.Add(2 * time.Hour)},
		{"grant times differ", false, func(s *store.Store) { store.SetGrantExpiryIndex(s, "a", "p", "dave", t0.Add(3*time.Hour)) },
			"project p grant dave", store.ExpiryMismatch, t0.Add(3 * time.Hour), t0.Add(2 * time.Hour)},
		{"membership entry without a membership", false, func(s *store.Store) { store.SetMemberExpiryIndex(s, "a", "t", "dave", t9) },
			"team t member dave", store.ExpiryOrphan, t9, time.Time{}},
		{"expiring membership record not indexed", true, func(s *store.Store) { store.SetMemberExpiryIndex(s, "a", "t", "bob", time.Time{}) },
			"team t member bob", store.ExpiryUnindexed, time.Time{}, t0.Add(time.Hour)},
		{"membership times differ", true, func(s *store.Store) { store.SetMemberExpiryIndex(s, "a", "t", "bob", t0.Add(5*time.Hour)) },
			"team t member bob", store.ExpiryMismatch, t0.Add(5 * time.Hour), t0.Add(time.Hour)},
		{"membership entry for a record that never expires", true, func(s *store.Store) { store.SetMemberExpiryIndex(s, "a", "t", "carl", t9) },
			"team t member carl", store.ExpiryOrphan, t9, time.Time{}},
	} {
		for _, disk := range []bool{false, true} {
			if tc.onDisk && !disk {
				continue
			}
			dir := ""
			if disk {
				dir = filepath.Join(t.TempDir(), "store")
			}
			s := openClock(t, clocktest.New(t0), dir)
			_, err := s.Apply(t.Context(), append(expirytest.Org(),
				store.PutGrant{Org: "a", Project: "p", User: "bob", Grant: store.Grant{Role: "viewer"}})...)
			require.NoError(t, err)
			require.NoError(t, s.Check(), tc.name)
			tc.corrupt(s)
			err = s.Check()
			var ie *store.ExpiryIndexError
			require.True(t, errors.As(err, &ie), "%s (disk %t): %v", tc.name, disk, err)
			require.Equal(t, store.ExpiryIndexError{Org: "a", Entry: tc.entry, Problem: tc.problem, Indexed: tc.indexed, Recorded: tc.recorded}, *ie,
				"%s (disk %t)", tc.name, disk)
			require.Contains(t, err.Error(), tc.entry)
		}
	}
}

// TestCheckWithWritesInFlight: Check compares the records on disk with memory while no write
// commits, so writers racing it (expiring memberships put and removed) never make it report a
// disagreement, and every write still lands.
func TestCheckWithWritesInFlight(t *testing.T) {
	t.Parallel()
	s := openClock(t, clocktest.New(t0), filepath.Join(t.TempDir(), "store"))
	_, err := s.Apply(t.Context(), expirytest.Org()...)
	require.NoError(t, err)
	const writes = 200
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range writes {
				c := store.Change(store.PutTeamMember{Org: "a", Team: "t", User: "carl", Role: "member", ExpiresAt: t0.Add(time.Duration(w*writes+i+1) * time.Hour)})
				if i%3 == 2 {
					c = store.PutTeamMember{Org: "a", Team: "t", User: "carl", Role: "member"}
				}
				if _, err := s.Apply(t.Context(), c); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 50 {
		require.NoError(t, s.Check())
	}
	wg.Wait()
	require.NoError(t, s.Check())
	require.Equal(t, uint64(1+2*writes), s.Revision())
}

// TestCheckRacingClose: Check runs as a step of the commit pipeline (withoutWrites); a Close
// racing Checks and writes waits for the step in flight, and every Check or write either
// completes (nil) or is refused with teamgate.ErrClosed — never a panic, a hang or another error.
func TestCheckRacingClose(t *testing.T) {
	t.Parallel()
	for round := range 5 {
		s, err := store.Open(t.Context(), store.Options{Dir: filepath.Join(t.TempDir(), "store"), NoSync: true, Clock: clocktest.New(t0)})
		require.NoError(t, err)
		_, err = s.Apply(t.Context(), expirytest.Org()...)
		require.NoError(t, err)
		var wg sync.WaitGroup
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 100 {
					var err error
					if w == 0 {
						_, err = s.Apply(t.Context(), store.PutTeamMember{Org: "a", Team: "t", User: "carl", Role: "member", ExpiresAt: t0.Add(time.Duration(i+1) * time.Hour)})
					} else {
						err = s.Check()
					}
					if errors.Is(err, teamgate.ErrClosed) {
						return
					}
					if err != nil {
						t.Errorf("round %d, worker %d: %v", round, w, err)
						return
					}
				}
			}()
		}
		time.Sleep(time.Duration(round) * time.Millisecond) // Close at different points of the work
		require.NoError(t, s.Close())
		wg.Wait()
		require.ErrorIs(t, s.Check(), teamgate.ErrClosed)
	}
}

// TestEndBreakGlassChange: end_break_glass removes a break-glass grant only while it ends at the
// time the caller saw; an ordinary grant, another expiry or a missing grant are refused and
// change nothing; the event keeps the change with who ended it, and the wire form round-trips.
func TestEndBreakGlassChange(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openClock(t, clocktest.New(t0), "")
	end := t0.Add(30 * time.Minute)
	_, err := s.Apply(ctx, append(expirytest.Org(),
		store.PutGrant{Org: "a", Project: "p", User: "bob", Grant: store.Grant{Role: "admin", ExpiresAt: end,
			BreakGlass: &store.BreakGlass{Actor: "bob", At: t0, Justification: "INC-1"}}},
		store.PutGrant{Org: "a", Project: "p", User: "carl", Grant: store.Grant{Role: "viewer"}})...)
	require.NoError(t, err)
	rev := s.Revision()
	for _, tc := range []struct {
		c    store.EndBreakGlass
		want error
	}{
		{store.EndBreakGlass{Org: "a", Project: "p", User: "carl", ExpiresAt: end, By: "bob"}, teamgate.ErrConflict},      // ordinary grant
		{store.EndBreakGlass{Org: "a", Project: "p", User: "dave", ExpiresAt: end, By: "bob"}, teamgate.ErrConflict},      // expiring, not break-glass
		{store.EndBreakGlass{Org: "a", Project: "p", User: "bob", ExpiresAt: t0, By: "bob"}, teamgate.ErrConflict},        // extended meanwhile
		{store.EndBreakGlass{Org: "a", Project: "p", User: "zed", ExpiresAt: end, By: "bob"}, teamgate.ErrNotFound},       // no grant
		{store.EndBreakGlass{Org: "a", Project: "q", User: "bob", ExpiresAt: end, By: "bob"}, teamgate.ErrNotFound},       // no project
		{store.EndBreakGlass{Org: "a", Project: "p", User: "bob", ExpiresAt: end, By: "Not A Slug"}, teamgate.ErrInvalid}, // who ended it
	} {
		_, err := s.Apply(ctx, tc.c)
		require.ErrorIs(t, err, tc.want, "%+v", tc.c)
	}
	require.Equal(t, rev, s.Revision(), "a refused end changes nothing")
	events, err := s.Watch(ctx, rev)
	require.NoError(t, err)
	c := store.EndBreakGlass{Org: "a", Project: "p", User: "bob", ExpiresAt: end, By: "carl"}
	_, err = s.Apply(ctx, c)
	require.NoError(t, err)
	ev := <-events
	require.Equal(t, "end_break_glass", ev.Kind)
	require.Equal(t, []string{"a/bob"}, ev.Subjects)
	require.Equal(t, store.Changes{c}, ev.Changes)
	_, grant := access(s, "bob")
	require.Empty(t, grant)
	data, err := store.Changes{c}.MarshalJSON()
	require.NoError(t, err)
	back, err := store.ParseChanges(data)
	require.NoError(t, err)
	require.Equal(t, store.Changes{c}, back)
	require.NoError(t, s.Check())
}
