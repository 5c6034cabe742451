package authz

import (
	"context"
	"iter"
	"maps"
	"slices"
	"strconv"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
	"github.com/teamgate/teamgate/store"
)

// Access is a subject that a request is allowed to, and why: its Decision's role and reasons.
type Access struct {
	Subject string   `json:"subject"`
	Role    string   `json:"role"`    // the subject's effective role on the resource (Decision.Role)
	Reasons []Reason `json:"reasons"` // the decision's reasons (Decision.Reasons; do not modify)
	// Teams are, when a reason is team_role, the resource's teams that give the subject Role: a
	// project's effective teams in which it holds that role, or the team of a team resource when
	// it is a member. Empty otherwise (an org owner's team_role on a team it is not in).
	Teams []string `json:"teams"`
}

// SubjectPage is one page of the subjects allowed a request, sorted by subject id. Next is the
// cursor of the following page, "" on the last one.
type SubjectPage struct {
	Action   string   `json:"action"`
	Resource string   `json:"resource"`
	Subjects []Access `json:"subjects"`
	Next     string   `json:"next,omitempty"`
	// Unbounded is true when the policy allows subjects that are not members of the resource's
	// org: an ext.allow (an author's module or data) may name any subject id. The page then lists
	// the allowed subjects among every subject the directory knows (the members of every org
	// and every user record); a subject id the directory has never stored may be allowed too and
	// cannot be listed.
	Unbounded bool   `json:"unbounded"`
	Revision  uint64 `json:"revision"`
}

// listingSubject stands in for the subject while a listing's request is validated and its
// resource resolved; every candidate then replaces it.
const listingSubject = "_"

// ListSubjects returns the subjects allowed action on resource (a request without attributes),
// each with its role and reasons, sorted by subject id and paginated: "who can, and why". The
// listing equals Authorize for every subject (property tests compare them on random
// directories, with and without authors' modules). A resource that does not exist yields an
// empty list (not_found denies everyone); a malformed request is an error matching
// teamgate.ErrInvalid, as Authorize would return. A one-part project reference is an error: a
// listing has no context owner.
//
// The candidates come from the store's indexes, never from the whole directory: under the
// default rules only a member of the resource's org can be allowed (a non-member is
// not_org_member, and team members and grantees are org members), so the candidates are the
// org's members — members of the project's teams, grantees and outsiders among them.
//
//   - While the policy has a decision table (the default rules with any data), each candidate
//     is decided by the table cell of its facts (org role, grant, highest role among the
//     project's effective teams), read from the indexes in one snapshot, a few map lookups
//     each and no Rego evaluation once the table's cells are filled. The members come in order
//     from the store's sorted member list (kept with the state, shared by readers): a page
//     seeks its cursor by binary search and walks forward until it is full, so it costs the
//     members between its cursor and its last subject, not the org; paging through a whole
//     listing walks the org once. The table's own cell for a non-member says
//     whether non-members can be allowed (data holding an ext.allow list allows everyone); if
//     so the listing is Unbounded and the candidates are every subject the directory knows.
//   - With authors' modules that read more than the table's key there is no table, and each candidate past the cursor is decided with
//     Authorize (full evaluation, cached) until the page is full: one evaluation per member
//     between the cursor and the page's last subject. When a module defines ext.allow (rego.Policy.ExtAllows), which may name
//     any subject, the candidates are every subject the directory knows — the members of every
//     org and every user record — and the page is Unbounded: a subject id stored nowhere cannot
//     be listed, whatever a module says about it.
//
// Pagination: the cursor is the last subject returned. A subject allowed during the whole
// pagination appears exactly once; one whose access changes meanwhile may or may not appear.
func (e *Engine) ListSubjects(ctx context.Context, action, resource string, page Page) (out SubjectPage, err error) {
	ctx, sp := e.startSpan(ctx, "teamgate.ListSubjects", string(attrAction), action, string(attrResource), resource)
	defer func() { sp.endPage(out.Revision, len(out.Subjects), err) }()
	if page.Limit < 0 {
		return SubjectPage{}, teamgate.Invalid("page limit", strconv.Itoa(page.Limit), "must be >= 0")
	}
	out, err = e.subjects(ctx, Request{Action: action, Resource: resource}, page, true)
	if err != nil {
		return SubjectPage{}, err
	}
	return out, nil
}

// subjects lists the subjects allowed req (its Subject is ignored). With useTable and a policy
// that has a table, a request without attributes is answered from it; otherwise every
// candidate is decided with Authorize.
func (e *Engine) subjects(ctx context.Context, req Request, page Page, useTable bool) (SubjectPage, error) {
	p := e.policy.Load()
	q := &query{}
	req.Subject = listingSubject
	if err := e.prepare(p, &req, q); err != nil {
		return SubjectPage{}, err
	}
	limit := 0
	if page.Limit > 0 {
		limit = page.Limit + 1 // one more tells whether another page follows
	}
	var out SubjectPage
	var err error
	if t := p.Table(); t != nil && useTable && q.attrs.Len() == 0 && q.dest == nil {
		out, err = e.subjectsByTable(ctx, p, t, q, page.After, limit)
	} else {
		out, err = e.subjectsByEvaluation(ctx, p, q, page.After, limit)
	}
	if err != nil {
		return SubjectPage{}, err
	}
	out.Action, out.Resource = req.Action, req.Resource
	if page.Limit > 0 && len(out.Subjects) > page.Limit {
		out.Subjects = slices.Clone(out.Subjects[:page.Limit])
		out.Next = out.Subjects[page.Limit-1].Subject
	}
	return out, nil
}

// candidates returns the subjects past cursor, in order, that may be allowed on the resource of
// org: its members, or with unbounded every subject the directory knows. The members come from
// the store's sorted member list (immutable: the sequence may be walked after the View that
// read it), so seeking the cursor is a binary search and each candidate one step; a page walks
// only the members between its cursor and its last subject. The unbounded union is built and
// sorted whole, in time linear in the directory.
func candidates(r store.Reader, org string, unbounded bool, cursor string) iter.Seq[string] {
	if !unbounded {
		return r.MemberList(org).After(cursor)
	}
	seen := map[string]struct{}{}
	for _, o := range r.Orgs() {
		for m := range r.MemberList(o).After("") {
			seen[m] = struct{}{}
		}
	}
	for _, u := range r.Users() {
		seen[u] = struct{}{}
	}
	names := slices.Collect(maps.Keys(seen))
	names = slices.DeleteFunc(names, func(n string) bool { return n <= cursor })
	slices.Sort(names)
	return slices.Values(names)
}

// subjectsByTable answers a listing from the store's indexes and the decision table, in one
// snapshot (ListSubjects documents how). q holds the validated request.
func (e *Engine) subjectsByTable(ctx context.Context, p *rego.Policy, t *rego.Table, q *query, cursor string, limit int) (SubjectPage, error) {
	out := SubjectPage{Subjects: []Access{}}
	err := e.dir.View(func(r store.Reader) error {
		out.Revision = r.Revision()
		q.acc = r.Access(q.org, q.team, q.project, q.req.Subject)
		if q.acc.Missing != store.Found {
			return nil
		}
		// A non-member's facts: no org role, no grant, no team role.
		q.acc = store.Access{Teams: q.acc.Teams, Restricted: q.acc.Restricted, Labels: q.acc.Labels}
		c := q.codes()
		v, err := t.VerdictOfCodes(ctx, q.spec, &c, e.budgetOf(p))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			e.failed(err, out.Revision) // denies non-members, as it would in Authorize
		}
		out.Unbounded = err == nil && v.Allow()
		keys := map[string]rego.Codes{}
		var allowed []string
		for name := range candidates(r, q.org, out.Unbounded, cursor) {
			q.req.Subject = name
			q.acc = r.Access(q.org, q.team, q.project, name)
			c := q.codes()
			v, err := t.VerdictOfCodes(ctx, q.spec, &c, e.budgetOf(p))
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				e.failed(err, out.Revision) // a failed cell denies, as it would in Authorize
				continue
			}
			if v.Allow() {
				allowed = append(allowed, name)
				keys[name] = c
			}
			if limit > 0 && len(allowed) == limit {
				break // candidates are sorted
			}
		}
		for _, name := range allowed {
			q.req.Subject = name
			q.acc = r.Access(q.org, q.team, q.project, name)
			c := keys[name]
			d := e.fromTable(ctx, p, q.spec, q, &c, out.Revision, nil)
			if !d.Allowed { // the cell failed since it was read: deny, as Authorize would
				continue
			}
			out.Subjects = append(out.Subjects, Access{Subject: name, Role: d.Role, Reasons: d.Reasons,
				Teams: viaTeams(r, q.resource(), name, d)})
		}
		return nil
	})
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return SubjectPage{}, err
	}
	return out, nil
}

// subjectsByEvaluation lists by deciding the request with Authorize for every candidate past the
// cursor until limit are allowed: the listing under authors' modules, which may allow or deny on
// any fact.
func (e *Engine) subjectsByEvaluation(ctx context.Context, p *rego.Policy, q *query, cursor string, limit int) (SubjectPage, error) {
	out := SubjectPage{Subjects: []Access{}, Unbounded: p.ExtAllows()}
	names := slices.Values([]string(nil))
	err := e.dir.View(func(r store.Reader) error {
		out.Revision = r.Revision()
		q.acc = r.Access(q.org, q.team, q.project, q.req.Subject)
		if q.acc.Missing == store.Found {
			names = candidates(r, q.org, out.Unbounded, cursor) // immutable: walked after the View
		}
		return nil
	})
	if err != nil {
		return SubjectPage{}, err
	}
	req := q.req
	req.MinRevision, req.unlogged = out.Revision, true
	var decided []Decision
	for name := range names {
		if limit > 0 && len(out.Subjects) == limit {
			break
		}
		req.Subject = name
		d, derr := e.Authorize(ctx, req)
		if err := ctx.Err(); err != nil {
			return SubjectPage{}, err
		}
		if derr == nil && d.Allowed { // any other error denies, like a failed evaluation
			out.Subjects = append(out.Subjects, Access{Subject: name, Role: d.Role, Reasons: d.Reasons})
			decided = append(decided, d)
		}
	}
	if len(out.Subjects) == 0 {
		return out, nil
	}
	// The teams behind team_role reasons, read after the decisions (at their revision or later).
	err = e.dir.View(func(r store.Reader) error {
		q.acc = r.Access(q.org, q.team, q.project, q.req.Subject)
		res := q.resource()
		for i := range out.Subjects {
			out.Subjects[i].Teams = viaTeams(r, res, out.Subjects[i].Subject, decided[i])
		}
		return nil
	})
	if err != nil {
		return SubjectPage{}, err
	}
	return out, nil
}

// viaTeams returns the teams of res that give subject its role in d, when a reason of d is
// team_role (see Access.Teams); an empty list otherwise.
func viaTeams(r store.Reader, res rego.Resource, subject string, d Decision) []string {
	out := []string{}
	if !d.Has(rego.CodeTeamRole) || !res.Exists {
		return out
	}
	roles := r.TeamRoles(res.Org, subject)
	if res.Kind == scope.KindTeam {
		if _, ok := roles.Role(res.Team); ok {
			out = append(out, res.Team)
		}
		return out
	}
	for _, t := range res.Teams {
		if role, ok := roles.Role(t); ok && role == d.Role {
			out = append(out, t)
		}
	}
	return out
}
