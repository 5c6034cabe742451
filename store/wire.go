package store

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/teamgate/teamgate"
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
	}
}

type changeType struct {
	kind   string
	decode func(json.RawMessage) (Change, error)
	strict func([]byte) (Change, error) // under internal/strict's rules, for people's files
}

func typeOf[T Change]() changeType {
	var zero T
	return changeType{kind: zero.Kind(), decode: func(raw json.RawMessage) (Change, error) {
		var c T
		err := json.Unmarshal(raw, &c)
		return c, err
	}, strict: func(raw []byte) (Change, error) {
		var c T
		err := strict.JSON(raw, &c)
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
// key, a fraction where an integer is expected or an unknown kind is an error matching
// teamgate.ErrInvalid naming the change's index, its kind and the offending key. The list's own
// keys are located by line; a key inside a change is named by its path (changes[2].change.Role).
func ParseChanges(data []byte) (Changes, error) {
	var in []struct {
		Kind   string         `json:"kind"`
		Change jsontext.Value `json:"change"`
	}
	if err := strict.YAML(data, &in); err != nil {
		return nil, fmt.Errorf("changes: %w", err)
	}
	types := changeTypes()
	out := make(Changes, len(in))
	for i, w := range in {
		where := fmt.Sprintf("changes[%d]", i)
		t := strictOf(types, w.Kind)
		if t == nil {
			return nil, teamgate.Invalid("change kind", w.Kind, where+": unknown")
		}
		if len(w.Change) == 0 {
			return nil, teamgate.Invalid("change", where+".change", w.Kind+": missing")
		}
		c, err := t(w.Change)
		if err != nil {
			var se *strict.Error
			if errors.As(err, &se) {
				path := where + ".change"
				if se.Path != "" {
					path += "." + se.Path
				}
				return nil, teamgate.Invalid("change", path, w.Kind+": "+se.Problem)
			}
			return nil, fmt.Errorf("%s (%s): %w", where, w.Kind, err)
		}
		out[i] = c
	}
	return out, nil
}

// strictOf returns the strict decoder of a change kind among types, nil for an unknown kind.
func strictOf(types []changeType, kind string) func([]byte) (Change, error) {
	for _, t := range types {
		if t.kind == kind {
			return t.strict
		}
	}
	return nil
}
