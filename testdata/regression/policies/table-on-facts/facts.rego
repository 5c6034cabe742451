package teamgate.ext

import rego.v1

# Every rule reads only facts of the decision table's key (the action, the resource's kind and
# restriction, the subject's org role, grant and team role) and static data: the policy keeps the
# table, and each message, a function of those facts, is kept in the cell.
deny contains sprintf("%s members may not %s (team role %s)", [input.subject.org_role, input.action, input.subject.team_role]) if {
	input.subject.org_role in data.mycompany.frozen_org_roles
	input.action in data.mycompany.frozen_actions
}

deny contains sprintf("%s grants may not %s", [input.subject.grant, input.action]) if {
	input.subject.grant in data.mycompany.frozen_grants
	input.action == "runs.delete"
}

allow contains "billing reads open projects" if {
	input.subject.org_role == "billing"
	input.action in {"runs.get", "project.get"}
	not input.resource.restricted
}

allow contains "team contributors update their team" if {
	input.resource.kind == "team"
	input.action == "team.update"
	input.subject.team_role == "contributor"
}
