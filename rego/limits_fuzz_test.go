package rego_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/rego"
)

// FuzzLoaderLimits loads arbitrary authors' modules (the input split at NUL bytes, each a
// module, names ending in _test.rego every other one) as New and Test do: no panic, a failure is
// a *rego.Error matching teamgate.ErrInvalid, and one past a limit (ErrLimit) names a file, a
// line and a column and points at README.md's "Limits". Its seed corpus
// (testdata/fuzz/FuzzLoaderLimits) holds a shape past each limit.
func FuzzLoaderLimits(f *testing.F) {
	f.Add("package teamgate.ext\n\ndeny contains \"x\" if { some a, b, c; a := 1; b := a; c := b; input.action == \"runs.get\" }\n")
	f.Add("package teamgate.ext\n\nf(x) if g(x)\n\ng(x) if f(x)\n\ndeny contains \"x\" if f(input.action)\n")
	f.Add("package teamgate.ext.a\n\nr if data.teamgate.ext.b[_]\n\x00package teamgate.ext.b\n\ns := 1\n\nt if data.teamgate.ext.a[_]\n")
	f.Add("\ufeffpackage teamgate.ext\r\n\r\ndeny contains \"x\" if input.action == \"runs.get\"\r\n")
	f.Add("package teamgate.ext\n\ndeny contains \"\xff\" if [[[[[[[[1]]]]]]]] == input.resource.teams\n")
	f.Add("package teamgate.ext_test\n\nimport data.teamgate.authz\n\ntest_x if not authz.decision.allow with input.action as \"runs.delte\"\n")
	f.Fuzz(func(t *testing.T, src string) {
		var mods []rego.Module
		for i, s := range strings.Split(src, "\x00") {
			name := "p/m" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + ".rego"
			if i%2 == 1 {
				name = strings.TrimSuffix(name, ".rego") + "_test.rego"
			}
			mods = append(mods, rego.Module{Name: name, Source: s})
		}
		_, errNew := rego.New(t.Context(), mods)
		_, errTest := rego.Test(t.Context(), mods)
		for _, err := range []error{errNew, errTest} {
			if err == nil {
				continue
			}
			var re *rego.Error
			if !errors.As(err, &re) || !errors.Is(err, teamgate.ErrInvalid) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			if errors.Is(err, rego.ErrLimit) {
				var limit *rego.Error
				for _, e := range unjoin(err) {
					if errors.As(e, &limit) && errors.Is(e, rego.ErrLimit) {
						break
					}
				}
				if limit.File == "" || limit.Line < 1 || limit.Col < 1 || !strings.Contains(limit.Detail, `(rego/README.md, "Limits")`) {
					t.Fatalf("a limit's error names no place or limit: %v", limit)
				}
			}
		}
	})
}

// unjoin returns the errors joined in err (errors.Join), or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		if _, typed := err.(*rego.Error); !typed {
			return j.Unwrap()
		}
	}
	return []error{err}
}
