package rego

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/scope"
)

// Key is everything the default rules' decision on a request without attributes reads: the
// action, whether the resource exists, and the subject's role facts. Two requests with the same
// Key get the same allow, role and reason codes from any policy made of the default modules,
// whatever its data (the rules read nothing else; an exhaustive test checks it), so one
// evaluation of a canonical input with that Key answers for all of them.
type Key struct {
	Action  string
	Exists  bool
	OrgRole string // "none" for non-members
	Grant   string // the grant role on the project; "" for none
	// BreakGlass: the grant is a break-glass elevation (Subject.BreakGlass).
	BreakGlass bool
	// TeamRole is, for a project action, the subject's highest role by data rank among the
	// project's effective teams (Policy.HighestRole); for a team action, its role in the team.
	// "" for none.
	TeamRole   string
	Restricted bool // the project's effective teams restrict
}

// Verdict is a table cell: a decision without its messages, which the engine renders from the
// request's own facts and the limits the reasons name.
type Verdict struct {
	Allow bool
	Role  string
	Codes []Code // do not modify: cells are shared
	// Limits is Result.Limits: the limit each reason names, by index; nil when none does (as on
	// every key of the default rules, which read no attributes). Do not modify; read it with
	// LimitOf.
	Limits []Limit
}

// LimitOf returns the limit reason i names, the zero Limit when it names none.
func (v *Verdict) LimitOf(i int) Limit { return limitOf(v.Limits, i) }

// View is a read-only handle on v.
func (v *Verdict) View() VerdictView { return VerdictView{v} }

// VerdictView is a read-only handle on a Verdict: what Table.VerdictOfCodes returns, since its
// verdict is the cell's own, shared by every key of the cell and every later decision (a
// writable *Verdict would let any holder turn a deny into an allow for everyone). The zero
// VerdictView must not be read.
type VerdictView struct{ v *Verdict }

// Allow is the verdict's Allow.
func (r VerdictView) Allow() bool { return r.v.Allow }

// Role is the verdict's Role.
func (r VerdictView) Role() string { return r.v.Role }

// Codes is the verdict's Codes, shared with the cell: do not modify.
func (r VerdictView) Codes() []Code { return r.v.Codes }

// LimitOf is the verdict's LimitOf.
func (r VerdictView) LimitOf(i int) Limit { return r.v.LimitOf(i) }

// Verdict returns a copy of the verdict (its slices still shared: do not modify them).
func (r VerdictView) Verdict() Verdict { return *r.v }

// Table is the decision table of a policy made of the default modules (with any data): the one
// Go-side summary of the Rego rules. Each cell is computed on first use by evaluating the
// policy on a canonical input with the cell's Key, then read lock-free; it is the policy's own
// answer, not a re-implementation. A Table is safe for concurrent use.
//
// Keys whose roles are the store's vocabulary (teamgate.OrgRole, teamgate.ProjectRole) pack into
// an index of a flat array per action, so a lookup hashes no string but the action's name; any
// other Key (a role only an author's data names) goes to a map.
type Table struct {
	p      *Policy
	names  []string                         // action names by index in blocks (ActionSpec.index - 1)
	blocks []atomic.Pointer[[blockLen]cell] // by action index, allocated on the action's first use
	rank   [numRoles]int                    // data rank of each vocabulary project role
	others sync.Map                         // Key (normalized) outside the vocabulary → Verdict
}

// cell is one Verdict, nil until computed.
type cell = atomic.Pointer[Verdict]

// The role vocabulary of packed keys (orgRoleIndex, roleIndex): the store's roles, index 0
// standing for none. Switches rather than tables: no package-level mutable state.
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

func newTable(p *Policy) *Table {
	t := &Table{p: p, names: make([]string, len(p.actions))}
	for name, spec := range p.actions {
		t.names[spec.index-1] = name
	}
	t.blocks = make([]atomic.Pointer[[blockLen]cell], len(t.names))
	for _, r := range teamgate.MemberRoles() {
		t.rank[roleIndex(string(r))] = p.ranks[string(r)]
	}
	return t
}

// Table returns the policy's decision table, or nil when authors' modules are loaded (their
// rules may read any fact, so only full evaluation applies) or data defines teamgate.ext (a
// cell keeps reason codes, not the extension's messages).
func (p *Policy) Table() *Table { return p.table }

// Verdict returns the policy's verdict for k. An action outside the catalog is an error
// matching teamgate.ErrInvalid; an evaluation failure is an *Error (callers deny) and is never
// stored. A cell once computed is read without a lock or an allocation.
//
// Listings ask it for project.get: Key{Action: "project.get", Exists: true, OrgRole, Grant,
// TeamRole, Restricted}.
func (t *Table) Verdict(ctx context.Context, k Key) (Verdict, error) {
	spec, ok := t.p.actions[k.Action]
	if !ok {
		return Verdict{}, teamgate.Invalid("action", k.Action, "not in the action catalog")
	}
	return t.verdict(ctx, spec.index-1, spec.Kind, &k)
}

// VerdictOf is Verdict for a key whose action's spec is at hand, as the policy's Spec returned
// it: the action's cells are found from the spec, without hashing the action's name. A spec that
// is not this table's policy's own entry for k.Action (another policy's, the zero Spec) is
// looked up by name, as Verdict does: the cells, shared by every caller, are only ever computed
// for the kind the policy's own catalog gives. It reads *k only during the call (a pointer: the
// decision path passes it without a copy).
func (t *Table) VerdictOf(ctx context.Context, spec Spec, k *Key) (Verdict, error) {
	if spec.a == nil {
		return t.Verdict(ctx, *k)
	}
	a := spec.a.index - 1
	if a < 0 || int(a) >= len(t.names) || &t.p.byName.specs[a] != spec.a || t.names[a] != k.Action {
		return t.Verdict(ctx, *k)
	}
	if i, ok := k.cellIndex(spec.a.Kind); ok { // the usual case, without copying the key
		if b := t.blocks[a].Load(); b != nil {
			if v := b[i].Load(); v != nil {
				return *v, nil
			}
		}
	}
	return t.verdict(ctx, a, spec.a.Kind, k)
}

// verdict is Verdict for the action at index a, of the given kind.
func (t *Table) verdict(ctx context.Context, a int32, kind scope.Kind, key *Key) (Verdict, error) {
	k := key.normalize(kind)
	c := t.cell(a, kind, &k)
	if c != nil {
		if v := c.Load(); v != nil {
			return *v, nil
		}
	} else if v, ok := t.others.Load(k); ok {
		return v.(Verdict), nil
	}
	v, err := t.eval(ctx, k, kind)
	if err != nil {
		return Verdict{}, err
	}
	if c == nil {
		got, _ := t.others.LoadOrStore(k, v)
		return got.(Verdict), nil
	}
	if !c.CompareAndSwap(nil, &v) {
		return *c.Load(), nil
	}
	return v, nil
}

// cell returns the cell of k for action a of kind, nil outside the vocabulary.
func (t *Table) cell(a int32, kind scope.Kind, k *Key) *cell {
	i, ok := k.cellIndex(kind)
	if !ok {
		return nil
	}
	b := t.blocks[a].Load()
	if b == nil {
		t.blocks[a].CompareAndSwap(nil, new([blockLen]cell))
		b = t.blocks[a].Load()
	}
	return &b[i]
}

// cellIndex is the index in its action's block of the cell of k's normalized key (see
// normalize) for an action of kind; false when a role is outside the vocabulary.
func (k *Key) cellIndex(kind scope.Kind) (int, bool) {
	if !k.Exists {
		return 0, true
	}
	grant, teamRole, restricted, breakGlass := k.read(kind)
	o, g, tr := orgRoleIndex(k.OrgRole), roleIndex(grant), roleIndex(teamRole)
	if o < 0 || g < 0 || tr < 0 {
		return 0, false
	}
	return packIndex(o, g, tr, restricted, breakGlass), true
}

// packIndex is the index in an action's block of an existing resource's cell, from the read
// facts (readFacts) with the roles as their indices (orgRoleIndex, roleIndex).
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

// Codes is a Key whose roles are given as codes of the store's vocabulary, as store.Access
// serves them: an org role's code is 1 + its index in teamgate.OrgRoles(), a grant's 1 + its
// index in teamgate.MemberRoles(), 0 for none (a non-member; no grant); TeamRoles has bit i set
// for each teamgate.MemberRoles()[i] the subject holds (store.RoleSet), and the Key's TeamRole is
// the highest of them by data rank (Policy.HighestOf). A code is the role's packed index
// (orgRoleIndex, roleIndex), so Codes finds its cell without reading a string
// (Table.VerdictOfCodes).
type Codes struct {
	Exists     bool
	OrgRole    uint8
	Grant      uint8
	BreakGlass bool
	TeamRoles  uint8
	Restricted bool
}

// VerdictOfCodes is VerdictOf for the key c stands for, on the action of spec, which must be
// an entry of this table's policy's own catalog (its Spec): the action is found from the spec
// alone, its name neither hashed nor compared. Any other spec (another policy's, the zero Spec)
// is an error matching teamgate.ErrInvalid, as is a code outside the vocabulary. The verdict is
// the cell's own, shared by every key of the cell: a read-only VerdictView. It reads *c only
// during the call.
func (t *Table) VerdictOfCodes(ctx context.Context, spec Spec, c *Codes) (VerdictView, error) {
	if spec.a == nil {
		return VerdictView{}, teamgate.Invalid("action spec", "none", "not an action of the table's policy")
	}
	a := spec.a.index - 1
	if a < 0 || int(a) >= len(t.names) || &t.p.byName.specs[a] != spec.a {
		return VerdictView{}, teamgate.Invalid("action spec", string(spec.a.Kind)+" action", "not an action of the table's policy")
	}
	if i, ok := t.codesIndex(spec.a.Kind, c); ok {
		if b := t.blocks[a].Load(); b != nil {
			if v := b[i].Load(); v != nil {
				return VerdictView{v}, nil
			}
		}
	}
	k, err := t.keyOf(t.names[a], c) // a cell not computed yet
	if err != nil {
		return VerdictView{}, err
	}
	v, err := t.verdict(ctx, a, spec.a.Kind, &k)
	if err != nil {
		return VerdictView{}, err
	}
	return VerdictView{&v}, nil
}

// known reports whether c's codes are of the vocabulary (numOrgRoles, numRoles).
func (c *Codes) known() bool {
	return c.OrgRole < numOrgRoles && c.Grant < numRoles && c.TeamRoles < 1<<(numRoles-1)
}

// codesIndex is cellIndex for the key c stands for; false when a code is outside the vocabulary.
func (t *Table) codesIndex(kind scope.Kind, c *Codes) (int, bool) {
	if !c.Exists {
		return 0, true
	}
	if !c.known() {
		return 0, false
	}
	grant, teamRole, restricted, breakGlass := readFacts(kind, c.Grant, t.highest(c.TeamRoles), c.Restricted, c.BreakGlass)
	return packIndex(int(c.OrgRole), int(grant), int(teamRole), restricted, breakGlass), true
}

// highest is the code of the highest role by data rank in set (bit i: role code i+1), 0 when
// none ranks above none: Policy.higher on codes.
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

// keyOf is the Key c stands for; an error matching teamgate.ErrInvalid for a code outside the
// vocabulary.
func (t *Table) keyOf(action string, c *Codes) (Key, error) {
	k := Key{Action: action, Exists: c.Exists, OrgRole: "none", BreakGlass: c.BreakGlass, Restricted: c.Restricted}
	if !c.Exists {
		return k, nil
	}
	if !c.known() {
		return Key{}, teamgate.Invalid("role codes", fmt.Sprintf("%+v", *c), fmt.Sprintf(
			"outside the vocabulary (org role 0 to %d, grant 0 to %d, team roles below %d)",
			numOrgRoles-1, numRoles-1, 1<<(numRoles-1)))
	}
	orgRoles, roles := teamgate.OrgRoles(), teamgate.MemberRoles()
	if c.OrgRole > 0 {
		k.OrgRole = string(orgRoles[c.OrgRole-1])
	}
	if c.Grant > 0 {
		k.Grant = string(roles[c.Grant-1])
	}
	if tr := t.highest(c.TeamRoles); tr > 0 {
		k.TeamRole = string(roles[tr-1])
	}
	return k, nil
}

// eval computes a cell: the policy's decision on the key's canonical input.
func (t *Table) eval(ctx context.Context, k Key, kind scope.Kind) (Verdict, error) {
	in := k.canonical(kind)
	res, err := t.p.Eval(ctx, &in)
	if err != nil {
		return Verdict{}, err
	}
	v := Verdict{Allow: res.Allow, Role: res.Role, Codes: make([]Code, len(res.Reasons)), Limits: res.Limits}
	for i, r := range res.Reasons {
		if r.Code == CodeError {
			return Verdict{}, &Error{Op: "eval", Detail: r.Message}
		}
		v.Codes[i] = r.Code
	}
	return v, nil
}

// normalize drops the facts the default rules do not read for the action's kind (see read), so
// equal decisions share a cell.
func (k Key) normalize(kind scope.Kind) Key {
	if !k.Exists {
		return Key{Action: k.Action}
	}
	k.Grant, k.TeamRole, k.Restricted, k.BreakGlass = k.read(kind)
	return k
}

// read returns the facts of an existing resource's key, beyond the org role, that the default
// rules read for an action of kind (readFacts).
func (k *Key) read(kind scope.Kind) (grant, teamRole string, restricted, breakGlass bool) {
	return readFacts(kind, k.Grant, k.TeamRole, k.Restricted, k.BreakGlass)
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

// canonical is an input with the key's facts and placeholder names.
func (k Key) canonical(kind scope.Kind) Input {
	in := Input{
		Subject:  Subject{ID: "subject", OrgRole: k.OrgRole, Grant: k.Grant, BreakGlass: k.BreakGlass, TeamRoles: map[string]string{}},
		Action:   k.Action,
		Resource: Resource{Kind: kind, Org: "o", Exists: k.Exists, Teams: []string{}},
	}
	if k.TeamRole != "" {
		in.Subject.TeamRoles["t"] = k.TeamRole
	}
	switch kind {
	case scope.KindTeam:
		in.Resource.Team = "t"
	case scope.KindProject:
		in.Resource.Project = "p"
		in.Resource.Restricted = k.Restricted
		if k.Restricted {
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
// subject is in none of them): a project's Key.TeamRole, from the subject's team roles (role
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

// HighestOf returns the highest role by data rank among roles ("" when none ranks above none):
// Key.TeamRole from the roles a subject holds in a project's effective teams (or in a team).
func (p *Policy) HighestOf(roles []string) string {
	best := ""
	for _, r := range roles {
		best = p.higher(best, r)
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
