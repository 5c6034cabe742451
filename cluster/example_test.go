package cluster_test

import (
	"context"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/cluster"
	"github.com/teamgate/teamgate/cluster/embedded"
	"github.com/teamgate/teamgate/store"
)

// Two replicas share one directory through an embedded NATS server: a member added on one is
// seen on the other with MinRevision.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "teamgate-nats")
	defer os.RemoveAll(dir)
	srv, err := embedded.Start(embedded.Options{Dir: dir})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	replica := func() *cluster.Node {
		nc, err := nats.Connect(srv.URL())
		if err != nil {
			panic(err)
		}
		st, err := store.Open(ctx, store.Options{}) // in memory; a Dir keeps it across restarts
		if err != nil {
			panic(err)
		}
		n, err := cluster.New(ctx, nc, st, cluster.Options{})
		if err != nil {
			panic(err)
		}
		return n
	}
	a, b := replica(), replica()
	defer a.Close()
	defer b.Close()

	rev, err := a.Apply(ctx, store.PutOrg{Org: store.Org{Name: "acme"}},
		store.PutMember{Org: "acme", User: "zoe", Role: "admin"},
		store.PutProject{Project: store.Project{Org: "acme", Name: "vision"}})
	if err != nil {
		panic(err)
	}
	eng, err := authz.New(ctx, b)
	if err != nil {
		panic(err)
	}
	d, err := eng.Authorize(ctx, authz.Request{Subject: "zoe", Action: "runs.get", Resource: "acme/vision", MinRevision: rev})
	if err != nil {
		panic(err)
	}
	fmt.Println(rev, d.Allowed, d.Role)
	// Output: 1 true admin
}
