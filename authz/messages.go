package authz

import (
	"fmt"
	"strings"
)

// message renders the standard message of a reason code from the facts of the request. The
// default policy leaves messages to the engine; a policy that sets one keeps its own.
func (q *query) message(code, role string) string {
	f := q.facts
	who := q.req.Subject
	project := f.org + "/" + f.project
	team := f.org + "/" + f.team
	teams := "[" + strings.Join(f.teams, " ") + "]"
	switch code {
	case "not_org_member":
		return fmt.Sprintf("%s is not a member of org %s", who, f.org)
	case "org_override":
		return fmt.Sprintf("%s is org %s of %s: admin on every project", who, f.orgRole, f.org)
	case "restricted":
		return fmt.Sprintf("project %s is restricted to teams %s; %s is in none", project, teams, who)
	case "grant":
		return fmt.Sprintf("%s has a %s grant on project %s", who, f.grant, project)
	case "team_role":
		if q.res.Kind == "team" {
			return fmt.Sprintf("%s is %s of team %s", who, role, team)
		}
		return fmt.Sprintf("%s is %s through a team of project %s (teams %s)", who, role, project, teams)
	case "org_role":
		if q.res.Kind == "project" {
			return fmt.Sprintf("%s is org %s of %s: %s on its projects", who, f.orgRole, f.org, role)
		}
		return fmt.Sprintf("%s is org %s of %s", who, f.orgRole, f.org)
	case "own_run":
		return fmt.Sprintf("%s may delete runs they created, as %s of %s", who, role, project)
	case "destination_denied":
		dest := "(none given)"
		if q.dest != nil {
			dest = q.dest.String()
		}
		return fmt.Sprintf("%s needs %s on the destination %s", q.req.Action, q.spec.DestinationRole, dest)
	case "insufficient_role":
		switch {
		case q.spec.ManagesMembers && containsStr(q.spec.OrgRoles, f.orgRole):
			return fmt.Sprintf("%s may not assign role %v (above their own role %s) or change an owner", who, q.req.Attributes["target_role"], f.orgRole)
		case len(q.spec.OrgRoles) > 0:
			return fmt.Sprintf("%s needs org role %s; %s is %s", q.req.Action, strings.Join(q.spec.OrgRoles, " or "), who, f.orgRole)
		case q.res.Kind == "team":
			return fmt.Sprintf("%s needs %s on team %s; %s has %s", q.req.Action, q.spec.Role, team, who, role)
		default:
			return fmt.Sprintf("%s needs %s on project %s; %s has %s", q.req.Action, q.spec.Role, project, who, role)
		}
	}
	return code
}

func containsStr(v []string, s string) bool {
	for _, x := range v {
		if x == s {
			return true
		}
	}
	return false
}
