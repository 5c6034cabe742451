package authz

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/racedetect"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/store"
)

// gammaProjects are the projects of org gamma (attack20bOrg): p0; near, in p0's part; far, in
// another part; late, in p0's part too and absent at first.
type gammaProjects struct{ p0, near, far, late string }

// attack20bOrg writes org gamma into st (members of every org role, teams eng and research, a
// policy allowing research only, projects in one part and in another; late not created) and
// returns its projects' names.
func attack20bOrg(t *testing.T, st *store.Store) gammaProjects {
	t.Helper()
	_, err := st.Apply(t.Context(), store.PutOrg{Org: store.Org{Name: "gamma"}}) // projectGroup reads a project's cell of an org only
	require.NoError(t, err)
	ps := gammaProjects{p0: "p0"}
	for i := 0; ps.near == "" || ps.far == "" || ps.late == ""; i++ {
		n := fmt.Sprint("p", i+1)
		switch g := projectGroup(t, st, "gamma", n); {
		case g != projectGroup(t, st, "gamma", ps.p0):
			if ps.far == "" {
				ps.far = n
			}
		case ps.near == "":
			ps.near = n
		case ps.late == "":
			ps.late = n
		}
	}
	var cs []store.Change
	for u, role := range map[string]string{"alice": "owner", "amir": "admin", "mona": "manager", "bob": "member",
		"vera": "viewer", "olga": "outsider", "bill": "billing"} {
		cs = append(cs, store.PutMember{Org: "gamma", User: u, Role: role})
	}
	cs = append(cs, store.PutTeam{Team: store.Team{Org: "gamma", Name: "eng"}}, store.PutTeam{Team: store.Team{Org: "gamma", Name: "research"}},
		store.PutTeamMember{Org: "gamma", Team: "eng", User: "vera", Role: "contributor"},
		store.PutTeamMember{Org: "gamma", Team: "eng", User: "olga", Role: "admin"},
		store.PutTeamMember{Org: "gamma", Team: "research", User: "bob", Role: "viewer"},
		store.PutPolicy{Policy: store.Policy{Org: "gamma", Name: "pol", Settings: policy.Settings{Teams: []string{"research"}}}},
		store.PutProject{Project: store.Project{Org: "gamma", Name: ps.p0, Teams: []string{"eng"}}},
		store.PutProject{Project: store.Project{Org: "gamma", Name: ps.near}},
		store.PutProject{Project: store.Project{Org: "gamma", Name: ps.far, Teams: []string{"eng", "research"}, Policy: "pol"}})
	_, err = st.Apply(t.Context(), cs...)
	require.NoError(t, err)
	return ps
}

// requests are gamma's cacheable requests: its projects by org and by team space, its teams and
// the org.
func (ps gammaProjects) requests() []Request {
	var reqs []Request
	for _, s := range []string{"alice", "amir", "mona", "bob", "vera", "olga", "bill", "nobody"} {
		for _, a := range []string{"runs.get", "runs.stop", "runs.approve", "project.update"} {
			for _, p := range []string{ps.p0, ps.near, ps.far, ps.late} {
				reqs = append(reqs, Request{Subject: s, Action: a, Resource: "gamma/" + p},
					Request{Subject: s, Action: a, Resource: "gamma/eng/" + p}, Request{Subject: s, Action: a, Resource: "gamma/research/" + p})
			}
		}
		reqs = append(reqs, Request{Subject: s, Action: "runs.get", Resource: ps.far, Owner: "gamma/research"})
		for _, a := range []string{"team.get", "team.update"} {
			for _, team := range []string{"eng", "research", "ghost"} {
				reqs = append(reqs, Request{Subject: s, Action: a, Resource: "gamma/" + team})
			}
		}
		for _, a := range []string{"org.get", "members.list"} {
			reqs = append(reqs, Request{Subject: s, Action: a, Resource: "gamma"})
		}
	}
	return reqs
}

// write is a random change of gamma: grants (break-glass and expiring ones among them, to
// outsiders too), projects moved between teams, restricted, opened, connected to the policy or
// not, deleted and made again, late created; the policy's allow-list; teams made (ghost, which
// projects may name before it exists), renamed and deleted; team roles, memberships, the org's
// defaults, the org deleted and made again, users' records.
func (ps gammaProjects) write(rng *rand.Rand) []store.Change {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	project := pick(ps.p0, ps.near, ps.far, ps.late)
	user := pick("alice", "amir", "mona", "bob", "vera", "olga", "bill", "nobody")
	team := pick("eng", "research", "ghost")
	teams := func() []string {
		var out []string
		for _, t := range []string{"eng", "research", "ghost"} {
			if rng.IntN(3) == 0 {
				out = append(out, t)
			}
		}
		return out
	}
	switch rng.IntN(18) {
	case 0:
		return []store.Change{store.PutGrant{Org: "gamma", Project: project, User: user, Grant: store.Grant{Role: pick("viewer", "member", "contributor", "admin")}}}
	case 1:
		return []store.Change{store.PutGrant{Org: "gamma", Project: project, User: user, Grant: store.Grant{Role: pick("admin", "contributor"),
			ExpiresAt: time.Now().Add(24 * time.Hour), BreakGlass: &store.BreakGlass{Actor: "alice", At: time.Now(), Justification: "incident"}}}}
	case 2:
		return []store.Change{store.DeleteGrant{Org: "gamma", Project: project, User: user}}
	case 3, 4:
		return []store.Change{store.PutProject{Project: store.Project{Org: "gamma", Name: project, Teams: teams(), Policy: pick("", "pol")}}}
	case 5:
		return []store.Change{store.DeleteProject{Org: "gamma", Name: project}}
	case 6:
		return []store.Change{store.PutPolicy{Policy: store.Policy{Org: "gamma", Name: "pol", Settings: policy.Settings{Teams: teams()}}}}
	case 7:
		return []store.Change{store.PutTeam{Team: store.Team{Org: "gamma", Name: team}}}
	case 8:
		return []store.Change{store.DeleteTeam{Org: "gamma", Name: team}}
	case 9:
		return []store.Change{store.RenameTeam{Org: "gamma", From: team, To: pick("eng", "research", "ghost")}}
	case 10, 11:
		return []store.Change{store.PutTeamMember{Org: "gamma", Team: team, User: user, Role: pick("viewer", "member", "contributor", "admin")}}
	case 12:
		return []store.Change{store.DeleteTeamMember{Org: "gamma", Team: team, User: user}}
	case 13:
		return []store.Change{store.PutMember{Org: "gamma", User: user, Role: pick("member", "viewer", "admin", "outsider", "manager", "owner", "billing")}}
	case 14:
		return []store.Change{store.DeleteMember{Org: "gamma", User: user}}
	case 15:
		return []store.Change{store.PutOrg{Org: store.Org{Name: "gamma", Queue: pick("", "q1", "q2")}}}
	case 16:
		if rng.IntN(4) == 0 {
			return []store.Change{store.DeleteOrg{Name: "gamma"}}
		}
	}
	return []store.Change{store.PutUser{User: store.User{ID: user}}}
}

// TestAttack20bProjectPartsRandomWritesNeverStale: org gamma's projects in one epoch part (p0,
// near, and late, created later) and in another (far), random writes of every kind that reach a
// project's cells or the org-wide ones, stamps narrowed to 1 and 2 bits and at their default
// width: after each write every request is answered by the cached engine as by an uncached one,
// twice (the second pass from words the first stamped), and some hits are fast.
func TestAttack20bProjectPartsRandomWritesNeverStale(t *testing.T) {
	t.Parallel()
	for _, bits := range []uint{1, 2, defaultEpochBits} {
		t.Run(fmt.Sprint(bits), func(t *testing.T) {
			st, err := store.Open(t.Context(), store.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = st.Close() })
			ps := attack20bOrg(t, st)
			e, err := New(t.Context(), st)
			require.NoError(t, err)
			e.decisions.setEpochBits(bits)
			slow := slowHits(e)
			plain, err := New(t.Context(), st, WithDecisionCache(0))
			require.NoError(t, err)
			reqs := ps.requests()
			rng := rand.New(rand.NewPCG(20, uint64(bits)))
			check := func(step int) {
				for pass := range 2 {
					for _, r := range reqs {
						want, werr := plain.Authorize(t.Context(), r)
						got, gerr := e.Authorize(t.Context(), r)
						require.Equal(t, werr == nil, gerr == nil, "step %d pass %d %+v: %v vs %v", step, pass, r, gerr, werr)
						require.True(t, sameDecision(got, want), "step %d pass %d, %+v: got %+v, want %+v", step, pass, r, got, want)
					}
				}
			}
			check(-1)
			steps := 400
			if testing.Short() || racedetect.Enabled {
				steps = 100
			}
			written := 0
			for step := range steps {
				if _, err := st.Apply(t.Context(), ps.write(rng)...); err != nil {
					if _, err := st.Apply(t.Context(), store.PutOrg{Org: store.Org{Name: "gamma"}}); err != nil {
						continue // e.g. a grant to a non-member, a rename onto an existing team
					}
				}
				written++
				check(step)
			}
			require.Greater(t, written, steps/2)
			fast := e.Stats().CacheHits - uint64(slow.Load())
			require.Positive(t, fast, "some hits are fast")
			t.Logf("%d writes; hits %d, fast %d", written, e.Stats().CacheHits, fast)
		})
	}
}

// TestAttack20bProjectPartsHammer: readers hammer gamma's requests (mostly fast hits) while a
// writer toggles, in turn, facts of two projects — of one part (p0 and near), of two (p0 and
// far) — a grant, the project's teams (moved from eng to research and back), with stamps
// narrowed to 1 bit (every other write a new era of the part) and at their default width: after
// a write returns, no call that begins afterwards is answered as before it.
func TestAttack20bProjectPartsHammer(t *testing.T) {
	t.Parallel()
	for _, bits := range []uint{1, defaultEpochBits} {
		for _, other := range []string{"near", "far"} {
			t.Run(fmt.Sprint(bits, other), func(t *testing.T) {
				st, err := store.Open(t.Context(), store.Options{})
				require.NoError(t, err)
				t.Cleanup(func() { _ = st.Close() })
				ps := attack20bOrg(t, st)
				e, err := New(t.Context(), st)
				require.NoError(t, err)
				e.decisions.setEpochBits(bits)
				p1 := ps.near
				if other == "far" {
					p1 = ps.far
				}
				var reqs []Request
				for _, r := range ps.requests() {
					if o, p := orgProject(r); o == "gamma" && (p == ps.p0 || p == p1) {
						reqs = append(reqs, r)
					}
				}
				hammerToggles(t, e, reqs, [2][2]store.Change{
					{store.PutGrant{Org: "gamma", Project: ps.p0, User: "bill", Grant: store.Grant{Role: "admin"}},
						store.PutGrant{Org: "gamma", Project: ps.p0, User: "bill", Grant: store.Grant{Role: "viewer"}}},
					{store.PutProject{Project: store.Project{Org: "gamma", Name: p1, Teams: []string{"eng"}}},
						store.PutProject{Project: store.Project{Org: "gamma", Name: p1, Teams: []string{"research"}}}},
				})
			})
		}
	}
}

// gammaToggles are writes of gamma's projects, in p0's part and in another, each changing
// answers: a grant on far, on near, on p0, far moved between teams.
func (ps gammaProjects) toggles() [][]store.Change {
	return [][]store.Change{
		{store.PutGrant{Org: "gamma", Project: ps.far, User: "bill", Grant: store.Grant{Role: "admin"}}},
		{store.PutGrant{Org: "gamma", Project: ps.near, User: "bill", Grant: store.Grant{Role: "admin"}}},
		{store.PutGrant{Org: "gamma", Project: ps.far, User: "bill", Grant: store.Grant{Role: "viewer"}}},
		{store.PutProject{Project: store.Project{Org: "gamma", Name: ps.far, Teams: []string{"eng"}}}},
		{store.PutGrant{Org: "gamma", Project: ps.p0, User: "bill", Grant: store.Grant{Role: "admin"}}},
		{store.PutGrant{Org: "gamma", Project: ps.near, User: "bill", Grant: store.Grant{Role: "viewer"}}},
		{store.PutProject{Project: store.Project{Org: "gamma", Name: ps.far, Teams: []string{"research"}}}},
		{store.PutGrant{Org: "gamma", Project: ps.p0, User: "bill", Grant: store.Grant{Role: "viewer"}}},
	}
}

// sameAsPlain checks, three times over, that e answers reqs as an uncached engine over the same
// directory does.
func sameAsPlain(t *testing.T, e *Engine, reqs []Request, how string) {
	t.Helper()
	plain, err := New(t.Context(), e.Directory(), WithDecisionCache(0))
	require.NoError(t, err)
	for round := range 3 {
		for _, r := range reqs {
			want, werr := plain.Authorize(t.Context(), r)
			got, gerr := e.Authorize(t.Context(), r)
			require.Equal(t, werr == nil, gerr == nil, "%s round %d %+v: %v vs %v", how, round, r, gerr, werr)
			require.True(t, sameDecision(got, want), "%s round %d %+v: got %+v, want %+v", how, round, r, got, want)
		}
	}
}

// TestAttack20bRestartProjectParts: an on-disk store reopened; the Badger tier feeds L1 the
// decisions recorded before the restart, whose decoded Deps get their project's part (a word of
// p0 lies in p0's part, not EpochAll), and writes to projects of that part and of another never
// leave one served stale.
func TestAttack20bRestartProjectParts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := store.Open(t.Context(), store.Options{Dir: dir, NoSync: true})
	require.NoError(t, err)
	ps := attack20bOrg(t, st)
	reqs := ps.requests()
	e, err := New(t.Context(), st)
	require.NoError(t, err)
	sameAsPlain(t, e, reqs, "before the restart")
	require.NoError(t, st.Close())
	toggles := ps.toggles()
	for reopen := range 2 {
		st, err := store.Open(t.Context(), store.Options{Dir: dir, NoSync: true})
		require.NoError(t, err)
		e, err := New(t.Context(), st)
		require.NoError(t, err)
		r0 := Request{Subject: "bob", Action: "runs.get", Resource: "gamma/" + ps.p0}
		_, err = e.Authorize(t.Context(), r0)
		require.NoError(t, err)
		require.Positive(t, e.Stats().CacheDiskHits, "the Badger tier fed L1")
		require.Equal(t, projectGroup(t, st, "gamma", ps.p0), wordGroup(e.decisions, fastKey(e, r0)), "a decoded decision's group is its project's part")
		sameAsPlain(t, e, reqs, fmt.Sprint("reopen ", reopen))
		require.True(t, stampedNow(e.decisions, fastKey(e, r0)), "hits are fast")
		for i, c := range toggles {
			_, err := st.Apply(t.Context(), c...)
			require.NoError(t, err)
			sameAsPlain(t, e, reqs, fmt.Sprintf("reopen %d, after %+v", reopen, c))
			if i == len(toggles)/2 {
				break // the rest after the next reopen
			}
		}
		toggles = toggles[len(toggles)/2+1:]
		require.NoError(t, st.Close())
	}
}

// TestAttack20bReplicaProjectParts: an engine on a replica of gamma, whose writes are a leader's
// project writes replayed (ApplyEvent) and snapshot restores (the revision jumping): fast hits
// outlive neither, in the written project's part or through a restore.
func TestAttack20bReplicaProjectParts(t *testing.T) {
	t.Parallel()
	leader, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = leader.Close() })
	st, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	ps := attack20bOrg(t, leader)
	require.Equal(t, ps, attack20bOrg(t, st))
	rep, err := st.Replicate()
	require.NoError(t, err)
	e, err := New(t.Context(), st)
	require.NoError(t, err)
	reqs := ps.requests()
	sameAsPlain(t, e, reqs, "start")
	require.True(t, stampedNow(e.decisions, fastKey(e, Request{Subject: "bob", Action: "runs.get", Resource: "gamma/" + ps.p0})), "hits are fast")
	for i, c := range ps.toggles() {
		_, err := leader.Apply(t.Context(), c...)
		require.NoError(t, err)
		if i%3 == 2 {
			var f *store.File
			require.NoError(t, leader.View(func(r store.Reader) error { f = r.Snapshot(); return nil }))
			_, err = rep.Restore(t.Context(), st.Revision()+10, f)
			require.NoError(t, err)
			sameAsPlain(t, e, reqs, fmt.Sprintf("restore after %+v", c))
			continue
		}
		_, err = rep.ApplyEvent(t.Context(), store.Event{Revision: st.Revision() + 1, Changes: c})
		require.NoError(t, err)
		sameAsPlain(t, e, reqs, fmt.Sprintf("replayed %+v", c))
	}
}

// TestAttack20bSimulateMovesNoEpoch: a what-if of writes to every part of gamma (a project of
// p0's part, one of another, a membership) leaves the live cache's words stamped and fast, and
// its answers the live ones; the same writes applied leave none fast.
func TestAttack20bSimulateMovesNoEpoch(t *testing.T) {
	t.Parallel()
	st, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	ps := attack20bOrg(t, st)
	e, err := New(t.Context(), st)
	require.NoError(t, err)
	slow := slowHits(e)
	reqs := ps.requests()
	sameAsPlain(t, e, reqs, "before")
	fast := fastAfterWarmup(t, e, reqs)
	require.NotEmpty(t, fast)
	writes := []store.Change{store.PutGrant{Org: "gamma", Project: ps.p0, User: "bill", Grant: store.Grant{Role: "admin"}},
		store.PutGrant{Org: "gamma", Project: ps.far, User: "bill", Grant: store.Grant{Role: "admin"}},
		store.PutMember{Org: "gamma", User: "vera", Role: "admin"}}
	w, err := e.Simulate(t.Context(), writes...)
	require.NoError(t, err)
	require.NotEmpty(t, w.Decisions, "the writes change decisions")
	require.Zero(t, slowIn(t, e, slow, fast), "a simulation moves no live epoch")
	sameAsPlain(t, e, reqs, "after the simulation")
	_, err = st.Apply(t.Context(), writes...)
	require.NoError(t, err)
	for _, r := range fast {
		require.False(t, stampedNow(e.decisions, fastKey(e, r)), "the writes applied leave no word of gamma fast: %+v", r)
	}
	sameAsPlain(t, e, reqs, "after the writes")
}
