// Package rego holds teamgate's default Rego policy (authz.rego, Rego v1) and its data
// (data.json: ranks, the org-role mapping and the action catalog), loads authors' modules and
// data beside it, prepares the decision query once, and runs Rego tests with OPA's tester.
//
// The input document and the output are described in README.md beside this file. Authors extend
// the policy through data.teamgate.ext.deny and data.teamgate.ext.allow, change the catalog with
// their own JSON data (merged over data.json), or replace any rule of package teamgate.authz.
package rego

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/teamgate/teamgate/scope"
)

//go:embed authz.rego authz_test.rego data.json
var embedded embed.FS

// Query is the decision every evaluation reads.
const Query = "data.teamgate.authz.decision"

// Module is one Rego source file.
type Module struct {
	Name   string // file name, shown in errors
	Source string
}

// DefaultModules returns the embedded default policy (without its tests).
func DefaultModules() []Module {
	src, _ := embedded.ReadFile("authz.rego")
	return []Module{{Name: "teamgate/authz.rego", Source: string(src)}}
}

// DefaultTests returns the default policy's Rego tests.
func DefaultTests() []Module {
	src, _ := embedded.ReadFile("authz_test.rego")
	return []Module{{Name: "teamgate/authz_test.rego", Source: string(src)}}
}

// DefaultData returns a fresh copy of the embedded data document.
func DefaultData() map[string]any {
	raw, _ := embedded.ReadFile("data.json")
	var d map[string]any
	if err := json.Unmarshal(raw, &d); err != nil {
		panic("teamgate: embedded data.json is invalid: " + err.Error()) // static input, caught by tests
	}
	return d
}

// LoadDir reads an author's policy directory: every *.rego file (tests included) as a module and
// every *.json file as data merged over the default data. Subdirectories are read too.
func LoadDir(dir string) ([]Module, []map[string]any, error) {
	var mods []Module
	var data []map[string]any
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		switch filepath.Ext(path) {
		case ".rego":
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			mods = append(mods, Module{Name: path, Source: string(src)})
		case ".json":
			raw, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			var doc map[string]any
			if err := json.Unmarshal(raw, &doc); err != nil {
				return &Error{Op: "load data", Detail: path + ": " + err.Error()}
			}
			data = append(data, doc)
		}
		return nil
	})
	if err != nil {
		var re *Error
		if errors.As(err, &re) {
			return nil, nil, err
		}
		return nil, nil, &Error{Op: "load policy directory", Detail: err.Error()}
	}
	return mods, data, nil
}

// Error reports a policy that cannot be loaded, compiled or evaluated.
type Error struct {
	Op     string // "compile", "eval", "load data", ...
	Detail string
}

func (e *Error) Error() string { return "rego: " + e.Op + ": " + e.Detail }

// ActionSpec is one entry of the action catalog.
type ActionSpec struct {
	Kind     scope.Kind `json:"kind"`                // org, team or project
	Role     string     `json:"role,omitempty"`      // least project or team role
	OrgRoles []string   `json:"org_roles,omitempty"` // allowed org roles
	// Attributes the action reads and the engine must validate.
	ManagesMembers  bool   `json:"manages_members,omitempty"`
	DestinationRole string `json:"destination_role,omitempty"`
	OwnRunRole      string `json:"own_run_role,omitempty"`
}

// Policy is a compiled, prepared policy. It is immutable and safe for concurrent use.
type Policy struct {
	prepared      rego.PreparedEvalQuery
	actions       map[string]ActionSpec
	modules       []Module
	data          map[string]any
	customized    bool
	deterministic bool
	fingerprint   string
	ranks         map[string]int // data.teamgate.ranks
	table         *Table         // nil when authors' modules are loaded
}

// New compiles the default policy plus the given modules, with data merged over the default data
// (objects merge key by key, anything else replaces), and prepares the decision query.
func New(ctx context.Context, modules []Module, data ...map[string]any) (*Policy, error) {
	all := append(DefaultModules(), modules...)
	merged := DefaultData()
	for _, d := range data {
		merged = mergeData(merged, d)
	}
	p := &Policy{modules: all, data: merged, customized: len(modules) > 0 || len(data) > 0}
	p.fingerprint = fingerprint(all, merged)
	p.deterministic = true
	for _, m := range modules {
		if nondeterministic(m) {
			p.deterministic = false
		}
	}
	if err := p.readCatalog(); err != nil {
		return nil, err
	}
	if err := p.readRanks(); err != nil {
		return nil, err
	}
	if len(modules) == 0 {
		p.table = &Table{p: p}
	}
	opts := []func(*rego.Rego){
		rego.Query(Query),
		rego.Store(inmem.NewFromObjectWithOpts(merged, inmem.OptReturnASTValuesOnRead(true))),
		rego.StoreReadAST(true),
		rego.StrictBuiltinErrors(true),
	}
	for _, m := range all {
		if strings.HasSuffix(m.Name, "_test.rego") {
			continue
		}
		opts = append(opts, rego.Module(m.Name, m.Source))
	}
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, &Error{Op: "compile", Detail: err.Error()}
	}
	p.prepared = pq
	return p, nil
}

func (p *Policy) readCatalog() error {
	tg, _ := p.data["teamgate"].(map[string]any)
	raw, err := json.Marshal(tg["actions"])
	if err != nil {
		return &Error{Op: "load data", Detail: "teamgate.actions: " + err.Error()}
	}
	var actions map[string]ActionSpec
	if err := json.Unmarshal(raw, &actions); err != nil {
		return &Error{Op: "load data", Detail: "teamgate.actions: " + err.Error()}
	}
	for name, a := range actions {
		if a.Kind != scope.KindOrg && a.Kind != scope.KindTeam && a.Kind != scope.KindProject {
			return &Error{Op: "load data", Detail: fmt.Sprintf("action %s: kind %q is not org, team or project", name, a.Kind)}
		}
	}
	p.actions = actions
	return nil
}

// Fingerprint identifies the policy's modules and data: two policies with the same fingerprint
// decide alike. Persistent caches key on it.
func (p *Policy) Fingerprint() string { return p.fingerprint }

func fingerprint(mods []Module, data map[string]any) string {
	h := sha256.New()
	for _, m := range mods {
		fmt.Fprintf(h, "%d:%s%d:%s", len(m.Name), m.Name, len(m.Source), m.Source)
	}
	raw, _ := json.Marshal(data) // map keys are sorted: canonical
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Deterministic reports whether the policy's decisions depend only on its input and data: no
// module calls a built-in OPA marks non-deterministic (time.now_ns, http.send, rand.intn, …).
// Only a deterministic policy's decisions may be cached.
func (p *Policy) Deterministic() bool { return p.deterministic }

// nondeterministic reports whether a module calls a non-deterministic built-in. A module that
// does not parse is left to the compiler's error.
func nondeterministic(m Module) bool {
	mod, err := ast.ParseModuleWithOpts(m.Name, m.Source, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return false
	}
	found := false
	ast.WalkExprs(mod, func(x *ast.Expr) bool {
		if x.IsCall() {
			if b, ok := ast.BuiltinMap[x.Operator().String()]; ok && b.IsNondeterministic() {
				found = true
			}
		}
		return found
	})
	if !found {
		// Calls written as terms inside expressions (x := time.now_ns()).
		ast.WalkTerms(mod, func(t *ast.Term) bool {
			if call, ok := t.Value.(ast.Call); ok && len(call) > 0 {
				if b, ok := ast.BuiltinMap[call[0].String()]; ok && b.IsNondeterministic() {
					found = true
				}
			}
			return found
		})
	}
	return found
}

// Customized reports whether authors' modules or data are loaded beside the default policy.
// Table tells whether the default rules are in force (with data of any kind).
func (p *Policy) Customized() bool { return p.customized }

// Action returns the catalog entry of an action.
func (p *Policy) Action(name string) (ActionSpec, bool) {
	a, ok := p.actions[name]
	return a, ok
}

// Actions returns the catalog's action names, sorted.
func (p *Policy) Actions() []string {
	out := make([]string, 0, len(p.actions))
	for k := range p.actions {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Reason is a stable code and a message for people.
type Reason struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// Result is the policy's decision document.
type Result struct {
	Allow   bool
	Role    string
	Reasons []Reason
}

// Eval evaluates the decision for input. Any evaluation error, or a result that is not a
// decision document, is returned as an error: callers deny.
//
// The context's cancellation reaches OPA through a callback (context.AfterFunc) rather than the
// goroutine per evaluation OPA starts by default, and the result is read from OPA's AST directly
// instead of being converted to Go maps first.
func (p *Policy) Eval(ctx context.Context, in *Input) (Result, error) {
	cancel := topdown.NewCancel()
	stop := context.AfterFunc(ctx, cancel.Cancel)
	defer stop()
	rs, err := p.prepared.Eval(ctx, rego.EvalParsedInput(in.value()), rego.EvalExternalCancel(cancel), rego.EvalGenerateJSON(keepAST))
	if err != nil {
		return Result{}, &Error{Op: "eval", Detail: err.Error()}
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return Result{}, &Error{Op: "eval", Detail: "no decision"}
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return Result{}, &Error{Op: "eval", Detail: fmt.Sprintf("decision is %T", rs[0].Expressions[0].Value)}
	}
	return decode(t.Value)
}

// keepAST hands the result term through unconverted.
func keepAST(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

var (
	keyAllow   = ast.StringTerm("allow")
	keyRole    = ast.StringTerm("role")
	keyReasons = ast.StringTerm("reasons")
	keyCode    = ast.StringTerm("code")
	keyMessage = ast.StringTerm("message")
)

func decode(v ast.Value) (Result, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return Result{}, &Error{Op: "eval", Detail: fmt.Sprintf("decision is %s, want an object", ast.ValueName(v))}
	}
	var r Result
	allow, ok := termValue(obj, keyAllow).(ast.Boolean)
	if !ok {
		return Result{}, &Error{Op: "eval", Detail: "decision.allow is not a boolean"}
	}
	r.Allow = bool(allow)
	if role, ok := termValue(obj, keyRole).(ast.String); ok {
		r.Role = string(role)
	}
	if reasons, ok := termValue(obj, keyReasons).(*ast.Array); ok {
		r.Reasons = make([]Reason, 0, reasons.Len())
		for i := range reasons.Len() {
			ro, _ := reasons.Elem(i).Value.(ast.Object)
			if ro == nil {
				return Result{}, &Error{Op: "eval", Detail: "a decision reason is not an object"}
			}
			code, _ := termValue(ro, keyCode).(ast.String)
			msg, _ := termValue(ro, keyMessage).(ast.String)
			if code == "" {
				return Result{}, &Error{Op: "eval", Detail: "a decision reason has no code"}
			}
			r.Reasons = append(r.Reasons, Reason{Code: Code(code), Message: string(msg)})
		}
	}
	if r.Role == "" {
		r.Role = "none"
	}
	return r, nil
}

func termValue(o ast.Object, k *ast.Term) ast.Value {
	if t := o.Get(k); t != nil {
		return t.Value
	}
	return nil
}

// TestResult is the outcome of one Rego test rule.
type TestResult struct {
	Package string
	Name    string
	Pass    bool
	Error   string // evaluation error, if any
}

// Test runs every test_ rule of the given modules (an author's policy and tests) with the
// default policy and the merged data loaded. Pass DefaultTests() to run the default policy's own
// tests (they assume no extension package is loaded).
func Test(ctx context.Context, modules []Module, data ...map[string]any) ([]TestResult, error) {
	all := append(DefaultModules(), modules...)
	merged := DefaultData()
	for _, d := range data {
		merged = mergeData(merged, d)
	}
	parsed := map[string]*ast.Module{}
	for _, m := range all {
		mod, err := ast.ParseModuleWithOpts(m.Name, m.Source, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, &Error{Op: "compile", Detail: err.Error()}
		}
		parsed[m.Name] = mod
	}
	store := inmem.NewFromObject(merged)
	var out []TestResult
	err := storage.Txn(ctx, store, storage.TransactionParams{}, func(txn storage.Transaction) error {
		ch, err := tester.NewRunner().SetStore(store).SetModules(parsed).RaiseBuiltinErrors(true).RunTests(ctx, txn)
		if err != nil {
			return &Error{Op: "compile", Detail: err.Error()}
		}
		for r := range ch {
			tr := TestResult{Package: r.Package, Name: r.Name, Pass: r.Pass()}
			if r.Error != nil {
				tr.Error = r.Error.Error()
			}
			out = append(out, tr)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b TestResult) int { return strings.Compare(a.Package+"."+a.Name, b.Package+"."+b.Name) })
	return out, err
}

// mergeData merges src over dst: objects key by key, anything else replaced.
func mergeData(dst, src map[string]any) map[string]any {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dst[k] = mergeData(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}
