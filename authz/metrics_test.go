package authz_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// brokenModule fails every evaluation: to_number of a user id is an error.
var brokenModule = rego.Module{Name: "broken.rego", Source: `package teamgate.ext

import rego.v1

deny contains msg if {
	msg := sprintf("%d", [to_number(input.subject.id)])
}
`}

// TestMetricsCountDecisions: after a known sequence of decisions the metrics say how many were
// made on each path with each outcome, with the cache's hits and misses, the evaluation errors
// and the store revision; the latency histogram counts the same decisions.
func TestMetricsCountDecisions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	reg := prometheus.NewPedanticRegistry()
	eng, st := newAcme(t, authz.WithMetrics(reg))
	authorize := func(req authz.Request, allowed bool) {
		t.Helper()
		d, err := eng.Authorize(ctx, req)
		require.NoError(t, err)
		require.Equal(t, allowed, d.Allowed, "%+v: %+v", req, d)
	}
	stop := authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	authorize(stop, true) // compiled, then cached
	authorize(stop, true)
	restricted := authz.Request{Subject: "otto", Action: "runs.get", Resource: "acme/nlp"}
	authorize(restricted, false) // compiled, then cached
	authorize(restricted, false)
	// Attributes: full evaluation, never cached.
	authorize(authz.Request{Subject: "bob", Action: "runs.delete", Resource: "acme/vision", Attributes: map[string]any{"run": map[string]any{"created_by": "bob"}}}, true)
	_, err := eng.Authorize(ctx, authz.Request{Subject: "bob", Action: "runs.nope", Resource: "acme/vision"}) // a cache miss, then invalid
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	require.NoError(t, eng.SetPolicy(ctx, []rego.Module{brokenModule}))
	d, err := eng.Authorize(ctx, authz.Request{Subject: "alice", Action: "org.get", Resource: "acme"}) // a miss; fails
	require.NoError(t, err)
	require.True(t, d.Has(rego.CodeError))
	rev, err := st.Apply(ctx, store.PutMember{Org: "acme", User: "zoe", Role: "member"})
	require.NoError(t, err)

	want := fmt.Sprintf(`
# HELP teamgate_decisions_total Authorize calls, by the path that decided and the outcome (the latency histogram's count).
# TYPE teamgate_decisions_total counter
teamgate_decisions_total{outcome="allowed",path="cache_l1"} 1
teamgate_decisions_total{outcome="denied",path="cache_l1"} 1
teamgate_decisions_total{outcome="allowed",path="compiled"} 1
teamgate_decisions_total{outcome="denied",path="compiled"} 1
teamgate_decisions_total{outcome="error",path="compiled"} 0
teamgate_decisions_total{outcome="allowed",path="rego"} 1
teamgate_decisions_total{outcome="denied",path="rego"} 0
teamgate_decisions_total{outcome="error",path="rego"} 1
teamgate_decisions_total{outcome="error",path="none"} 1
# HELP teamgate_decision_cache_hits_total Decisions served from the decision cache, by tier (l1: memory, l2: Badger).
# TYPE teamgate_decision_cache_hits_total counter
teamgate_decision_cache_hits_total{tier="l1"} 2
# HELP teamgate_decision_cache_misses_total Cacheable decisions a tier of the decision cache did not hold, by tier (l1: memory, l2: Badger).
# TYPE teamgate_decision_cache_misses_total counter
teamgate_decision_cache_misses_total{tier="l1"} 4
# HELP teamgate_decision_cache_entries Decisions held in the in-memory decision cache.
# TYPE teamgate_decision_cache_entries gauge
teamgate_decision_cache_entries 2
# HELP teamgate_evaluation_errors_total Evaluations that failed and denied with reason error (admission and explanations included).
# TYPE teamgate_evaluation_errors_total counter
teamgate_evaluation_errors_total 1
# HELP teamgate_evaluation_over_budget_total Of the failed evaluations, those stopped by the time budget (WithEvalBudget).
# TYPE teamgate_evaluation_over_budget_total counter
teamgate_evaluation_over_budget_total 0
# HELP teamgate_store_revision The revision of the last write the engine's directory has applied.
# TYPE teamgate_store_revision gauge
teamgate_store_revision %d
`, rev)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want),
		"teamgate_decisions_total", "teamgate_decision_cache_hits_total", "teamgate_decision_cache_misses_total",
		"teamgate_decision_cache_entries", "teamgate_evaluation_errors_total", "teamgate_evaluation_over_budget_total",
		"teamgate_store_revision"))

	// The histogram holds the same decisions, each with a positive duration.
	counts := map[string]uint64{}
	for _, m := range family(t, reg, "teamgate_decision_duration_seconds").GetMetric() {
		h := m.GetHistogram()
		counts[labels(m)] = h.GetSampleCount()
		require.Equal(t, h.GetSampleCount() > 0, h.GetSampleSum() > 0, labels(m))
	}
	decisions := map[string]uint64{}
	for _, m := range family(t, reg, "teamgate_decisions_total").GetMetric() {
		decisions[labels(m)] = uint64(m.GetCounter().GetValue())
	}
	require.Equal(t, decisions, counts)
	s := eng.Stats()
	require.Equal(t, uint64(2), s.CacheHits)
	require.Equal(t, uint64(4), s.CacheMisses)
}

// TestMetricsDiskTier: an engine over an on-disk store reports the Badger tier too.
func TestMetricsDiskTier(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	st := conformance.OpenStore(t, store.Options{Dir: t.TempDir(), NoSync: true})
	eng, err := authz.New(t.Context(), st, authz.WithMetrics(reg))
	require.NoError(t, err)
	_, err = eng.Authorize(t.Context(), authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"})
	require.NoError(t, err)
	want := `
# HELP teamgate_decision_cache_hits_total Decisions served from the decision cache, by tier (l1: memory, l2: Badger).
# TYPE teamgate_decision_cache_hits_total counter
teamgate_decision_cache_hits_total{tier="l1"} 0
teamgate_decision_cache_hits_total{tier="l2"} 0
# HELP teamgate_decision_cache_misses_total Cacheable decisions a tier of the decision cache did not hold, by tier (l1: memory, l2: Badger).
# TYPE teamgate_decision_cache_misses_total counter
teamgate_decision_cache_misses_total{tier="l1"} 1
teamgate_decision_cache_misses_total{tier="l2"} 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want), "teamgate_decision_cache_hits_total", "teamgate_decision_cache_misses_total"))
	n, err := testutil.GatherAndCount(reg, "teamgate_decisions_total")
	require.NoError(t, err)
	require.Equal(t, 1+3*2+2*2, n, "none/error; compiled and rego × allowed, denied, error; cache_l1 and cache_l2 × allowed, denied")
}

// TestMetricsRegistration: metrics go to the caller's registry only; registering an engine's
// metrics twice on one registry is an error from New (engines sharing a registry each get a
// label from WrapRegistererWith); a nil registry or tracer provider is invalid.
func TestMetricsRegistration(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	eng, st := newAcme(t, authz.WithMetrics(reg))
	_, err := eng.Authorize(t.Context(), authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"})
	require.NoError(t, err)
	global, err := prometheus.DefaultGatherer.Gather()
	require.NoError(t, err)
	for _, f := range global {
		require.False(t, strings.HasPrefix(f.GetName(), "teamgate_"), "%s is in the global registry", f.GetName())
	}

	_, err = authz.New(t.Context(), st, authz.WithMetrics(reg))
	var dup prometheus.AlreadyRegisteredError
	require.True(t, errors.As(err, &dup), "%v", err)
	// Closing the engine unregisters its metrics: a new engine registers on the same registry.
	require.NoError(t, eng.Close(t.Context()))
	again, err := authz.New(t.Context(), st, authz.WithMetrics(reg))
	require.NoError(t, err)
	require.NoError(t, again.Close(t.Context()))
	require.NoError(t, again.Close(t.Context()), "Close is idempotent")
	shared := prometheus.NewPedanticRegistry()
	for _, name := range []string{"a", "b"} {
		_, err = authz.New(t.Context(), st, authz.WithMetrics(prometheus.WrapRegistererWith(prometheus.Labels{"engine": name}, shared)))
		require.NoError(t, err)
	}
	n, err := testutil.GatherAndCount(shared, "teamgate_store_revision")
	require.NoError(t, err)
	require.Equal(t, 2, n)

	_, err = authz.New(t.Context(), st, authz.WithMetrics(nil))
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	_, err = authz.New(t.Context(), st, authz.WithTracerProvider(nil))
	require.ErrorIs(t, err, teamgate.ErrInvalid)
}

func family(t *testing.T, g prometheus.Gatherer, name string) *dto.MetricFamily {
	t.Helper()
	fams, err := g.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() == name {
			return f
		}
	}
	require.Failf(t, "no metric family", name)
	return nil
}

func labels(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	return strings.Join(parts, ",")
}

// BenchmarkAuthorizeObserved measures what metrics and spans add to a cached hit and to the
// compiled path: off (the default), with metrics, with spans from a tracer provider that
// records nothing (spans: noop), with spans the SDK records and samples, exported nowhere
// (spans-sdk).
func BenchmarkAuthorizeObserved(b *testing.B) {
	req := authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	for _, path := range []struct {
		name string
		opts []authz.Option
	}{{"cached", nil}, {"compiled", []authz.Option{authz.WithDecisionCache(0)}}} {
		for _, obs := range []struct {
			name string
			opts func() []authz.Option // a fresh registry for each run
		}{
			{"off", func() []authz.Option { return nil }},
			{"metrics", func() []authz.Option { return []authz.Option{authz.WithMetrics(prometheus.NewRegistry())} }},
			{"spans", func() []authz.Option { return []authz.Option{authz.WithTracerProvider(noop.NewTracerProvider())} }},
			{"spans-sdk", func() []authz.Option { return []authz.Option{authz.WithTracerProvider(sdktrace.NewTracerProvider())} }},
		} {
			b.Run(path.name+"/"+obs.name, func(b *testing.B) {
				eng, _ := newAcme(b, append(obs.opts(), path.opts...)...)
				ctx := b.Context()
				if _, err := eng.Authorize(ctx, req); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := eng.Authorize(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
