package authz_test

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/rego"
)

// TestAttack23BulkRunsLogsWhatTheHostIsTold: every branch of BulkRuns, with and without
// metrics. The log holds, in order, the scope's decision, then one record per run the engine
// decided — allowed, denied, feature_excluded, not_found — equal to what BulkRuns returned for
// it (request, outcome, role, reasons, revision); runs denied before any decision (the scope's
// deny, not_in_scope) and a run whose project reference is malformed (its Err) are not logged,
// as WithDecisionLog says. Decisions made == records delivered + dropped.
func TestAttack23BulkRunsLogsWhatTheHostIsTold(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	type run struct {
		ref    authz.RunRef
		logged bool
		code   rego.Code // a reason the run's decision carries
	}
	cases := []struct {
		subject, op string
		allowed     bool // the scope's decision
		runs        []run
	}{
		{"olga", "list_component_versions", true, []run{
			{authz.RunRef{UUID: "excluded", Project: "vision"}, true, rego.CodeFeatureExcluded},
			{authz.RunRef{UUID: "allowed", Project: "nlp"}, true, rego.CodeTeamRole},
			{authz.RunRef{UUID: "missing", Project: "ghost"}, true, rego.CodeNotFound},
			{authz.RunRef{UUID: "team space", Project: "acme/engineering/ghost"}, true, rego.CodeNotFound},
			{authz.RunRef{UUID: "elsewhere", Project: "open"}, false, rego.CodeNotInScope},
			{authz.RunRef{UUID: "other org", Project: "other/misc"}, false, rego.CodeNotInScope},
			{authz.RunRef{UUID: "malformed", Project: "a/b/c/d"}, false, rego.CodeError},
		}},
		{"bob", "delete_runs", true, []run{
			{authz.RunRef{UUID: "denied", Project: "vision", CreatedBy: "vera"}, true, rego.CodeInsufficientRole},
			{authz.RunRef{UUID: "allowed own", Project: "vision", CreatedBy: "bob"}, true, rego.CodeOwnRun},
			{authz.RunRef{UUID: "policy space", Project: "labs"}, false, rego.CodeNotInScope},
		}},
		{"otto", "list_model_versions", false, []run{
			{authz.RunRef{UUID: "scope", Project: "vision"}, false, ""},
			{authz.RunRef{UUID: "scope too", Project: "nlp"}, false, ""},
		}},
	}
	for _, metrics := range []bool{false, true} {
		sink := &memSink{}
		opts := []authz.Option{authz.WithDecisionLog(sink), authz.WithDecisionCache(0)}
		if metrics {
			opts = append(opts, authz.WithMetrics(prometheus.NewPedanticRegistry()))
		}
		eng, _ := newAcme(t, opts...)
		type told struct {
			req authz.Request
			d   authz.Decision
		}
		var want []told
		for _, c := range cases {
			name := fmt.Sprintf("%s %s metrics=%v", c.subject, c.op, metrics)
			refs := make([]authz.RunRef, len(c.runs))
			for i, r := range c.runs {
				refs[i] = r.ref
			}
			scope := authz.Request{Subject: c.subject, Action: "team.runs", Resource: "acme/engineering"}
			sd, err := eng.Authorize(ctx, scope) // logged: the test's own decision, then the bulk call's
			require.NoError(t, err)
			require.Equal(t, c.allowed, sd.Allowed, name)
			want = append(want, told{scope, sd}, told{scope, sd})
			out, err := eng.BulkRuns(ctx, c.subject, "acme/engineering", c.op, refs, "")
			require.NoError(t, err, name)
			require.Len(t, out, len(refs), name)
			action, _ := authz.BulkAction(c.op)
			for i, r := range c.runs {
				d := out[i].Decision
				if r.code != "" {
					require.True(t, d.Has(r.code), "%s %s: %+v", name, r.ref.UUID, d)
				}
				require.Equal(t, sd.Revision, d.Revision, "%s %s: the host is told the revision it was decided at", name, r.ref.UUID)
				if r.logged {
					require.NoError(t, out[i].Err)
					res := r.ref.Project
					if res != "acme/engineering/ghost" {
						res = "acme/" + res
					}
					want = append(want, told{authz.Request{Subject: c.subject, Action: action, Resource: res}, d})
				}
			}
		}
		require.NoError(t, eng.FlushDecisionLog(ctx))
		got := sink.all()
		st := eng.Stats()
		require.Equal(t, uint64(len(want)), st.DecisionLogWritten+st.DecisionLogDropped, "metrics=%v", metrics)
		require.Zero(t, st.DecisionLogDropped)
		require.Len(t, got, len(want), "metrics=%v", metrics)
		for i, w := range want {
			r := got[i]
			require.Equal(t, w.req.Subject, r.Request.Subject, "record %d", i)
			require.Equal(t, w.req.Action, r.Request.Action, "record %d", i)
			require.Equal(t, w.req.Resource, r.Request.Resource, "record %d", i)
			require.Equal(t, w.d.Allowed, r.Decision.Allowed, "record %d: %+v", i, r)
			require.Equal(t, w.d.Role, r.Decision.Role, "record %d: %+v", i, r)
			require.Equal(t, w.d.Reasons, r.Decision.Reasons, "record %d: %+v", i, r)
			require.Equal(t, w.d.Revision, r.Decision.Revision, "record %d: %+v", i, r)
			require.Equal(t, eng.Policy().Fingerprint(), r.Policy, "record %d", i)
			require.NotEqual(t, authz.PathNone, r.Path, "record %d", i)
		}
		require.NoError(t, eng.Close(ctx))
	}
}
