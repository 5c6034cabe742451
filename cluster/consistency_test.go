package cluster_test

import (
	"context"
	"encoding/json"
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
	srv := startNATS(t)
	a := newNode(t, srv, openStore(t, ""), cluster.Options{})
	b := newNode(t, srv, openStore(t, ""), cluster.Options{})
	_, err := a.Apply(ctx, acmeFile(t))
	require.NoError(t, err)
	_, err = b.Sync(ctx)
	require.NoError(t, err)
	eb, err := authz.New(ctx, b)
	require.NoError(t, err)
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
	var last uint64
	for i := range writes {
		var c store.Change = store.PutMember{Org: "acme", User: "zed", Role: "owner"}
		if i%2 == 1 {
			c = store.DeleteMember{Org: "acme", User: "zed"}
		}
		last, err = a.Apply(ctx, c)
		require.NoError(t, err)
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
	srv := startNATS(t)
	a := newNode(t, srv, openStore(t, ""), cluster.Options{})
	b := newNode(t, srv, openStore(t, ""), cluster.Options{})
	_, err := a.Apply(ctx, acmeFile(t))
	require.NoError(t, err)
	_, err = b.Sync(ctx)
	require.NoError(t, err)
	ea, err := authz.New(ctx, a)
	require.NoError(t, err)
	eb, err := authz.New(ctx, b)
	require.NoError(t, err)
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
	ctx := testCtx(t)
	srv := startNATS(t)
	w := newNode(t, srv, openStore(t, ""), cluster.Options{SnapshotEvery: -1})
	_, err := w.Apply(ctx, acmeFile(t))
	require.NoError(t, err)
	var last uint64
	for i := range 5 {
		last, err = w.Apply(ctx, store.PutMember{Org: "acme", User: "g" + string(rune('a'+i)), Role: "member"})
		require.NoError(t, err)
	}
	js, err := jetstream.New(connect(t, srv))
	require.NoError(t, err)
	s, err := js.Stream(ctx, "TEAMGATE")
	require.NoError(t, err)
	require.NoError(t, s.DeleteMsg(ctx, 3))
	n := newNode(t, srv, openStore(t, ""), cluster.Options{})
	err = n.WaitRevision(ctx, last)
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
	ctx := testCtx(t)
	srv := startNATS(t)
	w := newNode(t, srv, openStore(t, ""), cluster.Options{SnapshotEvery: -1})
	_, err := w.Apply(ctx, acmeFile(t))
	require.NoError(t, err)
	js, err := jetstream.New(connect(t, srv))
	require.NoError(t, err)
	for i := range 3000 {
		body, _ := json.Marshal(store.Changes{store.PutMember{Org: "acme", User: fmt.Sprintf("c%d", i), Role: "member"}})
		_, err := js.PublishAsync("teamgate.TEAMGATE.batch", body)
		require.NoError(t, err)
	}
	<-js.PublishAsyncComplete()
	for _, at := range []uint64{0, 100, 1000} {
		st := openStore(t, t.TempDir())
		n, err := cluster.New(ctx, connect(t, srv), st, cluster.Options{})
		require.NoError(t, err)
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
	ctx := testCtx(t)
	srv := startNATS(t)
	w := newNode(t, srv, openStore(t, ""), cluster.Options{SnapshotEvery: -1})
	_, err := w.Apply(ctx, acmeFile(t))
	require.NoError(t, err)
	dir := t.TempDir()
	st, err := store.Open(ctx, store.Options{Dir: dir, NoSync: true})
	require.NoError(t, err)
	b, err := cluster.New(ctx, connect(t, srv), st, cluster.Options{})
	require.NoError(t, err)
	_, err = b.Sync(ctx)
	require.NoError(t, err)
	eb, err := authz.New(ctx, b)
	require.NoError(t, err)
	req := authz.Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision"}
	d, err := eb.Authorize(ctx, req)
	require.NoError(t, err)
	require.True(t, d.Allowed)
	require.NoError(t, b.Close())
	require.NoError(t, st.Close())

	last, err := w.Apply(ctx, store.DeleteMember{Org: "acme", User: "bob"})
	require.NoError(t, err)
	_, err = w.Apply(ctx, store.PutMember{Org: "acme", User: "filler", Role: "member"})
	require.NoError(t, err)
	snap, err := w.Snapshot(ctx)
	require.NoError(t, err)
	js, err := jetstream.New(connect(t, srv))
	require.NoError(t, err)
	s, err := js.Stream(ctx, "TEAMGATE")
	require.NoError(t, err)
	require.NoError(t, s.Purge(ctx, jetstream.WithPurgeSequence(snap+1)))

	st, err = store.Open(ctx, store.Options{Dir: dir, NoSync: true})
	require.NoError(t, err)
	defer st.Close()
	b, err = cluster.New(ctx, connect(t, srv), st, cluster.Options{})
	require.NoError(t, err)
	defer b.Close()
	eb, err = authz.New(ctx, b)
	require.NoError(t, err)
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
	ctx := testCtx(t)
	srv := startNATS(t)
	n := newNode(t, srv, openStore(t, ""), cluster.Options{Stream: "CANCEL"})
	_, err := n.Apply(ctx, acmeFile(t))
	require.NoError(t, err)
	entered, release := make(chan struct{}), make(chan struct{})
	first := true
	cluster.WrapPublish(n, func(next cluster.PublishFunc) cluster.PublishFunc {
		return func(pctx context.Context, data []byte, id string, base uint64) (*jetstream.PubAck, error) {
			if first {
				first = false
				close(entered)
				<-release
			}
			return next(pctx, data, id, base)
		}
	})
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err := n.Apply(ctx, store.PutMember{Org: "acme", User: "first", Role: "member"})
		require.NoError(t, err)
	})
	<-entered
	cctx, cancel := context.WithCancel(ctx)
	var cerr error
	returned := make(chan struct{})
	wg.Go(func() {
		defer close(returned)
		_, cerr = n.Apply(cctx, store.PutMember{Org: "acme", User: "cancelled", Role: "member"})
	})
	for cluster.Queued(n) != 1 {
		time.Sleep(time.Millisecond)
	}
	revs := make([]uint64, 5)
	for i := range revs {
		wg.Go(func() {
			u := fmt.Sprintf("ok%d", i)
			rev, err := n.Apply(ctx, store.PutMember{Org: "acme", User: u, Role: "member"})
			require.NoError(t, err)
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
	_, err = n.Sync(ctx)
	require.NoError(t, err)
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
	ctx := testCtx(t)
	srv := startNATS(t)
	b := newNode(t, srv, openStore(t, ""), cluster.Options{Stream: "RECREATED"})
	_, err := b.Apply(ctx, acmeFile(t))
	require.NoError(t, err)
	for _, u := range []string{"y1", "y2"} {
		_, err = b.Apply(ctx, store.PutMember{Org: "acme", User: u, Role: "member"})
		require.NoError(t, err)
	}
	js, err := jetstream.New(connect(t, srv))
	require.NoError(t, err)
	// Recreated at once, and written past b's revision before b's follower (which pauses at
	// least 50 ms after losing its stream) comes back.
	require.NoError(t, js.DeleteStream(ctx, "RECREATED"))
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "RECREATED", Subjects: []string{"teamgate.RECREATED.batch"}})
	require.NoError(t, err)
	acme, err := json.Marshal(store.Changes{acmeFile(t)})
	require.NoError(t, err)
	bodies := [][]byte{acme}
	for _, u := range []string{"x1", "x2", "x3", "x4"} {
		body, err := json.Marshal(store.Changes{store.PutMember{Org: "acme", User: u, Role: "member"}})
		require.NoError(t, err)
		bodies = append(bodies, body)
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
	n := newNode(t, srv, openStore(t, ""), cluster.Options{})
	rev, err := n.Apply(ctx, acmeFile(t))
	require.NoError(t, err)
	e, err := authz.New(ctx, n)
	require.NoError(t, err)
	w, err := e.Simulate(ctx, store.DeleteMember{Org: "acme", User: "bob"})
	require.NoError(t, err)
	require.Equal(t, rev, w.Revision)
	require.NotEmpty(t, w.Decisions)
	last, err := n.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, rev, last, "a simulation writes nothing")
}
