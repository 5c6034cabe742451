package rego_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/rego"
)

// shape is an author's module that OPA's compiler takes long on when n is large (bench/RESULTS.md,
// "Stop 22: lint and compile bounds"): its source, and where the limit is crossed (line, col)
// when it crosses one.
func shape(name string, n int) string {
	var b strings.Builder
	b.WriteString("package teamgate.ext\n\n")
	value := func(open, inner, close string) {
		b.WriteString("deny contains x if {\n\tx := " + strings.Repeat(open, n) + inner + strings.Repeat(close, n) + "\n\tinput.action == \"runs.get\"\n}\n")
	}
	switch name {
	case "comprehensions": // nested in one another: OPA's type checker is exponential in n
		b.WriteString("deny contains x if {\n\tx := ")
		for i := range n {
			fmt.Fprintf(&b, "[v%d | v%d := ", i, i)
		}
		b.WriteString("1" + strings.Repeat("]", n) + "\n\tinput.action == \"runs.get\"\n}\n")
	case "comprehension-tree": // two comprehensions in each, n deep: 2^n - 1 of them
		k := 0
		var tree func(d int) string
		tree = func(d int) string {
			if d == 0 {
				return "1"
			}
			k++
			return fmt.Sprintf("[v%d | v%d := %s; %s]", k, k, tree(d-1), tree(d-1))
		}
		b.WriteString("deny contains x if {\n\tx := " + tree(n) + "\n\tinput.action == \"runs.get\"\n}\n")
	case "comprehension-rules": // n rules, each with comprehensions nested 8 deep
		for r := range n {
			b.WriteString("deny contains x if {\n\tx := ")
			for i := range rego.MaxClosureDepth {
				fmt.Fprintf(&b, "[v%d | v%d := ", i, i)
			}
			fmt.Fprintf(&b, "%d%s\n\tinput.action == \"runs.get\"\n}\n", r, strings.Repeat("]", rego.MaxClosureDepth))
		}
	case "set-rules": // n rules, each with sets nested 63 deep
		for r := range n {
			fmt.Fprintf(&b, "deny contains x if {\n\tx := %s%d%s\n\tinput.action == \"runs.get\"\n}\n", strings.Repeat("{", rego.MaxNesting-1), r, strings.Repeat("}", rego.MaxNesting-1))
		}
	case "every":
		b.WriteString("deny contains \"x\" if {\n")
		for i := range n {
			fmt.Fprintf(&b, "\tevery a%d in input.resource.teams {\n", i)
		}
		for i := range n {
			fmt.Fprintf(&b, "\ta%d != \"\"\n", i)
		}
		b.WriteString(strings.Repeat("\t}\n", n) + "}\n")
	case "arrays":
		value("[", "1", "]")
	case "sets":
		value("{", "1", "}")
	case "objects":
		value(`{"a": `, "1", "}")
	case "calls":
		value("abs(", "1", ")")
	case "parentheses":
		value("(", "1", ")")
	case "sum": // 1 + 1 + ...: a call nested per +
		b.WriteString("deny contains x if {\n\tx := 1" + strings.Repeat(" + 1", n) + "\n\tinput.action == \"runs.get\"\n}\n")
	case "else":
		b.WriteString("v := 0 if input.action == \"runs.get\"\n")
		for i := 1; i <= n; i++ {
			fmt.Fprintf(&b, "else := %d if input.subject.id == \"u%d\"\n", i, i)
		}
		b.WriteString("deny contains \"x\" if v == 3\n")
	case "rules":
		for i := range n {
			fmt.Fprintf(&b, "deny contains \"m%d\" if input.subject.id == \"u%d\"\n", i, i)
		}
	case "expressions": // in one body
		b.WriteString("deny contains \"x\" if {\n")
		for i := range n {
			fmt.Fprintf(&b, "\tinput.subject.id != \"u%d\"\n", i)
		}
		b.WriteString("}\n")
	case "bytes": // a comment n bytes long
		b.WriteString("# " + strings.Repeat("a", n) + "\ndeny contains \"x\" if input.action == \"runs.get\"\n")
	}
	return b.String()
}

// pastLimits are the shapes past a limit, each with where the error points and the limit it
// names; atLimits the same shapes at the limit, which load.
var pastLimits = []struct {
	shape     string
	n         int
	line, col int
	limit     string
}{
	{"comprehensions", rego.MaxClosureDepth + 1, 4, 103, "more than 8 comprehensions"},
	{"comprehensions", 200, 4, 1374, "nested too deeply for OPA's parser"},
	{"comprehension-tree", 7, 4, 1154, "more than 64 comprehensions"},
	{"every", rego.MaxClosureDepth + 1, 12, 2, "more than 8 comprehensions, every or not bodies nested"},
	{"arrays", 100_000, 4, 503, "nested too deeply for OPA's parser"},
	{"sets", rego.MaxNesting, 4, 71, "more than 64 terms nested"},
	{"sets", 3000, 4, 503, "nested too deeply"},
	{"objects", rego.MaxNesting, 4, 386, "more than 64 terms nested"},
	{"calls", rego.MaxNesting, 4, 255, "more than 64 terms nested"},
	{"parentheses", 1000, 4, 131, "nested too deeply"},
	{"sum", rego.MaxNesting, 4, 13, "more than 64 terms nested"},
	{"sum", 10_000, 4, 3979, "nested too deeply"},
	{"else", rego.MaxElse + 1, 104, 1, "more than 100 else branches"},
	{"else", 10_000, 104, 1, "more than 100 else branches"},
	{"rules", rego.MaxRules + 1, 2003, 1, "more than 2000 rules"},
	{"expressions", rego.MaxBodyExprs + 1, 1004, 2, "a body of more than 1000 expressions"},
	{"rules", 100_000, 9936, 38, "more than 524288 bytes"},
	{"comprehension-rules", 33, 132, 67, "weigh more than 16384 (one nested k deep weighs 2^k)"},
	{"set-rules", 48, 192, 62, "weigh more than 100000 (each term weighs how deep it is nested)"},
	{"bytes", 10 << 20, 3, 524267, "more than 524288 bytes"},
}

var atLimits = []struct {
	shape string
	n     int
}{
	{"comprehensions", rego.MaxClosureDepth},
	{"comprehension-tree", 6}, // 63 comprehensions, 6 deep
	{"every", rego.MaxClosureDepth},
	{"sets", rego.MaxNesting - 1}, // with the 1 inside them, 64 terms
	{"sum", rego.MaxNesting - 2},  // a call's operator is a reference, its name a term in it
	{"else", rego.MaxElse},
	{"rules", rego.MaxRules},
	{"expressions", rego.MaxBodyExprs},
	{"bytes", rego.MaxSourceBytes - 100},
	{"comprehension-rules", 32}, // 32 × (2 + 4 + ... + 256) = 16,320 of MaxClosureWeight
	{"set-rules", 40},
}

// TestLimitsBeforeTheCompiler: a module past a limit of README.md's "Limits" is refused before
// OPA's compiler runs (the shapes take it seconds to minutes and gigabytes: bench/RESULTS.md),
// with a *rego.Error matching ErrLimit and teamgate.ErrInvalid that names the file, line and
// column and the limit; the same shapes at the limits load. rego.Test checks test modules alike.
func TestLimitsBeforeTheCompiler(t *testing.T) {
	t.Parallel()
	for _, c := range pastLimits {
		t.Run(fmt.Sprintf("%s-%d", c.shape, c.n), func(t *testing.T) {
			t.Parallel()
			src := shape(c.shape, c.n)
			for file, run := range map[string]func(string) error{
				"p/shape.rego": func(file string) error {
					_, err := rego.New(t.Context(), []rego.Module{{Name: file, Source: src}})
					return err
				},
				"p/shape_test.rego": func(file string) error { // a test module
					_, err := rego.Test(t.Context(), []rego.Module{{Name: file, Source: src}})
					return err
				},
			} {
				err := run(file)
				require.ErrorIs(t, err, rego.ErrLimit)
				require.ErrorIs(t, err, teamgate.ErrInvalid)
				var re *rego.Error
				require.ErrorAs(t, err, &re)
				require.Equal(t, file, re.File)
				require.Equal(t, []int{c.line, c.col}, []int{re.Line, re.Col}, re.Error())
				require.Contains(t, re.Error(), fmt.Sprintf("rego: compile: %s:%d:%d: teamgate_limit_error: ", file, c.line, c.col))
				require.Contains(t, re.Detail, c.limit)
			}
		})
	}
	for _, c := range atLimits {
		t.Run(fmt.Sprintf("%s-%d-loads", c.shape, c.n), func(t *testing.T) {
			t.Parallel()
			_, err := rego.New(t.Context(), []rego.Module{{Name: "p/shape.rego", Source: shape(c.shape, c.n)}})
			require.NoError(t, err)
		})
	}
}

// TestLimitsAreOfAllTheAuthorsModules: the rule and byte limits count every author's module
// together (a policy split into files is bounded as one), and the error names the module that
// crosses them; the default policy does not count.
func TestLimitsAreOfAllTheAuthorsModules(t *testing.T) {
	t.Parallel()
	half := shape("rules", rego.MaxRules/2)
	_, err := rego.New(t.Context(), []rego.Module{{Name: "a.rego", Source: half}, {Name: "b.rego", Source: half}})
	require.NoError(t, err)
	_, err = rego.New(t.Context(), []rego.Module{{Name: "a.rego", Source: half}, {Name: "b.rego", Source: half}, {Name: "c.rego", Source: shape("rules", 1)}})
	var re *rego.Error
	require.ErrorAs(t, err, &re)
	require.ErrorIs(t, err, rego.ErrLimit)
	require.Equal(t, []any{"c.rego", 3, 1}, []any{re.File, re.Line, re.Col})

	big := shape("bytes", rego.MaxSourceBytes/2)
	_, err = rego.New(t.Context(), []rego.Module{{Name: "a.rego", Source: big}, {Name: "b.rego", Source: big}})
	require.ErrorAs(t, err, &re)
	require.ErrorIs(t, err, rego.ErrLimit)
	require.Equal(t, "b.rego", re.File)
	require.Contains(t, re.Detail, fmt.Sprintf("this one %d", len(big)))
}

// BenchmarkNewPastLimits: rego.New of the shapes that stalled OPA's compiler (bench/RESULTS.md,
// "Stop 22: lint and compile bounds"), refused now before it; and BenchmarkNewAtLimits, the
// most each limit allows, which compiles.
func BenchmarkNewPastLimits(b *testing.B) {
	for _, c := range []struct {
		shape string
		n     int
	}{{"comprehensions", 15}, {"comprehensions", 200}, {"comprehension-tree", 10}, {"sets", 3000}, {"sum", 10_000},
		{"else", 10_000}, {"rules", 100_000}, {"expressions", 10_000}, {"bytes", 10 << 20},
		{"comprehension-rules", 2000}, {"set-rules", 1000}} {
		src := shape(c.shape, c.n)
		b.Run(fmt.Sprintf("%s-%d", c.shape, c.n), func(b *testing.B) {
			for b.Loop() {
				if _, err := rego.New(b.Context(), []rego.Module{{Name: "p/shape.rego", Source: src}}); !errors.Is(err, rego.ErrLimit) {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkNewAtLimits(b *testing.B) {
	for _, c := range atLimits {
		src := shape(c.shape, c.n)
		b.Run(fmt.Sprintf("%s-%d", c.shape, c.n), func(b *testing.B) {
			for b.Loop() {
				if _, err := rego.New(b.Context(), []rego.Module{{Name: "p/shape.rego", Source: src}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
