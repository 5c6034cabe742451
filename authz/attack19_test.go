package authz

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// slowProducer is a decision whose producer has reserved its ring slot and not yet published it
// (a goroutine descheduled between decisionLog.reserve and publish, as in Engine.record).
type slowProducer struct {
	l    *decisionLog
	s    *logSlot
	pos  uint64
	woke bool
	req  Request
}

func reserveSlow(t *testing.T, e *Engine) *slowProducer {
	t.Helper()
	s, pos, woke := e.declog.reserve()
	require.NotNil(t, s, "a slot is free")
	return &slowProducer{l: e.declog, s: s, pos: pos, woke: woke, req: Request{Subject: "slow", Action: "runs.get", Resource: "acme/vision"}}
}

// publish finishes the slow producer's record as Engine.record does.
func (p *slowProducer) publish(e *Engine) {
	d := Decision{Role: "none", Reasons: []Reason{}, Revision: 1}
	tr := decisionTrace{path: PathCompiled, policy: e.Policy()}
	p.s.set(&p.req, &d, tr.policy, &tr, nil)
	p.s.rev.Store(d.Revision)
	p.s.minRev.Store(p.req.MinRevision)
	p.l.publish(p.s, p.pos, p.woke)
}

// subjects are the subjects of recs.
func subjects(recs []DecisionRecord) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Request.Subject)
	}
	return out
}

// TestAttack19FlushWaitsForEarlierSlots: FlushDecisionLog promises every decision logged before
// the call, but the drainer stops at the first slot not yet published. A decision that returned
// (its record published) behind a producer still writing its slot is not in the sink when Flush
// returns.
func TestAttack19FlushWaitsForEarlierSlots(t *testing.T) {
	t.Parallel()
	sink := &attackSink{}
	e := newAcmeInternal(t, WithDecisionLog(sink), WithDecisionCache(0))
	slow := reserveSlow(t, e)
	req := Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	_, err := e.Authorize(t.Context(), req) // returned: its record is queued behind slow's slot
	require.NoError(t, err)
	done := make(chan []string, 1)
	go func() {
		err := e.FlushDecisionLog(t.Context())
		sink.mu.Lock()
		defer sink.mu.Unlock()
		if err != nil {
			t.Error(err)
		}
		done <- subjects(sink.recs)
	}()
	select {
	case got := <-done: // returned while slow's slot is unpublished
		slow.publish(e)
		require.Contains(t, got, "bob", "the record of a decision returned before FlushDecisionLog")
	case <-time.After(50 * time.Millisecond): // still waiting (or slow to start): let slow publish
		slow.publish(e)
		require.Contains(t, <-done, "bob", "the record of a decision returned before FlushDecisionLog")
	}
	require.NoError(t, e.Close(t.Context()))
}

// TestAttack19CloseAccountsForReservedSlots: a record reserved before Close and published after
// the drainer's last take is neither written nor counted as dropped, and so is every record
// queued behind it: Close returns with written+dropped+failed below the records queued.
func TestAttack19CloseAccountsForReservedSlots(t *testing.T) {
	t.Parallel()
	sink := &attackSink{}
	e := newAcmeInternal(t, WithDecisionLog(sink), WithDecisionCache(0))
	slow := reserveSlow(t, e)
	req := Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	_, err := e.Authorize(t.Context(), req)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- e.Close(t.Context()) }()
	select {
	case err := <-done: // Close returned with slow's slot unpublished
		require.NoError(t, err)
		slow.publish(e)
	case <-time.After(50 * time.Millisecond):
		slow.publish(e)
		require.NoError(t, <-done)
	}
	st := e.Stats()
	require.Equal(t, uint64(2), st.DecisionLogWritten+st.DecisionLogDropped+st.DecisionLogFailed,
		"both records queued before Close are written or counted: %+v", st)
	require.Equal(t, uint64(2), st.DecisionLogWritten, "Close writes the records queued before it")
	require.ElementsMatch(t, []string{"slow", "bob"}, subjects(sink.recs))
}

// waitHookDir is a store whose WaitRevision runs hook once (a MinRevision request waits there,
// between authorize's load of the policy and its cache lookup).
type waitHookDir struct {
	*store.Store
	hook func()
}

func (d *waitHookDir) WaitRevision(ctx context.Context, rev uint64) error {
	if h := d.hook; h != nil {
		d.hook = nil
		h()
	}
	return d.Store.WaitRevision(ctx, rev)
}

// TestAttack19HitLoggedWithServedPolicy: a SetPolicy that lands between authorize's load of the
// policy and its cache lookup, with the new policy's decision already cached and stamped, makes
// the call a fast hit on the new policy's decision. With metrics (the observed path) the record
// and the span said the old policy's fingerprint: `teamgate decisions --recheck` would recheck
// it under a policy that did not decide it. Without metrics the record is the entry's (right).
func TestAttack19HitLoggedWithServedPolicy(t *testing.T) {
	t.Parallel()
	frozen := rego.Module{Name: "x.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"frozen\" if input.subject.id == \"bob\"\n"}
	for _, metrics := range []bool{false, true} {
		sink := &attackSink{}
		dir := &waitHookDir{Store: conformance.OpenStore(t, store.Options{})}
		opts := []Option{WithDecisionLog(sink)}
		if metrics {
			opts = append(opts, WithMetrics(prometheus.NewRegistry()))
		}
		e, err := New(t.Context(), dir, opts...)
		require.NoError(t, err)
		old := e.Policy()
		r := Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision", MinRevision: 1}
		dir.hook = func() {
			require.NoError(t, e.SetPolicy(t.Context(), []rego.Module{frozen}))
			for range 3 { // a miss, a slow hit that stamps, a fast hit
				_, err := e.Authorize(t.Context(), r)
				require.NoError(t, err)
			}
		}
		d, err := e.Authorize(t.Context(), r)
		require.NoError(t, err)
		require.Nil(t, dir.hook, "the hook ran")
		require.False(t, d.Allowed, "the frozen policy's decision was served")
		require.NotEqual(t, old.Fingerprint(), e.Policy().Fingerprint())
		require.NoError(t, e.Close(t.Context()))
		require.Len(t, sink.recs, 4)
		last := sink.recs[3]
		require.Equal(t, attackLine(r, d), attackLine(last.Request, last.Decision))
		require.Equal(t, e.Policy().Fingerprint(), last.Policy, "metrics %v: the record names the policy that decided", metrics)
	}
}
