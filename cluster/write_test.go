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
	"github.com/teamgate/teamgate/cluster/embedded"
	"github.com/teamgate/teamgate/store"
)

// streamBatches reads every message of stream as its batch, in revision order.
func streamBatches(t *testing.T, ctx context.Context, srv *embedded.Server, stream string) []store.Changes {
	t.Helper()
	s := openStream(t, ctx, jetStream(t, srv), stream)
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
	slow := memNode(t, srv, cluster.Options{Stream: "LOSER"})
	fast := memNode(t, srv, cluster.Options{Stream: "LOSER"})
	mustApply(t, ctx, fast, acmeFile(t))
	const overtaken = 40
	calls := 0
	cluster.WrapPublish(slow, func(next cluster.PublishFunc) cluster.PublishFunc {
		return func(pctx context.Context, data []byte, id string, base uint64) (*jetstream.PubAck, error) {
			calls++
			if calls <= overtaken {
				if _, err := fast.Apply(ctx, member(fmt.Sprintf("fast%d", calls))); err != nil {
					return nil, err
				}
			}
			return next(pctx, data, id, base)
		}
	})
	rev := mustApply(t, ctx, slow, member("slow"))
	require.Equal(t, overtaken+1, calls)
	require.Equal(t, uint64(1+overtaken+1), rev)
	require.Equal(t, 1, countMember(streamBatches(t, ctx, srv, "LOSER"), "slow"))
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
			n := memNode(t, srv, cluster.Options{Stream: "ACK"})
			other := memNode(t, srv, cluster.Options{Stream: "ACK"})
			mustApply(t, ctx, other, acmeFile(t))
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
						if _, err := other.Apply(ctx, member("other")); err != nil {
							return nil, err
						}
					}
					return nil, context.DeadlineExceeded // the acknowledgement never came
				}
			})
			rev := mustApply(t, ctx, n, member("once"))
			if tc.land {
				require.Equal(t, landedAt, rev)
			}
			batches := streamBatches(t, ctx, srv, "ACK")
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
	ctx, srv, n := seededNode(t, cluster.Options{Stream: "GROUP"})
	entered, release := holdFirstPublish(n)
	type outcome struct {
		rev uint64
		err error
	}
	const writers = 12
	results := make([]outcome, writers+1)
	var wg sync.WaitGroup
	wg.Go(func() { // blocks the writer in its publish
		results[writers].rev, results[writers].err = n.Apply(ctx, member("first"))
	})
	<-entered
	batch := func(i int) []store.Change {
		switch {
		case i == 3:
			return []store.Change{store.PutMember{Org: "acme", User: "bad", Role: "emperor"}}
		case i == 5, i == 6: // the same project twice: the first queued wins
			return []store.Change{store.CreateProject{Project: store.Project{Org: "acme", Name: "twice", CreatedBy: "alice"}, Team: "research"}}
		}
		return []store.Change{member(fmt.Sprintf("w%d", i))}
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
	require.Equal(t, uint64(3), mustSync(t, ctx, n))
	batches := streamBatches(t, ctx, srv, "GROUP")
	require.Len(t, batches[2], writers-2)
	require.NoError(t, n.View(func(r store.Reader) error {
		_, ok := r.Project("acme", "twice")
		require.True(t, ok)
		_, ok = r.OrgRole("acme", "w11")
		require.True(t, ok)
		return nil
	}))
	// Another node replays the group as one batch to the same directory.
	follower := memNode(t, srv, cluster.Options{Stream: "GROUP"})
	mustSync(t, ctx, follower)
	require.Equal(t, export(t, n.Store()), export(t, follower.Store()))
}

// TestBatchOverTheStreamLimitIsInvalid: a batch larger than a message of the stream carries (the
// operator's MaxMsgSize, or the server's max payload) is ErrInvalid before anything is
// published.
func TestBatchOverTheStreamLimitIsInvalid(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := startNATS(t)
	_, err := jetStream(t, srv).CreateStream(ctx, jetstream.StreamConfig{Name: "SMALL", Subjects: []string{"teamgate.SMALL.batch"},
		Storage: jetstream.FileStorage, MaxMsgSize: 8 << 10})
	require.NoError(t, err)
	small := memNode(t, srv, cluster.Options{Stream: "SMALL"})
	big := memNode(t, srv, cluster.Options{Stream: "BIG"})
	for _, n := range []*cluster.Node{small, big} {
		mustApply(t, ctx, n, store.PutOrg{Org: store.Org{Name: "acme"}})
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
	a := memNode(t, srv, cluster.Options{Stream: "FOREIGN"})
	b := memNode(t, srv, cluster.Options{Stream: "FOREIGN"})
	mustApply(t, ctx, a, acmeFile(t))
	js := jetStream(t, srv)
	body := batchBody(t, member("foreign"))

	msg := nats.NewMsg("teamgate.FOREIGN.batch")
	msg.Data = body
	msg.Header.Set("Nats-Rollup", "all")
	_, err := js.PublishMsg(ctx, msg)
	require.Error(t, err, "a rollup would purge every revision before it")

	msg = nats.NewMsg("teamgate.FOREIGN.batch")
	msg.Data = body
	msg.Header.Set(jetstream.MsgIDHeader, "not-a-node.2.x")
	msg.Header.Set("X-Anything", strings.Repeat("z", 100))
	ack, err := js.PublishMsg(ctx, msg)
	require.NoError(t, err)
	require.Equal(t, uint64(2), ack.Sequence)
	rev := mustApply(t, ctx, b, member("after"))
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
	n := memNode(t, srv, cluster.Options{Stream: "CLOSING"})
	watcher := memNode(t, srv, cluster.Options{Stream: "CLOSING"})
	mustApply(t, ctx, n, acmeFile(t))
	var mu sync.Mutex
	acked := map[string]uint64{}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for k := 0; ; k++ {
				user := fmt.Sprintf("w%d-%d", w, k)
				rev, err := n.Apply(ctx, member(user))
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
	_, err := n.Apply(ctx, member("late"))
	require.ErrorIs(t, err, teamgate.ErrClosed)
	mustSync(t, ctx, watcher)
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
	ctx, srv, writer := seededNode(t, cluster.Options{Stream: "HIST"})
	for i := range 3 {
		mustApply(t, ctx, writer, member(fmt.Sprintf("u%d", i)))
	}

	standalone := openStore(t, "")
	_, err := standalone.Apply(ctx, store.PutOrg{Org: store.Org{Name: "mine"}})
	require.NoError(t, err)
	_, err = cluster.New(ctx, connect(t, srv), standalone, cluster.Options{Stream: "HIST"})
	require.ErrorIs(t, err, teamgate.ErrConflict)
	require.ErrorContains(t, err, "another history")
	_, err = standalone.Apply(ctx, store.PutOrg{Org: store.Org{Name: "still-mine"}})
	require.NoError(t, err, "a refused store is not replicated")

	// A node's on-disk store of another stream, at revision 2 (which HIST has too).
	dir := t.TempDir()
	st := openStore(t, dir)
	other := newNode(t, srv, st, cluster.Options{Stream: "OTHER"})
	mustApply(t, ctx, other, store.PutOrg{Org: store.Org{Name: "other"}})
	mustApply(t, ctx, other, store.PutOrg{Org: store.Org{Name: "other2"}})
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
