package authz_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// traced is an engine on the conformance directory whose spans go to a recorder.
func traced(t *testing.T) (*authz.Engine, *tracetest.SpanRecorder) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	eng, _ := newAcme(t, authz.WithTracerProvider(tp))
	return eng, sr
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]any {
	out := map[attribute.Key]any{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value.AsInterface()
	}
	return out
}

// TestSpansOfDecisions: Authorize's span says what was asked, what was decided, on which path
// and at which revision; an invalid request and a failed evaluation are span errors.
func TestSpansOfDecisions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	eng, sr := traced(t)
	req := authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	var d authz.Decision
	for range 2 {
		var err error
		d, err = eng.Authorize(ctx, req)
		require.NoError(t, err)
	}
	reasons := []string{}
	for _, r := range d.Reasons {
		reasons = append(reasons, string(r.Code))
	}
	_, err := eng.Authorize(ctx, authz.Request{Subject: "bob", Action: "runs.nope", Resource: "acme/vision"})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	require.NoError(t, eng.SetPolicy(ctx, []rego.Module{brokenModule}))
	_, err = eng.Authorize(ctx, authz.Request{Subject: "alice", Action: "org.get", Resource: "acme"})
	require.NoError(t, err)

	spans := sr.Ended()
	require.Len(t, spans, 4)
	rev := int64(eng.Directory().Revision())
	require.True(t, d.Allowed)
	for i, tc := range []struct {
		path    string
		allowed bool
	}{{"compiled", true}, {"cache_l1", true}} {
		s := spans[i]
		require.Equal(t, "teamgate.Authorize", s.Name())
		require.Equal(t, map[attribute.Key]any{
			"teamgate.action": "runs.stop", "teamgate.resource": "acme/engineering/vision",
			"teamgate.allowed": tc.allowed, "teamgate.role": d.Role, "teamgate.path": tc.path,
			"teamgate.revision": rev, "teamgate.reasons": reasons,
		}, attrs(s))
		require.Equal(t, codes.Unset, s.Status().Code)
		require.Equal(t, "github.com/teamgate/teamgate/authz", s.InstrumentationScope().Name)
	}
	invalid := spans[2]
	require.Equal(t, codes.Error, invalid.Status().Code)
	require.Contains(t, invalid.Status().Description, "runs.nope")
	require.Len(t, invalid.Events(), 1, "the error is recorded")
	require.NotContains(t, attrs(invalid), attribute.Key("teamgate.allowed"))

	failed := spans[3]
	require.Equal(t, codes.Error, failed.Status().Code)
	require.Contains(t, failed.Status().Description, "evaluation failed")
	a := attrs(failed)
	require.Equal(t, false, a["teamgate.allowed"])
	require.Equal(t, "rego", a["teamgate.path"])
	require.Equal(t, []string{"error"}, a["teamgate.reasons"])
}

// TestSpansOfTeamSpacesAdmissionAndWrites: listings, bulk operations, admission, project
// creation and batches get a span each, with the decisions they make as child spans.
func TestSpansOfTeamSpacesAdmissionAndWrites(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	eng, sr := traced(t)

	byName := func(name string) sdktrace.ReadOnlySpan {
		t.Helper()
		var found sdktrace.ReadOnlySpan
		for _, s := range sr.Ended() {
			if s.Name() == name {
				require.Nil(t, found, "one %s span", name)
				found = s
			}
		}
		require.NotNil(t, found, name)
		return found
	}
	children := func(parent sdktrace.ReadOnlySpan) []string {
		var out []string
		for _, s := range sr.Ended() {
			if s.Parent().SpanID() == parent.SpanContext().SpanID() {
				out = append(out, s.Name())
			}
		}
		return out
	}

	page, err := eng.ListProjects(ctx, "vera", "acme/engineering", authz.Page{})
	require.NoError(t, err)
	s := byName("teamgate.ListProjects")
	require.Equal(t, map[attribute.Key]any{"teamgate.owner": "acme/engineering", "teamgate.count": int64(len(page.Projects)),
		"teamgate.revision": int64(page.Revision)}, attrs(s))

	who, err := eng.ListSubjects(ctx, "runs.stop", "acme/vision", authz.Page{})
	require.NoError(t, err)
	require.Equal(t, map[attribute.Key]any{"teamgate.action": "runs.stop", "teamgate.resource": "acme/vision",
		"teamgate.count": int64(len(who.Subjects)), "teamgate.revision": int64(who.Revision)}, attrs(byName("teamgate.ListSubjects")))

	f, err := eng.ProjectFilter(ctx, "vera", "acme")
	require.NoError(t, err)
	require.Equal(t, int64(len(f.Projects)), attrs(byName("teamgate.ProjectFilter"))["teamgate.count"])

	runs := []authz.RunRef{{UUID: "r1", Project: "vision", CreatedBy: "bob"}, {UUID: "r2", Project: "open"}}
	_, err = eng.BulkRuns(ctx, "bob", "acme/engineering", "stop_runs", runs, "")
	require.NoError(t, err)
	s = byName("teamgate.BulkRuns")
	require.Equal(t, map[attribute.Key]any{"teamgate.owner": "acme/engineering", "teamgate.operation": "stop_runs",
		"teamgate.count": int64(2), "teamgate.allowed_count": int64(1)}, attrs(s))
	require.Equal(t, []string{"teamgate.Authorize", "teamgate.Authorize"}, children(s), "the scope and the run in it")

	adm, err := eng.Admit(ctx, "bob", "acme/vision", policy.Run{Kind: "job", Queue: "nope/queue"})
	require.NoError(t, err)
	require.False(t, adm.Allowed)
	s = byName("teamgate.Admit")
	require.Equal(t, false, attrs(s)["teamgate.allowed"])
	require.Contains(t, attrs(s)["teamgate.violations"], "queue")
	_, err = eng.AdmitVersion(ctx, "bob", "acme/vision", "nope")
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	require.Equal(t, codes.Error, byName("teamgate.AdmitVersion").Status().Code)

	c, err := eng.CreateProject(ctx, "bob", "acme/engineering", authz.NewProject{Name: "detector"})
	require.NoError(t, err)
	s = byName("teamgate.CreateProject")
	require.Equal(t, map[attribute.Key]any{"teamgate.owner": "acme/engineering", "teamgate.project": "detector",
		"teamgate.allowed": true, "teamgate.revision": int64(c.Revision)}, attrs(s))
	require.Equal(t, []string{"teamgate.Authorize"}, children(s))

	// The break-glass writes: the actor's decision, then the write's revision.
	el, err := eng.BreakGlass(ctx, authz.BreakGlassRequest{Actor: "adam", Project: "acme/labs", Justification: "INC-42"})
	require.NoError(t, err)
	require.True(t, el.Decision.Allowed)
	s = byName("teamgate.BreakGlass")
	require.Equal(t, map[attribute.Key]any{"teamgate.project": "acme/labs",
		"teamgate.allowed": true, "teamgate.revision": int64(el.Revision)}, attrs(s))
	require.Equal(t, []string{"teamgate.Authorize"}, children(s))
	ended, err := eng.EndBreakGlass(ctx, authz.EndBreakGlassRequest{Actor: "adam", Project: "acme/labs"})
	require.NoError(t, err)
	s = byName("teamgate.EndBreakGlass")
	require.Equal(t, map[attribute.Key]any{"teamgate.project": "acme/labs",
		"teamgate.allowed": true, "teamgate.revision": int64(ended.Revision)}, attrs(s))
	_, err = eng.EndBreakGlass(ctx, authz.EndBreakGlassRequest{Actor: "adam", Project: "acme/labs"})
	require.ErrorIs(t, err, teamgate.ErrNotFound, "nothing left to end")
	require.Equal(t, codes.Error, sr.Ended()[len(sr.Ended())-1].Status().Code)

	_, err = eng.AuthorizeBatch(ctx, []authz.Request{
		{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"},
		{Subject: "vera", Action: "runs.get", Resource: "acme/labs"},
	})
	require.NoError(t, err)
	s = byName("teamgate.AuthorizeBatch")
	require.Equal(t, int64(2), attrs(s)["teamgate.count"])
	require.Len(t, children(s), 2)
}

// TestStoreSpansUnderEngineWrites: with the host's provider given to the store too, the store's
// write span is a child of the engine's write span, after the decision that allowed it.
func TestStoreSpansUnderEngineWrites(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	eng, err := authz.New(ctx, conformance.OpenStore(t, store.Options{TracerProvider: tp}), authz.WithTracerProvider(tp))
	require.NoError(t, err)
	c, err := eng.CreateProject(ctx, "bob", "acme/engineering", authz.NewProject{Name: "detector"})
	require.NoError(t, err)

	var create sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		if s.Name() == "teamgate.CreateProject" {
			create = s
		}
	}
	require.NotNil(t, create)
	var children []string
	for _, s := range sr.Ended() {
		if s.Parent().SpanID() == create.SpanContext().SpanID() {
			children = append(children, s.Name())
			if s.Name() == "teamgate.Apply" {
				require.Equal(t, map[attribute.Key]any{"teamgate.count": int64(1), "teamgate.revision": int64(c.Revision)}, attrs(s))
			}
		}
	}
	require.Equal(t, []string{"teamgate.Authorize", "teamgate.Apply"}, children)
}
