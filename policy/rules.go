package policy

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/cel-go/cel"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/scope"
)

// RuleCostLimit bounds the work one rule evaluation may do (CEL cost units).
const RuleCostLimit = 100_000

// celEnv is immutable once built and safe for concurrent use, so one is shared.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	m := cel.MapType(cel.StringType, cel.DynType)
	return cel.NewEnv(
		cel.Variable("subject", m),
		cel.Variable("project", m),
		cel.Variable("run", m),
		cel.Variable("settings", m),
		cel.CrossTypeNumericComparisons(true),
	)
})

// RuleError reports a rule that does not compile to a bool. It matches teamgate.ErrInvalid.
type RuleError struct {
	Owner   string // "policy acme/gpu-policy", "project acme/vision"
	Rule    string // the rule's name
	Message string // the compiler's message
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("%s: rule %q: %s", e.Owner, e.Rule, e.Message)
}

// Unwrap makes errors.Is(err, teamgate.ErrInvalid) true.
func (e *RuleError) Unwrap() error { return teamgate.ErrInvalid }

// Program is a compiled rule. It is immutable and safe for concurrent use.
type Program struct {
	Rule SourcedRule
	prg  cel.Program
}

// CompileRules compiles rules, rejecting any that is unnamed, duplicated, does not parse or type
// check, or does not have type bool. owner names the rules' owner in errors.
func CompileRules(rules []Rule, owner string) ([]*Program, error) {
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	seen := map[string]bool{}
	out := make([]*Program, 0, len(rules))
	for _, r := range rules {
		if err := scope.CheckSlug(owner+" rule name", r.Name); err != nil {
			return nil, err
		}
		if seen[r.Name] {
			return nil, &RuleError{Owner: owner, Rule: r.Name, Message: "duplicate rule name"}
		}
		seen[r.Name] = true
		ast, iss := env.Compile(r.Expression)
		if iss.Err() != nil {
			return nil, &RuleError{Owner: owner, Rule: r.Name, Message: iss.Err().Error()}
		}
		if !ast.OutputType().IsExactType(cel.BoolType) {
			return nil, &RuleError{Owner: owner, Rule: r.Name,
				Message: fmt.Sprintf("expression has type %s, want bool (compare explicitly, e.g. `x == true`)", ast.OutputType())}
		}
		prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(RuleCostLimit), cel.InterruptCheckFrequency(100))
		if err != nil {
			return nil, &RuleError{Owner: owner, Rule: r.Name, Message: err.Error()}
		}
		out = append(out, &Program{Rule: SourcedRule{Rule: r}, prg: prg})
	}
	return out, nil
}

// Eval evaluates the rule with the given variables. It returns false with an error when the
// evaluation fails (fail closed); the error names the rule.
func (p *Program) Eval(ctx context.Context, vars map[string]any) (bool, error) {
	out, _, err := p.prg.ContextEval(ctx, vars)
	if err != nil {
		return false, fmt.Errorf("rule %s: %w", p.Rule.Name, err)
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("rule %s: result %v is not a bool", p.Rule.Name, out)
	}
	return b, nil
}
