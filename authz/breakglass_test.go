package authz_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/clocktest"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

func TestBreakGlass(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clock := clocktest.New(expiryT0)
	st, err := store.Open(ctx, store.Options{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.Apply(ctx,
		store.PutOrg{Org: store.Org{Name: "a"}},
		store.PutMember{Org: "a", User: "adam", Role: "admin"},
		store.PutMember{Org: "a", User: "bob", Role: "member"},
		store.PutMember{Org: "a", User: "gina", Role: "admin"},
		store.PutTeam{Team: store.Team{Org: "a", Name: "t"}},
		store.PutTeam{Team: store.Team{Org: "a", Name: "u"}},
		store.PutProject{Project: store.Project{Org: "a", Name: "p", Teams: []string{"t"}}},
		store.PutGrant{Org: "a", Project: "p", User: "gina", Grant: store.Grant{Role: "viewer"}})
	require.NoError(t, err)
	eng, err := authz.New(ctx, st)
	require.NoError(t, err)
	stop := authz.Request{Subject: "adam", Action: "runs.delete", Resource: "a/p"}
	dec, err := eng.Authorize(ctx, stop)
	require.NoError(t, err)
	require.False(t, dec.Allowed)
	require.True(t, dec.Has(rego.CodeRestricted))

	rev := st.Revision()
	for _, tc := range []struct {
		name string
		req  authz.BreakGlassRequest
		err  error
	}{
		{"no justification", authz.BreakGlassRequest{Actor: "adam", Project: "a/p", Justification: "  "}, teamgate.ErrInvalid},
		{"too long", authz.BreakGlassRequest{Actor: "adam", Project: "a/p", Justification: "x", Duration: 25 * time.Hour}, teamgate.ErrInvalid},
		{"negative", authz.BreakGlassRequest{Actor: "adam", Project: "a/p", Justification: "x", Duration: -time.Second}, teamgate.ErrInvalid},
		{"bad role", authz.BreakGlassRequest{Actor: "adam", Project: "a/p", Justification: "x", Role: "root"}, teamgate.ErrInvalid},
		{"one-part project", authz.BreakGlassRequest{Actor: "adam", Project: "p", Justification: "x"}, teamgate.ErrInvalid},
		{"unknown project", authz.BreakGlassRequest{Actor: "adam", Project: "a/q", Justification: "x"}, teamgate.ErrNotFound},
		{"holds a grant", authz.BreakGlassRequest{Actor: "gina", Project: "a/p", Justification: "x"}, teamgate.ErrConflict},
		{"not in that team space", authz.BreakGlassRequest{Actor: "adam", Project: "a/u/p", Justification: "x"}, teamgate.ErrNotFound},
		{"huge justification", authz.BreakGlassRequest{Actor: "adam", Project: "a/p", Justification: strings.Repeat("x", store.MaxJustification+1)}, teamgate.ErrInvalid},
		{"forged second line", authz.BreakGlassRequest{Actor: "adam", Project: "a/p", Justification: "incident\nbob\ta/p\tnone -> admin"}, teamgate.ErrInvalid},
		{"terminal escape", authz.BreakGlassRequest{Actor: "adam", Project: "a/p", Justification: "ok\x1b[2K\x1b[1Ahidden"}, teamgate.ErrInvalid},
		{"bidi override", authz.BreakGlassRequest{Actor: "adam", Project: "a/p", Justification: "fix \u202etxt.exe"}, teamgate.ErrInvalid},
		{"not UTF-8", authz.BreakGlassRequest{Actor: "adam", Project: "a/p", Justification: "fix \xff"}, teamgate.ErrInvalid},
	} {
		_, err := eng.BreakGlass(ctx, tc.req)
		require.ErrorIs(t, err, tc.err, tc.name)
	}
	el, err := eng.BreakGlass(ctx, authz.BreakGlassRequest{Actor: "bob", Project: "a/p", Justification: "incident 42"})
	require.NoError(t, err, "an org member may not: a deny, not an error")
	require.False(t, el.Decision.Allowed)
	require.Equal(t, rev, st.Revision(), "nothing was written")

	el, err = eng.BreakGlass(ctx, authz.BreakGlassRequest{Actor: "adam", Project: "a/p", Justification: "incident 42: stuck runs", Duration: 30 * time.Minute})
	require.NoError(t, err)
	require.True(t, el.Decision.Allowed)
	require.Equal(t, authz.Elevation{Decision: el.Decision, Project: "a/p", Role: "admin", At: expiryT0,
		ExpiresAt: expiryT0.Add(30 * time.Minute), Revision: rev + 1}, el)
	require.NoError(t, st.View(func(r store.Reader) error {
		pv, _ := r.Project("a", "p")
		require.Equal(t, &store.BreakGlass{Actor: "adam", At: expiryT0, Justification: "incident 42: stuck runs"}, pv.Project.Grants["adam"].BreakGlass)
		return nil
	}))
	dec, err = eng.Authorize(ctx, stop)
	require.NoError(t, err)
	require.True(t, dec.Allowed)
	require.Equal(t, []authz.Reason{{Code: rego.CodeBreakGlass, Message: "adam has a break-glass admin grant on project a/p"}}, dec.Reasons)
	full, err := authz.New(ctx, st, authz.WithCompiledPath(false))
	require.NoError(t, err)
	dec2, err := full.Authorize(ctx, stop)
	require.NoError(t, err)
	require.Equal(t, dec.Reasons, dec2.Reasons, "full evaluation and the decision table agree")

	events, err := st.Watch(ctx, rev+1)
	require.NoError(t, err)
	clock.Advance(30 * time.Minute)
	dec, err = eng.Authorize(ctx, stop) // at expires_at: ended, written or not
	require.NoError(t, err)
	require.False(t, dec.Allowed)
	ev := <-events
	require.Equal(t, "expire_grant", ev.Kind)
	require.Equal(t, []string{"a/adam"}, ev.Subjects)
}

// TestEndBreakGlassAndElevations: elevations in force are listed with their holder, actor,
// role, times and justification until they end; whoever may make one (org.break_glass) may end
// anyone's in the org, an org member may not; ending removes only the elevation (never an
// ordinary grant), decisions follow at once, and the event keeps who ended it.
func TestEndBreakGlassAndElevations(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clock := clocktest.New(expiryT0)
	st, err := store.Open(ctx, store.Options{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.Apply(ctx,
		store.PutOrg{Org: store.Org{Name: "a"}},
		store.PutOrg{Org: store.Org{Name: "b"}},
		store.PutMember{Org: "a", User: "adam", Role: "admin"},
		store.PutMember{Org: "a", User: "bob", Role: "member"},
		store.PutMember{Org: "a", User: "gina", Role: "admin"},
		store.PutMember{Org: "b", User: "adam", Role: "owner"},
		store.PutTeam{Team: store.Team{Org: "a", Name: "t"}},
		store.PutProject{Project: store.Project{Org: "a", Name: "p", Teams: []string{"t"}}},
		store.PutProject{Project: store.Project{Org: "a", Name: "q", Teams: []string{"t"}}},
		store.PutProject{Project: store.Project{Org: "b", Name: "x"}},
		store.PutGrant{Org: "a", Project: "q", User: "gina", Grant: store.Grant{Role: "viewer"}})
	require.NoError(t, err)
	eng, err := authz.New(ctx, st)
	require.NoError(t, err)

	list, err := eng.Elevations(ctx)
	require.NoError(t, err)
	require.Equal(t, authz.ElevationList{Elevations: []authz.ActiveElevation{}, Revision: st.Revision(), Now: expiryT0}, list)
	for _, r := range []authz.BreakGlassRequest{
		{Actor: "gina", Project: "a/p", Justification: "INC-7", Duration: 2 * time.Hour},
		{Actor: "adam", Project: "a/p", Role: "contributor", Justification: "INC-7: stuck runs", Duration: 30 * time.Minute},
		{Actor: "adam", Project: "b/x", Justification: "INC-8"},
	} {
		el, err := eng.BreakGlass(ctx, r)
		require.NoError(t, err)
		require.True(t, el.Decision.Allowed)
	}
	list, err = eng.Elevations(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, []authz.ActiveElevation{
		{User: "adam", Actor: "adam", Project: "a/p", Role: "contributor", At: expiryT0, ExpiresAt: expiryT0.Add(30 * time.Minute), Justification: "INC-7: stuck runs"},
		{User: "gina", Actor: "gina", Project: "a/p", Role: "admin", At: expiryT0, ExpiresAt: expiryT0.Add(2 * time.Hour), Justification: "INC-7"},
	}, list.Elevations)
	list, err = eng.Elevations(ctx)
	require.NoError(t, err)
	require.Len(t, list.Elevations, 3)
	list, err = eng.Elevations(ctx, "a", "b", "a")
	require.NoError(t, err)
	require.Len(t, list.Elevations, 3, "an org named twice is listed once")
	_, err = eng.Elevations(ctx, "zz")
	require.ErrorIs(t, err, teamgate.ErrNotFound)
	_, err = eng.Elevations(ctx, "Bad Org")
	require.ErrorIs(t, err, teamgate.ErrInvalid)

	rev := st.Revision()
	for _, tc := range []struct {
		name string
		req  authz.EndBreakGlassRequest
		err  error
	}{
		{"ordinary grant", authz.EndBreakGlassRequest{Actor: "adam", Project: "a/q", User: "gina"}, teamgate.ErrConflict},
		{"no elevation", authz.EndBreakGlassRequest{Actor: "adam", Project: "a/q", User: "bob"}, teamgate.ErrNotFound},
		{"unknown project", authz.EndBreakGlassRequest{Actor: "adam", Project: "a/nope"}, teamgate.ErrNotFound},
		{"bad project", authz.EndBreakGlassRequest{Actor: "adam", Project: "p"}, teamgate.ErrInvalid},
		{"bad user", authz.EndBreakGlassRequest{Actor: "adam", Project: "a/p", User: "Not A Slug"}, teamgate.ErrInvalid},
	} {
		_, err := eng.EndBreakGlass(ctx, tc.req)
		require.ErrorIs(t, err, tc.err, tc.name)
	}
	ended, err := eng.EndBreakGlass(ctx, authz.EndBreakGlassRequest{Actor: "bob", Project: "a/p", User: "gina"})
	require.NoError(t, err, "an org member may not: a deny, not an error")
	require.False(t, ended.Decision.Allowed)
	require.Nil(t, ended.Elevation)
	require.Equal(t, rev, st.Revision(), "nothing was written")

	events, err := st.Watch(ctx, rev)
	require.NoError(t, err)
	clock.Advance(10 * time.Minute)
	ended, err = eng.EndBreakGlass(ctx, authz.EndBreakGlassRequest{Actor: "adam", Project: "a/p", User: "gina"})
	require.NoError(t, err)
	require.True(t, ended.Decision.Allowed)
	require.Equal(t, &authz.ActiveElevation{User: "gina", Actor: "gina", Project: "a/p", Role: "admin", At: expiryT0,
		ExpiresAt: expiryT0.Add(2 * time.Hour), Justification: "INC-7"}, ended.Elevation)
	require.Equal(t, expiryT0.Add(10*time.Minute), ended.EndedAt)
	require.Equal(t, rev+1, ended.Revision)
	ev := <-events
	require.Equal(t, "end_break_glass", ev.Kind)
	require.Equal(t, store.Changes{store.EndBreakGlass{Org: "a", Project: "p", User: "gina", ExpiresAt: expiryT0.Add(2 * time.Hour), By: "adam"}}, ev.Changes)
	d, err := eng.Authorize(ctx, authz.Request{Subject: "gina", Action: "runs.delete", Resource: "a/p"})
	require.NoError(t, err)
	require.False(t, d.Allowed, "an ended elevation opens nothing: %+v", d)
	_, err = eng.EndBreakGlass(ctx, authz.EndBreakGlassRequest{Actor: "adam", Project: "a/p", User: "gina"})
	require.ErrorIs(t, err, teamgate.ErrNotFound, "ended once")

	// The holder ends their own ("" = the actor); an elevation past its expiry is gone from the
	// listing at once, written or not.
	ended, err = eng.EndBreakGlass(ctx, authz.EndBreakGlassRequest{Actor: "adam", Project: "b/x"})
	require.NoError(t, err)
	require.Equal(t, "adam", ended.Elevation.User)
	clock.Advance(20 * time.Minute)
	list, err = eng.Elevations(ctx)
	require.NoError(t, err)
	require.Equal(t, []authz.ActiveElevation{}, list.Elevations)
	require.Equal(t, expiryT0.Add(30*time.Minute), list.Now)
	_, err = eng.EndBreakGlass(ctx, authz.EndBreakGlassRequest{Actor: "adam", Project: "a/p"})
	require.ErrorIs(t, err, teamgate.ErrNotFound, "expired: nothing left to end")
}
