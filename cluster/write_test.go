package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/cluster"
	"github.com/teamgate/teamgate/store"
)

// streamBatches reads every message of stream as its batch, in revision order.
func streamBatches(t *testing.T, ctx context.Context, srvURL, stream string) []store.Changes {
	t.Helper()
	nc, err := nats.Connect(srvURL)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	s, err := js.Stream(ctx, stream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	var out []store.Changes
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		msg, err := s.GetMsg(ctx, seq)
		require.NoError(t, err)
		var cs store.Changes
		require.NoError(t, json.Unmarshal(msg.Data, &cs))
		out = append(out, cs)
	}
	return out
}

// countMember is how often the stream's batches put user as a member.
func countMember(batches []store.Changes, user string) int {
	n := 0
	for _, b := range batches {
		for _, c := range b {
			if pm, ok := c.(store.PutMember); ok && pm.User == user {
				n++
			}
		}
	}
	return n
}

// TestWriterThatLosesManyRacesStillWrites: a node whose every publish, 40 times in a row, is
// overtaken by another node's write (what a node on a slower path to the stream leader met in
// the long server-loss test) still writes its batch: Apply retries for Options.WriteTimeout, not
// a count of attempts. (The count of 32 gave up with ErrConflict.)
func TestWriterThatLosesManyRacesStillWrites(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := startNATS(t)
	slow := newNode(t, srv, openStore(t, ""), cluster.Options{Stream: "LOSER"})
	fast := newNode(t, srv, openStore(t, ""), cluster.Options{Stream: "LOSER"})
	_, err := fast.Apply(ctx, acmeFile(t))
	require.NoError(t, err)
	const overtaken = 40
	calls := 0
	cluster.WrapPublish(slow, func(next cluster.PublishFunc) cluster.PublishFunc {
		return func(pctx context.Context, data []byte, id string, base uint64) (*jetstream.PubAck, error) {
			calls++
			if calls <= overtaken {
				if _, err := fast.Apply(ctx, store.PutMember{Org: "acme", User: fmt.Sprintf("fast%d", calls), Role: "member"}); err != nil {
					return nil, err
				}
			}
			return next(pctx, data, id, base)
		}
	})
	rev, err := slow.Apply(ctx, store.PutMember{Org: "acme", User: "slow", Role: "member"})
	require.NoError(t, err)
	require.Equal(t, overtaken+1, calls)
	require.Equal(t, uint64(1+overtaken+1), rev)
	require.Equal(t, 1, countMember(streamBatches(t, ctx, srv.URL(), "LOSER"), "slow"))
}

// TestLostAcknowledgementIsNotWrittenTwice: a publish whose acknowledgement is lost (it landed,
// or it did not) is settled without writing the batch twice: published again with the same id
// (JetStream answers with the revision it landed at), or recognized when the node applies it
// after the stream moved on.
func TestLostAcknowledgementIsNotWrittenTwice(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		land  bool // the lost publish was written
		moved bool // another node writes before the retry
	}{
		{"landed", true, false},
		{"landed, then the stream moved", true, true},
		{"not sent", false, false},
		{"not sent, then the stream moved", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			srv := startNATS(t)
			n := newNode(t, srv, openStore(t, ""), cluster.Options{Stream: "ACK"})
			other := newNode(t, srv, openStore(t, ""), cluster.Options{Stream: "ACK"})
			_, err := other.Apply(ctx, acmeFile(t))
			require.NoError(t, err)
			require.NoError(t, n.WaitRevision(ctx, 1))
			calls := 0
			var landedAt uint64
			cluster.WrapPublish(n, func(next cluster.PublishFunc) cluster.PublishFunc {
				return func(pctx context.Context, data []byte, id string, base uint64) (*jetstream.PubAck, error) {
					calls++
					if calls > 1 {
						return next(pctx, data, id, base)
					}
					if tc.land {
						ack, err := next(pctx, data, id, base)
						if err != nil {
							return nil, err
						}
						landedAt = ack.Sequence
					}
					if tc.moved {
						if _, err := other.Apply(ctx, store.PutMember{Org: "acme", User: "other", Role: "member"}); err != nil {
							return nil, err
						}
					}
					return nil, context.DeadlineExceeded // the acknowledgement never came
				}
			})
			rev, err := n.Apply(ctx, store.PutMember{Org: "acme", User: "once", Role: "member"})
			require.NoError(t, err)
			if tc.land {
				require.Equal(t, landedAt, rev)
			}
			batches := streamBatches(t, ctx, srv.URL(), "ACK")
			require.Equal(t, 1, countMember(batches, "once"))
			require.Equal(t, "once", batches[rev-1][0].(store.PutMember).User)
			require.GreaterOrEqual(t, n.Revision(), rev)
		})
	}
}

// TestConcurrentAppliesShareOneMessage: Applies queued on one node while its publish is in
// flight go out together as one message; each batch is validated on its own against the state
// the ones before it leave, so an invalid batch, or the second create of one project, fails
// alone and the others are written.
func TestConcurrentAppliesShareOneMessage(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := startNATS(t)
	n := newNode(t, srv, openStore(t, ""), cluster.Options{Stream: "GROUP"})
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
	type outcome struct {
		rev uint64
		err error
	}
	const writers = 12
	results := make([]outcome, writers+1)
	var wg sync.WaitGroup
	wg.Go(func() { // blocks the writer in its publish
		results[writers].rev, results[writers].err = n.Apply(ctx, store.PutMember{Org: "acme", User: "first", Role: "member"})
	})
	<-entered
	batch := func(i int) []store.Change {
		switch {
		case i == 3:
			return []store.Change{store.PutMember{Org: "acme", User: "bad", Role: "emperor"}}
		case i == 5, i == 6: // the same project twice: the first queued wins
			return []store.Change{store.CreateProject{Project: store.Project{Org: "acme", Name: "twice", CreatedBy: "alice"}, Team: "research"}}
		}
		return []store.Change{store.PutMember{Org: "acme", User: fmt.Sprintf("w%d", i), Role: "member"}}
	}
	for i := range writers {
		for cluster.Queued(n) != i && ctx.Err() == nil { // queue them in order
			time.Sleep(time.Millisecond)
		}
		wg.Go(func() { results[i].rev, results[i].err = n.Apply(ctx, batch(i)...) })
	}
	for cluster.Queued(n) != writers && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()

	require.NoError(t, results[writers].err)
	require.Equal(t, uint64(2), results[writers].rev)
	for i, r := range results[:writers] {
		switch i {
		case 3:
			require.ErrorIs(t, r.err, teamgate.ErrInvalid)
		case 6:
			require.ErrorIs(t, r.err, teamgate.ErrConflict)
		default:
			require.NoError(t, r.err, "writer %d", i)
			require.Equal(t, uint64(3), r.rev, "writer %d: one message for all", i)
		}
	}
	last, err := n.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(3), last)
	batches := streamBatches(t, ctx, srv.URL(), "GROUP")
	require.Len(t, batches[2], writers-2)
	require.NoError(t, n.View(func(r store.Reader) error {
		_, ok := r.Project("acme", "twice")
		require.True(t, ok)
		_, ok = r.OrgRole("acme", "w11")
		require.True(t, ok)
		return nil
	}))
	// Another node replays the group as one batch to the same directory.
	follower := newNode(t, srv, openStore(t, ""), cluster.Options{Stream: "GROUP"})
	_, err = follower.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, export(t, n.Store()), export(t, follower.Store()))
}

// TestBatchOverTheStreamLimitIsInvalid: a batch larger than a message of the stream carries (the
// operator's MaxMsgSize, or the server's max payload) is ErrInvalid before anything is
// published.
func TestBatchOverTheStreamLimitIsInvalid(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := startNATS(t)
	js, err := jetstream.New(connect(t, srv))
	require.NoError(t, err)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "SMALL", Subjects: []string{"teamgate.SMALL.batch"},
		Storage: jetstream.FileStorage, MaxMsgSize: 8 << 10})
	require.NoError(t, err)
	small := newNode(t, srv, openStore(t, ""), cluster.Options{Stream: "SMALL"})
	big := newNode(t, srv, openStore(t, ""), cluster.Options{Stream: "BIG"})
	for _, n := range []*cluster.Node{small, big} {
		_, err := n.Apply(ctx, store.PutOrg{Org: store.Org{Name: "acme"}})
		require.NoError(t, err)
	}
	members := func(k int) []store.Change {
		var cs []store.Change
		for i := range k {
			cs = append(cs, store.PutMember{Org: "acme", User: fmt.Sprintf("user-%06d", i), Role: "member"})
		}
		return cs
	}
	for _, tc := range []struct {
		name string
		n    *cluster.Node
		k    int
	}{
		{"stream MaxMsgSize", small, 200},
		{"server max payload", big, 20_000},
	} {
		_, err := tc.n.Apply(ctx, members(tc.k)...)
		require.ErrorIs(t, err, teamgate.ErrInvalid, tc.name)
		require.ErrorContains(t, err, "split it", tc.name)
		require.Equal(t, uint64(1), tc.n.Revision(), tc.name)
	}
	rev, err := small.Apply(ctx, members(20)...)
	require.NoError(t, err, "a batch that fits is written")
	require.Equal(t, uint64(2), rev)
}

// TestForeignMessages: the stream is the order of writes, whoever publishes: a well-formed batch
// a foreign writer publishes (with headers of its own) is applied by every node; a rollup
// header, which would purge the history, is refused by the stream; the nodes' writes go on.
func TestForeignMessages(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := startNATS(t)
	a := newNode(t, srv, openStore(t, ""), cluster.Options{Stream: "FOREIGN"})
	b := newNode(t, srv, openStore(t, ""), cluster.Options{Stream: "FOREIGN"})
	_, err := a.Apply(ctx, acmeFile(t))
	require.NoError(t, err)
	nc := connect(t, srv)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	body, err := json.Marshal(store.Changes{store.PutMember{Org: "acme", User: "foreign", Role: "member"}})
	require.NoError(t, err)

	msg := nats.NewMsg("teamgate.FOREIGN.batch")
	msg.Data = body
	msg.Header.Set("Nats-Rollup", "all")
	_, err = js.PublishMsg(ctx, msg)
	require.Error(t, err, "a rollup would purge every revision before it")

	msg = nats.NewMsg("teamgate.FOREIGN.batch")
	msg.Data = body
	msg.Header.Set(jetstream.MsgIDHeader, "not-a-node.2.x")
	msg.Header.Set("X-Anything", strings.Repeat("z", 100))
	ack, err := js.PublishMsg(ctx, msg)
	require.NoError(t, err)
	require.Equal(t, uint64(2), ack.Sequence)
	rev, err := b.Apply(ctx, store.PutMember{Org: "acme", User: "after", Role: "member"})
	require.NoError(t, err)
	require.Equal(t, uint64(3), rev)
	require.NoError(t, a.WaitRevision(ctx, rev))
	require.Equal(t, export(t, a.Store()), export(t, b.Store()))
	require.Contains(t, export(t, a.Store()), "foreign")
}

// TestCloseWhileWritesAreInFlight: closing a node while many Applies are queued or publishing
// returns, and every Apply returns: a revision (then the batch is in the stream), or ErrClosed
// (saying whether the batch may have been written). Nothing hangs; later Applies are ErrClosed.
func TestCloseWhileWritesAreInFlight(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := startNATS(t)
	n := newNode(t, srv, openStore(t, ""), cluster.Options{Stream: "CLOSING"})
	watcher := newNode(t, srv, openStore(t, ""), cluster.Options{Stream: "CLOSING"})
	_, err := n.Apply(ctx, acmeFile(t))
	require.NoError(t, err)
	var mu sync.Mutex
	acked := map[string]uint64{}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for k := 0; ; k++ {
				user := fmt.Sprintf("w%d-%d", w, k)
				rev, err := n.Apply(ctx, store.PutMember{Org: "acme", User: user, Role: "member"})
				if err != nil {
					if !errors.Is(err, teamgate.ErrClosed) {
						t.Errorf("writer %d: %v", w, err)
					}
					return
				}
				mu.Lock()
				acked[user] = rev
				mu.Unlock()
			}
		})
	}
	for n.Revision() < 20 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, n.Close())
	wg.Wait()
	_, err = n.Apply(ctx, store.PutMember{Org: "acme", User: "late", Role: "member"})
	require.ErrorIs(t, err, teamgate.ErrClosed)
	_, err = watcher.Sync(ctx)
	require.NoError(t, err)
	require.NoError(t, watcher.View(func(r store.Reader) error {
		for user := range acked {
			_, ok := r.OrgRole("acme", user)
			require.True(t, ok, "acknowledged write of %s", user)
		}
		return nil
	}))
}

// TestStoreWithAnotherHistoryIsRefused: New refuses a store whose history is not the stream's
// (a standalone store with writes of its own, a node's store of another stream at a revision
// this stream also has) and a store another node already runs on; the refused store is left as
// it was. A node's store of this stream resumes.
func TestStoreWithAnotherHistoryIsRefused(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := startNATS(t)
	writer := newNode(t, srv, openStore(t, ""), cluster.Options{Stream: "HIST"})
	_, err := writer.Apply(ctx, acmeFile(t))
	require.NoError(t, err)
	for i := range 3 {
		_, err := writer.Apply(ctx, store.PutMember{Org: "acme", User: fmt.Sprintf("u%d", i), Role: "member"})
		require.NoError(t, err)
	}

	standalone := openStore(t, "")
	_, err = standalone.Apply(ctx, store.PutOrg{Org: store.Org{Name: "mine"}})
	require.NoError(t, err)
	_, err = cluster.New(ctx, connect(t, srv), standalone, cluster.Options{Stream: "HIST"})
	require.ErrorIs(t, err, teamgate.ErrConflict)
	require.ErrorContains(t, err, "another history")
	_, err = standalone.Apply(ctx, store.PutOrg{Org: store.Org{Name: "still-mine"}})
	require.NoError(t, err, "a refused store is not replicated")

	// A node's on-disk store of another stream, at revision 2 (which HIST has too).
	dir := t.TempDir()
	st, err := store.Open(ctx, store.Options{Dir: dir, NoSync: true})
	require.NoError(t, err)
	other := newNode(t, srv, st, cluster.Options{Stream: "OTHER"})
	_, err = other.Apply(ctx, store.PutOrg{Org: store.Org{Name: "other"}})
	require.NoError(t, err)
	_, err = other.Apply(ctx, store.PutOrg{Org: store.Org{Name: "other2"}})
	require.NoError(t, err)
	require.NoError(t, other.Close())
	require.NoError(t, st.Close())
	st = openStore(t, dir)
	_, err = cluster.New(ctx, connect(t, srv), st, cluster.Options{Stream: "HIST"})
	require.ErrorIs(t, err, teamgate.ErrConflict)
	require.ErrorContains(t, err, "another history")
	resumed := newNode(t, srv, st, cluster.Options{Stream: "OTHER"})
	require.Equal(t, uint64(2), resumed.Revision())

	// One store, two nodes.
	shared := openStore(t, "")
	newNode(t, srv, shared, cluster.Options{Stream: "HIST"})
	_, err = cluster.New(ctx, connect(t, srv), shared, cluster.Options{Stream: "HIST"})
	require.ErrorIs(t, err, teamgate.ErrConflict)
	// One directory, two stores: Badger locks the directory.
	_, err = store.Open(ctx, store.Options{Dir: dir})
	require.Error(t, err)
}
