// Hostservice is a small platform API that links teamgate in and calls it on every request: team
// space run and artifact listings, every bulk run operation of SPEC §5 in a team space or org,
// project listing and creation in a team space, and run reads. The subject comes from the
// X-User header (a stand-in for real authentication). Request bodies are JSON (415 otherwise),
// limited to 1 MiB (413 beyond); the server times out slow clients. /metrics serves the host's own Prometheus registry, which holds teamgate's metrics
// (authz.WithMetrics, store.Options.Registerer).
//
//	go run ./examples/hostservice -addr 127.0.0.1:8080
//	curl -H 'X-User: bob' 127.0.0.1:8080/api/v1/orgs/acme/teams/engineering/runs
//	curl 127.0.0.1:8080/metrics
//
// With -nats URL the service is one replica of a directory shared over NATS JetStream (package
// cluster): its engine decides against a cluster node and writes (project creation) go through
// the stream, so every replica on the same stream sees them. The first replica to find the stream
// empty seeds it with the sample directory; the others join what is there. A GET route's
// ?min_revision=R (the revision a write answered, perhaps on another replica) waits until this
// replica has applied R.
//
//	go run ./examples/hostservice -nats nats://127.0.0.1:4222 -addr 127.0.0.1:8081
package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/cluster"
	"github.com/teamgate/teamgate/decisionlog"
	"github.com/teamgate/teamgate/store"
)

//go:embed acme.yaml
var acme string

// sampleRuns is the host's run table at start.
var sampleRuns = []Run{
	{UUID: "r-vision-1", Org: "acme", Project: "vision", CreatedBy: "bob", Status: "running"},
	{UUID: "r-vision-2", Org: "acme", Project: "vision", CreatedBy: "olga", Status: "running"},
	{UUID: "r-nlp-1", Org: "acme", Project: "nlp", CreatedBy: "vera", Status: "created"},
	{UUID: "r-open-1", Org: "acme", Project: "open", CreatedBy: "bob", Status: "running"},
	{UUID: "r-labs-1", Org: "acme", Project: "labs", CreatedBy: "alice", Status: "created"},
}

// sampleArtifacts is the host's artifact table at start.
var sampleArtifacts = []Artifact{
	{ID: "a-vision-model", Org: "acme", Project: "vision", Run: "r-vision-1", Name: "model.onnx"},
	{ID: "a-nlp-tokenizer", Org: "acme", Project: "nlp", Run: "r-nlp-1", Name: "tokenizer.json"},
	{ID: "a-labs-notes", Org: "acme", Project: "labs", Run: "r-labs-1", Name: "notes.md"},
	{ID: "a-open-report", Org: "acme", Project: "open", Run: "r-open-1", Name: "report.html"},
}

func main() {
	var c config
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.StringVar(&c.dir, "dir", "", "Badger directory (empty: in memory)")
	flag.StringVar(&c.nats, "nats", "", "NATS server URL: share the directory with other replicas over JetStream")
	flag.StringVar(&c.stream, "stream", "", "JetStream stream of the directory, with -nats (default "+cluster.DefaultStream+")")
	flag.StringVar(&c.declog, "decision-log", "", "Badger directory of a decision log (teamgate decisions --log DIR reads it once the service stops)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := serve(ctx, *addr, c); err != nil {
		fmt.Fprintln(os.Stderr, "hostservice:", err)
		os.Exit(1)
	}
}

// config is where a replica keeps its directory.
type config struct {
	dir    string // Badger directory; "" = in memory
	nats   string // NATS URL; "" = this process's own directory
	stream string // the shared directory's stream, with nats; "" = cluster.DefaultStream
	declog string // decision log directory; "" = decisions are not logged
}

// setup opens the directory and the engine deciding against it, both registering their metrics
// with reg; done closes them.
func setup(ctx context.Context, c config, reg prometheus.Registerer) (eng *authz.Engine, done func(), err error) {
	if c.nats == "" && c.stream != "" {
		return nil, nil, teamgate.Invalid("-stream", c.stream, "needs -nats")
	}
	st, err := store.Open(ctx, store.Options{Dir: c.dir, Logger: slog.Default(), Registerer: reg})
	if err != nil {
		return nil, nil, err
	}
	var dir authz.Directory = st
	done = func() { _ = st.Close() }
	if c.nats == "" {
		_, err = st.Load(ctx, strings.NewReader(acme))
	} else {
		var node *cluster.Node
		var leave func()
		node, leave, err = join(ctx, c, st)
		if node != nil {
			dir, done = node, func() { leave(); _ = st.Close() }
		}
	}
	opts := []authz.Option{authz.WithLogger(slog.Default()), authz.WithMetrics(reg)}
	if err == nil && c.declog != "" {
		var log *decisionlog.Log
		if log, err = decisionlog.Open(ctx, decisionlog.Options{Dir: c.declog, Logger: slog.Default()}); err == nil {
			opts = append(opts, authz.WithDecisionLog(log))
			closeDir := done
			done = func() { _ = log.Close(); closeDir() }
		}
	}
	if err == nil {
		eng, err = authz.New(ctx, dir, opts...)
	}
	if err != nil {
		done()
		return nil, nil, err
	}
	closeAll := done
	done = func() {
		// Flush the decision log before its directory closes; bounded, like the server's shutdown.
		flush, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = eng.Close(flush)
		closeAll()
	}
	return eng, done, nil
}

// join makes st a node of the shared directory and waits until it has applied the stream; leave
// closes the node and its connection (not st). The
// first replica to find the stream empty seeds it with the sample directory; two replicas
// starting at once may both seed, and the second batch changes nothing (the file is already
// the directory).
func join(ctx context.Context, c config, st *store.Store) (node *cluster.Node, leave func(), err error) {
	nc, err := nats.Connect(c.nats, nats.Name("hostservice"))
	if err != nil {
		return nil, nil, fmt.Errorf("-nats %s: %w", c.nats, err)
	}
	node, err = cluster.New(ctx, nc, st, cluster.Options{Stream: c.stream, Logger: slog.Default()})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	leave = func() { _ = node.Close(); nc.Close() }
	rev, err := node.Sync(ctx)
	if err == nil && rev == 0 {
		var f *store.File
		if f, err = store.ParseFile([]byte(acme)); err == nil {
			_, err = node.Apply(ctx, store.PutFile{File: *f})
		}
	}
	return node, leave, err
}

// Server timeouts: a client that trickles its headers or body, never reads the answer, or keeps
// an idle connection open gives up its connection, so slow clients cannot hold the service's
// connections and goroutines (behind a load balancer too: its own timeouts are no substitute).
// writeTimeout covers the handler and the answer: a read's min_revision wait (readWait) and a
// bulk request's 1,000 evaluations fit well within it.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second // headers and the whole body (at most maxBody)
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
)

// httpServer is the service's server on addr, with its timeouts.
func httpServer(addr string, h http.Handler) *http.Server {
	return &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
		WriteTimeout: writeTimeout, IdleTimeout: idleTimeout}
}

func serve(ctx context.Context, addr string, c config) error {
	reg := prometheus.NewRegistry() // the host's own: nothing is registered globally
	eng, done, err := setup(ctx, c, reg)
	if err != nil {
		return err
	}
	defer done()
	srv := httpServer(addr, newHandler(eng, sampleRuns, sampleArtifacts, reg))
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	slog.Info("hostservice listening", "addr", addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}
