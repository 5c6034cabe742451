package authz_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/conformance"
)

// TestDecisionLogDecidesAlike: the decision log changes no decision. Every corpus request —
// as written, with a met min_revision, with Suggest, and with a cancelled context — is decided
// with the log off and on (and on with metrics, the observed path), on full evaluation, the
// compiled path and the cached engine (twice: the second pass from the cache), and the logged
// engine returns what the unlogged one does, error for error; each logged call makes exactly one
// record, holding the request and the decision returned (or the error, denied). A closed
// engine decides alike and logs nothing.
func TestDecisionLogDecidesAlike(t *testing.T) {
	t.Parallel()
	cases, err := conformance.Load()
	require.NoError(t, err)
	var reqs []authz.Request
	for _, c := range cases.Authorize {
		r := authz.Request{Subject: c.Subject, Action: c.Action, Resource: c.Resource, Attributes: c.Attributes}
		withRev, suggest := r, r
		withRev.MinRevision, suggest.Suggest = 1, true
		reqs = append(reqs, r, withRev, suggest)
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	for name, opts := range map[string][]authz.Option{
		"rego":     {authz.WithDecisionCache(0), authz.WithCompiledPath(false)},
		"compiled": {authz.WithDecisionCache(0)},
		"cached":   {},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			off, _ := newAcme(t, opts...)
			sink, metered := &memSink{}, &memSink{}
			on, _ := newAcme(t, append(opts, authz.WithDecisionLog(sink))...)
			onMetrics, _ := newAcme(t, append(opts, authz.WithDecisionLog(metered), authz.WithMetrics(prometheus.NewRegistry()))...)
			for pass := range 2 {
				for i, r := range reqs {
					for _, ctx := range []context.Context{t.Context(), cancelled} {
						what := fmt.Sprintf("pass %d, request %d %+v, cancelled %v", pass, i, r, ctx != t.Context())
						want, wantErr := off.Authorize(ctx, r)
						for _, l := range []struct {
							eng  *authz.Engine
							sink *memSink
						}{{on, sink}, {onMetrics, metered}} {
							before := l.sink.count()
							got, err := l.eng.Authorize(ctx, r)
							require.Equal(t, wantErr, err, what)
							require.Equal(t, want, got, what)
							require.NoError(t, l.eng.FlushDecisionLog(t.Context()))
							recs := l.sink.since(before)
							require.Len(t, recs, 1, what)
							rec := recs[0]
							// (attributes are copied through JSON: numbers come back as json.Number)
							wantReq, err2 := json.Marshal(r)
							require.NoError(t, err2)
							gotReq, err2 := json.Marshal(rec.Request)
							require.NoError(t, err2)
							require.JSONEq(t, string(wantReq), string(gotReq), what)
							if err != nil {
								require.Equal(t, err.Error(), rec.Error, what)
								require.Equal(t, authz.PathNone, rec.Path, what)
								require.False(t, rec.Decision.Allowed, what)
								continue
							}
							require.Empty(t, rec.Error, what)
							require.Equal(t, got, rec.Decision, what)
						}
					}
				}
			}
			// A closed engine still decides, alike, and logs nothing (the calls count as dropped).
			for _, eng := range []*authz.Engine{on, onMetrics} {
				require.NoError(t, eng.Close(t.Context()))
				for i, r := range reqs[:30] {
					want, wantErr := off.Authorize(t.Context(), r)
					got, err := eng.Authorize(t.Context(), r)
					require.Equal(t, wantErr, err, "closed, request %d", i)
					require.Equal(t, want, got, "closed, request %d", i)
				}
				require.Equal(t, uint64(30), eng.Stats().DecisionLogDropped)
			}
			require.Len(t, sink.all(), 4*len(reqs))
		})
	}
}
