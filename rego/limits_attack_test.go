package rego_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/rego"
)

// attackShape returns authors' modules that slipped past the per-module limits of stop 22 and
// took OPA's compiler seconds to minutes (bench/RESULTS.md, "Stop 22: attack on the policy
// loader's bounds"); n sizes them.
func attackShape(name string, n int) []rego.Module {
	var b strings.Builder
	b.WriteString("package teamgate.ext\n\n")
	list := func(format string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(format, i)
		}
		return strings.Join(parts, ", ")
	}
	switch name {
	case "some": // one rule declaring n variables: OPA is quadratic in them
		b.WriteString("deny contains \"x\" if {\n\tsome " + list("a%d") + "\n\tinput.action == \"runs.get\"\n}\n")
	case "args": // a function of n arguments
		b.WriteString("f(" + list("a%d") + ") := a0\n\ndeny contains \"x\" if input.action == \"runs.get\"\n")
	case "modules": // n modules, each just a package
		mods := make([]rego.Module, n)
		for i := range mods {
			mods[i] = rego.Module{Name: fmt.Sprintf("p/m%d.rego", i), Source: "package teamgate.ext\n"}
		}
		return mods
	case "layers": // three packages of n rules, each reading all the next package's rules
		var mods []rego.Module
		for i, pkg := range []string{"a", "b", "c"} {
			var m strings.Builder
			fmt.Fprintf(&m, "package teamgate.ext.%s\n\n", pkg)
			for j := range n {
				if i < 2 {
					fmt.Fprintf(&m, "r%d if data.teamgate.ext.%s[_]\n", j, []string{"b", "c"}[i])
				} else {
					fmt.Fprintf(&m, "r%d := %d\n", j, j)
				}
			}
			mods = append(mods, rego.Module{Name: "p/" + pkg + ".rego", Source: m.String()})
		}
		return mods
	case "chain": // n rules, each reading the next 20
		for i := range n {
			fmt.Fprintf(&b, "r%d if {", i)
			for j := i + 1; j <= i+20 && j < n; j++ {
				fmt.Fprintf(&b, " r%d;", j)
			}
			b.WriteString(" input.action == \"runs.get\" }\n")
		}
		b.WriteString("deny contains \"x\" if r0\n")
	case "cycle": // n functions calling one another in a cycle: OPA spells it out per rule
		for i := range n {
			fmt.Fprintf(&b, "f%d(x) if f%d(x)\n", i, (i+1)%n)
		}
		b.WriteString("deny contains \"x\" if f0(input.action)\n")
	case "dynamic": // n rules each reading another package's n rules 50 times over
		var c strings.Builder
		c.WriteString("package teamgate.ext.b\n\n")
		for i := range n {
			fmt.Fprintf(&b, "r%d if {", i)
			for j := range 50 {
				fmt.Fprintf(&b, " data.teamgate.ext.b[x%d];", j)
			}
			b.WriteString(" input.action == \"runs.get\" }\n")
			fmt.Fprintf(&c, "s%d := %d\n", i, i)
		}
		return []rego.Module{{Name: "p/a.rego", Source: b.String()}, {Name: "p/b.rego", Source: c.String()}}
	case "realistic": // a library of 20 helpers, n deny rules using three, n tests of the decision
		var lib, tests strings.Builder
		lib.WriteString("package teamgate.ext.lib\n\nh0 if input.subject.org_role == \"admin\"\n")
		for i := 1; i < 20; i++ {
			fmt.Fprintf(&lib, "h%d if { h%d; input.subject.id != \"u%d\" }\n", i, i-1, i)
		}
		b.WriteString("import data.teamgate.ext.lib\n\n")
		tests.WriteString("package teamgate.ext_test\n\nimport data.teamgate.authz\n\n")
		for i := range n {
			fmt.Fprintf(&b, "deny contains \"m%d\" if { input.action == \"runs.get\"; lib.h%d; lib.h%d; not lib.h%d }\n", i, i%20, (i+7)%20, (i+13)%20)
			fmt.Fprintf(&tests, "test_%d if not authz.decision.allow with input.subject.id as \"u%d\"\n", i, i)
		}
		return []rego.Module{{Name: "p/lib.rego", Source: lib.String()}, {Name: "p/policy.rego", Source: b.String()},
			{Name: "p/policy_test.rego", Source: tests.String()}}
	default:
		panic("no shape " + name)
	}
	return []rego.Module{{Name: "p/x.rego", Source: b.String()}}
}

// TestLimitsOfWhatNoModuleShows: shapes within every limit of one module's text that took OPA's
// compiler 4 to 50 s (and up to 3.8 GB) — a `some` of many variables, many modules, rules
// depending on one another widely, deeply, dynamically or in a long cycle — are refused before
// it, by New and Test alike, with a *rego.Error matching ErrLimit and teamgate.ErrInvalid that
// names an author's file, line and column and the limit.
func TestLimitsOfWhatNoModuleShows(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		shape     string
		n         int
		file      string
		line, col int
		limit     string
	}{
		{"some", rego.MaxVars + 1, "p/x.rego", 4, 5891, "more than 1000 variables"},
		{"args", rego.MaxVars + 1, "p/x.rego", 3, 5881, "more than 1000 variables"},
		{"modules", rego.MaxModules + 1, "p/m1000.rego", 1, 1, "more than 1000 authors' modules (1001)"},
		{"layers", 210, "p/a.rego", 182, 1, "the rules depend on one another past 10000000 steps"},
		{"chain", 1000, "p/x.rego", 712, 1, "the rules depend on one another past 10000000 steps"},
		{"cycle", 500, "p/x.rego", 304, 1, "the rules depend on one another past 10000000 steps"},
		{"dynamic", 100, "p/a.rego", 102, 1, "the rules depend on one another past 10000000 steps"},
	} {
		t.Run(fmt.Sprintf("%s-%d", c.shape, c.n), func(t *testing.T) {
			t.Parallel()
			_, errNew := rego.New(t.Context(), attackShape(c.shape, c.n))
			_, errTest := rego.Test(t.Context(), attackShape(c.shape, c.n)) // teamgate test: the same limits
			for _, err := range []error{errNew, errTest} {
				require.ErrorIs(t, err, rego.ErrLimit)
				require.ErrorIs(t, err, teamgate.ErrInvalid)
				var re *rego.Error
				require.ErrorAs(t, err, &re)
				require.Equal(t, []any{c.file, c.line, c.col}, []any{re.File, re.Line, re.Col}, re.Error())
				require.Contains(t, re.Detail, c.limit)
			}
		})
	}
}

// TestLimitsLoadRealPolicies: the limits refuse no policy teamgate ships (examples, the CLI's and
// the regression suite's policies, with their tests) and none an author realistically writes at
// their edges: 2,000 rules (a library, 990 deny rules using it and 990 tests of the decision),
// a rule of 1,000 variables, 1,000 modules, the same shapes as above just within the limits.
func TestLimitsLoadRealPolicies(t *testing.T) {
	t.Parallel()
	dirs := suitePolicies(t)
	for _, glob := range []string{"../examples/*/policy", "../testdata/cli/policies"} {
		got, err := filepath.Glob(glob)
		require.NoError(t, err)
		for _, dir := range got {
			if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
				dirs = append(dirs, dir)
			}
		}
	}
	require.GreaterOrEqual(t, len(dirs), 20)
	for _, dir := range dirs {
		mods, data, err := rego.LoadDir(dir)
		require.NoError(t, err)
		_, err = rego.RunTests(t.Context(), mods, rego.TestOptions{}, data...)
		require.False(t, errors.Is(err, rego.ErrLimit), "%s: %v", dir, err)
		_, err = rego.New(t.Context(), mods, data...)
		require.False(t, errors.Is(err, rego.ErrLimit), "%s: %v", dir, err)
	}
	for _, c := range []struct {
		shape string
		n     int
	}{
		{"realistic", 990}, {"some", rego.MaxVars - 5}, {"args", rego.MaxVars - 5}, {"modules", rego.MaxModules},
		{"layers", 100}, {"chain", 500}, {"cycle", 100}, {"dynamic", 30},
	} {
		_, err := rego.New(t.Context(), attackShape(c.shape, c.n))
		require.False(t, errors.Is(err, rego.ErrLimit), "%s-%d: %v", c.shape, c.n, err)
	}
	src, err := os.ReadFile("testing.rego") // the helper itself, as an author's test module
	require.NoError(t, err)
	_, err = rego.New(t.Context(), []rego.Module{{Name: "p/helper_test.rego", Source: strings.Replace(string(src), "package teamgate.testing", "package teamgate.ext_test", 1)}})
	require.False(t, errors.Is(err, rego.ErrLimit), "%v", err)
}

// BenchmarkNewAttackShapes: rego.New of the shapes TestLimitsOfWhatNoModuleShows refuses, at the
// sizes that took OPA's compiler 4 to 50 s (bench/RESULTS.md, "Stop 22: attack on the policy
// loader's bounds"), refused now; and of the realistic 2,000-rule policy, which loads.
func BenchmarkNewAttackShapes(b *testing.B) {
	for _, c := range []struct {
		shape string
		n     int
	}{{"some", 10_000}, {"modules", 20_000}, {"layers", 600}, {"chain", 1999}, {"cycle", 1999}, {"dynamic", 150}, {"realistic", 990}} {
		mods := attackShape(c.shape, c.n)
		b.Run(fmt.Sprintf("%s-%d", c.shape, c.n), func(b *testing.B) {
			for b.Loop() {
				_, err := rego.New(b.Context(), mods)
				if refused := errors.Is(err, rego.ErrLimit); refused != (c.shape != "realistic") {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestLimitsOfDataFiles: a policy directory's JSON data files past MaxDataBytes together (57 MB
// took 2 to 2.3 s and 650 MB to load) are refused by LoadDir before they are decoded, with a
// *rego.Error matching ErrLimit and teamgate.ErrInvalid that names the file crossing the limit,
// the line and column where it does, and the limit; files within it load.
func TestLimitsOfDataFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	small := `{"mycompany": {"a": 1}}` + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.json"), []byte(small), 0o644))
	line := `"user-0000000000",` + "\n" // 19 bytes
	fill := func(bytes int) string {
		n := (bytes - 40) / len(line)
		return `{"mycompany": {"ids": [` + "\n" + strings.Repeat(line, n) + `"end"]}}` + "\n"
	}
	within := fill(rego.MaxDataBytes - len(small))
	require.LessOrEqual(t, len(small)+len(within), rego.MaxDataBytes)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.json"), []byte(within), 0o644))
	_, data, err := rego.LoadDir(dir)
	require.NoError(t, err)
	require.Len(t, data, 2)

	past := within + strings.Repeat(" ", rego.MaxDataBytes) // the same data, padded past the limit
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.json"), []byte(past), 0o644))
	_, _, err = rego.LoadDir(dir)
	require.ErrorIs(t, err, rego.ErrLimit)
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	var re *rego.Error
	require.ErrorAs(t, err, &re)
	at := past[:rego.MaxDataBytes-len(small)]
	require.Equal(t, []any{"load data", filepath.Join(dir, "b.json"), strings.Count(at, "\n") + 1, len(at) - strings.LastIndexByte(at, '\n')},
		[]any{re.Op, re.File, re.Line, re.Col}, re.Error())
	require.Contains(t, re.Detail, fmt.Sprintf("the policy's JSON data files hold more than %d bytes together", rego.MaxDataBytes))
}
