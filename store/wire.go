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
	for i, w := range in {
		dec, ok := changeDecoders[w.Kind]
		if !ok {
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

func decodeAs[T Change](raw json.RawMessage) (Change, error) {
	var c T
	err := json.Unmarshal(raw, &c)
	return c, err
}

var changeDecoders = map[string]func(json.RawMessage) (Change, error){
	"put_org": decodeAs[PutOrg], "delete_org": decodeAs[DeleteOrg],
	"put_member": decodeAs[PutMember], "delete_member": decodeAs[DeleteMember],
	"put_team": decodeAs[PutTeam], "delete_team": decodeAs[DeleteTeam],
	"put_team_member": decodeAs[PutTeamMember], "delete_team_member": decodeAs[DeleteTeamMember],
	"put_project": decodeAs[PutProject], "delete_project": decodeAs[DeleteProject],
	"put_grant": decodeAs[PutGrant], "delete_grant": decodeAs[DeleteGrant],
	"put_policy": decodeAs[PutPolicy], "delete_policy": decodeAs[DeletePolicy],
	"put_user": decodeAs[PutUser], "delete_user": decodeAs[DeleteUser],
	"put_file":       decodeAs[PutFile],
	"create_project": decodeAs[CreateProject], "rename_team": decodeAs[RenameTeam],
	"put_directory": decodeAs[PutDirectory],
}
