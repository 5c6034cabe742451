package authz

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
	"github.com/teamgate/teamgate/store"
)

// Directory is what the engine needs from a store: consistent snapshots, revisions and writes.
type Directory interface {
	View(fn func(r store.Reader) error) error
	Revision() uint64
	WaitRevision(ctx context.Context, rev uint64) error
	Apply(ctx context.Context, changes ...store.Change) (uint64, error)
}

var _ Directory = (*store.Store)(nil)

// Option configures New.
type Option func(*config) error

type config struct {
	modules    []rego.Module
	data       []map[string]any
	logger     *slog.Logger
	cacheSize  int
	cacheSet   bool
	noCompiled bool
}

func errInvalidSize(n int) error {
	return teamgate.Invalid("cache size", fmt.Sprint(n), "must be >= 0")
}

// WithModules adds authors' Rego modules to the default policy. Default: none.
func WithModules(modules ...rego.Module) Option {
	return func(c *config) error {
		c.modules = append(c.modules, modules...)
		return nil
	}
}

// WithPolicyDir loads every .rego and .json file under dir (see rego.LoadDir). Default: none.
func WithPolicyDir(dir string) Option {
	return func(c *config) error {
		mods, data, err := rego.LoadDir(dir)
		if err != nil {
			return err
		}
		c.modules = append(c.modules, mods...)
		c.data = append(c.data, data...)
		return nil
	}
}

// WithData merges a data document over the default data.json. Default: none.
func WithData(doc map[string]any) Option {
	return func(c *config) error {
		c.data = append(c.data, doc)
		return nil
	}
}

// WithLogger receives evaluation errors. Default: discarded.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		c.logger = l
		return nil
	}
}

// Engine decides requests against a Directory with a Rego policy. It is safe for concurrent
// use; SetPolicy swaps the policy atomically without blocking readers.
type Engine struct {
	dir    Directory
	log    *slog.Logger
	policy atomic.Pointer[rego.Policy]

	settingsCache *settingsCache
	decisions     *decisionCache                // nil when turned off
	compiled      bool                          // the compiled path is on (WithCompiledPath)
	table         atomic.Pointer[decisionTable] // nil while the policy in force has no table
	disk          persistentCache               // the decision cache's Badger tier; nil without one
	stamps        stampSource                   // non-nil when disk is

	evalErrors atomic.Uint64
}

// New builds an engine over dir with the default policy plus the options' modules and data.
func New(ctx context.Context, dir Directory, opts ...Option) (*Engine, error) {
	if dir == nil {
		return nil, teamgate.Invalid("directory", "nil", "a store is required")
	}
	var c config
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	p, err := rego.New(ctx, c.modules, c.data...)
	if err != nil {
		return nil, err
	}
	if !c.cacheSet {
		c.cacheSize = DefaultDecisionCacheSize
	}
	e := &Engine{dir: dir, log: c.logger, settingsCache: newSettingsCache(dir), decisions: newDecisionCache(c.cacheSize), compiled: !c.noCompiled}
	if stamps, ok := dir.(stampSource); ok && e.decisions != nil {
		if disk := diskTier(dir); disk != nil {
			e.disk, e.stamps = disk, stamps
		}
	}
	e.setPolicy(p)
	return e, nil
}

// SetPolicy compiles the default policy plus modules and data and swaps it in. Decisions in
// flight finish with the old policy; on error the old policy stays.
func (e *Engine) SetPolicy(ctx context.Context, modules []rego.Module, data ...map[string]any) error {
	p, err := rego.New(ctx, modules, data...)
	if err != nil {
		return err
	}
	e.setPolicy(p)
	return nil
}

// setPolicy swaps the policy and its decision table: a table only for the default policy, whose
// rules read nothing but the role facts the table is keyed on. Listings ask the table whenever
// there is one; Authorize uses it only while the compiled path is on.
func (e *Engine) setPolicy(p *rego.Policy) {
	var t *decisionTable
	if !p.Customized() {
		t = &decisionTable{policy: p}
	}
	e.table.Store(t)
	e.policy.Store(p)
}

// Directory returns the directory the engine reads.
func (e *Engine) Directory() Directory { return e.dir }

// Policy returns the policy in force.
func (e *Engine) Policy() *rego.Policy { return e.policy.Load() }

// Stats are the engine's counters.
type Stats struct {
	EvalErrors    uint64 // evaluations that failed and denied with reason "error"
	CacheHits     uint64 // decisions served from the in-memory decision cache
	CacheDiskHits uint64 // decisions served from the decision cache's Badger tier
	CacheMisses   uint64 // cacheable decisions that had to be evaluated
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	s := Stats{EvalErrors: e.evalErrors.Load()}
	if e.decisions != nil {
		s.CacheHits, s.CacheDiskHits, s.CacheMisses = e.decisions.hits.Load(), e.decisions.diskHits.Load(), e.decisions.misses.Load()
	}
	return s
}

// Request is one authorization question.
type Request struct {
	Subject    string         `json:"subject"`
	Action     string         `json:"action"`
	Resource   string         `json:"resource"`
	Owner      string         `json:"owner,omitempty"` // context owner for one-part project references
	Attributes map[string]any `json:"attributes,omitempty"`
	// MinRevision makes the engine wait until its store has reached this revision; when ctx ends
	// first, Authorize returns ErrStale.
	MinRevision uint64 `json:"min_revision,omitempty"`
}

// Reason is a stable code and a message for people.
type Reason = rego.Reason

// Decision is the answer to a Request. The zero Decision denies.
type Decision struct {
	Allowed  bool     `json:"allowed"`
	Role     string   `json:"role"`
	Reasons  []Reason `json:"reasons"`
	Revision uint64   `json:"revision"`
}

// Has reports whether the decision carries a reason with this code.
func (d Decision) Has(code string) bool {
	return slices.ContainsFunc(d.Reasons, func(r Reason) bool { return r.Code == code })
}

// Authorize decides one request. Malformed input (unknown action, wrong kind of resource,
// malformed reference or attribute) is an error matching teamgate.ErrInvalid; a missing org,
// team or project is a deny with reason not_found; a failed evaluation is a deny with reason
// error.
//
// Decisions on requests without attributes are cached in memory (WithDecisionCache). A cached
// decision is served only while the policy and everything it depended on — the org, the
// subject's org and team memberships there, the team and the project with its grants, policy
// and effective teams — are unchanged, so after a write returns no decision made before it is
// served if the write could change it, and an unrelated write evicts nothing. A served
// decision's Revision is the store's current revision. Decision.Reasons may be shared with the
// cache: do not modify it.
func (e *Engine) Authorize(ctx context.Context, req Request) (Decision, error) {
	p := e.policy.Load()
	if e.decisions == nil || len(req.Attributes) > 0 || !p.Deterministic() {
		_, _, d, err := e.decide(ctx, req, nil, false)
		return d, err
	}
	if err := ctx.Err(); err != nil {
		return Decision{}, err
	}
	if req.MinRevision > 0 {
		if err := e.dir.WaitRevision(ctx, req.MinRevision); err != nil {
			return Decision{}, err
		}
	}
	key := cacheKey{subject: req.Subject, action: req.Action, resource: req.Resource, owner: req.Owner}
	if c, ok := e.decisions.lru.Get(key); ok && c.current(p) {
		e.decisions.hits.Add(1)
		d := c.dec
		d.Revision = e.dir.Revision()
		return d, nil
	}
	if c, ok := e.fromDisk(key, p); ok {
		e.decisions.diskHits.Add(1)
		e.decisions.lru.Add(key, c)
		d := c.dec
		d.Revision = e.dir.Revision()
		return d, nil
	}
	e.decisions.misses.Add(1)
	entry := &cached{}
	_, _, d, err := e.decide(ctx, req, entry, false)
	if err == nil && entry.policy != nil && !d.Has("error") {
		deps := entry.deps
		entry.deps = nil
		e.decisions.lru.Add(key, entry)
		e.toDisk(key, entry, deps)
	}
	return d, err
}

// decide validates req, reads its facts in one snapshot and evaluates the policy. With a non-nil
// entry it also captures, in the same snapshot, what the decision depends on and fills entry.
//
// With explain set it always evaluates the full policy on the request's own input (which it
// returns); otherwise the compiled path may answer.
func (e *Engine) decide(ctx context.Context, req Request, entry *cached, explain bool) (*query, ast.Value, Decision, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, Decision{}, err
	}
	p := e.policy.Load()
	q, err := e.prepare(p, req)
	if err != nil {
		return nil, nil, Decision{}, err
	}
	if req.MinRevision > 0 {
		if err := e.dir.WaitRevision(ctx, req.MinRevision); err != nil {
			return nil, nil, Decision{}, err
		}
	}
	table := e.table.Load()
	compiled := e.compiled && !explain && table != nil && table.policy == p && len(req.Attributes) == 0 && q.dest == nil
	var in ast.Value
	var abs abstract
	var rev uint64
	if err := e.dir.View(func(r store.Reader) error {
		rev = r.Revision()
		teamRoles := q.readFacts(r)
		if compiled {
			abs = abstractOf(q, teamRoles)
		} else {
			in = q.input(r, teamRoles)
		}
		if entry != nil {
			entry.deps = captureDeps(r, q, entry)
		}
		return nil
	}); err != nil {
		return nil, nil, Decision{}, err
	}
	var d Decision
	if compiled {
		d = e.fromTable(ctx, table, q, abs, rev)
	} else {
		d = e.eval(ctx, p, q, in, rev)
	}
	if entry != nil {
		entry.dec, entry.policy = d, p
	}
	return q, in, d, nil
}

// fromTable answers from the compiled path, computing the cell by full evaluation of a
// canonical input on first use.
func (e *Engine) fromTable(ctx context.Context, t *decisionTable, q *query, a abstract, rev uint64) Decision {
	v, ok := t.cells.Load(a)
	if !ok {
		d := e.eval(ctx, t.policy, q, canonicalInput(a, q.res.Kind), rev)
		if d.Has("error") {
			return d // not a property of the abstract: never stored
		}
		codes := make([]string, len(d.Reasons))
		for i, r := range d.Reasons {
			codes[i] = r.Code
		}
		v, _ = t.cells.LoadOrStore(a, verdict{allow: d.Allowed, role: d.Role, codes: codes})
	}
	vd := v.(verdict)
	d := Decision{Allowed: vd.allow, Role: vd.role, Revision: rev, Reasons: make([]Reason, len(vd.codes))}
	for i, c := range vd.codes {
		d.Reasons[i] = Reason{Code: c, Message: q.message(c, vd.role)}
	}
	return d
}

func (e *Engine) eval(ctx context.Context, p *rego.Policy, q *query, in ast.Value, rev uint64) Decision {
	res, err := p.Eval(ctx, in)
	if err != nil {
		e.evalErrors.Add(1)
		e.log.Warn("teamgate: evaluation failed; denying", "error", err)
		return Decision{Role: "none", Revision: rev, Reasons: []Reason{{Code: "error", Message: "evaluation failed (denied): " + err.Error()}}}
	}
	if res.Reasons == nil {
		res.Reasons = []Reason{}
	}
	for i := range res.Reasons {
		if res.Reasons[i].Message == "" {
			res.Reasons[i].Message = q.message(res.Reasons[i].Code, res.Role)
		}
	}
	return Decision{Allowed: res.Allow, Role: res.Role, Reasons: res.Reasons, Revision: rev}
}

// BatchResult is one answer of AuthorizeBatch.
type BatchResult struct {
	Decision Decision
	Err      error // the request's own error (invalid input, stale); nil when decided
}

// AuthorizeBatch decides many requests, one result each, in order. An error in one request does
// not stop the others; the returned error is only for the context ending.
func (e *Engine) AuthorizeBatch(ctx context.Context, reqs []Request) ([]BatchResult, error) {
	out := make([]BatchResult, len(reqs))
	for i, r := range reqs {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		out[i].Decision, out[i].Err = e.Authorize(ctx, r)
	}
	return out, nil
}

// query is a validated request, ready to read its facts.
type query struct {
	req   Request
	spec  rego.ActionSpec
	res   scope.Resource
	dest  *scope.Ref   // runs.transfer destination, when given
	attrs ast.Value    // nil when the request has no attributes
	facts projectFacts // what readFacts read, for messages
}

// prepare validates a request without touching the store.
func (e *Engine) prepare(p *rego.Policy, req Request) (*query, error) {
	if err := scope.CheckSlug("subject", req.Subject); err != nil {
		return nil, err
	}
	spec, ok := p.Action(req.Action)
	if !ok {
		return nil, teamgate.Invalid("action", req.Action, "not in the action catalog")
	}
	var ctxOwner scope.Owner
	if req.Owner != "" {
		o, err := scope.ParseOwner(req.Owner)
		if err != nil {
			return nil, err
		}
		ctxOwner = o
	}
	res, err := scope.ParseResource(scope.Kind(spec.Kind), req.Resource, ctxOwner)
	if err != nil {
		return nil, fmt.Errorf("%s takes a%s resource: %w", req.Action, article(spec.Kind), err)
	}
	q := &query{req: req, spec: spec, res: res}
	if spec.ManagesMembers {
		for _, k := range []string{"target_role", "target_current_role"} {
			v, present := req.Attributes[k]
			if !present {
				continue
			}
			s, isStr := v.(string)
			if !isStr || !store.IsOrgRole(s) {
				return nil, teamgate.Invalid("attribute "+k, fmt.Sprint(v), "not an org role")
			}
		}
	}
	if spec.DestinationRole != "" {
		if v, present := req.Attributes["destination"]; present {
			s, isStr := v.(string)
			if !isStr {
				return nil, teamgate.Invalid("attribute destination", fmt.Sprint(v), "not a project reference string")
			}
			ref, err := scope.ParseFullProject(s)
			if err != nil {
				return nil, err
			}
			q.dest = &ref
		}
	}
	if len(req.Attributes) > 0 {
		v, err := ast.InterfaceToValue(req.Attributes)
		if err != nil {
			return nil, teamgate.Invalid("attributes", fmt.Sprint(req.Attributes), err.Error())
		}
		q.attrs = v
	}
	return q, nil
}

func article(kind string) string {
	if kind == "org" {
		return "n org"
	}
	return " " + kind
}

// projectFacts are the facts of one project for the subject, as the policy's input takes them.
type projectFacts struct {
	exists     bool
	missing    string
	org, team  string
	project    string
	orgRole    string
	grant      string
	teamRoles  map[string]string
	teams      []string
	restricted bool
}

// resolveProject resolves a reference and reads the subject's facts on it (SPEC §3, §4).
func resolveProject(r store.Reader, subject string, ref scope.Ref) projectFacts {
	f := projectFacts{org: ref.Org, team: ref.Team, project: ref.Project, orgRole: "none"}
	if _, ok := r.Org(ref.Org); !ok {
		f.missing = "org " + ref.Org + " does not exist"
		return f
	}
	if ref.Team != "" {
		if _, ok := r.Team(ref.Org, ref.Team); !ok {
			f.missing = "team " + ref.Org + "/" + ref.Team + " does not exist"
			return f
		}
	}
	pv, ok := r.Project(ref.Org, ref.Project)
	if !ok {
		f.missing = "project " + ref.Org + "/" + ref.Project + " does not exist"
		return f
	}
	if ref.Team != "" && !slices.Contains(pv.Teams.Values, ref.Team) {
		f.missing = "project " + ref.Project + " is not in team space " + ref.Org + "/" + ref.Team
		return f
	}
	f.exists = true
	if role, ok := r.OrgRole(ref.Org, subject); ok {
		f.orgRole = role
	}
	if g, ok := pv.Project.Grants[subject]; ok {
		f.grant = g.Role
	}
	f.teamRoles = r.TeamRoles(ref.Org, subject)
	f.teams = pv.Teams.Values
	f.restricted = pv.Teams.Restricted
	return f
}

func (f projectFacts) value() ast.Object {
	return ast.NewObject(
		ast.Item(ast.StringTerm("exists"), ast.BooleanTerm(f.exists)),
		ast.Item(ast.StringTerm("missing"), ast.StringTerm(f.missing)),
		ast.Item(ast.StringTerm("kind"), ast.StringTerm("project")),
		ast.Item(ast.StringTerm("org"), ast.StringTerm(f.org)),
		ast.Item(ast.StringTerm("team"), ast.StringTerm(f.team)),
		ast.Item(ast.StringTerm("project"), ast.StringTerm(f.project)),
		ast.Item(ast.StringTerm("teams"), stringsTerm(f.teams)),
		ast.Item(ast.StringTerm("restricted"), ast.BooleanTerm(f.restricted)),
	)
}

func stringsTerm(v []string) *ast.Term {
	terms := make([]*ast.Term, len(v))
	for i, s := range v {
		terms[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(terms...)
}

func rolesTerm(m map[string]string) *ast.Term {
	items := make([][2]*ast.Term, 0, len(m))
	for k, v := range m {
		items = append(items, ast.Item(ast.StringTerm(k), ast.StringTerm(v)))
	}
	return ast.ObjectTerm(items...)
}

func subjectTerm(id, orgRole, grant string, teamRoles map[string]string) *ast.Term {
	return ast.ObjectTerm(
		ast.Item(ast.StringTerm("id"), ast.StringTerm(id)),
		ast.Item(ast.StringTerm("org_role"), ast.StringTerm(orgRole)),
		ast.Item(ast.StringTerm("grant"), ast.StringTerm(grant)),
		ast.Item(ast.StringTerm("team_roles"), rolesTerm(teamRoles)),
	)
}

// readFacts resolves the resource and reads the subject's facts into q.facts. It returns the
// subject's team roles in the org: the store's map, valid only inside the snapshot.
func (q *query) readFacts(r store.Reader) map[string]string {
	subject := q.req.Subject
	if q.res.Kind == scope.KindProject {
		f := resolveProject(r, subject, q.res.Ref)
		roles := f.teamRoles
		f.teamRoles = nil // the store's map: not to be read once the snapshot is released
		q.facts = f
		return roles
	}
	o := q.res.Owner
	f := projectFacts{exists: true, org: o.Org, team: o.Team, orgRole: "none"}
	if _, ok := r.Org(o.Org); !ok {
		f.exists, f.missing = false, "org "+o.Org+" does not exist"
	} else if o.Team != "" {
		if _, ok := r.Team(o.Org, o.Team); !ok {
			f.exists, f.missing = false, "team "+o.Org+"/"+o.Team+" does not exist"
		}
	}
	if role, ok := r.OrgRole(o.Org, subject); ok {
		f.orgRole = role
	}
	q.facts = f
	return r.TeamRoles(o.Org, subject)
}

// input builds the policy input (rego/README.md) from the facts readFacts read, inside the same
// snapshot.
func (q *query) input(r store.Reader, teamRoles map[string]string) ast.Value {
	f := q.facts
	subj := subjectTerm(q.req.Subject, f.orgRole, f.grant, teamRoles)
	var resource, dest *ast.Term
	if q.res.Kind == scope.KindProject {
		resource = ast.NewTerm(f.value())
		if q.dest != nil {
			d := resolveProject(r, q.req.Subject, *q.dest)
			obj := d.value()
			obj.Insert(ast.StringTerm("org_role"), ast.StringTerm(d.orgRole))
			obj.Insert(ast.StringTerm("grant"), ast.StringTerm(d.grant))
			obj.Insert(ast.StringTerm("team_roles"), rolesTerm(d.teamRoles))
			dest = ast.NewTerm(obj)
		}
	} else {
		resource = ast.ObjectTerm(
			ast.Item(ast.StringTerm("kind"), ast.StringTerm(string(q.res.Kind))),
			ast.Item(ast.StringTerm("org"), ast.StringTerm(f.org)),
			ast.Item(ast.StringTerm("team"), ast.StringTerm(f.team)),
			ast.Item(ast.StringTerm("exists"), ast.BooleanTerm(f.exists)),
			ast.Item(ast.StringTerm("missing"), ast.StringTerm(f.missing)),
		)
	}
	items := [][2]*ast.Term{
		ast.Item(ast.StringTerm("subject"), subj),
		ast.Item(ast.StringTerm("action"), ast.StringTerm(q.req.Action)),
		ast.Item(ast.StringTerm("resource"), resource),
		ast.Item(ast.StringTerm("attributes"), ast.NewTerm(q.attrs)),
	}
	if q.attrs == nil {
		items[3] = ast.Item(ast.StringTerm("attributes"), ast.ObjectTerm())
	}
	if dest != nil {
		items = append(items, ast.Item(ast.StringTerm("destination"), dest))
	}
	return ast.NewObject(items...)
}
