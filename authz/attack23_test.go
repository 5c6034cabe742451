package authz_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

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

// TestAttack23EveryCallLogsWhatItReturned: the calls a host makes with the decision log on —
// Authorize (allowed, denied, with suggestions, with a cancelled context, a MinRevision that
// times out, an invalid request), Explain, AuthorizeBatch, CreateProject, BreakGlass (its
// org.break_glass permission) and ListProjects (a listing: none) — each leave the records the
// package doc says, in order, each equal to what the call returned, and records delivered +
// dropped == decisions logged.
func TestAttack23EveryCallLogsWhatItReturned(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	sink := &memSink{}
	eng, st := newAcme(t, authz.WithDecisionLog(sink), authz.WithDecisionCache(0))
	type told struct {
		req authz.Request
		d   authz.Decision
		err error
	}
	var want []told
	authorize := func(ctx context.Context, req authz.Request) {
		d, err := eng.Authorize(ctx, req)
		want = append(want, told{req, d, err})
	}
	authorize(ctx, authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/vision"})
	authorize(ctx, authz.Request{Subject: "vera", Action: "runs.delete", Resource: "acme/vision"})
	authorize(ctx, authz.Request{Subject: "vera", Action: "runs.delete", Resource: "acme/vision", Suggest: true})
	authorize(ctx, authz.Request{Subject: "bob", Action: "runs.fly", Resource: "acme/vision"})
	authorize(ctx, authz.Request{Subject: "bob", Action: "runs.get", Resource: "vision", Owner: "acme/engineering", Attributes: map[string]any{"n": 1}})
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	authorize(cancelled, authz.Request{Subject: "bob", Action: "runs.get", Resource: "acme/nlp", MinRevision: st.Revision() + 5})
	short, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
	authorize(short, authz.Request{Subject: "bob", Action: "runs.get", Resource: "acme/nlp", MinRevision: st.Revision() + 5})
	cancel2()
	require.Error(t, want[len(want)-1].err, "MinRevision never reached")
	require.Error(t, want[len(want)-2].err, "cancelled")

	ex := authz.Request{Subject: "olga", Action: "runs.approve", Resource: "acme/nlp"}
	x, err := eng.Explain(ctx, ex)
	require.NoError(t, err)
	want = append(want, told{ex, x.Decision, nil})

	batch := []authz.Request{{Subject: "bob", Action: "runs.get", Resource: "acme/open"}, {Subject: "bob", Action: "nope", Resource: "acme/open"}}
	res, err := eng.AuthorizeBatch(ctx, batch)
	require.NoError(t, err)
	for i, r := range res {
		want = append(want, told{batch[i], r.Decision, r.Err})
	}

	_, err = eng.ListProjects(ctx, "bob", "acme", authz.Page{})
	require.NoError(t, err)

	c, err := eng.CreateProject(ctx, "bob", "acme/engineering", authz.NewProject{Name: "lab9"})
	require.NoError(t, err)
	want = append(want, told{authz.Request{Subject: "bob", Action: "team.projects.create", Resource: "acme/engineering"}, c.Decision, nil})

	// A break-glass: its org.break_glass permission is logged (the write is not a decision).
	el, err := eng.BreakGlass(ctx, authz.BreakGlassRequest{Actor: "alice", Project: "acme/vision", Justification: "incident 7"})
	require.NoError(t, err)
	want = append(want, told{authz.Request{Subject: "alice", Action: "org.break_glass", Resource: "acme"}, el.Decision, nil})

	require.NoError(t, eng.Close(ctx))
	got := sink.all()
	s := eng.Stats()
	require.Equal(t, uint64(len(want)), s.DecisionLogWritten+s.DecisionLogDropped)
	require.Len(t, got, len(want))
	for i, w := range want {
		r := got[i]
		require.Equal(t, w.req.Subject, r.Request.Subject, "record %d", i)
		require.Equal(t, w.req.Action, r.Request.Action, "record %d", i)
		require.Equal(t, w.req.Resource, r.Request.Resource, "record %d", i)
		require.Equal(t, w.req.Owner, r.Request.Owner, "record %d", i)
		require.Equal(t, w.req.MinRevision, r.Request.MinRevision, "record %d", i)
		require.Equal(t, w.req.Suggest, r.Request.Suggest, "record %d", i)
		if w.err != nil {
			require.Equal(t, authz.PathNone, r.Path, "record %d", i)
			require.Equal(t, w.err.Error(), r.Error, "record %d", i)
			require.False(t, r.Decision.Allowed, "record %d", i)
			continue
		}
		require.NotEqual(t, authz.PathNone, r.Path, "record %d", i)
		require.Empty(t, r.Error, "record %d", i)
		require.Equal(t, w.d.Allowed, r.Decision.Allowed, "record %d: %+v", i, r)
		require.Equal(t, w.d.Role, r.Decision.Role, "record %d", i)
		require.Equal(t, w.d.Reasons, r.Decision.Reasons, "record %d", i)
		require.Equal(t, w.d.Revision, r.Decision.Revision, "record %d", i)
		require.Equal(t, w.d.Suggestions, r.Decision.Suggestions, "record %d", i)
		require.Equal(t, eng.Policy().Fingerprint(), r.Policy, "record %d", i)
	}
	require.Equal(t, map[string]any{"n": json.Number("1")}, got[4].Request.Attributes)
	require.NotEmpty(t, got[2].Decision.Suggestions)
}
