package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/store"
)

// handClock is a clock moved by hand whose After never fires: the store's expiry loop then
// revokes only when a write wakes it, so between writes an expired grant stays in its record
// and only the decision path's own expiry check hides it.
type handClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *handClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *handClock) After(time.Duration) <-chan time.Time { return nil }

func (c *handClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// attack20c's directory: one org, names of 1, 14, 15 (two, differing in the last byte), 16 and
// 30 bytes (o.projects' key bytes hold 15), three teams, two policies.
var (
	a20cUsers    = []string{"ann", "ben", "cat", "dan", "eve"}
	a20cTeams    = []string{"red", "blue", "green"}
	a20cPolicies = []string{"pa", "pb"}
	a20cProjects = []string{"p", "abcdefghijklmn", "abcdefghijklmno", "abcdefghijklmnq", "abcdefghijklmnop",
		"abcdefghijklmnopqrstuvwxyz0123"}
)

// a20cCell is one Access read, named.
type a20cCell struct{ team, project, user string }

// a20cTable reads every decision's facts on org o's projects (in the org and in each team
// space) in r, and requires each to be what the records say (Reader.Project: the live grants,
// the effective teams, the labels; the team roles; the org role).
func a20cTable(t *testing.T, r store.Reader, counts map[string]int) map[a20cCell]store.Access {
	t.Helper()
	out := map[a20cCell]store.Access{}
	for _, team := range append([]string{""}, a20cTeams...) {
		for _, p := range a20cProjects {
			for _, u := range a20cUsers {
				got := r.Access("o", team, p, u)
				want := accessByParts(r, "o", team, p, u)
				if want.Missing == store.Found {
					pv, _ := r.Project("o", p)
					if g, ok := pv.Project.Grants[u]; ok {
						want.BreakGlass = g.BreakGlass != nil
						counts["grant"]++
						if g.BreakGlass != nil {
							counts["break-glass"]++
						}
					}
					if len(pv.Project.Labels) > 0 {
						counts["labels"]++
					}
					if pv.Teams.Restricted {
						counts["restricted"]++
					}
				}
				require.Equal(t, want, got, "Access o %q %q %q: the record says otherwise", team, p, u)
				out[a20cCell{team, p, u}] = got
			}
		}
	}
	return out
}

// a20cRead is a20cTable over a store.
func a20cRead(t *testing.T, s *store.Store, counts map[string]int) map[a20cCell]store.Access {
	t.Helper()
	var tab map[a20cCell]store.Access
	require.NoError(t, s.View(func(r store.Reader) error {
		tab = a20cTable(t, r, counts)
		return nil
	}))
	return tab
}

// a20cGrant is a random grant: ordinary or break-glass, never or later expiring (a grant that
// has expired already would be revoked by the store's loop behind the test's back).
func a20cGrant(rng *rand.Rand, now time.Time) store.Grant {
	g := store.Grant{Role: pick(rng, store.TeamRoles())}
	if rng.IntN(2) == 0 {
		g.ExpiresAt = now.Add(time.Duration(1+rng.IntN(4)) * 30 * time.Minute)
		if rng.IntN(3) == 0 {
			g.BreakGlass = &store.BreakGlass{Actor: "ann", At: now, Justification: "incident"}
		}
	}
	return g
}

func pick[T any](rng *rand.Rand, v []T) T { return v[rng.IntN(len(v))] }

func a20cSubset(rng *rand.Rand, v []string) []string {
	var out []string
	for _, x := range v {
		if rng.IntN(2) == 0 {
			out = append(out, x)
		}
	}
	return out
}

// a20cDir is what org o holds now, for changes that mostly apply.
type a20cDir struct {
	org                      bool
	members, teams, projects []string
	grants                   [][2]string // project, user
}

func a20cNow(t *testing.T, s *store.Store) a20cDir {
	t.Helper()
	var d a20cDir
	require.NoError(t, s.View(func(r store.Reader) error {
		_, d.org = r.Org("o")
		for u := range r.Members("o") {
			d.members = append(d.members, u)
		}
		slices.Sort(d.members)
		d.teams, d.projects = r.Teams("o"), r.Projects("o")
		for _, p := range d.projects {
			pv, _ := r.Project("o", p)
			for _, u := range slices.Sorted(maps.Keys(pv.Project.Grants)) {
				d.grants = append(d.grants, [2]string{p, u})
			}
		}
		return nil
	}))
	return d
}

// often picks from have (when it has any) three times in four, else from all.
func often(rng *rand.Rand, have, all []string) string {
	if len(have) > 0 && rng.IntN(4) != 0 {
		return pick(rng, have)
	}
	return pick(rng, all)
}

// a20cChange is a random change to org o, d what it holds.
func a20cChange(rng *rand.Rand, d a20cDir, now time.Time) store.Change {
	if !d.org && rng.IntN(3) != 0 {
		return store.PutOrg{Org: store.Org{Name: "o"}}
	}
	u, tm, p := often(rng, d.members, a20cUsers), often(rng, d.teams, a20cTeams), often(rng, d.projects, a20cProjects)
	switch rng.IntN(21) {
	case 0:
		return store.PutOrg{Org: store.Org{Name: "o"}}
	case 1, 2:
		return store.PutMember{Org: "o", User: pick(rng, a20cUsers), Role: pick(rng, store.OrgRoles())}
	case 3:
		return store.DeleteMember{Org: "o", User: u}
	case 4:
		return store.PutTeam{Team: store.Team{Org: "o", Name: pick(rng, a20cTeams), Policy: pick(rng, append([]string{"", ""}, a20cPolicies...))}}
	case 5:
		return store.DeleteTeam{Org: "o", Name: tm}
	case 6:
		return store.PutTeamMember{Org: "o", Team: tm, User: u, Role: pick(rng, store.TeamRoles())}
	case 7:
		return store.DeleteTeamMember{Org: "o", Team: tm, User: u}
	case 8, 9:
		pr := store.Project{Org: "o", Name: pick(rng, a20cProjects), Teams: a20cSubset(rng, d.teams), Policy: pick(rng, append([]string{"", ""}, a20cPolicies...))}
		if rng.IntN(2) == 0 {
			pr.Labels = map[string]string{"tier": pick(rng, []string{"gold", "silver", ""}), "note": "é ü"}
			if rng.IntN(2) == 0 {
				pr.Labels = map[string]string{"env": pick(rng, []string{"prod", "dev"})}
			}
		}
		if rng.IntN(2) == 0 {
			pr.Grants = map[string]store.Grant{}
			for _, gu := range a20cSubset(rng, d.members) {
				pr.Grants[gu] = a20cGrant(rng, now)
			}
		}
		return store.PutProject{Project: pr}
	case 10:
		return store.CreateProject{Project: store.Project{Org: "o", Name: pick(rng, a20cProjects)}, Team: pick(rng, append([]string{""}, d.teams...))}
	case 11:
		return store.DeleteProject{Org: "o", Name: p}
	case 12, 13, 14:
		return store.PutGrant{Org: "o", Project: p, User: u, Grant: a20cGrant(rng, now)}
	case 15, 16:
		if len(d.grants) > 0 && rng.IntN(4) != 0 {
			g := pick(rng, d.grants)
			return store.DeleteGrant{Org: "o", Project: g[0], User: g[1]}
		}
		return store.DeleteGrant{Org: "o", Project: p, User: u}
	case 17:
		return store.PutPolicy{Policy: store.Policy{Org: "o", Name: pick(rng, a20cPolicies), Settings: policy.Settings{Teams: a20cSubset(rng, a20cTeams)}}}
	case 18:
		return store.DeletePolicy{Org: "o", Name: pick(rng, a20cPolicies)}
	case 19:
		return store.RenameTeam{Org: "o", From: tm, To: pick(rng, append([]string{"amber"}, a20cTeams...))}
	default:
		if rng.IntN(5) == 0 {
			return store.DeleteOrg{Name: "o"}
		}
		return store.PutMember{Org: "o", User: pick(rng, a20cUsers), Role: "member"}
	}
}

// a20cExpire applies the revocations due now itself, so that the store's loop finds none to race
// the test's next batch with.
func a20cExpire(t *testing.T, s *store.Store, now time.Time) int {
	t.Helper()
	var due []store.Change
	require.NoError(t, s.View(func(r store.Reader) error {
		due, _ = r.Expiries(now)
		return nil
	}))
	for _, c := range due {
		if _, err := s.Apply(t.Context(), c); err != nil {
			var conflict *teamgate.ConflictError
			require.True(t, errors.As(err, &conflict), "expiry %v: %v", c, err)
		}
	}
	return len(due)
}

// TestAttack20cDecisionsFollowTheRecords: random batches of every write that changes a
// project's grants, labels, teams or policy (and members, teams, orgs around them), some failing
// half-way, over a persistent store whose clock passes grants' expiry: after each, every
// decision's facts (Reader.Access: the project's first line) equal what the records say
// (Reader.Project's live grants, effective teams, labels), Check holds, the batch's Simulation
// taken before it agrees with the store on both sides (neither leaks into the other), a failed
// batch changes no decision, and a store reopened from disk (after a snapshot or not) or loaded
// from the data file export decides alike.
func TestAttack20cDecisionsFollowTheRecords(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 20))
			clock := &handClock{now: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
			dir := t.TempDir()
			opts := store.Options{Dir: dir, NoSync: true, Clock: clock}
			open := func() *store.Store {
				s, err := store.Open(t.Context(), opts)
				require.NoError(t, err)
				return s
			}
			s := open()
			defer func() { _ = s.Close() }()
			_, err := s.Apply(t.Context(), store.PutOrg{Org: store.Org{Name: "o"}},
				store.PutMember{Org: "o", User: "ann", Role: "owner"}, store.PutMember{Org: "o", User: "ben", Role: "member"},
				store.PutMember{Org: "o", User: "cat", Role: "outsider"}, store.PutTeam{Team: store.Team{Org: "o", Name: "red"}})
			require.NoError(t, err)
			counts := map[string]int{}
			for step := range 300 {
				now, d := clock.Now(), a20cNow(t, s)
				var batch []store.Change
				for range 1 + rng.IntN(3) {
					batch = append(batch, a20cChange(rng, d, now))
				}
				failing := rng.IntN(5) == 0
				if failing { // fails after the rest applied: the undo log must restore it all
					batch = append(batch, store.PutGrant{Org: "o", Project: pick(rng, a20cProjects), User: "nobody", Grant: store.Grant{Role: "viewer"}})
				}
				before := a20cRead(t, s, counts)
				sim, simErr := s.Simulate(t.Context(), batch...)
				_, err := s.Apply(t.Context(), batch...)
				require.Equal(t, simErr == nil, err == nil, "step %d %v: Simulate %v, Apply %v", step, batch, simErr, err)
				require.NoError(t, s.Check(), "step %d %v", step, batch)
				after := a20cRead(t, s, counts)
				if err != nil {
					counts["failed"]++
					require.Equal(t, before, after, "step %d: the failed batch %v (%v) changed a decision", step, batch, err)
				} else {
					counts["applied"]++
					require.NoError(t, sim.ViewBefore(func(r store.Reader) error {
						require.Equal(t, before, a20cTable(t, r, map[string]int{}), "step %d: the simulation's before", step)
						return nil
					}))
					require.NoError(t, sim.ViewAfter(func(r store.Reader) error {
						require.Equal(t, after, a20cTable(t, r, map[string]int{}), "step %d: the simulation's after", step)
						return nil
					}))
				}
				if rng.IntN(8) == 0 { // grants expire: hidden before the loop revokes them
					clock.advance(time.Duration(1+rng.IntN(4)) * 30 * time.Minute)
					expired := a20cRead(t, s, counts)
					var file bytes.Buffer
					require.NoError(t, s.Export(t.Context(), &file))
					fresh, err := store.Open(t.Context(), store.Options{Clock: clock})
					require.NoError(t, err)
					_, err = fresh.Load(t.Context(), bytes.NewReader(file.Bytes()))
					require.NoError(t, err, "step %d: the export does not load", step)
					require.Equal(t, expired, a20cRead(t, fresh, counts), "step %d: a store loaded from the export", step)
					require.NoError(t, fresh.Close())
					counts["revoked"] += a20cExpire(t, s, clock.Now())
					require.Equal(t, expired, a20cRead(t, s, counts), "step %d: the revocations changed a decision", step)
					require.NoError(t, s.Check())
				}
				if rng.IntN(15) == 0 { // reopen, from a snapshot or from the records
					want := a20cRead(t, s, counts)
					if rng.IntN(2) == 0 {
						require.NoError(t, store.WriteSnapshot(s))
					}
					require.NoError(t, s.Close())
					s = open()
					require.NoError(t, s.Check())
					require.Equal(t, want, a20cRead(t, s, counts), "step %d: the reopened store", step)
					counts["reopened"]++
				}
			}
			t.Logf("seed %d: %v", seed, counts)
			for _, what := range []string{"grant", "break-glass", "labels", "restricted", "failed", "applied", "revoked", "reopened"} {
				require.Positive(t, counts[what], "the test never saw %s", what)
			}
		})
	}
}

// TestAttack20cNonASCIINames: a project name of non-ASCII bytes (15 of them, the key's size, and
// 16) is refused as invalid, and reading one finds no project — also one whose first 15 bytes
// are those of a project that exists.
func TestAttack20cNonASCIINames(t *testing.T) {
	t.Parallel()
	s := memStore(t)
	_, err := s.Apply(t.Context(), store.PutOrg{Org: store.Org{Name: "o"}}, store.PutMember{Org: "o", User: "ann", Role: "member"},
		store.PutProject{Project: store.Project{Org: "o", Name: "abcdefghijklmno"}})
	require.NoError(t, err)
	for _, name := range []string{"ééééééée", "éééééééé", "abcdefghijklmné", "abcdefghijklmno\x00", "abcdefghijklmn\xff"} {
		_, err := s.Apply(t.Context(), store.PutProject{Project: store.Project{Org: "o", Name: name}})
		require.ErrorIs(t, err, teamgate.ErrInvalid, "%q", name)
		require.NoError(t, s.View(func(r store.Reader) error {
			require.Equal(t, store.MissingProject, r.Access("o", "", name, "ann").Missing, "%q", name)
			_, ok := r.Project("o", name)
			require.False(t, ok, "%q", name)
			return nil
		}))
	}
	require.NoError(t, s.View(func(r store.Reader) error {
		require.Equal(t, store.Found, r.Access("o", "", "abcdefghijklmno", "ann").Missing)
		return nil
	}))
	require.NoError(t, s.Check())
}
