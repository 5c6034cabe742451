package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/decisionlog"
	"github.com/teamgate/teamgate/rego"
)

// TestDecisionLog: with -decision-log the service's decisions reach the log, flushed when the
// service shuts down, and the log answers queries on them afterwards.
func TestDecisionLog(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	eng, done, err := setup(t.Context(), config{declog: dir}, reg)
	require.NoError(t, err)
	srv := httptest.NewServer(newHandler(eng, sampleRuns, sampleArtifacts, reg))
	code, body := call(t, srv, "otto", "GET", "/api/v1/acme/nlp/runs/r-nlp-1", "")
	require.Equal(t, http.StatusForbidden, code, body)
	code, body = call(t, srv, "bob", "GET", "/api/v1/orgs/acme/teams/engineering/runs", "")
	require.Equal(t, http.StatusOK, code, body)
	srv.Close()
	done() // flushes the log and closes it

	log, err := decisionlog.Open(t.Context(), decisionlog.Options{Dir: dir})
	require.NoError(t, err)
	defer log.Close()
	var denied []authz.DecisionRecord
	require.NoError(t, log.Query(t.Context(), decisionlog.Query{Subject: "otto", Outcome: decisionlog.OutcomeDeny}, func(r authz.DecisionRecord) error {
		denied = append(denied, r)
		return nil
	}))
	require.NotEmpty(t, denied)
	require.Equal(t, "acme/nlp", denied[0].Request.Resource)
	require.True(t, denied[0].Decision.Has(rego.CodeRestricted), "%+v", denied[0].Decision)
	var bobs int
	require.NoError(t, log.Query(t.Context(), decisionlog.Query{Subject: "bob"}, func(authz.DecisionRecord) error {
		bobs++
		return nil
	}))
	require.Positive(t, bobs)
}
