package rego

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/scope"
)

// key is everything the default rules' decision on a request without attributes reads: the
// action, whether the resource exists, and the subject's role facts, by name. Two requests with
// the same key get the same allow, role and reason codes from any policy made of the default
// modules, whatever its data (the rules read nothing else; an exhaustive test checks it), and
// the same messages too from authors' modules that read nothing else (keyPath maps each field to
// its input path; readsOf proves it of the modules), so one evaluation of a canonical input with
// that key answers for all of them. The table is asked by role codes (Codes); a key is only the
// canonical input's facts when a cell is computed.
type key struct {
	Action  string
	Exists  bool
	OrgRole string // "none" for non-members
	Grant   string // the grant role on the project; "" for none
	// BreakGlass: the grant is a break-glass elevation (Subject.BreakGlass).
	BreakGlass bool
	// TeamRole is, for a project action, the subject's highest role by data rank among the
	// project's effective teams; for a team action, its role in the team. "" for none.
	TeamRole   string
	Restricted bool // the project's effective teams restrict
}

// verdict is a table cell: a decision with the messages the policy itself gave (an author's
// extension_deny and extension_allow messages, functions of the key alone since the modules read
// nothing else); the engine renders every other message from the request's own facts and the
// limits the reasons name, as it does for a full evaluation's reasons without a message. Cells
// are shared by every decision of every key of the cell, so none is handed out but as a
// read-only VerdictView.
type verdict struct {
	allow  bool
	role   string
	codes  []Code
	msgs   []string // the policy's message of each reason, by index ("" where it gave none); nil when it gave none
	limits []Limit  // Result.Limits: the limit each reason names, by index; nil when none does
	// The action the cell decides (its catalog name) and the fingerprint of the policy whose
	// table holds it: the decision log keeps a compiled decision as its cell (VerdictView.Action,
	// VerdictView.Policy), not as copies of these.
	action, policy string
}

// VerdictView is a read-only handle on a table cell's verdict: what Table.VerdictOfCodes returns,
// since the cell is shared by every key of the cell and every later decision (a writable verdict
// would let any holder turn a deny into an allow for everyone). Its accessors return values or
// copies, never the cell's own slices. The zero VerdictView must not be read.
type VerdictView struct{ v *verdict }

// Allow is whether the verdict allows.
func (r VerdictView) Allow() bool { return r.v.allow }

// Role is the verdict's role (Result.Role).
func (r VerdictView) Role() string { return r.v.role }

// Action is the name of the action the verdict's cell decides, as the policy's catalog spells it
// (a request decided by the cell named exactly this action).
func (r VerdictView) Action() string { return r.v.action }

// Policy is the fingerprint (Policy.Fingerprint) of the policy whose table holds the verdict's
// cell: the policy that decided every request the cell answers.
func (r VerdictView) Policy() string { return r.v.policy }

// NumCodes is how many reasons the verdict gives.
func (r VerdictView) NumCodes() int { return len(r.v.codes) }

// Code is the code of reason i, 0 <= i < NumCodes().
func (r VerdictView) Code(i int) Code { return r.v.codes[i] }

// Codes returns a copy of the reasons' codes (Code reads one without a copy).
func (r VerdictView) Codes() []Code { return slices.Clone(r.v.codes) }

// LimitOf returns the limit reason i names, the zero Limit when it names none.
func (r VerdictView) LimitOf(i int) Limit { return limitOf(r.v.limits, i) }

// Message returns the message the policy itself gave reason i (an extension's deny or allow
// message), "" when it gave none: the caller then writes the code's standard message from the
// request's own facts, exactly as for a full evaluation's reason without a message.
func (r VerdictView) Message(i int) string {
	if i < len(r.v.msgs) {
		return r.v.msgs[i]
	}
	return ""
}

// Limits returns a copy of Result.Limits for the verdict (the limit each reason names, by index);
// nil when no reason names one, as on every cell of the default rules, which read no attributes.
func (r VerdictView) Limits() []Limit { return slices.Clone(r.v.limits) }

// Table is the decision table of a policy whose rules read nothing but its key: the default
// modules with any data, and authors' modules that provably read only the key's facts
// (README.md, "The decision table"). It is the one Go-side summary of the Rego rules. Each cell
// is computed on first use by evaluating the policy on a canonical input with the cell's facts,
// then read lock-free; it is the policy's own answer, not a re-implementation. A Table is safe
// for concurrent use.
//
// It has one entry, VerdictOfCodes: the action as the policy's Spec, the subject's role facts as
// codes of the store's vocabulary (Codes, as store.Access serves them), which pack into the index
// of a flat array of cells per action, so a lookup hashes and compares no string.
type Table struct {
	p      *Policy
	names  []string                         // action names by index in blocks (ActionSpec.index - 1)
	blocks []atomic.Pointer[[blockLen]cell] // by action index, allocated on the action's first use
	rank   [numRoles]int                    // data rank of each vocabulary project role
	// exact: every fact of the key has its own cell (an author's module may read a fact the
	// default rules ignore for the action's kind); else the facts the default rules do not read
	// are left out of the key (readFacts), and their cells shared.
	exact bool
}

// cell is one verdict, nil until computed.
type cell = atomic.Pointer[verdict]

// The role vocabulary of codes (orgRoleIndex, roleIndex): the store's roles, index 0 standing
// for none. Switches rather than tables: no package-level mutable state.
const (
	numOrgRoles = 8 // none and the seven teamgate.OrgRole
	numRoles    = 5 // none ("") and the four teamgate.ProjectRole a store holds
)

// blockLen is the cells of one action: one for a missing resource, then every org role × grant ×
// team role × restricted × break-glass.
const blockLen = 1 + numOrgRoles*numRoles*numRoles*2*2

func orgRoleIndex(s string) int {
	switch teamgate.OrgRole(s) {
	case "none":
		return 0
	case teamgate.OrgOwner:
		return 1
	case teamgate.OrgManager:
		return 2
	case teamgate.OrgAdmin:
		return 3
	case teamgate.OrgMember:
		return 4
	case teamgate.OrgViewer:
		return 5
	case teamgate.OrgBilling:
		return 6
	case teamgate.OrgOutsider:
		return 7
	}
	return -1
}

// roleIndex is a project (team, grant) role's index; "" is none.
func roleIndex(s string) int {
	switch teamgate.ProjectRole(s) {
	case "":
		return 0
	case teamgate.RoleViewer:
		return 1
	case teamgate.RoleMember:
		return 2
	case teamgate.RoleContributor:
		return 3
	case teamgate.RoleAdmin:
		return 4
	}
	return -1
}

// OrgRoleCode returns an org role's code (Codes.OrgRole): 1 + its index in teamgate.OrgRoles(),
// 0 for a non-member ("" or "none"); false for a role outside the store's vocabulary.
func OrgRoleCode(role string) (uint8, bool) {
	if role == "" {
		return 0, true
	}
	i := orgRoleIndex(role)
	return uint8(max(i, 0)), i >= 0
}

// RoleCode returns a project role's code (Codes.Grant; bit RoleCode-1 of Codes.TeamRoles):
// 1 + its index in teamgate.MemberRoles(), 0 for none (""); false for a role outside the store's
// vocabulary.
func RoleCode(role string) (uint8, bool) {
	i := roleIndex(role)
	return uint8(max(i, 0)), i >= 0
}

func newTable(p *Policy, exact bool) *Table {
	t := &Table{p: p, names: make([]string, len(p.actions)), exact: exact}
	for name, spec := range p.actions {
		t.names[spec.index-1] = name
	}
	t.blocks = make([]atomic.Pointer[[blockLen]cell], len(t.names))
	for _, r := range teamgate.MemberRoles() {
		t.rank[roleIndex(string(r))] = p.ranks[string(r)]
	}
	return t
}

// Table returns the policy's decision table, or nil when an author's module may read more than
// the table's key (NoTable says what), so that only full evaluation applies.
func (p *Policy) Table() *Table { return p.table }

// NoTable says why the policy has no decision table — the first reference, `with` or call of an
// author's module that may read more than the table's key, as "file:line: why" — or "" when it
// has one (README.md, "The decision table").
func (p *Policy) NoTable() string { return p.noTable }

// Extended reports whether authors extend the default rules: a deciding module is loaded or
// data defines teamgate.ext. Only then may a decision allow a non-member, and only then may an
// evaluation run long (authz gives it a time budget).
func (p *Policy) Extended() bool { return p.extended }

// HasModules reports whether an author's deciding module is loaded (test modules do not count).
// Its table, if any, then keys on every fact of the key whatever the action's kind — an open
// project's team role, a break-glass mark — where the default rules' table merges the facts they
// do not read (the cells DiffPolicy lists follow).
func (p *Policy) HasModules() bool { return p.modules }

// packIndex is the index in an action's block of an existing resource's cell, from the read
// facts (readFacts) with the roles as their codes.
func packIndex(o, g, tr int, restricted, breakGlass bool) int {
	i := 1 + ((o*numRoles+g)*numRoles+tr)*4
	if restricted {
		i += 2
	}
	if breakGlass {
		i++
	}
	return i
}

// Codes are the role facts the default rules read, as codes of the store's vocabulary, as
// store.Access serves them: an org role's code is 1 + its index in teamgate.OrgRoles(), a
// grant's 1 + its index in teamgate.MemberRoles(), 0 for none (a non-member; no grant)
// (OrgRoleCode, RoleCode); TeamRoles has bit i set for each teamgate.MemberRoles()[i] the subject
// holds (store.RoleSet) — in the project's effective teams for a project action, in the team for
// a team action — and the rules read the highest of them by data rank. A code is the role's
// packed index, so Codes find their cell without reading a string (Table.VerdictOfCodes).
type Codes struct {
	Exists     bool
	OrgRole    uint8
	Grant      uint8
	BreakGlass bool
	TeamRoles  uint8
	Restricted bool
}

// VerdictOfCodes returns the policy's verdict, on the action of spec, for a subject with the
// role facts c. spec must be an entry of this table's policy's own catalog (its Spec): the action
// is found from the spec alone, its name neither hashed nor compared. Any other spec (another
// policy's, the zero Spec) is an error matching teamgate.ErrInvalid, as is a code outside the
// vocabulary. A cell not computed yet is computed within budget (EvalWithin; 0: none), as a full
// evaluation of the request would be; an evaluation failure (an author's rule that errors,
// conflicts, or runs past the budget) is an *Error (callers deny) and is never stored, so a
// later call computes the cell again. A cell once computed is read without a lock or an
// allocation. The verdict is the cell's own, shared by every key of the cell: a read-only
// VerdictView. It reads *c only during the call.
//
// Listings ask it for project.get: Codes{Exists: true, OrgRole, Grant, BreakGlass, TeamRoles,
// Restricted}.
func (t *Table) VerdictOfCodes(ctx context.Context, spec Spec, c *Codes, budget time.Duration) (VerdictView, error) {
	if spec.a == nil {
		return VerdictView{}, teamgate.Invalid("action spec", "none", "not an action of the table's policy")
	}
	a := spec.a.index - 1
	if a < 0 || int(a) >= len(t.names) || &t.p.byName.specs[a] != spec.a {
		return VerdictView{}, teamgate.Invalid("action spec", string(spec.a.Kind)+" action", "not an action of the table's policy")
	}
	i, ok := t.codesIndex(spec.a.Kind, c)
	if !ok {
		return VerdictView{}, teamgate.Invalid("role codes", fmt.Sprintf("%+v", *c), fmt.Sprintf(
			"outside the vocabulary (org role 0 to %d, grant 0 to %d, team roles below %d)",
			numOrgRoles-1, numRoles-1, 1<<(numRoles-1)))
	}
	b := t.blocks[a].Load()
	if b != nil {
		if v := b[i].Load(); v != nil {
			return VerdictView{v}, nil
		}
	} else {
		t.blocks[a].CompareAndSwap(nil, new([blockLen]cell))
		b = t.blocks[a].Load()
	}
	// A cell not computed yet.
	v, err := t.eval(ctx, t.keyOf(t.names[a], spec.a.Kind, c), spec.a.Kind, budget)
	if err != nil {
		return VerdictView{}, err
	}
	if !b[i].CompareAndSwap(nil, v) {
		v = b[i].Load()
	}
	return VerdictView{v}, nil
}

// known reports whether c's codes are of the vocabulary (numOrgRoles, numRoles).
func (c *Codes) known() bool {
	return c.OrgRole < numOrgRoles && c.Grant < numRoles && c.TeamRoles < 1<<(numRoles-1)
}

// codesIndex is the index in its action's block of c's cell for an action of kind; false when a
// code is outside the vocabulary.
func (t *Table) codesIndex(kind scope.Kind, c *Codes) (int, bool) {
	if !c.Exists {
		return 0, true
	}
	if !c.known() {
		return 0, false
	}
	grant, teamRole, restricted, breakGlass := t.readFacts(kind, c.Grant, t.highest(c.TeamRoles), c.Restricted, c.BreakGlass)
	return packIndex(int(c.OrgRole), int(grant), int(teamRole), restricted, breakGlass), true
}

// readFacts is the package's readFacts for a table that merges cells, every fact for an exact one.
func (t *Table) readFacts(kind scope.Kind, grant, teamRole uint8, restricted, breakGlass bool) (uint8, uint8, bool, bool) {
	if t.exact {
		return grant, teamRole, restricted, breakGlass
	}
	return readFacts(kind, grant, teamRole, restricted, breakGlass)
}

// highest is the code of the highest role by data rank in set (bit i: role code i+1), 0 when
// none ranks above none.
func (t *Table) highest(set uint8) uint8 {
	var best uint8
	for set != 0 {
		c := uint8(bits.TrailingZeros8(set)) + 1
		if t.rank[c] > t.rank[best] {
			best = c
		}
		set &= set - 1
	}
	return best
}

// keyOf is the key of c's cell (codes of the vocabulary: codesIndex said so) for an action of
// kind: the facts the default rules read for the kind (readFacts), by name.
func (t *Table) keyOf(action string, kind scope.Kind, c *Codes) key {
	if !c.Exists {
		return key{Action: action}
	}
	grant, teamRole, restricted, breakGlass := t.readFacts(kind, c.Grant, t.highest(c.TeamRoles), c.Restricted, c.BreakGlass)
	k := key{Action: action, Exists: true, OrgRole: "none", BreakGlass: breakGlass, Restricted: restricted}
	orgRoles, roles := teamgate.OrgRoles(), teamgate.MemberRoles()
	if c.OrgRole > 0 {
		k.OrgRole = string(orgRoles[c.OrgRole-1])
	}
	if grant > 0 {
		k.Grant = string(roles[grant-1])
	}
	if teamRole > 0 {
		k.TeamRole = string(roles[teamRole-1])
	}
	return k
}

// eval computes a cell: the policy's decision on the key's canonical input, within budget.
func (t *Table) eval(ctx context.Context, k key, kind scope.Kind, budget time.Duration) (*verdict, error) {
	in := k.canonical(kind)
	res, err := t.p.EvalWithin(ctx, &in, budget)
	if err != nil {
		return nil, err
	}
	v := &verdict{allow: res.Allow, role: res.Role, codes: make([]Code, len(res.Reasons)), limits: res.Limits,
		action: k.Action, policy: t.p.fingerprint}
	for i, r := range res.Reasons {
		if r.Code == CodeError {
			return nil, &Error{Op: "eval", Detail: r.Message}
		}
		v.codes[i] = r.Code
		if r.Message != "" {
			if v.msgs == nil {
				v.msgs = make([]string, len(res.Reasons))
			}
			v.msgs[i] = r.Message
		}
	}
	return v, nil
}

// readFacts returns, of an existing resource's facts beyond the org role (its roles as names or
// as codes, the zero value for none), those the default rules read for an action of kind, the
// others zero: no grant or project restriction outside projects, no team role for org actions or
// open projects, no break-glass mark without a grant.
func readFacts[R comparable](kind scope.Kind, grant, teamRole R, restricted, breakGlass bool) (R, R, bool, bool) {
	var none R
	switch kind {
	case scope.KindOrg:
		return none, none, false, false
	case scope.KindTeam:
		return none, teamRole, false, false
	}
	breakGlass = breakGlass && grant != none
	if !restricted {
		return grant, none, false, breakGlass
	}
	return grant, teamRole, true, breakGlass
}

// canonical is an input with the key's facts and placeholder names: every key path (keyPath)
// holds the key's fact, whatever the kind — the subject's team role too (Input.value derives it
// from the team "t", which a project's teams hold whenever the subject has a role there or the
// project restricts).
func (k key) canonical(kind scope.Kind) Input {
	in := Input{
		Subject:  Subject{ID: "subject", OrgRole: k.OrgRole, Grant: k.Grant, BreakGlass: k.BreakGlass, TeamRoles: map[string]string{}},
		Action:   k.Action,
		Resource: Resource{Kind: kind, Org: "o", Exists: k.Exists, Teams: []string{}, Restricted: k.Restricted},
	}
	if k.TeamRole != "" {
		in.Subject.TeamRoles["t"] = k.TeamRole
	}
	switch kind {
	case scope.KindTeam:
		in.Resource.Team = "t"
	case scope.KindProject:
		in.Resource.Project = "p"
		if k.Restricted || k.TeamRole != "" {
			in.Resource.Teams = []string{"t"}
		}
	}
	return in
}

// Rank returns a project or team role's rank in the policy's data (data.teamgate.ranks).
func (p *Policy) Rank(role string) (int, bool) {
	r, ok := p.ranks[role]
	return r, ok
}

// HighestRole returns the highest role by data rank of role(t) for t in teams ("" when the
// subject is in none of them): the team role a project decision reads, from the subject's team roles (role
// looks one up) and the project's effective teams.
func (p *Policy) HighestRole(role func(team string) (string, bool), teams []string) string {
	best := ""
	for _, t := range teams {
		if r, ok := role(t); ok {
			best = p.higher(best, r)
		}
	}
	return best
}

// higher returns r when it ranks above best (a role or "" for none), else best.
func (p *Policy) higher(best, r string) string {
	if p.rankOf(r) > p.rankOf(best) {
		return r
	}
	return best
}

// rankOf is Rank without a map lookup for the vocabulary's roles (0 for unranked roles).
func (p *Policy) rankOf(role string) int {
	if p.table != nil {
		if i := roleIndex(role); i >= 0 {
			return p.table.rank[i]
		}
	}
	return p.ranks[role]
}

// readRanks reads data.teamgate.ranks: role → rank, "none" ranked 0, every other role a
// distinct positive integer (a role's name is found from its rank).
func (p *Policy) readRanks() error {
	tg, _ := p.data["teamgate"].(map[string]any)
	raw, ok := tg["ranks"].(map[string]any)
	if !ok {
		return &Error{Op: "load data", Detail: fmt.Sprintf("teamgate.ranks: want an object of role ranks, got %T", tg["ranks"])}
	}
	ranks := make(map[string]int, len(raw))
	byRank := map[int]string{}
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	sort.Strings(names) // deterministic errors
	for _, name := range names {
		f, ok := number(raw[name])
		if !ok || f != math.Trunc(f) || f < 0 || f > 1e6 {
			return &Error{Op: "load data", Detail: fmt.Sprintf("teamgate.ranks.%s: %v is not a whole number in [0, 1000000]", name, raw[name])}
		}
		n := int(f)
		if (name == "none") != (n == 0) {
			return &Error{Op: "load data", Detail: fmt.Sprintf("teamgate.ranks.%s: %d: none and only none ranks 0", name, n)}
		}
		if other, dup := byRank[n]; dup {
			return &Error{Op: "load data", Detail: fmt.Sprintf("teamgate.ranks.%s: rank %d is also %s's; ranks must differ", name, n, other)}
		}
		byRank[n] = name
		ranks[name] = n
	}
	if _, ok := ranks["none"]; !ok {
		return &Error{Op: "load data", Detail: "teamgate.ranks: none (rank 0) is missing"}
	}
	p.ranks = ranks
	return nil
}

// number reads a number of JSON data (float64) or of data given from Go.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}
