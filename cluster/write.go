package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/store"
)

const (
	// publishTimeout bounds one publish's wait for the stream's acknowledgement. An
	// acknowledgement lost with a NATS server never comes; the writer then publishes again
	// through the server nats.go reconnected to (see "Writes" in the package doc on why that
	// never writes a batch twice).
	publishTimeout = 2 * time.Second
	// maxGroup bounds how many callers' batches one message carries.
	maxGroup = 256
	// headerRoom is what a message's subject and headers (message id, expected stream and last
	// sequence) may take of the payload limit.
	headerRoom = 1024
)

// errGaveUp ends an Apply's context when Options.WriteTimeout passes.
var errGaveUp = errors.New("cluster: write timeout")

// publishFunc publishes one group's message with its id, expecting the stream's last revision
// to be base.
type publishFunc func(ctx context.Context, data []byte, id string, base uint64) (*jetstream.PubAck, error)

func (n *Node) publishGroup(ctx context.Context, data []byte, id string, base uint64) (*jetstream.PubAck, error) {
	return n.js.Publish(ctx, n.subject, data, jetstream.WithMsgID(id),
		jetstream.WithExpectStream(n.name), jetstream.WithExpectLastSequence(base))
}

// request is one Apply waiting for the writer.
type request struct {
	ctx    context.Context // the caller's, bounded by Options.WriteTimeout
	body   []byte          // the batch as a JSON array (store.Changes)
	batch  []store.Change
	serial uint64
	done   chan result // the writer's one answer (buffered)

	mu        sync.Mutex
	abandoned bool  // the caller returned: leave it out of later publishes
	inflight  int   // publishes carrying it whose outcome is not known: it may be written
	lastErr   error // why the last publish carrying it failed
	lost      bool  // lastErr was a lost race (another writer went first)

	answered bool // the writer's own flag
}

type result struct {
	rev uint64
	err error
}

// attempt is a published group whose outcome the writer does not know yet: it lands at base+1 or
// never.
type attempt struct {
	base    uint64
	members []*request
	landed  uint64 // set by the follower when the message lands (at base+1)
}

var serials atomic.Uint64

// Apply writes changes as one batch of the shared directory and returns its revision once this
// node has applied it (read-your-writes).
//
// The batch is validated against the node's state first: an invalid batch returns the store's
// error and never reaches the stream (when the node is behind the stream, it catches up and
// validates again before it says the batch is invalid). Concurrent Applies on one node are
// committed together: the node's writer validates each against the state the ones before it
// leave, publishes the valid ones as one message (so they share its revision) with the node's
// revision as the stream's expected last sequence, and answers each caller. When another node
// wrote first, the writer catches up, validates again and publishes again, for up to
// Options.WriteTimeout (then ErrConflict); so ErrConflict, ErrInvalid and ErrNotFound otherwise
// mean the batch is invalid against the directory's latest state. A batch larger than a message
// of the stream carries is ErrInvalid, at once.
//
// When ctx ends first, or the node closes, the error says whether the batch may still be
// written: a publish carrying it may have been written without its acknowledgement arriving,
// but only on the state it was validated against. An empty batch returns the current revision.
func (n *Node) Apply(ctx context.Context, changes ...store.Change) (uint64, error) {
	if err := n.usable(); err != nil {
		return 0, err
	}
	if len(changes) == 0 {
		return n.Revision(), nil
	}
	body, err := n.encode(changes)
	if err != nil {
		return 0, err
	}
	wctx, cancel := context.WithTimeoutCause(ctx, n.opts.WriteTimeout, errGaveUp)
	defer cancel()
	r := &request{ctx: wctx, body: body, batch: changes, serial: serials.Add(1), done: make(chan result, 1)}
	select {
	case n.writes <- r:
	case <-wctx.Done():
		return 0, n.abandon(r)
	case <-n.ctx.Done():
		return 0, teamgate.ErrClosed
	}
	select {
	case res := <-r.done:
		return res.rev, res.err
	case <-wctx.Done():
		return 0, n.abandon(r)
	case <-n.ctx.Done(): // the writer may stop before it takes r
		return 0, n.abandon(r)
	}
}

// abandon is Apply's answer when its context ends before the writer's: the writer's, if it came
// meanwhile, else why the batch was not written and whether it may still be.
func (n *Node) abandon(r *request) error {
	r.mu.Lock()
	r.abandoned = true
	maybe, lastErr, lost := r.inflight > 0, r.lastErr, r.lost
	r.mu.Unlock()
	select {
	case res := <-r.done:
		return res.err
	default:
	}
	written := "the batch was not written"
	if maybe {
		written = "the batch may have been written"
	}
	if r.ctx.Err() == nil { // the node closed
		return fmt.Errorf("%w (%s)", teamgate.ErrClosed, written)
	}
	if context.Cause(r.ctx) != errGaveUp {
		return fmt.Errorf("cluster: write to stream %s (%s): %w", n.name, written, r.ctx.Err())
	}
	if lost && !maybe {
		return &teamgate.ConflictError{What: "stream", Name: n.name,
			Reason: fmt.Sprintf("batch not written within %s: other writers kept going first (the node is at revision %d): %v", n.opts.WriteTimeout, n.Revision(), lastErr)}
	}
	return fmt.Errorf("cluster: write to stream %s failed for %s (%s): %w", n.name, n.opts.WriteTimeout, written, cmpErr(lastErr, context.DeadlineExceeded))
}

func cmpErr(err, def error) error {
	if err == nil {
		return def
	}
	return err
}

// encode is the message body of a batch: store.Changes as JSON.
func (n *Node) encode(changes []store.Change) ([]byte, error) {
	data, err := json.Marshal(store.Changes(changes))
	if err != nil {
		return nil, fmt.Errorf("cluster: encode batch: %w", err)
	}
	if limit := n.bodyLimit(); int64(len(data)) > limit {
		return nil, tooLarge(len(changes), len(data), limit)
	}
	return data, nil
}

func tooLarge(changes, size int, limit int64) error {
	return teamgate.Invalid("batch", fmt.Sprintf("%d changes", changes),
		fmt.Sprintf("encodes to %d bytes, more than the %d a message of this stream carries: split it", size, limit))
}

// bodyLimit is the largest message body the node publishes: the NATS server's maximum payload,
// or the stream's maximum message size when smaller, less room for the headers.
func (n *Node) bodyLimit() int64 {
	limit := n.nc.MaxPayload()
	if m := n.maxMsgSize.Load(); m > 0 && m < limit {
		limit = m
	}
	return limit - headerRoom
}

// writer commits the node's Applies: it takes every request queued, publishes the valid ones as
// one group until each is answered, and takes the next ones. One writer per node means one
// publish of this node in flight at a time: the node does not race itself.
func (n *Node) writer() {
	defer n.wg.Done()
	var pending []*request
	losses := 0
	for {
		if len(pending) == 0 {
			select {
			case r := <-n.writes:
				pending = append(pending, r)
			case <-n.ctx.Done():
				return
			}
		}
	drain:
		for {
			select {
			case r := <-n.writes:
				pending = append(pending, r)
			default:
				break drain
			}
		}
		pending = n.round(pending, &losses)
	}
}

// round makes one attempt at writing pending and returns the requests still unanswered.
func (n *Node) round(pending []*request, losses *int) []*request {
	live := pending[:0]
	for _, r := range pending {
		if !r.answered && r.ctx.Err() == nil {
			live = append(live, r)
		}
	}
	pending = live
	if err := n.usable(); err != nil {
		for _, r := range pending {
			if r.inFlight() > 0 {
				r.answer(0, fmt.Errorf("%w (the batch may have been written)", err))
			}
			r.answer(0, err)
		}
		return nil
	}
	if len(pending) == 0 {
		return nil
	}
	// A writer that just lost a race waits a little, at random, growing with its losses: writers
	// racing in step would otherwise lose in step.
	if *losses > 0 {
		n.pause(time.Duration(rand.Int64N(int64(min(100*time.Microsecond<<min(*losses, 6), 5*time.Millisecond)))))
	}

	// The group: pending requests in order, as many as fit one message.
	limit := n.bodyLimit()
	var group []*request
	size := int64(2)
	for _, r := range pending {
		if int64(len(r.body)) > limit { // the stream's limit shrank since Apply checked
			r.answer(0, tooLarge(len(r.batch), len(r.body), limit))
			continue
		}
		if len(group) == maxGroup || size+int64(len(r.body)) > limit {
			break
		}
		group = append(group, r)
		size += int64(len(r.body)) + 1
	}
	if len(group) == 0 {
		return pending
	}
	batches := make([][]store.Change, len(group))
	for i, r := range group {
		batches[i] = r.batch
	}
	base, errs, err := n.replica.ValidateEach(n.ctx, batches)
	if err != nil {
		n.answerAll(pending, err)
		return nil
	}
	// Every message up to base is recorded now (the follower records a landing before it
	// reports the revision): settle the earlier publishes that base decides. If one of them
	// carried a request of the group, validating it again was wrong: start over.
	if !n.waitApplied(base, time.Second) || n.settle(base) {
		return pending
	}
	var valid []*request
	var invalid bool
	for i, r := range group {
		if errs[i] == nil {
			valid = append(valid, r)
			continue
		}
		invalid = true
	}
	if invalid {
		// Judge a batch against the stream's latest state, not a lagging view: when the node is
		// behind, catch up and validate again. Cut off from NATS, the node's own revision decides.
		ictx, cancel := context.WithTimeout(n.ctx, publishTimeout)
		info, ierr := n.stream.Info(ictx)
		cancel()
		if ierr == nil && info.State.LastSeq > base {
			n.contact(info.State.LastSeq)
			n.waitApplied(info.State.LastSeq, publishTimeout)
			return pending
		}
		for i, r := range group {
			// A request a publish still in doubt carries waits for that publish to be settled.
			if errs[i] != nil && r.inFlight() == 0 {
				r.answer(0, errs[i])
			}
		}
	}
	if len(valid) == 0 {
		return pending
	}
	n.publishValid(base, valid, losses)
	return pending
}

// publishValid publishes valid (validated at base) as one message and handles the outcome.
func (n *Node) publishValid(base uint64, valid []*request, losses *int) {
	// The batches were validated together: one whose caller gave up meanwhile cannot be left
	// out of the message alone (a later one may need it). Validate again without it.
	for i, r := range valid {
		r.mu.Lock()
		if r.abandoned {
			r.mu.Unlock()
			for _, p := range valid[:i] {
				p.unpublished()
			}
			return
		}
		r.inflight++
		r.mu.Unlock()
	}
	members := valid
	parts := make([][]byte, 0, len(members))
	h := fnv.New64a()
	for _, r := range members {
		parts = append(parts, r.body[1:len(r.body)-1])
		h.Write(strconv.AppendUint(nil, r.serial, 10))
		h.Write([]byte{','})
	}
	data := make([]byte, 0, 2+len(parts))
	data = append(data, '[')
	for i, p := range parts {
		if i > 0 {
			data = append(data, ',')
		}
		data = append(data, p...)
	}
	data = append(data, ']')
	// The same group at the same revision gets the same id, so JetStream recognizes a publish
	// repeated after a lost acknowledgement (a duplicate, acknowledged with its revision);
	// any other publish is new.
	id := n.idPrefix + strconv.FormatUint(base, 10) + "." + strconv.FormatUint(h.Sum64(), 36)
	n.mu.Lock()
	if a, ok := n.attempts[id]; ok { // published before, in doubt: the same publish again
		for _, r := range members {
			r.unpublished()
		}
		members = a.members
	} else {
		n.attempts[id] = &attempt{base: base, members: members}
	}
	n.mu.Unlock()

	pctx, cancel := context.WithTimeout(n.ctx, publishTimeout)
	ack, err := n.publish(pctx, data, id, base)
	cancel()
	switch {
	case err == nil:
		*losses = 0
		n.forget(id)
		if !n.waitApplied(ack.Sequence, n.opts.WriteTimeout) {
			werr := n.usable() // closed, or the follower stopped
			if werr == nil {
				werr = fmt.Errorf("%w: written at revision %d, not yet applied by this node (at %d)", teamgate.ErrStale, ack.Sequence, n.Revision())
			}
			n.answerAll(members, werr)
			return
		}
		n.answerAll(members, nil, ack.Sequence)
		if every := n.opts.SnapshotEvery; every > 0 && ack.Sequence%uint64(every) == 0 {
			n.requestSnapshot()
		}
	case isWrongLastSequence(err):
		// Other batches took revision base+1 and perhaps more: this publish is not written.
		// Apply up to the stream's last revision as reported, then validate again: waiting for
		// base+1 only would publish against a state other writers have already overtaken.
		*losses++
		n.forget(id)
		for _, r := range members {
			r.failed(err, true)
		}
		n.waitApplied(max(base+1, reportedLast(err)), publishTimeout)
	case isTooLarge(err):
		n.forget(id)
		n.refreshLimits()
		if len(members) == 1 {
			members[0].answer(0, tooLarge(len(members[0].batch), len(members[0].body), n.bodyLimit()))
		}
		for _, r := range members {
			r.failed(err, false)
		}
	default:
		// In doubt: the message may land (at base+1) without its acknowledgement. The attempt
		// stays recorded until the stream passes base+1, and the requests stay in flight.
		for _, r := range members {
			r.mu.Lock()
			r.lastErr, r.lost = err, false
			r.mu.Unlock()
		}
		n.log.Warn("teamgate: cluster publish failed; retrying", "stream", n.name, "revision", base+1, "err", err)
		*losses++
		n.pause(min(time.Duration(*losses)*50*time.Millisecond, time.Second))
	}
}

// unpublished undoes the in-flight count publishValid took for r when it does not publish it
// after all, or publishes it again under an id already counted.
func (r *request) unpublished() {
	r.mu.Lock()
	r.inflight--
	r.mu.Unlock()
}

// failed records that a publish carrying r is settled as not written.
func (r *request) failed(err error, lost bool) {
	r.mu.Lock()
	r.inflight--
	r.lastErr, r.lost = err, lost
	r.mu.Unlock()
}

func (r *request) inFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflight
}

// answer gives r its result (the writer calls it once per request).
func (r *request) answer(rev uint64, err error) {
	if r.answered {
		return
	}
	r.answered = true
	r.done <- result{rev, err}
}

// answerAll answers every request: with err, or (err nil) at revision rev[0].
func (n *Node) answerAll(rs []*request, err error, rev ...uint64) {
	for _, r := range rs {
		if err != nil {
			r.answer(0, err)
		} else {
			r.answer(rev[0], nil)
		}
	}
}

// forget drops a settled attempt.
func (n *Node) forget(id string) {
	n.mu.Lock()
	delete(n.attempts, id)
	n.mu.Unlock()
}

// settle decides the publishes in doubt that revision upTo (applied) decides: one landed at its
// base+1 is written, its requests answered with that revision; one that did not is not written.
// It reports whether it answered any.
func (n *Node) settle(upTo uint64) bool {
	n.mu.Lock()
	var done []*attempt
	for id, a := range n.attempts {
		if a.base < upTo {
			done = append(done, a)
			delete(n.attempts, id)
		}
	}
	n.mu.Unlock()
	answered := false
	for _, a := range done {
		for _, r := range a.members {
			if a.landed != 0 {
				r.answer(a.landed, nil)
				answered = true
			} else {
				r.mu.Lock()
				r.inflight--
				r.mu.Unlock()
			}
		}
	}
	return answered
}

// waitApplied waits at most d, or until Close, for the follower to apply rev.
func (n *Node) waitApplied(rev uint64, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(n.ctx, d)
	defer cancel()
	return n.WaitRevision(ctx, rev) == nil
}

// pause sleeps d, or until Close.
func (n *Node) pause(d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-n.ctx.Done():
	}
}

// refreshLimits reads the stream's maximum message size again (an operator may change it).
func (n *Node) refreshLimits() {
	ctx, cancel := context.WithTimeout(n.ctx, publishTimeout)
	defer cancel()
	if info, err := n.stream.Info(ctx); err == nil {
		n.maxMsgSize.Store(int64(info.Config.MaxMsgSize))
	}
}

func isWrongLastSequence(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// isTooLarge reports the stream refusing a message over its maximum size.
func isTooLarge(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && api.ErrorCode == jsErrCodeMessageTooLarge
}

// jsErrCodeMessageTooLarge is nats-server's JSStreamMessageExceedsMaximumErr (nats.go names no
// constant for it).
const jsErrCodeMessageTooLarge jetstream.ErrorCode = 10054

// reportedLast is the stream's last revision as a wrong-last-sequence error reports it
// ("wrong last sequence: N"), or 0.
func reportedLast(err error) uint64 {
	var api *jetstream.APIError
	if !errors.As(err, &api) {
		return 0
	}
	_, num, ok := strings.Cut(api.Description, "wrong last sequence: ")
	if !ok {
		return 0
	}
	last, _ := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
	return last
}
