package rego

import (
	"errors"
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// ErrLimit is matched (errors.Is) by the error of an author's module past one of the limits
// below: OPA's compiler would take seconds to minutes and gigabytes on it (its type checker is
// exponential in nested comprehensions, quadratic in else chains and in a body's expressions),
// so it is refused, naming the file, line, column and limit, before the compiler sees it. The
// error is a *Error and matches teamgate.ErrInvalid too. README.md beside this file, "Limits".
var ErrLimit = errors.New("past a limit of authors' modules")

// The limits of an author's module (policy or test module), checked on the module as parsed.
const (
	// MaxNesting bounds terms nested in one another: arrays, objects, sets, calls and operators
	// (`1 + 1 + ...` nests a call per +), references' keys, comprehensions.
	MaxNesting = 64
	// MaxClosureDepth bounds the comprehensions, every and not bodies nested in one another.
	MaxClosureDepth = 8
	// MaxClosures bounds the comprehensions, every and not bodies of one rule (else branches
	// included).
	MaxClosures = 64
	// MaxBodyExprs bounds the expressions of one body (a rule's, a comprehension's, ...).
	MaxBodyExprs = 1000
	// MaxElse bounds a rule's else branches.
	MaxElse = 100
	// MaxRules bounds the rules (else branches included) of all the authors' modules together.
	MaxRules = 2000
	// MaxWeight bounds the terms of all the authors' modules together, each weighing how deep it
	// is nested (a term of a rule's body 1, an element of an array there 2, ...): OPA's compiler
	// takes longer on a nested term the deeper it is.
	MaxWeight = 100_000
	// MaxClosureWeight bounds the comprehensions, every and not bodies of all the authors'
	// modules together, each weighing 2^k when nested k deep (one in a rule's body 2, one in it
	// 4, ...): OPA's type checker takes about twice as long per level of nesting.
	MaxClosureWeight = 16_384
	// MaxSourceBytes bounds the text of all the authors' modules together (OPA's parser, which
	// runs twice on it, allocates about 180 MB per MB of rules and takes 0.8 s per MB: bench/RESULTS.md, "Stop 22").
	MaxSourceBytes = 512 << 10
	// maxParseDepth is OPA's parser's recursion bound (ast.Parser.WithMaxRecursionDepth; OPA's
	// default is 100,000, which lets a module nested that deep take 150 MB of parser stack). One
	// level of nesting costs the parser 1 to 10 recursions (an array 2, a call or comprehension
	// 10), so every module MaxNesting allows parses within it.
	maxParseDepth = 1000
)

// sourceBound returns the limit error of a module whose text brings the authors' modules past
// MaxSourceBytes (*total: the bytes of those before it, to which it adds its own), nil otherwise.
func sourceBound(name, src string, total *int) error {
	before := *total
	*total += len(src)
	if *total <= MaxSourceBytes || before > MaxSourceBytes {
		return nil // within, or reported at an earlier module
	}
	at := src[:MaxSourceBytes-before]
	line := strings.Count(at, "\n") + 1
	col := len(at) - strings.LastIndexByte(at, '\n')
	return limitError(&ast.Location{File: name, Row: line, Col: col},
		fmt.Sprintf("the authors' modules hold more than %d bytes together (%d, this one %d)", MaxSourceBytes, *total, len(src)))
}

// parseAuthor parses an author's module within maxParseDepth, then checks it against the limits:
// an error (ErrLimit) names the first place past each limit; OPA's parse errors are returned as
// ast.ParseModuleWithOpts returns them.
func parseAuthor(name, src string, total *budget) (*ast.Module, error) {
	p := ast.NewParser().WithFilename(name).WithReader(strings.NewReader(src)).
		WithRegoVersion(ast.RegoV1).WithMaxRecursionDepth(maxParseDepth)
	stmts, _, errs := p.Parse()
	if len(errs) > 0 {
		for _, e := range errs {
			if e.Message == ast.ErrMaxParsingRecursionDepthExceeded.Error() {
				return nil, limitError(e.Location, fmt.Sprintf("nested too deeply for OPA's parser (recursion depth %d); at most %d terms may nest", maxParseDepth, MaxNesting))
			}
		}
		return nil, fromOPA("compile", errs)
	}
	// The statements are checked before OPA makes a module of them, which parses the text again
	// (ast.ParseModuleWithOpts takes no recursion bound): a module past a limit costs one parse.
	if err := bounds(stmts, total); err != nil {
		return nil, err
	}
	mod, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return nil, fromOPA("compile", err)
	}
	return mod, nil
}

// budget is what the authors' modules spend together of the limits that bound them all.
type budget struct{ rules, weight, closureWeight int }

// bounds checks a module's statements as parsed against the limits, adding what it spends to
// total: one error per limit, at the first place past it.
func bounds(stmts []ast.Statement, total *budget) error {
	var errs []error
	seen := map[string]bool{} // a limit reported once per module
	fail := func(limit string, loc *ast.Location, msg string) {
		if !seen[limit] {
			seen[limit] = true
			errs = append(errs, limitError(loc, msg))
		}
	}
	for _, st := range stmts {
		n := 0
		switch r := st.(type) {
		case *ast.Rule:
			for e := r; e != nil; e = e.Else {
				n++
				if n == MaxElse+2 { // the rule and MaxElse branches are allowed
					fail("else", e.Location, fmt.Sprintf("a rule with more than %d else branches", MaxElse))
				}
			}
		case ast.Body: // a statement OPA makes a rule of
			n = 1
		default: // the package, an import
			continue
		}
		total.rules += n
		if total.rules > MaxRules {
			fail("rules", st.Loc(), fmt.Sprintf("more than %d rules (else branches included) in the authors' modules together", MaxRules))
		}
		depth, closures, closureDepth := 0, 0, 0
		at := st.Loc()             // the innermost term entered: a comprehension's own
		vars := map[ast.Var]bool{} // the rule's or else branch's (MaxVars)
		ast.NewBeforeAfterVisitor(func(x any) bool {
			switch x := x.(type) {
			case *ast.Rule:
				vars = map[ast.Var]bool{}
			case *ast.Term:
				if v, ok := x.Value.(ast.Var); ok && !vars[v] {
					vars[v] = true
					if len(vars) == MaxVars+1 {
						fail("vars", x.Location, fmt.Sprintf("a rule or else branch of more than %d variables", MaxVars))
					}
				}
				at = x.Location
				depth++
				total.weight += depth
				if total.weight > MaxWeight {
					fail("weight", x.Location, fmt.Sprintf("the authors' modules together weigh more than %d (each term weighs how deep it is nested)", MaxWeight))
				}
				if depth > MaxNesting {
					fail("nesting", x.Location, fmt.Sprintf("more than %d terms nested in one another (arrays, objects, sets, calls, operators)", MaxNesting))
					return true // the term's insides are past the limit too
				}
			case *ast.ArrayComprehension, *ast.SetComprehension, *ast.ObjectComprehension, *ast.Every, *ast.Not:
				loc := at
				switch c := x.(type) {
				case *ast.Every:
					loc = c.Location
				case *ast.Not:
					loc = c.Location
				}
				closures++
				closureDepth++
				total.closureWeight += 1 << min(closureDepth, 30)
				if total.closureWeight > MaxClosureWeight {
					fail("closure weight", loc, fmt.Sprintf("the authors' modules' comprehensions, every and not bodies together weigh more than %d (one nested k deep weighs 2^k)", MaxClosureWeight))
				}
				if closureDepth > MaxClosureDepth {
					fail("closure depth", loc, fmt.Sprintf("more than %d comprehensions, every or not bodies nested in one another", MaxClosureDepth))
				}
				if closures == MaxClosures+1 {
					fail("closures", loc, fmt.Sprintf("more than %d comprehensions, every or not bodies in one rule", MaxClosures))
				}
			case ast.Body:
				if len(x) > MaxBodyExprs {
					fail("body", x[MaxBodyExprs].Location, fmt.Sprintf("a body of more than %d expressions", MaxBodyExprs))
				}
			}
			return false
		}, func(x any) {
			switch x.(type) {
			case *ast.Term:
				depth--
			case *ast.ArrayComprehension, *ast.SetComprehension, *ast.ObjectComprehension, *ast.Every, *ast.Not:
				closureDepth--
			}
		}).Walk(st)
	}
	return errors.Join(errs...)
}

// limitError is the *Error of a module past a limit at loc: its file, line and column, what it
// holds there (the start of its text) and the limit.
func limitError(loc *ast.Location, msg string) error {
	e := &Error{Op: "compile", err: ErrLimit}
	text := ""
	if loc != nil {
		e.File, e.Line, e.Col = loc.File, loc.Row, loc.Col
		text = string(loc.Text)
	}
	if len(text) > 40 {
		text = text[:40] + "…"
	}
	if text != "" {
		msg += fmt.Sprintf(": %q", text)
	}
	e.Detail = "teamgate_limit_error: " + msg + ` (rego/README.md, "Limits")`
	return e
}
