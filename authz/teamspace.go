package authz

import (
	"context"
	"maps"
	"slices"
	"sort"
	"strconv"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/scope"
	"github.com/teamgate/teamgate/store"
)

// ownerFor parses an owner string; an empty one is the subject's default team (SPEC §3).
func ownerFor(r store.Reader, subject, owner string) (scope.Owner, error) {
	if owner != "" {
		return scope.ParseOwner(owner)
	}
	u, ok := r.User(subject)
	if !ok || u.DefaultTeam == "" {
		return scope.Owner{}, teamgate.Invalid("owner", owner, "empty owner and "+subject+" has no default team")
	}
	return scope.ParseOwner(u.DefaultTeam)
}

// Page selects one page of a listing. The zero Page is the first page with no limit.
type Page struct {
	After string // cursor: the Next of the previous page
	Limit int    // at most this many names; 0 = all
}

// ProjectPage is one page of project names in sorted order. Next is the cursor of the following
// page, "" on the last one.
type ProjectPage struct {
	Owner    string   `json:"owner"`
	Projects []string `json:"projects"`
	Next     string   `json:"next,omitempty"`
	Revision uint64   `json:"revision"`
}

// ListProjects returns the projects of owner (`org` or `org/team`; "" = the subject's default
// team) the subject can project.get, sorted by name and paginated.
//
// It is answered from the store's indexes, never by evaluating every project: the union of the
// subject's grant, team and (when its org role reaches viewer) open projects, or every project
// for owners and managers. That equals the default policy's project.get decisions (a test checks
// it against Authorize on random directories). When authors' modules or data are loaded, each
// candidate is also checked with Authorize, so an ext.deny hides projects; an ext.allow that opens
// projects beyond the default rules is not reflected in listings.
//
// Pagination: the cursor is the last name returned. A project that exists during the whole
// pagination appears exactly once; one created or deleted meanwhile may or may not appear.
// An unknown org or team yields an empty list; a malformed owner is an error.
func (e *Engine) ListProjects(ctx context.Context, subject, owner string, page Page) (ProjectPage, error) {
	if err := scope.CheckSlug("subject", subject); err != nil {
		return ProjectPage{}, err
	}
	if page.Limit < 0 {
		return ProjectPage{}, teamgate.Invalid("page limit", strconv.Itoa(page.Limit), "must be >= 0")
	}
	out, _, err := e.visible(ctx, subject, owner, page)
	if err != nil {
		return ProjectPage{}, err
	}
	out.Projects = after(out.Projects, page.After) // customized policies list everything first
	if page.Limit > 0 && len(out.Projects) > page.Limit {
		// A copy of the page, so the whole listing's backing array is not kept alive.
		out.Projects = slices.Clone(out.Projects[:page.Limit])
		out.Next = out.Projects[page.Limit-1]
	}
	return out, nil
}

// after returns the part of a sorted list past the cursor.
func after(sorted []string, cursor string) []string {
	if cursor == "" {
		return sorted
	}
	i := sort.SearchStrings(sorted, cursor)
	if i < len(sorted) && sorted[i] == cursor {
		i++
	}
	return sorted[i:]
}

// visible lists the projects of owner the subject can project.get, and how many projects the
// org has, from one snapshot. Under the default policy only the requested page (plus one, to
// tell whether another follows) is produced; a customized policy gets every candidate.
func (e *Engine) visible(ctx context.Context, subject, owner string, page Page) (ProjectPage, int, error) {
	var out ProjectPage
	var o scope.Owner
	var total int
	customized := e.policy.Load().Customized()
	from, limit := page.After, page.Limit+1
	if customized || page.Limit == 0 {
		from, limit = "", 0
	}
	err := e.dir.View(func(r store.Reader) error {
		var err error
		if o, err = ownerFor(r, subject, owner); err != nil {
			return err
		}
		out.Revision = r.Revision()
		out.Projects = visibleProjects(r, subject, o, from, limit)
		total = r.ProjectCount(o.Org)
		return nil
	})
	if err != nil {
		return ProjectPage{}, 0, err
	}
	out.Owner = o.String()
	if customized {
		kept := out.Projects[:0]
		for _, p := range out.Projects {
			d, err := e.Authorize(ctx, Request{Subject: subject, Action: "project.get", Resource: o.Org + "/" + p, MinRevision: out.Revision})
			if err == nil && d.Allowed {
				kept = append(kept, p)
			}
		}
		out.Projects = kept
	}
	return out, total, nil
}

// visibleProjects computes, from indexes, the sorted projects of o past the cursor that the
// subject can project.get under the default policy (SPEC §4, §5), at most limit of them (0: all).
// The result is a fresh slice.
func visibleProjects(r store.Reader, subject string, o scope.Owner, cursor string, limit int) []string {
	take := func(sorted []string) []string {
		sorted = after(sorted, cursor)
		if limit > 0 && len(sorted) > limit {
			sorted = sorted[:limit]
		}
		return slices.Clone(nonNil(sorted))
	}
	role, member := r.OrgRole(o.Org, subject)
	if !member {
		return []string{}
	}
	if o.IsTeam() {
		if _, ok := r.Team(o.Org, o.Team); !ok {
			return []string{}
		}
	}
	if role == "owner" || role == "manager" {
		if o.IsTeam() {
			return take(r.TeamProjects(o.Org, o.Team))
		}
		return take(r.Projects(o.Org))
	}
	// Restricted projects come from the subject's teams and grants (few); open ones, when the
	// org role reaches viewer, from the sorted open-project index, merged without a sort.
	set := map[string]struct{}{}
	for _, p := range r.GrantProjects(o.Org, subject) {
		set[p] = struct{}{}
	}
	for team := range r.TeamRoles(o.Org, subject).All {
		for _, p := range r.TeamProjects(o.Org, team) {
			set[p] = struct{}{}
		}
	}
	if o.IsTeam() {
		var out []string
		for _, p := range r.TeamProjects(o.Org, o.Team) {
			if _, ok := set[p]; ok {
				out = append(out, p)
			}
		}
		return take(out)
	}
	if !policyBaseAtLeastViewer(role) {
		return take(slices.Sorted(maps.Keys(set)))
	}
	open := after(r.OpenProjects(o.Org), cursor)
	extra := make([]string, 0, len(set))
	for p := range set {
		if pv, ok := r.Project(o.Org, p); ok && pv.Teams.Restricted {
			extra = append(extra, p)
		}
	}
	slices.Sort(extra)
	extra = after(extra, cursor)
	n := len(open) + len(extra)
	if limit > 0 {
		n = min(n, limit)
	}
	out := make([]string, 0, n)
	i, j := 0, 0
	for len(out) < n {
		if j == len(extra) || (i < len(open) && open[i] < extra[j]) {
			out = append(out, open[i])
			i++
		} else {
			out = append(out, extra[j])
			j++
		}
	}
	return out
}

// policyBaseAtLeastViewer reports whether an org role's base project role reaches viewer.
func policyBaseAtLeastViewer(orgRole string) bool {
	switch orgRole {
	case "owner", "manager", "admin", "member", "viewer":
		return true
	}
	return false
}

// Filter is the accessible-project set in a form a host can put in a query:
// `WHERE org = Org` when All, else `WHERE org = Org AND project IN (Projects)`.
type Filter struct {
	Org      string   `json:"org"`
	All      bool     `json:"all"`
	Projects []string `json:"projects"`
	Revision uint64   `json:"revision"`
}

// ProjectFilter returns the projects of owner the subject can project.get as a Filter. All is
// true when that is every project of the org (owner, or an `org` owner for org owners and
// managers).
func (e *Engine) ProjectFilter(ctx context.Context, subject, owner string) (Filter, error) {
	if err := scope.CheckSlug("subject", subject); err != nil {
		return Filter{}, err
	}
	page, total, err := e.visible(ctx, subject, owner, Page{})
	if err != nil {
		return Filter{}, err
	}
	o, _ := scope.ParseOwner(page.Owner)
	f := Filter{Org: o.Org, Projects: slices.Clone(page.Projects), Revision: page.Revision}
	if !o.IsTeam() && total > 0 && total == len(page.Projects) {
		f.All, f.Projects = true, []string{}
	}
	return f, nil
}

// RunRef is a run the host keeps in its own database.
type RunRef struct {
	UUID      string `json:"uuid"`
	Project   string `json:"project"` // project name in the owner's org, or a full reference
	CreatedBy string `json:"created_by,omitempty"`
}

// RunDecision is the decision on one run of a bulk operation.
type RunDecision struct {
	UUID     string   `json:"uuid"`
	Decision Decision `json:"decision"`
	Err      error    `json:"-"` // the run's own error (malformed project), nil when decided
}

// bulkOps maps each bulk run operation of SPEC §5 to the project action each run needs.
var bulkOps = map[string]string{
	"approve_runs": "runs.approve", "archive_runs": "runs.archive", "restore_runs": "runs.restore",
	"delete_runs": "runs.delete", "stop_runs": "runs.stop", "skip_runs": "runs.skip",
	"invalidate_runs": "runs.invalidate", "bookmark_runs": "runs.bookmark", "tag_runs": "runs.tag",
	"transfer_runs": "runs.transfer", "get_run": "runs.get", "list_runs": "runs.list",
	"list_versions": "versions.list", "list_runs_artifacts_lineage": "runs.lineage",
}

// BulkAction returns the project action each run of a bulk operation needs
// ("approve_runs" → "runs.approve"), and whether op is a bulk operation.
func BulkAction(op string) (string, bool) {
	a, ok := bulkOps[op]
	return a, ok
}

// BulkRuns decides a bulk run operation in a team space or org: the scope first (team.runs on
// `org/team`, org.runs on `org`; a denial there denies every run with its reasons), then one
// decision per run against its project (created_by passed as attributes.run.created_by,
// destination as attributes.destination). A run whose project lies outside the team space is
// denied with not_in_scope. An unknown operation or malformed owner is an error.
func (e *Engine) BulkRuns(ctx context.Context, subject, owner, op string, runs []RunRef, destination string) ([]RunDecision, error) {
	action, ok := bulkOps[op]
	if !ok {
		return nil, teamgate.Invalid("bulk operation", op, "unknown operation")
	}
	if op == "transfer_runs" && destination == "" {
		return nil, teamgate.Invalid("destination", destination, "transfer_runs needs a destination project")
	}
	var o scope.Owner
	if err := e.dir.View(func(r store.Reader) error {
		var err error
		o, err = ownerFor(r, subject, owner)
		return err
	}); err != nil {
		return nil, err
	}
	scopeAction, scopeRes := "org.runs", o.Org
	if o.IsTeam() {
		scopeAction, scopeRes = "team.runs", o.String()
	}
	sd, err := e.Authorize(ctx, Request{Subject: subject, Action: scopeAction, Resource: scopeRes})
	if err != nil {
		return nil, err
	}
	out := make([]RunDecision, len(runs))
	for i, run := range runs {
		out[i].UUID = run.UUID
		if !sd.Allowed {
			out[i].Decision = sd
			continue
		}
		ref, err := scope.ParseProject(run.Project, scope.Owner{Org: o.Org})
		if err != nil {
			out[i].Err = err
			out[i].Decision = Decision{Role: "none", Revision: sd.Revision, Reasons: []Reason{{Code: "error", Message: err.Error()}}}
			continue
		}
		if inScope, rev := e.inScope(o, ref); !inScope {
			out[i].Decision = Decision{Role: "none", Revision: rev, Reasons: []Reason{{Code: "not_in_scope",
				Message: "run " + run.UUID + ": project " + ref.Org + "/" + ref.Project + " is not in " + o.String()}}}
			continue
		}
		attrs := map[string]any{}
		if run.CreatedBy != "" {
			attrs["run"] = map[string]any{"created_by": run.CreatedBy}
		}
		if op == "transfer_runs" {
			attrs["destination"] = destination
		}
		d, err := e.Authorize(ctx, Request{Subject: subject, Action: action, Resource: ref.Org + "/" + ref.Project, Attributes: attrs})
		out[i].Decision, out[i].Err = d, err
		if err != nil {
			out[i].Decision = Decision{Role: "none", Reasons: []Reason{{Code: "error", Message: err.Error()}}}
		}
	}
	return out, nil
}

// inScope reports whether ref lies in the owner's org, and in its team space for a team owner.
// A project that does not exist is left to Authorize (not_found).
func (e *Engine) inScope(o scope.Owner, ref scope.Ref) (bool, uint64) {
	if ref.Org != o.Org {
		return false, 0
	}
	in, rev := true, uint64(0)
	_ = e.dir.View(func(r store.Reader) error {
		rev = r.Revision()
		if pv, ok := r.Project(ref.Org, ref.Project); ok && o.IsTeam() {
			in = slices.Contains(pv.Teams.Values, o.Team)
		}
		return nil
	})
	return in, rev
}

// NewProject is a project to create with CreateProject.
type NewProject struct {
	Name     string
	Settings policy.Settings
}

// Created is the outcome of CreateProject: the decision and, when allowed, the project's full
// name and the store revision that created it.
type Created struct {
	Decision Decision
	Project  string
	Revision uint64
}

// CreateProject creates a project in owner (SPEC §5): `org` needs projects.create; `org/team`
// needs team.projects.create, assigns the project to the team and connects it to the team's
// linked policy; "" uses the subject's default team. A denial writes nothing and is reported in
// Created.Decision; an existing project is an error matching teamgate.ErrConflict.
//
// The write is a store.CreateProject: the store checks that the name is free and reads the
// team's linked policy under its write lock, so of concurrent creators of one name exactly one
// succeeds and a link changed meanwhile is never missed.
func (e *Engine) CreateProject(ctx context.Context, subject, owner string, np NewProject) (Created, error) {
	if err := scope.CheckSlug("project", np.Name); err != nil {
		return Created{}, err
	}
	var o scope.Owner
	if err := e.dir.View(func(r store.Reader) error {
		var err error
		o, err = ownerFor(r, subject, owner)
		return err
	}); err != nil {
		return Created{}, err
	}
	action, res := "projects.create", o.Org
	if o.IsTeam() {
		action, res = "team.projects.create", o.String()
	}
	d, err := e.Authorize(ctx, Request{Subject: subject, Action: action, Resource: res})
	if err != nil || !d.Allowed {
		return Created{Decision: d}, err
	}
	p := store.Project{Org: o.Org, Name: np.Name, Settings: np.Settings, CreatedBy: subject}
	rev, err := e.dir.Apply(ctx, store.CreateProject{Project: p, Team: o.Team})
	if err != nil {
		return Created{Decision: d}, err
	}
	return Created{Decision: d, Project: o.Org + "/" + np.Name, Revision: rev}, nil
}
