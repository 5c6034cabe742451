package store_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/store"
)

// TestReplicaFollowsWatch: a replica applies a primary's events as they stream and ends with the
// same state at the same revision, through loads, random writes and failed writes.
func TestReplicaFollowsWatch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	primary, err := store.Open(ctx, store.Options{})
	require.NoError(t, err)
	defer primary.Close()
	replica, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	require.NoError(t, err)
	defer replica.Close()

	events, err := primary.Watch(ctx, 0)
	require.NoError(t, err)
	followed := make(chan error, 1)
	go func() {
		for ev := range events {
			if _, err := replica.ApplyEvent(ctx, ev); err != nil {
				followed <- err
				return
			}
		}
		followed <- nil
	}()

	_, err = primary.LoadFile(ctx, acme)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	users := []string{"alice", "bob", "vera", "olga", "newbie"}
	for i := range 200 {
		u := users[rng.IntN(len(users))]
		var c store.Change
		switch rng.IntN(5) {
		case 0:
			c = store.PutMember{Org: "acme", User: u, Role: pickRole(rng, store.OrgRoles())}
		case 1:
			c = store.PutTeamMember{Org: "acme", Team: "research", User: u, Role: pickRole(rng, store.TeamRoles())}
		case 2:
			c = store.PutGrant{Org: "acme", Project: "open", User: u, Grant: store.Grant{Role: "viewer", Queue: "cpu/x"}}
		case 3:
			c = store.PutPolicy{Policy: store.Policy{Org: "acme", Name: "research-only", Settings: policy.Settings{
				Teams: []string{"research"}, ArchivedDeletionInterval: i,
				Rules: []policy.Rule{{Name: "r", Expression: "run.kind != 'service'", Message: fmt.Sprint(i)}}}}}
		default:
			c = store.DeleteMember{Org: "acme", User: u}
		}
		_, _ = primary.Apply(ctx, c) // failed writes produce no event
	}
	require.NoError(t, replica.WaitRevision(ctx, primary.Revision()))
	cancel()
	require.NoError(t, <-followed)

	var a, b bytes.Buffer
	require.NoError(t, primary.Export(t.Context(), &a))
	require.NoError(t, replica.Export(t.Context(), &b))
	require.Equal(t, a.String(), b.String())
	require.Equal(t, primary.Revision(), replica.Revision())
	require.NoError(t, replica.Check())
}

func TestApplyEventRejectsGapsAndTruncation(t *testing.T) {
	t.Parallel()
	s, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	defer s.Close()
	ev := store.Event{Revision: 2, Changes: store.Changes{store.PutOrg{Org: store.Org{Name: "x"}}}}
	_, err = s.ApplyEvent(t.Context(), ev)
	require.ErrorIs(t, err, teamgate.ErrConflict, "the store is at 0, the event follows 1")
	_, err = s.ApplyEvent(t.Context(), store.Event{Revision: 1, Truncated: true})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	ev.Revision = 1
	rev, err := s.ApplyEvent(t.Context(), ev)
	require.NoError(t, err)
	require.Equal(t, uint64(1), rev)

	var cs store.Changes
	require.ErrorIs(t, cs.UnmarshalJSON([]byte(`[{"kind":"launch_rocket","change":{}}]`)), teamgate.ErrInvalid)
}

func pickRole(rng *rand.Rand, roles []string) string { return roles[rng.IntN(len(roles))] }
