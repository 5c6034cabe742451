package rego

import (
	"fmt"
	"maps"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Limits of the authors' modules that the text of one module cannot show: how many there are,
// and how their rules depend on one another (README.md beside this file, "Limits").
const (
	// MaxModules bounds the authors' modules (policy and test modules): OPA's compiler spends
	// about 0.3 ms and 80 kB on each, however small (20,000 empty ones took it 5 to 8 s).
	MaxModules = 1000
	// MaxVars bounds the distinct variables of one rule or else branch (its arguments, those
	// `some`, `:=`, patterns and `every` declare): OPA's compiler is quadratic in them (`some`
	// of 10,000 variables took it 20 s).
	MaxVars = 1000
	// MaxDependencyWork bounds the work OPA's compiler does on how the rules depend on one
	// another: a reference to rules costs the rules it may name (all those under
	// data.teamgate.ext.lib for data.teamgate.ext.lib[x]), and its recursion check costs, for
	// each rule, the references of every rule it depends on, directly or not (three packages
	// of 600 rules, each reading the next package's rules, took it 30 to 50 s and 3.8 GB; 2,000
	// rules each reading the next 20 took it 10 to 17 s).
	MaxDependencyWork = 10_000_000
)

// The weights of MaxDependencyWork's steps, as measured against one step of OPA's recursion
// check (a rule's edge): a rule a reference may name (looked up, then typed), a rule of a cycle
// (OPA's recursion error names each rule of it, for each rule on it).
const refCost, cycleCost = 20, 64

// dependencyBound returns the limit error of modules (the default policy's, named defaults, and
// the authors', by name) whose rules depend on one another past MaxDependencyWork, nil otherwise. It runs
// OPA's compiler up to its rule tree (resolving references as the compiler does: imports,
// rules of the same package) and counts, with OPA's own graph in mind (ast.NewGraph, the
// compiler's checkRecursion), what the rest of the compile would spend: for each reference,
// the rules it may name; for each rule, the references of the rules reachable from it. The
// count stops at the limit, so this costs at most about MaxDependencyWork steps. The error names
// the rule at which the count passes the limit, or, when that is one of the default policy's
// (which read the authors' deny and allow), the author's rule whose references name the most
// rules. Modules that
// do not compile that far are left to the compiler, which reports why.
func dependencyBound(modules map[string]*ast.Module, defaults string) error {
	c := ast.NewCompiler().WithOnlyStagesUpTo(ast.StageSetRuleTree)
	if c.Compile(modules); c.Failed() || c.RuleTree == nil {
		return nil
	}
	// The rules, else branches apart (OPA's graph has a node for each), in a fixed order.
	var rules []*ast.Rule
	index := map[*ast.Rule]int{}
	names := slices.DeleteFunc(slices.Sorted(maps.Keys(c.Modules)), func(n string) bool { return n == defaults })
	for _, name := range append([]string{defaults}, names...) { // the default policy's first
		ast.WalkRules(c.Modules[name], func(r *ast.Rule) bool {
			index[r] = len(rules)
			rules = append(rules, r)
			return false
		})
	}
	// under returns the rules (else branches included) at and below a node of the rule tree.
	memo := map[*ast.TreeNode][]int{}
	var under func(n *ast.TreeNode) []int
	under = func(n *ast.TreeNode) []int {
		if got, ok := memo[n]; ok {
			return got
		}
		var out []int
		for _, r := range n.Values {
			for e := r; e != nil; e = e.Else {
				out = append(out, index[e])
			}
		}
		for _, child := range n.Children {
			out = append(out, under(child)...)
		}
		memo[n] = out
		return out
	}
	work := 0
	heaviest := -1 // the author's rule whose references name the most rules
	over := func(r *ast.Rule) error {
		if (r.Location == nil || r.Location.File == defaults) && heaviest >= 0 { // the default policy's rules read the authors'
			r = rules[heaviest]
		}
		return limitError(r.Location, fmt.Sprintf("the rules depend on one another past %d steps of OPA's compiler (a reference costs the rules it may name, and each rule the references of all it depends on)", MaxDependencyWork))
	}
	// targets[i]: the tree nodes rule i's references may name, each once (OPA's graph keeps an
	// edge once); weight[i]: the rules they hold, rule i's edges in OPA's graph.
	targets := make([][]*ast.TreeNode, len(rules))
	weight := make([]int, len(rules))
	for i, r := range rules {
		seen := map[*ast.TreeNode]bool{}
		var err error
		walkOwn(r, func(ref ast.Ref) {
			n := refNode(c.RuleTree, ref)
			if n == nil || err != nil {
				return
			}
			k := len(under(n))
			work += refCost * k // OPA looks the rules up for each reference, and types them
			if work > MaxDependencyWork {
				err = over(r)
			}
			if !seen[n] {
				seen[n] = true
				targets[i] = append(targets[i], n)
				weight[i] += k
			}
		})
		if err != nil {
			return err
		}
		if r.Location != nil && r.Location.File != defaults && (heaviest < 0 || weight[i] > weight[heaviest]) {
			heaviest = i
		}
	}
	// The recursion check: from each rule, a search through the rules it depends on, each
	// visited once, costing its edges.
	stamp := make([]int, len(rules))
	var stack []int
	for i := range rules {
		stack = append(stack[:0], i)
		stamp[i] = i + 1
		visited, cycle := 0, false
		for len(stack) > 0 {
			j := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			visited++
			work += 1 + weight[j]
			if work > MaxDependencyWork {
				return over(rules[i])
			}
			for _, n := range targets[j] {
				for _, k := range under(n) {
					cycle = cycle || k == i
					if stamp[k] != i+1 {
						stamp[k] = i + 1
						stack = append(stack, k)
					}
				}
			}
		}
		if cycle { // OPA's error spells the cycle out, searching it again
			work += cycleCost * visited
			if work > MaxDependencyWork {
				return over(rules[i])
			}
		}
	}
	return nil
}

// walkOwn calls f with each reference of rule r, as OPA's graph reads them: its head and body,
// not its else branches (nodes of their own).
func walkOwn(r *ast.Rule, f func(ast.Ref)) {
	vis := ast.NewGenericVisitor(func(x any) bool {
		switch x := x.(type) {
		case ast.Ref:
			f(x)
		case *ast.Rule:
			return x != r
		}
		return false
	})
	vis.Walk(r)
}

// refNode returns the node of the rule tree under which lie the rules ref may name (an upper
// bound of ast.Compiler.GetRulesDynamic's): where its ground prefix leads, or nil when it names
// no rule.
func refNode(root *ast.TreeNode, ref ast.Ref) *ast.TreeNode {
	n := root
	for i, t := range ref {
		if i > 0 && !ast.IsConstant(t.Value) {
			return n // a variable key: any rule below
		}
		child := n.Child(t.Value)
		if child == nil {
			if len(n.Values) > 0 {
				return n // a rule's value, read deeper
			}
			return nil
		}
		n = child
	}
	return n
}
