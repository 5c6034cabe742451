package store_test

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/store"
)

// TestWriteMetrics: every write that goes through the commit pipeline is timed, by outcome; an
// empty batch commits nothing and is not; the metrics go to the caller's registry, and
// registering them twice there is an error from Open.
func TestWriteMetrics(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	reg := prometheus.NewPedanticRegistry()
	st := conformance.OpenStore(t, store.Options{Registerer: reg})
	_, err := st.Apply(ctx, store.PutMember{Org: "acme", User: "zoe", Role: "member"})
	require.NoError(t, err)
	_, err = st.Apply(ctx, store.PutMember{Org: "acme", User: "zoe", Role: "emperor"})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	_, err = st.Apply(ctx)
	require.NoError(t, err)

	fams, err := reg.Gather()
	require.NoError(t, err)
	counts := map[string]uint64{}
	for _, f := range fams {
		require.Equal(t, "teamgate_store_write_duration_seconds", f.GetName())
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			counts[m.GetLabel()[0].GetValue()] = h.GetSampleCount()
			require.Positive(t, h.GetSampleSum())
		}
	}
	require.Equal(t, map[string]uint64{"ok": 2, "error": 1}, counts)

	_, err = store.Open(ctx, store.Options{Registerer: reg})
	var dup prometheus.AlreadyRegisteredError
	require.True(t, errors.As(err, &dup), "%v", err)
}

// TestWriteMetricsReopen: Close unregisters the store's metrics, so a host that closes its store
// and opens it again (a restart in process, a restore) on the same registry can; the new store's
// writes are the ones counted.
func TestWriteMetricsReopen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	reg := prometheus.NewPedanticRegistry()
	st, err := store.Open(ctx, store.Options{Dir: dir, NoSync: true, Registerer: reg})
	require.NoError(t, err)
	_, err = st.LoadFile(ctx, acme)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	n, err := testutil.GatherAndCount(reg, "teamgate_store_write_duration_seconds")
	require.NoError(t, err)
	require.Zero(t, n, "a closed store's metrics are gone")

	st, err = store.Open(ctx, store.Options{Dir: dir, NoSync: true, Registerer: reg})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.Apply(ctx, store.PutMember{Org: "acme", User: "zoe", Role: "member"})
	require.NoError(t, err)
	fams, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, fams, 1)
	counts := map[string]uint64{}
	for _, m := range fams[0].GetMetric() {
		counts[m.GetLabel()[0].GetValue()] = m.GetHistogram().GetSampleCount()
	}
	require.Equal(t, map[string]uint64{"ok": 1, "error": 0}, counts)
}
