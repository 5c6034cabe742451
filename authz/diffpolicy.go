package authz

import (
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
	// ActionsAdded and ActionsRemoved are the project actions only the candidate's (only the
	// current) catalog has: requests naming them go from an ErrInvalid error to a decision (or
	// back) for everyone. Their decisions are not listed.
	ActionsAdded   []string `json:"actions_added"`
	ActionsRemoved []string `json:"actions_removed"`
	// Pairs is how many (subject, project) pairs were compared, each on every project action
	// both catalogs have.
	Pairs int `json:"pairs"`
	// Actions counts, per action that changes anything, the differing cells and decisions.
	Actions []ActionDiff `json:"actions"`
	// Cells are the decision-table cells (role facts) whose verdict differs, over the whole fact
	// space, whatever the directory holds; [] unless both policies have a decision table (no
	// authors' modules).
	Cells []CellChange `json:"cells"`
	// Decisions are the directory's decisions that change, in order of subject, project and
	// action.
	Decisions []DecisionChange `json:"decisions"`
	// Truncated is set when Cells or Decisions were cut at DiffPolicy's limit; the counts and
	// the fingerprint always cover everything.
	Truncated bool `json:"truncated"`
}

// ActionDiff counts what a policy change does to one project action.
type ActionDiff struct {
	Action    string `json:"action"`
	Cells     int    `json:"cells"`     // fact-space cells that differ (0 without decision tables)
	Decisions int    `json:"decisions"` // the directory's decisions that change
	Granted   int    `json:"granted"`   // of those, deny → allow
	Revoked   int    `json:"revoked"`   // of those, allow → deny
}

// CellChange is one cell of the decision table's fact space whose verdict differs: a project
// action and the role facts of a subject on a project. TeamRoles are the subject's roles among
// the project's effective teams (each policy ranks them itself); they only matter, and are only
// enumerated, on restricted projects. Exists false is the cell of a missing project.
type CellChange struct {
	Action     string      `json:"action"`
	Exists     bool        `json:"exists"`
	OrgRole    string      `json:"org_role"`
	Grant      string      `json:"grant"`
	TeamRoles  []string    `json:"team_roles"`
	Restricted bool        `json:"restricted"`
	Before     CellVerdict `json:"before"`
	After      CellVerdict `json:"after"`
}

// CellVerdict is a table cell's decision: no messages (those come from a request's own facts).
type CellVerdict struct {
	Allowed bool        `json:"allowed"`
	Role    string      `json:"role"`
	Codes   []rego.Code `json:"codes"`
}

// DiffPolicy reports every decision that loading the candidate (SetPolicy(ctx, c.Modules,
// c.Data...)) would change, without loading it. A candidate SetPolicy would refuse returns
// SetPolicy's error.
//
// Which decisions: every project action both catalogs have, for every subject the directory
// knows in an org (its members and the holders of grants on its projects; when either policy has
// authors' modules, which may read the subject's id, every subject the directory knows, as
// ListSubjects takes them) on every project of that org, named "org/project", on requests
// without attributes. (The default rules deny a non-member whatever the data, so without
// modules the org's outsiders cannot change.) A decision counts as changed
// when Allowed, Role or its reason codes differ (as for Simulate). Org and team actions, team-space
// references ("org/team/project", which a module may read as input.resource.team), attributes and
// subjects the directory does not know are not compared.
//
// How: when both policies have a decision table (the default modules with any data, rego.Table)
// and the engine's compiled path is on, each pair's role facts are reduced to each policy's
// table key and the verdicts compared (a few lookups per decision, and at most one evaluation per
// table cell); the table cells that differ are also listed over the whole fact space (every org
// role × grant × team roles × restriction), so a reviewer sees what changes even where the
// directory has no such subject yet. Otherwise both policies are evaluated on every pair's full
// input: 2 × pairs × actions Rego evaluations (each within the engine's budget), e.g. 1 000
// members × 100 projects × 30 actions is six million. Either way the facts are read in one
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
// policy in force stays. The directory may change after the diff is computed and before the swap
// (as with SetPolicy); the diff is that of the revision it was computed at.
func (e *Engine) SetPolicyIf(ctx context.Context, expect DiffFingerprint, c Candidate) error {
	cand, err := rego.New(ctx, c.Modules, c.Data...)
	if err != nil {
		return err
	}
	cur := e.policy.Load()
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
	// setPolicy's swap, made only if the policy diffed against is still in force.
	if !e.policy.CompareAndSwap(cur, cand) {
		return &teamgate.ConflictError{What: "policy diff", Name: string(expect), Reason: "the policy in force changed while the diff was computed"}
	}
	return nil
}

// pairFacts are a (subject, project) pair's facts, read in the diff's snapshot.
type pairFacts struct {
	pair
	subject  rego.Subject // with its team roles in the org
	resource rego.Resource
}

// diff compares cur and cand; limit < 0 lists no cells and no decisions, but counts them all.
func (e *Engine) diff(ctx context.Context, cur, cand *rego.Policy, limit int) (PolicyDiff, error) {
	before, after := projectActions(cur), projectActions(cand)
	out := PolicyDiff{Method: DiffByEvaluation, Actions: []ActionDiff{}, Cells: []CellChange{}, Decisions: []DecisionChange{},
		ActionsAdded: without(after, before), ActionsRemoved: without(before, after)}
	actions := intersect(before, after)
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
		for _, a := range actions {
			if err := diffCells(ctx, tc, tn, cur, cand, a, func(ch CellChange) {
				count(a).Cells++
				if keep() {
					out.Cells = append(out.Cells, ch)
				}
			}); err != nil {
				return PolicyDiff{}, err
			}
		}
		if e.compiled {
			out.Method = DiffByTable
		}
	}
	pairs, rev, err := e.readPairs(tc == nil || tn == nil)
	if err != nil {
		return PolicyDiff{}, err
	}
	out.Revision, out.Pairs = rev, len(pairs)
	listed = 0
	for _, pf := range pairs {
		if err := ctx.Err(); err != nil {
			return PolicyDiff{}, err
		}
		for _, a := range actions {
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
			fmt.Fprintf(h, "d %q %q %q %s %s\n", pf.subject.ID, pf.project, a, digest(b), digest(f))
			if keep() {
				out.Decisions = append(out.Decisions, DecisionChange{Subject: pf.pair.subject, Project: pf.project, Action: a, Before: b, After: f})
			}
		}
	}
	for _, a := range slices.Sorted(maps.Keys(counts)) {
		out.Actions = append(out.Actions, *counts[a])
	}
	out.Fingerprint = fingerprintOf(h)
	return out, nil
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

// readPairs reads, in one snapshot, the facts of every (subject, project) pair DiffPolicy
// compares, sorted by subject and project: the org's members and grantees, or with anyone (a
// policy with authors' modules) every subject the directory knows.
func (e *Engine) readPairs(anyone bool) ([]pairFacts, uint64, error) {
	var out []pairFacts
	var rev uint64
	err := e.dir.View(func(r store.Reader) error {
		rev = r.Revision()
		for _, org := range r.Orgs() {
			subjects := candidates(r, org, anyone, "")
			projects := r.Projects(org)
			for _, p := range projects {
				if pv, ok := r.Project(org, p); ok {
					subjects = append(subjects, slices.Collect(maps.Keys(pv.Project.Grants))...)
				}
			}
			slices.Sort(subjects)
			for _, u := range slices.Compact(subjects) {
				for _, p := range projects {
					s, f := resolveProject(r, u, scope.Ref{Org: org, Project: p})
					s.TeamRoles = r.TeamRoles(org, u).Map()
					out = append(out, pairFacts{pair: pair{subject: u, project: org + "/" + p}, subject: s, resource: f})
				}
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b pairFacts) int { return cmpPair(a.pair, b.pair) })
	return out, rev, err
}

// decidePair decides action on a pair with policy p, as Authorize would on the request
// {subject, action, "org/project"} at the snapshot: from p's decision table (method
// DiffByTable) or by evaluating p.
func (e *Engine) decidePair(ctx context.Context, p *rego.Policy, pf pairFacts, action, method string, rev uint64) (Decision, error) {
	var q query
	if err := e.prepare(p, Request{Subject: pf.pair.subject, Action: action, Resource: pf.project}, &q); err != nil {
		return Decision{}, err
	}
	q.in.Subject, q.in.Resource = pf.subject, pf.resource
	if method == DiffByTable {
		roles := pf.subject.TeamRoles
		k := q.key(p, func(t string) (string, bool) { r, ok := roles[t]; return r, ok })
		return e.fromTable(ctx, p.Table(), &q, k, rev), nil
	}
	return e.eval(ctx, p, &q, rev), nil
}

// diffCells calls changed for every cell of action a's fact space on a project whose verdict
// differs between the tables, in a fixed order.
func diffCells(ctx context.Context, tc, tn *rego.Table, cur, cand *rego.Policy, a string, changed func(CellChange)) error {
	roles := []string{string(teamgate.RoleViewer), string(teamgate.RoleMember), string(teamgate.RoleContributor), string(teamgate.RoleAdmin)}
	verdict := func(t *rego.Table, p *rego.Policy, k rego.Key, teams []string) (CellVerdict, error) {
		k.TeamRole = p.HighestRole(func(r string) (string, bool) { return r, true }, teams)
		v, err := t.Verdict(ctx, k)
		if err != nil {
			if ctx.Err() != nil {
				return CellVerdict{}, ctx.Err()
			}
			return CellVerdict{Role: "none", Codes: []rego.Code{rego.CodeError}}, nil // any failure denies
		}
		return CellVerdict{Allowed: v.Allow, Role: v.Role, Codes: slices.Clip(v.Codes)}, nil
	}
	cell := func(k rego.Key, teams []string) error {
		b, err := verdict(tc, cur, k, teams)
		if err != nil {
			return err
		}
		f, err := verdict(tn, cand, k, teams)
		if err != nil {
			return err
		}
		if b.Allowed != f.Allowed || b.Role != f.Role || !slices.Equal(b.Codes, f.Codes) {
			changed(CellChange{Action: a, Exists: k.Exists, OrgRole: k.OrgRole, Grant: k.Grant, TeamRoles: teams,
				Restricted: k.Restricted, Before: b, After: f})
		}
		return nil
	}
	if err := cell(rego.Key{Action: a}, []string{}); err != nil {
		return err
	}
	for _, o := range append([]string{"none"}, store.OrgRoles()...) {
		for _, g := range append([]string{""}, roles...) {
			k := rego.Key{Action: a, Exists: true, OrgRole: o, Grant: g}
			if err := cell(k, []string{}); err != nil {
				return err
			}
			k.Restricted = true
			for set := range 1 << len(roles) {
				teams := []string{}
				for i, r := range roles {
					if set&(1<<i) != 0 {
						teams = append(teams, r)
					}
				}
				if err := cell(k, teams); err != nil {
					return err
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
