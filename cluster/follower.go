package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teamgate/teamgate/store"
)

// followHeartbeat is how often an idle consumer's server says it is alive (the least nats.go
// accepts); two missed heartbeats make the ordered consumer start again elsewhere.
const followHeartbeat = 500 * time.Millisecond

// snapshotTimeout bounds storing or fetching a snapshot in the background.
const snapshotTimeout = time.Minute

// errRestart asks the follower to open its consumer again at once (after a bootstrap).
var errRestart = errors.New("cluster: restart the consumer")

// follow applies the stream to the store until Close or a FollowerError. Anything else (the
// connection or the stream lost a while) restarts it from the store's revision after a pause.
func (n *Node) follow() {
	defer n.wg.Done()
	pause := 50 * time.Millisecond
	for n.ctx.Err() == nil {
		err := n.followOnce()
		if n.ctx.Err() != nil {
			return
		}
		if fe := (*FollowerError)(nil); errors.As(err, &fe) {
			n.log.Error("teamgate: cluster follower stopped", "stream", n.name, "err", fe)
			n.mu.Lock()
			n.err = fe
			n.broadcast()
			n.mu.Unlock()
			return
		}
		if errors.Is(err, errRestart) {
			pause = 50 * time.Millisecond
			continue
		}
		n.log.Warn("teamgate: cluster follower lost the stream; retrying", "stream", n.name, "in", pause, "err", err)
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// followOnce opens an ordered consumer at the store's next revision (bootstrapping first when
// the stream no longer has it) and applies what it delivers.
func (n *Node) followOnce() error {
	info, err := n.stream.Info(n.ctx)
	if err != nil {
		return err
	}
	if err := n.sameStream(info); err != nil {
		return err
	}
	n.contact(info.State.LastSeq)
	rev := n.st.Revision()
	if rev > info.State.LastSeq {
		return &FollowerError{Revision: rev + 1, Err: fmt.Errorf("the store is ahead of the stream, whose last revision is %d (was the stream recreated?)", info.State.LastSeq)}
	}
	if rev+1 < info.State.FirstSeq {
		if err := n.bootstrap(info.State.FirstSeq - 1); err != nil {
			return err
		}
		rev = n.st.Revision()
	}
	// When its consumer fails, nats.go's ordered consumer recreates it inside Messages and Next,
	// and by default keeps trying for ever without looking at any context: a follower whose
	// stream lost its leader, or was deleted, would never see Close. One attempt (each bounded
	// by nats.go at 10 s) hands the failure back to follow, which retries and watches Close.
	cons, err := n.stream.OrderedConsumer(n.ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: rev + 1, MaxResetAttempts: 1})
	if err != nil {
		return err
	}
	// The consumer lives on one NATS server; when that server goes away only missing heartbeats
	// tell, and the ordered consumer then recreates itself on another. Short heartbeats keep
	// that gap near a second instead of the default's tens of seconds.
	it, err := cons.Messages(jetstream.PullHeartbeat(followHeartbeat))
	if err != nil {
		return err
	}
	defer it.Stop()
	consumer := ""
	for {
		msg, err := it.Next(jetstream.NextContext(n.ctx))
		if err != nil {
			return err
		}
		// The ordered consumer recreates itself (a new name) after a lost server or a deleted
		// stream, and would read a stream recreated meanwhile from the same sequence on: check
		// that the stream is still the one the node follows before applying what a consumer
		// delivers (once per consumer; the first too, since followOnce checked before opening it).
		if meta, err := msg.Metadata(); err == nil && meta.Consumer != consumer {
			if err := n.checkStream(); err != nil {
				return err
			}
			consumer = meta.Consumer
		}
		if err := n.applyMsg(msg); err != nil {
			return err
		}
	}
}

// checkStream asks for the stream's info and checks it is the stream the node follows.
func (n *Node) checkStream() error {
	ctx, cancel := context.WithTimeout(n.ctx, publishTimeout)
	defer cancel()
	info, err := n.stream.Info(ctx)
	if err != nil {
		return err
	}
	return n.sameStream(info)
}

// sameStream stops the follower when the stream was deleted and created again since the node
// started (its creation time differs): the new stream's revisions are another directory's, and
// applying them on top of the store's would mix two histories. Start a node on an empty store.
func (n *Node) sameStream(info *jetstream.StreamInfo) error {
	if info.Created.Equal(n.created) {
		return nil
	}
	return &FollowerError{Revision: n.st.Revision() + 1, Err: fmt.Errorf("stream %s was recreated (created %s, the node followed the one created %s): its revisions are another directory's; start a node on an empty store",
		n.name, info.Created.UTC().Format(time.RFC3339Nano), n.created.UTC().Format(time.RFC3339Nano))}
}

// applyMsg applies one batch at its stream sequence, which must be the store's next revision.
func (n *Node) applyMsg(msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return err
	}
	seq, rev := meta.Sequence.Stream, n.st.Revision()
	switch {
	case seq <= rev:
		return nil // delivered again after the consumer was reset
	case seq > rev+1:
		// The revisions between were removed from the stream (limits, purge) while this node
		// was behind: only a snapshot can bridge them.
		if err := n.bootstrap(seq - 1); err != nil {
			return err
		}
		return errRestart
	}
	var cs store.Changes
	if err := json.Unmarshal(msg.Data(), &cs); err != nil {
		return &FollowerError{Revision: seq, Err: fmt.Errorf("the batch does not decode: %w", err)}
	}
	if _, err := n.replica.ApplyEvent(n.ctx, store.Event{Revision: seq, Changes: cs}); err != nil {
		if n.ctx.Err() != nil {
			return err
		}
		return &FollowerError{Revision: seq, Err: fmt.Errorf("the batch does not apply: %w", err)}
	}
	n.mu.Lock()
	// A publish of this node's writer lands at the revision after the one it expected, or not
	// at all: a message carrying its id anywhere else is not its.
	if a, ok := n.attempts[msg.Headers().Get(jetstream.MsgIDHeader)]; ok && seq == a.base+1 {
		a.landed = seq
	}
	n.applied = seq
	n.streamLast = max(n.streamLast, seq+meta.NumPending)
	n.lastContact = time.Now()
	n.broadcast()
	n.mu.Unlock()
	return nil
}

// snapshot is the stored form of Node.Snapshot.
type snapshot struct {
	Stream    string      `json:"stream"`
	Revision  uint64      `json:"revision"`
	Directory *store.File `json:"directory"`
}

// bootstrap restores the newest snapshot, which must reach at least revision need (the stream
// has nothing before need+1). A snapshot that cannot be used (its object is corrupt, it does not
// decode, it is another stream's or too old, or its directory is invalid) is a FollowerError and
// leaves the store as it was: Restore is one atomic batch. Failing to reach the bucket is not:
// follow tries again.
func (n *Node) bootstrap(need uint64) error {
	cur := n.st.Revision()
	gone := fmt.Errorf("revisions %d to %d are no longer in stream %s", cur+1, need, n.name)
	ctx, cancel := context.WithTimeout(n.ctx, snapshotTimeout)
	data, err := n.snaps.GetBytes(ctx, snapshotObject)
	cancel()
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return &FollowerError{Revision: cur + 1, Err: fmt.Errorf("%w and there is no snapshot", gone)}
	case errors.Is(err, jetstream.ErrDigestMismatch):
		return &FollowerError{Revision: cur + 1, Err: fmt.Errorf("%w and the snapshot object is corrupt: %w", gone, err)}
	case err != nil:
		return err
	}
	var snap snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return &FollowerError{Revision: cur + 1, Err: fmt.Errorf("%w and the snapshot does not decode: %w", gone, err)}
	}
	switch {
	case snap.Stream != n.name:
		return &FollowerError{Revision: cur + 1, Err: fmt.Errorf("%w and the snapshot is of stream %q", gone, snap.Stream)}
	case snap.Directory == nil:
		return &FollowerError{Revision: cur + 1, Err: fmt.Errorf("%w and the snapshot holds no directory", gone)}
	case snap.Revision < need:
		return &FollowerError{Revision: cur + 1, Err: fmt.Errorf("%w and the newest snapshot is of revision %d", gone, snap.Revision)}
	}
	if _, err := n.replica.Restore(n.ctx, snap.Revision, snap.Directory); err != nil {
		if n.ctx.Err() != nil {
			return err
		}
		return &FollowerError{Revision: cur + 1, Err: fmt.Errorf("%w and the snapshot of revision %d does not restore: %w", gone, snap.Revision, err)}
	}
	n.log.Info("teamgate: cluster node restored a snapshot", "stream", n.name, "from", cur, "to", snap.Revision)
	n.mu.Lock()
	n.applied = snap.Revision
	n.snapshotRev = max(n.snapshotRev, snap.Revision)
	n.broadcast()
	n.mu.Unlock()
	return nil
}

// Snapshot stores the node's directory at its current revision in the stream's snapshot bucket
// (an object store) and returns that revision, unless the bucket already holds a snapshot at
// least as new (then it returns that one's revision). A node that finds revisions gone from the
// stream restores the newest snapshot and replays from the revision after it, so a stream may be
// trimmed up to the newest snapshot's revision, never past it. An empty directory (revision 0)
// needs no snapshot: Snapshot returns 0.
func (n *Node) Snapshot(ctx context.Context) (uint64, error) {
	var data []byte
	var rev uint64
	err := n.st.View(func(r store.Reader) error {
		rev = r.Revision()
		var err error
		data, err = json.Marshal(snapshot{Stream: n.name, Revision: rev, Directory: r.Snapshot()})
		return err
	})
	if err != nil || rev == 0 {
		return 0, err
	}
	if info, err := n.snaps.GetInfo(ctx, snapshotObject); err == nil {
		if have, err := strconv.ParseUint(info.Metadata["revision"], 10, 64); err == nil && have >= rev {
			return have, nil
		}
	}
	_, err = n.snaps.Put(ctx, jetstream.ObjectMeta{Name: snapshotObject,
		Metadata: map[string]string{"revision": strconv.FormatUint(rev, 10)}}, bytes.NewReader(data))
	if err != nil {
		return 0, fmt.Errorf("cluster: store snapshot of revision %d: %w", rev, err)
	}
	n.mu.Lock()
	n.snapshotRev = max(n.snapshotRev, rev)
	n.mu.Unlock()
	return rev, nil
}

// requestSnapshot asks the snapshot loop for a snapshot, without waiting.
func (n *Node) requestSnapshot() {
	select {
	case n.snapCh <- struct{}{}:
	default:
	}
}

// snapshots takes the snapshots Apply asks for, one at a time, off the write path.
func (n *Node) snapshots() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.snapCh:
			ctx, cancel := context.WithTimeout(n.ctx, snapshotTimeout)
			if _, err := n.Snapshot(ctx); err != nil {
				n.log.Warn("teamgate: cluster snapshot failed", "stream", n.name, "err", err)
			}
			cancel()
		}
	}
}
