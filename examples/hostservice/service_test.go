package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/rego"
)

// TestDataIsTheCorpus: the embedded acme.yaml is the conformance data, not a copy that drifts.
func TestDataIsTheCorpus(t *testing.T) {
	t.Parallel()
	conformance.RequireDataCopy(t, acme)
}

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	eng, done, err := setup(t.Context(), config{}, reg)
	require.NoError(t, err)
	t.Cleanup(done)
	srv := httptest.NewServer(newHandler(eng, sampleRuns, sampleArtifacts, reg))
	t.Cleanup(srv.Close)
	return srv
}

// call sends a request as user ("": no X-User), a body as JSON.
func call(t *testing.T, srv *httptest.Server, user, method, path, body string) (int, string) {
	t.Helper()
	h := http.Header{}
	if user != "" {
		h.Set("X-User", user)
	}
	if body != "" {
		h.Set("Content-Type", "application/json")
	}
	return send(t, srv, method, path, h, strings.NewReader(body))
}

// send sends a request with exactly the headers h.
func send(t *testing.T, srv *httptest.Server, method, path string, h http.Header, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, body)
	require.NoError(t, err)
	req.Header = h
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

// line is one run's answer to a bulk operation.
type line struct {
	UUID     string         `json:"uuid"`
	Decision authz.Decision `json:"decision"`
	Error    *string        `json:"error"`
}

// bulk posts a bulk operation and decodes its lines.
func bulk(t *testing.T, srv *httptest.Server, user, path, body string) []line {
	t.Helper()
	code, out := call(t, srv, user, "POST", path, body)
	require.Equal(t, http.StatusOK, code, out)
	var res []line
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	return res
}

func TestBulkApproveAndStop(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	const space = "/api/v1/orgs/acme/teams/engineering/runs/bulk/"
	body := `{"uuids": ["r-vision-1", "r-vision-2", "r-open-1"]}`
	// bob (contributor) may stop runs in the team space, but not approve them; open is not in it.
	res := bulk(t, srv, "bob", space+"approve_runs", body)
	require.Len(t, res, 3)
	for _, r := range res {
		require.False(t, r.Decision.Allowed, r.UUID)
		require.Nil(t, r.Error)
	}
	require.Equal(t, rego.CodeInsufficientRole, res[0].Decision.Reasons[0].Code)
	require.Equal(t, rego.CodeNotInScope, res[2].Decision.Reasons[0].Code)

	res = bulk(t, srv, "bob", space+"stop_runs", body)
	require.True(t, res[0].Decision.Allowed)
	require.True(t, res[1].Decision.Allowed)
	require.False(t, res[2].Decision.Allowed)
	code, out := call(t, srv, "bob", "GET", "/api/v1/acme/vision/runs/r-vision-1", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, out, `"status":"stopped"`)

	// olga (team admin, an outsider invited to the team) approves.
	res = bulk(t, srv, "olga", space+"approve_runs", `{"uuids": ["r-vision-2"]}`)
	require.True(t, res[0].Decision.Allowed)
	code, out = call(t, srv, "olga", "GET", "/api/v1/acme/vision/runs/r-vision-2", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, out, `"status":"approved"`)
}

// TestEveryBulkOperation: every bulk operation of SPEC §5 is routed, in a team space and in an
// org, and decides each run with its own action (the engine's BulkRuns), the scope first: a
// subject the scope denies gets a 403 with its reasons (TestBulkScopeDeniedAsAWhole).
func TestEveryBulkOperation(t *testing.T) {
	t.Parallel()
	ops := []string{"approve_runs", "archive_runs", "restore_runs", "delete_runs", "stop_runs", "skip_runs",
		"invalidate_runs", "bookmark_runs", "tag_runs", "transfer_runs", "get_run", "list_runs", "list_versions",
		"list_runs_artifacts_lineage", "list_component_versions", "list_model_versions", "list_artifact_versions"}
	for _, op := range ops {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t)
			eng, _, err := setup(t.Context(), config{}, prometheus.NewRegistry())
			require.NoError(t, err)
			body, destination := `{"uuids": ["r-vision-1", "r-nlp-1", "r-open-1"]}`, ""
			if op == "transfer_runs" {
				body, destination = `{"uuids": ["r-vision-1", "r-nlp-1", "r-open-1"], "destination": "acme/labs"}`, "acme/labs"
			}
			for _, tc := range []struct{ user, owner, path string }{
				{"olga", "acme/engineering", "/api/v1/orgs/acme/teams/engineering/runs/bulk/" + op},
				{"adam", "acme", "/api/v1/orgs/acme/runs/bulk/" + op},
				{"bob", "acme", "/api/v1/orgs/acme/runs/bulk/" + op}, // org.runs denies bob: a 403
			} {
				// The library's own answer on the same runs, before the host applies any effect.
				runs := []authz.RunRef{{UUID: "r-vision-1", Project: "acme/vision", CreatedBy: "bob"},
					{UUID: "r-nlp-1", Project: "acme/nlp", CreatedBy: "vera"}, {UUID: "r-open-1", Project: "acme/open", CreatedBy: "bob"}}
				want, err := eng.BulkRuns(t.Context(), tc.user, tc.owner, op, runs, destination)
				require.NoError(t, err)
				if tc.user == "bob" {
					code, out := call(t, srv, tc.user, "POST", tc.path, body)
					require.Equal(t, http.StatusForbidden, code, out)
					for _, w := range want {
						require.False(t, w.Decision.Allowed)
						require.Equal(t, rego.CodeInsufficientRole, w.Decision.Reasons[0].Code)
						require.Contains(t, out, w.Decision.Reasons[0].Message)
					}
					continue
				}
				res := bulk(t, srv, tc.user, tc.path, body)
				require.Len(t, res, len(want))
				for i, w := range want {
					require.Equal(t, w.UUID, res[i].UUID)
					require.Equal(t, w.Decision.Allowed, res[i].Decision.Allowed, "%s %s %s", tc.user, op, w.UUID)
					require.Equal(t, w.Decision.Reasons, res[i].Decision.Reasons, "%s %s %s", tc.user, op, w.UUID)
				}
				// Delete and transfer change the host's table: reload it for the next caller.
				srv = newServer(t)
			}
		})
	}
}

// TestBulkEffectsAndErrors: an allowed delete removes the run, an allowed transfer moves it; an
// unknown operation, transfer_runs without a destination or with a malformed one is a 400.
func TestBulkEffectsAndErrors(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	const space = "/api/v1/orgs/acme/teams/engineering/runs/bulk/"
	res := bulk(t, srv, "olga", space+"transfer_runs", `{"uuids": ["r-vision-2"], "destination": "acme/nlp"}`)
	require.True(t, res[0].Decision.Allowed, "%+v", res[0])
	code, _ := call(t, srv, "olga", "GET", "/api/v1/acme/nlp/runs/r-vision-2", "")
	require.Equal(t, http.StatusOK, code, "moved to nlp")
	res = bulk(t, srv, "olga", space+"delete_runs", `{"uuids": ["r-vision-1"]}`)
	require.True(t, res[0].Decision.Allowed)
	code, _ = call(t, srv, "olga", "GET", "/api/v1/acme/vision/runs/r-vision-1", "")
	require.Equal(t, http.StatusNotFound, code, "deleted")

	for _, tc := range []struct{ op, body string }{
		{"rename_runs", `{"uuids": ["r-nlp-1"]}`},
		{"transfer_runs", `{"uuids": ["r-nlp-1"]}`},
		{"transfer_runs", `{"uuids": ["r-nlp-1"], "destination": "labs"}`},
	} {
		code, out := call(t, srv, "olga", "POST", space+tc.op, tc.body)
		require.Equal(t, http.StatusBadRequest, code, "%s %s: %s", tc.op, tc.body, out)
	}
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
		kind    string
		codes   []string
		allowed []bool
	}{
		// vision's gpu-policy excludes components.
		{"component", []string{"feature_excluded", "team_role", "not_in_scope"}, []bool{false, true, false}},
		{"model", []string{"team_role", "team_role", "not_in_scope"}, []bool{true, true, false}},
		{"artifact", []string{"team_role", "team_role", "not_in_scope"}, []bool{true, true, false}},
	} {
		res := bulk(t, srv, "olga", "/api/v1/orgs/acme/teams/engineering/runs/bulk/list_"+tc.kind+"_versions", body)
		require.Len(t, res, 3)
		for i, r := range res {
			require.Equal(t, tc.allowed[i], r.Decision.Allowed, "%s %s", tc.kind, r.UUID)
			require.Equal(t, tc.codes[i], string(r.Decision.Reasons[0].Code), "%s %s", tc.kind, r.UUID)
		}
	}
	// The scope comes first: beth is not in engineering.
	code, out := call(t, srv, "beth", "POST", "/api/v1/orgs/acme/teams/engineering/runs/bulk/list_model_versions", body)
	require.Equal(t, http.StatusForbidden, code, out)
	require.Contains(t, out, "team.runs needs viewer on team acme/engineering; beth has none")
}

// TestTeamArtifacts: the team space's artifacts are those of its projects the user sees and may
// list artifacts of; someone who cannot see the team gets a 403, an unknown team a 404.
func TestTeamArtifacts(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	ids := func(body string) []string {
		var as []Artifact
		require.NoError(t, json.Unmarshal([]byte(body), &as))
		out := []string{}
		for _, a := range as {
			out = append(out, a.ID)
		}
		return out
	}
	for _, tc := range []struct {
		user string
		code int
		want []string
	}{
		{"bob", http.StatusOK, []string{"a-vision-model", "a-nlp-tokenizer"}},
		// labs is assigned to engineering, but its policy narrows its effective teams to none.
		{"alice", http.StatusOK, []string{"a-vision-model", "a-nlp-tokenizer"}},
		{"beth", http.StatusForbidden, nil}, // a grant on vision, not in the team
		{"otto", http.StatusForbidden, nil},
	} {
		code, body := call(t, srv, tc.user, "GET", "/api/v1/orgs/acme/teams/engineering/artifacts", "")
		require.Equal(t, tc.code, code, "%s: %s", tc.user, body)
		if tc.want != nil {
			require.Equal(t, tc.want, ids(body), tc.user)
		}
	}
	code, body := call(t, srv, "vera", "GET", "/api/v1/orgs/acme/teams/research/artifacts", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, []string{"a-nlp-tokenizer"}, ids(body))
	code, _ = call(t, srv, "bob", "GET", "/api/v1/orgs/acme/teams/nosuch/artifacts", "")
	require.Equal(t, http.StatusNotFound, code)
}

// TestBodyLimit: a body over 1 MiB is a 413 with a JSON error, and nothing happens.
func TestBodyLimit(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	big := `{"uuids": ["r-vision-1"], "destination": "` + strings.Repeat("x", maxBody) + `"}`
	for _, path := range []string{"/api/v1/orgs/acme/teams/engineering/runs/bulk/stop_runs", "/api/v1/acme/engineering/projects/create"} {
		code, body := call(t, srv, "bob", "POST", path, big)
		require.Equal(t, http.StatusRequestEntityTooLarge, code, path)
		require.JSONEq(t, `{"error": "body: larger than 1048576 bytes"}`, body)
	}
	code, body := call(t, srv, "bob", "GET", "/api/v1/acme/vision/runs/r-vision-1", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `"status":"running"`)
}

// TestBulkRunsBounded: a bulk request names at most maxBulkRuns runs (each one a full
// evaluation): one more, even the same uuid repeated, is a 400 and decides nothing.
func TestBulkRunsBounded(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	body := func(n int) string {
		return `{"uuids": [` + strings.TrimSuffix(strings.Repeat(`"r-vision-1",`, n), ",") + `]}`
	}
	code, out := call(t, srv, "olga", "POST", "/api/v1/orgs/acme/teams/engineering/runs/bulk/stop_runs", body(maxBulkRuns+1))
	require.Equal(t, http.StatusBadRequest, code, out)
	require.JSONEq(t, `{"error": "invalid uuids \"1001 runs\": at most 1000 runs per request"}`, out)
	code, out = call(t, srv, "olga", "GET", "/api/v1/acme/vision/runs/r-vision-1", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, out, `"status":"running"`, "the refused stop stopped nothing")
	code, out = call(t, srv, "olga", "POST", "/api/v1/orgs/acme/teams/engineering/runs/bulk/get_run", body(maxBulkRuns))
	require.Equal(t, http.StatusOK, code)
	var lines []runLine
	require.NoError(t, json.Unmarshal([]byte(out), &lines))
	require.Len(t, lines, maxBulkRuns)
}

// TestJSONNotHTMLEscaped: answers print "<", ">" and "&" as they are, like the CLI.
func TestJSONNotHTMLEscaped(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	code, body := call(t, srv, "a<b&c>", "GET", "/api/v1/orgs/acme/teams/engineering/runs", "")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, `a<b&c>`)
}

// TestMetricsEndpoint: /metrics serves the host's registry, with teamgate's decision, cache,
// revision and write metrics.
func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	call(t, srv, "bob", "GET", "/api/v1/orgs/acme/teams/engineering/runs", "")
	call(t, srv, "bob", "GET", "/api/v1/orgs/acme/teams/engineering/runs", "")
	code, _ := call(t, srv, "bob", "POST", "/api/v1/acme/engineering/projects/create", `{"name": "detector"}`)
	require.Equal(t, http.StatusCreated, code)
	code, body := call(t, srv, "", "GET", "/metrics", "")
	require.Equal(t, http.StatusOK, code)
	for _, want := range []string{
		`teamgate_decisions_total{outcome="allowed",path="compiled"} 2`, // team.runs, then team.projects.create
		`teamgate_decisions_total{outcome="allowed",path="cache_l1"} 1`,
		`teamgate_decision_cache_hits_total{tier="l1"} 1`,
		`teamgate_store_revision 2`,
		`teamgate_store_write_duration_seconds_count{outcome="ok"} 2`, // the sample directory, the project
		`teamgate_decision_duration_seconds_bucket{outcome="allowed",path="cache_l1",le="+Inf"} 1`,
	} {
		require.Contains(t, body, want+"\n")
	}
}

// TestBodiesRefuseAmbiguousKeys: a request body with a duplicate, case-variant or unknown key is
// a 400 naming the key, and nothing happens.
func TestBodiesRefuseAmbiguousKeys(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	for _, tc := range []struct{ name, path, body, want string }{
		{"duplicate uuids", "/api/v1/orgs/acme/teams/engineering/runs/bulk/stop_runs", `{"uuids": [], "uuids": ["r-vision-1"]}`, "uuids: duplicate key"},
		{"case variant", "/api/v1/orgs/acme/teams/engineering/runs/bulk/stop_runs", `{"uuids": [], "UUIDs": ["r-vision-1"]}`, "UUIDs: unknown key"},
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
