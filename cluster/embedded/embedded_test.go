package embedded_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/cluster/embedded"
)

func TestStartRefuses(t *testing.T) {
	t.Parallel()
	_, err := embedded.Start(embedded.Options{})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	for _, tc := range []struct {
		name string
		n    int
		opts embedded.Options
	}{
		{"no servers", 0, embedded.Options{Dir: t.TempDir()}},
		{"too many servers", 10, embedded.Options{Dir: t.TempDir()}},
		{"no directory", 3, embedded.Options{}},
		{"a fixed port", 3, embedded.Options{Dir: t.TempDir(), Port: 4222}},
	} {
		_, err := embedded.StartCluster(tc.n, tc.opts)
		require.ErrorIs(t, err, teamgate.ErrInvalid, tc.name)
	}
}

// TestStartOnATakenPort: a port another process listens on is ErrConflict naming the address,
// at once, not "not ready" after ReadyTimeout.
func TestStartOnATakenPort(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = embedded.Start(embedded.Options{Dir: t.TempDir(), Port: port})
	require.ErrorIs(t, err, teamgate.ErrConflict)
	require.ErrorContains(t, err, "127.0.0.1:"+strconv.Itoa(port))
}

// TestCluster: three routed servers hold a 3-replica stream; with the stream's leader stopped,
// a client of another server keeps publishing, and the stopped server comes back on its port
// with the stream.
func TestCluster(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	c, err := embedded.StartCluster(3, embedded.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	require.Equal(t, 3, c.Len())

	nc, err := nats.Connect(c.URLs())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t"}, Replicas: 3, Storage: jetstream.FileStorage})
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.Len(t, info.Cluster.Replicas, 2)
	_, err = js.Publish(ctx, "t", []byte("1"))
	require.NoError(t, err)

	leader := c.Index(info.Cluster.Leader)
	require.NotEqual(t, -1, leader, info.Cluster.Leader)
	c.Stop(leader)
	c.Stop(leader) // stopping twice does nothing
	// A publish sent while the client fails over and the stream elects a new leader may get no
	// answer at all (nats.go then waits out its context): retry each attempt within a few
	// seconds, with a message id so that an attempt that did land is not stored twice (as
	// cluster.Node's writer does).
	var ack *jetstream.PubAck
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 3*time.Second)
		ack, err = js.Publish(attempt, "t", []byte("2"), jetstream.WithMsgID("2"))
		cancelAttempt()
		if err == nil || ctx.Err() != nil {
			break
		}
		t.Logf("publish after the leader stopped: %v; retrying", err)
	}
	require.NoError(t, err)
	require.Equal(t, uint64(2), ack.Sequence)

	require.NoError(t, c.Restart(leader))
	back, err := nats.Connect(c.URL(leader))
	require.NoError(t, err)
	defer back.Close()
	require.Equal(t, c.URL(leader), back.ConnectedUrl())
	jb, err := jetstream.New(back)
	require.NoError(t, err)
	sb, err := jb.Stream(ctx, "T")
	require.NoError(t, err)
	info, err = sb.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(2), info.State.LastSeq)
}
