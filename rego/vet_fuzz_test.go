package rego_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/teamgate/teamgate/rego"
)

// FuzzWarnings lints arbitrary author modules, seeded with every .rego file of the repository
// (and the corpus in testdata/fuzz/FuzzWarnings): a module OPA compiles is vetted without a
// panic, and each warning has a known code, a place in the module and a message.
func FuzzWarnings(f *testing.F) {
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != ".." && strings.HasPrefix(d.Name(), ".") {
			return fs.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".rego") {
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			f.Add(string(src))
		}
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	const head = "package teamgate.ext\n\nimport rego.v1\n\n"
	for _, rules := range []string{ // the shapes vet follows
		"r := \"a\" if { x = input.action; x == \"runs.delete\" } else := \"b\" if { x = \"zzz\"; x == \"zzz\" }\n",
		`deny contains "x" if { a := {x | x = input.action}; b := [1 | every y in [a] { y == "runs.delte" }]; not startswith(input.action, "runz."); count(b) > 0 }`,
		"frozen := input.action in {\"runs.delte\"}\nopen := input.resource.kind != \"projct\"\n",
		`deny contains "x" if { glob.match("runs.{delete,s?op}\\*[!x]**", ["."], input.action); time.weekday([time.now_ns(), "UTC"]) == "sunday"; input.resource.lables.x; print(1) }`,
		"f(x, y) if { x == y; y != \"runs.delte\" }\ng(a) := f(a, \"admn\")\ndeny contains \"x\" if { g(input.action); f(input.subject.org_role, \"ownr\") }\n",
		`deny contains "x" if { every a in ["runs.delte", 1, {"k": "v"}] { a != input.action; every r in input.subject.team_roles { r != "admn" } }; some l in input.resource.labels; l.approval }`,
		`deny contains "x" if { r := input.resource; r.lables; input.action == "runs.get" with input as {"action": "runs.delte", "resource": {"lables": {}, "teams": ["x"]}} with input.subject.team_roles as {"eng": "admn"} }`,
	} {
		f.Add(head + rules)
	}
	f.Fuzz(func(t *testing.T, src string) {
		p, err := rego.New(t.Context(), []rego.Module{{Name: "fuzz.rego", Source: src}})
		if err != nil {
			return // FuzzNew checks the errors
		}
		for _, w := range p.Warnings() {
			switch w.Code {
			case rego.WarnUnknownValue, rego.WarnUnknownField, rego.WarnPrint:
			default:
				t.Fatalf("warning of an unknown code: %+v", w)
			}
			if w.File != "fuzz.rego" || w.Line < 1 || w.Col < 1 || w.Message == "" || w.Fix == "" {
				t.Fatalf("warning without a place or a text: %+v", w)
			}
		}
	})
}
