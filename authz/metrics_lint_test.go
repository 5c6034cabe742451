package authz_test

import (
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/store"
)

// TestMetricsLint: every family the engine and the store register passes Prometheus's own
// linter (promlint through testutil.CollectAndLint: _total on counters, _seconds and base
// units, HELP text, no reserved or camelCase names), with every path and outcome populated.
func TestMetricsLint(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	st, err := store.Open(t.Context(), store.Options{Registerer: reg})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.LoadFile(t.Context(), conformance.DataFile())
	require.NoError(t, err)
	eng, err := authz.New(t.Context(), st, authz.WithMetrics(reg), authz.WithDecisionLog(discardSink{}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = eng.Close(t.Context()) })
	for range 2 {
		_, err = eng.Authorize(t.Context(), authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"})
		require.NoError(t, err)
	}
	_, err = st.Apply(t.Context(), store.PutMember{Org: "acme", User: "zoe", Role: "member"})
	require.NoError(t, err)

	fams, err := reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
		require.NotEmpty(t, f.GetHelp(), f.GetName())
	}
	for _, want := range []string{
		"teamgate_decisions_total", "teamgate_decision_duration_seconds",
		"teamgate_decision_cache_hits_total", "teamgate_decision_cache_misses_total", "teamgate_decision_cache_entries",
		"teamgate_evaluation_errors_total", "teamgate_evaluation_over_budget_total", "teamgate_store_revision",
		"teamgate_store_write_duration_seconds", "teamgate_decision_log_dropped_total",
	} {
		require.True(t, names[want], "%s is not registered", want)
	}
	// The package doc and README.md list every family.
	for _, doc := range []string{"doc.go", "../README.md"} {
		raw, err := os.ReadFile(doc)
		require.NoError(t, err)
		for name := range names {
			require.True(t, strings.Contains(string(raw), name), "%s does not list %s", doc, name)
		}
	}
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)
}
