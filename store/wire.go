package store

import (
	"encoding/json"
	"fmt"

	"github.com/teamgate/teamgate"
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
}

func typeOf[T Change]() changeType {
	var zero T
	return changeType{kind: zero.Kind(), decode: func(raw json.RawMessage) (Change, error) {
		var c T
		err := json.Unmarshal(raw, &c)
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
