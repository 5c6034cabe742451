package authz

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/internal/syncbuf"
	"github.com/teamgate/teamgate/store"
)

// withDropReportInterval shortens DecisionLogDropReportInterval for one engine (tests only).
func withDropReportInterval(d time.Duration) Option {
	return func(c *config) error {
		c.dropEvery = d
		return nil
	}
}

// heldSink blocks each Write while held, until released.
type heldSink struct {
	mu      sync.Mutex
	gate    chan struct{} // nil: not held
	entered chan struct{}
	n       int
}

func (s *heldSink) hold() {
	s.mu.Lock()
	s.gate = make(chan struct{})
	s.mu.Unlock()
}

func (s *heldSink) release() {
	s.mu.Lock()
	close(s.gate)
	s.gate = nil
	s.mu.Unlock()
}

func (s *heldSink) Write(ctx context.Context, rs []DecisionRecord) error {
	s.mu.Lock()
	g := s.gate
	s.n += len(rs)
	s.mu.Unlock()
	if g != nil {
		s.entered <- struct{}{}
		select {
		case <-g:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

var droppedField = regexp.MustCompile(` dropped=(\d+) `)

// TestAttack23DropsOfABurstAreSaidWhenTheLogGoesIdle: drops made within the report interval
// after a line are said once the interval has passed, even when no decision follows (the
// drainer sleeps while idle): not at the next decision, hours later, or only at Close. The lines
// add up to Stats.DecisionLogDropped, one line per interval.
func TestAttack23DropsOfABurstAreSaidWhenTheLogGoesIdle(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var out syncbuf.Buffer
	sink := &heldSink{entered: make(chan struct{}, 100)}
	const every = 20 * time.Millisecond
	e := newAcmeInternal(t, WithDecisionLog(sink), WithDecisionLogQueue(4), WithDecisionCache(0),
		WithLogger(slog.New(slog.NewTextHandler(&out, nil))), withDropReportInterval(every))
	req := Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	burst := func() {
		sink.hold()
		_, err := e.Authorize(ctx, req)
		require.NoError(t, err)
		<-sink.entered // the drainer is stuck: the queue fills, then drops
		for range 10 {
			_, err := e.Authorize(ctx, req)
			require.NoError(t, err)
		}
		sink.release()
		require.NoError(t, e.FlushDecisionLog(ctx))
	}
	burst()
	burst() // within the interval of the first line, most likely; either way said by the drainer
	require.Equal(t, uint64(12), e.Stats().DecisionLogDropped)
	// No decision follows: the drainer is idle.
	require.Eventually(t, func() bool { return len(out.Lines()) == 2 }, time.Minute, time.Millisecond,
		"the second burst's drops are said once the interval has passed: %q", out.Lines())
	require.NoError(t, e.Close(ctx))
	lines := out.Lines()
	require.Len(t, lines, 2, "Close has nothing left to say")
	total := 0
	for _, l := range lines {
		m := droppedField.FindStringSubmatch(l)
		require.NotNil(t, m, l)
		n, _ := strconv.Atoi(m[1])
		total += n
	}
	require.Equal(t, 12, total)
}

// failingSink fails every write: with an error, or by panicking.
type failingSink struct{ panics bool }

func (s failingSink) Write(context.Context, []DecisionRecord) error {
	if s.panics {
		panic("sink bug")
	}
	return errors.New("disk full")
}

// TestAttack23CloseLeavesNothingBehind: with a sink that fails, panics, or blocks until its
// context ends, decisions are answered; every decision is written, failed or dropped; the
// WARN lines add up to the drops made before Close; Close returns (the blocking sink's with its
// context's error), a second Close and a Flush after it return nil at once, a decision after
// Close is answered and counted as dropped; and no goroutine of the engine is left running.
// (Not parallel: it counts goroutines.)
func TestAttack23CloseLeavesNothingBehind(t *testing.T) {
	ctx := t.Context()
	st := conformance.OpenStore(t, store.Options{})
	base := runtime.NumGoroutine()
	for name, sink := range map[string]DecisionSink{
		"fails": failingSink{}, "panics": failingSink{panics: true}, "blocks": &heldSink{entered: make(chan struct{}, 1000)},
	} {
		if h, ok := sink.(*heldSink); ok {
			h.hold()
		}
		var out syncbuf.Buffer
		e, err := New(ctx, st, WithDecisionLog(sink), WithDecisionLogQueue(8), WithDecisionCache(0),
			WithLogger(slog.New(slog.NewTextHandler(&out, nil))), withDropReportInterval(time.Millisecond))
		require.NoError(t, err)
		const n = 2000
		for i := range n {
			d, err := e.Authorize(ctx, Request{Subject: "bob", Action: "runs.stop", Resource: "acme/vision", Owner: []string{"", "acme"}[i%2]})
			require.NoError(t, err, name)
			require.True(t, d.Allowed, name)
		}
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err = e.Close(cctx)
		cancel()
		if name == "blocks" {
			require.ErrorIs(t, err, context.DeadlineExceeded, name)
		} else {
			require.NoError(t, err, name)
		}
		s := e.Stats()
		require.Equal(t, uint64(n), s.DecisionLogWritten+s.DecisionLogFailed+s.DecisionLogDropped, "%s: %+v", name, s)
		said := 0
		for _, l := range out.Lines() {
			if m := droppedField.FindStringSubmatch(l); m != nil {
				k, _ := strconv.Atoi(m[1])
				said += k
			}
		}
		require.Equal(t, int(s.DecisionLogDropped), said, "%s: the lines add up to the drops", name)
		require.NoError(t, e.Close(ctx), name)
		require.NoError(t, e.FlushDecisionLog(ctx), name)
		_, err = e.Authorize(ctx, Request{Subject: "bob", Action: "runs.stop", Resource: "acme/vision"})
		require.NoError(t, err, name)
		require.Equal(t, s.DecisionLogDropped+1, e.Stats().DecisionLogDropped, name)
	}
	// (Polled here: require.Eventually runs its condition on a goroutine of its own.)
	left := runtime.NumGoroutine()
	for deadline := time.Now().Add(10 * time.Second); left > base && time.Now().Before(deadline); left = runtime.NumGoroutine() {
		time.Sleep(time.Millisecond)
	}
	require.LessOrEqual(t, left, base, "goroutines: %d before the engines, %d after", base, left)
}
