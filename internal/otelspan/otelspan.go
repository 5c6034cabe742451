// Package otelspan makes teamgate's optional OpenTelemetry spans, for the engine (authz) and the
// store alike, through the OpenTelemetry API only: the host brings the SDK. A package without a
// tracer starts no span, and the zero Span does nothing, so a hook costs a nil check when tracing
// is off. Attributes go only on a span that records (Span.Recording): callers build them only
// then, so a provider that records nothing (the noop one, a sampler's dropped spans) costs the
// span's start and end, no attribute.
package otelspan

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Attribute keys more than one package sets.
const (
	Revision = attribute.Key("teamgate.revision") // the revision an answer was read at or a write committed
	Count    = attribute.Key("teamgate.count")    // how many items an operation returned or wrote
)

// Span is an optional span: the zero Span (no tracer) does nothing.
type Span struct{ s trace.Span }

// Start starts a span named name from tracer, a child of ctx's span, when tracer is not nil.
func Start(ctx context.Context, tracer trace.Tracer, name string) (context.Context, Span) {
	if tracer == nil {
		return ctx, Span{}
	}
	ctx, s := tracer.Start(ctx, name)
	return ctx, Span{s}
}

// Recording reports whether the span records what it is told: build attributes only then.
func (s Span) Recording() bool { return s.s != nil && s.s.IsRecording() }

// SetAttributes sets attributes on a recording span.
func (s Span) SetAttributes(kv ...attribute.KeyValue) {
	if s.Recording() {
		s.s.SetAttributes(kv...)
	}
}

// End ends the span. A non-nil err is recorded on it and sets its status to Error.
func (s Span) End(err error) {
	if s.s == nil {
		return
	}
	if err != nil {
		Fail(s.s, err)
	}
	s.s.End()
}

// Fail records err on sp and sets its status to Error.
func Fail(sp trace.Span, err error) {
	sp.RecordError(err)
	sp.SetStatus(codes.Error, err.Error())
}
