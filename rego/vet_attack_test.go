package rego_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/rego"
)

// TestWarningsCleanOnCorrectModules: modules written the way authors write them — actions built
// with sprintf or concat, compared with data, prefixes and glob patterns that match, numbers,
// null and objects, any label or attribute, variables of the same name in an else branch or in
// sibling comprehensions (each its own scope: `=` binds a variable the compiler does not rename)
// — lint clean.
func TestWarningsCleanOnCorrectModules(t *testing.T) {
	t.Parallel()
	const head = "package teamgate.ext\n\nimport rego.v1\n\n"
	for name, rules := range map[string]string{
		"sprintf":       `deny contains "x" if { a := sprintf("%s.%s", ["runs", "delete"]); input.action == a }`,
		"concat":        `deny contains "x" if input.action == concat(".", ["runs", "delete"])`,
		"in data":       `deny contains "x" if input.action in data.teamgate.ext.frozen`,
		"glob":          `deny contains "x" if { glob.match("runs.**", [], input.action); glob.match("runs.d?lete", [], input.action); glob.match("runs.{delete,zzz}", null, input.action); glob.match("runs.[!x]*", ["."], input.action) }`,
		"scalars":       `deny contains "x" if { input.action != 3; input.action != null; input.action != {"a": 1}; input.subject.grant == "" }`,
		"labels":        `deny contains "x" if { input.resource.labels.whatever == "x"; input.attributes.foo.bar == "y"; input.destination.resource.kind == "team" }`,
		"weekday":       `deny contains "x" if { time.weekday([time.now_ns(), "Europe/Paris"]) in {"Saturday", "Sunday"}; lower(time.weekday(time.now_ns())) == "saturday" }`,
		"else with =":   "r := \"a\" if { x = input.action; x == \"runs.delete\" } else := \"b\" if { x = \"zzz\"; x == \"zzz\" }\n\ndeny contains r if true",
		"sibling compr": `deny contains "x" if { a := {x | x = input.action}; b := {x | x = "zzz"; x == "zzz"}; count(a) + count(b) > 0 }`,
		"sibling every": `deny contains "x" if { every x in [input.action] { y = x; y != "" }; every x in ["zzz"] { y = x; y == "zzz" } }`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := rego.New(t.Context(), []rego.Module{{Name: "x.rego", Source: head + rules + "\n"}})
			require.NoError(t, err)
			require.Empty(t, p.Warnings())
		})
	}
}

// TestWarningsSeeOuterVariablesInClosures: a comprehension's or every's body sees the variables
// of the body around it, so a comparison there of a variable bound to the fact outside is
// checked; and one in an else branch is checked with the branch's own bindings.
func TestWarningsSeeOuterVariablesInClosures(t *testing.T) {
	t.Parallel()
	const head = "package teamgate.ext\n\nimport rego.v1\n\n"
	for name, rules := range map[string]string{
		"comprehension": `deny contains "x" if { x = input.action; ys := [1 | x == "runs.delte"]; count(ys) > 0 }`,
		"every":         `deny contains "x" if { x = input.action; every y in [1] { y == 1; x == "runs.delte" } }`,
		"else":          "r := \"a\" if { x = \"zzz\"; x == \"zzz\" } else := \"b\" if { x = input.action; x == \"runs.delte\" }\n\ndeny contains r if true",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := rego.New(t.Context(), []rego.Module{{Name: "x.rego", Source: head + rules + "\n"}})
			require.NoError(t, err)
			require.Len(t, p.Warnings(), 1)
			require.Contains(t, p.Warnings()[0].Message, `did you mean "runs.delete"?`)
		})
	}
}

// TestWarningsOfHugeLiterals: a 50 kB literal compared with the action, or read as a field, is
// reported without a suggestion (the edit distance is bounded: no value of the catalog is near
// it), and the suggestion of a typo in a long name still comes.
func TestWarningsOfHugeLiterals(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("runs.delete", 4_500) // nine of them within rego.MaxSourceBytes
	var rules []string
	for i := range 8 {
		rules = append(rules, `deny contains "`+string(rune('a'+i))+`" if input.action == "`+big+`"`)
	}
	rules = append(rules, `deny contains "i" if input.resource["`+big+`"] == 1`)
	p, err := rego.New(t.Context(), []rego.Module{{Name: "x.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\n" + strings.Join(rules, "\n") + "\n"}})
	require.NoError(t, err)
	require.Len(t, p.Warnings(), 9)
	for _, w := range p.Warnings() {
		require.NotContains(t, w.Message, "did you mean")
	}
}

// TestFilesNamesWhyAPathCannotBeRead: a policy path that is a loop of symbolic links, or that
// does not exist, fails with the reason (not "holds no .rego module", which sends the author
// looking for a missing file), the path said once.
func TestFilesNamesWhyAPathCannotBeRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.Symlink("b", filepath.Join(dir, "a")))
	require.NoError(t, os.Symlink("a", filepath.Join(dir, "b")))
	for path, want := range map[string]string{
		filepath.Join(dir, "a"):       "too many levels of symbolic links",
		filepath.Join(dir, "missing"): "no such file or directory",
	} {
		_, err := rego.Files(path)
		var re *rego.Error
		require.ErrorAs(t, err, &re)
		require.Equal(t, path, re.File)
		require.Equal(t, want, re.Detail)
		_, _, err = rego.LoadDir(path)
		require.EqualError(t, err, "rego: load: "+path+": "+want)
	}
}

// TestWarningsOfAComparisonsValue: a comparison whose value is kept (frozen := input.action ==
// "runs.delte", a rule's body `x := input.action in {...}`) is checked as one that must hold:
// the compiler passes it an output variable.
func TestWarningsOfAComparisonsValue(t *testing.T) {
	t.Parallel()
	const head = "package teamgate.ext\n\nimport rego.v1\n\n"
	for name, rules := range map[string]string{
		"==":         "frozen := input.action == \"runs.delte\"\n\ndeny contains \"x\" if frozen",
		"!=":         "open := input.action != \"runs.delte\"\n\ndeny contains \"x\" if open",
		"in":         `deny contains "x" if { frozen := input.action in {"runs.delte"}; frozen }`,
		"startswith": `deny contains "x" if { frozen := startswith(input.action, "runz."); frozen }`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := rego.New(t.Context(), []rego.Module{{Name: "x.rego", Source: head + rules + "\n"}})
			require.NoError(t, err)
			require.Len(t, p.Warnings(), 1)
			require.Equal(t, rego.WarnUnknownValue, p.Warnings()[0].Code)
		})
	}
}

// BenchmarkNewHugeLiteral: rego.New of a module comparing the action with a 0.5 MB literal, as
// long as rego.MaxSourceBytes lets it be (1 MB in stop 21; vet's "did you mean" against the
// catalog is its worst case: bench/RESULTS.md, "Stop 21: attack on the lint of authors' modules").
func BenchmarkNewHugeLiteral(b *testing.B) {
	src := "package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"x\" if input.action == \"" + strings.Repeat("runs.delete", 47_000) + "\"\n"
	for b.Loop() {
		p, err := rego.New(b.Context(), []rego.Module{{Name: "x.rego", Source: src}})
		if err != nil || len(p.Warnings()) != 1 {
			b.Fatal(err, p.Warnings())
		}
	}
}

// TestWarningsWorkIsBounded: vet follows facts into functions and every bodies with bounded
// work: a chain of 200 functions each calling the next twice (2^200 paths) is checked once per
// function and argument, 8 calls deep, and every bodies over literal collections nested 8 deep
// are checked once per element of the outermost only (64^8 otherwise); what lies within reach
// is still found.
func TestWarningsWorkIsBounded(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("package teamgate.ext\n\nf0(x) if x == \"runs.delte\"\n")
	for i := 1; i < 200; i++ {
		fmt.Fprintf(&b, "f%d(x) if { f%d(x); f%d(x) }\n", i, i-1, i-1)
	}
	b.WriteString("deny contains \"far\" if f199(input.action)\ndeny contains \"near\" if f7(input.action)\n")
	elems := make([]string, 64)
	for i := range elems {
		elems[i] = fmt.Sprintf("%q", fmt.Sprintf("runs.x%d", i))
	}
	b.WriteString("deny contains \"every\" if {\n")
	for i := range 8 {
		fmt.Fprintf(&b, "every a%d in [%s] {\n", i, strings.Join(elems, ", "))
	}
	for i := range 8 {
		fmt.Fprintf(&b, "a%d != input.action\n", i)
	}
	b.WriteString(strings.Repeat("}\n", 9))
	p, err := rego.New(t.Context(), []rego.Module{{Name: "x.rego", Source: b.String()}})
	require.NoError(t, err)
	var near, every int
	for _, w := range p.Warnings() {
		switch {
		case strings.Contains(w.Message, "through teamgate.ext.f7 called with it at x.rego:204"):
			near++
		case strings.Contains(w.Message, `"runs.x`):
			every++
		}
	}
	require.Equal(t, 1, near, "f7 calls f0 7 deep: within reach")
	require.Equal(t, 64, every, "the outermost every's elements, each once")
}
