package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/cluster"
	"github.com/teamgate/teamgate/store"
)

// TestFollowerDecisionsHoldAtTheirRevision: while a follower applies another node's writes,
// its decisions and listings hold at the revision they name (zed is an org owner at even
// revisions and no member at odd ones), and a cached decision flips as soon as the follower has
// applied the write, without MinRevision. Several readers share the follower's decision cache:
// one that read the revision before a write was served a decision another cached after it,
// labelled with the older revision, at which it did not hold.
func TestFollowerDecisionsHoldAtTheirRevision(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	a, b := seededPair(t, ctx)
	eb := newEngine(t, ctx, b)
	const writes = 60
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				d, err := eb.Authorize(ctx, authz.Request{Subject: "zed", Action: "runs.get", Resource: "acme/vision"})
				require.NoError(t, err)
				require.Equal(t, d.Revision%2 == 0, d.Allowed, "decision at revision %d: %+v", d.Revision, d)
				p, err := eb.ListProjects(ctx, "zed", "acme/engineering", authz.Page{})
				if err == nil {
					require.Equal(t, p.Revision%2 == 0, len(p.Projects) > 0, "list at revision %d: %+v", p.Revision, p)
				}
				_, err = eb.EffectiveSettings(ctx, "acme/vision", "zed")
				require.NoError(t, err)
			}
		})
	}
	for i := range writes {
		var c store.Change = store.PutMember{Org: "acme", User: "zed", Role: "owner"}
		if i%2 == 1 {
			c = store.DeleteMember{Org: "acme", User: "zed"}
		}
		last := mustApply(t, ctx, a, c)
		// B flips right after it applies A's write, without MinRevision.
		require.NoError(t, b.WaitRevision(ctx, last))
		d, err := eb.Authorize(ctx, authz.Request{Subject: "zed", Action: "runs.get", Resource: "acme/vision"})
		require.NoError(t, err)
		require.Equal(t, last%2 == 0, d.Allowed, "after %d: %+v", last, d)
	}
	close(done)
	wg.Wait()
}

// TestCreateProjectRaceOnTwoNodes: the same project created at once on two nodes: exactly
// one wins, the other gets ErrConflict.
func TestCreateProjectRaceOnTwoNodes(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	a, b := seededPair(t, ctx)
	ea, eb := newEngine(t, ctx, a), newEngine(t, ctx, b)
	for i := range 20 {
		name := "race" + string(rune('a'+i))
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for j, e := range []*authz.Engine{ea, eb} {
			wg.Go(func() {
				c, err := e.CreateProject(ctx, "vera", "acme/research", authz.NewProject{Name: name})
				if err == nil && !c.Decision.Allowed {
					err = teamgate.ErrInvalid
				}
				errs[j] = err
			})
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			if err == nil {
				wins++
			} else {
				require.ErrorIs(t, err, teamgate.ErrConflict)
			}
		}
		require.Equal(t, 1, wins, "%v", errs)
	}
}

// TestDeletedMessageStopsFollower: a message deleted from the middle of the stream (a
// revision gap, no snapshot) stops a new node's follower before the gap; it never skips it.
func TestDeletedMessageStopsFollower(t *testing.T) {
	t.Parallel()
	ctx, srv, w := seededNode(t, cluster.Options{SnapshotEvery: -1})
	var last uint64
	for i := range 5 {
		last = mustApply(t, ctx, w, member("g"+string(rune('a'+i))))
	}
	require.NoError(t, openStream(t, ctx, jetStream(t, srv), "TEAMGATE").DeleteMsg(ctx, 3))
	n := memNode(t, srv, cluster.Options{})
	err := n.WaitRevision(ctx, last)
	require.ErrorIs(t, err, teamgate.ErrStale)
	var fe *cluster.FollowerError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, uint64(3), fe.Revision)
	require.ErrorContains(t, err, "no snapshot")
	require.Equal(t, uint64(2), n.Revision())
}

// TestCloseDuringCatchUp: Close while a node catches up on a long stream returns, and leaves
// a consistent store at a revision of the stream.
func TestCloseDuringCatchUp(t *testing.T) {
	t.Parallel()
	ctx, srv, _ := seededNode(t, cluster.Options{SnapshotEvery: -1})
	js := jetStream(t, srv)
	for i := range 3000 {
		_, err := js.PublishAsync("teamgate.TEAMGATE.batch", batchBody(t, member(fmt.Sprintf("c%d", i))))
		require.NoError(t, err)
	}
	<-js.PublishAsyncComplete()
	for _, at := range []uint64{0, 100, 1000} {
		st := openStore(t, t.TempDir())
		n := newNode(t, srv, st, cluster.Options{})
		for st.Revision() < at && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		require.NoError(t, n.Close())
		require.ErrorIs(t, n.Close(), teamgate.ErrClosed)
		require.NoError(t, st.Check())
		require.LessOrEqual(t, st.Revision(), uint64(3001))
	}
}

// TestBootstrapFlipsCachedDecision: an on-disk node with a persistent decision cache, restarted
// after the stream was trimmed past it, bootstraps from the snapshot and its cached decision
// flips. (Under -race it also found Store.Close racing the cache's background commits.)
func TestBootstrapFlipsCachedDecision(t *testing.T) {
	t.Parallel()
	ctx, srv, w := seededNode(t, cluster.Options{SnapshotEvery: -1})
	dir := t.TempDir()
	st := openStore(t, dir)
	b := newNode(t, srv, st, cluster.Options{})
	mustSync(t, ctx, b)
	eb := newEngine(t, ctx, b)
	req := authz.Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision"}
	d, err := eb.Authorize(ctx, req)
	require.NoError(t, err)
	require.True(t, d.Allowed)
	require.NoError(t, b.Close())
	require.NoError(t, st.Close())

	last := mustApply(t, ctx, w, store.DeleteMember{Org: "acme", User: "bob"})
	mustApply(t, ctx, w, member("filler"))
	snap, err := w.Snapshot(ctx)
	require.NoError(t, err)
	s := openStream(t, ctx, jetStream(t, srv), "TEAMGATE")
	require.NoError(t, s.Purge(ctx, jetstream.WithPurgeSequence(snap+1)))

	st = openStore(t, dir)
	b = newNode(t, srv, st, cluster.Options{})
	eb = newEngine(t, ctx, b)
	d, err = eb.Authorize(ctx, authz.Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision", MinRevision: last})
	require.NoError(t, err)
	require.False(t, d.Allowed, "%+v", d)
	require.Equal(t, snap, b.Stats().Snapshot)
}

// TestCancelledCallerLeavesItsGroup: a caller whose context ends while its batch is queued
// gets an error saying it was not written, and it is not; the others of the group are written
// and each reads its own write.
func TestCancelledCallerLeavesItsGroup(t *testing.T) {
	t.Parallel()
	ctx, _, n := seededNode(t, cluster.Options{Stream: "CANCEL"})
	entered, release := holdFirstPublish(n)
	var wg sync.WaitGroup
	wg.Go(func() { mustApply(t, ctx, n, member("first")) })
	<-entered
	cctx, cancel := context.WithCancel(ctx)
	var cerr error
	returned := make(chan struct{})
	wg.Go(func() {
		defer close(returned)
		_, cerr = n.Apply(cctx, member("cancelled"))
	})
	for cluster.Queued(n) != 1 {
		time.Sleep(time.Millisecond)
	}
	revs := make([]uint64, 5)
	for i := range revs {
		wg.Go(func() {
			u := fmt.Sprintf("ok%d", i)
			rev := mustApply(t, ctx, n, member(u))
			require.NoError(t, n.View(func(r store.Reader) error {
				require.GreaterOrEqual(t, r.Revision(), rev)
				_, ok := r.OrgRole("acme", u)
				require.True(t, ok, "read-your-writes for %s", u)
				return nil
			}))
			revs[i] = rev
		})
	}
	for cluster.Queued(n) != 6 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-returned
	close(release)
	wg.Wait()
	require.ErrorIs(t, cerr, context.Canceled)
	require.Contains(t, cerr.Error(), "not written")
	mustSync(t, ctx, n)
	require.NoError(t, n.View(func(r store.Reader) error {
		_, ok := r.OrgRole("acme", "cancelled")
		require.False(t, ok)
		return nil
	}))
}

// TestStreamRecreatedUnderARunningNode: the stream deleted and recreated with another history
// while a node runs. nats.go's ordered consumer recreated itself on the new stream and the node
// applied its revisions 4 and 5 on top of its own 1 to 3: a directory no other node has. Now
// its follower stops with a FollowerError at its revision.
func TestStreamRecreatedUnderARunningNode(t *testing.T) {
	t.Parallel()
	ctx, srv, b := seededNode(t, cluster.Options{Stream: "RECREATED"})
	for _, u := range []string{"y1", "y2"} {
		mustApply(t, ctx, b, member(u))
	}
	js := jetStream(t, srv)
	// Recreated at once, and written past b's revision before b's follower (which pauses at
	// least 50 ms after losing its stream) comes back.
	require.NoError(t, js.DeleteStream(ctx, "RECREATED"))
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RECREATED", Subjects: []string{"teamgate.RECREATED.batch"}})
	require.NoError(t, err)
	bodies := [][]byte{batchBody(t, acmeFile(t))}
	for _, u := range []string{"x1", "x2", "x3", "x4"} {
		bodies = append(bodies, batchBody(t, member(u)))
	}
	var last uint64
	for _, body := range bodies {
		ack, err := js.Publish(ctx, "teamgate.RECREATED.batch", body)
		require.NoError(t, err)
		last = ack.Sequence
	}
	err = b.WaitRevision(ctx, last)
	var fe *cluster.FollowerError
	require.ErrorAs(t, err, &fe, "b applied another history: %s", export(t, b.Store()))
	require.Equal(t, uint64(3), b.Revision())
}

// TestSimulateOnANode: an engine on a node simulates a batch (what-if) against the node's state
// and writes nothing; it used to fail with ErrInvalid (the node was no authz.Simulator), and so
// did `teamgate whatif --nats`.
func TestSimulateOnANode(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := startNATS(t)
	n := memNode(t, srv, cluster.Options{})
	rev := mustApply(t, ctx, n, acmeFile(t))
	w, err := newEngine(t, ctx, n).Simulate(ctx, store.DeleteMember{Org: "acme", User: "bob"})
	require.NoError(t, err)
	require.Equal(t, rev, w.Revision)
	require.NotEmpty(t, w.Decisions)
	require.Equal(t, rev, mustSync(t, ctx, n), "a simulation writes nothing")
}
