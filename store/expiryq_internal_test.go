package store

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/clocktest"
)

// TestExpiryQueueMatchesTheScan: after random writes that set, renew, remove and move expiring
// team memberships and grants (renewals, deletes of memberships, members, grants and projects,
// team renames), the queue ordered by time answers what is due and the next expiry exactly as
// Reader.Expiries' full scan does, at every moment asked; then, the clock moved past them all,
// the store's loop revokes every one and nothing else.
func TestExpiryQueueMatchesTheScan(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := clocktest.New(t0)
	s, err := Open(t.Context(), Options{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	rng := rand.New(rand.NewPCG(5, 8))
	users := []string{"bob", "carl", "dave", "erin", "finn"}
	teams := []string{"t", "u"}
	cs := []Change{PutOrg{Org: Org{Name: "a"}}, PutTeam{Team: Team{Org: "a", Name: "t"}}, PutTeam{Team: Team{Org: "a", Name: "u"}}}
	for _, u := range users {
		cs = append(cs, PutMember{Org: "a", User: u, Role: "member"})
	}
	cs = append(cs, PutProject{Project: Project{Org: "a", Name: "p", Teams: []string{"t"}}}, PutProject{Project: Project{Org: "a", Name: "q"}})
	_, err = s.Apply(t.Context(), cs...)
	require.NoError(t, err)
	at := func() time.Time { return t0.Add(time.Duration(1+rng.IntN(40)) * time.Hour) }
	compare := func(step int) {
		require.NoError(t, s.View(func(r Reader) error {
			for _, h := range []int{0, 1, 5, 10, 20, 30, 41, 1000} {
				now := t0.Add(time.Duration(h) * time.Hour)
				wantDue, wantNext := r.Expiries(now)
				due, next := s.expiries.due(r.st, clockNanos(now))
				require.Equal(t, wantDue, due, "step %d at +%dh", step, h)
				var gotNext time.Time
				if next != 0 {
					gotNext = time.Unix(0, next).UTC()
				}
				require.Equal(t, wantNext, gotNext, "step %d at +%dh", step, h)
			}
			return nil
		}))
	}
	for step := range 300 {
		u, tm := users[rng.IntN(len(users))], teams[rng.IntN(len(teams))]
		var c Change
		switch rng.IntN(9) {
		case 0, 1:
			c = PutTeamMember{Org: "a", Team: tm, User: u, Role: "admin", ExpiresAt: at()}
		case 2:
			c = PutTeamMember{Org: "a", Team: tm, User: u, Role: "admin"} // renewed for good
		case 3, 4:
			c = PutGrant{Org: "a", Project: []string{"p", "q"}[rng.IntN(2)], User: u, Grant: Grant{Role: "admin", ExpiresAt: at()}}
		case 5:
			c = DeleteTeamMember{Org: "a", Team: tm, User: u}
		case 6:
			c = DeleteGrant{Org: "a", Project: "q", User: u}
		case 7:
			from, to := "u", "v"
			if teams[1] == "v" {
				from, to = "v", "u"
			}
			c = RenameTeam{Org: "a", From: from, To: to}
			teams[1] = to
		case 8:
			if rng.IntN(4) == 0 {
				_, err := s.Apply(t.Context(), DeleteMember{Org: "a", User: u})
				if err == nil {
					_, err = s.Apply(t.Context(), PutMember{Org: "a", User: u, Role: "member"})
				}
				require.NoError(t, err)
				compare(step)
				continue
			}
			c = PutGrant{Org: "a", Project: "q", User: u, Grant: Grant{Role: "viewer"}}
		}
		_, _ = s.Apply(t.Context(), c) // some fail validation (no such membership): nothing changes
		compare(step)
	}
	require.NoError(t, s.View(func(r Reader) error {
		_, next := r.Expiries(t0)
		require.False(t, next.IsZero(), "the writes left expiries pending")
		return nil
	}))
	// Past every expiry: the loop revokes them all, once each.
	rev := s.Revision()
	events, err := s.Watch(t.Context(), rev)
	require.NoError(t, err)
	var pending []Change
	require.NoError(t, s.View(func(r Reader) error { pending, _ = r.Expiries(t0.Add(1000 * time.Hour)); return nil }))
	clock.Advance(1000 * time.Hour)
	var revoked []Change
	for len(revoked) < len(pending) {
		ev := <-events
		revoked = append(revoked, ev.Changes...)
	}
	require.ElementsMatch(t, pending, revoked, fmt.Sprintf("%d pending", len(pending)))
	require.NoError(t, s.View(func(r Reader) error {
		due, next := r.Expiries(t0.Add(1000 * time.Hour))
		require.Empty(t, due)
		require.True(t, next.IsZero())
		return nil
	}))
	require.NoError(t, s.Check())
}
