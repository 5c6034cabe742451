// Package rego holds teamgate's default Rego policy (authz.rego, Rego v1) and its data
// (data.json: ranks, the org-role mapping and the action catalog), loads authors' modules and
// data beside it, prepares the decision query once, and runs Rego tests with OPA's tester.
//
// The input document is the typed Input (input.go), which this package alone turns into OPA's
// AST; it and the output are described in README.md beside this file. While the policy's modules
// read nothing but a request's role facts (the default ones, and authors' modules that provably
// read only those: README.md, "The decision table"), its Table (table.go) gives its verdict on
// them, each cell computed once by evaluating the policy itself; the engine's compiled path and
// listings ask it.
//
// Authors extend the policy through data.teamgate.ext.deny and data.teamgate.ext.allow, and
// change the catalog with their own JSON data (merged over data.json). An author's modules
// declare package teamgate.ext (or a subpackage of it) or are tests; see New and Test. They are
// bounded before OPA compiles them (ErrLimit), and linted after (Policy.Warnings).
package rego

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/types"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/scope"
)

//go:embed authz.rego authz_test.rego testing.rego data.json
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

// TestHelpers returns the modules every Rego test run loads beside the default policy:
// teamgate/testing.rego, package teamgate.testing, whose request(patch) and
// input_for(subject, action, resource) build a whole input from the facts a test names.
func TestHelpers() []Module {
	src, _ := embedded.ReadFile("testing.rego")
	return []Module{{Name: "teamgate/testing.rego", Source: string(src)}}
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

// LoadDir reads an author's policy directory (or one file; see Files), subdirectories included:
// every *.rego file (tests included) as a module named by its path, and every *.json file as a
// data document (one JSON object) merged over the default data. Modules are checked when they
// are compiled (New, Test); a data file that does not parse is an *Error naming the file and line,
// and data files past MaxDataBytes together one matching ErrLimit, naming the file, line and
// column where they cross it. A path that holds no such file is an *Error too (see Files).
func LoadDir(dir string) ([]Module, []map[string]any, error) {
	files, err := Files(dir)
	if err != nil {
		return nil, nil, err
	}
	var mods []Module
	var data []map[string]any
	var dataBytes int64 // MaxDataBytes
	for _, path := range files {
		if filepath.Ext(path) == ".json" {
			fi, err := os.Stat(path)
			if err != nil {
				return nil, nil, &Error{Op: "load", File: path, Detail: err.Error(), err: err}
			}
			if err := dataBound(path, fi.Size(), &dataBytes); err != nil {
				return nil, nil, err
			}
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, &Error{Op: "load", File: path, Detail: err.Error(), err: err}
		}
		if filepath.Ext(path) == ".rego" {
			mods = append(mods, Module{Name: path, Source: string(raw)})
			continue
		}
		doc, err := decodeData(path, raw)
		if err != nil {
			return nil, nil, err
		}
		data = append(data, doc)
	}
	return mods, data, nil
}

// Files lists the *.rego and *.json files of a policy path, in lexical order: the path itself
// when it is such a file, else every one under the directory, subdirectories included. A path
// that is a symbolic link to a directory is followed (links below it are read as files, never
// walked). A path that holds no such file is an *Error matching teamgate.ErrInvalid: an empty,
// mistyped or unmounted policy directory must not leave the default rules deciding alone.
func Files(path string) ([]string, error) {
	root := path
	fi, err := os.Stat(path)
	if err != nil { // missing, unreadable, a loop of links: say why (the path once)
		detail := err.Error()
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			detail = pe.Err.Error()
		}
		return nil, &Error{Op: "load", File: path, Detail: detail, err: err}
	}
	if fi.IsDir() {
		// The trailing separator makes WalkDir's Lstat of the root follow a link to a directory.
		root = path + string(filepath.Separator)
	}
	var files []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := filepath.Ext(p); !d.IsDir() && (ext == ".rego" || ext == ".json") {
			files = append(files, filepath.Clean(p))
		}
		return nil
	})
	if err != nil {
		return nil, &Error{Op: "load", File: path, Detail: err.Error(), err: err}
	}
	if len(files) == 0 {
		return nil, &Error{Op: "load", File: path, Detail: "holds no .rego module or .json data file"}
	}
	return files, nil
}

// decodeData decodes one data file, which must hold a JSON object.
func decodeData(path string, raw []byte) (map[string]any, error) {
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		var off int64
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			off = syn.Offset
		case errors.As(err, &typ):
			off = typ.Offset
		}
		line := 1 + bytes.Count(raw[:min(max(off, 0), int64(len(raw)))], []byte("\n"))
		return nil, &Error{Op: "load data", File: path, Line: line, Detail: err.Error()}
	}
	if doc == nil {
		return nil, &Error{Op: "load data", File: path, Line: 1, Detail: "a data file holds one JSON object, not null"}
	}
	return doc, nil
}

// Error reports one problem with a policy: a module or data file that cannot be loaded or
// compiled (Op "load", "load data", "compile"; these match teamgate.ErrInvalid), or an evaluation
// that failed (Op "eval"). Several problems found at once are returned joined (errors.Join), one
// *Error per problem, so errors.As finds the first and the message lists them all.
type Error struct {
	Op     string // "load", "load data", "compile" or "eval"
	File   string // module or data file; "" when the problem has no single file
	Line   int    // 1-based line in File; 0 when unknown
	Col    int    // 1-based column in Line; 0 when unknown (only a limit's error has one: ErrLimit)
	Detail string // OPA's code and message, or the JSON decoder's message
	// Context is OPA's detail lines of a compile problem, not part of Error(): the source line
	// and a caret under the place, or a type error's have and want (`opa test`, `opa check`
	// print them under the message; so does `teamgate test`).
	Context []string
	err     error // cause kept for errors.Is (an fs error, a context error)
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("rego: " + e.Op + ": ")
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
			if e.Col > 0 {
				b.WriteString(":" + strconv.Itoa(e.Col))
			}
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Detail)
	return b.String()
}

// Unwrap makes a load or compile error match teamgate.ErrInvalid, and keeps the cause.
func (e *Error) Unwrap() []error {
	var out []error
	if e.Op != "eval" {
		out = append(out, teamgate.ErrInvalid)
	}
	if e.err != nil {
		out = append(out, e.err)
	}
	return out
}

// fromOPA turns an OPA error into one *Error per problem OPA reports, with its file and line.
func fromOPA(op string, err error) error {
	var list ast.Errors
	var one *ast.Error
	switch {
	case errors.As(err, &list):
	case errors.As(err, &one):
		list = ast.Errors{one}
	default:
		return &Error{Op: op, Detail: err.Error(), err: err}
	}
	list.Sort() // by file and line, whatever stage of OPA's compiler found each
	out := make([]error, 0, len(list))
	for _, e := range list {
		re := &Error{Op: op, Detail: e.Code + ": " + e.Message}
		if e.Details != nil {
			re.Context = e.Details.Lines()
		}
		if e.Location != nil {
			re.File, re.Line = e.Location.File, e.Location.Row
		}
		out = append(out, re)
	}
	return errors.Join(out...)
}

// extPackage is the package authors' policy modules declare: package teamgate.ext itself or a
// subpackage of it (teamgate.ext.lib, for helpers the ext rules import).
const extPackage = "teamgate.ext"

// isTest reports whether a module holds tests, following OPA's conventions: a file named
// *_test.rego, or a package whose last part ends in _test. Tests run only in Test; they are never
// part of a policy that decides.
func isTest(name string, pkg ast.Ref) bool {
	if strings.HasSuffix(name, "_test.rego") {
		return true
	}
	last, ok := pkg[len(pkg)-1].Value.(ast.String)
	return ok && strings.HasSuffix(string(last), "_test")
}

// isExt reports whether a package path is data.teamgate.ext or below it.
func isExt(pkg ast.Ref) bool {
	return len(pkg) >= 3 && pkg[1].Value.Compare(ast.String("teamgate")) == 0 && pkg[2].Value.Compare(ast.String("ext")) == 0
}

// parse parses the default modules and an author's modules (Rego v1). An author's module must
// have a unique, non-empty name and be a test module or declare package teamgate.ext (or a
// subpackage); every problem is reported, each naming its file. It returns the modules that make
// the deciding policy and the test modules, keyed by name, and where a deciding author's module
// calls print ("" when none does): OPA's compiler erases print calls from the modules it compiles,
// so the decision table's check (readsOf) finds them here, in the module as written.
func parse(authors []Module) (policy, tests map[string]*ast.Module, prints string, err error) {
	policy, tests = map[string]*ast.Module{}, map[string]*ast.Module{}
	var errs []error
	defaults := DefaultModules()
	var spent budget // by the authors' modules together (MaxRules, MaxWeight, MaxClosureWeight)
	size := 0        // and MaxSourceBytes
	if len(authors) > MaxModules {
		return nil, nil, "", limitError(&ast.Location{File: authors[MaxModules].Name, Row: 1, Col: 1},
			fmt.Sprintf("more than %d authors' modules (%d)", MaxModules, len(authors)))
	}
	for i, m := range append(defaults, authors...) {
		author := i >= len(defaults)
		if m.Name == "" {
			errs = append(errs, &Error{Op: "compile", Detail: fmt.Sprintf("module %d has no name", i-len(defaults)+1)})
			continue
		}
		if _, dup := policy[m.Name]; dup || tests[m.Name] != nil {
			errs = append(errs, &Error{Op: "compile", File: m.Name, Detail: "two modules have this name"})
			continue
		}
		var mod *ast.Module
		var err error
		if author {
			if err := sourceBound(m.Name, m.Source, &size); err != nil {
				errs = append(errs, err)
				continue
			}
			mod, err = parseAuthor(m.Name, m.Source, &spent) // within the limits (limits.go)
		} else {
			mod, err = ast.ParseModuleWithOpts(m.Name, m.Source, ast.ParserOptions{RegoVersion: ast.RegoV1})
			if err != nil {
				err = fromOPA("compile", err)
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pkg := mod.Package.Path
		switch {
		case isTest(m.Name, pkg):
			tests[m.Name] = mod
		case !author || isExt(pkg):
			policy[m.Name] = mod
			errs = append(errs, scalarExtRules(m.Name, mod)...)
			if author {
				refErrs, at := authorRefs(m.Name, mod)
				errs = append(errs, refErrs...)
				if prints == "" {
					prints = at
				}
			}
		default:
			errs = append(errs, &Error{Op: "compile", File: m.Name, Line: mod.Package.Location.Row,
				Detail: fmt.Sprintf("package %s is not allowed: an author's module declares package %s or a subpackage of it, or holds tests (a file named *_test.rego or a package ending in _test)", strings.TrimPrefix(pkg.String(), "data."), extPackage)})
		}
	}
	if len(errs) > 0 {
		return nil, nil, "", errors.Join(errs...)
	}
	if len(authors) > 0 { // the default policy alone is far within MaxDependencyWork
		all := maps.Clone(policy)
		maps.Copy(all, tests)
		if err := dependencyBound(all, defaults[0].Name); err != nil {
			return nil, nil, "", err
		}
	}
	return policy, tests, prints, nil
}

// testingPackage is the test helper's package (TestHelpers), loaded only when tests run.
var testingPackage = ast.MustParseRef("data.teamgate.testing")

// authorRefs reports where a policy module (not a test) refers to the test helper: it is loaded
// only under Test, so such a rule would behave one way in the author's tests and another (the
// reference undefined) when it decides. It also returns where the module first calls print
// ("" when it does not), which keeps its policy from a decision table (see parse).
func authorRefs(file string, mod *ast.Module) (errs []error, prints string) {
	ast.WalkRefs(mod, func(r ast.Ref) bool {
		line := 0
		if r[0].Location != nil {
			line = r[0].Location.Row
		}
		if r.HasPrefix(testingPackage) {
			errs = append(errs, &Error{Op: "compile", File: file, Line: line,
				Detail: fmt.Sprintf("%s is the test helper, loaded only when tests run: a policy module may not use it (a test module may)", r)})
		}
		if prints == "" && (r.Equal(ast.Print.Ref()) || r.Equal(ast.InternalPrint.Ref())) {
			prints = fmt.Sprintf("%s:%d: calls print, which must run on every decision, not once per table cell", file, line)
		}
		return false
	})
	return errs, prints
}

// scalarExtRules reports the rules of package teamgate.ext that define deny or allow as one
// boolean, string, number or null (`deny if ...`, `deny := "frozen"`): the default policy reads
// them as collections of messages, so OPA's type checker refuses such a rule, but it names the
// default policy's line that reads it. This names the author's rule instead.
func scalarExtRules(file string, mod *ast.Module) []error {
	if len(mod.Package.Path) != 3 || !isExt(mod.Package.Path) {
		return nil
	}
	var errs []error
	for _, r := range mod.Rules {
		ref := r.Head.Ref()
		name, _ := ref[0].Value.(ast.Var)
		if len(ref) != 1 || (name != "deny" && name != "allow") || r.Head.Value == nil {
			continue
		}
		switch r.Head.Value.Value.(type) {
		case ast.Boolean, ast.String, ast.Number, ast.Null:
			errs = append(errs, &Error{Op: "compile", File: file, Line: r.Location.Row,
				Detail: fmt.Sprintf("%s must be a set of messages: write `%s contains \"why\" if ...`, not a single value", name, name)})
		}
	}
	return errs
}

// ActionSpec is one entry of the action catalog.
type ActionSpec struct {
	Kind     scope.Kind `json:"kind"`                // org, team or project
	Role     string     `json:"role,omitempty"`      // least project or team role
	OrgRoles []string   `json:"org_roles,omitempty"` // allowed org roles
	// Attributes the action reads and the engine must validate.
	// ManagesMembers: attributes.target_role and target_current_role name the role the request
	// gives and the one it changes — org roles for an org action, roles a team member or grant
	// may hold otherwise — and none may rank above the subject's own role there (SPEC §4).
	ManagesMembers  bool   `json:"manages_members,omitempty"`
	DestinationRole string `json:"destination_role,omitempty"`
	OwnRunRole      string `json:"own_run_role,omitempty"`

	index int32 // 1 + the action's position in its catalog's sorted names (Table.VerdictOfCodes); 0 outside a catalog
}

// Policy is a compiled, prepared policy. It is immutable and safe for concurrent use.
type Policy struct {
	prepared      rego.PreparedEvalQuery
	txn           rego.EvalOption // every evaluation's read transaction on the policy's store (see New)
	actions       map[string]ActionSpec
	byName        actionIndex // actions, for Action
	data          map[string]any
	deterministic bool
	extAllows     bool // data.teamgate.ext.allow is defined (ExtAllows)
	fingerprint   string
	ranks         map[string]int       // data.teamgate.ranks
	extended      bool                 // a deciding author's module is loaded or data defines teamgate.ext (Extended)
	modules       bool                 // a deciding author's module is loaded (HasModules)
	table         *Table               // nil when an author's module may read more than the table's key (noTable says why)
	noTable       string               // why the policy has no table; "" when it has one
	vocab         map[string]*ast.Term // shared input terms (Policy.term); read-only
	reads         inputReads           // what the modules read of the input (Input.value)
	warnings      []Warning            // what vet finds in the authors' deciding modules (Warnings)
}

// New compiles the default policy plus the given modules, with data merged over the default data
// (objects merge key by key, anything else replaces), and prepares the decision query.
//
// An author's module declares package teamgate.ext or a subpackage of it; test modules (see Test)
// are accepted and left out of the deciding policy. Any other package, a module that does not
// parse or compile, or a duplicate module name is an error matching teamgate.ErrInvalid: one *Error
// per problem, with the file, the line and OPA's message. Authors' modules past a limit
// (limits.go: nesting, size, rule counts; README.md, "Limits") are refused before OPA's compiler
// runs, with an error matching ErrLimit too, at the file, line and column.
func New(ctx context.Context, modules []Module, data ...map[string]any) (*Policy, error) {
	deciding, _, prints, err := parse(modules)
	if err != nil {
		return nil, err
	}
	merged := mergedData(data)
	p := &Policy{data: merged, fingerprint: fingerprint(append(DefaultModules(), modules...), merged)}
	if err := p.readRanks(); err != nil {
		return nil, err
	}
	if err := p.readData(); err != nil {
		return nil, err
	}
	p.vocab = p.newVocab()
	p.extended = definesExt(deciding, merged)
	p.modules = len(deciding) > len(DefaultModules())
	var compiler *ast.Compiler
	var store storage.Store
	prepare := func(fold bool) (rego.PreparedEvalQuery, error) {
		store = inmem.NewFromObjectWithOpts(merged, inmem.OptReturnASTValuesOnRead(true))
		opts := []func(*rego.Rego){
			rego.Query(Query),
			rego.Store(store),
			rego.StoreReadAST(true),
			rego.StrictBuiltinErrors(true),
			rego.CompilerHook(func(c *ast.Compiler) { compiler = c }),
		}
		for _, name := range slices.Sorted(maps.Keys(deciding)) {
			mod := deciding[name]
			if fold && name == DefaultModules()[0].Name {
				mod = foldData(mod, merged, !definesExt(deciding, merged))
			}
			opts = append(opts, rego.ParsedModule(mod))
		}
		return rego.New(opts...).PrepareForEval(ctx)
	}
	fold := !replacesDefaultData(deciding)
	pq, err := prepare(fold)
	if err != nil && fold {
		// Folded values are visible to OPA's type checker, which rejects what it can tell will
		// never be defined (a catalog field set to null, say): such data evaluates the same
		// from the store, and the module as written is the one whose errors are reported.
		pq, err = prepare(false)
	}
	if err != nil {
		return nil, fromOPA("compile", err)
	}
	p.prepared = pq
	// The store is the policy's own and nothing writes to it after PrepareForEval, so every
	// evaluation reads it through one read transaction, opened here and never closed (it only
	// holds a read lock that no writer waits for): OPA would otherwise open and close one per
	// evaluation, an allocation and a shared lock word every core writes.
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, fromOPA("compile", err)
	}
	p.txn = rego.EvalTransaction(txn)
	// The decision table (README.md, "The decision table"): test modules never decide (parse
	// leaves them out), and data, ext data included, is static; an author's deciding module keeps
	// the table only when it provably reads nothing but the table's key (readsOf) and calls no
	// print (parse: the compiler erased it).
	p.reads, p.noTable = readsOf(compiler.Modules)
	if p.noTable == "" {
		p.noTable = prints
	}
	if p.noTable == "" {
		p.table = newTable(p, p.modules)
	}
	p.deterministic = !nondeterministic(compiler.Modules)
	authors := slices.DeleteFunc(slices.Sorted(maps.Keys(deciding)), func(n string) bool { return n == DefaultModules()[0].Name })
	p.warnings = p.vet(deciding, compiler.Modules, authors)
	p.extAllows = definesExtAllow(compiler, merged)
	return p, nil
}

// foldData returns a copy of the default module with the base documents it reads under
// data.teamgate (ranks, org_base, org_override, org_ranks, the action catalog: every object or
// array there but ext) replaced by their values: a policy's data never changes, and OPA reads a
// literal several times faster than its store, which it would otherwise do on every evaluation.
// The rules are still written against data (authz.rego), so another data document folds in
// other values; data.teamgate.ext stays a reference (modules define it). When nothing defines
// data.teamgate.ext (extUndefined: no author's module, no ext data), the rules' `not
// data.teamgate.ext` is always true and is left out (folded to true where it is a whole body),
// sparing a store read and an expression per evaluation.
func foldData(mod *ast.Module, data map[string]any, extUndefined bool) *ast.Module {
	tg, _ := data["teamgate"].(map[string]any)
	lits := map[string]*ast.Term{}
	for k, v := range tg {
		switch v.(type) {
		case map[string]any, []any:
		default:
			continue // a scalar cannot head a reference: left to the store
		}
		if k == "ext" {
			continue
		}
		if lit, err := ast.InterfaceToValue(v); err == nil {
			lits[k] = ast.NewTerm(lit)
		}
	}
	out := mod.Copy()
	_, _ = ast.TransformRefs(out, func(r ast.Ref) (ast.Value, error) {
		if len(r) < 3 || !r[0].Equal(ast.DefaultRootDocument) || !r[1].Equal(teamgateKey) {
			return r, nil
		}
		k, ok := r[2].Value.(ast.String)
		if !ok || lits[string(k)] == nil {
			return r, nil
		}
		if len(r) == 3 {
			return lits[string(k)].Value, nil
		}
		return append(ast.Ref{lits[string(k)]}, r[3:]...), nil
	})
	if extUndefined {
		// A rule body's `not data.teamgate.ext` beside other expressions is dropped (OPA would
		// evaluate a `true` in its place); one that is the whole body, or stands in a
		// comprehension, becomes `true`.
		ast.WalkRules(out, func(r *ast.Rule) bool {
			if len(r.Body) < 2 {
				return false
			}
			kept := r.Body[:0]
			for _, e := range r.Body {
				if t, ok := e.Terms.(*ast.Term); ok && e.Negated && len(e.With) == 0 && t.Value.Compare(extRef) == 0 {
					continue
				}
				e.Index = len(kept)
				kept = append(kept, e)
			}
			if len(kept) > 0 {
				r.Body = kept
			}
			return false
		})
		ast.WalkBodies(out, func(b ast.Body) bool {
			for i, e := range b {
				if t, ok := e.Terms.(*ast.Term); ok && e.Negated && len(e.With) == 0 && t.Value.Compare(extRef) == 0 {
					folded := ast.NewExpr(ast.BooleanTerm(true))
					folded.Index, folded.Location = e.Index, e.Location
					b[i] = folded
				}
			}
			return false
		})
	}
	return out
}

// extRef is data.teamgate.ext, where authors' rules live.
var extRef = ast.Ref{ast.DefaultRootDocument, teamgateKey, ast.StringTerm("ext")}

// definesExt reports whether data.teamgate.ext may be defined: a deciding module of package
// teamgate.ext (or below), or ext data.
func definesExt(mods map[string]*ast.Module, data map[string]any) bool {
	for _, m := range mods {
		if isExt(m.Package.Path) {
			return true
		}
	}
	tg, _ := data["teamgate"].(map[string]any)
	_, ok := tg["ext"]
	return ok
}

var teamgateKey = ast.StringTerm("teamgate")

// replacesDefaultData reports whether a module replaces, with `with`, data the default rules
// read (data, data.teamgate or anything under it but ext). Folding that data into the default
// module would make such a replacement ineffective, so such a policy is left unfolded.
func replacesDefaultData(mods map[string]*ast.Module) bool {
	found := false
	for _, m := range mods {
		ast.WalkWiths(m, func(w *ast.With) bool {
			r, ok := w.Target.Value.(ast.Ref)
			if ok && r[0].Equal(ast.DefaultRootDocument) && (len(r) == 1 ||
				r[1].Equal(teamgateKey) && (len(r) == 2 || !r[2].Equal(ast.StringTerm("ext")))) {
				found = true
			}
			return found
		})
	}
	return found
}

// Fingerprint identifies the policy's modules and data: two policies with the same fingerprint
// decide alike. Persistent caches key on it.
func (p *Policy) Fingerprint() string { return p.fingerprint }

// FingerprintLen is the length of every policy's Fingerprint: hex digits of a SHA-256 prefix.
const FingerprintLen = 32

func fingerprint(mods []Module, data map[string]any) string {
	h := sha256.New()
	for _, m := range mods {
		fmt.Fprintf(h, "%d:%s%d:%s", len(m.Name), m.Name, len(m.Source), m.Source)
	}
	raw, _ := json.Marshal(data) // map keys are sorted: canonical
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil)[:FingerprintLen/2])
}

// Deterministic reports whether the policy's decisions depend only on its input and data. Only a
// deterministic policy's decisions may be cached.
//
// The answer is read from the compiled modules: a policy is non-deterministic when any rule,
// function, comprehension, every body or with modifier (target or value) of any module names a
// built-in OPA marks non-deterministic (time.now_ns, rand.intn, uuid.rfc4122, http.send, …) or
// that reads the clock unmarked (crypto.x509.parse_and_verify_certificates).
// Calls through functions and built-ins replaced with `with` (upper(x) with upper as
// uuid.rfc4122) are covered because every mention counts, reachable or not, and replacing such a
// built-in (with time.now_ns as 0) counts too: the check errs on the side of not caching.
func (p *Policy) Deterministic() bool { return p.deterministic }

// nondeterministic reports whether any of the compiled modules names a non-deterministic
// built-in anywhere (see Deterministic).
func nondeterministic(mods map[string]*ast.Module) bool {
	found := false
	for _, m := range mods {
		ast.WalkRefs(m, func(r ast.Ref) bool {
			if b, ok := ast.BuiltinMap[r.String()]; ok && volatile(b) {
				found = true
			}
			return found
		})
		if found {
			return true
		}
	}
	return false
}

// volatile reports a built-in whose answer may differ between two calls with the same
// arguments: one OPA marks non-deterministic, or one that reads the clock unmarked (readsClock).
func volatile(b *ast.Builtin) bool { return b.IsNondeterministic() || readsClock(b.Name) }

// readsClock reports built-ins whose answer depends on the current time although OPA does not
// mark them non-deterministic: certificate chains are verified at time.Now unless the options
// give a time, so a cached "valid" would outlive the certificate.
func readsClock(name string) bool {
	switch name {
	case "crypto.x509.parse_and_verify_certificates", "crypto.x509.parse_and_verify_certificates_with_options":
		return true
	}
	return false
}

// Action returns a copy of the catalog entry of an action: the caller may change it (its
// OrgRoles too) without changing the catalog.
func (p *Policy) Action(name string) (ActionSpec, bool) {
	if a, ok := p.byName.find(name); ok {
		return a.clone(), true
	}
	return ActionSpec{}, false
}

func (a *ActionSpec) clone() ActionSpec {
	c := *a
	c.OrgRoles = slices.Clone(a.OrgRoles)
	return c
}

// Spec is Action without the copy: a read-only handle on the policy's own catalog entry, shared
// by every caller (the decision path keeps it; Table.VerdictOfCodes knows its own entries by it). It
// reads the entry through methods only, so no caller changes the catalog of every other.
func (p *Policy) Spec(name string) (Spec, bool) {
	a, ok := p.byName.find(name)
	return Spec{a}, ok
}

// Spec is a read-only handle on an entry of a policy's action catalog (Policy.Spec). The zero
// Spec names no action: its methods return zero values.
type Spec struct{ a *ActionSpec }

// Valid reports whether s names an action.
func (s Spec) Valid() bool { return s.a != nil }

// Action returns a copy of the entry.
func (s Spec) Action() ActionSpec {
	if s.a == nil {
		return ActionSpec{}
	}
	return s.a.clone()
}

// Kind is ActionSpec.Kind.
func (s Spec) Kind() scope.Kind {
	if s.a == nil {
		return ""
	}
	return s.a.Kind
}

// Role is ActionSpec.Role.
func (s Spec) Role() string {
	if s.a == nil {
		return ""
	}
	return s.a.Role
}

// NumOrgRoles is len(ActionSpec.OrgRoles).
func (s Spec) NumOrgRoles() int {
	if s.a == nil {
		return 0
	}
	return len(s.a.OrgRoles)
}

// OrgRole is ActionSpec.OrgRoles[i].
func (s Spec) OrgRole(i int) string { return s.a.OrgRoles[i] }

// ManagesMembers is ActionSpec.ManagesMembers.
func (s Spec) ManagesMembers() bool { return s.a != nil && s.a.ManagesMembers }

// DestinationRole is ActionSpec.DestinationRole.
func (s Spec) DestinationRole() string {
	if s.a == nil {
		return ""
	}
	return s.a.DestinationRole
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

// Limit is the member-management limit a denied request crossed (SPEC §4: nobody assigns a role
// above their own; only an owner changes an owner), as the default policy names it in an
// insufficient_role reason, "limit": {"attribute", "role"}: the request's attribute (target_role,
// the role it gives, or target_current_role, the role it changes) and the role that attribute
// names. The engine writes the reason's message from it, so the message says what the policy
// decided. The zero Limit is none.
type Limit struct {
	Attribute string
	Role      string
}

// Result is the policy's decision document.
type Result struct {
	Allow   bool
	Role    string
	Reasons []Reason
	// Limits holds the limit each reason names, by index (the zero Limit where it names none);
	// nil when no reason names one. Read it with LimitOf.
	Limits []Limit
}

// LimitOf returns the limit reason i names, the zero Limit when it names none.
func (r *Result) LimitOf(i int) Limit { return limitOf(r.Limits, i) }

func limitOf(limits []Limit, i int) Limit {
	if i < len(limits) {
		return limits[i]
	}
	return Limit{}
}

// Eval evaluates the decision for input with no time budget: only ctx bounds it. Any evaluation
// error, or a result that is not a decision document, is returned as an error: callers deny.
// The result is read from OPA's AST directly instead of being converted to Go maps first.
func (p *Policy) Eval(ctx context.Context, in *Input) (Result, error) {
	return p.EvalWithin(ctx, in, 0)
}

// ErrBudget is the cause of an evaluation stopped by its time budget (EvalWithin): errors.Is
// finds it in the returned *Error.
var ErrBudget = errors.New("time budget exceeded")

// EvalWithin is Eval with a time budget: an evaluation still running after budget (0: no
// budget) is stopped and returns an *Error matching ErrBudget, as one stopped by ctx returns one
// carrying ctx's error; either way the result is discarded and callers deny. OPA checks for
// cancellation before each expression and inside its long-running built-ins (numbers.range,
// string and JSON builders), so a slow module stops a few dozen expressions after its budget is
// spent; a single built-in call that never checks (sorting one huge array) finishes first.
func (p *Policy) EvalWithin(ctx context.Context, in *Input, budget time.Duration) (Result, error) {
	st := getEvalState()
	defer putEvalState(st)
	stop := &st.stop
	stop.ctx, stop.budget = ctx, budget
	if budget > 0 {
		stop.start = time.Now()
	}
	st.opts[4], st.opts[5] = p.txn, rego.EvalParsedInput(in.value(p))
	rs, err := p.prepared.Eval(ctx, st.opts[:]...)
	switch {
	case stop.over:
		return Result{}, &Error{Op: "eval", Detail: fmt.Sprintf("evaluation exceeded its time budget of %s (stopped)", budget), err: ErrBudget}
	case stop.cancelled.Load() || (err != nil && ctx.Err() != nil): // fail closed, even if OPA finished
		cause := ctx.Err()
		if cause == nil {
			cause = context.Canceled
		}
		return Result{}, &Error{Op: "eval", Detail: "evaluation cancelled: " + cause.Error(), err: cause}
	case err != nil:
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

// stopper is the topdown.Cancel of one evaluation: it stops it when ctx ends or the budget is
// spent. OPA asks Cancelled before every expression, so the clock and ctx are read only every
// stopStride questions: a deadline then costs no timer, goroutine or context callback per
// evaluation. OPA evaluates a query on one goroutine, so the counter needs no atomics; Cancel
// may come from anywhere.
type stopper struct {
	ctx       context.Context
	budget    time.Duration // 0: none
	start     time.Time
	asked     uint32 // Cancelled calls so far
	over      bool   // the budget was spent (set on the evaluating goroutine)
	cancelled atomic.Bool
}

// stopStride is how many Cancelled calls share one look at the clock and ctx: a few µs of
// expressions, well under any sensible budget.
const stopStride = 64

var _ topdown.Cancel = (*stopper)(nil)

func (s *stopper) Cancel() { s.cancelled.Store(true) }

func (s *stopper) Cancelled() bool {
	s.asked++
	if s.asked%stopStride == 1 && !s.cancelled.Load() {
		switch {
		case s.ctx.Err() != nil:
			s.cancelled.Store(true)
		case s.budget > 0 && time.Since(s.start) > s.budget:
			s.over = true
			s.cancelled.Store(true)
		}
	}
	return s.cancelled.Load()
}

// noMetrics is the metrics of every evaluation: nobody reads them, and OPA's default records
// timers in a fresh map per evaluation.
var noMetrics = metrics.NoOp()

// keepAST hands the result term through unconverted.
func keepAST(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

var (
	keyAllow   = ast.StringTerm("allow")
	keyRole    = ast.StringTerm("role")
	keyReasons = ast.StringTerm("reasons")
	keyCode    = ast.StringTerm("code")
	keyMessage = ast.StringTerm("message")
	keyLimit   = ast.StringTerm("limit")
	keyAttr    = ast.StringTerm("attribute")
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
			if lv := termValue(ro, keyLimit); lv != nil {
				l, err := decodeLimit(i, Code(code), r.Allow, lv)
				if err != nil {
					return Result{}, err
				}
				if r.Limits == nil {
					r.Limits = make([]Limit, reasons.Len())
				}
				r.Limits[i] = l
			}
		}
	}
	if r.Role == "" {
		r.Role = "none"
	}
	return r, nil
}

// decodeLimit reads the "limit" of reason i (of code). The engine passes only string roles, but
// a Rego test's input may name any value: it is kept in Rego's text form rather than failing the
// decision. A limit that is not {"attribute": "target_role" or "target_current_role", "role"}, or
// one on a reason other than insufficient_role (the code of every limit the rules name) or of a
// decision that allows, fails the decision: the engine would otherwise write a message for a
// limit nobody decided.
func decodeLimit(i int, code Code, allow bool, v ast.Value) (Limit, error) {
	bad := func(why string) error {
		text := v.String()
		if len(text) > 64 { // a value may be big: the place says where, a prefix what
			text = strings.ToValidUTF8(text[:64], "") + "…"
		}
		return &Error{Op: "eval", Detail: fmt.Sprintf("decision.reasons[%d].limit %q: %s", i, text, why)}
	}
	o, _ := v.(ast.Object)
	if o == nil {
		return Limit{}, bad("not an object {attribute, role}")
	}
	attr, _ := termValue(o, keyAttr).(ast.String)
	role := termValue(o, keyRole)
	switch {
	case attr != "target_role" && attr != "target_current_role":
		return Limit{}, bad("its attribute is not target_role or target_current_role")
	case role == nil:
		return Limit{}, bad("it names no role")
	case code != CodeInsufficientRole:
		return Limit{}, bad("a limit is named by an insufficient_role reason only, not " + strconv.Quote(string(code)))
	case allow:
		return Limit{}, bad("a decision that allows crossed no limit")
	}
	l := Limit{Attribute: string(attr), Role: role.String()}
	if s, ok := role.(ast.String); ok {
		l.Role = string(s)
	}
	return l, nil
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

// TestOptions tune RunTests; the zero value runs every test, as Test does.
type TestOptions struct {
	// Run selects the tests to run: a regular expression matched against each test's
	// package.rule name (data.pkg.test_x), as `opa test --run`.
	Run string
	// Trace records each test's evaluation trace, so a failure can name the expression that
	// failed (tester.PrettyReporter with FailureLine) and -v can show the whole trace.
	Trace bool
	// Coverage, when not nil, records which lines of every loaded module (the default policy
	// included) the tests evaluate; read it with Coverage.Report(TestRun.Modules).
	Coverage *cover.Cover
	// Timeout bounds each test; 0 means 5 s, as `opa test`.
	Timeout time.Duration
	// VarValues records the values of the variables of each test's expressions (`opa test
	// --var-values`): a failing expression is shown with them (tester.PrettyReporter with
	// LocalVars). It implies Trace.
	VarValues bool
}

// TestRun is what RunTests ran: OPA's own results (file:line, duration, print() output, trace),
// for OPA's reporters, and the parsed modules, for coverage reports.
type TestRun struct {
	Results []*tester.Result
	Modules map[string]*ast.Module
	// Warnings are the test modules' references to rules the default policy and the test helper
	// do not define (WarnUnknownRule), and their `with input... as` literals outside a fact's
	// vocabulary or naming a field the input does not have (WarnUnknownValue, WarnUnknownField),
	// by file, line and column. (The policy modules' own are Policy.Warnings.)
	Warnings []Warning
}

// Test runs every test_ rule of the given modules (an author's policy and tests) with the
// default policy, the test helpers (TestHelpers) and the merged data loaded. Pass DefaultTests() to run the default policy's own
// tests (they assume no extension package is loaded).
//
// Modules and data are checked as New checks them; test modules are files named *_test.rego or
// modules whose package's last part ends in _test (OPA's conventions), in any package.
func Test(ctx context.Context, modules []Module, data ...map[string]any) ([]TestResult, error) {
	run, err := RunTests(ctx, modules, TestOptions{}, data...)
	if err != nil {
		return nil, err
	}
	out := make([]TestResult, 0, len(run.Results))
	for _, r := range run.Results {
		tr := TestResult{Package: r.Package, Name: r.Name, Pass: r.Pass()}
		if r.Error != nil {
			tr.Error = r.Error.Error()
		}
		out = append(out, tr)
	}
	return out, nil
}

// RunTests is Test with OPA's runner options (`opa test`'s --run, tracing, coverage, timeout),
// returning OPA's results, sorted by package and name, for tester.PrettyReporter and
// tester.JSONReporter. print() output is captured into each result's Output.
func RunTests(ctx context.Context, modules []Module, opts TestOptions, data ...map[string]any) (*TestRun, error) {
	deciding, tests, _, err := parse(modules)
	if err != nil {
		return nil, err
	}
	maps.Copy(deciding, tests)
	for _, h := range TestHelpers() {
		if _, dup := deciding[h.Name]; dup {
			return nil, &Error{Op: "compile", File: h.Name, Detail: "two modules have this name"}
		}
		mod, err := ast.ParseModuleWithOpts(h.Name, h.Source, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, fromOPA("compile", err)
		}
		// The helper's fail(msg) is teamgate.test_error(msg) here (testing.rego says why).
		ast.WalkExprs(mod, func(e *ast.Expr) bool {
			if e.IsCall() && e.Operator().Equal(failRef) {
				e.Terms.([]*ast.Term)[0] = ast.NewTerm(testErrorRef.Copy())
			}
			return false
		})
		deciding[h.Name] = mod
	}
	if opts.Run != "" {
		// Checked here so a bad pattern is a typed compile error naming it, not OPA's bare one.
		if _, err := regexp.Compile(opts.Run); err != nil {
			return nil, &Error{Op: "compile", Detail: fmt.Sprintf("test filter %q is not a regular expression: %v", opts.Run, err)}
		}
	}
	merged := mergedData(data)
	// Tests run on the data New accepts, or not at all.
	check := &Policy{data: merged}
	if err := check.readRanks(); err != nil {
		return nil, err
	}
	if err := check.readData(); err != nil {
		return nil, err
	}
	store := inmem.NewFromObject(merged)
	run := &TestRun{Modules: deciding, Warnings: testWarnings(tests, check.vocabularies())}
	err = storage.Txn(ctx, store, storage.TransactionParams{}, func(txn storage.Transaction) error {
		r := tester.NewRunner().SetStore(store).SetModules(deciding).RaiseBuiltinErrors(true).
			AddCustomBuiltins([]*tester.Builtin{testError}).
			CapturePrintOutput(true).EnableTracing(opts.Trace || opts.VarValues).StackTraces(true).
			SetTimeout(cmp.Or(opts.Timeout, 5*time.Second)).Filter(opts.Run)
		if opts.VarValues {
			// The runner's own compiler (its defaults, as NewRunner builds it) with test rules
			// rewritten so their expressions' values are traced, as opa test --var-values.
			caps := ast.CapabilitiesForThisVersion()
			caps.Builtins = append(caps.Builtins, testError.Decl)
			r = r.SetCompiler(ast.NewCompiler().WithCapabilities(caps).WithEnablePrintStatements(true).
				WithDefaultRegoVersion(ast.RegoV1).WithRewriteTestRules(true))
		}
		if opts.Coverage != nil {
			r = r.SetCoverageQueryTracer(opts.Coverage)
		}
		ch, err := r.RunTests(ctx, txn)
		if err != nil {
			return fromOPA("compile", err)
		}
		for res := range ch {
			// A built-in's error (raised, not made undefined as under opa test, so a test of
			// `not` over it cannot pass) sets Error beside Fail; it is an error, as a conflict is,
			// so reporters name it ERROR in the line and the summary alike.
			res.Fail = res.Fail && res.Error == nil
			run.Results = append(run.Results, res)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(run.Results, func(a, b *tester.Result) int {
		return cmp.Or(strings.Compare(a.Package, b.Package), strings.Compare(a.Name, b.Name))
	})
	return run, nil
}

// failRef is the test helper's fail, as its module calls it; testErrorRef the built-in RunTests
// calls instead.
var failRef, testErrorRef = ast.Ref{ast.VarTerm("fail")}, ast.MustParseRef("teamgate.test_error")

// testError is teamgate.test_error(message), a built-in of test runs only (the test helper's):
// it fails the evaluation with message, so a helper refusing its argument says just why
// ("eval_builtin_error: teamgate.test_error: action x is not in the catalog ..."), where a
// built-in made to fail on purpose would wrap it in its own words.
var testError = &tester.Builtin{
	Decl: &ast.Builtin{Name: "teamgate.test_error", Decl: types.NewFunction(types.Args(types.S), types.A)},
	Func: rego.Function1(&rego.Function{Name: "teamgate.test_error", Decl: types.NewFunction(types.Args(types.S), types.A)},
		func(_ rego.BuiltinContext, msg *ast.Term) (*ast.Term, error) {
			s, _ := msg.Value.(ast.String)
			return nil, errors.New(string(s))
		}),
}

// mergedData is the default data with each of data merged over it in order.
func mergedData(data []map[string]any) map[string]any {
	merged := DefaultData()
	for _, d := range data {
		merged = mergeData(merged, d)
	}
	return merged
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
