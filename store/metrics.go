package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/otelspan"
)

// writeBuckets are the write latency histogram's upper bounds in seconds: an in-memory write
// takes tens of µs, an fsynced one a millisecond or more, a large data file seconds.
var writeBuckets = []float64{2.5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 1, 10}

// writeMetrics time the writes that go through the commit pipeline (Options.Registerer).
type writeMetrics struct {
	ok, failed prometheus.Observer
	reg        prometheus.Registerer
	vec        prometheus.Collector
}

func newWriteMetrics(reg prometheus.Registerer) (*writeMetrics, error) {
	vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "teamgate_store_write_duration_seconds",
		Help:    "Time a write (Apply, ApplyEvent, Load) took until it was durable and visible, or refused, by outcome (ok, error).",
		Buckets: writeBuckets,
	}, []string{"outcome"})
	if err := reg.Register(vec); err != nil {
		return nil, fmt.Errorf("store: Options.Registerer: %w", err)
	}
	return &writeMetrics{ok: vec.WithLabelValues("ok"), failed: vec.WithLabelValues("error"), reg: reg, vec: vec}, nil
}

// unregister takes the metrics out of the registry (Close): a closed store writes nothing, and
// a store reopened on the same registry registers them again.
func (m *writeMetrics) unregister() {
	if m != nil {
		m.reg.Unregister(m.vec)
	}
}

// observe records a write that started at start; nil metrics record nothing.
func (m *writeMetrics) observe(start time.Time, err error) {
	if m == nil {
		return
	}
	h := m.ok
	if err != nil {
		h = m.failed
	}
	h.Observe(time.Since(start).Seconds())
}

// tracerName is the instrumentation scope of the store's spans (Options.TracerProvider).
const tracerName = "github.com/teamgate/teamgate/store"

// attrError is the kind of error a write's span ended with (errorKind).
const attrError = attribute.Key("teamgate.error")

// startWrite starts the span of a write (Apply, ApplyEvent, Load, Restore) named name, a child
// of ctx's span, when the store traces; endWrite ends it.
func (s *Store) startWrite(ctx context.Context, name string) (context.Context, otelspan.Span) {
	return otelspan.Start(ctx, s.tracer, name)
}

// endWrite ends a write's span: the number of changes, and the revision written or the kind of
// the error that refused the write (which is recorded on the span and sets its status to Error).
func endWrite(sp otelspan.Span, changes int, rev uint64, err error) {
	if sp.Recording() {
		if err != nil {
			sp.SetAttributes(otelspan.Count.Int(changes), attrError.String(errorKind(err)))
		} else {
			sp.SetAttributes(otelspan.Count.Int(changes), otelspan.Revision.Int64(int64(rev)))
		}
	}
	sp.End(err)
}

// errorKind is the kind of err a write's span names in teamgate.error (see "Traces" in the
// package doc).
func errorKind(err error) string {
	switch {
	case errors.Is(err, teamgate.ErrInvalid):
		return "invalid"
	case errors.Is(err, teamgate.ErrNotFound):
		return "not_found"
	case errors.Is(err, teamgate.ErrConflict):
		return "conflict"
	case errors.Is(err, teamgate.ErrStale):
		return "stale"
	case errors.Is(err, teamgate.ErrClosed):
		return "closed"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	}
	return "other"
}
