package authz_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/clocktest"
	"github.com/teamgate/teamgate/internal/expirytest"
	"github.com/teamgate/teamgate/store"
)

var expiryT0 = expirytest.Start()

// TestDecisionNeverAllowsAfterExpiry: concurrent Authorize calls through the decision cache
// (L1, and L2 on disk) while the clock moves past the expiries in random steps. A call that
// starts at or after an entry's expires_at never allows through it, whether the store has
// written the revocation yet (a store) or never writes it (a replica, whose node expires).
func TestDecisionNeverAllowsAfterExpiry(t *testing.T) {
	t.Parallel()
	for _, disk := range []bool{false, true} {
		for _, held := range []bool{false, true} {
			t.Run(fmt.Sprintf("disk %v held %v", disk, held), func(t *testing.T) {
				t.Parallel()
				decisionsAcrossExpiries(t, disk, held)
			})
		}
	}
}

func decisionsAcrossExpiries(t *testing.T, disk, held bool) {
	ctx := t.Context()
	clock := clocktest.New(expiryT0)
	opts := store.Options{Clock: clock, NoSync: true}
	if disk {
		opts.Dir = t.TempDir()
	}
	st, err := store.Open(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.Apply(ctx, expirytest.Org()...)
	require.NoError(t, err)
	if held {
		_, err = st.Replicate()
		require.NoError(t, err)
	}
	eng, err := authz.New(ctx, st)
	require.NoError(t, err)

	ends := map[string]time.Time{"bob": expiryT0.Add(time.Hour), "dave": expiryT0.Add(2 * time.Hour)}
	actions := []string{"runs.stop", "runs.delete", "project.get"}
	var mu sync.Mutex
	var failures []string
	var reads atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				reads.Add(1)
				user, a := []string{"bob", "dave", "carl"}[i%3], (i/3)%len(actions)
				before := clock.Now()
				dec, err := eng.Authorize(ctx, authz.Request{Subject: user, Action: actions[a], Resource: "a/p"})
				end, expires := ends[user]
				if err != nil || (expires && !before.Before(end) && dec.Allowed) || (user == "carl" && dec.Allowed == (actions[a] == "runs.delete")) {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s %s at %v: %+v %v", user, actions[a], before, dec, err))
					mu.Unlock()
				}
			}
		})
	}
	rng := rand.New(rand.NewPCG(3, 5))
	for clock.Now().Before(expiryT0.Add(150 * time.Minute)) {
		clock.Advance(time.Duration(1+rng.IntN(600)) * time.Second)
		for seen := reads.Load(); reads.Load() < seen+48; { // let the callers meet this time
			runtime.Gosched()
		}
	}
	close(done)
	wg.Wait()
	require.Empty(t, failures)
	for _, user := range []string{"bob", "dave"} {
		dec, err := eng.Authorize(ctx, authz.Request{Subject: user, Action: "project.get", Resource: "a/p"})
		require.NoError(t, err)
		require.False(t, dec.Allowed, user)
	}
}

// TestDecisionCachedOnDiskEndsAtExpiry: a decision cached in Badger before a restart is never
// served after its entry expired: a store revokes overdue entries in Open, and a replica (which
// leaves the write to its node) finds the expiry in the cached decision's Deps.
func TestDecisionCachedOnDiskEndsAtExpiry(t *testing.T) {
	t.Parallel()
	for _, held := range []bool{false, true} {
		t.Run(fmt.Sprintf("held %v", held), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			dir := t.TempDir()
			st, err := store.Open(ctx, store.Options{Dir: dir, NoSync: true, Clock: clocktest.New(expiryT0)})
			require.NoError(t, err)
			_, err = st.Apply(ctx, expirytest.Org()...)
			require.NoError(t, err)
			if held {
				_, err = st.Replicate()
				require.NoError(t, err)
			}
			rev := st.Revision()
			eng, err := authz.New(ctx, st)
			require.NoError(t, err)
			for _, user := range []string{"bob", "dave"} {
				dec, err := eng.Authorize(ctx, authz.Request{Subject: user, Action: "runs.delete", Resource: "a/p"})
				require.NoError(t, err)
				require.True(t, dec.Allowed, user)
			}
			require.NoError(t, st.Close())

			st, err = store.Open(ctx, store.Options{Dir: dir, NoSync: true, Clock: clocktest.New(expiryT0.Add(3 * time.Hour))})
			require.NoError(t, err)
			t.Cleanup(func() { _ = st.Close() })
			if held {
				require.Equal(t, rev, st.Revision(), "a replica's revocations are its node's to write")
			} else {
				require.Equal(t, rev+1, st.Revision(), "Open revoked what fell due while closed")
			}
			eng, err = authz.New(ctx, st)
			require.NoError(t, err)
			for _, user := range []string{"bob", "dave"} {
				dec, err := eng.Authorize(ctx, authz.Request{Subject: user, Action: "runs.delete", Resource: "a/p"})
				require.NoError(t, err)
				require.False(t, dec.Allowed, user)
			}
		})
	}
}
