package authz

import (
	"fmt"
	"slices"

	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
)

// message renders the standard message of a reason code from the facts of the request. The
// default policy leaves messages to the engine; a policy that sets one keeps its own.
func (q *query) message(code rego.Code, role string) string {
	return string(q.appendMessage(nil, code, role))
}

// appendMessage appends message's text to b. The compiled path renders every reason of a
// decision into one buffer this way, so the messages cost one allocation together.
func (q *query) appendMessage(b []byte, code rego.Code, role string) []byte {
	s, f := q.in.Subject, q.in.Resource
	who := q.req.Subject
	project := func(b []byte) []byte { return append(append(append(b, f.Org...), '/'), f.Project...) }
	switch code {
	case rego.CodeNotFound:
		return append(b, f.Missing...)
	case rego.CodeNotOrgMember:
		return append(append(append(b, who...), " is not a member of org "...), f.Org...)
	case rego.CodeOrgOverride:
		b = append(append(append(b, who...), " is org "...), s.OrgRole...)
		b = append(append(append(b, " of "...), f.Org...), ": "...)
		return append(append(b, role...), " on every project"...)
	case rego.CodeRestricted:
		b = project(append(b, "project "...))
		b = appendTeams(append(b, " is restricted to teams "...), f.Teams)
		return append(append(append(b, "; "...), who...), " is in none"...)
	case rego.CodeGrant:
		b = append(append(append(append(b, who...), " has a "...), s.Grant...), " grant on project "...)
		return project(b)
	case rego.CodeBreakGlass:
		b = append(append(append(append(b, who...), " has a break-glass "...), s.Grant...), " grant on project "...)
		return project(b)
	case rego.CodeTeamRole:
		b = append(append(append(append(b, who...), " is "...), role...), ' ')
		if q.res.Kind == scope.KindTeam {
			return append(append(append(append(b, "of team "...), f.Org...), '/'), f.Team...)
		}
		b = project(append(b, "through a team of project "...))
		return append(appendTeams(append(b, " (teams "...), f.Teams), ')')
	case rego.CodeOrgRole:
		b = append(append(append(append(append(b, who...), " is org "...), s.OrgRole...), " of "...), f.Org...)
		if q.res.Kind == scope.KindProject {
			b = append(append(append(b, ": "...), role...), " on its projects"...)
		}
		return b
	case rego.CodeOwnRun:
		b = append(append(append(append(b, who...), " may delete runs they created, as "...), role...), " of "...)
		return project(b)
	case rego.CodeDestinationDenied:
		b = append(append(append(b, q.req.Action...), " needs "...), q.spec.DestinationRole...)
		if q.dest == nil {
			return append(b, " on a destination project (none given)"...)
		}
		b = append(append(b, " on the destination "...), q.dest.String()...)
		if d := q.in.Destination; d != nil && !d.Resource.Exists {
			b = append(append(b, ": "...), d.Resource.Missing...)
		}
		return b
	case rego.CodeInsufficientRole:
		switch {
		case q.spec.ManagesMembers && slices.Contains(q.spec.OrgRoles, s.OrgRole):
			return fmt.Appendf(b, "%s may not assign role %v (above their own role %s) or change an owner", who, q.req.Attributes["target_role"], s.OrgRole)
		case len(q.spec.OrgRoles) > 0:
			b = append(append(b, q.req.Action...), " needs org role "...)
			for i, r := range q.spec.OrgRoles {
				if i > 0 {
					b = append(b, " or "...)
				}
				b = append(b, r...)
			}
			return append(append(append(append(b, "; "...), who...), " is "...), s.OrgRole...)
		case q.res.Kind == scope.KindTeam:
			b = append(append(append(append(b, q.req.Action...), " needs "...), q.spec.Role...), " on team "...)
			b = append(append(append(b, f.Org...), '/'), f.Team...)
		default:
			b = append(append(append(append(b, q.req.Action...), " needs "...), q.spec.Role...), " on project "...)
			b = project(b)
		}
		return append(append(append(append(b, "; "...), who...), " has "...), role...)
	}
	return append(b, code...)
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
