package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/cluster"
	"github.com/teamgate/teamgate/cluster/embedded"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/store"
)

// acme is the conformance data file.
var acme = conformance.DataFile()

var (
	_ authz.Directory       = (*cluster.Node)(nil)
	_ authz.PersistentCache = (*cluster.Node)(nil)
	_ authz.Simulator       = (*cluster.Node)(nil)
)

// testCtx bounds a test: nothing here may hang. The long forms (-cluster.long) get longer.
func testCtx(t *testing.T) context.Context {
	bound := 60 * time.Second
	if *longCluster {
		bound = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(t.Context(), bound)
	t.Cleanup(cancel)
	return ctx
}

// startNATS runs an embedded NATS server with JetStream on a free loopback port.
func startNATS(t *testing.T) *embedded.Server {
	t.Helper()
	s, err := embedded.Start(embedded.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func connect(t *testing.T, s *embedded.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.URL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// openStore opens a store in dir, or in memory when dir is empty.
func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), store.Options{Dir: dir, NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// newNode makes a node of st on its own connection to s.
func newNode(t *testing.T, s *embedded.Server, st *store.Store, opts cluster.Options) *cluster.Node {
	t.Helper()
	return nodeOn(t, connect(t, s), st, opts)
}

// memNode makes a node of an in-memory store on its own connection to s.
func memNode(t *testing.T, s *embedded.Server, opts cluster.Options) *cluster.Node {
	t.Helper()
	return newNode(t, s, openStore(t, ""), opts)
}

// nodeOn makes a node of st on nc, closed when the test ends (closing it before is fine).
func nodeOn(t *testing.T, nc *nats.Conn, st *store.Store, opts cluster.Options) *cluster.Node {
	t.Helper()
	n, err := cluster.New(testCtx(t), nc, st, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// seededPair starts a NATS server with two nodes of in-memory stores on it: a, seeded with the
// acme data file, and b, synced with it.
func seededPair(t *testing.T, ctx context.Context) (a, b *cluster.Node) {
	t.Helper()
	srv := startNATS(t)
	a, b = memNode(t, srv, cluster.Options{}), memNode(t, srv, cluster.Options{})
	mustApply(t, ctx, a, acmeFile(t))
	mustSync(t, ctx, b)
	return a, b
}

// seededNode starts a test on a NATS server of its own: the test's context, the server, and a
// node of an in-memory store with opts, seeded with the acme data file (revision 1).
func seededNode(t *testing.T, opts cluster.Options) (context.Context, *embedded.Server, *cluster.Node) {
	t.Helper()
	ctx := testCtx(t)
	srv := startNATS(t)
	n := memNode(t, srv, opts)
	mustApply(t, ctx, n, acmeFile(t))
	return ctx, srv, n
}

// mustApply writes changes through n as one batch and returns its revision.
func mustApply(t *testing.T, ctx context.Context, n *cluster.Node, changes ...store.Change) uint64 {
	t.Helper()
	rev, err := n.Apply(ctx, changes...)
	require.NoError(t, err)
	return rev
}

// mustSync has n catch up with the stream and returns its revision.
func mustSync(t *testing.T, ctx context.Context, n *cluster.Node) uint64 {
	t.Helper()
	rev, err := n.Sync(ctx)
	require.NoError(t, err)
	return rev
}

// member makes user a member of acme.
func member(user string) store.PutMember {
	return store.PutMember{Org: "acme", User: user, Role: "member"}
}

// newEngine is an engine on n.
func newEngine(t *testing.T, ctx context.Context, n *cluster.Node) *authz.Engine {
	t.Helper()
	e, err := authz.New(ctx, n)
	require.NoError(t, err)
	return e
}

// jetStream is JetStream on its own connection to s.
func jetStream(t *testing.T, s *embedded.Server) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(connect(t, s))
	require.NoError(t, err)
	return js
}

// openStream is the stream named name.
func openStream(t *testing.T, ctx context.Context, js jetstream.JetStream, name string) jetstream.Stream {
	t.Helper()
	s, err := js.Stream(ctx, name)
	require.NoError(t, err)
	return s
}

// batchBody is the stream message of one batch of changes.
func batchBody(t *testing.T, changes ...store.Change) []byte {
	t.Helper()
	body, err := json.Marshal(store.Changes(changes))
	require.NoError(t, err)
	return body
}

// holdFirstPublish makes n's first publish wait: entered is closed once it waits, and it goes on
// when the caller closes release. Call it while no Apply of n is in flight.
func holdFirstPublish(n *cluster.Node) (entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
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
	return entered, release
}

func acmeFile(t *testing.T) store.PutFile {
	t.Helper()
	data, err := os.ReadFile(acme)
	require.NoError(t, err)
	f, err := store.ParseFile(data)
	require.NoError(t, err)
	return store.PutFile{File: *f}
}

func export(t *testing.T, st *store.Store) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, st.Export(t.Context(), &b))
	return b.String()
}

// randomChange is a write that may or may not be valid in the state it meets.
func randomChange(rng *rand.Rand) store.Change {
	users := []string{"alice", "bob", "vera", "olga", "newbie", "zed"}
	u := users[rng.IntN(len(users))]
	roles := store.OrgRoles()
	switch rng.IntN(7) {
	case 0:
		return store.PutMember{Org: "acme", User: u, Role: roles[rng.IntN(len(roles))]}
	case 1:
		tr := store.TeamRoles()
		return store.PutTeamMember{Org: "acme", Team: "research", User: u, Role: tr[rng.IntN(len(tr))]}
	case 2:
		return store.PutGrant{Org: "acme", Project: "open", User: u, Grant: store.Grant{Role: "viewer"}}
	case 3:
		return store.DeleteMember{Org: "acme", User: u}
	case 4:
		return store.CreateProject{Project: store.Project{Org: "acme", Name: fmt.Sprintf("p%d", rng.IntN(8)), CreatedBy: u}, Team: "research"}
	case 5:
		return store.DeleteProject{Org: "acme", Name: fmt.Sprintf("p%d", rng.IntN(8))}
	default:
		return store.PutMember{Org: "acme", User: u, Role: "emperor"} // always invalid
	}
}

// decisions decides a fixed request stream on e at revision rev.
func decisions(t *testing.T, e *authz.Engine, rev uint64) []authz.Decision {
	t.Helper()
	var out []authz.Decision
	for _, u := range []string{"alice", "bob", "vera", "olga", "newbie", "zed", "beth"} {
		for _, p := range []string{"acme/vision", "acme/nlp", "acme/open", "acme/p1", "acme/p5"} {
			for _, a := range []string{"runs.get", "runs.create", "project.delete"} {
				d, err := e.Authorize(t.Context(), authz.Request{Subject: u, Action: a, Resource: p, MinRevision: rev})
				if errors.Is(err, teamgate.ErrInvalid) {
					continue // an action this policy does not know
				}
				require.NoError(t, err)
				out = append(out, d)
			}
		}
	}
	require.NotEmpty(t, out)
	return out
}

// TestNodesConvergeUnderConcurrentWrites: three nodes write random batches at once; every
// acknowledged write has its own revision and is visible on its writer at once; all nodes end
// at the same revision with the same directory and the same decisions.
func TestNodesConvergeUnderConcurrentWrites(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := startNATS(t)
	nodes := []*cluster.Node{
		memNode(t, srv, cluster.Options{}),
		newNode(t, srv, openStore(t, t.TempDir()), cluster.Options{}),
		memNode(t, srv, cluster.Options{}),
	}
	seeded := mustApply(t, ctx, nodes[0], acmeFile(t))
	require.Equal(t, uint64(1), seeded)

	revs := writeRandomly(t, ctx, nodes, 40)
	revs[seeded] = true
	last := requireConverged(t, ctx, nodes)
	require.Len(t, revs, int(last), "every revision of the stream is one acknowledged write: invalid batches never reached it")
}

// TestWriteSeenElsewhereWithMinRevision: an engine on node A creates a project (through the
// stream); an engine on node B asked with the returned revision as MinRevision sees it, and the
// stores refuse direct writes.
func TestWriteSeenElsewhereWithMinRevision(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := startNATS(t)
	a, b := memNode(t, srv, cluster.Options{}), memNode(t, srv, cluster.Options{})
	mustApply(t, ctx, a, acmeFile(t))

	ea, eb := newEngine(t, ctx, a), newEngine(t, ctx, b)
	created, err := ea.CreateProject(ctx, "vera", "acme/research", authz.NewProject{Name: "fresh"})
	require.NoError(t, err)
	require.True(t, created.Decision.Allowed, "%+v", created.Decision)
	require.Equal(t, uint64(2), created.Revision)

	d, err := eb.Authorize(ctx, authz.Request{Subject: "vera", Action: "runs.get", Resource: created.Project, MinRevision: created.Revision})
	require.NoError(t, err)
	require.True(t, d.Allowed, "%+v", d)
	require.GreaterOrEqual(t, d.Revision, created.Revision)

	for _, n := range []*cluster.Node{a, b} {
		_, err := n.Store().Apply(ctx, store.PutOrg{Org: store.Org{Name: "direct"}})
		require.ErrorIs(t, err, teamgate.ErrConflict)
	}

	// An invalid batch is refused before it reaches the stream.
	_, err = b.Apply(ctx, store.PutMember{Org: "acme", User: "zed", Role: "emperor"})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	last := mustSync(t, ctx, b)
	require.Equal(t, created.Revision, last)

	// A revision nobody wrote: MinRevision fails with ErrStale when the context ends.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = eb.Authorize(short, authz.Request{Subject: "beth", Action: "runs.get", Resource: created.Project, MinRevision: last + 1})
	require.ErrorIs(t, err, teamgate.ErrStale)
}

// TestRestartedNodeResumes: an on-disk node closed at revision R reopens at R without
// reloading anything (its store, reopened, still refuses direct writes), and catches up with
// what was written meanwhile.
func TestRestartedNodeResumes(t *testing.T) {
	t.Parallel()
	ctx, srv, writer := seededNode(t, cluster.Options{})

	dir := t.TempDir()
	st := openStore(t, dir)
	n := newNode(t, srv, st, cluster.Options{})
	mustApply(t, ctx, n, member("newbie"))
	stopped := n.Revision()
	require.NoError(t, n.Close())
	require.ErrorIs(t, n.Close(), teamgate.ErrClosed)
	_, err := n.Apply(ctx, member("late"))
	require.ErrorIs(t, err, teamgate.ErrClosed)
	require.NoError(t, st.Close())

	for i := range 5 {
		mustApply(t, ctx, writer, member(fmt.Sprintf("u%d", i)))
	}

	st = openStore(t, dir)
	require.Equal(t, stopped, st.Revision(), "the store resumes at its own revision")
	_, err = st.Apply(ctx, member("sneaky"))
	require.ErrorIs(t, err, teamgate.ErrConflict, "a node's store refuses direct writes after a reopen too")
	n = newNode(t, srv, st, cluster.Options{})
	require.Equal(t, stopped+5, mustSync(t, ctx, n))
	require.Equal(t, export(t, writer.Store()), export(t, st))
}

// TestBadMessageStopsFollower: a message that does not decode, or decodes but does not apply,
// stops the follower with a FollowerError naming the revision; the node keeps its revision and
// answers reads, and writes and waits beyond it fail instead of skipping.
func TestBadMessageStopsFollower(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		body string
	}{
		{"does not decode", `{"not": "changes"`},
		{"unknown kind", `[{"kind":"launch_rocket","change":{}}]`},
		{"empty batch", `[]`},
		{"does not apply", `[{"kind":"put_member","change":{"Org":"nope","User":"bob","Role":"member"}}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			srv := startNATS(t)
			n := memNode(t, srv, cluster.Options{Stream: "BAD"})
			rev := mustApply(t, ctx, n, acmeFile(t))

			_, err := jetStream(t, srv).Publish(ctx, "teamgate.BAD.batch", []byte(tc.body))
			require.NoError(t, err)

			err = n.WaitRevision(ctx, rev+1)
			require.ErrorIs(t, err, teamgate.ErrStale)
			var fe *cluster.FollowerError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, rev+1, fe.Revision)
			require.Equal(t, rev, n.Revision())
			require.ErrorAs(t, n.Stats().Err, &fe)
			_, err = n.Apply(ctx, store.PutMember{Org: "acme", User: "zed", Role: "member"})
			require.ErrorAs(t, err, &fe)

			d, err := newEngine(t, ctx, n).Authorize(ctx, authz.Request{Subject: "alice", Action: "runs.get", Resource: "acme/vision"})
			require.NoError(t, err)
			require.True(t, d.Allowed)
			require.Equal(t, rev, d.Revision)
		})
	}
}

// TestBootstrapAfterTrim: a node whose next revision was trimmed from the stream restores the
// newest snapshot and replays the rest; without a snapshot that covers the gap it stops with an
// error instead of skipping.
func TestBootstrapAfterTrim(t *testing.T) {
	t.Parallel()
	ctx, srv, writer := seededNode(t, cluster.Options{SnapshotEvery: -1})
	put := func(user string) { t.Helper(); mustApply(t, ctx, writer, member(user)) }
	for i := range 6 {
		put(fmt.Sprintf("u%d", i))
	}
	snapRev, err := writer.Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(7), snapRev)
	require.Equal(t, snapRev, writer.Stats().Snapshot)
	again, err := writer.Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, snapRev, again, "a snapshot at the same revision is not stored twice")
	put("after1")
	put("after2")

	stream := openStream(t, ctx, jetStream(t, srv), "TEAMGATE")
	require.NoError(t, stream.Purge(ctx, jetstream.WithPurgeSequence(snapRev+1)))
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, snapRev+1, info.State.FirstSeq)

	fresh := newNode(t, srv, openStore(t, t.TempDir()), cluster.Options{})
	require.Equal(t, snapRev+2, mustSync(t, ctx, fresh))
	require.Equal(t, export(t, writer.Store()), export(t, fresh.Store()))
	require.Equal(t, snapRev, fresh.Stats().Snapshot)
	require.NoError(t, fresh.Store().Check())
	rev := mustApply(t, ctx, fresh, member("from-fresh"))
	require.NoError(t, writer.WaitRevision(ctx, rev))

	// Trimmed past the newest snapshot: a new node cannot catch up and says so.
	put("lost")
	info, err = stream.Info(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Purge(ctx, jetstream.WithPurgeSequence(info.State.LastSeq)))
	behind := memNode(t, srv, cluster.Options{})
	err = behind.WaitRevision(ctx, info.State.LastSeq)
	var fe *cluster.FollowerError
	require.ErrorAs(t, err, &fe)
	require.ErrorIs(t, err, teamgate.ErrStale)
	require.Zero(t, behind.Revision())
}

// TestNewRefuses: bad options and a store ahead of the stream are refused before anything
// changes.
func TestNewRefuses(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := startNATS(t)
	nc := connect(t, srv)
	for _, tc := range []struct {
		name string
		opts cluster.Options
	}{
		{"stream name", cluster.Options{Stream: "a.b"}},
		{"replicas", cluster.Options{Replicas: 7}},
	} {
		_, err := cluster.New(ctx, nc, openStore(t, ""), tc.opts)
		require.ErrorIs(t, err, teamgate.ErrInvalid, tc.name)
	}
	_, err := cluster.New(ctx, nil, openStore(t, ""), cluster.Options{})
	require.ErrorIs(t, err, teamgate.ErrInvalid)

	ahead := openStore(t, "")
	_, err = ahead.Apply(ctx, store.PutOrg{Org: store.Org{Name: "solo"}})
	require.NoError(t, err)
	_, err = cluster.New(ctx, nc, ahead, cluster.Options{Stream: "EMPTY"})
	require.ErrorIs(t, err, teamgate.ErrConflict)
	_, err = ahead.Apply(ctx, store.PutOrg{Org: store.Org{Name: "still-mine"}})
	require.NoError(t, err, "a refused store is not replicated")
}

// TestNodeCutOffFromNATS: while the NATS server is down a node keeps answering at its revision,
// reports that it is disconnected, and waits for later revisions fail with ErrStale; once the
// server is back it catches up with the writes made since.
func TestNodeCutOffFromNATS(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	dir := t.TempDir()
	srv, err := embedded.Start(embedded.Options{Dir: dir})
	require.NoError(t, err)
	port := srv.Port()
	t.Cleanup(func() { srv.Close() })

	type link struct {
		nc               *nats.Conn
		down, reconnects chan struct{}
	}
	dial := func() link {
		l := link{down: make(chan struct{}, 8), reconnects: make(chan struct{}, 8)}
		nc, err := nats.Connect(srv.URL(), nats.ReconnectWait(20*time.Millisecond), nats.MaxReconnects(-1),
			nats.DisconnectErrHandler(func(*nats.Conn, error) { l.down <- struct{}{} }),
			nats.ReconnectHandler(func(*nats.Conn) { l.reconnects <- struct{}{} }))
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		l.nc = nc
		return l
	}
	wait := func(ch chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	la, lb := dial(), dial()
	a := nodeOn(t, la.nc, openStore(t, ""), cluster.Options{})
	b := nodeOn(t, lb.nc, openStore(t, t.TempDir()), cluster.Options{})
	rev := mustApply(t, ctx, a, acmeFile(t))
	require.NoError(t, b.WaitRevision(ctx, rev))
	eb := newEngine(t, ctx, b)

	srv.Close()
	wait(la.down)
	wait(lb.down)
	st := b.Stats()
	require.False(t, st.Connected)
	require.Equal(t, rev, st.Revision)
	require.False(t, st.LastContact.IsZero())
	d, err := eb.Authorize(ctx, authz.Request{Subject: "alice", Action: "runs.get", Resource: "acme/vision"})
	require.NoError(t, err, "a cut-off node answers at its revision")
	require.True(t, d.Allowed)
	require.Equal(t, rev, d.Revision)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = eb.Authorize(short, authz.Request{Subject: "alice", Action: "runs.get", Resource: "acme/vision", MinRevision: rev + 1})
	cancel()
	require.ErrorIs(t, err, teamgate.ErrStale)
	short, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = b.Apply(short, member("zed"))
	cancel()
	require.Error(t, err, "a write cannot be acknowledged without NATS")

	srv, err = embedded.Start(embedded.Options{Dir: dir, Port: port})
	require.NoError(t, err)
	wait(la.reconnects)
	wait(lb.reconnects)
	rev2 := mustApply(t, ctx, a, member("back"))
	d, err = eb.Authorize(ctx, authz.Request{Subject: "back", Action: "runs.get", Resource: "acme/open", MinRevision: rev2})
	require.NoError(t, err)
	require.GreaterOrEqual(t, d.Revision, rev2)
	require.NoError(t, a.WaitRevision(ctx, mustSync(t, ctx, b)))
	require.Equal(t, export(t, a.Store()), export(t, b.Store()))
	require.True(t, b.Stats().Connected)
}

// TestCloseWhileTheStreamIsGone: Close returns while the follower cannot recreate its
// consumer (here the stream was deleted). nats.go's ordered consumer, left to its defaults,
// retries that without end and without looking at any context, so the follower never saw Close
// and Close waited forever; the node now lets it try once and retries itself, watching Close.
func TestCloseWhileTheStreamIsGone(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := startNATS(t)
	n := memNode(t, srv, cluster.Options{Stream: "GONE"})
	rev := mustApply(t, ctx, n, acmeFile(t))

	require.NoError(t, jetStream(t, srv).DeleteStream(ctx, "GONE"))
	// Let the follower find its consumer deleted and start recreating it.
	time.Sleep(2 * time.Second)
	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("Close did not return while the stream is gone")
	}
	require.Equal(t, rev, n.Revision())
}

// TestCorruptSnapshotStopsFollower: a node that must bootstrap from a snapshot that cannot be
// used (its object is corrupt, it does not decode, it is another stream's, it holds no or an
// invalid directory) stops its follower with a FollowerError naming its next revision, and its
// store stays exactly as it was: never half restored.
func TestCorruptSnapshotStopsFollower(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, ctx context.Context, js jetstream.JetStream, obs jetstream.ObjectStore, rev uint64)
		want    string
	}{
		{"corrupt object", func(t *testing.T, ctx context.Context, js jetstream.JetStream, obs jetstream.ObjectStore, _ uint64) {
			// Same size, other bytes: only the digest tells.
			info, err := obs.GetInfo(ctx, "directory")
			require.NoError(t, err)
			chunks := openStream(t, ctx, js, "OBJ_TEAMGATE_snapshots")
			subj := "$O.TEAMGATE_snapshots.C." + info.NUID
			require.NoError(t, chunks.Purge(ctx, jetstream.WithPurgeSubject(subj)))
			_, err = js.Publish(ctx, subj, bytes.Repeat([]byte("x"), int(info.Size)))
			require.NoError(t, err)
		}, "corrupt"},
		{"does not decode", putSnapshot(`{"stream":"TEAMGATE","revision":`), "does not decode"},
		{"other stream", putSnapshot(`{"stream":"OTHER","revision":%d,"directory":{}}`), `of stream "OTHER"`},
		{"no directory", putSnapshot(`{"stream":"TEAMGATE","revision":%d}`), "no directory"},
		{"invalid directory", putSnapshot(`{"stream":"TEAMGATE","revision":%d,"directory":{"orgs":[{"name":"other","members":{"bob":"emperor"}}]}}`), "does not restore"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, srv, writer := seededNode(t, cluster.Options{SnapshotEvery: -1})
			put := func(user string) uint64 { t.Helper(); return mustApply(t, ctx, writer, member(user)) }
			put("early")

			// A node on disk follows to revision 2 and stops.
			dir := t.TempDir()
			st := openStore(t, dir)
			behind := newNode(t, srv, st, cluster.Options{})
			require.NoError(t, behind.WaitRevision(ctx, 2))
			require.NoError(t, behind.Close())
			before := export(t, st)
			require.NoError(t, st.Close())

			// The stream moves on, a snapshot covers the gap, and is then spoilt.
			for i := range 3 {
				put(fmt.Sprintf("u%d", i))
			}
			snapRev, err := writer.Snapshot(ctx)
			require.NoError(t, err)
			last := put("after")
			js := jetStream(t, srv)
			obs, err := js.ObjectStore(ctx, "TEAMGATE_snapshots")
			require.NoError(t, err)
			tc.corrupt(t, ctx, js, obs, snapRev)
			require.NoError(t, openStream(t, ctx, js, "TEAMGATE").Purge(ctx, jetstream.WithPurgeSequence(snapRev+1)))

			st = openStore(t, dir)
			n := newNode(t, srv, st, cluster.Options{})
			err = n.WaitRevision(ctx, last)
			require.ErrorIs(t, err, teamgate.ErrStale)
			var fe *cluster.FollowerError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, uint64(3), fe.Revision)
			require.ErrorContains(t, err, tc.want)
			require.ErrorAs(t, n.Stats().Err, &fe)
			require.Equal(t, uint64(2), n.Revision())
			require.Equal(t, before, export(t, st), "the store is as it was")
			require.NoError(t, st.Check())
		})
	}
}

// putSnapshot replaces the stored snapshot with format, given the snapshot's revision.
func putSnapshot(format string) func(*testing.T, context.Context, jetstream.JetStream, jetstream.ObjectStore, uint64) {
	return func(t *testing.T, ctx context.Context, _ jetstream.JetStream, obs jetstream.ObjectStore, rev uint64) {
		body := format
		if strings.Contains(format, "%d") {
			body = fmt.Sprintf(format, rev)
		}
		_, err := obs.PutBytes(ctx, "directory", []byte(body))
		require.NoError(t, err)
	}
}
