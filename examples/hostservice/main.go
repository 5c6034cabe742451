// Hostservice is a small platform API that links teamgate in and calls it on every request: team
// space run listings, bulk approve/stop, per-run version listings by kind, project listing and
// creation in a team space, and run reads. The subject comes from the X-User header (a stand-in
// for real authentication).
//
//	go run ./examples/hostservice -addr 127.0.0.1:8080
//	curl -H 'X-User: bob' 127.0.0.1:8080/api/v1/orgs/acme/teams/engineering/runs
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

	"github.com/teamgate/teamgate/authz"
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

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	dir := flag.String("dir", "", "Badger directory (empty: in memory)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := serve(ctx, *addr, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "hostservice:", err)
		os.Exit(1)
	}
}

func setup(ctx context.Context, dir string) (*store.Store, *authz.Engine, error) {
	st, err := store.Open(ctx, store.Options{Dir: dir, Logger: slog.Default()})
	if err != nil {
		return nil, nil, err
	}
	if _, err := st.Load(ctx, strings.NewReader(acme)); err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	eng, err := authz.New(ctx, st, authz.WithLogger(slog.Default()))
	if err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	return st, eng, nil
}

func serve(ctx context.Context, addr, dir string) error {
	st, eng, err := setup(ctx, dir)
	if err != nil {
		return err
	}
	defer st.Close()
	srv := &http.Server{Addr: addr, Handler: newHandler(eng, sampleRuns), ReadHeaderTimeout: 5 * time.Second}
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
