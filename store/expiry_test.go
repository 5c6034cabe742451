package store_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/clocktest"
	"github.com/teamgate/teamgate/internal/expirytest"
	"github.com/teamgate/teamgate/store"
)

var t0 = expirytest.Start()

func openClock(t *testing.T, clock store.Clock, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), store.Options{Dir: dir, NoSync: true, Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// access is what the decision path reads of one user: team roles and the grant on p.
func access(s *store.Store, user string) (teams map[string]string, grant string) {
	_ = s.View(func(r store.Reader) error {
		teams = r.TeamRoles("a", user).Map()
		if pv, ok := r.Project("a", "p"); ok {
			grant = pv.Project.Grants[user].Role
		}
		return nil
	})
	return teams, grant
}

func TestExpiryIsAWrite(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(t0)
	s := openClock(t, clock, "")
	rev, err := s.Apply(t.Context(), expirytest.Org()...)
	require.NoError(t, err)
	events, err := s.Watch(t.Context(), rev)
	require.NoError(t, err)

	teams, _ := access(s, "bob")
	require.Equal(t, map[string]string{"t": "admin"}, teams)
	clock.Advance(time.Hour)
	ev := <-events
	require.Equal(t, rev+1, ev.Revision)
	require.Equal(t, "expire_team_member", ev.Kind)
	require.Equal(t, []string{"a/bob"}, ev.Subjects)
	require.Equal(t, []string{"a/p"}, ev.Projects)
	require.Equal(t, store.Changes{store.ExpireTeamMember{Org: "a", Team: "t", User: "bob", ExpiresAt: t0.Add(time.Hour)}}, ev.Changes)
	teams, _ = access(s, "bob")
	require.Empty(t, teams)

	_, grant := access(s, "dave")
	require.Equal(t, "admin", grant)
	clock.Advance(time.Hour)
	ev = <-events
	require.Equal(t, "expire_grant", ev.Kind)
	require.Equal(t, []string{"a/dave"}, ev.Subjects)
	_, grant = access(s, "dave")
	require.Empty(t, grant)
	teams, _ = access(s, "carl")
	require.Equal(t, map[string]string{"t": "contributor"}, teams, "a membership without expires_at stays")
	require.NoError(t, s.Check())
}

// TestExpiredIsAbsentBeforeItsWrite holds the expiry write back (a replicated store leaves it to
// its cluster node) and checks that the reader already treats the entry as absent and that Deps
// recorded while it was live stop being current at expires_at: no cached value outlives it.
func TestExpiredIsAbsentBeforeItsWrite(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(t0)
	s := openClock(t, clock, "")
	_, err := s.Apply(t.Context(), expirytest.Org()...)
	require.NoError(t, err)
	rep, err := s.Replicate()
	require.NoError(t, err)
	_ = rep
	rev := s.Revision()

	var bobDeps, daveDeps, carlDeps store.Deps
	require.NoError(t, s.View(func(r store.Reader) error {
		require.Equal(t, map[string]string{"t": "admin"}, r.Track(&bobDeps).TeamRoles("a", "bob").Map())
		pv, _ := r.Track(&daveDeps).Project("a", "p")
		require.Equal(t, "admin", pv.Project.Grants["dave"].Role)
		require.Equal(t, map[string]string{"t": "contributor"}, r.Track(&carlDeps).TeamRoles("a", "carl").Map())
		return nil
	}))
	clock.Advance(time.Hour - time.Nanosecond)
	require.True(t, bobDeps.Current())
	clock.Advance(time.Nanosecond)
	require.False(t, bobDeps.Current(), "bob's membership ended at expires_at")
	require.True(t, daveDeps.Current())
	require.True(t, carlDeps.Current(), "carl's membership does not expire")
	teams, grant := access(s, "bob")
	require.Empty(t, teams)
	require.Empty(t, grant)
	clock.Advance(time.Hour)
	require.False(t, daveDeps.Current())
	_, grant = access(s, "dave")
	require.Empty(t, grant)
	require.NoError(t, s.View(func(r store.Reader) error {
		require.Empty(t, r.GrantProjects("a", "dave"))
		require.Equal(t, map[string]string{"carl": "contributor"}, r.TeamMembers("a", "t"))
		set, _ := r.Settings("a", "p", "dave")
		require.Empty(t, set.Queue.Value)
		due, next := r.Expiries(clock.Now())
		require.Len(t, due, 2, "both are due, neither written")
		require.True(t, next.IsZero())
		return nil
	}))
	require.Equal(t, rev, s.Revision(), "a replica never writes its own expiries")
}

func TestExpiryAppliedAtOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clock := clocktest.New(t0)
	s, err := store.Open(t.Context(), store.Options{Dir: dir, NoSync: true, Clock: clock})
	require.NoError(t, err)
	rev, err := s.Apply(t.Context(), expirytest.Org()...)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	later := clocktest.New(t0.Add(3 * time.Hour)) // both fell due while the store was closed
	s = openClock(t, later, dir)
	require.Equal(t, rev+1, s.Revision(), "Open revoked them in one write before returning")
	events, err := s.Watch(t.Context(), rev)
	require.NoError(t, err)
	ev := <-events
	require.Equal(t, "batch", ev.Kind)
	require.Equal(t, store.Changes{
		store.ExpireTeamMember{Org: "a", Team: "t", User: "bob", ExpiresAt: t0.Add(time.Hour)},
		store.ExpireGrant{Org: "a", Project: "p", User: "dave", ExpiresAt: t0.Add(2 * time.Hour)},
	}, ev.Changes)
	var out bytes.Buffer
	require.NoError(t, s.Export(t.Context(), &out))
	require.NotContains(t, out.String(), "expires_at")
	require.NoError(t, s.Check())
}

func TestExpiryRenewedOrRemovedIsNotRevoked(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(t0)
	s := openClock(t, clock, "")
	_, err := s.Apply(t.Context(), expirytest.Org()...)
	require.NoError(t, err)
	_, err = s.Apply(t.Context(), store.PutTeamMember{Org: "a", Team: "t", User: "bob", Role: "admin", ExpiresAt: t0.Add(5 * time.Hour)})
	require.NoError(t, err)
	_, err = s.Apply(t.Context(), store.PutGrant{Org: "a", Project: "p", User: "dave", Grant: store.Grant{Role: "admin"}})
	require.NoError(t, err)
	rev := s.Revision()

	for _, c := range []store.Change{
		store.ExpireTeamMember{Org: "a", Team: "t", User: "bob", ExpiresAt: t0.Add(time.Hour)},
		store.ExpireGrant{Org: "a", Project: "p", User: "dave", ExpiresAt: t0.Add(2 * time.Hour)},
		store.ExpireTeamMember{Org: "a", Team: "t", User: "carl"},
		store.ExpireGrant{Org: "a", Project: "p", User: "nobody", ExpiresAt: t0},
	} {
		_, err := s.Apply(t.Context(), c)
		require.ErrorIs(t, err, teamgate.ErrConflict, "%#v", c)
	}
	clock.Advance(3 * time.Hour)
	teams, grant := access(s, "bob")
	require.Equal(t, map[string]string{"t": "admin"}, teams)
	_, grant = access(s, "dave")
	require.Equal(t, "admin", grant)
	require.Equal(t, rev, s.Revision())
}

// TestExpiryInThePastRevokesAtOnce: an expires_at already past when written is accepted (a
// write's validity never depends on the clock, so replicas and reloads agree) and the entry is
// absent at once, then revoked by the next write.
func TestExpiryInThePastRevokesAtOnce(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(t0.Add(10 * time.Hour))
	s := openClock(t, clock, "")
	events, err := s.Watch(t.Context(), 0)
	require.NoError(t, err)
	rev, err := s.Apply(t.Context(), expirytest.Org()...)
	require.NoError(t, err)
	for ev := range events {
		if ev.Revision == rev+1 {
			require.Equal(t, "batch", ev.Kind)
			require.Len(t, ev.Changes, 2)
			break
		}
	}
	teams, _ := access(s, "bob")
	require.Empty(t, teams)
}

// TestExpiryReplays: the expiry events apply on another store (a replica following Watch).
func TestExpiryReplays(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(t0)
	s := openClock(t, clock, "")
	replica := openClock(t, clocktest.New(t0), "") // its clock never moves: it follows
	rep, err := replica.Replicate()
	require.NoError(t, err)
	events, err := s.Watch(t.Context(), 0)
	require.NoError(t, err)
	_, err = s.Apply(t.Context(), expirytest.Org()...)
	require.NoError(t, err)
	clock.Advance(2 * time.Hour) // both fall due: one write
	for ev := range events {
		_, err := rep.ApplyEvent(t.Context(), ev)
		require.NoError(t, err)
		if ev.Revision == 2 {
			break
		}
	}
	var a, b bytes.Buffer
	require.NoError(t, s.Export(t.Context(), &a))
	require.NoError(t, replica.Export(t.Context(), &b))
	require.Equal(t, a.String(), b.String())
	// The wire form of the expiry changes round-trips.
	data, err := store.Changes{store.ExpireGrant{Org: "a", Project: "p", User: "dave", ExpiresAt: t0}}.MarshalJSON()
	require.NoError(t, err)
	back, err := store.ParseChanges(data)
	require.NoError(t, err)
	require.Equal(t, store.Changes{store.ExpireGrant{Org: "a", Project: "p", User: "dave", ExpiresAt: t0}}, back)
}

const expiringFile = `orgs:
  - name: a
    members: {bob: member, dave: viewer}
    teams:
      - name: t
        members:
          bob: {role: admin, expires_at: "2030-01-01T01:00:00Z"}
          dave: viewer
    projects:
      - name: p
        teams: [t]
        grants:
          dave: {role: admin, expires_at: "2030-01-01T04:00:00+02:00"}
`

func TestExpiryDataFile(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(t0)
	s := openClock(t, clock, "")
	_, err := s.Load(t.Context(), strings.NewReader(expiringFile))
	require.NoError(t, err)
	require.NoError(t, s.View(func(r store.Reader) error {
		due, next := r.Expiries(t0)
		require.Empty(t, due)
		require.Equal(t, t0.Add(time.Hour), next, "bob's, before dave's at 04:00+02:00")
		return nil
	}))
	var out bytes.Buffer
	require.NoError(t, s.Export(t.Context(), &out))
	t.Log(out.String())
	require.Contains(t, out.String(), "expires_at: \"2030-01-01T01:00:00Z\"")

	// Export round trip: the exported file loads to the same state (no write at all).
	rev := s.Revision()
	again, err := s.Load(t.Context(), bytes.NewReader(out.Bytes()))
	require.NoError(t, err)
	require.Equal(t, rev, again)
	other := openClock(t, clock, "")
	_, err = other.Load(t.Context(), bytes.NewReader(out.Bytes()))
	require.NoError(t, err)
	var out2 bytes.Buffer
	require.NoError(t, other.Export(t.Context(), &out2))
	require.Equal(t, out.String(), out2.String())

	// Dropping the expiry in the file is a write that makes the membership permanent.
	_, err = s.Load(t.Context(), strings.NewReader(strings.Replace(expiringFile, `{role: admin, expires_at: "2030-01-01T01:00:00Z"}`, "admin", 1)))
	require.NoError(t, err)
	require.NoError(t, s.View(func(r store.Reader) error {
		due, _ := r.Expiries(t0.Add(time.Hour))
		require.Empty(t, due, "bob's membership no longer expires")
		return nil
	}))
}

func TestExpiryDataFileRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, from, to, path, line string }{
		{"bad time", `"2030-01-01T01:00:00Z"`, `"tomorrow"`, "orgs[0].teams[0].members.bob.expires_at", "line 7"},
		{"date only", `"2030-01-01T01:00:00Z"`, `2030-01-01`, "orgs[0].teams[0].members.bob.expires_at", "line 7"},
		{"grant bad time", `"2030-01-01T04:00:00+02:00"`, `"2030-13-01T00:00:00Z"`, "orgs[0].projects[0].grants.dave.expires_at", "line 13"},
		{"unknown member key", `expires_at: "2030-01-01T01:00:00Z"`, `expires: "2030-01-01T01:00:00Z"`, "orgs[0].teams[0].members.bob.expires", "line 7"},
		{"number", `{role: admin, expires_at: "2030-01-01T01:00:00Z"}`, `3`, "orgs[0].teams[0].members.bob", "line 7"},
	} {
		_, err := store.ParseFile([]byte(strings.Replace(expiringFile, tc.from, tc.to, 1)))
		require.ErrorIs(t, err, teamgate.ErrInvalid, tc.name)
		require.ErrorContains(t, err, tc.path, tc.name)
		require.ErrorContains(t, err, tc.line, tc.name)
	}
}

// TestCachedReadNeverOutlivesExpiry is the property behind "no cached decision outlives an
// expiry": readers keep (answer, Deps) pairs like a cache and serve an answer again only while
// its Deps are current, while the clock moves past random expiries in random steps and the
// store's own expiry writes race them. A served answer must always equal a fresh read.
func TestCachedReadNeverOutlivesExpiry(t *testing.T) {
	t.Parallel()
	for _, held := range []bool{false, true} {
		t.Run(fmt.Sprintf("writes held back %v", held), func(t *testing.T) {
			t.Parallel()
			cachedReadsAcrossExpiries(t, held)
		})
	}
}

// cachedReadsAcrossExpiries runs the property; held keeps the store from writing its expiries
// (a replica), so only the readers' own treatment of expiry keeps the cached answers right.
func cachedReadsAcrossExpiries(t *testing.T, held bool) {
	rng := rand.New(rand.NewPCG(7, 11))
	clock := clocktest.New(t0)
	s := openClock(t, clock, "")
	users := []string{"u0", "u1", "u2", "u3", "u4", "u5"}
	changes := []store.Change{store.PutOrg{Org: store.Org{Name: "a"}}, store.PutTeam{Team: store.Team{Org: "a", Name: "t"}},
		store.PutProject{Project: store.Project{Org: "a", Name: "p", Teams: []string{"t"}}}}
	for i, u := range users {
		changes = append(changes, store.PutMember{Org: "a", User: u, Role: "member"},
			store.PutTeamMember{Org: "a", Team: "t", User: u, Role: "admin", ExpiresAt: t0.Add(time.Duration(1+rng.IntN(100)) * time.Minute)},
			store.PutGrant{Org: "a", Project: "p", User: u, Grant: store.Grant{Role: "viewer", ExpiresAt: t0.Add(time.Duration(1+rng.IntN(100)) * time.Minute)}})
		if i%3 == 0 { // some for good
			changes = append(changes, store.PutTeamMember{Org: "a", Team: "t", User: u, Role: "member"})
		}
	}
	_, err := s.Apply(t.Context(), changes...)
	require.NoError(t, err)
	if held {
		_, err := s.Replicate()
		require.NoError(t, err)
	}

	read := func(r store.Reader, u string) string {
		pv, _ := r.Project("a", "p")
		role, _ := r.TeamRoles("a", u).Role("t")
		return role + "/" + pv.Project.Grants[u].Role
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	var reads atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			type entry struct {
				answer string
				deps   store.Deps
			}
			cache := map[string]*entry{}
			for i := 0; ctx.Err() == nil; i++ {
				reads.Add(1)
				u := users[(i+w)%len(users)]
				e := cache[u]
				if e == nil || !e.deps.Current() {
					e = &entry{}
					_ = s.View(func(r store.Reader) error { e.answer = read(r.Track(&e.deps), u); return nil })
					cache[u] = e
					continue
				}
				var fresh string
				_ = s.View(func(r store.Reader) error { fresh = read(r, u); return nil })
				// The fresh read may be later than the check: only an answer that was still
				// current after the fresh read is a stale one.
				if fresh != e.answer && e.deps.Current() {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s at %v: cached %s, fresh %s", u, clock.Now(), e.answer, fresh))
					mu.Unlock()
				}
			}
		})
	}
	for clock.Now().Before(t0.Add(2 * time.Hour)) {
		clock.Advance(time.Duration(1+rng.IntN(180)) * time.Second)
		for seen := reads.Load(); reads.Load() < seen+64 && ctx.Err() == nil; { // let the readers meet this time
			runtime.Gosched()
		}
	}
	require.NoError(t, s.WaitRevision(t.Context(), s.Revision()))
	cancel()
	wg.Wait()
	require.Empty(t, failures)
	require.NoError(t, s.View(func(r store.Reader) error {
		due, next := r.Expiries(clock.Now())
		require.True(t, next.IsZero())
		_ = due // the last expiry writes may still be in flight
		return nil
	}))
}

// TestSimulateExpiringChanges: a what-if of expiring writes works on its own copy of the expiry
// indexes and leaves the store's alone.
func TestSimulateExpiringChanges(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(t0)
	s := openClock(t, clock, "")
	_, err := s.Apply(t.Context(), expirytest.Org()...)
	require.NoError(t, err)
	_, err = s.Simulate(t.Context(),
		store.PutTeamMember{Org: "a", Team: "t", User: "carl", Role: "admin", ExpiresAt: t0.Add(5 * time.Hour)},
		store.PutGrant{Org: "a", Project: "p", User: "bob", Grant: store.Grant{Role: "viewer", ExpiresAt: t0.Add(5 * time.Hour)}},
		store.ExpireGrant{Org: "a", Project: "p", User: "dave", ExpiresAt: t0.Add(2 * time.Hour)})
	require.NoError(t, err)
	require.NoError(t, s.View(func(r store.Reader) error {
		due, next := r.Expiries(t0.Add(10 * time.Hour))
		require.Len(t, due, 2, "bob's membership and dave's grant, as before the what-if")
		require.True(t, next.IsZero())
		return nil
	}))
	require.NoError(t, s.Check())
}

// TestExpiryOutOfRange: expiry is measured in int64 unix nanoseconds. An expires_at past
// store.MaxExpiry (year 2262) is an ErrInvalid naming it (it once wrapped around and revoked a
// year-3000 membership at once); one before 1678 is long past and revoked at once (it once
// wrapped around to 2084 and stayed in force); and a clock outside the range never wraps.
func TestExpiryOutOfRange(t *testing.T) {
	t.Parallel()
	far := time.Date(3000, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 3600))
	for _, c := range []store.Change{
		store.PutTeamMember{Org: "a", Team: "t", User: "carl", Role: "admin", ExpiresAt: far},
		store.PutGrant{Org: "a", Project: "p", User: "carl", Grant: store.Grant{Role: "admin", ExpiresAt: far}},
	} {
		s := openClock(t, clocktest.New(t0), "")
		rev, err := s.Apply(t.Context(), expirytest.Org()...)
		require.NoError(t, err)
		_, err = s.Apply(t.Context(), c)
		require.ErrorIs(t, err, teamgate.ErrInvalid, c.Kind())
		require.ErrorContains(t, err, "3000-01-01T00:00:00+01:00", c.Kind())
		require.ErrorContains(t, err, "carl", c.Kind())
		require.Equal(t, rev, s.Revision())
	}
	f, err := store.ParseFile([]byte(strings.Replace(expiringFile, `"2030-01-01T01:00:00Z"`, `"2262-04-12T00:00:00Z"`, 1)))
	require.NoError(t, err)
	_, err = openClock(t, clocktest.New(t0), "").Apply(t.Context(), store.PutFile{File: *f})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	require.ErrorContains(t, err, "2262-04-12T00:00:00Z")

	for _, at := range []time.Time{store.MaxExpiry, t0.Add(time.Hour), time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(0, 0)} {
		clock := clocktest.New(t0)
		s := openClock(t, clock, "")
		_, err := s.Apply(t.Context(), append(expirytest.Org(),
			store.PutTeamMember{Org: "a", Team: "t", User: "carl", Role: "admin", ExpiresAt: at},
			store.PutGrant{Org: "a", Project: "p", User: "carl", Grant: store.Grant{Role: "viewer", ExpiresAt: at}})...)
		require.NoError(t, err, at)
		teams, grant := access(s, "carl")
		if at.After(t0) {
			require.Equal(t, map[string]string{"t": "admin"}, teams, at)
			require.Equal(t, "viewer", grant, at)
		} else {
			require.Empty(t, teams, "%s is past: carl's membership is absent at once", at)
			require.Empty(t, grant, at)
			require.Eventually(t, func() bool { // and revoked by a write
				var due []store.Change
				_ = s.View(func(r store.Reader) error { due, _ = r.Expiries(t0); return nil })
				return len(due) == 0
			}, 10*time.Second, time.Millisecond, at)
		}
	}

	// A clock before 1678 or after 2262 is before or after every expiry, never wrapped around.
	for _, tc := range []struct {
		now     time.Time
		expired bool
	}{{time.Time{}, false}, {time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC), false}, {time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), true}} {
		clock := clocktest.New(tc.now)
		s := openClock(t, clock, "")
		_, err := s.Apply(t.Context(), store.PutOrg{Org: store.Org{Name: "a"}}, store.PutMember{Org: "a", User: "bob", Role: "member"},
			store.PutTeam{Team: store.Team{Org: "a", Name: "t"}},
			store.PutTeamMember{Org: "a", Team: "t", User: "bob", Role: "admin", ExpiresAt: t0})
		require.NoError(t, err)
		teams, _ := access(s, "bob")
		require.Equal(t, tc.expired, len(teams) == 0, "clock at %s", tc.now)
	}
}
