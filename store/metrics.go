package store

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// writeBuckets are the write latency histogram's upper bounds in seconds: an in-memory write
// takes tens of µs, an fsynced one a millisecond or more, a large data file seconds.
var writeBuckets = []float64{2.5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 1, 10}

// writeMetrics time the writes that go through the commit pipeline (Options.Registerer).
type writeMetrics struct {
	ok, failed prometheus.Observer
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
	return &writeMetrics{ok: vec.WithLabelValues("ok"), failed: vec.WithLabelValues("error")}, nil
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
