package rego_test

import (
	"errors"
	"testing"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/rego"
)

// FuzzNew compiles arbitrary author modules: no panic, and a failure is a *rego.Error matching
// teamgate.ErrInvalid (past a limit, ErrLimit too, at its file, line and column).
func FuzzNew(f *testing.F) {
	f.Add("package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"x\" if input.subject.id == \"bob\"\n")
	f.Add("package teamgate.authz\n\ndecision := 1\n")
	f.Add("package x\n\nallow if {")
	f.Add("package teamgate.ext.lib\n\nf(s) := x if { x := upper(s) with upper as uuid.rfc4122 }\n")
	f.Add("package teamgate.ext_test\n\ntest_x if { every i in [1] { i == 1 } }\n")
	f.Add(shape("comprehensions", rego.MaxClosureDepth+1)) // past a limit (limits_test.go)
	f.Add(shape("arrays", 2000))
	f.Add(shape("else", rego.MaxElse+1))
	f.Fuzz(func(t *testing.T, src string) {
		p, err := rego.New(t.Context(), []rego.Module{{Name: "fuzz.rego", Source: src}})
		if err != nil {
			var re *rego.Error
			if !errors.As(err, &re) || !errors.Is(err, teamgate.ErrInvalid) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			if errors.Is(err, rego.ErrLimit) && (re.File != "fuzz.rego" || re.Line < 1 || re.Col < 1) {
				t.Fatalf("a limit's error without its place: %v", err)
			}
			return
		}
		if len(p.Actions()) == 0 {
			t.Fatal("a compiled policy lost its catalog")
		}
	})
}
