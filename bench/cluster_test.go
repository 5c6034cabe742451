package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/cluster"
	"github.com/teamgate/teamgate/cluster/embedded"
	"github.com/teamgate/teamgate/store"
)

// catchUpRevisions is how far behind the catch-up benchmark's node starts; the figure
// is 100,000 (-catchup.revisions 100000), the default keeps a run short.
var catchUpRevisions = flag.Int("catchup.revisions", 10_000, "revisions a node catches up in BenchmarkClusterCatchUp")

// natsCluster starts a 3-server embedded NATS cluster for b.
func natsCluster(b *testing.B) *embedded.Cluster {
	b.Helper()
	c, err := embedded.StartCluster(3, embedded.Options{Dir: b.TempDir(), ReadyTimeout: 30 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c
}

// clusterNode makes an in-memory node on its own connection to url.
func clusterNode(b *testing.B, url, stream string, replicas int) *cluster.Node {
	b.Helper()
	nc, err := nats.Connect(url, nats.DontRandomize())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	st, err := store.Open(b.Context(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	n, err := cluster.New(b.Context(), nc, st, cluster.Options{Stream: stream, Replicas: replicas})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = n.Close() })
	return n
}

// seed writes s's directory through n in batches that fit a NATS message.
func seed(b *testing.B, n *cluster.Node, s Scenario) {
	b.Helper()
	cs := s.Changes()
	for len(cs) > 0 {
		k := min(len(cs), 1000)
		if _, err := n.Apply(b.Context(), cs[:k]...); err != nil {
			b.Fatal(err)
		}
		cs = cs[k:]
	}
}

// nodeURLs is where node i connects: one NATS server (replicas 1), or server i mod 3 of a
// 3-server cluster (replicas 3).
func nodeURLs(b *testing.B, replicas int) func(i int) string {
	if replicas == 1 {
		srv, err := embedded.Start(embedded.Options{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(srv.Close)
		return func(int) string { return srv.URL() }
	}
	c := natsCluster(b)
	return func(i int) string { return c.URL(i % c.Len()) }
}

// BenchmarkClusterVisibility: a write on one node until another node has applied it (Apply on
// node 0, then WaitRevision on node 1), p50/p99. R1: one NATS server; R3: three servers, the
// nodes on different ones.
func BenchmarkClusterVisibility(b *testing.B) {
	for _, replicas := range []int{1, 3} {
		b.Run(fmt.Sprintf("R%d", replicas), func(b *testing.B) {
			url := nodeURLs(b, replicas)
			w, r := clusterNode(b, url(0), "VIS", replicas), clusterNode(b, url(1), "VIS", replicas)
			ctx := b.Context()
			if _, err := w.Apply(ctx, store.PutOrg{Org: store.Org{Name: "org"}}); err != nil {
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, 1<<12)
			i := 0
			for b.Loop() {
				t0 := time.Now()
				rev, err := w.Apply(ctx, store.PutMember{Org: "org", User: fmt.Sprintf("u%d", i), Role: "member"})
				if err != nil {
					b.Fatal(err)
				}
				if err := r.WaitRevision(ctx, rev); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
				i++
			}
			reportPercentiles(b, lat)
		})
	}
}

// BenchmarkClusterWrites: acknowledged single-change writes per second with 1 and 3 writers,
// each on its own node (R3: nodes on different servers), and with 8 writers on each of 3 nodes
// (writers=3x8: a node's concurrent writes share a message); b.N writes in all, as fast as the
// writers go. gave-up/op is the share of writes that kept losing the race to other nodes for
// Options.WriteTimeout (ErrConflict): optimistic concurrency under saturating contention.
func BenchmarkClusterWrites(b *testing.B) {
	for _, replicas := range []int{1, 3} {
		for _, shape := range []struct{ nodes, perNode int }{{1, 1}, {3, 1}, {3, 8}} {
			name := fmt.Sprintf("R%d/writers=%d", replicas, shape.nodes)
			if shape.perNode > 1 {
				name = fmt.Sprintf("R%d/writers=%dx%d", replicas, shape.nodes, shape.perNode)
			}
			b.Run(name, func(b *testing.B) {
				url := nodeURLs(b, replicas)
				stream := fmt.Sprintf("W%d", shape.nodes*shape.perNode)
				var nodes []*cluster.Node
				for i := range shape.nodes {
					nodes = append(nodes, clusterNode(b, url(i), stream, replicas))
				}
				ctx := b.Context()
				if _, err := nodes[0].Apply(ctx, store.PutOrg{Org: store.Org{Name: "org"}}); err != nil {
					b.Fatal(err)
				}
				var next, conflicts atomic.Int64
				b.ResetTimer()
				t0 := time.Now()
				var wg sync.WaitGroup
				for _, n := range nodes {
					for range shape.perNode {
						wg.Go(func() {
							for k := next.Add(1); k <= int64(b.N); k = next.Add(1) {
								_, err := n.Apply(ctx, store.PutMember{Org: "org", User: fmt.Sprintf("u%d", k), Role: "member"})
								if errors.Is(err, teamgate.ErrConflict) {
									conflicts.Add(1) // lost the race for WriteTimeout: counted, not retried
									continue
								}
								if err != nil {
									b.Error(err)
									return
								}
							}
						})
					}
				}
				wg.Wait()
				b.ReportMetric(float64(int64(b.N)-conflicts.Load())/time.Since(t0).Seconds(), "writes/s")
				b.ReportMetric(float64(conflicts.Load())/float64(b.N), "gave-up/op")
			})
		}
	}
}

// BenchmarkClusterCatchUp: a fresh in-memory node joins a stream of -catchup.revisions
// single-change batches (one NATS server) and applies them all; reports the time and rate.
func BenchmarkClusterCatchUp(b *testing.B) {
	revs := *catchUpRevisions
	srv, err := embedded.Start(embedded.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	ctx := b.Context()
	w := clusterNode(b, srv.URL(), "CATCHUP", 1)
	if _, err := w.Apply(ctx, store.PutOrg{Org: store.Org{Name: "org"}}); err != nil {
		b.Fatal(err)
	}
	// The stream is filled by publishing batches directly (what nodes publish, without a node's
	// round trip per write): the benchmark is the joining node, not the writer.
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	for i := 1; i < revs; i++ {
		data, err := json.Marshal(store.Changes{store.PutMember{Org: "org", User: fmt.Sprintf("u%d", i), Role: "member"}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := js.PublishAsync("teamgate.CATCHUP.batch", data); err != nil {
			b.Fatal(err)
		}
		if i%5000 == 0 {
			<-js.PublishAsyncComplete()
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publishing timed out")
	}
	var total time.Duration
	for b.Loop() {
		t0 := time.Now()
		n := clusterNode(b, srv.URL(), "CATCHUP", 1)
		last, err := n.Sync(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if last != uint64(revs) {
			b.Fatalf("caught up to %d, want %d", last, revs)
		}
		total += time.Since(t0)
		_ = n.Close()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/catch-up")
	b.ReportMetric(float64(revs)*float64(b.N)/total.Seconds(), "revisions/s")
}

// BenchmarkFollowerDecision: Authorize (default engine options) latency (p50/p99) on the small tier
// while a write stream lands: on a node following another node's writes (R1, one server), and
// on a single store applying the same writes itself. Writes add members the requests do not
// ask about, as fast as the writer can.
func BenchmarkFollowerDecision(b *testing.B) {
	write := func(i int) store.Change {
		return store.PutMember{Org: "org", User: fmt.Sprintf("w%d", i), Role: "member"}
	}
	// stream runs apply(write(i)) for i = 0, 1, ... until the benchmark ends.
	stream := func(b *testing.B, apply func(ctx context.Context, c store.Change) error) {
		ctx, cancel := context.WithCancel(b.Context())
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				if err := apply(ctx, write(i)); err != nil {
					if ctx.Err() == nil {
						b.Error(err)
					}
					return
				}
			}
		})
		b.Cleanup(func() {
			cancel()
			wg.Wait()
		})
	}
	b.Run("store", func(b *testing.B) {
		st, eng := open(b, Small)
		stream(b, func(ctx context.Context, c store.Change) error { _, err := st.Apply(ctx, c); return err })
		start := st.Revision()
		timed(b, eng)
		b.ReportMetric(float64(st.Revision()-start), "revisions-applied")
	})
	b.Run("follower", func(b *testing.B) {
		url := nodeURLs(b, 1)
		w, f := clusterNode(b, url(0), "FOLLOW", 1), clusterNode(b, url(1), "FOLLOW", 1)
		seed(b, w, Small)
		if _, err := f.Sync(b.Context()); err != nil {
			b.Fatal(err)
		}
		eng, err := authz.New(b.Context(), f)
		if err != nil {
			b.Fatal(err)
		}
		stream(b, func(ctx context.Context, c store.Change) error { _, err := w.Apply(ctx, c); return err })
		start := f.Revision()
		timed(b, eng)
		b.ReportMetric(float64(f.Revision()-start), "revisions-applied")
	})
}
