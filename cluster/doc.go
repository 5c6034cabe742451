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
// Directory's Apply) validates the batch against the node's state with store.Replica.Validate,
// which applies and undoes it under the store's write lock. An invalid batch returns the store's
// error (ErrInvalid, ErrNotFound, ErrConflict) and never reaches the stream; when the node is
// behind the stream, it catches up and validates again before saying so. A valid batch is
// published with the node's revision as the expected last sequence. If another node wrote first,
// JetStream refuses it; the node waits until it has applied that write, validates again against
// the new state and publishes again, at most Options.MaxAttempts times (then ErrConflict). Since
// a batch is published only against the exact state it was validated on, and replaying changes
// on the same state gives the same result, every published batch applies on every node. Each
// Apply carries a message id, which JetStream deduplicates within the stream's duplicate window
// (two minutes by default): a publish whose acknowledgement was lost is retried without being
// written twice.
//
// Direct writes to the store are refused once it is a node's (store.Replicate; ErrConflict),
// so the store cannot drift from the stream. The refusal is durable: an on-disk store that was a
// node's keeps refusing direct writes after it is reopened (a node resumes it as before). To
// turn it into a standalone store, close the node, reopen the store and call store.Detach; it
// then keeps the directory as of its last revision. A store that is ahead of the stream (another
// stream's store, or a stream recreated) is refused by New.
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
// operator repairs the stream or replaces the node.
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
// trimmed up to the newest snapshot's revision, never past it.
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
// A host that wants a failed write never to land later connects with nats.ReconnectBufSize(-1). When the connection comes back (nats.go
// reconnects), the follower reopens its consumer at its revision + 1 and catches up. With three
// NATS servers and a 3-replica stream (Options.Replicas: 3), JetStream keeps the stream
// writable while two of them are up, and every node keeps reading from its own store.
//
// # Limits
//
// A batch travels as one message, so it must fit the NATS server's maximum payload (1 MiB by
// default; ErrInvalid otherwise: split it, or raise max_payload). The events a restore skips are not
// in the store's own event log, so a store.Watch that needs them ends with an error.
//
// # Concurrency
//
// A Node is safe for concurrent use. It runs three goroutines (the follower, a health probe that
// asks the stream for its last revision every Options.HealthInterval, and the snapshot writer);
// Close stops and waits for them. The caller owns the NATS connection and the store and closes
// them after the node. Package embedded runs a NATS server with JetStream inside the process for
// tests, examples and a single machine.
//
// Nothing the node does waits without a bound: nats.go's ordered consumer would recreate a
// failed consumer for ever, ignoring every context (a follower whose stream lost its leader
// never saw Close, which then waited for ever: the likely cause of a hang once seen in the
// server-loss test under -race). The node lets it try once, for at most 10 s, and retries
// itself while watching Close; so Close returns within about that.
//
// # Known issue
//
// The long form of the server-loss test (go test ./cluster -cluster.long: three rounds, each
// stopping the stream's leader and restarting it after) failed once in ten runs under -race on
// a loaded 2-core machine, in its third round and after the hang above was fixed: one node's
// write was refused 32 times in a row with "wrong last sequence: 758", so Apply gave up with
// ErrConflict. Each refusal was followed by a catch-up that returned at once, so the node was
// already at or past the revision the new stream leader reported: either the node applied a
// batch the new leader does not have, or the leader's expected-last-sequence check ran on a
// stale count after the change of leader (nats-server has fixed such cases before, e.g.
// nats-io/nats-server#8057). Not yet reproduced or explained; the default form of the test (one
// round, no restart) runs in every CI run.
package cluster
