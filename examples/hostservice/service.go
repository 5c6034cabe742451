package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/strict"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
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

// apply runs the effect of an allowed bulk operation (bulkEffects) on the run decided, a copy
// byUUID returned, and reports whether it did: a run that another request has since moved,
// deleted is left alone, since the decision was about where the run was then.
func (t *runTable) apply(decided Run, effect func(*Run) bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.runs[decided.UUID]
	if !ok || r.Org != decided.Org || r.Project != decided.Project || r.CreatedBy != decided.CreatedBy {
		return false
	}
	if !effect(r) {
		delete(t.runs, decided.UUID)
	}
	return true
}

// Artifact is a row of the host's own artifact table: a file a run produced.
type Artifact struct {
	ID      string `json:"id"`
	Org     string `json:"org"`
	Project string `json:"project"`
	Run     string `json:"run"`
	Name    string `json:"name"`
}

// service is the platform's API with teamgate deciding every request in-process.
type service struct {
	eng       *authz.Engine
	runs      *runTable
	artifacts []Artifact // read-only
}

// newHandler builds the routes over the host's run and artifact tables; metrics is served at
// /metrics. The subject comes from the X-User header; every request body is limited to maxBody.
func newHandler(eng *authz.Engine, runs []Run, artifacts []Artifact, metrics prometheus.Gatherer) http.Handler {
	t := &runTable{runs: map[string]*Run{}}
	for _, r := range runs {
		t.runs[r.UUID] = &r
	}
	s := &service{eng: eng, runs: t, artifacts: artifacts}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/orgs/{org}/teams/{team}/runs", s.withUser(s.listTeamRuns))
	mux.HandleFunc("POST /api/v1/orgs/{org}/teams/{team}/runs/bulk/{op}", s.withUser(s.bulk))
	mux.HandleFunc("POST /api/v1/orgs/{org}/runs/bulk/{op}", s.withUser(s.bulk))
	mux.HandleFunc("GET /api/v1/orgs/{org}/teams/{team}/artifacts", s.withUser(s.listTeamArtifacts))
	mux.HandleFunc("GET /api/v1/orgs/{org}/teams/{team}/projects", s.withUser(s.listTeamProjects))
	mux.HandleFunc("POST /api/v1/{org}/{team}/projects/create", s.withUser(s.createProject))
	mux.HandleFunc("GET /api/v1/{org}/{project}/runs/{uuid}", s.withUser(s.getRun))
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}))
	return limitBodies(oneNamePerSegment(jsonMisses(mux)))
}

// jsonMisses answers a request no route takes as the routes answer errors, in JSON: 404 for a
// path the service does not have, 405 (with Allow) for a method a path does not take.
func jsonMisses(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(&missWriter{ResponseWriter: w, r: r}, r)
	})
}

// missWriter turns the mux's plain-text 404 and 405 into JSON errors; anything else (a redirect
// to the cleaned path) passes.
type missWriter struct {
	http.ResponseWriter
	r        *http.Request
	replaced bool
}

func (m *missWriter) WriteHeader(code int) {
	if code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		m.ResponseWriter.WriteHeader(code)
		return
	}
	m.replaced = true
	m.Header().Del("X-Content-Type-Options")
	msg := "no route " + m.r.URL.Path
	if code == http.StatusMethodNotAllowed {
		msg = m.r.URL.Path + " takes " + m.Header().Get("Allow") + ", not " + m.r.Method
	}
	writeJSON(m.ResponseWriter, code, map[string]string{"error": msg})
}

func (m *missWriter) Write(b []byte) (int, error) {
	if m.replaced {
		return len(b), nil // the mux's text, replaced
	}
	return m.ResponseWriter.Write(b)
}

// oneNamePerSegment refuses (400) a path with an encoded slash: the mux would hand "acme/eng" to
// {org}, so /api/v1/orgs/acme%2Feng/runs/bulk/... would act in the team space acme/eng through
// the org route. No name of the service's paths holds a slash.
func oneNamePerSegment(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(strings.ToLower(r.URL.EscapedPath()), "%2f") {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "path: a name holds an encoded slash (%2F)"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// maxBody bounds a request body.
const maxBody = 1 << 20

// maxBulkRuns bounds the runs one bulk request names. A run's decision is a full Rego evaluation
// (it carries attributes), about 100 µs: 1 MiB of uuids (the same one repeated, even) would
// otherwise buy tens of thousands of them, seconds of CPU, for one request.
const maxBulkRuns = 1000

// limitBodies makes reading more than maxBody bytes of any request body fail (decodeBody
// answers 413), so no client makes the service buffer an unbounded body.
func limitBodies(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		h.ServeHTTP(w, r)
	})
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
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // a message's "<" reads as "<", as teamgate's CLI prints it
	_ = enc.Encode(v)
}

// decodeBody decodes a JSON request body strictly — a body not declared application/json is a
// 415, an unknown, duplicate or case-variant key a 400 naming the key, a body over maxBody a 413
// — and reports whether to go on.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); !isJSON(ct) {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"error": "body: Content-Type " + strconv.Quote(ct) + ", want application/json"})
		return false
	}
	raw, err := io.ReadAll(r.Body)
	if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body: larger than " + strconv.FormatInt(tooBig.Limit, 10) + " bytes"})
		return false
	}
	if err == nil {
		err = strict.JSON(raw, v)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
		return false
	}
	return true
}

// isJSON reports whether a Content-Type header declares JSON (parameters such as charset aside).
// A form or text/plain body, which a browser sends cross-site without asking, is refused.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
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

// listTeamArtifacts lists the artifacts of a team space (the seed's
// /api/v1/orgs/{org}/teams/{team}/artifacts): the user must see the team (team.get); the
// artifacts are those of the team space's projects the user sees (ProjectFilter, project.get)
// and may list artifacts of (artifacts.list on org/team/project: one batch).
func (s *service) listTeamArtifacts(w http.ResponseWriter, r *http.Request, user string) {
	owner := r.PathValue("org") + "/" + r.PathValue("team")
	if !s.authorize(w, r, authz.Request{Subject: user, Action: "team.get", Resource: owner}) {
		return
	}
	f, err := s.eng.ProjectFilter(r.Context(), user, owner)
	if err != nil {
		fail(w, err)
		return
	}
	reqs := make([]authz.Request, len(f.Projects))
	for i, p := range f.Projects {
		reqs[i] = authz.Request{Subject: user, Action: "artifacts.list", Resource: owner + "/" + p}
	}
	res, err := s.eng.AuthorizeBatch(r.Context(), reqs)
	if err != nil {
		fail(w, err)
		return
	}
	out := []Artifact{}
	for _, a := range s.artifacts {
		i := slices.Index(f.Projects, a.Project)
		if a.Org == f.Org && i >= 0 && res[i].Err == nil && res[i].Decision.Allowed {
			out = append(out, a)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// runLine is one run's answer to a bulk operation: authz.RunDecision's JSON plus "error" (null
// when decided), the lines `teamgate bulk` prints.
type runLine struct {
	authz.RunDecision
	Error *string `json:"error"`
}

// bulkEffects are what the host does to a run once a bulk operation allows it; false removes the
// run. Operations without an effect (get_run, list_runs, the version and lineage listings,
// bookmark_runs and tag_runs, whose bookmarks and tags this example does not keep) only decide.
var bulkEffects = map[string]func(r *Run, destination scope.Ref) bool{
	"approve_runs":    status("approved"),
	"archive_runs":    status("archived"),
	"restore_runs":    status("restored"),
	"stop_runs":       status("stopped"),
	"skip_runs":       status("skipped"),
	"invalidate_runs": status("invalidated"),
	"delete_runs":     func(*Run, scope.Ref) bool { return false },
	"transfer_runs": func(r *Run, dest scope.Ref) bool {
		r.Org, r.Project = dest.Org, dest.Project
		return true
	},
}

func status(s string) func(*Run, scope.Ref) bool {
	return func(r *Run, _ scope.Ref) bool {
		r.Status = s
		return true
	}
}

// bulk decides a bulk run operation of SPEC §5 ({op}: approve_runs, stop_runs, transfer_runs,
// list_model_versions, ...) on the runs the body names, in the team space or org of the path,
// and applies its effect to the allowed runs. The body is {"uuids": [...], "destination":
// "org/project"} (destination for transfer_runs only; at most maxBulkRuns uuids); runs the host
// does not have are left out.
// The answer is one line per run, as `teamgate bulk` prints them. An unknown operation, or
// transfer_runs without a destination, is a 400.
func (s *service) bulk(w http.ResponseWriter, r *http.Request, user string) {
	var body struct {
		UUIDs       []string `json:"uuids"`
		Destination string   `json:"destination"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if len(body.UUIDs) > maxBulkRuns {
		fail(w, teamgate.Invalid("uuids", strconv.Itoa(len(body.UUIDs))+" runs", "at most "+strconv.Itoa(maxBulkRuns)+" runs per request"))
		return
	}
	op := r.PathValue("op")
	var dest scope.Ref
	if body.Destination != "" {
		var err error
		if op != "transfer_runs" {
			err = teamgate.Invalid("destination", body.Destination, "only transfer_runs takes a destination")
		} else {
			dest, err = scope.ParseFullProject(body.Destination)
		}
		if err != nil {
			fail(w, err)
			return
		}
	}
	owner := r.PathValue("org")
	if team := r.PathValue("team"); team != "" {
		owner += "/" + team
	}
	o, err := scope.ParseOwner(owner)
	if err != nil {
		fail(w, err)
		return
	}
	// A subject the scope denies is refused as a whole (403, 404 for an unknown team), whatever
	// runs the body names; BulkRuns then decides each run.
	if !s.authorize(w, r, authz.BulkScope(user, o)) {
		return
	}
	decided := s.runs.byUUID(body.UUIDs)
	refs := make([]authz.RunRef, len(decided))
	for i, run := range decided {
		refs[i] = authz.RunRef{UUID: run.UUID, Project: run.Org + "/" + run.Project, CreatedBy: run.CreatedBy}
	}
	decisions, err := s.eng.BulkRuns(r.Context(), user, owner, op, refs, body.Destination)
	if err != nil {
		fail(w, err)
		return
	}
	out := make([]runLine, len(decisions))
	for i, d := range decisions {
		out[i].RunDecision = d
		if d.Err != nil {
			msg := d.Err.Error()
			out[i].Error = &msg
		}
		if out[i].Decision.Reasons == nil {
			out[i].Decision.Reasons = []authz.Reason{}
		}
		if effect := bulkEffects[op]; effect != nil && d.Err == nil && d.Decision.Allowed {
			if !s.runs.apply(decided[i], func(r *Run) bool { return effect(r, dest) }) {
				msg := "run " + d.UUID + " moved or deleted while it was decided: nothing done, send it again"
				out[i].Error = &msg
			}
		}
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
