package store_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/spantest"
	"github.com/teamgate/teamgate/store"
)

// tracedStore is an in-memory store whose spans sr records, a context holding the caller's span
// (parent, "host", still open), and the acme data file parsed.
func tracedStore(t *testing.T) (context.Context, trace.Span, *tracetest.SpanRecorder, *store.Store, *store.File) {
	t.Helper()
	tp, sr := spantest.Recorder(t)
	ctx, parent := tp.Tracer("test").Start(t.Context(), "host")
	st, err := store.Open(ctx, store.Options{TracerProvider: tp})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	data, err := os.ReadFile(acme)
	require.NoError(t, err)
	f, err := store.ParseFile(data)
	require.NoError(t, err)
	return ctx, parent, sr, st, f
}

// TestWriteSpans: Apply, ApplyEvent and Load each make a span, a child of the caller's, with the
// number of changes and the revision written; a refused write is a span error with the error's
// kind; a data file equal to the directory writes nothing and says so (no change).
func TestWriteSpans(t *testing.T) {
	t.Parallel()
	ctx, parent, sr, st, f := tracedStore(t)
	data, err := os.ReadFile(acme)
	require.NoError(t, err)
	var fileChanges int
	require.NoError(t, st.View(func(r store.Reader) error {
		cs, err := f.Changes(r)
		fileChanges = len(cs)
		return err
	}))
	require.Greater(t, fileChanges, 1)

	loaded, err := st.Load(ctx, bytes.NewReader(data))
	require.NoError(t, err)
	again, err := st.Load(ctx, bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, loaded, again)
	_, err = st.Load(ctx, strings.NewReader("orgs: [{name: acme"))
	require.Error(t, err)
	applied, err := st.Apply(ctx, store.PutMember{Org: "acme", User: "zoe", Role: "member"}, store.PutMember{Org: "acme", User: "yan", Role: "member"})
	require.NoError(t, err)
	_, err = st.Apply(ctx, store.PutMember{Org: "acme", User: "zoe", Role: "emperor"})
	require.Error(t, err)
	ev := store.Event{Revision: applied + 1, Changes: store.Changes{store.PutOrg{Org: store.Org{Name: "x"}}}}
	replayed, err := st.ApplyEvent(ctx, ev)
	require.NoError(t, err)
	_, err = st.ApplyEvent(ctx, ev)
	require.Error(t, err)
	parent.End()

	spans := sr.Ended()
	require.Len(t, spans, 8)
	want := []struct {
		name  string
		attrs map[attribute.Key]any
	}{
		{"teamgate.Load", map[attribute.Key]any{"teamgate.count": int64(fileChanges), "teamgate.revision": int64(loaded)}},
		{"teamgate.Load", map[attribute.Key]any{"teamgate.count": int64(0), "teamgate.revision": int64(loaded)}},
		{"teamgate.Load", map[attribute.Key]any{"teamgate.count": int64(0), "teamgate.error": "invalid"}},
		{"teamgate.Apply", map[attribute.Key]any{"teamgate.count": int64(2), "teamgate.revision": int64(applied)}},
		{"teamgate.Apply", map[attribute.Key]any{"teamgate.count": int64(1), "teamgate.error": "invalid"}},
		{"teamgate.ApplyEvent", map[attribute.Key]any{"teamgate.count": int64(1), "teamgate.revision": int64(replayed)}},
		{"teamgate.ApplyEvent", map[attribute.Key]any{"teamgate.count": int64(1), "teamgate.error": "conflict"}},
	}
	for i, w := range want {
		s := spans[i]
		require.Equal(t, w.name, s.Name(), "span %d", i)
		require.Equal(t, w.attrs, spantest.Attrs(s), "span %d", i)
		require.Equal(t, parent.SpanContext().SpanID(), s.Parent().SpanID(), "span %d is the caller's child", i)
		require.Equal(t, parent.SpanContext().TraceID(), s.SpanContext().TraceID())
		require.Equal(t, "github.com/teamgate/teamgate/store", s.InstrumentationScope().Name)
		if _, refused := w.attrs["teamgate.error"]; refused {
			require.Equal(t, codes.Error, s.Status().Code, "span %d", i)
			require.NotEmpty(t, s.Status().Description)
			require.Len(t, s.Events(), 1, "span %d records the error", i)
		} else {
			require.Equal(t, codes.Unset, s.Status().Code, "span %d", i)
			require.Empty(t, s.Events())
		}
	}
	require.Equal(t, "host", spans[7].Name())
}

// TestReplicaApplyEventSpan: a replica's ApplyEvent (how a cluster follows its primary) makes
// the same span as the store's.
func TestReplicaApplyEventSpan(t *testing.T) {
	t.Parallel()
	tp, sr := spantest.Recorder(t)
	st, err := store.Open(t.Context(), store.Options{TracerProvider: tp})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	rep, err := st.Replicate()
	require.NoError(t, err)
	rev, err := rep.ApplyEvent(t.Context(), store.Event{Revision: 1, Changes: store.Changes{store.PutOrg{Org: store.Org{Name: "x"}}}})
	require.NoError(t, err)
	spans := sr.Ended()
	require.Len(t, spans, 1)
	require.Equal(t, "teamgate.ApplyEvent", spans[0].Name())
	require.Equal(t, map[attribute.Key]any{"teamgate.count": int64(1), "teamgate.revision": int64(rev)}, spantest.Attrs(spans[0]))
}

// TestReplicaRestoreSpan: a replica's Restore (how a cluster node resumes from a snapshot) makes
// a span like the other writes, a child of the caller's: the changes of its batch (one
// PutDirectory) and the revision restored, or the kind of the error that refused it (a snapshot
// not ahead of the store: conflict; an invalid one: invalid).
func TestReplicaRestoreSpan(t *testing.T) {
	t.Parallel()
	ctx, parent, sr, st, snap := tracedStore(t)
	rep, err := st.Replicate()
	require.NoError(t, err)

	rev, err := rep.Restore(ctx, 40, snap)
	require.NoError(t, err)
	_, err = rep.Restore(ctx, 40, snap)
	require.ErrorIs(t, err, teamgate.ErrConflict)
	bad := *snap
	bad.Orgs = append([]store.FileOrg{{Name: "Not A Slug"}}, bad.Orgs...)
	_, err = rep.Restore(ctx, 41, &bad)
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	parent.End()

	spans := sr.Ended()
	require.Len(t, spans, 4)
	for i, want := range []map[attribute.Key]any{
		{"teamgate.count": int64(1), "teamgate.revision": int64(rev)},
		{"teamgate.count": int64(1), "teamgate.error": "conflict"},
		{"teamgate.count": int64(1), "teamgate.error": "invalid"},
	} {
		s := spans[i]
		require.Equal(t, "teamgate.Restore", s.Name(), "span %d", i)
		require.Equal(t, want, spantest.Attrs(s), "span %d", i)
		require.Equal(t, parent.SpanContext().SpanID(), s.Parent().SpanID(), "span %d is the caller's child", i)
		require.Equal(t, "github.com/teamgate/teamgate/store", s.InstrumentationScope().Name)
		if _, refused := want["teamgate.error"]; refused {
			require.Equal(t, codes.Error, s.Status().Code, "span %d", i)
			require.Len(t, s.Events(), 1, "span %d records the error", i)
		} else {
			require.Equal(t, codes.Unset, s.Status().Code, "span %d", i)
		}
	}
	require.Equal(t, uint64(40), rev)
	require.Equal(t, "host", spans[3].Name())
}

// TestWriteSpansNeedAProvider: without Options.TracerProvider a store makes no span, not even
// from the global provider. Not parallel: it sets the global provider.
func TestWriteSpansNeedAProvider(t *testing.T) {
	tp, sr := spantest.Recorder(t)
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	st, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.LoadFile(t.Context(), acme)
	require.NoError(t, err)
	rev, err := st.Apply(t.Context(), store.PutMember{Org: "acme", User: "zoe", Role: "member"})
	require.NoError(t, err)
	_, err = st.ApplyEvent(t.Context(), store.Event{Revision: rev + 1, Changes: store.Changes{store.PutOrg{Org: store.Org{Name: "x"}}}})
	require.NoError(t, err)
	require.Empty(t, sr.Ended())
}
