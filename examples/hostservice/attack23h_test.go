package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// runStatus is what olga (admin on acme/vision and acme/nlp) reads of a run: its status, or
// "gone".
func runStatus(t *testing.T, srv interface{ Close() }, get func(path string) (int, string), project, uuid string) string {
	t.Helper()
	code, body := get("/api/v1/acme/" + project + "/runs/" + uuid)
	if code == http.StatusNotFound {
		return "gone"
	}
	require.Equal(t, http.StatusOK, code, body)
	var r Run
	require.NoError(t, json.Unmarshal([]byte(body), &r))
	return r.Status
}

// TestBodiesMustBeJSON: a body not declared application/json (missing, a form, text/plain — what
// a browser posts cross-site without a preflight) is a 415 with a JSON error, and nothing
// happens; application/json with parameters is accepted.
func TestBodiesMustBeJSON(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	const stop = "/api/v1/orgs/acme/teams/engineering/runs/bulk/stop_runs"
	const create = "/api/v1/acme/engineering/projects/create"
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx", "json", "application/json; charset"} {
		for _, tc := range []struct{ user, path, body string }{
			{"olga", stop, `{"uuids": ["r-vision-1"]}`},
			{"bob", create, `{"name": "detector"}`},
		} {
			h := http.Header{"X-User": {tc.user}}
			if ct != "" {
				h.Set("Content-Type", ct)
			}
			code, out := send(t, srv, "POST", tc.path, h, strings.NewReader(tc.body))
			require.Equal(t, http.StatusUnsupportedMediaType, code, "%q: %s", ct, out)
			require.JSONEq(t, `{"error": "body: Content-Type `+strings.ReplaceAll(`"`+ct+`"`, `"`, `\"`)+`, want application/json"}`, out)
		}
	}
	get := func(path string) (int, string) { return call(t, srv, "olga", "GET", path, "") }
	require.Equal(t, "running", runStatus(t, srv, get, "vision", "r-vision-1"), "the refused stops stopped nothing")
	code, out := call(t, srv, "vera", "GET", "/api/v1/orgs/acme/teams/engineering/projects", "")
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, out, "detector", "the refused creates created nothing")

	h := http.Header{"X-User": {"olga"}, "Content-Type": {"Application/JSON; charset=utf-8"}}
	code, out = send(t, srv, "POST", stop, h, strings.NewReader(`{"uuids": ["r-vision-1"]}`))
	require.Equal(t, http.StatusOK, code, out)
	require.Equal(t, "stopped", runStatus(t, srv, get, "vision", "r-vision-1"))
}

// TestChunkedBodyOverLimit: a body sent chunked (no Content-Length) is cut at maxBody too: 413.
func TestChunkedBodyOverLimit(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	body := io.MultiReader(strings.NewReader(`{"uuids": ["`), io.LimitReader(neverEnding('x'), 2*maxBody), strings.NewReader(`"]}`))
	h := http.Header{"X-User": {"olga"}, "Content-Type": {"application/json"}}
	code, out := send(t, srv, "POST", "/api/v1/orgs/acme/teams/engineering/runs/bulk/stop_runs", h, body)
	require.Equal(t, http.StatusRequestEntityTooLarge, code, out)
	require.JSONEq(t, `{"error": "body: larger than 1048576 bytes"}`, out)
}

// neverEnding reads as the same byte forever (wrapped with io.LimitReader, and without a
// length, so the client sends it chunked).
type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// TestNamesInPaths: an encoded slash, dot segments or a look-alike letter in an org, team or
// project of a path never reaches another scope: a 400, never an answer about
// something else, and no write.
func TestNamesInPaths(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/api/v1/orgs/acme%2Fengineering/teams/x/runs", http.StatusBadRequest},
		{"GET", "/api/v1/orgs/acme/teams/engineering%2Fvision/runs", http.StatusBadRequest},
		{"GET", "/api/v1/orgs/acme/teams/engineering%2Fvision/artifacts", http.StatusBadRequest},
		{"GET", "/api/v1/orgs/acme/teams/engineering%2Fvision/projects", http.StatusBadRequest},
		{"GET", "/api/v1/orgs/acme/teams/%2E%2E/runs", http.StatusBadRequest},
		{"GET", "/api/v1/orgs/\u0430cme/teams/engineering/runs", http.StatusBadRequest}, // Cyrillic а
		{"GET", "/api/v1/orgs/acme/teams/engineering\u200b/runs", http.StatusBadRequest},
		{"GET", "/api/v1/acme/vision%2F..%2Fnlp/runs/r-nlp-1", http.StatusBadRequest},
		{"GET", "/api/v1/acme/engineering%2Fvision/runs/r-vision-1", http.StatusBadRequest},
		{"POST", "/api/v1/orgs/acme/teams/engineering%2Fx/runs/bulk/stop_runs", http.StatusBadRequest},
		{"POST", "/api/v1/orgs/acme%2Fengineering/runs/bulk/stop_runs", http.StatusBadRequest},
		{"POST", "/api/v1/orgs/\u0430cme/runs/bulk/stop_runs", http.StatusBadRequest},
		{"POST", "/api/v1/acme/engineering%2Fvision/projects/create", http.StatusBadRequest},
		{"POST", "/api/v1/acme%2Fengineering/vision/projects/create", http.StatusBadRequest},
	} {
		body := ""
		if tc.method == "POST" {
			body = `{"uuids": ["r-vision-1", "r-nlp-1"]}`
			if strings.HasSuffix(tc.path, "/create") {
				body = `{"name": "detector"}`
			}
		}
		code, out := call(t, srv, "alice", tc.method, tc.path, body) // alice owns acme
		require.Equal(t, tc.code, code, "%s %s: %s", tc.method, tc.path, out)
		require.Contains(t, out, `"error"`)
	}
	get := func(path string) (int, string) { return call(t, srv, "olga", "GET", path, "") }
	require.Equal(t, "running", runStatus(t, srv, get, "vision", "r-vision-1"))
	require.Equal(t, "created", runStatus(t, srv, get, "nlp", "r-nlp-1"))
	code, out := call(t, srv, "alice", "GET", "/api/v1/orgs/acme/teams/engineering/projects", "")
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, out, "detector")
	for _, name := range []string{"../x", "det\u0435ctor", "a/b", ""} {
		code, out := call(t, srv, "alice", "POST", "/api/v1/acme/engineering/projects/create", `{"name": "`+name+`"}`)
		require.Equal(t, http.StatusBadRequest, code, "%q: %s", name, out)
	}
}

// TestBulkScopeDeniedAsAWhole: every bulk operation by a subject the scope denies (team.runs on
// the team, org.runs on the org; a subject the directory lacks too) is a 403 with the scope's
// reasons, 404 for a team that does not exist, whatever the body names (runs the host has,
// none, unknown ones), and has no effect.
func TestBulkScopeDeniedAsAWhole(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	ops := []string{"approve_runs", "archive_runs", "restore_runs", "delete_runs", "stop_runs", "skip_runs",
		"invalidate_runs", "bookmark_runs", "tag_runs", "transfer_runs", "get_run", "list_runs", "list_versions",
		"list_runs_artifacts_lineage", "list_component_versions", "list_model_versions", "list_artifact_versions"}
	for _, op := range ops {
		for _, tc := range []struct {
			user, path string
			code       int
			reason     string
		}{
			{"otto", "/api/v1/orgs/acme/teams/engineering/runs/bulk/", http.StatusForbidden, "team.runs needs viewer on team acme/engineering; otto has none"},
			{"bob", "/api/v1/orgs/acme/runs/bulk/", http.StatusForbidden, "org.runs needs org role owner or manager or admin; bob is member"},
			{"nobody", "/api/v1/orgs/acme/teams/engineering/runs/bulk/", http.StatusForbidden, "nobody is not a member of org acme"},
			{"nobody", "/api/v1/orgs/acme/runs/bulk/", http.StatusForbidden, "nobody is not a member of org acme"},
			{"olga", "/api/v1/orgs/acme/teams/nosuch/runs/bulk/", http.StatusNotFound, "not_found"},
			{"olga", "/api/v1/orgs/nosuch/runs/bulk/", http.StatusNotFound, "not_found"},
		} {
			for _, uuids := range []string{`["r-vision-1", "r-vision-2", "r-nlp-1", "r-open-1"]`, `[]`, `["r-nosuch"]`} {
				body := `{"uuids": ` + uuids + `}`
				if op == "transfer_runs" {
					body = `{"uuids": ` + uuids + `, "destination": "acme/labs"}`
				}
				code, out := call(t, srv, tc.user, "POST", tc.path+op, body)
				require.Equal(t, tc.code, code, "%s %s%s: %s", tc.user, tc.path, op, out)
				require.Contains(t, out, `"error":"denied"`)
				require.Contains(t, out, tc.reason, "%s %s%s", tc.user, tc.path, op)
			}
		}
	}
	code, out := call(t, srv, "alice", "GET", "/api/v1/orgs/acme/runs", "")
	require.Equal(t, http.StatusNotFound, code, "no such route: %s", out)
	for _, r := range sampleRuns {
		code, out := call(t, srv, "alice", "GET", "/api/v1/acme/"+r.Project+"/runs/"+r.UUID, "")
		require.Equal(t, http.StatusOK, code, "%s still there: %s", r.UUID, out)
		require.Contains(t, out, `"status":"`+r.Status+`"`, r.UUID)
	}
}

// TestDestinationOnlyForTransfer: a destination on any other operation is a 400 and does
// nothing (it would be passed to the policy as attributes.destination).
func TestDestinationOnlyForTransfer(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	code, out := call(t, srv, "olga", "POST", "/api/v1/orgs/acme/teams/engineering/runs/bulk/stop_runs", `{"uuids": ["r-vision-1"], "destination": "acme/nlp"}`)
	require.Equal(t, http.StatusBadRequest, code, out)
	require.JSONEq(t, `{"error": "invalid destination \"acme/nlp\": only transfer_runs takes a destination"}`, out)
	get := func(path string) (int, string) { return call(t, srv, "olga", "GET", path, "") }
	require.Equal(t, "running", runStatus(t, srv, get, "vision", "r-vision-1"))
}

// TestEffectOnTheRunDecided: an allowed operation's effect applies to the run as it was decided;
// a run another request moved or deleted in between is left alone (the decision was about its
// old project) and apply says so.
func TestEffectOnTheRunDecided(t *testing.T) {
	t.Parallel()
	tbl := &runTable{runs: map[string]*Run{}}
	for _, r := range sampleRuns {
		tbl.runs[r.UUID] = &r
	}
	decided := tbl.byUUID([]string{"r-vision-1"})[0]
	// Meanwhile another request moves the run to labs.
	require.True(t, tbl.apply(decided, func(r *Run) bool { r.Project = "labs"; return true }))
	deleted := false
	require.False(t, tbl.apply(decided, func(*Run) bool { deleted = true; return false }), "decided in vision, now in labs")
	require.False(t, deleted)
	require.Equal(t, "labs", tbl.byUUID([]string{"r-vision-1"})[0].Project, "still there")
	// Deleted meanwhile: nothing to do.
	decided = tbl.byUUID([]string{"r-nlp-1"})[0]
	require.True(t, tbl.apply(decided, func(*Run) bool { return false }))
	require.False(t, tbl.apply(decided, func(r *Run) bool { r.Status = "stopped"; return true }))
	require.Empty(t, tbl.byUUID([]string{"r-nlp-1"}))
}

// TestConcurrentBulkOnOneProject: bulk operations racing on the same runs (stop, approve,
// transfer out of the team space and back, delete) leave every run either deleted by an allowed
// delete or present, in a project its last allowed transfer named; every line is decided; a line
// whose effect lost the race says so.
func TestConcurrentBulkOnOneProject(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	const space = "/api/v1/orgs/acme/teams/engineering/runs/bulk/"
	const org = "/api/v1/orgs/acme/runs/bulk/"
	body := `{"uuids": ["r-vision-1", "r-vision-2"]}`
	reqs := []struct{ user, path, body string }{
		{"olga", space + "stop_runs", body},
		{"olga", space + "approve_runs", body},
		{"alice", org + "transfer_runs", `{"uuids": ["r-vision-1", "r-vision-2"], "destination": "acme/open"}`},
		{"alice", org + "transfer_runs", `{"uuids": ["r-vision-1", "r-vision-2"], "destination": "acme/vision"}`},
		{"olga", space + "delete_runs", body},
		{"olga", space + "get_run", body},
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var lines []runLine
	for range 4 {
		for _, rq := range reqs {
			wg.Go(func() {
				code, out := call(t, srv, rq.user, "POST", rq.path, rq.body)
				if code != http.StatusOK {
					t.Errorf("%s %s: %d %s", rq.user, rq.path, code, out)
					return
				}
				var ls []runLine
				if err := json.Unmarshal([]byte(out), &ls); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				lines = append(lines, ls...)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	for _, l := range lines {
		require.NotEmpty(t, l.Decision.Reasons, "%+v", l)
		if l.Error != nil {
			require.True(t, l.Decision.Allowed, "only an allowed run's effect can lose the race: %+v", l)
			require.Contains(t, *l.Error, "moved or deleted while it was decided")
		}
	}
	for _, uuid := range []string{"r-vision-1", "r-vision-2"} {
		for _, p := range []string{"vision", "open"} {
			code, out := call(t, srv, "alice", "GET", "/api/v1/acme/"+p+"/runs/"+uuid, "")
			require.Contains(t, []int{http.StatusOK, http.StatusNotFound}, code, out)
		}
	}
}

// TestServerTimeouts: the service's server times out a client that trickles its headers or body,
// never reads its answer or idles, and its answers fit the write timeout (a min_revision wait).
func TestServerTimeouts(t *testing.T) {
	t.Parallel()
	srv := httpServer("127.0.0.1:0", http.NotFoundHandler())
	require.Positive(t, srv.ReadHeaderTimeout)
	require.Greater(t, srv.ReadTimeout, srv.ReadHeaderTimeout)
	require.Greater(t, srv.WriteTimeout, readWait)
	require.Positive(t, srv.IdleTimeout)
}

// TestMissesAnswerJSON: a path the service does not have is a 404, a method a route does not take
// a 405 with Allow, both with a JSON error like every other answer.
func TestMissesAnswerJSON(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	for _, tc := range []struct {
		method, path string
		code         int
		want         string
	}{
		{"GET", "/api/v1/orgs/acme/runs", http.StatusNotFound, `{"error": "no route /api/v1/orgs/acme/runs"}`},
		{"GET", "/nosuch", http.StatusNotFound, `{"error": "no route /nosuch"}`},
		{"GET", "/api/v1/orgs/acme/runs/bulk/stop_runs", http.StatusMethodNotAllowed, `{"error": "/api/v1/orgs/acme/runs/bulk/stop_runs takes POST, not GET"}`},
		{"DELETE", "/api/v1/orgs/acme/teams/engineering/runs", http.StatusMethodNotAllowed, `{"error": "/api/v1/orgs/acme/teams/engineering/runs takes GET, HEAD, not DELETE"}`},
	} {
		code, out := call(t, srv, "bob", tc.method, tc.path, "")
		require.Equal(t, tc.code, code, "%s %s: %s", tc.method, tc.path, out)
		require.JSONEq(t, tc.want, out, "%s %s", tc.method, tc.path)
	}
}
