// Package strict decodes the JSON and YAML that users hand to teamgate — request lines, run files,
// request bodies, data files — into Go values, refusing anything ambiguous instead of guessing.
//
// The rules, the same for every input:
//   - a key that names no field is an error (a typo must not silently drop a restriction);
//   - field names match case-sensitively, so a case variant ("Subject" beside "subject") is an
//     unknown key;
//   - a key given twice in one object or mapping is an error, wherever it is (attributes included);
//   - a number where an integer is expected must be written as one: 1.5, 1.0 and 1e3 are refused;
//   - the input is one document: trailing JSON values or a second YAML document are errors.
//
// Keys of maps (attributes, labels, members) are data: they are case-significant, like every name
// in teamgate, so "Bob" and "bob" are two keys.
//
// YAML input is also refused for a null or non-scalar key, a merge key (<<), a tag other than
// the core schema's, an alias to a node that contains it, or aliases expanding to more than
// 4 × the input + 1 MiB (an "alias bomb" fails after bounded work). JSON decoding is
// github.com/go-json-experiment/json with unknown members rejected; YAML is parsed by
// go.yaml.in/yaml/v3 into nodes and re-encoded as JSON for the same decoder, so both formats
// follow one set of rules.
//
// Every error is an *Error: it names the path and the line, quotes a bounded prefix of the
// offending key or value, and matches teamgate.ErrInvalid.
package strict

import (
	"bytes"
	"errors"
	"reflect"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/quote"
)

// Error is an input that JSON or YAML refuses. It matches teamgate.ErrInvalid.
type Error struct {
	// Path is the offending key or value: "orgs[0].members.bob", "run.Kind"; "" for the whole
	// input or a syntax error.
	Path string
	// Line and Column locate it in the input (1-based; 0 when unknown).
	Line, Column int
	// Problem says what is wrong, e.g. "unknown key", "expected a list, got a string".
	Problem string
}

// Error reads "line 3, column 5: orgs[0].nmae: unknown key".
func (e *Error) Error() string {
	var b strings.Builder
	if pos := e.Position(); pos != "" {
		b.WriteString(pos + ": ")
	}
	if e.Path != "" {
		b.WriteString(quote.Cut(e.Path) + ": ")
	}
	b.WriteString(e.Problem)
	return b.String()
}

// Position is "line L, column C", "line L", or "" when unknown.
func (e *Error) Position() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return "line " + strconv.Itoa(e.Line) + ", column " + strconv.Itoa(e.Column)
	case e.Line > 0:
		return "line " + strconv.Itoa(e.Line)
	}
	return ""
}

// Unwrap makes errors.Is(err, teamgate.ErrInvalid) true.
func (e *Error) Unwrap() error { return teamgate.ErrInvalid }

// JSON decodes one JSON document into v under the package rules.
func JSON(data []byte, v any) error { return JSONAt(data, 1, v) }

// JSONAt is JSON for a document that starts on line firstLine of a larger input, such as a line
// of a JSONL file: errors count lines from there.
func JSONAt(data []byte, firstLine int, v any) error {
	if e, _ := decode(data, v); e != nil {
		e.Line += firstLine - 1
		return e
	}
	return nil
}

// decode is JSON that also returns the JSON pointer of the offending key or value.
func decode(data []byte, v any) (*Error, jsontext.Pointer) {
	err := json.Unmarshal(data, v, json.RejectUnknownMembers(true))
	if err == nil {
		return nil, ""
	}
	e, ptr, off := explain(err)
	e.Path = pathOf(ptr)
	e.Line, e.Column = position(data, off)
	return e, ptr
}

// IsJSON reports whether data is syntactically one JSON value (duplicate keys allowed): the test
// for "a value that parses as JSON is taken as JSON" before the rules apply.
func IsJSON(data []byte) bool {
	return jsontext.Value(data).IsValid(jsontext.AllowDuplicateNames(true))
}

// explain turns a decoding error into an Error without position, and returns the JSON pointer
// and byte offset it points at.
func explain(err error) (*Error, jsontext.Pointer, int64) {
	var se *json.SemanticError
	var sx *jsontext.SyntacticError
	switch {
	case errors.As(err, &se):
		if errors.Is(se.Err, json.ErrUnknownName) {
			return &Error{Problem: "unknown key"}, se.JSONPointer, se.ByteOffset
		}
		if errors.As(se.Err, &sx) { // a syntax error found while decoding a value
			break
		}
		return &Error{Problem: typeProblem(se)}, se.JSONPointer, se.ByteOffset
	case errors.As(err, &sx):
	default:
		return &Error{Problem: quote.Cut(err.Error())}, "", 0
	}
	if errors.Is(sx.Err, jsontext.ErrDuplicateName) {
		return &Error{Problem: "duplicate key"}, sx.JSONPointer, sx.ByteOffset
	}
	msg := strings.TrimPrefix(sx.Err.Error(), "jsontext: ")
	return &Error{Problem: "not JSON: " + quote.Cut(msg)}, "", sx.ByteOffset
}

// typeProblem says which kind of value was expected and which was found.
func typeProblem(se *json.SemanticError) string {
	if se.GoType != nil && se.Err != nil && reflect.PointerTo(se.GoType).Implements(reflect.TypeFor[json.UnmarshalerFrom]()) {
		return quote.Cut(se.Err.Error()) // a type that decodes itself says what it takes
	}
	want := "another kind of value"
	if se.GoType != nil {
		want = goKind(se.GoType)
	}
	got := jsonKind(se.JSONKind)
	if se.JSONKind == '0' && len(se.JSONValue) > 0 {
		got = "the number " + quote.Cut(string(se.JSONValue))
		if errors.Is(se.Err, strconv.ErrRange) { // the right kind of value, too large
			return got + " is out of range for " + want
		}
	}
	if got == "" {
		return "expected " + want
	}
	return "expected " + want + ", got " + got
}

func goKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return "a value of type " + t.String()
}

func jsonKind(k jsontext.Kind) string {
	switch k {
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '{':
		return "a mapping"
	case '[':
		return "a list"
	}
	return ""
}

// pathOf writes a JSON pointer as a path: /orgs/0/members → orgs[0].members. Without the
// document at hand, a token of digits reads as a list index.
func pathOf(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if _, err := strconv.Atoi(tok); err == nil {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// position converts a byte offset into a 1-based line and column (in bytes).
func position(data []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line = 1 + bytes.Count(before, []byte{'\n'})
	return line, int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
}
