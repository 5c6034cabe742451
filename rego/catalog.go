package rego

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/scope"
)

// readData checks the merged data the default rules read and reads the action catalog from it
// (after readRanks). The rules never check their data, and a value they cannot use does not
// fail evaluation: an unranked role or a null org rank compares as something else and silently
// allows or denies. So every such value is refused here, naming its path:
//
//   - org_base maps every org role (teamgate.OrgRoles) to a role of ranks, and names nothing
//     else; org_override is a list of org roles; org_ranks gives every org role a whole number.
//   - Each action of teamgate.actions has a kind (org, team or project) and the fields of that
//     kind only: project actions a role, and optionally own_run_role and destination_role; team
//     actions a role or org_roles (one of the two); org actions org_roles; any action optionally
//     manages_members (not with own_run_role, which would allow it where the member-management
//     limit is not asked). Roles are roles of ranks, org roles are org roles; an unknown field is an
//     error (a misspelt destination_role would silently drop the destination check), and null
//     stands for an absent field (so merged data can remove one).
//   - An action of the default catalog keeps its kind: the engine itself asks project.get
//     (listings), runs.create and versions.create (admission), projects.create and
//     team.projects.create (CreateProject), org.runs and team.runs (bulk operations) with resources
//     of that kind.
//   - Nothing is under teamgate.authz: that is the default rules' package (data there made
//     rego.New panic, folding it into the module's own package path).
//   - Data under teamgate.ext (an extension written as data) holds deny and allow as lists or
//     objects of messages: `"deny": true` would otherwise be silently ignored.
func (p *Policy) readData() error {
	tg, _ := p.data["teamgate"].(map[string]any)
	ranked := func(path string, v any) (string, error) {
		s, ok := v.(string)
		if _, ranked := p.ranks[s]; !ok || !ranked {
			return "", dataError(path, v, "not a role of teamgate.ranks ("+strings.Join(sortedNames(p.ranks), ", ")+")")
		}
		return s, nil
	}
	for _, r := range teamgate.MemberRoles() {
		if _, ok := p.ranks[string(r)]; !ok {
			return dataError("teamgate.ranks."+string(r), nil, "every role a team member or grant may hold needs a rank")
		}
	}

	base, ok := tg["org_base"].(map[string]any)
	if !ok {
		return dataError("teamgate.org_base", tg["org_base"], "want an object mapping every org role to a project role")
	}
	for _, name := range sortedNames(base) {
		if !isOrgRole(name) {
			return dataError("teamgate.org_base."+name, base[name], "not an org role ("+orgRoleNames()+")")
		}
		if _, err := ranked("teamgate.org_base."+name, base[name]); err != nil {
			return err
		}
	}
	orgRanks, ok := tg["org_ranks"].(map[string]any)
	if !ok {
		return dataError("teamgate.org_ranks", tg["org_ranks"], "want an object ranking every org role")
	}
	for _, name := range sortedNames(orgRanks) {
		if !isOrgRole(name) {
			return dataError("teamgate.org_ranks."+name, orgRanks[name], "not an org role ("+orgRoleNames()+")")
		}
		if f, ok := number(orgRanks[name]); !ok || f != math.Trunc(f) || math.Abs(f) > 1e6 {
			return dataError("teamgate.org_ranks."+name, orgRanks[name], "not a whole number in [-1000000, 1000000]")
		}
	}
	for _, r := range teamgate.OrgRoles() {
		if _, ok := base[string(r)]; !ok {
			return dataError("teamgate.org_base."+string(r), nil, "every org role needs a project role")
		}
		if _, ok := orgRanks[string(r)]; !ok {
			return dataError("teamgate.org_ranks."+string(r), nil, "every org role needs a rank")
		}
	}
	if _, err := orgRoleList("teamgate.org_override", tg["org_override"]); err != nil {
		return err
	}

	if v, present := tg["authz"]; present {
		// The default rules' own package: data there would collide with (or, folded, rewrite)
		// the rules themselves.
		return dataError("teamgate.authz", v, "the default rules' package: data may not define it")
	}
	if ext, present := tg["ext"]; present {
		m, ok := ext.(map[string]any)
		if !ok {
			return dataError("teamgate.ext", ext, "want an object (with deny and allow lists of messages)")
		}
		for _, k := range []string{"deny", "allow"} {
			switch v := m[k].(type) {
			case nil, []any, map[string]any:
			default:
				return dataError("teamgate.ext."+k, v, "want a list (or object) of messages; `true` would be ignored")
			}
		}
	}

	raw, ok := tg["actions"].(map[string]any)
	if !ok {
		return dataError("teamgate.actions", tg["actions"], "want an object: action → {kind, role or org_roles, ...}")
	}
	defaults, _ := DefaultData()["teamgate"].(map[string]any)["actions"].(map[string]any)
	actions := make(map[string]ActionSpec, len(raw))
	for i, name := range sortedNames(raw) {
		a, err := p.readAction("teamgate.actions."+name, raw[name], ranked)
		if err != nil {
			return err
		}
		if d, ok := defaults[name].(map[string]any); ok && string(a.Kind) != d["kind"] {
			return dataError("teamgate.actions."+name+".kind", string(a.Kind),
				fmt.Sprintf("a default action keeps its kind %v (the engine asks it with resources of that kind); add an action instead", d["kind"]))
		}
		a.index = int32(i) + 1
		actions[name] = a
	}
	p.actions = actions
	p.byName = newActionIndex(actions)
	return nil
}

// actionIndex finds a catalog entry by name (Policy.Action, on every request) with a hash of a
// few of the name's bytes into a small open-addressing table, then one full comparison: cheaper
// than a map's hash of the whole name. A lookup probes at most every slot once.
type actionIndex struct {
	slots []int32      // 1 + the action's index in specs; 0 for an empty slot; len a power of two
	shift uint         // 32 - log2(len(slots))
	specs []ActionSpec // by ActionSpec.index - 1
	names []string     // by ActionSpec.index - 1
}

func newActionIndex(actions map[string]ActionSpec) actionIndex {
	x := actionIndex{specs: make([]ActionSpec, len(actions)), names: make([]string, len(actions))}
	for name, a := range actions {
		x.specs[a.index-1], x.names[a.index-1] = a, name
	}
	size := 8
	x.shift = 29
	for size < 4*len(actions) {
		size, x.shift = size*2, x.shift-1
	}
	x.slots = make([]int32, size)
	for i, name := range x.names {
		j := x.home(name)
		for x.slots[j] != 0 {
			j = (j + 1) & uint(size-1)
		}
		x.slots[j] = int32(i) + 1
	}
	return x
}

// actionHash mixes a name's length and three of its bytes: the catalog's names differ there.
func actionHash(s string) uint {
	n := len(s)
	if n == 0 {
		return 0
	}
	return uint((uint32(n) | uint32(s[n-1])<<8 | uint32(s[n/2])<<16 | uint32(s[n/4])<<24) * 0x9e3779b1)
}

// home is name's first slot: the hash's top bits, the product's best mixed.
func (x *actionIndex) home(name string) uint { return actionHash(name) >> x.shift }

func (x *actionIndex) find(name string) (*ActionSpec, bool) {
	mask := uint(len(x.slots) - 1)
	j := x.home(name) & mask
	for range x.slots {
		i := x.slots[j]
		if i == 0 {
			break
		}
		if x.names[i-1] == name {
			return &x.specs[i-1], true
		}
		j = (j + 1) & mask
	}
	return nil, false
}

// readAction reads one catalog entry (see readData).
func (p *Policy) readAction(path string, v any, ranked func(string, any) (string, error)) (ActionSpec, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return ActionSpec{}, dataError(path, v, "want an object {kind, role or org_roles, ...}")
	}
	fields := map[scope.Kind][]string{
		scope.KindProject: {"kind", "role", "own_run_role", "destination_role", "manages_members"},
		scope.KindTeam:    {"kind", "role", "org_roles", "manages_members"},
		scope.KindOrg:     {"kind", "org_roles", "manages_members"},
	}
	var a ActionSpec
	switch k, _ := m["kind"].(string); scope.Kind(k) {
	case scope.KindOrg, scope.KindTeam, scope.KindProject:
		a.Kind = scope.Kind(k)
	default:
		return ActionSpec{}, dataError(path+".kind", m["kind"], "kind is not org, team or project")
	}
	for _, f := range sortedNames(m) {
		if m[f] != nil && !slices.Contains(fields[a.Kind], f) {
			return ActionSpec{}, dataError(path+"."+f, m[f], "not a field of a "+string(a.Kind)+" action ("+strings.Join(fields[a.Kind], ", ")+")")
		}
	}
	var err error
	for f, dst := range map[string]*string{"role": &a.Role, "own_run_role": &a.OwnRunRole, "destination_role": &a.DestinationRole} {
		if m[f] != nil {
			if *dst, err = ranked(path+"."+f, m[f]); err != nil {
				return ActionSpec{}, err
			}
		}
	}
	if m["org_roles"] != nil {
		if a.OrgRoles, err = orgRoleList(path+".org_roles", m["org_roles"]); err != nil {
			return ActionSpec{}, err
		}
	}
	if mm := m["manages_members"]; mm != nil {
		b, ok := mm.(bool)
		if !ok {
			return ActionSpec{}, dataError(path+".manages_members", mm, "not a boolean")
		}
		a.ManagesMembers = b
	}
	switch {
	case a.Kind == scope.KindProject && a.Role == "":
		return ActionSpec{}, dataError(path+".role", nil, "a project action needs the least project role")
	case a.Kind == scope.KindTeam && (a.Role == "") == (m["org_roles"] == nil):
		return ActionSpec{}, dataError(path, v, "a team action has either a least team role (role) or the org roles that decide it (org_roles), not both (null removes one)")
	case a.Kind == scope.KindOrg && m["org_roles"] == nil:
		return ActionSpec{}, dataError(path+".org_roles", nil, "an org action needs the org roles it allows")
	case a.ManagesMembers && a.OwnRunRole != "":
		// own_run allows below the action's role, where the member-management limit (which
		// judges a role that suffices for the action) is never asked: it would give roles above
		// the subject's own.
		return ActionSpec{}, dataError(path+".own_run_role", m["own_run_role"], "an action that manages members is not allowed by owning a run (null removes one)")
	}
	if a.OrgRoles == nil && m["org_roles"] != nil {
		a.OrgRoles = []string{}
	}
	return a, nil
}

// orgRoleList reads a list of org roles.
func orgRoleList(path string, v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, dataError(path, v, "want a list of org roles")
	}
	out := make([]string, 0, len(list))
	for i, x := range list {
		s, _ := x.(string)
		if !isOrgRole(s) {
			return nil, dataError(fmt.Sprintf("%s[%d]", path, i), x, "not an org role ("+orgRoleNames()+")")
		}
		out = append(out, s)
	}
	return out, nil
}

func isOrgRole(s string) bool { return slices.Contains(teamgate.OrgRoles(), teamgate.OrgRole(s)) }

func orgRoleNames() string {
	var names []string
	for _, r := range teamgate.OrgRoles() {
		names = append(names, string(r))
	}
	return strings.Join(names, ", ")
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// dataError is an *Error naming the path of a bad value in the merged data.
func dataError(path string, v any, why string) error {
	shown := "missing"
	if v != nil {
		text := fmt.Sprint(v)
		if len(text) > 64 { // data may be big: the path says where, a prefix what
			text = strings.ToValidUTF8(text[:64], "") + "…"
		}
		shown = strconv.Quote(text)
	}
	return &Error{Op: "load data", Detail: path + ": " + shown + ": " + why}
}
