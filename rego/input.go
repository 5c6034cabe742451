package rego

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
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
// data: each subject's team_role (see teamRole).
func (in *Input) value(p *Policy) ast.Value {
	attrs := in.Attributes.v
	if attrs == nil {
		attrs = ast.NewObject()
	}
	items := make([][2]*ast.Term, 0, 5)
	items = append(items,
		ast.Item(keySubject, in.Subject.term(p.teamRole(&in.Subject, &in.Resource))),
		ast.Item(keyAction, ast.StringTerm(in.Action)),
		ast.Item(keyResource, in.Resource.term()),
		ast.Item(keyAttributes, ast.NewTerm(attrs)),
	)
	if d := in.Destination; d != nil {
		items = append(items, ast.Item(keyDestination, ast.ObjectTerm(
			ast.Item(keySubject, d.Subject.term(p.teamRole(&d.Subject, &d.Resource))),
			ast.Item(keyResource, d.Resource.term()),
		)))
	}
	return ast.NewObject(items...)
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

func (s *Subject) term(teamRole string) *ast.Term {
	roles := make([][2]*ast.Term, 0, len(s.TeamRoles))
	for k, v := range s.TeamRoles {
		roles = append(roles, ast.Item(ast.StringTerm(k), ast.StringTerm(v)))
	}
	return ast.ObjectTerm(
		ast.Item(keyID, ast.StringTerm(s.ID)),
		ast.Item(keyOrgRole, ast.StringTerm(s.OrgRole)),
		ast.Item(keyGrant, ast.StringTerm(s.Grant)),
		ast.Item(keyBreakGlass, ast.BooleanTerm(s.BreakGlass)),
		ast.Item(keyTeamRoles, ast.ObjectTerm(roles...)),
		ast.Item(keyTeamRole, ast.StringTerm(teamRole)),
	)
}

func (r *Resource) term() *ast.Term {
	teams := make([]*ast.Term, len(r.Teams))
	for i, t := range r.Teams {
		teams[i] = ast.StringTerm(t)
	}
	labels := make([][2]*ast.Term, 0, len(r.Labels))
	for k, v := range r.Labels {
		labels = append(labels, ast.Item(ast.StringTerm(k), ast.StringTerm(v)))
	}
	return ast.ObjectTerm(
		ast.Item(keyKind, ast.StringTerm(string(r.Kind))),
		ast.Item(keyOrg, ast.StringTerm(r.Org)),
		ast.Item(keyTeam, ast.StringTerm(r.Team)),
		ast.Item(keyProject, ast.StringTerm(r.Project)),
		ast.Item(keyTeams, ast.ArrayTerm(teams...)),
		ast.Item(keyRestricted, ast.BooleanTerm(r.Restricted)),
		ast.Item(keyExists, ast.BooleanTerm(r.Exists)),
		ast.Item(keyMissing, ast.StringTerm(r.Missing)),
		ast.Item(keyLabels, ast.ObjectTerm(labels...)),
	)
}
