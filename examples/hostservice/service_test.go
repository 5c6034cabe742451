package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/rego"
)

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	eng, done, err := setup(t.Context(), config{})
	require.NoError(t, err)
	t.Cleanup(done)
	srv := httptest.NewServer(newHandler(eng, sampleRuns))
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, srv *httptest.Server, user, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if user != "" {
		req.Header.Set("X-User", user)
	}
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(raw)
}

func uuids(t *testing.T, body string) []string {
	t.Helper()
	var runs []Run
	require.NoError(t, json.Unmarshal([]byte(body), &runs))
	out := []string{}
	for _, r := range runs {
		out = append(out, r.UUID)
	}
	return out
}

func TestTeamSpaceRuns(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	code, body := call(t, srv, "bob", "GET", "/api/v1/orgs/acme/teams/engineering/runs", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, []string{"r-nlp-1", "r-vision-1", "r-vision-2"}, uuids(t, body))

	// beth has a grant on vision but is not in the engineering team: team.runs denies.
	code, body = call(t, srv, "beth", "GET", "/api/v1/orgs/acme/teams/engineering/runs", "")
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "insufficient_role")

	code, body = call(t, srv, "alice", "GET", "/api/v1/orgs/acme/teams/nosuch/runs", "")
	require.Equal(t, http.StatusNotFound, code, body)
	code, _ = call(t, srv, "", "GET", "/api/v1/orgs/acme/teams/engineering/runs", "")
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = call(t, srv, "bob", "GET", "/api/v1/orgs/acme/teams/eng.x/runs", "")
	require.Equal(t, http.StatusBadRequest, code)
}

func TestBulkApproveAndStop(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	body := `{"uuids": ["r-vision-1", "r-vision-2", "r-open-1"]}`
	// bob (contributor) may stop runs in the team space, but not approve them; open is not in it.
	code, out := call(t, srv, "bob", "POST", "/api/v1/orgs/acme/teams/engineering/runs/approve", body)
	require.Equal(t, http.StatusOK, code, out)
	var res []bulkResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Len(t, res, 3)
	for _, r := range res {
		require.False(t, r.Done, r.UUID)
	}
	require.Equal(t, rego.CodeInsufficientRole, res[0].Reasons[0].Code)
	require.Equal(t, rego.CodeNotInScope, res[2].Reasons[0].Code)

	code, out = call(t, srv, "bob", "POST", "/api/v1/orgs/acme/teams/engineering/runs/stop", body)
	require.Equal(t, http.StatusOK, code, out)
	res = nil
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.True(t, res[0].Done)
	require.True(t, res[1].Done)
	require.False(t, res[2].Done)

	// olga (team admin, an outsider invited to the team) approves.
	code, out = call(t, srv, "olga", "POST", "/api/v1/orgs/acme/teams/engineering/runs/approve", `{"uuids": ["r-vision-2"]}`)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, out, `"done":true`)
	code, out = call(t, srv, "olga", "GET", "/api/v1/acme/vision/runs/r-vision-2", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, out, `"status":"approved"`)
}

func TestRunReads(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	code, _ := call(t, srv, "otto", "GET", "/api/v1/acme/vision/runs/r-vision-1", "")
	require.Equal(t, http.StatusOK, code, "outsider with a viewer grant")
	code, body := call(t, srv, "otto", "GET", "/api/v1/acme/nlp/runs/r-nlp-1", "")
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "restricted")
	code, _ = call(t, srv, "bob", "GET", "/api/v1/acme/missing/runs/x", "")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = call(t, srv, "bob", "GET", "/api/v1/acme/vision/runs/r-nlp-1", "")
	require.Equal(t, http.StatusNotFound, code, "a run of another project")
}

func TestProjectsInATeamSpace(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	code, body := call(t, srv, "vera", "GET", "/api/v1/orgs/acme/teams/engineering/projects", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `"projects":["nlp","vision"]`)

	code, body = call(t, srv, "vera", "POST", "/api/v1/acme/engineering/projects/create", `{"name": "detector"}`)
	require.Equal(t, http.StatusForbidden, code, body)
	code, body = call(t, srv, "bob", "POST", "/api/v1/acme/engineering/projects/create", `{"name": "detector"}`)
	require.Equal(t, http.StatusCreated, code, body)
	require.Contains(t, body, `"project":"acme/detector"`)
	code, _ = call(t, srv, "bob", "POST", "/api/v1/acme/engineering/projects/create", `{"name": "detector"}`)
	require.Equal(t, http.StatusConflict, code)
	code, _ = call(t, srv, "bob", "POST", "/api/v1/acme/engineering/projects/create", `{"name": "bad name"}`)
	require.Equal(t, http.StatusBadRequest, code)

	// The new project is assigned to the team: vera, a team member, now sees it.
	code, body = call(t, srv, "vera", "GET", "/api/v1/orgs/acme/teams/engineering/projects", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `"projects":["detector","nlp","vision"]`)
}

func TestVersionListingsByKind(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	body := `{"uuids": ["r-vision-1", "r-nlp-1", "r-open-1"]}`
	for _, tc := range []struct {
		kind  string
		codes []string
		done  []bool
	}{
		// vision's gpu-policy excludes components.
		{"component", []string{"feature_excluded", "team_role", "not_in_scope"}, []bool{false, true, false}},
		{"model", []string{"team_role", "team_role", "not_in_scope"}, []bool{true, true, false}},
		{"artifact", []string{"team_role", "team_role", "not_in_scope"}, []bool{true, true, false}},
	} {
		code, out := call(t, srv, "olga", "POST", "/api/v1/orgs/acme/teams/engineering/runs/versions/"+tc.kind, body)
		require.Equal(t, http.StatusOK, code, out)
		var res []bulkResult
		require.NoError(t, json.Unmarshal([]byte(out), &res))
		require.Len(t, res, 3, out)
		for i, r := range res {
			require.Equal(t, tc.done[i], r.Done, "%s %s", tc.kind, r.UUID)
			require.Equal(t, tc.codes[i], string(r.Reasons[0].Code), "%s %s", tc.kind, r.UUID)
		}
	}
	code, out := call(t, srv, "olga", "POST", "/api/v1/orgs/acme/teams/engineering/runs/versions/runtime", body)
	require.Equal(t, http.StatusBadRequest, code, out)
	// The scope comes first: beth is not in engineering.
	code, out = call(t, srv, "beth", "POST", "/api/v1/orgs/acme/teams/engineering/runs/versions/model", body)
	require.Equal(t, http.StatusOK, code, out)
	require.NotContains(t, out, `"done":true`)
}

// TestBodiesRefuseAmbiguousKeys: a request body with a duplicate, case-variant or unknown key is
// a 400 naming the key, and nothing happens.
func TestBodiesRefuseAmbiguousKeys(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	for _, tc := range []struct{ name, path, body, want string }{
		{"duplicate uuids", "/api/v1/orgs/acme/teams/engineering/runs/stop", `{"uuids": [], "uuids": ["r-vision-1"]}`, "uuids: duplicate key"},
		{"case variant", "/api/v1/orgs/acme/teams/engineering/runs/stop", `{"uuids": [], "UUIDs": ["r-vision-1"]}`, "UUIDs: unknown key"},
		{"unknown key", "/api/v1/acme/engineering/projects/create", `{"name": "detector", "teams": ["research"]}`, "teams: unknown key"},
		{"duplicate name", "/api/v1/acme/engineering/projects/create", `{"name": "detector", "name": "other"}`, "name: duplicate key"},
		{"trailing value", "/api/v1/acme/engineering/projects/create", `{"name": "detector"} {"name": "other"}`, "not JSON"},
	} {
		code, body := call(t, srv, "bob", "POST", tc.path, tc.body)
		require.Equal(t, http.StatusBadRequest, code, tc.name)
		require.Contains(t, body, tc.want, tc.name)
		require.Contains(t, body, "line 1, column", tc.name)
	}
	code, body := call(t, srv, "bob", "GET", "/api/v1/acme/vision/runs/r-vision-1", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `"status":"running"`, "the refused stop stopped nothing")
	code, body = call(t, srv, "vera", "GET", "/api/v1/orgs/acme/teams/engineering/projects", "")
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, body, "detector", "the refused creates created nothing")
}
