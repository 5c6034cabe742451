package authz

import (
	"fmt"
	"strings"
)

// message renders the standard message of a reason code from the facts of the request. The
// default policy leaves messages to the engine; a policy that sets one keeps its own. Plain
// concatenation: this runs on every decision of the compiled path.
func (q *query) message(code, role string) string {
	f := q.facts
	who := q.req.Subject
	project := f.org + "/" + f.project
	switch code {
	case "not_found":
		return f.missing
	case "not_org_member":
		return who + " is not a member of org " + f.org
	case "org_override":
		return who + " is org " + f.orgRole + " of " + f.org + ": admin on every project"
	case "restricted":
		return "project " + project + " is restricted to teams " + teamList(f.teams) + "; " + who + " is in none"
	case "grant":
		return who + " has a " + f.grant + " grant on project " + project
	case "team_role":
		if q.res.Kind == "team" {
			return who + " is " + role + " of team " + f.org + "/" + f.team
		}
		return who + " is " + role + " through a team of project " + project + " (teams " + teamList(f.teams) + ")"
	case "org_role":
		if q.res.Kind == "project" {
			return who + " is org " + f.orgRole + " of " + f.org + ": " + role + " on its projects"
		}
		return who + " is org " + f.orgRole + " of " + f.org
	case "own_run":
		return who + " may delete runs they created, as " + role + " of " + project
	case "destination_denied":
		dest := "(none given)"
		if q.dest != nil {
			dest = q.dest.String()
		}
		return q.req.Action + " needs " + q.spec.DestinationRole + " on the destination " + dest
	case "insufficient_role":
		switch {
		case q.spec.ManagesMembers && containsStr(q.spec.OrgRoles, f.orgRole):
			return fmt.Sprintf("%s may not assign role %v (above their own role %s) or change an owner", who, q.req.Attributes["target_role"], f.orgRole)
		case len(q.spec.OrgRoles) > 0:
			return q.req.Action + " needs org role " + strings.Join(q.spec.OrgRoles, " or ") + "; " + who + " is " + f.orgRole
		case q.res.Kind == "team":
			return q.req.Action + " needs " + q.spec.Role + " on team " + f.org + "/" + f.team + "; " + who + " has " + role
		default:
			return q.req.Action + " needs " + q.spec.Role + " on project " + project + "; " + who + " has " + role
		}
	}
	return code
}

func teamList(teams []string) string { return "[" + strings.Join(teams, " ") + "]" }

func containsStr(v []string, s string) bool {
	for _, x := range v {
		if x == s {
			return true
		}
	}
	return false
}
