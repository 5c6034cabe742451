package rego

import (
	"cmp"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/gobwas/glob"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/scope"
)

// WarningCode is the stable code of a Warning.
type WarningCode string

// The kinds of Warning.
const (
	// WarnUnknownValue: an input fact with a closed vocabulary (input.action, a resource kind, an
	// org role, a grant, a team role), or time.weekday's result, is compared with a literal
	// outside it — ==, !=, `in` a set or array, startswith, endswith or glob.match — so the
	// comparison never holds (or, negated, always does).
	WarnUnknownValue WarningCode = "unknown_value"
	// WarnUnknownField: a reference to a field the input document does not have
	// (input.resource.lables): it is never defined, so the expression never holds.
	WarnUnknownField WarningCode = "unknown_field"
	// WarnPrint: a deciding module calls print. OPA's compiler erases print calls from a policy
	// that decides, so its output never shows where the engine decides (check, a host service);
	// only `teamgate test` runs it (its output under -v and on a failure). As Regal's
	// print-or-trace-call.
	WarnPrint WarningCode = "print"
)

// Warning is a problem Policy.Warnings finds in an author's deciding module: an expression that
// loads and evaluates but cannot mean what its author wrote. File, Line and Col say where (Col
// is 1-based, as OPA's locations), Message what and Fix what to write instead.
type Warning struct {
	Code    WarningCode `json:"code"`
	File    string      `json:"file"`
	Line    int         `json:"line"`
	Col     int         `json:"col"`
	Message string      `json:"message"`
	Fix     string      `json:"fix"`
}

// String is "FILE:LINE:COL: MESSAGE".
func (w Warning) String() string {
	return fmt.Sprintf("%s:%d:%d: %s", w.File, w.Line, w.Col, w.Message)
}

// Warnings returns what a lint of the authors' deciding modules finds (WarningCode), sorted by
// file, line and column; nil when there is nothing (always for the default policy alone). They
// do not keep a policy from loading — as OPA loads what `opa check --strict` and Regal flag —
// but `teamgate lint --policy DIR` reports them (and with --strict fails on them) and `teamgate
// test` prints them. README.md beside this file, "Lint", says why.
func (p *Policy) Warnings() []Warning { return slices.Clone(p.warnings) }

// vocabulary is a closed set of values an input fact takes, and how to name it in a message.
type vocabulary struct {
	path   string   // the input path, for messages: input.action
	what   string   // "an action of the catalog (data.teamgate.actions)"
	values []string // sorted
	fix    string   // what else to do when the literal is meant: "" for a fixed vocabulary
}

func (v *vocabulary) has(s string) bool {
	_, ok := slices.BinarySearch(v.values, s)
	return ok
}

// vocabularies are the input facts whose values the policy knows: the action (the catalog with
// the policy's data), the resource kinds, the org role (or none), the grant (a ranked role, or
// "" for none) and the highest team role (a ranked role or none); and time.weekday's days.
func (p *Policy) vocabularies() map[string]*vocabulary {
	kinds := []string{string(scope.KindOrg), string(scope.KindTeam), string(scope.KindProject)}
	orgRoles := []string{string(teamgate.RoleNone)}
	for _, r := range teamgate.OrgRoles() {
		orgRoles = append(orgRoles, string(r))
	}
	var ranked []string
	for r := range p.ranks {
		ranked = append(ranked, r)
	}
	grants := []string{""}
	for _, r := range ranked {
		if r != string(teamgate.RoleNone) {
			grants = append(grants, r)
		}
	}
	out := map[string]*vocabulary{}
	add := func(path, what string, values []string, fix string) {
		slices.Sort(values)
		out[path] = &vocabulary{path: path, what: what, values: slices.Compact(values), fix: fix}
	}
	add("input.action", "an action of the catalog (data.teamgate.actions)", p.Actions(),
		"or add the action to the catalog in a JSON file of the policy")
	// Not input, but a closed vocabulary an author's time rule compares with.
	add(weekday, "a day time.weekday returns (Monday … Sunday, capitalised)",
		[]string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}, "")
	for _, prefix := range []string{"input", "input.destination"} {
		add(prefix+".resource.kind", "a resource kind", slices.Clone(kinds), "")
		add(prefix+".subject.org_role", "an org role (or none)", slices.Clone(orgRoles), "")
		add(prefix+".subject.grant", `a role of teamgate.ranks (or "" for no grant)`, slices.Clone(grants), "")
		add(prefix+".subject.team_role", "a role of teamgate.ranks (none included)", slices.Clone(ranked), "")
		// A value of the map (input.subject.team_roles[t], some/every r in it): a team role.
		add(prefix+".subject.team_roles[_]", "a role of teamgate.ranks", slices.Clone(ranked), "")
	}
	return out
}

// weekday is the vocabulary of time.weekday's result.
const weekday = "time.weekday(...)"

// vetter finds the warnings of authors' compiled modules.
type vetter struct {
	vocab    map[string]*vocabulary
	fields   *fieldTree
	aliases  map[string]*vocabulary // rules `name := input.action`, by path
	consts   map[string]ast.Value   // rules `name := {"a", "b"}`, by path: a ground value
	binds    map[ast.Var]*ast.Term  // the body being checked: its local variables' bindings (scope)
	outs     map[ast.Var]string     // and the variables holding a fact of a vocabulary (by its key) that no term names: weekday's result, a function's argument, every's value
	funcs    map[string][]*ast.Rule // the authors' functions, by path
	calls    map[string]int         // the functions checked with arguments bound (callFunc's memo), by path and arguments; by path and "\x00", how many
	stack    []string               // the functions being checked, innermost last (callFunc's recursion guard)
	ranging  bool                   // an every's body is being checked once per element (every: never nested)
	via      string                 // where the function being checked was called with the fact (for messages); "" outside
	warnings []Warning
}

// The bounds of vet's work on a module within rego's limits (limits.go): how deep it follows
// functions calling functions, how many argument bindings of one function it checks, how many
// elements of a literal collection an every ranges over.
const (
	maxCallDepth = 8
	maxCallsPer  = 16
	maxElems     = 64
)

// vet lints the authors' deciding modules (names in authors) of the compiled modules, and of
// the parsed ones for print calls (the compiler erases them).
func (p *Policy) vet(parsed, compiled map[string]*ast.Module, authors []string) []Warning {
	v := &vetter{vocab: p.vocabularies(), fields: inputFields(), aliases: map[string]*vocabulary{}, consts: map[string]ast.Value{},
		funcs: map[string][]*ast.Rule{}, calls: map[string]int{}}
	for _, name := range authors {
		ast.WalkExprs(parsed[name], func(e *ast.Expr) bool {
			if e.IsCall() && (e.Operator().Equal(ast.Print.Ref()) || e.Operator().Equal(ast.InternalPrint.Ref())) {
				v.add(WarnPrint, e, nil, "print is called here, but a policy that decides runs without its print calls (OPA's compiler erases them): "+
					"its output shows only under `teamgate test` (with -v, or on a failure)", "remove the call, or print from a test")
			}
			return false
		})
	}
	// Complete rules, defined once, whose value is a fact (action := input.action) or a
	// constant (frozen := {"runs.delete"}); twice over, for a rule aliasing another.
	defs := map[string]int{}
	for _, name := range authors {
		ast.WalkRules(compiled[name], func(r *ast.Rule) bool {
			defs[r.Path().String()]++
			return false
		})
	}
	for _, name := range authors {
		for _, r := range compiled[name].Rules {
			if len(r.Head.Args) > 0 {
				v.funcs[r.Path().String()] = append(v.funcs[r.Path().String()], r)
			}
		}
	}
	for range 2 {
		for _, name := range authors {
			for _, r := range compiled[name].Rules {
				path := r.Path().String()
				if defs[path] != 1 || r.Default || r.Else != nil || len(r.Head.Args) > 0 || r.Head.Key != nil || r.Head.Value == nil {
					continue
				}
				v.bind(r.Body)
				if voc := v.fact(r.Head.Value); voc != nil {
					v.aliases[path] = voc
				} else if c := v.constant(r.Head.Value); c != nil {
					v.consts[path] = c
				}
			}
		}
	}
	for _, name := range authors {
		mod := compiled[name]
		for _, r := range mod.Rules {
			for ; r != nil; r = r.Else {
				v.bind(nil)
				v.check(r.Body)
			}
		}
		ast.WalkRefs(mod, func(r ast.Ref) bool {
			v.field(r)
			return false
		})
	}
	slices.SortFunc(v.warnings, func(a, b Warning) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col), cmp.Compare(a.Message, b.Message))
	})
	// One warning per place and kind: a function's literal compared with a fact it reads itself
	// is found in its body and again through each call, the first without the call (sorted first).
	return slices.CompactFunc(v.warnings, func(a, b Warning) bool {
		return a.File == b.File && a.Line == b.Line && a.Col == b.Col && a.Code == b.Code
	})
}

// bind starts the bindings of a rule, or of one of its else branches, with those of its body.
func (v *vetter) bind(body ast.Body) {
	v.binds, v.outs = map[ast.Var]*ast.Term{}, map[ast.Var]string{}
	v.scope(body)
}

// scope adds the bindings of body's local variables (x := input.action, y := x; the compiler
// binds every reference a call takes to a variable of its own the same way) to those of the
// bodies around it. The compiler gives a variable declared by := or some a name unique in its
// rule, but not one bound by = (x = input.action), which may mean another variable in an else
// branch or a sibling comprehension: so each body has its own bindings, over those of the bodies
// it is nested in (a comprehension's or every's body sees them), never a sibling's.
func (v *vetter) scope(body ast.Body) {
	for _, e := range body {
		if e.IsCall() && e.Operator().Equal(ast.Weekday.Ref()) && len(e.Operands()) == 2 {
			if out, ok := e.Operands()[1].Value.(ast.Var); ok {
				v.outs[out] = weekday // the compiler's form of `time.weekday(ns) == "..."`
			}
		}
		if e.Negated || !e.IsEquality() && !e.IsAssignment() {
			continue
		}
		ts := e.Operands()
		for i, t := range ts {
			if name, ok := t.Value.(ast.Var); ok && !name.IsWildcard() && v.binds[name] == nil {
				if _, other := ts[1-i].Value.(ast.Var); !other || i == 0 {
					v.binds[name] = ts[1-i]
				}
			}
		}
	}
}

// check checks the calls of body with its bindings, and those of the closures in it (the
// bodies of comprehensions, every and not) with theirs.
func (v *vetter) check(body ast.Body) {
	binds, outs := v.binds, v.outs
	defer func() { v.binds, v.outs = binds, outs }()
	v.binds, v.outs = maps.Clone(binds), maps.Clone(outs)
	v.scope(body)
	for _, e := range body {
		if e.IsCall() {
			v.call(e)
		}
		for _, w := range e.With {
			if r, ok := w.Target.Value.(ast.Ref); ok && r[0].Equal(ast.InputRootDocument) {
				v.with(e, r, w.Value)
			}
		}
		ast.WalkRefs(e, func(r ast.Ref) bool {
			v.localField(r)
			return false
		})
		ast.WalkClosures(e, func(x any) bool {
			switch c := x.(type) {
			case *ast.ArrayComprehension:
				v.check(c.Body)
			case *ast.SetComprehension:
				v.check(c.Body)
			case *ast.ObjectComprehension:
				v.check(c.Body)
			case *ast.Every:
				v.every(c)
			case *ast.Not:
				v.check(c.Body)
			default:
				return false
			}
			return true // check walked its closures
		})
	}
}

// localField checks a reference through a local variable bound to a part of the input
// (`x := input.resource; x.lables`, `some l in input.resource.labels; l.approval`, every's
// value) as the reference into input it is, each key a variable stands for written _.
func (v *vetter) localField(r ast.Ref) {
	head, ok := r[0].Value.(ast.Var)
	if !ok || v.binds[head] == nil {
		return
	}
	to, ok := v.resolve(r[0]).Value.(ast.Ref)
	if !ok || !to[0].Equal(ast.InputRootDocument) {
		return
	}
	full := make(ast.Ref, 0, len(to)+len(r)-1)
	for _, t := range to {
		if _, ok := t.Value.(ast.Var); ok && len(full) > 0 {
			t = &ast.Term{Value: ast.Var("_"), Location: t.Location}
		}
		full = append(full, t)
	}
	v.field(append(full, r[1:]...))
}

// resolve follows t's variable bindings to what it was bound to.
func (v *vetter) resolve(t *ast.Term) *ast.Term {
	for range 16 { // a chain of bindings; a cycle (x = y, y = x) stops here
		name, ok := t.Value.(ast.Var)
		if !ok || v.binds[name] == nil {
			return t
		}
		t = v.binds[name]
	}
	return t
}

// fact returns the vocabulary of the input fact t reads (input.action, a rule aliasing it, a
// local variable bound to either), nil when t is none.
func (v *vetter) fact(t *ast.Term) *vocabulary {
	if out, ok := t.Value.(ast.Var); ok && v.outs[out] != "" { // before a binding in its body: f(x) if x == "..."
		return v.vocab[v.outs[out]]
	}
	t = v.resolve(t)
	if out, ok := t.Value.(ast.Var); ok && v.outs[out] != "" {
		return v.vocab[v.outs[out]]
	}
	if r, ok := t.Value.(ast.Ref); ok {
		if voc := v.aliases[r.String()]; voc != nil {
			return voc
		}
		return v.vocabOf(r)
	}
	return nil
}

// vocabOf returns the vocabulary of the input fact at r, nil when it has none.
func (v *vetter) vocabOf(r ast.Ref) *vocabulary {
	if voc := v.vocab[r.String()]; voc != nil {
		return voc
	}
	if len(r) > 1 { // a value of a map whose values have a vocabulary, whatever its key
		return v.vocab[r[:len(r)-1].String()+"[_]"]
	}
	return nil
}

// constant returns the ground value t holds (a literal, a constant rule), nil when it is none.
func (v *vetter) constant(t *ast.Term) ast.Value {
	t = v.resolve(t)
	if r, ok := t.Value.(ast.Ref); ok {
		return v.consts[r.String()]
	}
	if ast.IsConstant(t.Value) {
		return t.Value
	}
	return nil
}

// call checks one call expression: ==, = and != with a literal, `in` a literal collection (or a
// constant rule), startswith, endswith and glob.match.
func (v *vetter) call(e *ast.Expr) {
	op := e.Operator().String()
	args := e.Operands()
	if v.funcs[op] != nil {
		v.callFunc(e, op, args)
		return
	}
	switch op {
	case ast.Equality.Name, ast.Equal.Name, ast.NotEqual.Name:
		if len(args) < 2 { // a third is the comparison's value, kept: frozen := input.action == "..."
			return
		}
		never := "never holds"
		if op == ast.NotEqual.Name != e.Negated {
			never = "always holds"
		}
		for i := range 2 {
			if voc := v.fact(args[i]); voc != nil {
				if s, ok := v.constant(args[1-i]).(ast.String); ok && !voc.has(string(s)) {
					v.value(e, v.resolve(args[1-i]), voc, string(s), fmt.Sprintf("%s is compared with %q, which is not %s, so this comparison %s", voc.path, string(s), voc.what, never))
				}
			}
		}
	case ast.Member.Name:
		if len(args) < 2 {
			return
		}
		voc := v.fact(args[0])
		if voc == nil {
			return
		}
		coll := v.constant(args[1])
		var elems []*ast.Term
		switch c := coll.(type) {
		case ast.Set:
			elems = c.Slice()
		case *ast.Array:
			for i := range c.Len() {
				elems = append(elems, c.Elem(i))
			}
		}
		for _, el := range elems {
			if s, ok := el.Value.(ast.String); ok && !voc.has(string(s)) {
				at := el
				if at.Location == nil || at.Location.File != e.Location.File {
					at = args[1]
				}
				v.value(e, at, voc, string(s), fmt.Sprintf("%s is tested for membership in a collection holding %q, which is not %s: that element never matches", voc.path, string(s), voc.what))
			}
		}
	case ast.StartsWith.Name, ast.EndsWith.Name:
		if len(args) < 2 {
			return
		}
		voc := v.fact(args[0])
		s, ok := v.constant(args[1]).(ast.String)
		if voc == nil || !ok {
			return
		}
		has := strings.HasPrefix
		if op == ast.EndsWith.Name {
			has = strings.HasSuffix
		}
		if !slices.ContainsFunc(voc.values, func(a string) bool { return has(a, string(s)) }) {
			var parts []string // the values' prefixes (suffixes) about as long as s
			for _, a := range voc.values {
				for n := max(1, len(s)-2); n <= min(len(a), len(s)+2); n++ {
					if op == ast.StartsWith.Name {
						parts = append(parts, a[:n])
					} else {
						parts = append(parts, a[len(a)-n:])
					}
				}
			}
			v.suggest(e, v.resolve(args[1]), string(s), parts, fmt.Sprintf("%s(%s, %q) holds for no value that is %s", op, voc.path, string(s), voc.what), voc.fix)
		}
	case ast.GlobMatch.Name:
		if len(args) < 3 {
			return
		}
		voc := v.fact(args[2])
		pattern, ok := v.constant(args[0]).(ast.String)
		if voc == nil || !ok {
			return
		}
		var delims []rune
		switch d := v.constant(args[1]).(type) {
		case ast.Null:
		case *ast.Array:
			for i := range d.Len() {
				s, ok := d.Elem(i).Value.(ast.String)
				if !ok || len([]rune(string(s))) != 1 {
					return // OPA refuses it when it evaluates
				}
				delims = append(delims, []rune(string(s))[0])
			}
			if len(delims) == 0 {
				delims = []rune{'.'} // glob.match's default
			}
		default:
			return
		}
		g, err := glob.Compile(string(pattern), delims...)
		if err != nil {
			return
		}
		if !slices.ContainsFunc(voc.values, g.Match) {
			v.add(WarnUnknownValue, e, v.resolve(args[0]), fmt.Sprintf("glob.match(%q, %s, %s) holds for no value that is %s", string(pattern), v.resolve(args[1]), voc.path, voc.what),
				"fix the pattern"+orFix(voc.fix))
		}
	}
}

// callFunc checks the body of an author's function called by e (op, with args and maybe its
// result) with its parameters bound to the arguments that are facts of a vocabulary or string
// constants, so `f(x) if x == "runs.delte"` called as f(input.action) is found in f. Each
// function is checked once per binding of its arguments (up to maxCallsPer of them), following
// calls maxCallDepth deep, never into a function already being checked (recursion).
func (v *vetter) callFunc(e *ast.Expr, op string, args []*ast.Term) {
	rules := v.funcs[op]
	arity := len(rules[0].Head.Args)
	if len(args) < arity || len(v.stack) >= maxCallDepth || slices.Contains(v.stack, op) {
		return
	}
	facts := map[int]*vocabulary{}
	consts := map[int]*ast.Term{}
	key := op
	for i := range arity {
		if voc := v.fact(args[i]); voc != nil {
			facts[i] = voc
			key += "\x00" + voc.path
		} else if _, ok := v.constant(args[i]).(ast.String); ok {
			consts[i] = v.resolve(args[i])
			key += "\x00" + consts[i].String()
		} else {
			key += "\x00_"
		}
	}
	if len(facts) == 0 || v.calls[key] > 0 {
		return // a constant alone compared with a constant is not a fact's comparison
	}
	if v.calls[op+"\x00"] >= maxCallsPer {
		return
	}
	v.calls[key]++
	v.calls[op+"\x00"]++ // the function's count
	binds, outs, via := v.binds, v.outs, v.via
	defer func() { v.binds, v.outs, v.via = binds, outs, via }()
	v.stack = append(v.stack, op)
	defer func() { v.stack = v.stack[:len(v.stack)-1] }()
	if via == "" && e.Location != nil {
		v.via = fmt.Sprintf(" (through %s called with it at %s:%d)", strings.TrimPrefix(op, "data."), e.Location.File, e.Location.Row)
	}
	for _, r := range rules {
		for ; r != nil; r = r.Else {
			v.binds, v.outs = map[ast.Var]*ast.Term{}, map[ast.Var]string{}
			for i, param := range r.Head.Args {
				name, ok := param.Value.(ast.Var)
				if !ok {
					continue
				}
				if voc := facts[i]; voc != nil {
					v.outs[name] = voc.path
				} else if c := consts[i]; c != nil {
					v.binds[name] = c
				}
			}
			if !v.never(r, consts) {
				v.check(r.Body)
			}
		}
	}
}

// never reports whether a definition r of a function (or an else branch of one), its parameters
// bound (callFunc), never runs for the call passing consts: its head holds another string than
// the call passes, or its body compares (== or =) two strings that differ, a parameter bound to
// one (`kind == "role"` called as f("action", input.action)). Its comparisons then say nothing
// about the call: a function dispatching on a constant argument is checked branch by branch.
func (v *vetter) never(r *ast.Rule, consts map[int]*ast.Term) bool {
	for i, param := range r.Head.Args {
		if s, ok := param.Value.(ast.String); ok && consts[i] != nil && !s.Equal(consts[i].Value) {
			return true
		}
	}
	for _, e := range r.Body {
		if e.Negated || !e.IsCall() || len(e.Operands()) != 2 {
			continue
		}
		if op := e.Operator().String(); op != ast.Equality.Name && op != ast.Equal.Name {
			continue
		}
		a, aok := v.constant(e.Operands()[0]).(ast.String)
		b, bok := v.constant(e.Operands()[1]).(ast.String)
		if aok && bok && a != b {
			return true
		}
	}
	return false
}

// every checks an every's body with its value variable bound: to each string of a literal
// domain in turn (up to maxElems; an every within such a body is checked once, unbound), or to the values of a fact whose values have a vocabulary
// (every r in input.subject.team_roles).
func (v *vetter) every(c *ast.Every) {
	name, ok := c.Value.Value.(ast.Var)
	if !ok {
		v.check(c.Body)
		return
	}
	old, oldOut := v.binds[name], v.outs[name]
	defer func() { v.binds[name], v.outs[name] = old, oldOut }()
	if r, ok := v.resolve(c.Domain).Value.(ast.Ref); ok && r[0].Equal(ast.InputRootDocument) {
		// An element of a part of the input: its vocabulary (input.subject.team_roles[_]), its fields.
		v.binds[name] = ast.NewTerm(append(r.Copy(), ast.VarTerm("_")))
		v.check(c.Body)
		return
	}
	if v.ranging { // an every in one being checked per element: once, or the work would multiply
		v.check(c.Body)
		return
	}
	var elems []*ast.Term
	switch d := v.constant(c.Domain).(type) {
	case *ast.Array:
		for i := range min(d.Len(), maxElems) {
			elems = append(elems, d.Elem(i))
		}
	case ast.Set:
		elems = d.Slice()[:min(d.Len(), maxElems)]
	}
	checked := false
	v.ranging = true
	for _, el := range elems {
		if _, ok := el.Value.(ast.String); ok {
			v.binds[name] = el
			v.check(c.Body)
			checked = true
		}
	}
	v.ranging = false
	if !checked {
		v.binds[name] = old
		v.check(c.Body)
	}
}

// with checks `with TARGET as VALUE` where TARGET is (under) input: a string VALUE replacing a
// fact of a vocabulary must be in it (the engine never passes another, so the expression tests
// what never happens), and an object VALUE must hold fields of the input document, each field
// checked the same way.
func (v *vetter) with(e *ast.Expr, target ast.Ref, value *ast.Term) {
	if voc := v.vocabOf(target); voc != nil {
		if s, ok := v.constant(value).(ast.String); ok && !voc.has(string(s)) {
			v.value(e, v.resolve(value), voc, string(s), fmt.Sprintf("%s is replaced (with) by %q, which is not %s: the engine never passes it, so this expression tests a request that never comes", voc.path, string(s), voc.what))
		}
		return
	}
	obj, ok := v.constant(value).(ast.Object)
	if !ok {
		return
	}
	obj.Foreach(func(k, x *ast.Term) {
		if _, ok := k.Value.(ast.String); !ok {
			return
		}
		field := append(target.Copy(), k)
		n := len(v.warnings)
		v.field(field)
		if len(v.warnings) == n {
			v.with(e, field, x)
		}
	})
}

// value adds the warning of a literal outside a vocabulary, suggesting the nearest value.
func (v *vetter) value(e *ast.Expr, at *ast.Term, voc *vocabulary, lit, msg string) {
	v.suggest(e, at, lit, voc.values, msg, voc.fix)
}

// suggest adds a WarnUnknownValue warning with the nearest of candidates to lit, when one is near.
func (v *vetter) suggest(e *ast.Expr, at *ast.Term, lit string, candidates []string, msg, fix string) {
	if near := nearest(lit, candidates); near != "" {
		msg += fmt.Sprintf("; did you mean %q?", near)
		v.add(WarnUnknownValue, e, at, msg, fmt.Sprintf("write %q%s", near, orFix(fix)))
		return
	}
	v.add(WarnUnknownValue, e, at, msg, "fix the value"+orFix(fix))
}

func orFix(fix string) string {
	if fix == "" {
		return ""
	}
	return ", " + fix
}

func (v *vetter) add(code WarningCode, e *ast.Expr, at *ast.Term, msg, fix string) {
	msg += v.via
	loc := e.Location
	if at != nil && at.Location != nil {
		loc = at.Location
	}
	w := Warning{Code: code, Message: msg, Fix: fix}
	if loc != nil {
		w.File, w.Line, w.Col = loc.File, loc.Row, loc.Col
	}
	v.warnings = append(v.warnings, w)
}

// field checks a reference into input against the input document's fields.
func (v *vetter) field(r ast.Ref) {
	if !r[0].Equal(ast.InputRootDocument) {
		return
	}
	node := v.fields
	for i := 1; i < len(r) && node != nil && !node.open; i++ {
		if node.elem != nil { // a map's or list's element, whatever the key
			node = node.elem
			continue
		}
		s, ok := r[i].Value.(ast.String)
		if !ok {
			return // a computed key: anything may be meant
		}
		next, ok := node.fields[string(s)]
		if !ok {
			prefix := r[:i].String()
			w := Warning{Code: WarnUnknownField,
				Message: fmt.Sprintf("%s has no field %q (the input document: rego/README.md, \"Input\"), so %s is never defined and an expression reading it never holds", prefix, string(s), r),
				Fix:     "read one of " + strings.Join(slices.Sorted(mapKeys(node.fields)), ", ")}
			if len(node.fields) == 0 {
				w.Fix = "it holds one value (a string, a number or a boolean), not an object: read " + prefix + " itself"
			}
			if near := nearest(string(s), slices.Sorted(mapKeys(node.fields))); near != "" {
				w.Message += fmt.Sprintf("; did you mean %s.%s?", prefix, near)
				w.Fix = fmt.Sprintf("write %s.%s", prefix, near)
			}
			if loc := r[i].Location; loc != nil {
				w.File, w.Line, w.Col = loc.File, loc.Row, loc.Col
			} else if loc := r[0].Location; loc != nil {
				w.File, w.Line, w.Col = loc.File, loc.Row, loc.Col
			}
			v.warnings = append(v.warnings, w)
			return
		}
		node = next
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// fieldTree is the shape of the input document: an object's fields, a map's or list's elements
// (any key, each of shape elem), or open (the attributes: anything may be read).
type fieldTree struct {
	fields map[string]*fieldTree
	elem   *fieldTree
	open   bool
}

// inputFields derives the input document's shape from Input (its JSON names), with the derived
// subject.team_role (Policy.Eval adds it), so the lint follows the one definition.
func inputFields() *fieldTree {
	t := shape(reflect.TypeFor[Input]())
	t.fields["subject"].fields["team_role"] = &fieldTree{}
	t.fields["destination"].fields["subject"].fields["team_role"] = &fieldTree{}
	return t
}

func shape(t reflect.Type) *fieldTree {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[Attributes]():
		return &fieldTree{open: true}
	case t.Kind() == reflect.Struct:
		n := &fieldTree{fields: map[string]*fieldTree{}}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			n.fields[name] = shape(f.Type)
		}
		return n
	case t.Kind() == reflect.Map || t.Kind() == reflect.Slice:
		return &fieldTree{elem: shape(t.Elem())}
	}
	return &fieldTree{} // a scalar: it has no field
}

// nearest returns the candidate closest to s by edit distance, when it is close enough to be
// what was meant (at most a third of s's length, at least 1, at most maxTypo), "" otherwise.
func nearest(s string, candidates []string) string {
	best, bestD := "", min(max(1, len(s)/3), maxTypo)+1
	for _, c := range candidates {
		if d := editDistance(s, c, bestD); d < bestD && c != s {
			best, bestD = c, d
		}
	}
	return best
}

// maxTypo bounds the distance of a suggestion, and so the work of editDistance: a literal as
// long as a whole file is compared with a name in time linear in its length.
const maxTypo = 8

// editDistance is the Levenshtein distance of a and b, in bytes, when it is below limit, and
// limit otherwise: it computes only the cells within limit of the diagonal and stops at the
// first row all at limit, so its work is O(min(len(a), len(b)) × limit), none when the lengths
// differ by limit or more.
func editDistance(a, b string, limit int) int {
	if len(a) > len(b) {
		a, b = b, a
	}
	if len(b)-len(a) >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = min(j, limit)
	}
	for i := 1; i <= len(a); i++ {
		lo, hi := max(1, i-limit), min(len(b), i+limit)
		cur[lo-1] = limit // outside the band
		if lo == 1 {
			cur[0] = min(i, limit)
		}
		least := cur[lo-1]
		for j := lo; j <= hi; j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost, limit)
			least = min(least, cur[j])
		}
		if hi < len(b) {
			cur[hi+1] = limit // the next row reads it
		}
		if least >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// WarnUnknownRule is the code of a test module's reference into the default rules' package or
// the test helper's that names no rule there (authz.decison): it is undefined, so a test
// asserting it fails, and one asserting its negation passes, without saying why.
const WarnUnknownRule WarningCode = "unknown_rule"

// testWarnings returns the WarnUnknownRule warnings of the test modules: references, directly
// or through an import, to data.teamgate.authz.NAME or data.teamgate.testing.NAME where the
// package defines no rule NAME; and the WarnUnknownValue and WarnUnknownField warnings of their
// `with input... as` literals (vetter.with) against the policy's vocabularies (vocab).
func testWarnings(tests map[string]*ast.Module, vocab map[string]*vocabulary) []Warning {
	own := map[string][]string{} // package path → its rules' names
	for _, m := range append(DefaultModules(), TestHelpers()...) {
		mod, err := ast.ParseModuleWithOpts(m.Name, m.Source, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			continue // the embedded modules parse: tests say so
		}
		pkg := mod.Package.Path.String()
		for _, r := range mod.Rules {
			own[pkg] = append(own[pkg], strings.Trim(r.Head.Ref()[0].String(), `"`))
		}
	}
	v := &vetter{vocab: vocab, fields: inputFields()}
	for _, name := range slices.Sorted(mapKeys(tests)) {
		mod := tests[name]
		ast.WalkExprs(mod, func(e *ast.Expr) bool {
			for _, w := range e.With {
				if r, ok := w.Target.Value.(ast.Ref); ok && r[0].Equal(ast.InputRootDocument) {
					v.with(e, r, w.Value)
				}
			}
			return false
		})
		imports := map[string]ast.Ref{} // alias → the imported path
		for _, imp := range mod.Imports {
			if path, ok := imp.Path.Value.(ast.Ref); ok && path[0].Equal(ast.DefaultRootDocument) {
				alias := string(imp.Alias)
				if alias == "" {
					alias = strings.Trim(path[len(path)-1].String(), `"`)
				}
				imports[alias] = path
			}
		}
		ast.WalkRefs(mod, func(r ast.Ref) bool {
			full, shift := r, 0
			if head, ok := r[0].Value.(ast.Var); ok && imports[string(head)] != nil {
				full = append(imports[string(head)].Copy(), r[1:]...)
				shift = len(imports[string(head)]) - 1
			}
			for pkg, rules := range own {
				p := ast.MustParseRef(pkg)
				if len(full) <= len(p) || !full.HasPrefix(p) {
					continue
				}
				s, ok := full[len(p)].Value.(ast.String)
				if !ok || slices.Contains(rules, string(s)) {
					continue
				}
				slices.Sort(rules)
				w := Warning{Code: WarnUnknownRule,
					Message: fmt.Sprintf("%s defines no rule %q, so %s is undefined (a test of it fails, a test of its negation passes)", pkg, string(s), r),
					Fix:     "refer to one of its rules: " + strings.Join(slices.Compact(rules), ", ")}
				if near := nearest(string(s), rules); near != "" {
					w.Message += fmt.Sprintf("; did you mean %s?", near)
					w.Fix = "write " + near
				}
				if loc := r[len(p)-shift].Location; loc != nil {
					w.File, w.Line, w.Col = loc.File, loc.Row, loc.Col
				}
				v.warnings = append(v.warnings, w)
			}
			return false
		})
	}
	slices.SortFunc(v.warnings, func(a, b Warning) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	return v.warnings
}
