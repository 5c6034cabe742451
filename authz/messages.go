package authz

import (
	"fmt"
	"slices"
	"strings"

	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
)

// message renders the standard message of a reason code from the facts of the request. The
// default policy leaves messages to the engine; a policy that sets one keeps its own. Plain
// concatenation: this runs on every decision of the compiled path.
func (q *query) message(code rego.Code, role string) string {
	s, f := q.in.Subject, q.in.Resource
	who := q.req.Subject
	project := f.Org + "/" + f.Project
	switch code {
	case rego.CodeNotFound:
		return f.Missing
	case rego.CodeNotOrgMember:
		return who + " is not a member of org " + f.Org
	case rego.CodeOrgOverride:
		return who + " is org " + s.OrgRole + " of " + f.Org + ": " + role + " on every project"
	case rego.CodeRestricted:
		return "project " + project + " is restricted to teams " + teamList(f.Teams) + "; " + who + " is in none"
	case rego.CodeGrant:
		return who + " has a " + s.Grant + " grant on project " + project
	case rego.CodeTeamRole:
		if q.res.Kind == scope.KindTeam {
			return who + " is " + role + " of team " + f.Org + "/" + f.Team
		}
		return who + " is " + role + " through a team of project " + project + " (teams " + teamList(f.Teams) + ")"
	case rego.CodeOrgRole:
		if q.res.Kind == scope.KindProject {
			return who + " is org " + s.OrgRole + " of " + f.Org + ": " + role + " on its projects"
		}
		return who + " is org " + s.OrgRole + " of " + f.Org
	case rego.CodeOwnRun:
		return who + " may delete runs they created, as " + role + " of " + project
	case rego.CodeDestinationDenied:
		if q.dest == nil {
			return q.req.Action + " needs " + q.spec.DestinationRole + " on a destination project (none given)"
		}
		msg := q.req.Action + " needs " + q.spec.DestinationRole + " on the destination " + q.dest.String()
		if d := q.in.Destination; d != nil && !d.Resource.Exists {
			msg += ": " + d.Resource.Missing
		}
		return msg
	case rego.CodeInsufficientRole:
		switch {
		case q.spec.ManagesMembers && slices.Contains(q.spec.OrgRoles, s.OrgRole):
			return fmt.Sprintf("%s may not assign role %v (above their own role %s) or change an owner", who, q.req.Attributes["target_role"], s.OrgRole)
		case len(q.spec.OrgRoles) > 0:
			return q.req.Action + " needs org role " + strings.Join(q.spec.OrgRoles, " or ") + "; " + who + " is " + s.OrgRole
		case q.res.Kind == scope.KindTeam:
			return q.req.Action + " needs " + q.spec.Role + " on team " + f.Org + "/" + f.Team + "; " + who + " has " + role
		default:
			return q.req.Action + " needs " + q.spec.Role + " on project " + project + "; " + who + " has " + role
		}
	}
	return string(code)
}

func teamList(teams []string) string { return "[" + strings.Join(teams, " ") + "]" }
