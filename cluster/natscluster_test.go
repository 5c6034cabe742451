package cluster_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/cluster"
	"github.com/teamgate/teamgate/cluster/embedded"
	"github.com/teamgate/teamgate/store"
)

// longCluster runs the 3-server tests at full length: more writes, and every server of the
// cluster stopped and restarted in turn instead of one. The default run keeps the package fast
// enough for .ci/run; the cases are the same.
var longCluster = flag.Bool("cluster.long", false, "3-server NATS cluster tests at full length (go test ./cluster -cluster.long)")

// startNATSCluster runs a 3-server embedded NATS cluster on loopback ports.
func startNATSCluster(t *testing.T) *embedded.Cluster {
	t.Helper()
	c, err := embedded.StartCluster(3, embedded.Options{Dir: t.TempDir(), ReadyTimeout: 30 * time.Second})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// connectTo connects to server i of c first, knowing the others to reconnect to.
func connectTo(t *testing.T, c *embedded.Cluster, i int) *nats.Conn {
	t.Helper()
	urls := []string{c.URL(i)}
	for j := range c.Len() {
		if j != i {
			urls = append(urls, c.URL(j))
		}
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.DontRandomize(),
		nats.ReconnectWait(20*time.Millisecond), nats.MaxReconnects(-1))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	require.Equal(t, c.URL(i), nc.ConnectedUrl())
	return nc
}

// clusterNodes makes three nodes of a 3-replica stream, node i on server i; node 1's store is on
// disk, the others in memory.
func clusterNodes(t *testing.T, c *embedded.Cluster, stream string) []*cluster.Node {
	t.Helper()
	var nodes []*cluster.Node
	for i := range 3 {
		dir := ""
		if i == 1 {
			dir = t.TempDir()
		}
		nodes = append(nodes, nodeOn(t, connectTo(t, c, i), openStore(t, dir), cluster.Options{Stream: stream, Replicas: 3}))
	}
	return nodes
}

// requireConverged syncs every node with the stream and requires the same revision, directory
// and decisions everywhere; it returns the revision.
func requireConverged(t *testing.T, ctx context.Context, nodes []*cluster.Node) uint64 {
	t.Helper()
	last := mustSync(t, ctx, nodes[0])
	want := export(t, nodes[0].Store())
	var wantDecisions []authz.Decision
	for i, n := range nodes {
		mustSync(t, ctx, n)
		require.Equal(t, last, n.Revision(), "node %d", i)
		require.Equal(t, want, export(t, n.Store()), "node %d", i)
		require.NoError(t, n.Store().Check())
		got := decisions(t, newEngine(t, ctx, n), last)
		if i == 0 {
			wantDecisions = got
		} else {
			require.Equal(t, wantDecisions, got, "node %d", i)
		}
		st := n.Stats()
		require.Equal(t, last, st.Revision)
		require.Zero(t, st.Lag)
		require.True(t, st.Connected)
		require.NoError(t, st.Err)
	}
	return last
}

// writeRandomly has every node write perNode random batches at once (valid or not in the state
// they meet) and returns the revisions acknowledged, each checked to be new and applied on its
// writer when Apply returned.
func writeRandomly(t *testing.T, ctx context.Context, nodes []*cluster.Node, perNode int) map[uint64]bool {
	t.Helper()
	var mu sync.Mutex
	revs := map[uint64]bool{}
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for range perNode {
				batch := []store.Change{randomChange(rng)}
				if rng.IntN(3) == 0 {
					batch = append(batch, randomChange(rng))
				}
				rev, err := n.Apply(ctx, batch...)
				if err != nil {
					if !errors.Is(err, teamgate.ErrInvalid) && !errors.Is(err, teamgate.ErrNotFound) && !errors.Is(err, teamgate.ErrConflict) {
						t.Errorf("node %d: %v", i, err)
						return
					}
					continue
				}
				if n.Revision() < rev {
					t.Errorf("node %d: Apply returned revision %d before applying it (at %d)", i, rev, n.Revision())
				}
				mu.Lock()
				if revs[rev] {
					t.Errorf("revision %d acknowledged twice", rev)
				}
				revs[rev] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.False(t, t.Failed())
	return revs
}

// TestThreeServerClusterConverges: three nodes on three NATS servers sharing a 3-replica stream
// write random batches at once; every node converges to the same directory and decisions, and a
// project created through an engine on one node is seen on the others with MinRevision.
func TestThreeServerClusterConverges(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := startNATSCluster(t)
	nodes := clusterNodes(t, c, "CONVERGE")
	seeded := mustApply(t, ctx, nodes[0], acmeFile(t))
	require.Equal(t, uint64(1), seeded)

	perNode := 15
	if *longCluster {
		perNode = 400
	}
	revs := writeRandomly(t, ctx, nodes, perNode)
	revs[seeded] = true
	last := requireConverged(t, ctx, nodes)
	require.Len(t, revs, int(last), "every revision of the stream is one acknowledged write: invalid batches never reached it")

	// Read-your-writes on the writer, MinRevision on the others.
	// (carol, whom the random writes do not touch, becomes a contributor of the team first.)
	// Node 0 decides only once it has node 2's write (MinRevision): without it, it may decide
	// before the membership reaches it and deny.
	joined := mustApply(t, ctx, nodes[2], member("carol"),
		store.PutTeamMember{Org: "acme", Team: "research", User: "carol", Role: "contributor"})
	created, err := newEngine(t, ctx, nodes[0]).CreateProject(ctx, "carol", "acme/research", authz.NewProject{Name: "across", MinRevision: joined})
	require.NoError(t, err)
	require.True(t, created.Decision.Allowed, "%+v", created.Decision)
	require.Equal(t, last+2, created.Revision)
	for i, n := range nodes[1:] {
		d, err := newEngine(t, ctx, n).Authorize(ctx, authz.Request{Subject: "carol", Action: "runs.get", Resource: created.Project, MinRevision: created.Revision})
		require.NoError(t, err, "node %d", i+1)
		require.True(t, d.Allowed, "node %d: %+v", i+1, d)
		require.GreaterOrEqual(t, d.Revision, created.Revision)
	}
}

// TestThreeServerClusterSurvivesAServerLoss: nodes on three NATS servers write without pause;
// mid-run the server leading the stream (and so one node's server) stops. Every write still
// lands exactly once (the writes of the node that lost its server too: nats.go reconnects to
// another), every node keeps deciding, with MinRevision at the newest acknowledged revision, and
// all converge. The long form stops and restarts each server in turn.
//
// It once hung under -race on a loaded machine, which fits a follower stuck inside nats.go
// recreating its consumer without end, deaf to Close (fixed; TestCloseWhileTheStreamIsGone).
// The long form once failed with a write that lost 32 races in a row (fixed: retries are bounded
// by time; see "Writes" in the package doc and TestWriterThatLosesManyRacesStillWrites).
func TestThreeServerClusterSurvivesAServerLoss(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := startNATSCluster(t)
	nodes := clusterNodes(t, c, "SURVIVE")
	mustApply(t, ctx, nodes[0], acmeFile(t))
	engines := make([]*authz.Engine, len(nodes))
	for i, n := range nodes {
		engines[i] = newEngine(t, ctx, n)
	}
	js, err := jetstream.New(connectTo(t, c, 0))
	require.NoError(t, err)
	stream := openStream(t, ctx, js, "SURVIVE")

	rounds, perRound := 1, 15
	if *longCluster {
		rounds, perRound = 3, 100
	}
	var newest atomic.Uint64 // the newest revision acknowledged to any writer
	newest.Store(nodes[0].Revision())
	written := map[uint64]string{}
	var mu sync.Mutex
	for round := range rounds {
		// Every writer and reader works until it has done perRound operations after the stop.
		var stopped atomic.Bool
		var acked atomic.Int64
		var wg sync.WaitGroup
		for i, n := range nodes {
			wg.Go(func() { // writer: always-valid writes, so each must land
				after := 0
				for k := 0; after < perRound && !t.Failed(); k++ {
					wasStopped := stopped.Load()
					user := fmt.Sprintf("r%d-n%d-%d", round, i, k)
					wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
					rev, err := n.Apply(wctx, member(user))
					cancel()
					if err != nil {
						t.Errorf("round %d node %d write %d (server stopped: %v): %v", round, i, k, wasStopped, err)
						return
					}
					mu.Lock()
					if prev, ok := written[rev]; ok {
						t.Errorf("revision %d acknowledged for %s and %s", rev, prev, user)
					}
					written[rev] = user
					mu.Unlock()
					for cur := newest.Load(); rev > cur && !newest.CompareAndSwap(cur, rev); cur = newest.Load() {
					}
					acked.Add(1)
					if wasStopped {
						after++
					}
				}
			})
			wg.Go(func() { // reader: decides at the newest acknowledged revision
				after := 0
				for after < perRound && !t.Failed() {
					wasStopped := stopped.Load()
					want := newest.Load()
					rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
					d, err := engines[i].Authorize(rctx, authz.Request{Subject: "alice", Action: "runs.get", Resource: "acme/vision", MinRevision: want})
					cancel()
					if err != nil {
						t.Errorf("round %d node %d read at %d (server stopped: %v): %v", round, i, want, wasStopped, err)
						return
					}
					if !d.Allowed || d.Revision < want {
						t.Errorf("round %d node %d read at %d: %+v", round, i, want, d)
						return
					}
					if wasStopped {
						after++
					}
				}
			})
		}
		// Stop the stream's leader mid-run, once writes flow.
		for acked.Load() < int64(len(nodes)*3) && !t.Failed() && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		info, err := stream.Info(ctx)
		require.NoError(t, err)
		leader := c.Index(info.Cluster.Leader)
		require.NotEqual(t, -1, leader, "stream leader %q", info.Cluster.Leader)
		c.Stop(leader)
		stopped.Store(true)
		wg.Wait()
		require.False(t, t.Failed())
		if *longCluster {
			require.NoError(t, c.Restart(leader))
		}
	}

	last := requireConverged(t, ctx, nodes)
	require.Len(t, written, int(last)-1, "each acknowledged write is one revision, none written twice")
	var b strings.Builder
	require.NoError(t, nodes[0].View(func(r store.Reader) error {
		for _, user := range written {
			if _, ok := r.OrgRole("acme", user); !ok {
				fmt.Fprintf(&b, "%s ", user)
			}
		}
		return nil
	}))
	require.Empty(t, b.String(), "acknowledged writes missing")
}

// TestContendedWritesAllLand: writers on several nodes publish valid batches without pause, so
// nearly every attempt races the others; each write lands once, within Apply's time bound. (A
// node that, after losing a race, caught up by one revision only published against a state the
// others had already overtaken, and gave up with ErrConflict.)
func TestContendedWritesAllLand(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := startNATS(t)
	var nodes []*cluster.Node
	for range 3 {
		nodes = append(nodes, memNode(t, srv, cluster.Options{Stream: "CONTEND"}))
	}
	mustApply(t, ctx, nodes[0], acmeFile(t))
	perNode := 15
	if *longCluster {
		perNode = 250
	}
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			for k := range perNode {
				if _, err := n.Apply(ctx, member(fmt.Sprintf("n%d-%d", i, k))); err != nil {
					t.Errorf("node %d write %d: %v", i, k, err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.False(t, t.Failed())
	last := requireConverged(t, ctx, nodes)
	require.Equal(t, uint64(1+len(nodes)*perNode), last)
}
