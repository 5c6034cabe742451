package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/cluster/embedded"
)

// replica starts a host-service instance sharing the directory in stream on the NATS server at
// url.
func replica(t *testing.T, url, stream string) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	eng, done, err := setup(t.Context(), config{nats: url, stream: stream}, reg)
	require.NoError(t, err)
	t.Cleanup(done)
	srv := httptest.NewServer(newHandler(eng, sampleRuns, sampleArtifacts, reg))
	t.Cleanup(srv.Close)
	return srv
}

func projects(t *testing.T, body string) []string {
	t.Helper()
	var page authz.ProjectPage
	require.NoError(t, json.Unmarshal([]byte(body), &page), body)
	return page.Projects
}

// Two replicas on one NATS server share one directory: the first seeds it, and a project created
// through either is visible through the other once it has applied the write's revision.
func TestReplicasShareWrites(t *testing.T) {
	t.Parallel()
	nats, err := embedded.Start(embedded.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(nats.Close)
	a := replica(t, nats.URL(), "")
	b := replica(t, nats.URL(), "")

	const list = "/api/v1/orgs/acme/teams/engineering/projects"
	create := func(srv *httptest.Server, name string) uint64 {
		t.Helper()
		code, body := call(t, srv, "bob", "POST", "/api/v1/acme/engineering/projects/create", `{"name": "`+name+`"}`)
		require.Equal(t, http.StatusCreated, code, body)
		var out struct {
			Project  string `json:"project"`
			Revision uint64 `json:"revision"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &out))
		require.Equal(t, "acme/"+name, out.Project)
		return out.Revision
	}

	// b joined after a seeded the stream: it did not seed again, so the first write is revision 2.
	rev := create(a, "detector")
	require.Equal(t, uint64(2), rev)
	code, body := call(t, b, "bob", "GET", list+"?min_revision="+strconv.FormatUint(rev, 10), "")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, []string{"detector", "nlp", "vision"}, projects(t, body))

	// b validates against a's write: the same name is a conflict there.
	code, body = call(t, b, "bob", "POST", "/api/v1/acme/engineering/projects/create", `{"name": "detector"}`)
	require.Equal(t, http.StatusConflict, code, body)

	rev = create(b, "tracker")
	require.Equal(t, uint64(3), rev)
	code, body = call(t, a, "bob", "GET", list+"?min_revision=3", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, []string{"detector", "nlp", "tracker", "vision"}, projects(t, body))

	// A replica on another stream is another directory: seeded afresh, without those projects.
	c := replica(t, nats.URL(), "other")
	code, body = call(t, c, "bob", "GET", list+"?min_revision=1", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, []string{"nlp", "vision"}, projects(t, body))
}

func TestMinRevisionOnReads(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	const list = "/api/v1/orgs/acme/teams/engineering/projects"
	for _, c := range []struct {
		query string
		code  int
		want  string
	}{
		{"?min_revision=1", http.StatusOK, `"vision"`},
		{"?min_revision=0", http.StatusOK, `"vision"`},
		{"?min_revision=x", http.StatusBadRequest, `min_revision`},
		{"?min_revision=-1", http.StatusBadRequest, `min_revision`},
		// Nothing writes to this replica's own directory: revision 9 never comes.
		{"?min_revision=9", http.StatusServiceUnavailable, `stale`},
	} {
		code, body := call(t, srv, "bob", "GET", list+c.query, "")
		require.Equal(t, c.code, code, "%s: %s", c.query, body)
		require.Contains(t, body, c.want, c.query)
	}
}

func TestStreamNeedsNATS(t *testing.T) {
	t.Parallel()
	_, _, err := setup(t.Context(), config{stream: "acme"}, prometheus.NewRegistry())
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	require.ErrorContains(t, err, "-stream")
}
