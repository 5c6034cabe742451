package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/quote"
	"github.com/teamgate/teamgate/internal/strict"
)

// Changes is a batch of changes with a JSON form, so events can carry them to replicas:
// [{"kind": "put_member", "change": {"Org": "acme", "User": "bob", "Role": "member"}}, ...].
type Changes []Change

type wireChange struct {
	Kind   string          `json:"kind"`
	Change json.RawMessage `json:"change"`
}

// MarshalJSON writes each change with its kind.
func (cs Changes) MarshalJSON() ([]byte, error) {
	out := make([]wireChange, len(cs))
	for i, c := range cs {
		raw, err := json.Marshal(c)
		if err != nil {
			return nil, err
		}
		out[i] = wireChange{Kind: c.Kind(), Change: raw}
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads changes written by MarshalJSON; an unknown kind is ErrInvalid.
func (cs *Changes) UnmarshalJSON(b []byte) error {
	var in []wireChange
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	out := make(Changes, len(in))
	types := changeTypes()
	for i, w := range in {
		dec := decoderOf(types, w.Kind)
		if dec == nil {
			return teamgate.Invalid("change kind", w.Kind, "unknown")
		}
		c, err := dec(w.Change)
		if err != nil {
			return fmt.Errorf("change %d (%s): %w", i, w.Kind, err)
		}
		out[i] = c
	}
	*cs = out
	return nil
}

// changeTypes lists every Change type once; its kind on the wire is its Kind.
func changeTypes() []changeType {
	return []changeType{
		typeOf[PutOrg](), typeOf[DeleteOrg](), typeOf[PutMember](), typeOf[DeleteMember](),
		typeOf[PutTeam](), typeOf[DeleteTeam](), typeOf[RenameTeam](),
		typeOf[PutTeamMember](), typeOf[DeleteTeamMember](),
		typeOf[PutProject](), typeOf[CreateProject](), typeOf[DeleteProject](),
		typeOf[PutGrant](), typeOf[DeleteGrant](), typeOf[PutPolicy](), typeOf[DeletePolicy](),
		typeOf[PutUser](), typeOf[DeleteUser](), typeOf[PutFile](), typeOf[PutDirectory](),
		typeOf[ExpireTeamMember](), typeOf[ExpireGrant](), typeOf[EndBreakGlass](),
	}
}

type changeType struct {
	kind   string
	decode func(json.RawMessage) (Change, error)
	from   func(*jsontext.Decoder) (Change, error) // JSON v2, under the caller's options (ParseChanges)
}

func typeOf[T Change]() changeType {
	var zero T
	return changeType{kind: zero.Kind(), decode: func(raw json.RawMessage) (Change, error) {
		var c T
		err := json.Unmarshal(raw, &c)
		return c, err
	}, from: func(dec *jsontext.Decoder) (Change, error) {
		var c T
		err := jsonv2.UnmarshalDecode(dec, &c)
		return c, err
	}}
}

// decoderOf returns the decoder of a change kind among types, nil for an unknown kind.
func decoderOf(types []changeType, kind string) func(json.RawMessage) (Change, error) {
	for _, t := range types {
		if t.kind == kind {
			return t.decode
		}
	}
	return nil
}

// ParseChanges decodes a YAML or JSON list of changes in the wire form of Changes
// ([{"kind": "put_member", "change": {"Org": "acme", "User": "bob", "Role": "member"}}, ...])
// under the strict rules of data files (internal/strict): an unknown, duplicate or case-variant
// key, a value of the wrong type, a fraction where an integer is expected, an unknown kind or a
// missing change is an error matching teamgate.ErrInvalid that names the path and the line as a
// data file's errors do: invalid change file "changes[2].change.Role": line 7, column 5:
// expected a string, got a number.
func ParseChanges(data []byte) (Changes, error) {
	var in []struct {
		Kind   string         `json:"kind"`
		Change jsontext.Value `json:"change"`
	}
	if err := strict.YAML(data, &in); err != nil {
		return nil, changeFileError(err)
	}
	if len(in) == 0 { // [], or null (an empty file): no changes, not a decoding error
		return Changes{}, nil
	}
	types := changeTypes()
	list := &typedChanges{decoders: make([]func(*jsontext.Decoder) (Change, error), len(in))}
	for i, w := range in {
		t := typeNamed(types, w.Kind)
		line, col := 0, 0
		if t == nil || len(w.Change) == 0 {
			line, col = strict.Locate(data, strconv.Itoa(i), "kind")
		}
		if t == nil {
			return nil, changeFileError(&strict.Error{Path: fmt.Sprintf("[%d].kind", i), Line: line, Column: col,
				Problem: fmt.Sprintf("unknown change kind %s", quote.Q(w.Kind))})
		}
		if len(w.Change) == 0 {
			return nil, changeFileError(&strict.Error{Path: fmt.Sprintf("[%d]", i), Line: line, Column: col, Problem: w.Kind + " without its change"})
		}
		list.decoders[i] = t.from
	}
	// The second pass decodes each change as the type its kind names, on the decoder of the whole
	// input, so an error inside a change is located like any other.
	if err := strict.YAML(data, list); err != nil {
		return nil, changeFileError(err)
	}
	return list.out, nil
}

// changeFileError words a decoding error of a change file as a data file's (ParseFile):
// invalid change file "changes[0].change.Role": line 2, column 34: expected a string, got a number.
func changeFileError(err error) error {
	var se *strict.Error
	if !errors.As(err, &se) {
		return fmt.Errorf("change file: %w", err)
	}
	if se.Path == "" {
		return teamgate.Invalid("change file", se.Position(), se.Problem)
	}
	where := se.Position()
	if where != "" {
		where += ": "
	}
	return teamgate.Invalid("change file", "changes"+se.Path, where+se.Problem)
}

// typedChanges decodes a list of {kind, change} whose kinds are known: decoders[i] decodes the
// change of entry i (the first pass of ParseChanges checked the list's shape).
type typedChanges struct {
	decoders []func(*jsontext.Decoder) (Change, error)
	out      Changes
}

// UnmarshalJSONFrom implements the JSON v2 json.UnmarshalerFrom interface.
func (l *typedChanges) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	if _, err := dec.ReadToken(); err != nil { // [
		return err
	}
	for i := 0; dec.PeekKind() != ']'; i++ {
		if _, err := dec.ReadToken(); err != nil { // {
			return err
		}
		var c Change
		for dec.PeekKind() != '}' {
			name, err := dec.ReadToken()
			if err != nil {
				return err
			}
			if name.String() != "change" {
				if err := dec.SkipValue(); err != nil {
					return err
				}
				continue
			}
			if c, err = l.decoders[i](dec); err != nil {
				return err
			}
		}
		if _, err := dec.ReadToken(); err != nil { // }
			return err
		}
		l.out = append(l.out, c)
	}
	_, err := dec.ReadToken() // ]
	return err
}

// typeNamed returns the type of a change kind among types, nil for an unknown kind.
func typeNamed(types []changeType, kind string) *changeType {
	for i := range types {
		if types[i].kind == kind {
			return &types[i]
		}
	}
	return nil
}
