package authz

import (
	"unsafe"

	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
)

// message renders the standard message of a reason code from the facts of the request and the
// member-management limit the reason names (the zero Limit: none). The default policy leaves
// messages to the engine; a policy that sets one keeps its own. Which rule denied is the
// policy's to say (the code, the limit): no message re-reads the ranks to guess it.
func (q *query) message(code rego.Code, role string, limit rego.Limit) string {
	return string(q.appendMessage(nil, code, role, limit))
}

// appendMessage appends message's text to b. The compiled path renders every reason of a
// decision into one buffer this way, so the messages cost one allocation together.
func (q *query) appendMessage(b []byte, code rego.Code, role string, limit rego.Limit) []byte {
	who, org, orgRole, teams := q.req.Subject, q.org, q.orgRole(), q.teams()
	switch code {
	case rego.CodeNotFound:
		return append(b, q.missingText()...)
	case rego.CodeNotOrgMember:
		return append(append(append(b, who...), " is not a member of org "...), org...)
	case rego.CodeOrgOverride:
		b = append(append(append(b, who...), " is org "...), orgRole...)
		b = append(append(append(b, " of "...), org...), ": "...)
		return append(append(b, role...), " on every project"...)
	case rego.CodeRestricted:
		b = q.appendProject(append(b, "project "...))
		b = appendTeams(append(b, " is restricted to teams "...), teams)
		return append(append(append(b, "; "...), who...), " is in none"...)
	case rego.CodeGrant:
		b = appendArticle(append(append(b, who...), " has "...), q.grant())
		return q.appendProject(append(b, " grant on project "...))
	case rego.CodeBreakGlass:
		b = append(append(append(append(b, who...), " has a break-glass "...), q.grant()...), " grant on project "...)
		return q.appendProject(b)
	case rego.CodeTeamRole:
		b = append(append(append(append(b, who...), " is "...), role...), ' ')
		if q.kind == scope.KindTeam {
			return append(append(append(append(b, "of team "...), org...), '/'), q.team...)
		}
		b = q.appendProject(append(b, "through a team of project "...))
		return append(appendTeams(append(b, " (teams "...), teams), ')')
	case rego.CodeOrgRole:
		b = append(append(append(append(append(b, who...), " is org "...), orgRole...), " of "...), org...)
		if q.kind == scope.KindProject {
			b = append(append(append(b, ": "...), role...), " on its projects"...)
		}
		return b
	case rego.CodeOwnRun:
		b = append(append(append(append(b, who...), " may delete runs they created, as "...), role...), " of "...)
		return q.appendProject(b)
	case rego.CodeDestinationDenied:
		b = append(append(append(b, q.req.Action...), " needs "...), q.spec.DestinationRole...)
		if q.dest == nil {
			return append(b, " on a destination project (none given)"...)
		}
		b = append(append(b, " on the destination "...), q.dest.String()...)
		if q.in != nil && q.in.Destination != nil && !q.in.Destination.Resource.Exists {
			b = append(append(b, ": "...), q.in.Destination.Resource.Missing...)
		}
		return b
	case rego.CodeInsufficientRole:
		switch {
		case limit.Attribute == "target_current_role" && q.kind == scope.KindOrg:
			// The org's owner rule: only an owner changes (or removes) an owner. A role the
			// request also gives is within the subject's own: the limit names the owner, not it.
			b = append(append(append(b, who...), " may not change role "...), limit.Role...)
			b = append(append(append(b, " on org "...), org...), ": only an owner may, and their own role is "...)
			return append(b, orgRole...)
		case limit.Attribute != "" && q.kind == scope.KindOrg:
			b = append(append(append(b, who...), " may not assign role "...), limit.Role...)
			b = append(append(append(b, " on org "...), org...), ": it ranks above their own role "...)
			return append(b, orgRole...)
		case limit.Attribute != "":
			verb := " may not give role "
			if limit.Attribute == "target_current_role" {
				verb = " may not change role "
			}
			b = append(append(append(append(append(b, who...), verb...), limit.Role...), " on "...), q.kind...)
			if q.kind == scope.KindTeam {
				b = append(append(append(append(b, ' '), org...), '/'), q.team...)
			} else {
				b = q.appendProject(append(b, ' '))
			}
			return append(append(append(b, ": it ranks above their own role "...), role...), " there"...)
		case len(q.spec.OrgRoles) > 0:
			b = append(append(b, q.req.Action...), " needs org role "...)
			for i, r := range q.spec.OrgRoles {
				if i > 0 {
					b = append(b, " or "...)
				}
				b = append(b, r...)
			}
			return append(append(append(append(b, "; "...), who...), " is "...), orgRole...)
		case q.kind == scope.KindTeam:
			b = append(append(append(append(b, q.req.Action...), " needs "...), q.spec.Role...), " on team "...)
			b = append(append(append(b, org...), '/'), q.team...)
		default:
			b = append(append(append(append(b, q.req.Action...), " needs "...), q.spec.Role...), " on project "...)
			b = q.appendProject(b)
		}
		return append(append(append(append(b, "; "...), who...), " has "...), role...)
	}
	return append(b, code...)
}

// appendProject appends the request's project as org/project.
func (q *query) appendProject(b []byte) []byte {
	return append(append(append(b, q.org...), '/'), q.project...)
}

// appendTeams appends a team list as messages show it: [a b].
func appendTeams(b []byte, teams []string) []byte {
	b = append(b, '[')
	for i, t := range teams {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, t...)
	}
	return append(b, ']')
}

func teamList(teams []string) string { return string(appendTeams(nil, teams)) }

// newReasons returns n reasons and a copy of text as a string, both in one allocation when n and
// len(text) are the compiled path's usual (at most 4 reasons, 256 bytes of messages): a decision
// then allocates one object. The string's bytes are written once, here, and never again.
func newReasons(n int, text []byte) ([]Reason, string) {
	switch n {
	case 1:
		return withText[[1]Reason](n, text)
	case 2:
		return withText[[2]Reason](n, text)
	case 3:
		return withText[[3]Reason](n, text)
	case 4:
		return withText[[4]Reason](n, text)
	}
	return make([]Reason, n), string(text)
}

// withText is newReasons for R, an array of n Reasons: the text's room is the smallest that
// holds it.
func withText[R any](n int, text []byte) ([]Reason, string) {
	switch m := len(text); {
	case m <= 32:
		return newBlock[R, [32]byte](n, text)
	case m <= 64:
		return newBlock[R, [64]byte](n, text)
	case m <= 96:
		return newBlock[R, [96]byte](n, text)
	case m <= 128:
		return newBlock[R, [128]byte](n, text)
	case m <= 192:
		return newBlock[R, [192]byte](n, text)
	case m <= 256:
		return newBlock[R, [256]byte](n, text)
	}
	return make([]Reason, n), string(text)
}

// reasonBlock holds a decision's reasons (R: [n]Reason) and their messages' bytes (T: [m]byte).
type reasonBlock[R, T any] struct {
	reasons R
	text    T
}

func newBlock[R, T any](n int, text []byte) ([]Reason, string) {
	blk := new(reasonBlock[R, T])
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&blk.text)), unsafe.Sizeof(blk.text))
	m := copy(buf, text)
	return unsafe.Slice((*Reason)(unsafe.Pointer(&blk.reasons)), n), unsafe.String(&buf[0], m)
}
