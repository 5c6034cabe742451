package authz

import (
	"context"
	"slices"
	"sort"
	"strconv"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/rego"
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
// team) the subject can project.get, sorted by name and paginated. For a team owner the
// decisions are those on the team-space reference `org/team/project`.
//
// A listing is the policy's own answer, asked in one of two ways:
//
//   - While the policy has a decision table (the default policy; see the package doc), the
//     listing asks the table and never re-derives visibility. It is answered from the store's
//     indexes: the projects the subject holds a grant on or reaches through one of its teams are
//     decided one by one from their role facts; every other project of the org has, for this
//     subject, one of two sets of facts — open with no grant, or restricted with no grant and no
//     team role — so each of those two classes is decided once and, when allowed, merged in from
//     the sorted project indexes. A team space is decided project by project from its index.
//   - When authors' modules read more than the table's key there is no table, and a module may
//     open or close any project (an ext.allow on input.resource.project, say). Then every project of the org (or
//     team space) past the cursor is decided with Authorize until the page is full: a page costs
//     up to one decision per project of the org, and ProjectFilter (or a page with no limit)
//     exactly one per project. Decisions without attributes are cached, so a repeated listing
//     costs about one cache hit per project while nothing it read changes.
//
// Either way the listing equals the project.get decisions (property tests compare them on random
// directories, with and without random ext modules).
//
// Pagination: the cursor is the last name returned. A project that exists during the whole
// pagination appears exactly once; one created or deleted meanwhile may or may not appear.
// An unknown org or team yields an empty list; a malformed owner is an error.
func (e *Engine) ListProjects(ctx context.Context, subject, owner string, page Page) (out ProjectPage, err error) {
	ctx, sp := e.startSpan(ctx, "teamgate.ListProjects", "teamgate.owner", owner)
	defer func() { sp.endPage(out.Revision, len(out.Projects), err) }()
	if err := scope.CheckSlug("subject", subject); err != nil {
		return ProjectPage{}, err
	}
	if page.Limit < 0 {
		return ProjectPage{}, teamgate.Invalid("page limit", strconv.Itoa(page.Limit), "must be >= 0")
	}
	out, _, err = e.visible(ctx, subject, owner, page)
	if err != nil {
		return ProjectPage{}, err
	}
	if page.Limit > 0 && len(out.Projects) > page.Limit {
		// A copy of the page, so the whole listing's backing array is not kept alive.
		out.Projects = slices.Clone(out.Projects[:page.Limit])
		out.Next = out.Projects[page.Limit-1]
	}
	return out, nil
}

// after returns the part of a sorted list of distinct names past the cursor.
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

// visible lists the projects of owner past the page's cursor that the subject can project.get,
// at most one more than the page's limit (to tell whether another page follows; all of them
// with no limit), and how many projects the org has.
func (e *Engine) visible(ctx context.Context, subject, owner string, page Page) (ProjectPage, int, error) {
	limit := 0
	if page.Limit > 0 {
		limit = page.Limit + 1
	}
	p := e.policy.Load()
	if p.Table() != nil {
		return e.visibleByTable(ctx, p, subject, owner, page.After, limit)
	}
	return e.visibleByEvaluation(ctx, subject, owner, page.After, limit)
}

// projectGetVerdict is the one place listings ask the decision table: whether a subject with
// org role code orgRole (rego.OrgRoleCode; 0 for non-members), grant (the zero Grant for none)
// and team roles teamRoles in the org may project.get (spec: p's entry for it; p has a table)
// a project whose effective teams are teams. An evaluation failure denies, counted and logged
// like any other.
func (e *Engine) projectGetVerdict(ctx context.Context, p *rego.Policy, spec rego.Spec, orgRole uint8, grant store.Grant, teams []string, restricted bool, teamRoles store.UserTeams) bool {
	var v rego.VerdictView
	g, err := grantCode(grant.Role)
	if err == nil {
		c := rego.Codes{Exists: true, OrgRole: orgRole, Grant: g, BreakGlass: grant.BreakGlass != nil,
			TeamRoles: uint8(teamRoles.In(teams)), Restricted: restricted}
		v, err = p.Table().VerdictOfCodes(ctx, spec, &c, e.budgetOf(p))
	}
	if err != nil {
		if ctx.Err() == nil { // a listing cut short by its context is an error, not a failure
			e.failed(err, 0)
		}
		return false
	}
	return v.Allow()
}

// grantCode is a grant role's code (rego.RoleCode); an error matching teamgate.ErrInvalid for a
// role outside the store's vocabulary.
func grantCode(role string) (uint8, error) {
	c, ok := rego.RoleCode(role)
	if !ok {
		return 0, teamgate.Invalid("grant role", role, "not a role of the store's vocabulary")
	}
	return c, nil
}

// visibleByTable answers a listing from the store's indexes and the decision table, in one
// snapshot (ListProjects documents how).
func (e *Engine) visibleByTable(ctx context.Context, p *rego.Policy, subject, owner, cursor string, limit int) (ProjectPage, int, error) {
	var out ProjectPage
	var o scope.Owner
	var total int
	spec, _ := p.Spec("project.get") // none: the zero Spec, which the table refuses (every project denied)
	err := e.dir.View(func(r store.Reader) error {
		var err error
		if o, err = ownerFor(r, subject, owner); err != nil {
			return err
		}
		out.Revision = r.Revision()
		total = r.ProjectCount(o.Org)
		orgRole, _ := r.OrgRole(o.Org, subject) // "" for a non-member
		orgCode, ok := rego.OrgRoleCode(orgRole)
		if !ok {
			return teamgate.Invalid("org role", orgRole, "not a role of the store's vocabulary")
		}
		teamRoles := r.TeamRoles(o.Org, subject)
		allowed := func(pv store.ProjectView) bool {
			return e.projectGetVerdict(ctx, p, spec, orgCode, pv.Project.Grants[subject], pv.Teams.Values, pv.Teams.Restricted, teamRoles)
		}
		if o.IsTeam() {
			out.Projects = filterSorted(after(spaceProjects(r, o), cursor), limit, func(p string) bool {
				pv, ok := r.Project(o.Org, p)
				return ok && allowed(pv)
			})
			return nil
		}
		// Every project without facts of its own for the subject (no grant, no team role) is in
		// one of two classes, decided once each; the class members come from the sorted indexes.
		openOK := e.projectGetVerdict(ctx, p, spec, orgCode, store.Grant{}, nil, false, store.UserTeams{})
		restrictedOK := e.projectGetVerdict(ctx, p, spec, orgCode, store.Grant{}, nil, true, store.UserTeams{})
		var class, skip []string // the allowed classes' members: class minus skip
		switch {
		case openOK && restrictedOK:
			class = r.Projects(o.Org)
		case openOK:
			class = r.OpenProjects(o.Org)
		case restrictedOK:
			class, skip = r.Projects(o.Org), r.OpenProjects(o.Org)
		}
		// The candidates, projects where the subject has facts of its own (a grant, a team role),
		// are each decided from them (those past the cursor). They only need listing when allowed
		// outside class (extra), or leaving out when denied in it (denied).
		cands := slices.Clone(r.GrantProjects(o.Org, subject))
		for team := range teamRoles.All {
			cands = append(cands, r.TeamProjects(o.Org, team)...)
		}
		slices.Sort(cands)
		var extra, denied []string                               // sorted
		for _, p := range after(slices.Compact(cands), cursor) { // after needs distinct names
			pv, ok := r.Project(o.Org, p)
			if !ok {
				continue
			}
			inClass := openOK && !pv.Teams.Restricted || restrictedOK && pv.Teams.Restricted
			switch ok := allowed(pv); {
			case ok && !inClass:
				extra = append(extra, p)
			case !ok && inClass:
				denied = append(denied, p)
			}
		}
		out.Projects = mergeListing(after(class, cursor), after(skip, cursor), denied, extra, limit)
		return nil
	})
	if err == nil {
		err = ctx.Err() // a table cell cut short by the context denied: the listing is incomplete
	}
	if err != nil {
		return ProjectPage{}, 0, err
	}
	out.Owner = o.String()
	return out, total, nil
}

// spaceProjects is the sorted projects a listing of o looks through: the org's, or in a team
// space the team's (none when the team does not exist).
func spaceProjects(r store.Reader, o scope.Owner) []string {
	if !o.IsTeam() {
		return r.Projects(o.Org)
	}
	if _, ok := r.Team(o.Org, o.Team); !ok {
		return nil
	}
	return r.TeamProjects(o.Org, o.Team)
}

// filterSorted returns, in a fresh slice, the names of sorted that keep accepts, at most limit
// (0: all).
func filterSorted(sorted []string, limit int, keep func(string) bool) []string {
	out := []string{}
	for _, p := range sorted {
		if limit > 0 && len(out) == limit {
			break
		}
		if keep(p) {
			out = append(out, p)
		}
	}
	return out
}

// mergeListing merges sorted name lists into a fresh sorted slice of at most limit names (0:
// all): class without the names in skip or denied, and extra, which class does not hold. The
// runs of class between two names of denied or extra are copied whole: a listing of the org
// costs a binary search per candidate, not a comparison per project.
func mergeListing(class, skip, denied, extra []string, limit int) []string {
	if len(skip) > 0 {
		class = without(class, skip)
	}
	n := len(class) + len(extra)
	if limit > 0 {
		n = min(n, limit)
	}
	out := make([]string, 0, n)
	full := func() bool { return limit > 0 && len(out) >= limit }
	add := func(run []string) {
		if limit > 0 {
			run = run[:min(len(run), limit-len(out))]
		}
		out = append(out, run...)
	}
	i, d, x := 0, 0, 0 // heads of class, denied and extra
	for !full() && (d < len(denied) || x < len(extra)) {
		if x == len(extra) || (d < len(denied) && denied[d] < extra[x]) {
			j := i + sort.SearchStrings(class[i:], denied[d])
			add(class[i:j])
			i = j
			if i < len(class) && class[i] == denied[d] {
				i++
			}
			d++
			continue
		}
		j := i + sort.SearchStrings(class[i:], extra[x])
		add(class[i:j])
		add(extra[x : x+1])
		i = j
		x++
	}
	add(class[i:])
	return out
}

// without returns the names of sorted that are not in drop (sorted), in a fresh slice.
func without(sorted, drop []string) []string {
	out := make([]string, 0, len(sorted))
	d := 0
	for _, p := range sorted {
		for d < len(drop) && drop[d] < p {
			d++
		}
		if d == len(drop) || drop[d] != p {
			out = append(out, p)
		}
	}
	return out
}

// visibleByEvaluation lists by deciding project.get with Authorize for every project of the org
// (or team space) past the cursor until limit are allowed: the listing under authors' modules,
// which may open or close any project.
func (e *Engine) visibleByEvaluation(ctx context.Context, subject, owner, cursor string, limit int) (ProjectPage, int, error) {
	var out ProjectPage
	var o scope.Owner
	var total int
	var names []string
	err := e.dir.View(func(r store.Reader) error {
		var err error
		if o, err = ownerFor(r, subject, owner); err != nil {
			return err
		}
		out.Revision = r.Revision()
		total = r.ProjectCount(o.Org)
		names = slices.Clone(after(spaceProjects(r, o), cursor)) // the indexes are valid only in the snapshot
		return nil
	})
	if err != nil {
		return ProjectPage{}, 0, err
	}
	prefix := o.String() + "/"
	out.Owner = o.String()
	out.Projects = []string{}
	for _, p := range names {
		if limit > 0 && len(out.Projects) == limit {
			break
		}
		// A listing is not logged (WithDecisionLog).
		d, derr := e.Authorize(ctx, Request{Subject: subject, Action: "project.get", Resource: prefix + p, MinRevision: out.Revision, unlogged: true})
		if err := ctx.Err(); err != nil {
			return ProjectPage{}, 0, err
		}
		if derr == nil && d.Allowed { // any other error denies, like a failed evaluation
			out.Projects = append(out.Projects, p)
		}
	}
	return out, total, nil
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
// true when owner is an org and that is every one of its projects (an org owner or manager, under
// the default data); Projects is then empty.
func (e *Engine) ProjectFilter(ctx context.Context, subject, owner string) (f Filter, err error) {
	ctx, sp := e.startSpan(ctx, "teamgate.ProjectFilter", "teamgate.owner", owner)
	defer func() { sp.endPage(f.Revision, len(f.Projects), err) }()
	if err := scope.CheckSlug("subject", subject); err != nil {
		return Filter{}, err
	}
	page, total, err := e.visible(ctx, subject, owner, Page{})
	if err != nil {
		return Filter{}, err
	}
	o, _ := scope.ParseOwner(page.Owner)
	f = Filter{Org: o.Org, Projects: slices.Clone(page.Projects), Revision: page.Revision}
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

// bulkOp is what each run of a bulk operation needs: a project action and, for the version
// listings, a version kind the project's effective excluded_features must not hold.
type bulkOp struct {
	action  string
	feature string // "" when no feature is checked
}

// bulkOps are the bulk operations of SPEC §5 and the seed's team-space version operations.
var bulkOps = map[string]bulkOp{
	"approve_runs": {action: "runs.approve"}, "archive_runs": {action: "runs.archive"},
	"restore_runs": {action: "runs.restore"}, "delete_runs": {action: "runs.delete"},
	"stop_runs": {action: "runs.stop"}, "skip_runs": {action: "runs.skip"},
	"invalidate_runs": {action: "runs.invalidate"}, "bookmark_runs": {action: "runs.bookmark"},
	"tag_runs": {action: "runs.tag"}, "transfer_runs": {action: "runs.transfer"},
	"get_run": {action: "runs.get"}, "list_runs": {action: "runs.list"},
	"list_versions": {action: "versions.list"}, "list_runs_artifacts_lineage": {action: "runs.lineage"},
	"list_component_versions": {action: "versions.list", feature: "component"},
	"list_model_versions":     {action: "versions.list", feature: "model"},
	"list_artifact_versions":  {action: "versions.list", feature: "artifact"},
}

// BulkAction returns the project action each run of a bulk operation needs
// ("approve_runs" → "runs.approve", "list_model_versions" → "versions.list"), and whether op is a
// bulk operation.
func BulkAction(op string) (string, bool) {
	b, ok := bulkOps[op]
	return b.action, ok
}

// BulkScope is the scope check BulkRuns makes first for subject in the team space or org o:
// team.runs on `org/team`, org.runs on `org`. A host that answers a denied scope as a whole (an
// HTTP 403 rather than one denied line per run) decides it with Authorize before BulkRuns.
func BulkScope(subject string, o scope.Owner) Request {
	if o.IsTeam() {
		return Request{Subject: subject, Action: "team.runs", Resource: o.String()}
	}
	return Request{Subject: subject, Action: "org.runs", Resource: o.Org}
}

// BulkRuns decides a bulk run operation in a team space or org: the scope first (BulkScope:
// team.runs on `org/team`, org.runs on `org`; a denial there denies every run with its reasons), then one
// decision per run against its project (created_by passed as attributes.run.created_by,
// destination as attributes.destination). A run whose project lies outside the team space is
// denied with not_in_scope. The version listings (list_component_versions, list_model_versions,
// list_artifact_versions) need versions.list and a version kind the project's effective
// excluded_features does not hold: an excluded kind denies that run with reason
// feature_excluded. An unknown operation or malformed owner is an error.
func (e *Engine) BulkRuns(ctx context.Context, subject, owner, op string, runs []RunRef, destination string) (out []RunDecision, err error) {
	ctx, sp := e.startSpan(ctx, "teamgate.BulkRuns", "teamgate.owner", owner, "teamgate.operation", op)
	defer func() { sp.endBulk(out, err) }()
	bop, ok := bulkOps[op]
	if !ok {
		return nil, teamgate.Invalid("bulk operation", op, "unknown operation")
	}
	action := bop.action
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
	sd, err := e.Authorize(ctx, BulkScope(subject, o))
	if err != nil {
		return nil, err
	}
	out = make([]RunDecision, len(runs))
	for i, run := range runs {
		out[i].UUID = run.UUID
		if !sd.Allowed {
			out[i].Decision = sd
			continue
		}
		ref, err := scope.ParseProject(run.Project, scope.Owner{Org: o.Org})
		if err != nil {
			out[i].Err = err
			out[i].Decision = Decision{Role: "none", Revision: sd.Revision, Reasons: []Reason{{Code: rego.CodeError, Message: err.Error()}}}
			continue
		}
		if inScope, rev := e.inScope(o, ref); !inScope {
			out[i].Decision = Decision{Role: "none", Revision: rev, Reasons: []Reason{{Code: rego.CodeNotInScope,
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
		// The run's own reference, team space included: `org/team/project` outside that team
		// space is not_found, as Authorize would say.
		req := Request{Subject: subject, Action: action, Resource: ref.String(), Attributes: attrs}
		var d Decision
		if bop.feature == "" {
			d, err = e.Authorize(ctx, req)
		} else {
			// The run's decision is the permission and then the feature check: the metrics, the
			// span and the decision log get what the host is told (a feature_excluded deny).
			d, err = e.authorizeThen(ctx, &req, func(d Decision, err error) (Decision, error) {
				if err == nil && d.Allowed {
					return e.featureAllowed(ctx, d, ref, op, bop.feature)
				}
				return d, err
			})
		}
		out[i].Decision, out[i].Err = d, err
		if err != nil {
			out[i].Decision = Decision{Role: "none", Reasons: []Reason{{Code: rego.CodeError, Message: err.Error()}}}
		}
	}
	return out, nil
}

// featureAllowed turns an allowed decision into a feature_excluded denial when the project's
// effective excluded_features holds feature. The check is policy.Admit's, the one AdmitVersion
// runs, with the permission already decided.
func (e *Engine) featureAllowed(ctx context.Context, d Decision, ref scope.Ref, op, feature string) (Decision, error) {
	project := ref.Org + "/" + ref.Project
	set, err := e.EffectiveSettings(ctx, project, "")
	if err != nil {
		return Decision{}, err
	}
	adm := policy.Admit(ctx, policy.AdmitInput{Permitted: true, Settings: set.Effective, Feature: feature, VersionOnly: true})
	if adm.Allowed {
		return d, nil
	}
	msg := op + ": " + adm.Violations[0].Message + " on project " + project
	return Decision{Role: d.Role, Revision: d.Revision, Reasons: []Reason{{Code: rego.CodeFeatureExcluded, Message: msg}}}, nil
}

// inScope reports whether ref lies in the owner's org, and in its team space for a team owner.
// A project that does not exist is left to Authorize (not_found).
func (e *Engine) inScope(o scope.Owner, ref scope.Ref) (bool, uint64) {
	in, rev := ref.Org == o.Org, uint64(0)
	_ = e.dir.View(func(r store.Reader) error {
		rev = r.Revision() // another org's run too: the host is told the revision it was denied at
		if pv, ok := r.Project(ref.Org, ref.Project); in && ok && o.IsTeam() {
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
	Labels   map[string]string // the project's labels (store.ValidateLabels), input.resource.labels
	// MinRevision, as Request.MinRevision: CreateProject first waits until its store has reached
	// this revision (e.g. a membership written through another node of a cluster), then reads
	// the owner and decides.
	MinRevision uint64
}

// Created is the outcome of CreateProject: the decision and, when allowed, the project's full
// name and the store revision that created it.
type Created struct {
	Decision Decision `json:"decision"`
	Project  string   `json:"project"`  // "" when denied
	Revision uint64   `json:"revision"` // 0 when denied
}

// CreateProject creates a project in owner (SPEC §5): `org` needs projects.create; `org/team`
// needs team.projects.create, assigns the project to the team and connects it to the team's
// linked policy; "" uses the subject's default team. A denial writes nothing and is reported in
// Created.Decision; an existing project is an error matching teamgate.ErrConflict.
//
// The write is a store.CreateProject: the store checks that the name is free and reads the
// team's linked policy under its write lock, so of concurrent creators of one name exactly one
// succeeds and a link changed meanwhile is never missed.
func (e *Engine) CreateProject(ctx context.Context, subject, owner string, np NewProject) (c Created, err error) {
	ctx, sp := e.startSpan(ctx, "teamgate.CreateProject", "teamgate.owner", owner, "teamgate.project", np.Name)
	defer func() { sp.endWrite(c.Decision.Allowed, c.Revision, err) }()
	if err := scope.CheckSlug("project", np.Name); err != nil {
		return Created{}, err
	}
	if np.MinRevision > 0 {
		if err := e.dir.WaitRevision(ctx, np.MinRevision); err != nil {
			return Created{}, err
		}
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
	p := store.Project{Org: o.Org, Name: np.Name, Settings: np.Settings, CreatedBy: subject, Labels: np.Labels}
	rev, err := e.dir.Apply(ctx, store.CreateProject{Project: p, Team: o.Team})
	if err != nil {
		return Created{Decision: d}, err
	}
	return Created{Decision: d, Project: o.Org + "/" + np.Name, Revision: rev}, nil
}
