package authz_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
	"github.com/teamgate/teamgate/store"
)

// catalogProjectActions lists the policy's project actions.
func catalogProjectActions(p *rego.Policy) []string {
	var out []string
	for _, a := range p.Actions() {
		if spec, _ := p.Action(a); spec.Kind == scope.KindProject {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

func reasonCodes(d authz.Decision) []rego.Code {
	out := []rego.Code{}
	for _, r := range d.Reasons {
		out = append(out, r.Code)
	}
	return out
}

// bruteForceWhatIf applies changes to a second copy of the directory (copy, same seed) and
// compares every (user, project, action) decision, every project's settings and every pair's
// admission defaults of the original (eng) with the copy's.
func bruteForceWhatIf(t *testing.T, eng, copy *authz.Engine, users, projects []string) authz.WhatIf {
	t.Helper()
	ctx := t.Context()
	out := authz.WhatIf{Decisions: []authz.DecisionChange{}, Settings: []authz.SettingsChange{}, Admissions: []authz.AdmissionChange{}}
	slices.Sort(users)
	slices.Sort(projects)
	actions := catalogProjectActions(eng.Policy())
	for _, u := range users {
		if !member(t, eng, u) && !member(t, copy, u) {
			continue // Simulate lists the org's members only
		}
		for _, p := range projects {
			ref := "o/" + p
			for _, a := range actions {
				req := authz.Request{Subject: u, Action: a, Resource: ref}
				b, err := eng.Authorize(ctx, req)
				require.NoError(t, err)
				f, err := copy.Authorize(ctx, req)
				require.NoError(t, err)
				if b.Allowed != f.Allowed || b.Role != f.Role || !slices.Equal(reasonCodes(b), reasonCodes(f)) {
					out.Decisions = append(out.Decisions, authz.DecisionChange{Subject: u, Project: ref, Action: a, Before: b, After: f})
				}
			}
			run := policy.Run{Kind: "job"}
			ba, err := eng.Admit(ctx, u, ref, run)
			require.NoError(t, err)
			fa, err := copy.Admit(ctx, u, ref, run)
			require.NoError(t, err)
			if ba.Queue != fa.Queue || !slices.Equal(ba.Presets, fa.Presets) {
				out.Admissions = append(out.Admissions, authz.AdmissionChange{Subject: u, Project: ref,
					Before: authz.AdmissionDefaults{Queue: ba.Queue, Presets: ba.Presets},
					After:  authz.AdmissionDefaults{Queue: fa.Queue, Presets: fa.Presets}})
			}
		}
	}
	for _, p := range projects {
		get := func(e *authz.Engine) *authz.Settings {
			s, err := e.EffectiveSettings(ctx, "o/"+p, "")
			if errors.Is(err, teamgate.ErrNotFound) {
				return nil
			}
			require.NoError(t, err)
			return &s
		}
		b, f := get(eng), get(copy)
		if (b == nil) != (f == nil) || (b != nil && !equalJSON(t, b.Effective, f.Effective)) {
			out.Settings = append(out.Settings, authz.SettingsChange{Project: "o/" + p, Before: b, After: f})
		}
	}
	return out
}

func member(t *testing.T, e *authz.Engine, user string) bool {
	var ok bool
	require.NoError(t, e.Directory().View(func(r store.Reader) error {
		_, ok = r.OrgRole("o", user)
		return nil
	}))
	return ok
}

func equalJSON(t *testing.T, a, b any) bool {
	return bytes.Equal(mustJSON(t, a), mustJSON(t, b))
}

// stripRevisions clears what differs between two runs by construction: the revisions decisions
// and settings were read at.
func stripRevisions(w authz.WhatIf) authz.WhatIf {
	for i := range w.Decisions {
		w.Decisions[i].Before.Revision, w.Decisions[i].After.Revision = 0, 0
	}
	for i := range w.Settings {
		for _, s := range []*authz.Settings{w.Settings[i].Before, w.Settings[i].After} {
			if s != nil {
				s.Revision = 0
			}
		}
	}
	w.Revision, w.Projects, w.Subjects, w.Pairs = 0, nil, nil, 0
	return w
}

// TestSimulateEqualsApplyOnACopy: on random directories and random batches (some of them
// invalid), Simulate reports exactly the decisions, settings and admission defaults that differ
// between the directory and a copy the batch was applied to, compared over every (user, project,
// action); an invalid batch gives Apply's error; and the simulated store is unchanged.
func TestSimulateEqualsApplyOnACopy(t *testing.T) {
	t.Parallel()
	// Ten seeds under the race detector (iterations): seeds 0 and 5 still set the org's
	// settings and admission defaults.
	for seed := range iterations[uint64](30, 10) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			eng, users, teams, projects := randomDirectory(t, seed)
			copy, _, _, _ := randomDirectory(t, seed)
			rng := rand.New(rand.NewPCG(seed, 7))
			var batch []store.Change
			for range 1 + rng.IntN(4) {
				batch = append(batch, randomWrite(rng, users, teams, projects))
			}
			if seed%5 == 0 { // settings and admission defaults: an org queue and presets
				batch = append(batch, store.PutOrg{Org: store.Org{Name: "o", Queue: "q" + fmt.Sprint(seed), DefaultPresets: []string{"small"}}})
			}
			st := eng.Directory().(*store.Store)
			var before bytes.Buffer
			require.NoError(t, st.Export(ctx, &before))
			rev := st.Revision()

			got, simErr := eng.Simulate(ctx, batch...)
			_, applyErr := copy.Directory().Apply(ctx, batch...)
			if applyErr != nil {
				require.Error(t, simErr)
				require.Equal(t, applyErr.Error(), simErr.Error())
				for _, sentinel := range []error{teamgate.ErrInvalid, teamgate.ErrNotFound, teamgate.ErrConflict} {
					require.Equal(t, errors.Is(applyErr, sentinel), errors.Is(simErr, sentinel))
				}
			} else {
				require.NoError(t, simErr)
				require.Equal(t, rev, got.Revision)
				want := bruteForceWhatIf(t, eng, copy, users, projects)
				require.Equal(t, stripRevisions(want), stripRevisions(got))
			}
			var after bytes.Buffer
			require.NoError(t, st.Export(ctx, &after))
			require.Equal(t, before.String(), after.String())
			require.Equal(t, rev, st.Revision())
		})
	}
}

func whatIfFixture(t *testing.T) *authz.Engine {
	t.Helper()
	st, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.Apply(t.Context(),
		store.PutOrg{Org: store.Org{Name: "acme"}},
		store.PutMember{Org: "acme", User: "alice", Role: "member"},
		store.PutMember{Org: "acme", User: "bob", Role: "member"},
		store.PutTeam{Team: store.Team{Org: "acme", Name: "ml"}},
		store.PutTeamMember{Org: "acme", Team: "ml", User: "alice", Role: "contributor"},
		store.PutProject{Project: store.Project{Org: "acme", Name: "vision", Teams: []string{"ml"}}},
	)
	require.NoError(t, err)
	eng, err := authz.New(t.Context(), st)
	require.NoError(t, err)
	return eng
}

// TestSimulateReportsBeforeAndAfter: adding bob to the team allows him what contributors may
// do, with the reasons, and changes nothing else; the cache keeps serving the real answer.
func TestSimulateReportsBeforeAndAfter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	eng := whatIfFixture(t)
	req := authz.Request{Subject: "bob", Action: "project.get", Resource: "acme/vision"}
	d, err := eng.Authorize(ctx, req)
	require.NoError(t, err)
	require.False(t, d.Allowed)
	hits := eng.Stats().CacheHits

	w, err := eng.Simulate(ctx, store.PutTeamMember{Org: "acme", Team: "ml", User: "bob", Role: "contributor"})
	require.NoError(t, err)
	require.Equal(t, []string{"acme/bob"}, w.Subjects)
	require.Equal(t, 1, w.Pairs)
	require.NotEmpty(t, w.Decisions)
	var get *authz.DecisionChange
	for i, c := range w.Decisions {
		require.Equal(t, "bob", c.Subject)
		require.False(t, c.Before.Allowed)
		require.Equal(t, "contributor", c.After.Role) // allowed, or denied for another reason (runs.transfer)
		if c.Action == "project.get" {
			get = &w.Decisions[i]
		}
	}
	require.NotNil(t, get)
	require.True(t, get.After.Allowed)
	require.True(t, get.Before.Has(rego.CodeRestricted), "%v", get.Before.Reasons)
	require.Equal(t, "contributor", get.After.Role)
	require.Empty(t, w.Settings)
	require.Empty(t, w.Admissions)

	d, err = eng.Authorize(ctx, req)
	require.NoError(t, err)
	require.False(t, d.Allowed)
	require.Equal(t, hits+1, eng.Stats().CacheHits, "the cached decision is still current")

	// JSON arrays are never null, even for a batch that changes nothing.
	w, err = eng.Simulate(ctx, store.PutTeam{Team: store.Team{Org: "acme", Name: "ml", Description: "x"}})
	require.NoError(t, err)
	require.JSONEq(t, `{"revision":1,"projects":[],"subjects":[],"pairs":0,"decisions":[],"settings":[],"admissions":[]}`, string(mustJSON(t, w)))
	w, err = eng.Simulate(ctx)
	require.NoError(t, err)
	require.Empty(t, w.Decisions)
}

// TestSimulateInvalidBatchIsApplysError: each invalid batch fails Simulate with the error Apply
// gives it, and changes nothing.
func TestSimulateInvalidBatchIsApplysError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		batch    []store.Change
		sentinel error
	}{
		{"unknown team", []store.Change{store.PutTeamMember{Org: "acme", Team: "nope", User: "bob", Role: "contributor"}}, teamgate.ErrNotFound},
		{"bad role in a batch", []store.Change{store.PutMember{Org: "acme", User: "carol", Role: "member"},
			store.PutTeamMember{Org: "acme", Team: "ml", User: "carol", Role: "king"}}, teamgate.ErrInvalid},
		{"team in use", []store.Change{store.DeleteTeam{Org: "acme", Name: "ml"}}, teamgate.ErrConflict},
		{"nil change", []store.Change{nil}, teamgate.ErrInvalid},
		{"unknown org", []store.Change{store.PutMember{Org: "nope", User: "bob", Role: "member"}}, teamgate.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			eng := whatIfFixture(t)
			_, simErr := eng.Simulate(t.Context(), tc.batch...)
			require.ErrorIs(t, simErr, tc.sentinel)
			_, applyErr := eng.Directory().Apply(t.Context(), tc.batch...)
			require.Equal(t, applyErr.Error(), simErr.Error())
			require.Equal(t, uint64(1), eng.Directory().Revision())
		})
	}
}

// TestSimulateIsNeverSeenByReaders: while batches that would allow bob are simulated over and
// over, concurrent readers only ever see the real directory (run with -race: the simulation
// shares nothing it changes with the store).
func TestSimulateIsNeverSeenByReaders(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	eng := whatIfFixture(t)
	st := eng.Directory().(*store.Store)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for range 200 {
				d, err := eng.Authorize(ctx, authz.Request{Subject: "bob", Action: "project.get", Resource: "acme/vision"})
				if err != nil || d.Allowed {
					t.Errorf("a reader saw the simulated batch: %+v %v", d, err)
					return
				}
				if err := st.View(func(r store.Reader) error {
					if _, ok := r.TeamRoles("acme", "bob").Role("ml"); ok {
						return errors.New("bob is in ml")
					}
					if _, ok := r.Project("acme", "lab"); ok {
						return errors.New("acme/lab exists")
					}
					return nil
				}); err != nil {
					t.Errorf("a reader saw the simulated batch: %v", err)
					return
				}
			}
		})
	}
	for range 50 {
		w, err := eng.Simulate(ctx,
			store.PutTeamMember{Org: "acme", Team: "ml", User: "bob", Role: "admin"},
			store.PutProject{Project: store.Project{Org: "acme", Name: "lab"}},
			store.PutOrg{Org: store.Org{Name: "acme", Queue: "gpu"}})
		require.NoError(t, err)
		require.NotEmpty(t, w.Decisions)
	}
	wg.Wait()
	require.Equal(t, uint64(1), st.Revision())
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// TestSimulateWithExpiringFacts: a what-if over an org holding expiring team memberships and
// grants (once made Simulate's views panic: they had no clock) equals applying the batch to a
// copy, at a time before the expiries and at one past them that the store has not yet written
// (both copies' clocks stand still: no revocation is written while the test reads).
func TestSimulateWithExpiringFacts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	open := func(clock store.Clock) *authz.Engine {
		st, err := store.Open(ctx, store.Options{Clock: clock})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		_, err = st.Apply(ctx,
			store.PutOrg{Org: store.Org{Name: "o"}},
			store.PutMember{Org: "o", User: "bob", Role: "member"},
			store.PutMember{Org: "o", User: "carl", Role: "member"},
			store.PutMember{Org: "o", User: "dave", Role: "viewer"},
			store.PutTeam{Team: store.Team{Org: "o", Name: "t"}},
			store.PutTeamMember{Org: "o", Team: "t", User: "bob", Role: "admin", ExpiresAt: expiryT0.Add(time.Hour)},
			store.PutTeamMember{Org: "o", Team: "t", User: "carl", Role: "contributor"},
			store.PutProject{Project: store.Project{Org: "o", Name: "p", Teams: []string{"t"}}},
			store.PutGrant{Org: "o", Project: "p", User: "dave", Grant: store.Grant{Role: "admin", ExpiresAt: expiryT0.Add(2 * time.Hour)}})
		require.NoError(t, err)
		eng, err := authz.New(ctx, st)
		require.NoError(t, err)
		return eng
	}
	users, projects := []string{"bob", "carl", "dave"}, []string{"p"}
	for _, at := range []time.Time{expiryT0, expiryT0.Add(90 * time.Minute)} {
		for i, batch := range [][]store.Change{
			{store.PutTeamMember{Org: "o", Team: "t", User: "carl", Role: "admin", ExpiresAt: expiryT0.Add(5 * time.Hour)}},
			{store.PutGrant{Org: "o", Project: "p", User: "bob", Grant: store.Grant{Role: "viewer", ExpiresAt: expiryT0.Add(3 * time.Hour)}}},
			{store.PutTeamMember{Org: "o", Team: "t", User: "bob", Role: "admin"}}, // renewed for good
			{store.DeleteGrant{Org: "o", Project: "p", User: "dave"}},
		} {
			// The engines' stores are opened at at (a stopped clock: an expired entry stays unrevoked).
			eng, copy := open(stoppedAt(at)), open(stoppedAt(at))
			got, err := eng.Simulate(ctx, batch...)
			require.NoError(t, err, "batch %d at %s", i, at)
			_, err = copy.Directory().Apply(ctx, batch...)
			require.NoError(t, err)
			want := bruteForceWhatIf(t, eng, copy, users, projects)
			require.Equal(t, stripRevisions(want), stripRevisions(got), "batch %d at %s", i, at)
		}
	}
}

// stoppedAt is a clock that stands at one instant and never fires.
type stoppedAt time.Time

func (c stoppedAt) Now() time.Time                     { return time.Time(c) }
func (stoppedAt) After(time.Duration) <-chan time.Time { return nil }

// TestSimulateOrgAndFileBatches: batches the random writes do not make — deleting and recreating
// the org, a team created and deleted, a whole data file or directory replacing the org, a new
// org — are simulated exactly (held: found by the issue 12 attack review).
func TestSimulateOrgAndFileBatches(t *testing.T) {
	t.Parallel()
	for seed := range uint64(2) {
		eng, users, _, projects := randomDirectory(t, seed)
		other, _, _, _ := randomDirectory(t, seed+100) // another directory: PutFile/PutDirectory of it
		var file *store.File
		require.NoError(t, other.Directory().View(func(r store.Reader) error { file = r.Snapshot(); return nil }))
		for i, batch := range [][]store.Change{
			{store.DeleteOrg{Name: "o"}},
			{store.PutTeam{Team: store.Team{Org: "o", Name: "new"}}, store.DeleteTeam{Org: "o", Name: "new"}},
			{store.PutFile{File: *file}},
			{store.PutDirectory{File: *file}},
			{store.PutOrg{Org: store.Org{Name: "o2"}}, store.PutMember{Org: "o2", User: "u1", Role: "owner"}},
			{store.DeleteOrg{Name: "o"}, store.PutOrg{Org: store.Org{Name: "o"}}, store.PutMember{Org: "o", User: "u1", Role: "owner"}},
		} {
			copy, _, _, _ := randomDirectory(t, seed)
			got, simErr := eng.Simulate(t.Context(), batch...)
			_, applyErr := copy.Directory().Apply(t.Context(), batch...)
			if applyErr != nil {
				require.Error(t, simErr)
				require.Equal(t, applyErr.Error(), simErr.Error())
				continue
			}
			require.NoError(t, simErr)
			want := bruteForceWhatIf(t, eng, copy, users, projects)
			require.Equal(t, stripRevisions(want), stripRevisions(got), fmt.Sprintf("seed %d batch %d", seed, i))
		}
	}
}
