package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/strict"
	"github.com/teamgate/teamgate/rego"
)

// Run is a row of the host's own run table.
type Run struct {
	UUID      string `json:"uuid"`
	Org       string `json:"org"`
	Project   string `json:"project"`
	CreatedBy string `json:"created_by"`
	Status    string `json:"status"`
}

// runTable is the host's in-memory run table.
type runTable struct {
	mu   sync.Mutex // guards runs
	runs map[string]*Run
}

func (t *runTable) byUUID(uuids []string) []Run {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Run
	for _, u := range uuids {
		if r, ok := t.runs[u]; ok {
			out = append(out, *r)
		}
	}
	return out
}

func (t *runTable) inProjects(org string, projects []string) []Run {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := []Run{}
	for _, r := range t.runs {
		if r.Org == org && slices.Contains(projects, r.Project) {
			out = append(out, *r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UUID < out[j].UUID })
	return out
}

func (t *runTable) setStatus(uuid, status string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok := t.runs[uuid]; ok {
		r.Status = status
	}
}

// service is the platform's API with teamgate deciding every request in-process.
type service struct {
	eng  *authz.Engine
	runs *runTable
}

// newHandler builds the routes. The subject comes from the X-User header.
func newHandler(eng *authz.Engine, runs []Run) http.Handler {
	t := &runTable{runs: map[string]*Run{}}
	for _, r := range runs {
		t.runs[r.UUID] = &r
	}
	s := &service{eng: eng, runs: t}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/orgs/{org}/teams/{team}/runs", s.withUser(s.listTeamRuns))
	mux.HandleFunc("POST /api/v1/orgs/{org}/teams/{team}/runs/approve", s.withUser(s.bulk("approve_runs", "approved")))
	mux.HandleFunc("POST /api/v1/orgs/{org}/teams/{team}/runs/stop", s.withUser(s.bulk("stop_runs", "stopped")))
	mux.HandleFunc("POST /api/v1/orgs/{org}/teams/{team}/runs/versions/{kind}", s.withUser(s.versions))
	mux.HandleFunc("GET /api/v1/orgs/{org}/teams/{team}/projects", s.withUser(s.listTeamProjects))
	mux.HandleFunc("POST /api/v1/{org}/{team}/projects/create", s.withUser(s.createProject))
	mux.HandleFunc("GET /api/v1/{org}/{project}/runs/{uuid}", s.withUser(s.getRun))
	return mux
}

type handler func(w http.ResponseWriter, r *http.Request, user string)

// withUser is the authentication stand-in: the user id from X-User.
func (s *service) withUser(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user := r.Header.Get("X-User")
		if user == "" {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "X-User header required"})
			return
		}
		h(w, r, user)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// maxBody bounds a request body.
const maxBody = 1 << 20

// decodeBody decodes a JSON request body strictly — an unknown, duplicate or case-variant key is a
// 400 naming the key — and reports whether to go on.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err == nil {
		err = strict.JSON(raw, v)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
		return false
	}
	return true
}

// deny writes a teamgate denial: 404 when the resource does not exist, 403 otherwise.
func deny(w http.ResponseWriter, d authz.Decision) {
	code := http.StatusForbidden
	if d.Has(rego.CodeNotFound) {
		code = http.StatusNotFound
	}
	writeJSON(w, code, map[string]any{"error": "denied", "reasons": d.Reasons})
}

// fail maps an error: invalid input is 400, a conflict 409, a replica that has not reached a
// read's min_revision 503 (retry, perhaps on another replica), anything else 500.
func fail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, teamgate.ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, teamgate.ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, teamgate.ErrStale):
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// readWait bounds how long a read waits for its ?min_revision before it fails with 503.
const readWait = 2 * time.Second

// authorize checks one action and writes the denial; it reports whether to go on. A query
// parameter min_revision=R (the revision a write answered, perhaps on another replica) makes it
// wait until this replica has applied R, at most readWait, so what the handler reads next
// includes that write.
func (s *service) authorize(w http.ResponseWriter, r *http.Request, req authz.Request) bool {
	ctx := r.Context()
	if q := r.URL.Query().Get("min_revision"); q != "" {
		rev, err := strconv.ParseUint(q, 10, 64)
		if err != nil {
			fail(w, teamgate.Invalid("min_revision", q, "want a revision, a non-negative integer"))
			return false
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, readWait)
		defer cancel()
		req.MinRevision = rev
	}
	d, err := s.eng.Authorize(ctx, req)
	if err != nil {
		fail(w, err)
		return false
	}
	if !d.Allowed {
		deny(w, d)
		return false
	}
	return true
}

func (s *service) listTeamRuns(w http.ResponseWriter, r *http.Request, user string) {
	owner := r.PathValue("org") + "/" + r.PathValue("team")
	if !s.authorize(w, r, authz.Request{Subject: user, Action: "team.runs", Resource: owner}) {
		return
	}
	f, err := s.eng.ProjectFilter(r.Context(), user, owner)
	if err != nil {
		fail(w, err)
		return
	}
	// The host's own query: WHERE org = f.Org AND project IN (f.Projects).
	writeJSON(w, http.StatusOK, s.runs.inProjects(f.Org, f.Projects))
}

func (s *service) listTeamProjects(w http.ResponseWriter, r *http.Request, user string) {
	owner := r.PathValue("org") + "/" + r.PathValue("team")
	if !s.authorize(w, r, authz.Request{Subject: user, Action: "team.projects.list", Resource: owner}) {
		return
	}
	page, err := s.eng.ListProjects(r.Context(), user, owner, authz.Page{After: r.URL.Query().Get("after")})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

type bulkResult struct {
	UUID    string         `json:"uuid"`
	Done    bool           `json:"done"`
	Reasons []authz.Reason `json:"reasons"`
}

// runRefs reads the body's run uuids as the host's run references; on a bad body it writes 400.
func (s *service) runRefs(w http.ResponseWriter, r *http.Request) ([]authz.RunRef, bool) {
	var body struct {
		UUIDs []string `json:"uuids"`
	}
	if !decodeBody(w, r, &body) {
		return nil, false
	}
	refs := []authz.RunRef{}
	for _, run := range s.runs.byUUID(body.UUIDs) {
		refs = append(refs, authz.RunRef{UUID: run.UUID, Project: run.Org + "/" + run.Project, CreatedBy: run.CreatedBy})
	}
	return refs, true
}

// bulk applies a bulk run operation to the runs the user may change, one result per run.
func (s *service) bulk(op, status string) handler {
	return func(w http.ResponseWriter, r *http.Request, user string) {
		refs, ok := s.runRefs(w, r)
		if !ok {
			return
		}
		owner := r.PathValue("org") + "/" + r.PathValue("team")
		decisions, err := s.eng.BulkRuns(r.Context(), user, owner, op, refs, "")
		if err != nil {
			fail(w, err)
			return
		}
		out := []bulkResult{}
		for _, d := range decisions {
			if d.Decision.Allowed {
				s.runs.setStatus(d.UUID, status)
			}
			out = append(out, bulkResult{UUID: d.UUID, Done: d.Decision.Allowed, Reasons: d.Decision.Reasons})
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// versions answers, per run, whether the user may list the run's versions of one kind
// (component, model or artifact): the bulk operation list_{kind}_versions, which needs
// versions.list on the run's project and refuses a kind the project's effective
// excluded_features holds (reason feature_excluded). Done is true for the runs whose versions
// the host may list. Any other kind is a 400.
func (s *service) versions(w http.ResponseWriter, r *http.Request, user string) {
	refs, ok := s.runRefs(w, r)
	if !ok {
		return
	}
	owner := r.PathValue("org") + "/" + r.PathValue("team")
	decisions, err := s.eng.BulkRuns(r.Context(), user, owner, "list_"+r.PathValue("kind")+"_versions", refs, "")
	if err != nil {
		fail(w, err)
		return
	}
	out := []bulkResult{}
	for _, d := range decisions {
		out = append(out, bulkResult{UUID: d.UUID, Done: d.Decision.Allowed, Reasons: d.Decision.Reasons})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *service) createProject(w http.ResponseWriter, r *http.Request, user string) {
	var body struct {
		Name string `json:"name"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	c, err := s.eng.CreateProject(r.Context(), user, r.PathValue("org")+"/"+r.PathValue("team"), authz.NewProject{Name: body.Name})
	if err != nil {
		fail(w, err)
		return
	}
	if !c.Decision.Allowed {
		deny(w, c.Decision)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"project": c.Project, "revision": c.Revision})
}

func (s *service) getRun(w http.ResponseWriter, r *http.Request, user string) {
	org, project := r.PathValue("org"), r.PathValue("project")
	if !s.authorize(w, r, authz.Request{Subject: user, Action: "runs.get", Resource: org + "/" + project}) {
		return
	}
	runs := s.runs.byUUID([]string{r.PathValue("uuid")})
	if len(runs) == 0 || runs[0].Org != org || runs[0].Project != project {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "run not found"})
		return
	}
	writeJSON(w, http.StatusOK, runs[0])
}
