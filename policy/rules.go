package policy

import (
	"context"
	"fmt"
	"path"
	"reflect"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/scope"
)

// RuleCostLimit bounds the work one rule evaluation may do (CEL cost units).
const RuleCostLimit = 100_000

// RuleVars are the variables a rule sees (SPEC §6), one field per variable, named by its cel tag;
// the fields of each variable are its type's fields, named by their cel tags. The CEL environment
// declares every variable from this type (built once), so each listed field is always present
// with the CEL type of its Go type — string, int, list(string), map(string, double) for
// run.resources, map(string, string) for run.labels — an absent value reads as "", 0, [] or {},
// and a rule naming a variable or field that does not exist does not compile.
type RuleVars struct {
	Subject  RuleSubject  `cel:"subject"`
	Project  RuleProject  `cel:"project"`
	Run      Run          `cel:"run"`
	Settings RuleSettings `cel:"settings"`
}

// RuleSubject is the CEL variable `subject`: the user creating the run.
type RuleSubject struct {
	ID      string `cel:"id"`
	OrgRole string `cel:"org_role"` // "" for a non-member
	Role    string `cel:"role"`     // the subject's role on the project ("none" without one)
}

// RuleProject is the CEL variable `project`.
type RuleProject struct {
	Org   string   `cel:"org"`
	Name  string   `cel:"name"`
	Teams []string `cel:"teams"` // the project's own teams
}

// RuleSettings is the CEL variable `settings`: the effective settings reduced to plain values
// (FIELD → value or values; SPEC §11 names).
type RuleSettings struct {
	Connections              []string `cel:"connections"`
	Agents                   []string `cel:"agents"`
	Queues                   []string `cel:"queues"`
	Namespaces               []string `cel:"namespaces"`
	Presets                  []string `cel:"presets"`
	Teams                    []string `cel:"teams"`
	Projects                 []string `cel:"projects"`
	ExcludedRuntimes         []string `cel:"excluded_runtimes"`
	ExcludedFeatures         []string `cel:"excluded_features"`
	Queue                    string   `cel:"queue"`
	DefaultPresets           []string `cel:"default_presets"`
	Namespace                string   `cel:"namespace"`
	ArchivedDeletionInterval int64    `cel:"archived_deletion_interval"`
}

// ruleSettings reduces effective settings to the CEL variable `settings`.
func (e Effective) ruleSettings() RuleSettings {
	return RuleSettings{
		Connections: e.Connections.Values, Agents: e.Agents.Values, Queues: e.Queues.Values,
		Namespaces: e.Namespaces.Values, Presets: e.Presets.Values, Teams: e.Teams.Values,
		Projects: e.Projects.Values, ExcludedRuntimes: e.ExcludedRuntimes.Values,
		ExcludedFeatures: e.ExcludedFeatures.Values, Queue: e.Queue.Value,
		DefaultPresets: e.DefaultPresets.Values, Namespace: e.Namespace.Value,
		ArchivedDeletionInterval: int64(e.ArchivedDeletionInterval.Value),
	}
}

// activation maps each variable's name to its value.
func (v *RuleVars) activation() map[string]any {
	rv := reflect.ValueOf(v).Elem()
	out := make(map[string]any, rv.NumField())
	for i := range rv.NumField() {
		out[rv.Type().Field(i).Tag.Get("cel")] = rv.Field(i).Interface()
	}
	return out
}

// celEnv declares RuleVars. It is immutable once built and safe for concurrent use, so one is
// shared.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	vt := reflect.TypeFor[RuleVars]()
	types := []any{ext.ParseStructTags(true)}
	var vars []cel.EnvOption
	for i := range vt.NumField() {
		f := vt.Field(i)
		types = append(types, f.Type)
		// NativeTypes names a struct type after its package and type name.
		vars = append(vars, cel.Variable(f.Tag.Get("cel"), cel.ObjectType(path.Base(f.Type.PkgPath())+"."+f.Type.Name())))
	}
	return cel.NewEnv(append([]cel.EnvOption{ext.NativeTypes(types...), cel.CrossTypeNumericComparisons(true)}, vars...)...)
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
func (p *Program) Eval(ctx context.Context, vars RuleVars) (bool, error) {
	out, _, err := p.prg.ContextEval(ctx, vars.activation())
	if err != nil {
		return false, fmt.Errorf("rule %s: %w", p.Rule.Name, err)
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("rule %s: result %v is not a bool", p.Rule.Name, out)
	}
	return b, nil
}
