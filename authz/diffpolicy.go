package authz

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"maps"
	"slices"
	"strings"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
	"github.com/teamgate/teamgate/store"
)

// Candidate is a policy to compare with the one in force (DiffPolicy) or to load conditionally
// (SetPolicyIf): authors' modules and data, as SetPolicy takes them.
type Candidate struct {
	Modules []rego.Module
	Data    []map[string]any
}

// DiffFingerprint identifies what a policy change does to a directory: the actions it adds and
// removes and every decision it changes (subject, project, action, and Allowed, Role and reason
// codes before and after; not messages, not the revision). Two diffs with the same fingerprint
// change the same decisions the same way.
type DiffFingerprint string

// Diff methods (PolicyDiff.Method).
const (
	DiffByTable      = "table"      // both policies' decision tables answered every pair
	DiffByEvaluation = "evaluation" // both policies were evaluated on every pair's full input
)

// PolicyDiff is what loading a candidate policy would change, found by DiffPolicy without loading
// it. Its JSON is the `teamgate diff` output; arrays are never null.
type PolicyDiff struct {
	// Revision is the directory revision the pairs were read at.
	Revision    uint64          `json:"revision"`
	Fingerprint DiffFingerprint `json:"fingerprint"`
	Method      string          `json:"method"` // DiffByTable or DiffByEvaluation
	// ActionsAdded and ActionsRemoved are the actions only the candidate's (only the current)
	// catalog has, or has with that kind of resource (an action whose kind changes is in both):
	// requests naming them go from an ErrInvalid error to a decision (or back) for everyone.
	// Their decisions are not listed.
	ActionsAdded   []string `json:"actions_added"`
	ActionsRemoved []string `json:"actions_removed"`
	// Pairs is how many (subject, resource) pairs were compared — orgs, teams and projects —
	// each on every action of the resource's kind both catalogs have.
	Pairs int `json:"pairs"`
	// Actions counts, per action that changes anything, the differing cells and decisions.
	Actions []ActionDiff `json:"actions"`
	// Cells are the decision-table cells (role facts) whose verdict differs, over the whole fact
	// space, whatever the directory holds; [] unless both policies have a decision table (no
	// authors' modules).
	Cells []CellChange `json:"cells"`
	// Decisions are the directory's decisions that change, in order of subject, resource and
	// action.
	Decisions []DecisionChange `json:"decisions"`
	// Truncated is set when Cells or Decisions were cut at DiffPolicy's limit; the counts and
	// the fingerprint always cover everything.
	Truncated bool `json:"truncated"`
	// Nondeterministic is set when the policy in force or the candidate reads the clock or
	// randomness (rego.Policy.Deterministic is false): the decisions are those of the moment
	// they were compared, another run may differ, and SetPolicyIf may then refuse the same
	// fingerprint.
	Nondeterministic bool `json:"nondeterministic"`
}

// ActionDiff counts what a policy change does to one action.
type ActionDiff struct {
	Action    string `json:"action"`
	Cells     int    `json:"cells"`     // fact-space cells that differ (0 without decision tables)
	Decisions int    `json:"decisions"` // the directory's decisions that change
	Granted   int    `json:"granted"`   // of those, deny → allow
	Revoked   int    `json:"revoked"`   // of those, allow → deny
}

// CellChange is one cell of the decision table's fact space whose verdict differs: an action and
// the role facts of a subject on a resource of the action's kind. For a project action,
// TeamRoles are the subject's roles among the project's effective teams (each policy ranks them
// itself; they only matter, and are only enumerated, on restricted projects); for a team action,
// the subject's role in the team ([] for none); Grant and Restricted are a project's only.
// Exists false is the cell of a missing resource.
type CellChange struct {
	Action     string      `json:"action"`
	Exists     bool        `json:"exists"`
	OrgRole    string      `json:"org_role"`
	Grant      string      `json:"grant"`
	BreakGlass bool        `json:"break_glass,omitempty"` // the grant is a break-glass one (authors' modules only: rego.Policy.HasModules)
	TeamRoles  []string    `json:"team_roles"`
	Restricted bool        `json:"restricted"`
	Before     CellVerdict `json:"before"`
	After      CellVerdict `json:"after"`
}

// CellVerdict is a table cell's decision: no messages (those come from a request's own facts, or
// are an extension's own), as a decision's change is in Allowed, Role and the codes.
type CellVerdict struct {
	Allowed bool        `json:"allowed"`
	Role    string      `json:"role"`
	Codes   []rego.Code `json:"codes"`
}

// DiffPolicy reports every decision that loading the candidate (SetPolicy(ctx, c.Modules,
// c.Data...)) would change, without loading it. A candidate SetPolicy would refuse returns
// SetPolicy's error.
//
// Which decisions: for every org, every subject the directory knows there (its members and the
// holders of grants on its projects; when either policy is extended by authors — a module, which
// may read the subject's id, or teamgate.ext data, whose allow list allows anyone — every subject
// the directory knows, as ListSubjects takes them) on the org,
// each of its teams and each of its projects ("org", "org/team", "org/project"), for every
// action of that kind both catalogs have, on requests without attributes. (The default rules deny
// a non-member whatever the data, so without extensions the org's outsiders cannot change.) A
// decision counts as changed when Allowed, Role or its reason codes differ (as for Simulate).
// Team-space references ("org/team/project", which a module may read as input.resource.team),
// attributes and subjects the directory does not know are not compared.
//
// How: when both policies have a decision table (the default modules with any data, and authors'
// modules that read only the table's key: rego.Table) and the engine's compiled path is on, each
// pair's role facts are reduced to each policy's table key and the verdicts compared (a few
// lookups per decision, and at most one evaluation per table cell); the table cells that differ
// are also listed over the whole fact space (every org role × grant × team roles × restriction
// for projects, × team role for teams; with an author's module also every break-glass grant and
// the team roles of open projects), so a reviewer sees what changes even where the directory has
// no such subject yet. Otherwise both policies
// are evaluated on every pair's full input: 2 × pairs × actions of the kind Rego evaluations
// (each within the engine's budget), e.g. 1 000 members × 100 projects × 30 project actions is
// six million, teams and the org adding (teams × 6 + 18) per member. Either way the facts are read in one
// snapshot, and the directory is not locked while decisions are compared.
//
// limit caps Cells and Decisions (Truncated says so); 0 lists everything. Counts and the
// fingerprint cover everything whatever the limit.
func (e *Engine) DiffPolicy(ctx context.Context, c Candidate, limit int) (PolicyDiff, error) {
	if limit < 0 {
		return PolicyDiff{}, teamgate.Invalid("limit", fmt.Sprint(limit), "must be >= 0 (0: no limit)")
	}
	cand, err := rego.New(ctx, c.Modules, c.Data...)
	if err != nil {
		return PolicyDiff{}, err
	}
	return e.diff(ctx, e.policy.Load(), cand, limit)
}

// SetPolicyIf loads the candidate only if the diff it makes now (DiffPolicy's fingerprint,
// computed again against the policy in force and the directory as it is) is expect: the review
// → apply step of a CI pipeline, like an If-Match on the policy. A different diff is an error
// matching teamgate.ErrConflict, and so is a policy swapped in by someone else while the diff was
// computed; a candidate SetPolicy would refuse returns SetPolicy's error. On any error the
// policy in force stays.
//
// The diff is computed in one snapshot of the directory, at a revision; if a write has landed
// by the time the diff is done, the condition is checked again at the new revision (the write
// may change the diff, or change no decision and leave it as it was), up to setPolicyIfAttempts
// times, after which SetPolicyIf fails with an error matching teamgate.ErrStale and the policy
// stays. The candidate is swapped in only right after a diff equal to expect at the revision
// still in force: a write landing between that last check and the swap itself is ordered after
// the swap (as any write after SetPolicy).
func (e *Engine) SetPolicyIf(ctx context.Context, expect DiffFingerprint, c Candidate) error {
	cand, err := rego.New(ctx, c.Modules, c.Data...)
	if err != nil {
		return err
	}
	cur := e.policy.Load()
	policyChanged := &teamgate.ConflictError{What: "policy diff", Name: string(expect), Reason: "the policy in force changed while the diff was computed"}
	for attempt := 1; ; attempt++ {
		d, err := e.diff(ctx, cur, cand, -1)
		if err != nil {
			return err
		}
		if d.Fingerprint != expect {
			n := 0
			for _, a := range d.Actions {
				n += a.Decisions
			}
			return &teamgate.ConflictError{What: "policy diff", Name: string(expect),
				Reason: fmt.Sprintf("loading the candidate now makes diff %s (%d decisions change)", d.Fingerprint, n)}
		}
		if e.afterDiff != nil {
			e.afterDiff()
		}
		if e.policy.Load() != cur {
			return policyChanged
		}
		if e.dir.Revision() == d.Revision {
			// setPolicy's swap, made only if the policy diffed against is still in force.
			if !e.policy.CompareAndSwap(cur, cand) {
				return policyChanged
			}
			e.policySwapped()
			return nil
		}
		if attempt == setPolicyIfAttempts {
			return fmt.Errorf("policy diff %s: the directory changed while the diff was computed, %d times: %w", expect, attempt, teamgate.ErrStale)
		}
	}
}

// setPolicyIfAttempts bounds how often SetPolicyIf computes the diff again because a write
// landed while it was computed.
const setPolicyIfAttempts = 3

// pairFacts are a subject's facts on one resource (an org, a team or a project), read in the
// diff's snapshot.
type pairFacts struct {
	subject  string
	resource string // the request's resource: "org", "org/team" or "org/project"
	kind     scope.Kind
	acc      store.Access // what Authorize reads for the decision table (Reader.Access)
	in       rego.Input   // subject (with its team roles in the org) and resource, for evaluation
}

// diff compares cur and cand; limit < 0 lists no cells and no decisions, but counts them all.
func (e *Engine) diff(ctx context.Context, cur, cand *rego.Policy, limit int) (PolicyDiff, error) {
	out := PolicyDiff{Method: DiffByEvaluation, Actions: []ActionDiff{}, Cells: []CellChange{}, Decisions: []DecisionChange{},
		ActionsAdded: []string{}, ActionsRemoved: []string{}, Nondeterministic: !cur.Deterministic() || !cand.Deterministic()}
	actions := map[scope.Kind][]string{} // by kind, the actions both catalogs have with that kind
	for _, kind := range diffKinds() {
		before, after := actionsOf(cur, kind), actionsOf(cand, kind)
		out.ActionsAdded = append(out.ActionsAdded, without(after, before)...)
		out.ActionsRemoved = append(out.ActionsRemoved, without(before, after)...)
		actions[kind] = intersect(before, after)
	}
	slices.Sort(out.ActionsAdded)
	slices.Sort(out.ActionsRemoved)
	h := sha256.New()
	for _, a := range out.ActionsAdded {
		fmt.Fprintf(h, "+%q\n", a)
	}
	for _, a := range out.ActionsRemoved {
		fmt.Fprintf(h, "-%q\n", a)
	}
	counts := map[string]*ActionDiff{}
	count := func(a string) *ActionDiff {
		if counts[a] == nil {
			counts[a] = &ActionDiff{Action: a}
		}
		return counts[a]
	}
	listed := 0
	keep := func() bool {
		if limit < 0 || limit > 0 && listed >= limit {
			out.Truncated = out.Truncated || limit > 0
			return false
		}
		listed++
		return true
	}
	tc, tn := cur.Table(), cand.Table()
	if tc != nil && tn != nil {
		for _, kind := range diffKinds() {
			for _, a := range actions[kind] {
				if err := e.diffCells(ctx, cur, cand, a, kind, func(ch CellChange) {
					count(a).Cells++
					if keep() {
						out.Cells = append(out.Cells, ch)
					}
				}); err != nil {
					return PolicyDiff{}, err
				}
			}
		}
		if e.compiled {
			out.Method = DiffByTable
		}
	}
	pairs, rev, err := e.readPairs(cur.Extended() || cand.Extended())
	if err != nil {
		return PolicyDiff{}, err
	}
	out.Revision, out.Pairs = rev, len(pairs)
	listed = 0
	for _, pf := range pairs {
		if err := ctx.Err(); err != nil {
			return PolicyDiff{}, err
		}
		for _, a := range actions[pf.kind] {
			b, err := e.decidePair(ctx, cur, pf, a, out.Method, rev)
			if err != nil {
				return PolicyDiff{}, err
			}
			f, err := e.decidePair(ctx, cand, pf, a, out.Method, rev)
			if err != nil {
				return PolicyDiff{}, err
			}
			if !decisionChanged(b, f) {
				continue
			}
			n := count(a)
			n.Decisions++
			switch {
			case !b.Allowed && f.Allowed:
				n.Granted++
			case b.Allowed && !f.Allowed:
				n.Revoked++
			}
			fmt.Fprintf(h, "d %q %q %q %s %s\n", pf.subject, pf.resource, a, digest(b), digest(f))
			if keep() {
				ch := DecisionChange{Subject: pf.subject, Action: a, Before: b, After: f}
				if pf.kind == scope.KindProject {
					ch.Project = pf.resource
				} else {
					ch.Resource = pf.resource
				}
				out.Decisions = append(out.Decisions, ch)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return PolicyDiff{}, err // the last pair may have been decided without its context
	}
	for _, a := range slices.Sorted(maps.Keys(counts)) {
		out.Actions = append(out.Actions, *counts[a])
	}
	out.Fingerprint = fingerprintOf(h)
	return out, nil
}

// diffKinds are the resource kinds DiffPolicy compares, in the order of its cells.
func diffKinds() []scope.Kind { return []scope.Kind{scope.KindOrg, scope.KindTeam, scope.KindProject} }

// actionsOf are the catalog's actions of a kind, sorted.
func actionsOf(p *rego.Policy, kind scope.Kind) []string {
	var out []string
	for _, a := range p.Actions() {
		if spec, _ := p.Action(a); spec.Kind == kind {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

func fingerprintOf(h hash.Hash) DiffFingerprint {
	return DiffFingerprint(hex.EncodeToString(h.Sum(nil)[:16]))
}

// digest is what the fingerprint keeps of a decision (decisionChanged's fields).
func digest(d Decision) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%t/%q", d.Allowed, d.Role)
	for _, r := range d.Reasons {
		fmt.Fprintf(&b, "/%q", r.Code)
	}
	return b.String()
}

// readPairs reads, in one snapshot, the facts of every (subject, resource) pair DiffPolicy
// compares, sorted by subject, resource and kind: for each org, its members and grantees (or
// with anyone, for a policy authors extend (rego.Policy.Extended), every subject the directory knows) on the
// org, each of its teams and each of its projects.
func (e *Engine) readPairs(anyone bool) ([]pairFacts, uint64, error) {
	var out []pairFacts
	var rev uint64
	err := e.dir.View(func(r store.Reader) error {
		rev = r.Revision()
		for _, org := range r.Orgs() {
			subjects := slices.Collect(candidates(r, org, anyone, ""))
			var resources []scope.Resource
			resources = append(resources, scope.Resource{Kind: scope.KindOrg, Owner: scope.Owner{Org: org}})
			for _, t := range r.Teams(org) {
				resources = append(resources, scope.Resource{Kind: scope.KindTeam, Owner: scope.Owner{Org: org, Team: t}})
			}
			for _, p := range r.Projects(org) {
				resources = append(resources, scope.Resource{Kind: scope.KindProject, Ref: scope.Ref{Org: org, Project: p}})
				if pv, ok := r.Project(org, p); ok {
					subjects = append(subjects, slices.Collect(maps.Keys(pv.Project.Grants))...)
				}
			}
			slices.Sort(subjects)
			for _, u := range slices.Compact(subjects) {
				for _, res := range resources {
					// The facts Authorize reads for the request, read the same way.
					org, team, project, name := res.Owner.Org, res.Owner.Team, "", res.Owner.String()
					if res.Kind == scope.KindProject {
						org, team, project, name = res.Ref.Org, res.Ref.Team, res.Ref.Project, res.Ref.String()
					}
					pf := pairFacts{subject: u, resource: name, kind: res.Kind, acc: r.Access(org, team, project, u)}
					pf.in.Subject, pf.in.Resource = inputFacts(r, &pf.acc, res.Kind, u, org, team, project)
					out = append(out, pf)
				}
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b pairFacts) int {
		return cmp.Or(strings.Compare(a.subject, b.subject), strings.Compare(a.resource, b.resource), strings.Compare(string(a.kind), string(b.kind)))
	})
	return out, rev, err
}

// decidePair decides action on a pair with policy p, as Authorize would on the request
// {subject, action, resource} at the snapshot: from p's decision table (method DiffByTable) or
// by evaluating p.
func (e *Engine) decidePair(ctx context.Context, p *rego.Policy, pf pairFacts, action, method string, rev uint64) (Decision, error) {
	var q query
	req := Request{Subject: pf.subject, Action: action, Resource: pf.resource}
	if err := e.prepare(p, &req, &q); err != nil {
		return Decision{}, err
	}
	q.acc = pf.acc
	if method == DiffByTable {
		c := q.codes()
		return e.fromTable(ctx, p, q.spec, &q, &c, rev, nil), nil
	}
	q.in = &rego.Input{Action: action, Attributes: q.attrs, Subject: pf.in.Subject, Resource: pf.in.Resource}
	return e.eval(ctx, p, &q, rev), nil
}

// diffCells calls changed for every cell of action a's fact space (a is of kind) whose verdict
// differs between the policies' tables (both have one), in a fixed order: the missing resource,
// then every org role with, for a team, the subject's role in it and, for a project, every grant,
// open or restricted and (restricted) every set of team roles among the project's teams. When
// either policy has an author's module, whose table keys on every fact (rego.Policy.HasModules),
// a project's cells also cover every set of team roles of an open project and every grant's
// break-glass form.
func (e *Engine) diffCells(ctx context.Context, cur, cand *rego.Policy, a string, kind scope.Kind, changed func(CellChange)) error {
	roles := store.TeamRoles() // the roles a grant or team membership may hold, as org roles below
	specC, okC := cur.Spec(a)
	specN, okN := cand.Spec(a)
	if !okC || !okN {
		return teamgate.Invalid("action", a, "not in both policies' catalogs")
	}
	verdict := func(p *rego.Policy, spec rego.Spec, c *rego.Codes) (CellVerdict, error) {
		v, err := p.Table().VerdictOfCodes(ctx, spec, c, e.budgetOf(p))
		if err != nil {
			if ctx.Err() != nil {
				return CellVerdict{}, ctx.Err()
			}
			return CellVerdict{Role: "none", Codes: []rego.Code{rego.CodeError}}, nil // any failure denies
		}
		return CellVerdict{Allowed: v.Allow(), Role: v.Role(), Codes: v.Codes()}, nil // a copy: the cell is shared
	}
	// cell compares the cell of a subject with org role o ("" for a missing resource), grant g
	// (a break-glass one when bg) and team roles teams (the roles held in the project's teams, or
	// in the team).
	cell := func(o, g string, bg, restricted bool, teams []string) error {
		c, err := codesOf(o != "", o, g, bg, teams, restricted)
		if err != nil {
			return err
		}
		b, err := verdict(cur, specC, &c)
		if err != nil {
			return err
		}
		f, err := verdict(cand, specN, &c)
		if err != nil {
			return err
		}
		if b.Allowed != f.Allowed || b.Role != f.Role || !slices.Equal(b.Codes, f.Codes) {
			changed(CellChange{Action: a, Exists: o != "", OrgRole: o, Grant: g, BreakGlass: bg, TeamRoles: teams,
				Restricted: restricted, Before: b, After: f})
		}
		return nil
	}
	// Authors' modules may read a fact the default rules ignore: every one has its cells then.
	exact := cur.HasModules() || cand.HasModules()
	if err := cell("", "", false, false, []string{}); err != nil {
		return err
	}
	for _, o := range append([]string{"none"}, store.OrgRoles()...) {
		switch kind {
		case scope.KindOrg:
			if err := cell(o, "", false, false, []string{}); err != nil {
				return err
			}
		case scope.KindTeam:
			for _, tr := range append([]string{""}, roles...) {
				teams := []string{}
				if tr != "" {
					teams = []string{tr}
				}
				if err := cell(o, "", false, false, teams); err != nil {
					return err
				}
			}
		case scope.KindProject:
			for _, g := range append([]string{""}, roles...) {
				for _, bg := range []bool{false, true} {
					if bg && (g == "" || !exact) {
						continue
					}
					for _, restricted := range []bool{false, true} {
						for set := range 1 << len(roles) {
							if !restricted && set > 0 && !exact {
								break // the default rules read no team role of an open project
							}
							teams := []string{}
							for i, r := range roles {
								if set&(1<<i) != 0 {
									teams = append(teams, r)
								}
							}
							if err := cell(o, g, bg, restricted, teams); err != nil {
								return err
							}
						}
					}
				}
			}
		}
	}
	return nil
}

// intersect returns the elements of a (sorted) also in b.
func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
