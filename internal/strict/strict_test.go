package strict_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/strict"
)

type request struct {
	Subject    string         `json:"subject"`
	Count      int            `json:"count,omitempty"`
	Teams      []string       `json:"teams,omitempty"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

func TestJSONRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in    string
		path        string
		line, col   int
		problemPart string
	}{
		{"case variant", `{"subject":"bob","Subject":"alice"}`, "Subject", 1, 18, "unknown key"},
		{"duplicate", `{"subject":"bob","subject":"alice"}`, "subject", 1, 18, "duplicate key"},
		{"duplicate in attributes", `{"attributes":{"run":{"created_by":"a","created_by":"b"}}}`, "attributes.run.created_by", 1, 40, "duplicate key"},
		{"unknown", "{\n  \"subject\": \"bob\",\n  \"resourse\": \"x\"\n}", "resourse", 3, 3, "unknown key"},
		{"fraction for integer", `{"count":1.5}`, "count", 1, 10, "expected an integer, got the number 1.5"},
		{"float for integer", `{"count":1.0}`, "count", 1, 10, "expected an integer, got the number 1.0"},
		{"integer out of range", `{"count":99999999999999999999}`, "count", 1, 10, "the number 99999999999999999999 is out of range for an integer"},
		{"number out of range", `{"attributes":{"gpu":1e400}}`, "attributes.gpu", 1, 22, "the number 1e400 is out of range"},
		{"string for list", `{"teams":"research"}`, "teams", 1, 10, "expected a list, got a string"},
		{"number in list", `{"teams":["a",2]}`, "teams[1]", 1, 15, "expected a string, got a number"},
		{"trailing value", `{"subject":"bob"} {}`, "", 1, 19, "not JSON"},
		{"truncated", `{"subject":"bob"`, "", 1, 17, "not JSON"},
		{"not an object", `["bob"]`, "", 1, 1, "expected a mapping, got a list"},
	} {
		var r request
		err := strict.JSON([]byte(tc.in), &r)
		require.ErrorIs(t, err, teamgate.ErrInvalid, tc.name)
		var se *strict.Error
		require.ErrorAs(t, err, &se, tc.name)
		require.Equal(t, tc.path, se.Path, tc.name)
		require.Equal(t, tc.line, se.Line, "%s: %v", tc.name, err)
		require.Equal(t, tc.col, se.Column, "%s: %v", tc.name, err)
		require.Contains(t, se.Problem, tc.problemPart, tc.name)
	}
}

func TestJSONAtCountsLinesOfTheWholeInput(t *testing.T) {
	t.Parallel()
	var r request
	err := strict.JSONAt([]byte(`{"subject":"bob","Subject":"alice"}`), 7, &r)
	require.EqualError(t, err, `line 7, column 18: Subject: unknown key`)
}

func TestJSONKeepsMapKeysAsData(t *testing.T) {
	t.Parallel()
	var r request
	require.NoError(t, strict.JSON([]byte(`{"subject":"bob","attributes":{"run":1,"Run":2}}`), &r))
	require.Equal(t, map[string]any{"run": 1.0, "Run": 2.0}, r.Attributes, "map keys are case-significant data")
}

func TestErrorsQuoteABoundedPrefixOnce(t *testing.T) {
	t.Parallel()
	huge := "K1" + strings.Repeat("k", 1<<20)
	num := "31415" + strings.Repeat("9", 1<<20) + ".5"
	for name, in := range map[string]string{
		"json key":   `{"` + huge + `":1}`,
		"json value": `{"count":` + num + `}`,
		"yaml key":   "subject: bob\n? " + huge + "\n: 1\n",
		"yaml dup":   "attributes:\n  ? " + huge + "\n  : 1\n  ? " + huge + "\n  : 2\n",
		"yaml value": "count: " + num + "\n",
	} {
		var r request
		err := strict.YAML([]byte(in), &r)
		require.ErrorIs(t, err, teamgate.ErrInvalid, name)
		require.Less(t, len(err.Error()), 300, "%s: %.300s", name, err)
		require.LessOrEqual(t, strings.Count(err.Error(), "K1")+strings.Count(err.Error(), "31415"), 1, "%s: at most once: %s", name, err)
	}
}

type file struct {
	Orgs []struct {
		Name     string            `json:"name"`
		Interval int               `json:"interval,omitempty"`
		Members  map[string]string `json:"members,omitempty"`
		Teams    []string          `json:"teams,omitempty"`
	} `json:"orgs"`
}

func TestYAMLRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in    string
		path        string
		line        int
		problemPart string
	}{
		{"null key", "orgs:\n  - name: a\n    members: {null: member}\n", "orgs[0].members", 3, "null key"},
		{"tilde key", "orgs:\n  - name: a\n    members:\n      ~: member\n", "orgs[0].members", 4, "null key"},
		{"fraction for integer", "orgs:\n  - name: a\n    interval: 1.5\n", "orgs[0].interval", 3, "expected an integer, got the number 1.5"},
		{"float for integer", "orgs:\n  - name: a\n    interval: 2.0\n", "orgs[0].interval", 3, "expected an integer"},
		{"second document", "orgs: [{name: a}]\n---\norgs: [{name: b}]\n", "", 2, "second YAML document"},
		{"empty second document", "orgs: [{name: a}]\n---\n", "", 2, "second YAML document"},
		{"duplicate key", "orgs:\n  - name: a\n    members:\n      bob: owner\n      bob: viewer\n", "orgs[0].members.bob", 5, "duplicate key (first at line 4)"},
		{"duplicate field", "orgs:\n  - name: a\n    name: b\n", "orgs[0].name", 3, "duplicate key (first at line 2)"},
		{"unknown key", "orgs:\n  - name: a\n    memebers: {}\n", "orgs[0].memebers", 3, "unknown key"},
		{"case variant", "orgs:\n  - name: a\n    Name: b\n", "orgs[0].Name", 3, "unknown key"},
		{"string for list", "orgs:\n  - name: a\n    teams: research\n", "orgs[0].teams", 3, "expected a list, got a string"},
		{"list for mapping", "orgs:\n  - name: a\n    members: [bob]\n", "orgs[0].members", 3, "expected a mapping, got a list"},
		{"merge key", "base: &b {name: a}\norgs:\n  - <<: *b\n", "orgs[0]", 3, "merge keys"},
		{"non-scalar key", "orgs:\n  - name: a\n    members: {[bob]: member}\n", "orgs[0].members", 3, "a key must be a string"},
		{"custom tag", "orgs:\n  - name: !secret a\n", "orgs[0].name", 2, "unsupported YAML tag"},
		{"binary", "orgs:\n  - name: !!binary Ym9i\n", "orgs[0].name", 2, `unsupported YAML tag "!!binary"`},
		{"binary key", "orgs:\n  - name: a\n    members: {!!binary Ym9i: member}\n", "orgs[0].members", 3, `unsupported YAML tag "!!binary"`},
		{"infinity", "orgs:\n  - name: a\n    interval: .inf\n", "orgs[0].interval", 3, "not a finite number"},
		{"self-containing alias", "orgs: &o\n  - name: a\n    teams: *o\n", "orgs[0].teams", 3, "contains it"},
		{"syntax", "orgs: [name: [[[\n", "", 1, "not YAML"},
		{"json duplicate", `{"orgs": [{"name": "a", "name": "b"}]}`, "orgs[0].name", 1, "duplicate key"},
	} {
		var f file
		err := strict.YAML([]byte(tc.in), &f)
		require.ErrorIs(t, err, teamgate.ErrInvalid, tc.name)
		var se *strict.Error
		require.ErrorAs(t, err, &se, tc.name)
		require.Equal(t, tc.path, se.Path, "%s: %v", tc.name, err)
		require.Equal(t, tc.line, se.Line, "%s: %v", tc.name, err)
		require.Contains(t, se.Problem, tc.problemPart, tc.name)
	}
}

func TestYAMLAccepts(t *testing.T) {
	t.Parallel()
	var f file
	require.NoError(t, strict.YAML([]byte(`
orgs:
  - &a
    name: a
    interval: 0x1e
    members: {123: member, "null": viewer, true: owner}
    teams: &t [x, y]
  - name: b
    teams: *t
`), &f))
	require.Len(t, f.Orgs, 2)
	require.Equal(t, 30, f.Orgs[0].Interval)
	require.Equal(t, map[string]string{"123": "member", "null": "viewer", "true": "owner"}, f.Orgs[0].Members)
	require.Equal(t, []string{"x", "y"}, f.Orgs[1].Teams, "aliases expand")

	var empty file
	require.NoError(t, strict.YAML([]byte("# nothing\n"), &empty))
	require.Nil(t, empty.Orgs)
}

// TestYAMLDepthIsBounded: an alias at the bottom of a deep list to another deep list nests the
// document twice as deep as YAML allows it to be written; the converter stops at the limit.
func TestYAMLDepthIsBounded(t *testing.T) {
	t.Parallel()
	const d = 9_000
	deep := func(inner string) string { return strings.Repeat("[", d) + inner + strings.Repeat("]", d) }
	in := "a: &a " + deep("x") + "\nb: " + deep("*a") + "\n"
	var v map[string]any
	err := strict.YAML([]byte(in), &v)
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	require.ErrorContains(t, err, "nested deeper than 10000 levels")
}

// TestYAMLAliasBombFailsAfterBoundedWork: nine levels of ten aliases each would expand to 10⁹
// nodes; the converter stops once aliases have written their budget of output.
func TestYAMLAliasBombFailsAfterBoundedWork(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 9; i++ {
		b.WriteString("a")
		b.WriteString(string(rune('0' + i)))
		b.WriteString(": &a")
		b.WriteString(string(rune('0' + i)))
		b.WriteString(" [")
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	in := b.String()
	require.Less(t, len(in), 1024)
	var v map[string]any
	err := strict.YAML([]byte(in), &v)
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	require.ErrorContains(t, err, "aliases expand to more than")
	var se *strict.Error
	require.ErrorAs(t, err, &se)
	require.NotZero(t, se.Line)
	require.NotEmpty(t, se.Path)
}
