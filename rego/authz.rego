# The default teamgate policy (SPEC §4). The engine computes the facts of a request from its
# store and passes them as input (see README.md beside this file); every decision rule is here.
#
# Written for speed: complete rules over input fields with equality tests (OPA's rule index
# applies and each value is computed once per evaluation) and no user functions on the hot path.
# A reason may carry its own "message"; the default rules leave it out and the engine writes the
# standard message for the code from the same facts (messages are presentation, not logic).
package teamgate.authz

import rego.v1

ranks := data.teamgate.ranks

action := data.teamgate.actions[input.action]

default decision := {
	"allow": false,
	"role": "none",
	"reasons": [{"code": "error", "message": "the policy produced no decision"}],
}

# not_found is final: extensions neither allow nor annotate a resource that does not exist.
# Without an extension package (data.teamgate.ext) the default verdict is the decision.
decision := {"allow": false, "role": "none", "reasons": [{"code": "not_found", "message": input.resource.missing}]} if {
	not input.resource.exists
} else := {"allow": verdict[0], "role": verdict[1], "reasons": [{"code": verdict[2]}]} if {
	not data.teamgate.ext
} else := {"allow": false, "role": verdict[1], "reasons": [{"code": "extension_deny", "message": m} | some m in ext_deny]} if {
	count(ext_deny) > 0
} else := {"allow": true, "role": verdict[1], "reasons": [{"code": "extension_allow", "message": m} | some m in ext_allow]} if {
	verdict[0] == false
	count(ext_allow) > 0
} else := {"allow": verdict[0], "role": verdict[1], "reasons": [{"code": verdict[2]}]}

ext_deny contains msg if some msg in data.teamgate.ext.deny

ext_allow contains msg if some msg in data.teamgate.ext.allow

# [allowed, role, reason code] of the default rules.
verdict := project_verdict if {
	action.kind == "project"
} else := org_verdict if {
	action.kind == "org"
} else := team_verdict if {
	action.kind == "team"
}

# ---------------------------------------------------------------------------------------------
# The project role (SPEC §4 steps 1-6): the one role rule. It reads the subject's facts from
# input.subject and the project's from input.resource; the runs.transfer destination gets its
# role from this same rule with those two replaced by input.destination's (see destination_role).
# Ranks, the org-role mapping and the overriding org roles are data (data.json).

org_role := input.subject.org_role

grant := input.subject.grant

base_role := grant if grant != ""

else := data.teamgate.org_base[org_role]

base_code := "grant" if grant != ""

else := "org_role"

# The rank of the subject's highest role among the project's effective teams; 0 when in none
# (max of no ranks is undefined).
default team_rank := 0

team_rank := max([n |
	some t in input.resource.teams
	n := ranks[input.subject.team_roles[t]]
])

# The role of that rank (ranks are distinct: checked when the policy is loaded).
top_team_role := r if {
	some r, n in ranks
	n == team_rank
}

# [role, reason code]
project_role := ["none", "not_org_member"] if {
	org_role == "none"
} else := [data.teamgate.org_base[org_role], "org_override"] if {
	org_role in data.teamgate.org_override
} else := ["none", "restricted"] if {
	input.resource.restricted
	team_rank == 0
	grant == ""
} else := [top_team_role, "team_role"] if {
	input.resource.restricted
	team_rank > ranks[base_role]
} else := [base_role, base_code]

project_verdict := [false, "none", "not_org_member"] if {
	project_role[1] == "not_org_member"
} else := [false, "none", "restricted"] if {
	project_role[1] == "restricted"
} else := [true, project_role[0], project_role[1]] if {
	ranks[project_role[0]] >= ranks[action.role]
	not action.destination_role
} else := [true, project_role[0], project_role[1]] if {
	ranks[project_role[0]] >= ranks[action.role]
	ranks[destination_role] >= ranks[action.destination_role]
} else := [false, project_role[0], "destination_denied"] if {
	ranks[project_role[0]] >= ranks[action.role]
} else := [true, project_role[0], "own_run"] if {
	ranks[project_role[0]] >= ranks[action.own_run_role]
	is_object(input.attributes.run)
	input.attributes.run.created_by == input.subject.id
} else := [false, project_role[0], "insufficient_role"]

# The subject's role on a runs.transfer destination: project_role applied to the destination's
# facts (input.destination has the shape {"subject": ..., "resource": ...} of the request's own
# subject and resource). No destination, or one that does not exist, gives none.
destination_role := "none" if {
	not input.destination.resource.exists
} else := role if {
	role := project_role[0] with input.subject as input.destination.subject
		with input.resource as input.destination.resource
}

# ---------------------------------------------------------------------------------------------
# Org actions: the org role decides. members.manage also checks the member roles involved.

org_ranks := data.teamgate.org_ranks

org_verdict := [false, "none", "not_org_member"] if {
	org_role == "none"
} else := [false, org_role, "insufficient_role"] if {
	not org_role in action.org_roles
} else := [false, org_role, "insufficient_role"] if {
	action.manages_members
	org_ranks[input.attributes.target_role] > org_ranks[org_role]
} else := [false, org_role, "insufficient_role"] if {
	action.manages_members
	input.attributes.target_current_role == "owner"
	org_role != "owner"
} else := [true, org_role, "org_role"]

# ---------------------------------------------------------------------------------------------
# Team actions: the effective team role decides, except where the catalog names org roles.

team_role := data.teamgate.org_base[org_role] if {
	org_role in data.teamgate.org_override
} else := "admin" if {
	org_role == "admin"
	input.subject.team_roles[input.resource.team]
} else := r if {
	r := input.subject.team_roles[input.resource.team]
} else := "none"

team_verdict := [false, "none", "not_org_member"] if {
	org_role == "none"
} else := [org_role in action.org_roles, team_role, code] if {
	action.org_roles
	code := {true: "team_role", false: "insufficient_role"}[org_role in action.org_roles]
} else := [true, team_role, "team_role"] if {
	ranks[team_role] >= ranks[action.role]
} else := [false, team_role, "insufficient_role"]
