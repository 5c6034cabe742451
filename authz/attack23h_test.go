package authz_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/rego"
)

// TestMetricsCloseUnregistersOnce: closing an engine a second time leaves alone the metrics of
// the engine that registered on the same registry since (a registry unregisters by
// descriptors, so the closed engine's second Unregister would remove the new engine's).
func TestMetricsCloseUnregistersOnce(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	old, st := newAcme(t, authz.WithMetrics(reg))
	require.NoError(t, old.Close(t.Context()))
	eng, err := authz.New(t.Context(), st, authz.WithMetrics(reg))
	require.NoError(t, err)
	_, err = eng.Authorize(t.Context(), authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"})
	require.NoError(t, err)
	require.NoError(t, old.Close(t.Context()), "Close is idempotent")
	for _, name := range []string{"teamgate_decisions_total", "teamgate_decision_duration_seconds", "teamgate_store_revision"} {
		n, err := testutil.GatherAndCount(reg, name)
		require.NoError(t, err)
		require.Positive(t, n, "%s: the new engine's metrics are still registered", name)
	}
	_, err = authz.New(t.Context(), st, authz.WithMetrics(reg))
	require.Error(t, err, "and still hold their names")
	require.NoError(t, eng.Close(t.Context()))
}

// TestMetricsUnderLoad: with decisions of every outcome made from several goroutines while the
// registry is gathered over and over, every gather lints clean and its teamgate_decisions_total
// agrees with the latency histogram's counts (one snapshot), and at the end the metrics count
// exactly the decisions made: per outcome, summed over the paths, what the calls returned.
func TestMetricsUnderLoad(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	reg := prometheus.NewPedanticRegistry()
	eng, _ := newAcme(t, authz.WithMetrics(reg))
	reqs := []authz.Request{
		{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"},                                                                // allowed, cacheable
		{Subject: "otto", Action: "runs.get", Resource: "acme/nlp"},                                                                               // denied, cacheable
		{Subject: "bob", Action: "runs.delete", Resource: "acme/vision", Attributes: map[string]any{"run": map[string]any{"created_by": "bob"}}},  // rego, allowed
		{Subject: "bob", Action: "runs.delete", Resource: "acme/vision", Attributes: map[string]any{"run": map[string]any{"created_by": "olga"}}}, // rego, denied
		{Subject: "nobody", Action: "project.get", Resource: "acme/vision"},                                                                       // a subject the directory lacks
		{Subject: "bob", Action: "runs.nope", Resource: "acme/vision"},                                                                            // invalid: an error
	}
	const workers, rounds = 4, 50
	var mu sync.Mutex
	want := map[string]float64{}
	var wg sync.WaitGroup
	done := make(chan struct{})
	var gathers int
	var scrapeErr error
	scraped := make(chan struct{})
	go func() {
		defer close(scraped)
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := testutil.GatherAndLint(reg); err != nil {
				scrapeErr = err
				return
			}
			if err := countsAgree(reg); err != nil {
				scrapeErr = err
				return
			}
			gathers++
		}
	}()
	for range workers {
		wg.Go(func() {
			for range rounds {
				for _, req := range reqs {
					d, err := eng.Authorize(ctx, req)
					outcome := "denied"
					switch {
					case err != nil:
						outcome = "error"
					case d.Allowed:
						outcome = "allowed"
					}
					mu.Lock()
					want[outcome]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(done)
	<-scraped
	require.NoError(t, scrapeErr)
	require.Positive(t, gathers)
	require.Equal(t, map[string]float64{"allowed": 2 * workers * rounds, "denied": 3 * workers * rounds, "error": workers * rounds}, want)

	got := map[string]float64{}
	perSeries := map[string]float64{}
	for _, m := range family(t, reg, "teamgate_decisions_total").GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "outcome" {
				got[l.GetValue()] += m.GetCounter().GetValue()
			}
		}
		perSeries[labels(m)] = m.GetCounter().GetValue()
	}
	require.Equal(t, want, got)
	for _, m := range family(t, reg, "teamgate_decision_duration_seconds").GetMetric() {
		require.Equal(t, perSeries[labels(m)], float64(m.GetHistogram().GetSampleCount()), labels(m))
	}
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)
}

// TestNoSpansWithoutAProvider: an engine without WithTracerProvider starts no span, even with a
// global provider set and with metrics on (an observer without a tracer).
func TestNoSpansWithoutAProvider(t *testing.T) { // not parallel: it sets the global provider
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	ctx := t.Context()
	for _, opts := range [][]authz.Option{nil, {authz.WithMetrics(prometheus.NewRegistry())}} {
		eng, _ := newAcme(t, opts...)
		_, err := eng.Authorize(ctx, authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"})
		require.NoError(t, err)
		_, err = eng.Authorize(ctx, authz.Request{Subject: "bob", Action: "runs.nope", Resource: "acme/vision"})
		require.ErrorIs(t, err, teamgate.ErrInvalid)
		_, err = eng.AuthorizeBatch(ctx, []authz.Request{{Subject: "vera", Action: "runs.get", Resource: "acme/labs"}})
		require.NoError(t, err)
		_, err = eng.ListProjects(ctx, "vera", "acme/engineering", authz.Page{})
		require.NoError(t, err)
		_, err = eng.ProjectFilter(ctx, "vera", "acme")
		require.NoError(t, err)
		_, err = eng.ListSubjects(ctx, "runs.stop", "acme/vision", authz.Page{})
		require.NoError(t, err)
		_, err = eng.BulkRuns(ctx, "bob", "acme/engineering", "stop_runs", []authz.RunRef{{UUID: "r1", Project: "vision", CreatedBy: "bob"}}, "")
		require.NoError(t, err)
		_, err = eng.Admit(ctx, "bob", "acme/vision", policy.Run{Kind: "job"})
		require.NoError(t, err)
		_, err = eng.CreateProject(ctx, "bob", "acme/engineering", authz.NewProject{Name: "detector"})
		require.NoError(t, err)
		_, err = eng.BreakGlass(ctx, authz.BreakGlassRequest{Actor: "adam", Project: "acme/labs", Justification: "INC-42"})
		require.NoError(t, err)
		_, err = eng.EndBreakGlass(ctx, authz.EndBreakGlassRequest{Actor: "adam", Project: "acme/labs"})
		require.NoError(t, err)
	}
	require.Empty(t, sr.Started())
	require.Empty(t, sr.Ended())
}

// TestSpansJoinTheHostsTrace: the engine's spans are children of the span in the caller's
// context, one trace: a bulk operation's decisions under its span, under the host's request.
func TestSpansJoinTheHostsTrace(t *testing.T) {
	t.Parallel()
	eng, sr := traced(t)
	host := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = host.Shutdown(t.Context()) })
	ctx, req := host.Tracer("host").Start(t.Context(), "POST /runs/bulk/stop_runs")
	_, err := eng.BulkRuns(ctx, "bob", "acme/engineering", "stop_runs", []authz.RunRef{{UUID: "r1", Project: "vision", CreatedBy: "bob"}}, "")
	require.NoError(t, err)
	_, err = eng.Authorize(ctx, authz.Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision"})
	require.NoError(t, err)
	req.End()
	spans := sr.Ended()
	require.Len(t, spans, 4, "the scope and the run under BulkRuns, then Authorize")
	byID := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		require.Equal(t, req.SpanContext().TraceID(), s.SpanContext().TraceID(), s.Name())
		byID[s.SpanContext().SpanID().String()] = s
	}
	bulk := spans[2]
	require.Equal(t, "teamgate.BulkRuns", bulk.Name())
	require.Equal(t, req.SpanContext().SpanID(), bulk.Parent().SpanID())
	for _, s := range spans[:2] {
		require.Equal(t, "teamgate.Authorize", s.Name())
		require.Equal(t, bulk.SpanContext().SpanID(), s.Parent().SpanID())
	}
	require.Equal(t, req.SpanContext().SpanID(), spans[3].Parent().SpanID())
	// No subject in any span: a user id is personal data, and not needed to find the decision.
	for _, s := range spans {
		for _, kv := range s.Attributes() {
			require.NotContains(t, kv.Value.Emit(), "bob", "%s %s", s.Name(), kv.Key)
		}
	}
}

// TestSpanOfAFailedEvaluationInABulk: a run whose evaluation fails is an error of its Authorize
// span; the BulkRuns span, whose call answered, is not.
func TestSpanOfAFailedEvaluationInABulk(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	eng, sr := traced(t)
	require.NoError(t, eng.SetPolicy(ctx, []rego.Module{brokenModule}))
	out, err := eng.BulkRuns(ctx, "olga", "acme/engineering", "stop_runs", []authz.RunRef{{UUID: "r1", Project: "vision", CreatedBy: "bob"}}, "")
	require.NoError(t, err)
	require.True(t, out[0].Decision.Has(rego.CodeError))
	for _, s := range sr.Ended() {
		want := "Error"
		if s.Name() == "teamgate.BulkRuns" {
			want = "Unset"
		}
		require.Equal(t, want, s.Status().Code.String(), s.Name())
	}
}

// countsAgree reports a gather whose teamgate_decisions_total differs from the latency
// histogram's count of the same series.
func countsAgree(g prometheus.Gatherer) error {
	fams, err := g.Gather()
	if err != nil {
		return err
	}
	totals, counts := map[string]float64{}, map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "teamgate_decisions_total":
				totals[labels(m)] = m.GetCounter().GetValue()
			case "teamgate_decision_duration_seconds":
				counts[labels(m)] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if !maps.Equal(totals, counts) {
		return fmt.Errorf("one gather: teamgate_decisions_total %v, histogram counts %v", totals, counts)
	}
	return nil
}

// TestNonRecordingSpansGetNothing: with a provider whose spans record nothing (noop, a sampler
// that drops them, the global provider before the host installs an SDK) every span the engine
// starts is ended, and none is given attributes, errors or a status: the engine computes none
// of them (BenchmarkAuthorizeObserved/*/spans: 1 allocation a decision, the span's context).
func TestNonRecordingSpansGetNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tp := &quietProvider{}
	eng, _ := newAcme(t, authz.WithTracerProvider(tp))
	_, err := eng.Authorize(ctx, authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"})
	require.NoError(t, err)
	_, err = eng.Authorize(ctx, authz.Request{Subject: "bob", Action: "runs.nope", Resource: "acme/vision"})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	_, err = eng.BulkRuns(ctx, "bob", "acme/engineering", "stop_runs", []authz.RunRef{{UUID: "r1", Project: "vision", CreatedBy: "bob"}}, "")
	require.NoError(t, err)
	_, err = eng.ListProjects(ctx, "vera", "acme/engineering", authz.Page{})
	require.NoError(t, err)
	_, err = eng.Admit(ctx, "bob", "acme/vision", policy.Run{Kind: "job"})
	require.NoError(t, err)
	_, err = eng.CreateProject(ctx, "bob", "acme/engineering", authz.NewProject{Name: "detector"})
	require.NoError(t, err)
	_, err = eng.AuthorizeBatch(ctx, []authz.Request{{Subject: "vera", Action: "runs.get", Resource: "acme/labs"}})
	require.NoError(t, err)
	tp.mu.Lock()
	defer tp.mu.Unlock()
	require.Equal(t, 11, tp.started, "2 Authorize, BulkRuns and its 2, ListProjects, Admit, CreateProject and its 1, AuthorizeBatch and its 1")
	require.Equal(t, tp.started, tp.ended)
	require.Zero(t, tp.told, "attributes, errors or a status given to a span that records nothing")
}

// quietProvider's spans record nothing; it counts what the engine does with them.
type quietProvider struct {
	noop.TracerProvider
	mu                   sync.Mutex // guards the counts
	started, ended, told int
}

func (p *quietProvider) Tracer(string, ...trace.TracerOption) trace.Tracer { return quietTracer{p: p} }

type quietTracer struct {
	noop.Tracer
	p *quietProvider
}

func (q quietTracer) Start(ctx context.Context, _ string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	q.p.mu.Lock()
	defer q.p.mu.Unlock()
	q.p.started++
	if cfg := trace.NewSpanStartConfig(opts...); len(cfg.Attributes()) > 0 {
		q.p.told++
	}
	sp := quietSpan{p: q.p}
	return trace.ContextWithSpan(ctx, sp), sp
}

type quietSpan struct {
	noop.Span
	p *quietProvider
}

func (quietSpan) IsRecording() bool { return false }

func (s quietSpan) tell() {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.p.told++
}

func (s quietSpan) End(...trace.SpanEndOption) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.p.ended++
}
func (s quietSpan) SetAttributes(...attribute.KeyValue)     { s.tell() }
func (s quietSpan) SetStatus(codes.Code, string)            { s.tell() }
func (s quietSpan) RecordError(error, ...trace.EventOption) { s.tell() }
func (s quietSpan) AddEvent(string, ...trace.EventOption)   { s.tell() }
func (s quietSpan) SetName(string)                          { s.tell() }
func (s quietSpan) AddLink(trace.Link)                      { s.tell() }

// TestSpanAttributesBounded: the caller's strings a span repeats are cut to the longest valid
// reference (org/team/project, 386 bytes), so a refused megabyte-long name or resource does not
// become a megabyte-long span; a valid one of that length is whole.
func TestSpanAttributesBounded(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	eng, sr := traced(t)
	huge := strings.Repeat("a", 1<<20)
	_, err := eng.CreateProject(ctx, "bob", "acme/engineering", authz.NewProject{Name: huge})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	_, err = eng.Authorize(ctx, authz.Request{Subject: "bob", Action: huge, Resource: huge})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	_, err = eng.ListProjects(ctx, "bob", "acme/"+huge, authz.Page{})
	require.Error(t, err)
	longest := strings.Repeat("o", 128) + "/" + strings.Repeat("t", 128) + "/" + strings.Repeat("p", 128)
	_, err = eng.Authorize(ctx, authz.Request{Subject: "bob", Action: "runs.get", Resource: longest})
	require.NoError(t, err)
	spans := sr.Ended()
	require.Len(t, spans, 4, "CreateProject (its name refused before any decision), Authorize ×2, ListProjects")
	size := 0
	for _, s := range spans {
		for _, kv := range s.Attributes() {
			size += len(kv.Value.Emit())
		}
		size += len(s.Status().Description)
	}
	require.Less(t, size, 8<<10, "spans of megabyte input stay small")
	last := attrs(spans[len(spans)-1])
	require.Equal(t, longest, last["teamgate.resource"], "a valid reference is never cut")
}
