package authz

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/otelspan"
	"github.com/teamgate/teamgate/internal/quote"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
)

// tracerName is the instrumentation scope of the engine's spans.
const tracerName = "github.com/teamgate/teamgate/authz"

// WithTracerProvider makes the engine start OpenTelemetry spans from tp's tracer around
// Authorize, AuthorizeBatch, ListProjects, ProjectFilter, ListSubjects, BulkRuns, Admit,
// AdmitVersion, CreateProject, BreakGlass and EndBreakGlass (the package doc lists their
// attributes). The engine uses the OpenTelemetry API only; the host brings the SDK (its sampler
// and exporter) and passes its provider here, or otel.GetTracerProvider() to use the global one. Default: no spans, and no global provider is
// read. A nil tp is an error matching teamgate.ErrInvalid. Attributes go only on spans that
// record (Span.IsRecording), once started: a sampler sees none.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) error {
		if tp == nil {
			return teamgate.Invalid("tracer provider", "nil", "pass a trace.TracerProvider, or leave WithTracerProvider out")
		}
		c.observe.tracers = tp
		return nil
	}
}

// Span attribute keys.
const (
	attrAction   = attribute.Key("teamgate.action")
	attrResource = attribute.Key("teamgate.resource")
	attrAllowed  = attribute.Key("teamgate.allowed")
	attrRole     = attribute.Key("teamgate.role")
	attrPath     = attribute.Key("teamgate.path")
	attrRevision = otelspan.Revision
	attrReasons  = attribute.Key("teamgate.reasons")
	attrCount    = otelspan.Count
)

// maxAttr bounds the caller's strings a span repeats (a resource, an owner, a project name):
// the longest valid reference, org/team/project, so that no valid value is cut and an invalid
// one (a megabyte-long name the request is refused for) does not make a megabyte-long span.
const maxAttr = 3*scope.MaxSlugLen + 2

// bounded is s cut to maxAttr bytes, as an error message cuts a value (quote.Cut).
func bounded(s string) string { return quote.CutAt(s, maxAttr) }

// span is the engine's optional span (otelspan.Span: the zero span does nothing).
type span struct{ otelspan.Span }

// startSpan starts a span named name, with attributes given as key, value pairs, when the
// engine traces. The attributes are set once the span is started, and only on a recording span:
// a provider that records nothing (OpenTelemetry's noop, or the global one before the host
// installs an SDK) costs the call the span's start and end, no attribute (a sampler sees none).
func (e *Engine) startSpan(ctx context.Context, name string, kv ...string) (context.Context, span) {
	if e.obs == nil {
		return ctx, span{}
	}
	ctx, s := otelspan.Start(ctx, e.obs.tracer, name)
	if s.Recording() {
		attrs := make([]attribute.KeyValue, 0, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			attrs = append(attrs, attribute.String(kv[i], bounded(kv[i+1])))
		}
		s.SetAttributes(attrs...)
	}
	return ctx, span{s}
}

// endPage ends a listing's span: its revision and how many projects it returned.
func (s span) endPage(rev uint64, n int, err error) {
	if s.Recording() && err == nil {
		s.SetAttributes(attrRevision.Int64(int64(rev)), attrCount.Int(n))
	}
	s.End(err)
}

// endBulk ends a bulk operation's span: how many runs, how many allowed.
func (s span) endBulk(runs []RunDecision, err error) {
	if s.Recording() && err == nil {
		n := 0
		for _, r := range runs {
			if r.Decision.Allowed {
				n++
			}
		}
		s.SetAttributes(attrCount.Int(len(runs)), attribute.Int("teamgate.allowed_count", n))
	}
	s.End(err)
}

// endWrite ends a write's span (CreateProject, BreakGlass, EndBreakGlass): whether the
// subject's decision allowed it, and the revision of the write.
func (s span) endWrite(allowed bool, rev uint64, err error) {
	if s.Recording() {
		s.SetAttributes(attrAllowed.Bool(allowed), attrRevision.Int64(int64(rev)))
	}
	s.End(err)
}

// endAdmission ends an admission's span: whether it admits, and the violated fields.
func (s span) endAdmission(a policy.Admission, err error) {
	if s.Recording() && err == nil {
		fields := make([]string, len(a.Violations))
		for i, v := range a.Violations {
			fields[i] = v.Field
		}
		s.SetAttributes(attrAllowed.Bool(a.Allowed), attribute.StringSlice("teamgate.violations", fields))
	}
	s.End(err)
}

// endBatch ends AuthorizeBatch's span.
func (s span) endBatch(n int, err error) {
	if s.Recording() {
		s.SetAttributes(attrCount.Int(n))
	}
	s.End(err)
}

// startDecision starts Authorize's span, with attributes when it records (startSpan);
// endDecision ends it with the decision.
func (o *observer) startDecision(ctx context.Context, req *Request) (context.Context, trace.Span) {
	ctx, sp := o.tracer.Start(ctx, "teamgate.Authorize")
	if sp.IsRecording() {
		sp.SetAttributes(attrAction.String(bounded(req.Action)), attrResource.String(bounded(req.Resource)))
	}
	return ctx, sp
}

// endDecision ends Authorize's span. A decision that denied because the evaluation failed
// (reason error) is an error of the span, like an error Authorize returned.
func endDecision(sp trace.Span, d Decision, path DecisionPath, err error) {
	defer sp.End()
	if !sp.IsRecording() {
		return
	}
	if err != nil {
		otelspan.Fail(sp, err)
		return
	}
	reasons := make([]string, len(d.Reasons))
	for i, r := range d.Reasons {
		reasons[i] = string(r.Code)
		if r.Code == rego.CodeError {
			otelspan.Fail(sp, errors.New(r.Message))
		}
	}
	sp.SetAttributes(attrAllowed.Bool(d.Allowed), attrRole.String(d.Role), attrPath.String(path.String()),
		attrRevision.Int64(int64(d.Revision)), attrReasons.StringSlice(reasons))
}
