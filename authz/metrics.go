package authz

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/trace"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/rego"
)

// WithMetrics registers the engine's Prometheus metrics with reg (a prometheus.NewRegistry of
// the host's, usually; nothing is registered anywhere else, and nothing without this option).
// Default: no metrics. A nil reg is an error matching teamgate.ErrInvalid; a registration that
// fails (the same metrics registered twice: give a second engine on one registry its own
// labels with prometheus.WrapRegistererWith) makes New fail with reg's error, which
// errors.As matches against prometheus.AlreadyRegisteredError.
//
// The metrics (the package doc lists them) are read from the engine's counters when reg is
// gathered; the one cost per decision is the latency histogram's observation.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(c *config) error {
		if reg == nil {
			return teamgate.Invalid("metrics registerer", "nil", "pass a prometheus.Registerer, or leave WithMetrics out")
		}
		c.observe.registerer = reg
		return nil
	}
}

// observeConfig is what WithMetrics and WithTracerProvider ask for.
type observeConfig struct {
	registerer prometheus.Registerer
	tracers    trace.TracerProvider
}

// observer records metrics and spans of an engine; the engine has none when neither is asked
// for, so the default decision path pays one nil check.
type observer struct {
	metrics *decisionMetrics // nil without WithMetrics
	tracer  trace.Tracer     // nil without WithTracerProvider
	// epoch lets a decision read the monotonic clock only: time.Since(epoch) reads one clock,
	// time.Now two (where reading a clock costs tens of nanoseconds, a cached hit's cost doubles).
	epoch time.Time
}

// build makes e's observer, registering its metrics; nil when nothing is observed.
func (c observeConfig) build(e *Engine) (*observer, error) {
	if c.registerer == nil && c.tracers == nil {
		return nil, nil
	}
	o := &observer{epoch: time.Now()}
	if c.tracers != nil {
		o.tracer = c.tracers.Tracer(tracerName)
	}
	if c.registerer != nil {
		m, err := newDecisionMetrics(e, c.registerer)
		if err != nil {
			return nil, err
		}
		o.metrics = m
	}
	return o, nil
}

// authorize is Authorize observed: timed into the latency histogram and inside a span, and
// recorded in the decision log when logged.
func (o *observer) authorize(ctx context.Context, e *Engine, req *Request, logged bool) (Decision, error) {
	return o.authorizeThen(ctx, e, req, logged, nil)
}

// authorizeThen is authorize whose decision then (when not nil) may turn into another (see
// Engine.authorizeThen): the histogram, the span and the log see the decision then returns.
func (o *observer) authorizeThen(ctx context.Context, e *Engine, req *Request, logged bool, then thenFunc) (Decision, error) {
	var span trace.Span
	if o.tracer != nil {
		ctx, span = o.startDecision(ctx, req)
	}
	var start time.Duration
	if o.metrics != nil {
		start = time.Since(o.epoch)
	}
	t := decisionTrace{untimed: !logged || o.metrics != nil}
	d, err := e.authorize(ctx, req, &t)
	if then != nil {
		d, err = thenOf(then, d, err, &t)
	}
	if err != nil {
		t.path = PathNone
	}
	if o.metrics != nil {
		t.latency = time.Since(o.epoch) - start
		if h := o.metrics.latency[t.path][outcomeOf(d, err)]; h != nil {
			h.Observe(t.latency.Seconds())
		}
	}
	if logged {
		e.record(req, &d, &t, err)
	}
	if span != nil {
		endDecision(span, d, t.path, err)
	}
	return d, err
}

// outcome is what became of an Authorize call.
type outcome uint8

const (
	outcomeAllowed outcome = iota
	outcomeDenied
	outcomeError // a deny with reason error (the evaluation failed), or Authorize returned an error
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"allowed", "denied", "error"}

func outcomeOf(d Decision, err error) outcome {
	switch {
	case err != nil:
		return outcomeError
	case d.Allowed:
		return outcomeAllowed
	case d.Has(rego.CodeError):
		return outcomeError
	}
	return outcomeDenied
}

// decisionBuckets are the latency histogram's upper bounds in seconds: a cache hit takes about
// 100 ns, the compiled path a few µs, a full Rego evaluation about 100 µs, and the time budget
// of authors' modules is 1 s.
var decisionBuckets = []float64{1e-7, 2.5e-7, 5e-7, 1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2, 0.1, 1}

// decisionMetrics are an engine's metrics: the latency histogram, observed per decision, and a
// collector reading everything else from the engine when the registry is gathered. The collector
// exports the histogram too, from the snapshot it counts teamgate_decisions_total from, so that
// one gather's two never disagree.
type decisionMetrics struct {
	e       *Engine
	reg     prometheus.Registerer                      // where the collector is registered: Engine.Close unregisters it
	gone    atomic.Bool                                // unregistered: a later Close must not unregister another engine's
	vec     *prometheus.HistogramVec                   // makes the observers; not registered (Collect exports them)
	latency [numPaths][numOutcomes]prometheus.Observer // nil: cannot happen on this engine
	hists   []labelledHistogram                        // the non-nil ones of latency

	duration, decisions, cacheHits, cacheMisses, cacheEntries, evalErrors, overBudget, revision, logDropped *prometheus.Desc
}

type labelledHistogram struct {
	path, outcome string
	m             prometheus.Metric
	created       time.Time // when the series was made: OpenMetrics' _created
}

var _ prometheus.Collector = (*decisionMetrics)(nil)

func newDecisionMetrics(e *Engine, reg prometheus.Registerer) (*decisionMetrics, error) {
	const durationName = "teamgate_decision_duration_seconds"
	const durationHelp = "Time Authorize took, by the path that decided (cache_l1, cache_l2, compiled, rego; none when it returned an error) and the outcome (allowed, denied, error)."
	m := &decisionMetrics{e: e, reg: reg, vec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: durationName, Help: durationHelp, Buckets: decisionBuckets,
	}, []string{"path", "outcome"})}
	// Only the series that can occur on this engine exist, each from the start (at 0).
	paths := []DecisionPath{PathNone, PathRego}
	if e.compiled {
		paths = append(paths, PathCompiled)
	}
	if e.decisions != nil {
		paths = append(paths, PathCacheL1)
		if e.disk != nil {
			paths = append(paths, PathCacheL2)
		}
	}
	for _, p := range paths {
		for o := range numOutcomes {
			switch {
			case p == PathNone && o != outcomeError, // no decision: Authorize returned an error
				(p == PathCacheL1 || p == PathCacheL2) && o == outcomeError: // failures are not cached
				continue
			}
			h := m.vec.WithLabelValues(p.String(), outcomeNames[o])
			m.latency[p][o] = h
			m.hists = append(m.hists, labelledHistogram{path: p.String(), outcome: outcomeNames[o], m: h.(prometheus.Metric), created: time.Now()})
		}
	}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	m.duration = desc(durationName, durationHelp, "path", "outcome")
	m.decisions = desc("teamgate_decisions_total", "Authorize calls, by the path that decided and the outcome (the latency histogram's count).", "path", "outcome")
	m.cacheHits = desc("teamgate_decision_cache_hits_total", "Decisions served from the decision cache, by tier (l1: memory, l2: Badger).", "tier")
	m.cacheMisses = desc("teamgate_decision_cache_misses_total", "Cacheable decisions a tier of the decision cache did not hold, by tier (l1: memory, l2: Badger).", "tier")
	m.cacheEntries = desc("teamgate_decision_cache_entries", "Decisions held in the in-memory decision cache.")
	m.evalErrors = desc("teamgate_evaluation_errors_total", "Evaluations that failed and denied with reason error (admission and explanations included).")
	m.overBudget = desc("teamgate_evaluation_over_budget_total", "Of the failed evaluations, those stopped by the time budget (WithEvalBudget).")
	m.revision = desc("teamgate_store_revision", "The revision of the last write the engine's directory has applied.")
	m.logDropped = desc("teamgate_decision_log_dropped_total", "Decision log records dropped because its queue was full or the engine closed (WithDecisionLog).")
	if err := reg.Register(m); err != nil {
		return nil, fmt.Errorf("authz: WithMetrics: %w", err)
	}
	return m, nil
}

// unregister removes the engine's metrics from the host's registry (Engine.Close), so that a
// new engine may register on it and the registry no longer keeps this one alive. Only once: a
// registry unregisters by descriptors, not by identity, so a second Close would remove the
// metrics of the engine registered since.
func (m *decisionMetrics) unregister() {
	if !m.gone.CompareAndSwap(false, true) {
		return
	}
	m.reg.Unregister(m)
}

// Describe sends the descriptors of the metrics Collect makes.
func (m *decisionMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.duration, m.decisions, m.cacheHits, m.cacheMisses, m.cacheEntries, m.evalErrors, m.overBudget, m.revision, m.logDropped} {
		ch <- d
	}
}

// Collect reads the engine's counters (Stats) and directory once per gather, and each latency
// series once: the histogram and its teamgate_decisions_total come from that one read.
func (m *decisionMetrics) Collect(ch chan<- prometheus.Metric) {
	var h dto.Metric
	for _, lh := range m.hists {
		h.Reset()
		if err := lh.m.Write(&h); err != nil {
			continue
		}
		hist := h.GetHistogram()
		buckets := make(map[float64]uint64, len(hist.GetBucket()))
		for _, b := range hist.GetBucket() {
			buckets[b.GetUpperBound()] = b.GetCumulativeCount()
		}
		ch <- prometheus.MustNewConstHistogramWithCreatedTimestamp(m.duration, hist.GetSampleCount(), hist.GetSampleSum(), buckets,
			lh.created, lh.path, lh.outcome)
		ch <- prometheus.MustNewConstMetric(m.decisions, prometheus.CounterValue, float64(hist.GetSampleCount()), lh.path, lh.outcome)
	}
	s := m.e.Stats()
	if m.e.decisions != nil {
		ch <- prometheus.MustNewConstMetric(m.cacheHits, prometheus.CounterValue, float64(s.CacheHits), "l1")
		ch <- prometheus.MustNewConstMetric(m.cacheMisses, prometheus.CounterValue, float64(s.CacheDiskHits+s.CacheMisses), "l1")
		ch <- prometheus.MustNewConstMetric(m.cacheEntries, prometheus.GaugeValue, float64(m.e.decisions.used.Load()))
		if m.e.disk != nil {
			ch <- prometheus.MustNewConstMetric(m.cacheHits, prometheus.CounterValue, float64(s.CacheDiskHits), "l2")
			ch <- prometheus.MustNewConstMetric(m.cacheMisses, prometheus.CounterValue, float64(s.CacheMisses), "l2")
		}
	}
	ch <- prometheus.MustNewConstMetric(m.evalErrors, prometheus.CounterValue, float64(s.EvalErrors))
	ch <- prometheus.MustNewConstMetric(m.overBudget, prometheus.CounterValue, float64(s.OverBudget))
	ch <- prometheus.MustNewConstMetric(m.revision, prometheus.GaugeValue, float64(m.e.dir.Revision()))
	if m.e.declog != nil {
		ch <- prometheus.MustNewConstMetric(m.logDropped, prometheus.CounterValue, float64(s.DecisionLogDropped))
	}
}
