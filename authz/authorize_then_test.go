package authz_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/rego"
)

// TestBulkVersionListingLogsWhatTheHostIsTold: a run of a bulk version listing that the policy
// allows and its project's excluded_features denies (feature_excluded) is logged, counted and
// traced as that deny — not as the allow of its permission — with or without metrics; the
// other run is logged as allowed.
func TestBulkVersionListingLogsWhatTheHostIsTold(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for name, metrics := range map[string]bool{"logged": false, "logged and observed": true} {
		sink := &memSink{}
		opts := []authz.Option{authz.WithDecisionLog(sink)}
		reg := prometheus.NewPedanticRegistry()
		if metrics {
			opts = append(opts, authz.WithMetrics(reg))
		}
		eng, _ := newAcme(t, opts...)
		runs := []authz.RunRef{{UUID: "r1", Project: "vision"}, {UUID: "r2", Project: "nlp"}}
		out, err := eng.BulkRuns(ctx, "olga", "acme/engineering", "list_component_versions", runs, "")
		require.NoError(t, err)
		require.False(t, out[0].Decision.Allowed, name)
		require.True(t, out[0].Decision.Has(rego.CodeFeatureExcluded), "%s: %+v", name, out[0].Decision)
		require.True(t, out[1].Decision.Allowed, name)
		require.NoError(t, eng.FlushDecisionLog(ctx))
		got := map[string]authz.DecisionRecord{}
		for _, r := range sink.all() {
			got[r.Request.Action+" "+r.Request.Resource] = r
		}
		vision := got["versions.list acme/vision"]
		require.False(t, vision.Decision.Allowed, "%s: %+v", name, vision)
		require.Equal(t, out[0].Decision.Reasons, vision.Decision.Reasons, name)
		require.Equal(t, "admin", vision.Decision.Role, name)
		nlp := got["versions.list acme/nlp"]
		require.True(t, nlp.Decision.Allowed, "%s: %+v", name, nlp)
		if metrics {
			denied := 0.0
			for _, m := range family(t, reg, "teamgate_decisions_total").GetMetric() {
				if strings.Contains(labels(m), "outcome=denied") {
					denied += m.GetCounter().GetValue()
				}
			}
			require.Equal(t, 1.0, denied, "the feature_excluded run counts as a denied decision")
			n, err := testutil.GatherAndCount(reg, "teamgate_decisions_total")
			require.NoError(t, err)
			require.Positive(t, n)
		}
		require.NoError(t, eng.Close(ctx))
	}
}
