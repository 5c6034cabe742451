package rego

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/plainjson"
	"github.com/teamgate/teamgate/scope"
)

// Input is the document the policy reads as `input` (README.md beside this file): the facts
// of one request, read by the engine from its store. It is the one definition of that document;
// the policy turns it into OPA's AST without a JSON round trip. Its JSON form is the document,
// less subject.team_role, which Policy.Eval derives from it and the policy's ranks.
type Input struct {
	Subject    Subject    `json:"subject"`
	Action     string     `json:"action"`
	Resource   Resource   `json:"resource"`
	Attributes Attributes `json:"attributes"`
	// Destination is the runs.transfer destination's facts, nil when the request names none.
	Destination *Destination `json:"destination,omitempty"`
}

// Subject is who asks, with their roles in the resource's org.
type Subject struct {
	ID      string `json:"id"`
	OrgRole string `json:"org_role"` // "none" for non-members
	Grant   string `json:"grant"`    // grant role on the project; "" for none
	// BreakGlass is set when the grant is a break-glass elevation (store.Grant.BreakGlass).
	BreakGlass bool              `json:"break_glass"`
	TeamRoles  map[string]string `json:"team_roles"` // team → role, every team of the org
}

// MarshalJSON writes the subject as the policy reads it: team_roles is {} when there are none.
func (s Subject) MarshalJSON() ([]byte, error) {
	type plain Subject // without this method
	if s.TeamRoles == nil {
		s.TeamRoles = map[string]string{}
	}
	return plainjson.Marshal(plain(s))
}

// Resource is what the request is about. Project resources fill every field; org and team
// resources leave Project, Teams and Restricted empty.
type Resource struct {
	Kind       scope.Kind `json:"kind"`
	Org        string     `json:"org"`
	Team       string     `json:"team"` // the team of a team resource or team-space reference
	Project    string     `json:"project"`
	Teams      []string   `json:"teams"`      // the project's effective teams
	Restricted bool       `json:"restricted"` // the effective teams restrict, even when empty
	Exists     bool       `json:"exists"`
	Missing    string     `json:"missing"` // what does not exist, when !Exists
	// Labels are the project's labels (SPEC §2); empty for org and team resources and for a
	// project that does not exist. The default rules never read them, so the decision table
	// does not key on them (an author's module that reads them turns the table off).
	Labels map[string]string `json:"labels"`
}

// MarshalJSON writes the resource as the policy reads it: teams is [] and labels {} when there
// are none.
func (r Resource) MarshalJSON() ([]byte, error) {
	type plain Resource // without this method
	if r.Teams == nil {
		r.Teams = []string{}
	}
	if r.Labels == nil {
		r.Labels = map[string]string{}
	}
	return plainjson.Marshal(plain(r))
}

// Destination is the runs.transfer destination: the subject's facts in the destination's org
// and the destination project's facts, in the shape of Input's own subject and resource, so the
// policy's role rule applies to it unchanged (`with input.subject as input.destination.subject
// with input.resource as input.destination.resource`).
type Destination struct {
	Subject  Subject  `json:"subject"`
	Resource Resource `json:"resource"`
}

// Limits of the attributes document: deeper or larger attributes are rejected with
// teamgate.ErrInvalid, so no request can exhaust the stack or memory (a self-referencing map is
// rejected at MaxAttributeDepth).
const (
	MaxAttributeDepth  = 32     // nesting levels of maps and lists
	MaxAttributeValues = 10_000 // values in all (map entries and list elements count one each)
	MaxAttributeBytes  = 1 << 20
)

// Attributes are a request's attributes, converted once and checked against the limits. The
// zero Attributes is the empty document.
type Attributes struct {
	raw map[string]any
	v   ast.Value
}

// NewAttributes converts a request's attributes: maps with string keys, lists, strings,
// numbers (finite; a json.Number must hold JSON number text), booleans and null, nested at most
// MaxAttributeDepth deep, at most MaxAttributeValues values and MaxAttributeBytes bytes of
// strings and keys. Anything else is an error matching
// teamgate.ErrInvalid naming the offending path.
func NewAttributes(m map[string]any) (Attributes, error) {
	if len(m) == 0 {
		return Attributes{}, nil
	}
	c := converter{}
	v, err := c.value(reflect.ValueOf(m), "attributes", 0)
	if err != nil {
		return Attributes{}, err
	}
	return Attributes{raw: m, v: v}, nil
}

// Map returns the attributes as given (nil when empty). Do not modify it.
func (a Attributes) Map() map[string]any { return a.raw }

// JSON returns a copy of the attributes as the policy reads them — maps, lists, strings,
// json.Number, booleans and nil — made from the value NewAttributes converted by kind, so no
// method of the caller's types is called (a value's MarshalJSON may say something else, or
// panic); nil when empty.
func (a Attributes) JSON() (map[string]any, error) {
	if a.v == nil {
		return nil, nil
	}
	doc, err := ast.JSON(a.v)
	if err != nil {
		return nil, err
	}
	m, _ := doc.(map[string]any)
	return m, nil
}

// Len is the number of top-level attributes.
func (a Attributes) Len() int { return len(a.raw) }

// MarshalJSON writes the attributes document ({} when empty).
func (a Attributes) MarshalJSON() ([]byte, error) {
	if a.raw == nil {
		return []byte("{}"), nil
	}
	return plainjson.Marshal(a.raw)
}

type converter struct {
	values, bytes int
}

func (c *converter) count(path string, bytes int) error {
	c.values++
	c.bytes += bytes
	if c.values > MaxAttributeValues {
		return teamgate.Invalid("attributes", path, fmt.Sprintf("hold more than %d values", MaxAttributeValues))
	}
	if c.bytes > MaxAttributeBytes {
		return teamgate.Invalid("attributes", path, fmt.Sprintf("hold more than %d bytes of text", MaxAttributeBytes))
	}
	return nil
}

func (c *converter) value(v reflect.Value, path string, depth int) (ast.Value, error) {
	if depth > MaxAttributeDepth {
		return nil, teamgate.Invalid("attributes", path, fmt.Sprintf("nest deeper than %d levels (a self-referencing value?)", MaxAttributeDepth))
	}
	for v.IsValid() && (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) {
		if v.IsNil() {
			return ast.Null{}, c.count(path, 0)
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		return ast.Null{}, c.count(path, 0)
	}
	if n, ok := v.Interface().(json.Number); ok {
		if err := c.count(path, len(n)); err != nil {
			return nil, err
		}
		// OPA takes an ast.Number's text as a JSON number and panics comparing anything else
		// ("NaN", "0x10", "Inf" parse as floats but are not JSON).
		if _, err := strconv.ParseFloat(string(n), 64); err != nil || !isJSONNumber(string(n)) {
			return nil, teamgate.Invalid(path, string(n), "not a finite JSON number")
		}
		return ast.Number(n), nil
	}
	switch v.Kind() {
	case reflect.String:
		return ast.String(v.String()), c.count(path, v.Len())
	case reflect.Bool:
		return ast.Boolean(v.Bool()), c.count(path, 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return ast.Number(strconv.FormatInt(v.Int(), 10)), c.count(path, 0)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return ast.Number(strconv.FormatUint(v.Uint(), 10)), c.count(path, 0)
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, teamgate.Invalid(path, fmt.Sprint(f), "not a finite number")
		}
		return ast.Number(strconv.FormatFloat(f, 'g', -1, 64)), c.count(path, 0)
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return nil, teamgate.Invalid(path, v.Type().String(), "map keys must be strings")
		}
		if err := c.count(path, 0); err != nil {
			return nil, err
		}
		obj := ast.NewObject()
		it := v.MapRange()
		for it.Next() {
			k := it.Key().String()
			if err := c.count(path, len(k)); err != nil {
				return nil, err
			}
			x, err := c.value(it.Value(), path+"."+k, depth+1)
			if err != nil {
				return nil, err
			}
			obj.Insert(ast.StringTerm(k), ast.NewTerm(x))
		}
		return obj, nil
	case reflect.Slice, reflect.Array:
		if err := c.count(path, 0); err != nil {
			return nil, err
		}
		n := v.Len()
		if n > MaxAttributeValues {
			return nil, teamgate.Invalid("attributes", path, fmt.Sprintf("hold more than %d values", MaxAttributeValues))
		}
		terms := make([]*ast.Term, n)
		for i := range n {
			x, err := c.value(v.Index(i), path+"["+strconv.Itoa(i)+"]", depth+1)
			if err != nil {
				return nil, err
			}
			terms[i] = ast.NewTerm(x)
		}
		return ast.NewArray(terms...), nil
	}
	return nil, teamgate.Invalid(path, v.Type().String(), "attributes hold maps, lists, strings, numbers, booleans and null only")
}

// isJSONNumber reports whether s is a number in JSON's grammar (RFC 8259 §6):
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(s string) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// Keys of the input document, allocated once.
var (
	keySubject     = ast.StringTerm("subject")
	keyAction      = ast.StringTerm("action")
	keyResource    = ast.StringTerm("resource")
	keyAttributes  = ast.StringTerm("attributes")
	keyDestination = ast.StringTerm("destination")
	keyID          = ast.StringTerm("id")
	keyOrgRole     = ast.StringTerm("org_role")
	keyGrant       = ast.StringTerm("grant")
	keyBreakGlass  = ast.StringTerm("break_glass")
	keyTeamRoles   = ast.StringTerm("team_roles")
	keyTeamRole    = ast.StringTerm("team_role")
	keyKind        = ast.StringTerm("kind")
	keyOrg         = ast.StringTerm("org")
	keyTeam        = ast.StringTerm("team")
	keyProject     = ast.StringTerm("project")
	keyTeams       = ast.StringTerm("teams")
	keyRestricted  = ast.StringTerm("restricted")
	keyExists      = ast.StringTerm("exists")
	keyMissing     = ast.StringTerm("missing")
	keyLabels      = ast.StringTerm("labels")
)

// value is the input as OPA's AST, with the facts the engine derives from it and the policy's
// data: each subject's team_role (see teamRole). Strings of the policy's vocabulary (roles,
// kinds, actions), booleans and empty collections are shared terms (Policy.term): OPA never
// modifies a term, and an evaluation that allocates less makes less work for the collector.
func (in *Input) value(p *Policy) ast.Value {
	attrs := ast.InternedEmptyObject
	if in.Attributes.v != nil {
		attrs = ast.NewTerm(in.Attributes.v)
	}
	subject, resource := in.Subject.term(p, p.teamRole(&in.Subject, &in.Resource), &p.reads), in.Resource.term(p, &p.reads)
	if d := in.Destination; d != nil {
		return ast.NewObject(
			ast.Item(keySubject, subject),
			ast.Item(keyAction, p.term(in.Action)),
			ast.Item(keyResource, resource),
			ast.Item(keyAttributes, attrs),
			ast.Item(keyDestination, ast.ObjectTerm(
				ast.Item(keySubject, d.Subject.term(p, p.teamRole(&d.Subject, &d.Resource), nil)),
				ast.Item(keyResource, d.Resource.term(p, nil)),
			)),
		)
	}
	return ast.NewObject(
		ast.Item(keySubject, subject),
		ast.Item(keyAction, p.term(in.Action)),
		ast.Item(keyResource, resource),
		ast.Item(keyAttributes, attrs),
	)
}

// teamRole is the subject's highest role by data rank among the resource's teams: a project's
// effective teams, a team resource's team; "none" when in none (input.subject.team_role).
func (p *Policy) teamRole(s *Subject, r *Resource) string {
	var role string
	switch r.Kind {
	case scope.KindProject:
		role = p.HighestRole(s.teamRole, r.Teams)
	case scope.KindTeam:
		if n := p.ranks[s.TeamRoles[r.Team]]; n > 0 {
			role = s.TeamRoles[r.Team]
		}
	}
	if role == "" {
		return "none"
	}
	return role
}

// teamRole looks up the subject's role in a team (Policy.HighestRole's lookup).
func (s *Subject) teamRole(team string) (string, bool) {
	r, ok := s.TeamRoles[team]
	return r, ok
}

func (s *Subject) term(p *Policy, teamRole string, rd *inputReads) *ast.Term {
	roles := ast.InternedEmptyObject
	if len(s.TeamRoles) > 0 && rd.has(keySubject, keyTeamRoles) {
		items := make([][2]*ast.Term, 0, len(s.TeamRoles))
		for k, v := range s.TeamRoles {
			items = append(items, ast.Item(ast.StringTerm(k), p.term(v)))
		}
		roles = ast.ObjectTerm(items...)
	}
	items := make([][2]*ast.Term, 0, 6)
	items = append(items,
		ast.Item(keyOrgRole, p.term(s.OrgRole)),
		ast.Item(keyGrant, p.term(s.Grant)),
		ast.Item(keyBreakGlass, ast.InternedTerm(s.BreakGlass)),
		ast.Item(keyTeamRole, p.term(teamRole)),
	)
	if rd.has(keySubject, keyTeamRoles) {
		items = append(items, ast.Item(keyTeamRoles, roles))
	}
	if rd.has(keySubject, keyID) {
		items = append(items, ast.Item(keyID, ast.StringTerm(s.ID)))
	}
	return ast.ObjectTerm(items...)
}

func (r *Resource) term(p *Policy, rd *inputReads) *ast.Term {
	teams := ast.InternedEmptyArray
	if len(r.Teams) > 0 && rd.has(keyResource, keyTeams) {
		ts := make([]*ast.Term, len(r.Teams))
		for i, t := range r.Teams {
			ts[i] = ast.StringTerm(t)
		}
		teams = ast.ArrayTerm(ts...)
	}
	labels := ast.InternedEmptyObject
	if len(r.Labels) > 0 && rd.has(keyResource, keyLabels) {
		items := make([][2]*ast.Term, 0, len(r.Labels))
		for k, v := range r.Labels {
			items = append(items, ast.Item(ast.StringTerm(k), ast.StringTerm(v)))
		}
		labels = ast.ObjectTerm(items...)
	}
	items := make([][2]*ast.Term, 0, 9)
	items = append(items,
		ast.Item(keyKind, p.term(string(r.Kind))),
		ast.Item(keyRestricted, ast.InternedTerm(r.Restricted)),
		ast.Item(keyExists, ast.InternedTerm(r.Exists)),
		ast.Item(keyMissing, p.term(r.Missing)),
	)
	if rd.has(keyResource, keyTeam) {
		items = append(items, ast.Item(keyTeam, p.term(r.Team)))
	}
	if rd.has(keyResource, keyTeams) {
		items = append(items, ast.Item(keyTeams, teams))
	}
	if rd.has(keyResource, keyOrg) {
		items = append(items, ast.Item(keyOrg, ast.StringTerm(r.Org)))
	}
	if rd.has(keyResource, keyProject) {
		items = append(items, ast.Item(keyProject, ast.StringTerm(r.Project)))
	}
	if rd.has(keyResource, keyLabels) {
		items = append(items, ast.Item(keyLabels, labels))
	}
	return ast.ObjectTerm(items...)
}

// inputReads is what a policy's modules can read of the input's subject and resource objects
// (a destination's are always passed whole). Input.value
// leaves out the rarely read fields (subject.id, resource.org, resource.project,
// resource.labels) that no module reads: OPA never sees the difference, since a module that
// reads a document as a whole (`r := input.resource`, `print(input)`, `walk(input)`,
// `input.resource[k]`) is taken to read every field of it. The default rules read neither org,
// project nor labels.
type inputReads struct {
	whole  map[*ast.Term]bool    // subject or resource read as a whole (every field)
	fields map[[2]*ast.Term]bool // (subject or resource, field) read by name
	all    bool                  // input itself read as a whole, or by a computed key
}

// has reports whether a module may read field of doc (keySubject or keyResource); a nil rd
// reads everything (a destination's facts are passed whole).
func (rd *inputReads) has(doc, field *ast.Term) bool {
	return rd == nil || rd.all || rd.whole[doc] || rd.fields[[2]*ast.Term{doc, field}]
}

// readsOf finds what the compiled modules read of the input: every reference rooted at input,
// in rule heads and bodies, function arguments, comprehensions and `with` values. A `with`
// target is not a read: it replaces the document for the expression, whose reads are counted
// where they are written (the rules `with input.subject as input.destination.subject` covers
// read input.subject's fields by name). A destination is always passed whole (every field of its
// subject and resource), so what is read of it does not matter.
//
// The same walk decides whether the authors' modules keep the policy's decision table: it
// returns, for the first reference or `with` of an author's module that may read more than the
// table's key (tableBlocker, README.md "The decision table"), where and why ("" when none does).
func readsOf(mods map[string]*ast.Module) (inputReads, string) {
	rd := inputReads{whole: map[*ast.Term]bool{}, fields: map[[2]*ast.Term]bool{}}
	docs := []*ast.Term{keySubject, keyResource, keyDestination}
	canon := func(t *ast.Term) *ast.Term {
		for _, d := range docs {
			if d.Equal(t) {
				return d
			}
		}
		return nil
	}
	var vis *ast.GenericVisitor
	author := false    // walking an author's module
	dropsRole := false // an author's `with` replaces input or input.subject (see below)
	noTable := ""      // why an author's module keeps the policy from a table
	block := func(loc *ast.Location, why string) {
		if noTable == "" {
			noTable = why
			if loc != nil {
				noTable = fmt.Sprintf("%s:%d: %s", loc.File, loc.Row, why)
			}
		}
	}
	vis = ast.NewGenericVisitor(func(x any) bool {
		switch x := x.(type) {
		case *ast.With:
			if author {
				// The expression's rules run on another input or data: nothing the key proves.
				block(x.Location, "replaces "+x.Target.String()+" with `with`")
			}
			if t, ok := x.Target.Value.(ast.Ref); ok && author && t[0].Equal(ast.InputRootDocument) &&
				(len(t) == 1 || len(t) == 2 && keySubject.Equal(t[1])) {
				dropsRole = true
			}
			vis.Walk(x.Value)
			return true
		case ast.Ref:
			if author {
				if why := tableBlocker(x); why != "" {
					block(x[0].Location, why)
				}
			}
			if !x[0].Equal(ast.InputRootDocument) {
				return false
			}
			if len(x) == 1 {
				rd.all = true
				return false
			}
			if _, ok := x[1].Value.(ast.String); !ok {
				rd.all = true
				return false
			}
			doc := canon(x[1])
			switch {
			case doc == nil || doc == keyDestination: // always passed whole
			case len(x) == 2:
				rd.whole[doc] = true
			default:
				if _, ok := x[2].Value.(ast.String); !ok {
					rd.whole[doc] = true
				} else {
					rd.fields[[2]*ast.Term{doc, canonField(x[2])}] = true
				}
			}
		}
		return false
	})
	var fallback *ast.Rule
	for name, m := range mods {
		if name != DefaultModules()[0].Name {
			author = true
			vis.Walk(m)
			author = false
			continue
		}
		for _, r := range m.Rules {
			if r.Head.Name != teamRoleRule {
				vis.Walk(r)
				continue
			}
			// The default team_role rule's else branches find the role from team_roles,
			// teams and team only when input.subject.team_role is undefined, which Input.value
			// always sets: for the engine's input they never run, so what they read is not
			// passed unless another rule reads it. The default rules' own `with input.subject`
			// (destination_role) puts the destination's subject there, which has a team_role.
			vis.Walk(r.Head)
			vis.Walk(r.Body)
			fallback = r.Else
		}
	}
	// An author's `with input.subject as s` (or `with input as d`) can leave team_role out
	// while the engine's resource stays: the fallback then reads the engine's team_roles, teams
	// and team, so they are passed (TestWithSubjectReachesFallback).
	if dropsRole && fallback != nil {
		vis.Walk(fallback)
	}
	return rd, noTable
}

// tableBlocker says why a reference in an author's module keeps the policy from a decision table
// ("" when it does not). An author's cell is computed once, on a canonical input with the key's
// facts (Table), so the module may read of the input only the key's paths (keyPath), by constant
// path; data only where it is static (base documents and the authors' own rules, never the
// default rules' package, data.teamgate.authz, whose rules read more of the input than the key,
// nor a computed or whole document that could reach it); and call only OPA's own deterministic
// built-ins (an unknown one, registered by the program, may be anything).
func tableBlocker(r ast.Ref) string {
	switch {
	case r[0].Equal(ast.InputRootDocument):
		if !keyPath(r) {
			return "reads " + r.String() + ", not a fact of the decision table's key"
		}
	case r[0].Equal(ast.DefaultRootDocument):
		if len(r) == 1 || !isString(r[1]) || r[1].Equal(teamgateKey) &&
			(len(r) == 2 || !isString(r[2]) || r[2].Equal(authzKey)) {
			return "reads " + r.String() + ", which may reach the default rules' own reads of the input"
		}
	default:
		b, ok := ast.BuiltinMap[r.String()]
		switch {
		case !ok: // a variable or a function's own name
		case volatile(b):
			return "calls " + b.Name + ", whose answer may change from one call to the next"
		case !slices.Contains(ast.DefaultBuiltins[:], b):
			return "calls " + b.Name + ", a built-in OPA does not define (its determinism is unknown)"
		}
	}
	return ""
}

var authzKey = ast.StringTerm("authz")

func isString(t *ast.Term) bool {
	_, ok := t.Value.(ast.String)
	return ok
}

// keyPath reports whether r is an input path whose value is a fact of the decision table's key
// (key, in table.go): input.action; input.resource.kind (the action's kind), .exists and
// .restricted; input.subject.org_role, .grant, .break_glass and .team_role. Read by this constant
// path only: any other reference of input (a document as a whole, a computed key, a deeper path)
// is not one.
func keyPath(r ast.Ref) bool {
	switch len(r) {
	case 2:
		return keyAction.Equal(r[1])
	case 3:
		switch {
		case keySubject.Equal(r[1]):
			return keyOrgRole.Equal(r[2]) || keyGrant.Equal(r[2]) || keyBreakGlass.Equal(r[2]) || keyTeamRole.Equal(r[2])
		case keyResource.Equal(r[1]):
			return keyKind.Equal(r[2]) || keyExists.Equal(r[2]) || keyRestricted.Equal(r[2])
		}
	}
	return false
}

// teamRoleRule is the default rule that reads input.subject.team_role (authz.rego).
const teamRoleRule = ast.Var("team_role")

// canonField returns the shared key term of a subject or resource field, so reads are found by
// pointer; an unknown field's own term (never asked for).
func canonField(t *ast.Term) *ast.Term {
	for _, k := range []*ast.Term{keyID, keyOrgRole, keyGrant, keyBreakGlass, keyTeamRoles, keyTeamRole, keyKind, keyOrg, keyTeam, keyProject, keyTeams, keyRestricted, keyExists, keyMissing, keyLabels} {
		if k.Equal(t) {
			return k
		}
	}
	return t
}

// term is s as an OPA term: the shared one when s is a word of the policy's vocabulary.
func (p *Policy) term(s string) *ast.Term {
	if t, ok := p.vocab[s]; ok {
		return t
	}
	return ast.StringTerm(s)
}

// newVocab returns the policy's vocabulary as shared terms: "", the resource kinds, every role
// its data names (ranks, org roles and their base roles), and every action of the catalog with
// the roles it names. Built once at New and never modified, so evaluations share it.
func (p *Policy) newVocab() map[string]*ast.Term {
	v := map[string]*ast.Term{}
	add := func(s string) {
		if _, ok := v[s]; !ok {
			v[s] = ast.StringTerm(s)
		}
	}
	add("")
	add("none")
	for _, k := range []scope.Kind{scope.KindOrg, scope.KindTeam, scope.KindProject} {
		add(string(k))
	}
	for r := range p.ranks {
		add(r)
	}
	for _, r := range teamgate.OrgRoles() {
		add(string(r))
	}
	for name, a := range p.actions {
		add(name)
		add(a.Role)
		add(a.DestinationRole)
		add(a.OwnRunRole)
		for _, r := range a.OrgRoles {
			add(r)
		}
	}
	return v
}
