// Package cluster shares one teamgate directory between the replicas of a host service over
// NATS JetStream (SPEC §12). Each replica runs a Node over its own store (in memory or on disk);
// the stream orders every write, and each store is the materialized view of the stream. A host
// that does not import this package links none of NATS.
//
//	nc, _ := nats.Connect(url)                         // the host's connection, its options
//	st, _ := store.Open(ctx, store.Options{Dir: dir})  // this replica's view
//	node, _ := cluster.New(ctx, nc, st, cluster.Options{Replicas: 3})
//	engine, _ := authz.New(ctx, node)                  // decides and writes through the node
//
// # Why JetStream
//
// Replicas need one order of writes and one revision space, surviving the loss of a machine.
// That is a replicated log, and writing one (a transport, a consensus protocol) is not this
// library's business. A JetStream stream is such a log, with the two operations a directory
// needs: append only if the log has not moved (the expected-last-sequence check) and read from
// any position (consumers). Its replication (Raft over 1, 3 or 5 NATS servers), storage and
// retention are NATS's, operated with NATS's tools.
//
// # What a revision means
//
// Each committed batch is one message on the stream, in file storage, and nothing else is on it
// (the stream takes one subject, teamgate.{stream}.batch; New refuses a stream that takes
// others). The message body is the batch's store.Changes as JSON. A store's revision is the
// stream sequence of the last batch it applied, so Decision.Revision, Request.MinRevision and
// Node.Apply's result mean the same on every node: revision R is the directory after the first R
// messages of the stream. A store applies message R only at revision R-1 (store.Replica), so a
// node never skips or repeats a revision.
//
// # Writes
//
// Node.Apply (and so an authz.Engine's CreateProject and other writes, which call the
// Directory's Apply) hands the batch to the node's writer, one goroutine per node, so a node
// never races itself. The writer takes every Apply queued meanwhile (group commit, up to 256
// batches or one message's size) and validates them in order with store.Replica.ValidateEach:
// each against the state the valid ones before it leave, so an invalid batch fails alone with
// the store's error (ErrInvalid, ErrNotFound, ErrConflict) and never reaches the stream; when
// the node is behind the stream, it catches up and validates again before saying so. The valid
// batches, concatenated, are published as one message with the node's revision as the expected
// last sequence; every caller of the group gets its revision (concurrent Applies on one node may
// share a revision; each batch is still applied whole or not at all). If another node wrote
// first, JetStream refuses the message; the writer waits until it has applied the stream up to
// the revision JetStream reported, validates again against the new state and publishes again,
// pausing a little at random after each lost race (writers racing in step would lose in step),
// until Options.WriteTimeout (30 s) passes: then ErrConflict. Since a message is published only
// against the exact state it was validated on, and replaying changes on the same state gives the
// same result, every published message applies on every node.
//
// A publish whose acknowledgement does not come (a NATS server lost, a timeout) may or may not
// have been written, but only at the revision after the one it expected. So the writer keeps it
// in doubt until the node has applied that revision: the follower records which message landed
// there, and the group's callers are answered with that revision, or the group is validated and
// published again. A message is identified by the node, the revision it expects and the callers
// it carries: publishing the same group at the same revision again reuses the id, and JetStream
// (which deduplicates ids within the stream's duplicate window, two minutes by default) answers
// with the revision it landed at; any other message is new and can land only if the first did
// not. A batch is never written twice.
//
// Why a time and not a count of attempts: a node whose path to the stream's leader is slower
// than the others' (its NATS server is not the leader's, or has just restarted) learns of each
// write later and loses races in a row while other nodes write without pause. The long
// server-loss test once gave up after 32 attempts that way ("wrong last sequence: N" 32 times,
// each reporting a newer N, the node catching up each time and losing again: contention, not a
// stale count on the server); TestWriterThatLosesManyRacesStillWrites reproduces it.
//
// Direct writes to the store are refused once it is a node's (store.Replicate; ErrConflict),
// so the store cannot drift from the stream. The refusal is durable: an on-disk store that was a
// node's keeps refusing direct writes after it is reopened (a node resumes it as before). To
// turn it into a standalone store, close the node, reopen the store and call store.Detach; it
// then keeps the directory as of its last revision. New refuses a store whose history is not the
// stream's (ErrConflict; the store is left as it was): one ahead of the stream (another
// stream's store, or a stream recreated), one whose last batch differs from the stream's message
// at its revision, and one written on its own (never a node's) at a revision it cannot match
// with the stream. Start a node on an empty store; it replays the stream (or its snapshot).
// Two nodes cannot share a store (the second Replicate is ErrConflict), nor two stores a
// directory (Badger locks it).
//
// # Consistency a host gets
//
// Read-your-writes on the writing node: Apply returns once the node itself has applied the batch,
// so every read and decision on that node after Apply returns sees it. Elsewhere, pass the
// returned revision as Request.MinRevision (or call WaitRevision): the other node's engine waits
// until it has applied that revision, or fails with ErrStale when the context ends. Node.Sync
// waits for everything the stream held when it asked: a read after Sync sees every write
// acknowledged before it, on any node. Without either, a node answers at its own revision, which
// trails the stream by the time it takes a message to arrive (milliseconds on one network).
//
// # Followers
//
// Each node applies the stream with an ordered consumer starting at its own revision + 1: a node
// restarted on its on-disk store resumes where it stopped, without reloading anything. A message
// that does not decode or does not apply stops the follower with a *FollowerError naming the
// revision: the node keeps answering at the revision before it, and its writes and any wait for a
// later revision fail with that error (an ErrStale for waits). It never skips a revision; an
// operator repairs the stream or replaces the node. The same holds for a stream deleted and
// created again while the node runs (its creation time changed; nats.go's consumer would
// otherwise go on reading the new stream from the node's revision, grafting another directory's
// batches onto its own): the follower stops, and the node must start again on an empty store.
//
// # Snapshots and trimmed streams
//
// A stream may be limited (the operator's retention limits or purges), but a node that is behind
// the stream's first message cannot replay what was removed. Snapshots bridge that: Node.Snapshot
// stores the node's whole directory at its revision R (the data file of store.Reader.Snapshot,
// as JSON) as the object "directory" of the object store {stream}_snapshots, and a node that
// writes a batch landing on a multiple of Options.SnapshotEvery (default 10,000) stores one in
// the background. A node whose next revision is no longer in the stream restores the newest
// snapshot at R (store.Replica.Restore: the store becomes exactly the snapshot, at revision R, in
// one batch) and replays from R+1. A snapshot that does not reach the gap is a FollowerError, and so
// is one that cannot be used: a corrupt object (its digest does not match), a body that does not
// decode, another stream's snapshot, an invalid directory. The restore is one atomic batch, so
// such a snapshot leaves the store exactly as it was, never half restored. So a stream may be
// trimmed up to the newest snapshot's revision, never past it. The object store has no
// conditional put: two nodes storing a snapshot at the same moment (each checked the bucket
// first) leave the one stored last, which may be the older. So trim up to the revision the
// bucket's object holds when trimming (its metadata "revision"), not the one a Snapshot call
// returned earlier.
//
// # Cut off from NATS
//
// A node that loses its connection keeps answering reads and decisions at its last revision;
// Stats reports its revision, the stream's last revision it knows, the lag between them, when it
// last heard from the stream and whether it is connected (it may be further behind than it
// knows: compare LastContact with the time). MinRevision beyond its revision waits, and fails
// with ErrStale when the request's context ends. Writes fail (the publish cannot be
// acknowledged) once the caller's context ends; such a write may still be written (nats.go
// sends what it buffered while reconnecting), but only on the state it was validated against.
// A host that wants a failed write never to land later connects with nats.ReconnectBufSize(-1).
// When the connection comes back (nats.go
// reconnects), the follower reopens its consumer at its revision + 1 and catches up. With three
// NATS servers and a 3-replica stream (Options.Replicas: 3), JetStream keeps the stream
// writable while two of them are up, and every node keeps reading from its own store.
//
// # Limits
//
// A batch travels as one message, so it must fit the NATS server's maximum payload (1 MiB by
// default) and the stream's maximum message size when the operator set one: ErrInvalid before
// anything is published otherwise (split it, or raise the limit). The writer groups batches
// within the same limit. The events a restore skips are not
// in the store's own event log, so a store.Watch that needs them ends with an error.
//
// # Concurrency
//
// A Node is safe for concurrent use. It runs four goroutines (the follower, the writer, a health
// probe that asks the stream for its last revision every Options.HealthInterval, and the
// snapshot writer); Close stops and waits for them. The caller owns the NATS connection and the store and closes
// them after the node. Package embedded runs a NATS server with JetStream inside the process for
// tests, examples and a single machine.
//
// Nothing the node does waits without a bound: nats.go's ordered consumer would recreate a
// failed consumer for ever, ignoring every context (a follower whose stream lost its leader
// never saw Close, which then waited for ever: the likely cause of a hang once seen in the
// server-loss test under -race). The node lets it try once, for at most 10 s, and retries
// itself while watching Close; so Close returns within about that. Applies waiting when the
// node closes return ErrClosed, saying whether their batch may still be written.
package cluster
