# The default teamgate policy (SPEC §4). The engine computes the facts of a request from its
# store and passes them as input (see README.md beside this file); every decision rule is here.
package teamgate.authz

import rego.v1

ranks := data.teamgate.ranks

rank_names := ["none", "viewer", "member", "contributor", "admin"]

action := data.teamgate.actions[input.action]

default decision := {
	"allow": false,
	"role": "none",
	"reasons": [{"code": "error", "message": "the policy produced no decision"}],
}

# not_found is final: extensions neither allow nor annotate a resource that does not exist.
decision := base_decision if {
	not input.resource.exists
} else := denied_by_extension if {
	count(ext_deny) > 0
} else := allowed_by_extension if {
	not base_decision.allow
	count(ext_allow) > 0
} else := base_decision

ext_deny contains msg if some msg in data.teamgate.ext.deny

ext_allow contains msg if some msg in data.teamgate.ext.allow

denied_by_extension := {
	"allow": false,
	"role": base_decision.role,
	"reasons": [{"code": "extension_deny", "message": m} | some m in ext_deny],
}

allowed_by_extension := {
	"allow": true,
	"role": base_decision.role,
	"reasons": [{"code": "extension_allow", "message": m} | some m in ext_allow],
}

base_decision := deny("none", "not_found", input.resource.missing) if {
	not input.resource.exists
} else := project_decision if {
	action.kind == "project"
} else := org_decision if {
	action.kind == "org"
} else := team_decision if {
	action.kind == "team"
}

allow(role, code, msg) := {"allow": true, "role": role, "reasons": [{"code": code, "message": msg}]}

deny(role, code, msg) := {"allow": false, "role": role, "reasons": [{"code": code, "message": msg}]}

# ---------------------------------------------------------------------------------------------
# Project role (SPEC §4 steps 1-6). f is the facts of one project for the subject:
# {org, project, org_role, grant, team_roles, teams, restricted}. The result is
# [role, reason code, message].

project_role(f) := ["none", "not_org_member", sprintf("%s is not a member of org %s", [input.subject.id, f.org])] if {
	f.org_role == "none"
} else := ["admin", "org_override", sprintf("%s is org %s of %s", [input.subject.id, f.org_role, f.org])] if {
	f.org_role in {"owner", "manager"}
} else := restricted_role(f) if {
	f.restricted
} else := base_role(f)

base_role(f) := [f.grant, "grant", sprintf("%s has a %s grant on project %s/%s", [input.subject.id, f.grant, f.org, f.project])] if {
	f.grant != ""
} else := [r, "org_role", sprintf("%s is org %s of %s: %s on its projects", [input.subject.id, f.org_role, f.org, r])] if {
	r := data.teamgate.org_base[f.org_role]
}

team_rank(f) := 4 if {
	some t in f.teams
	f.team_roles[t] == "admin"
} else := 3 if {
	some t in f.teams
	f.team_roles[t] == "contributor"
} else := 2 if {
	some t in f.teams
	f.team_roles[t] == "member"
} else := 1 if {
	some t in f.teams
	f.team_roles[t] == "viewer"
} else := 0

restricted_role(f) := ["none", "restricted", msg] if {
	team_rank(f) == 0
	f.grant == ""
	msg := sprintf("project %s/%s is restricted to teams [%s]; %s is in none", [f.org, f.project, concat(" ", f.teams), input.subject.id])
} else := [rank_names[t], "team_role", msg] if {
	t := team_rank(f)
	t > ranks[base_role(f)[0]]
	msg := sprintf("%s is %s in a team of project %s/%s (teams [%s])", [input.subject.id, rank_names[t], f.org, f.project, concat(" ", f.teams)])
} else := base_role(f)

source_facts := {
	"org": input.resource.org,
	"project": input.resource.project,
	"org_role": input.subject.org_role,
	"grant": input.subject.grant,
	"team_roles": input.subject.team_roles,
	"teams": input.resource.teams,
	"restricted": input.resource.restricted,
}

source_role := project_role(source_facts)

project_decision := deny("none", source_role[1], source_role[2]) if {
	source_role[1] in {"not_org_member", "restricted"}
} else := d if {
	ranks[source_role[0]] >= ranks[action.role]
	d := with_destination(source_role)
} else := allow(source_role[0], "own_run", msg) if {
	ranks[source_role[0]] >= ranks[action.own_run_role]
	is_object(input.attributes.run)
	input.attributes.run.created_by == input.subject.id
	msg := sprintf("%s may delete runs they created as %s of %s/%s", [input.subject.id, source_role[0], input.resource.org, input.resource.project])
} else := deny(source_role[0], "insufficient_role", sprintf("%s needs %s on project %s/%s; %s has %s (%s)", [
	input.action, action.role, input.resource.org, input.resource.project, input.subject.id, source_role[0], source_role[2],
]))

# runs.transfer also needs destination_role on the destination project.
with_destination(r) := allow(r[0], r[1], r[2]) if {
	not action.destination_role
} else := allow(r[0], r[1], r[2]) if {
	input.destination.exists
	d := project_role(input.destination)
	ranks[d[0]] >= ranks[action.destination_role]
} else := deny(r[0], "destination_denied", sprintf("%s needs %s on the destination %s", [input.action, action.destination_role, object.get(input.attributes, "destination", "(none given)")]))

# ---------------------------------------------------------------------------------------------
# Org actions: the org role decides.

org_ranks := data.teamgate.org_ranks

org_decision := deny("none", "not_org_member", sprintf("%s is not a member of org %s", [input.subject.id, input.resource.org])) if {
	input.subject.org_role == "none"
} else := deny(input.subject.org_role, "insufficient_role", sprintf("%s needs org role %s; %s is %s", [input.action, concat(" or ", action.org_roles), input.subject.id, input.subject.org_role])) if {
	not input.subject.org_role in action.org_roles
} else := deny(input.subject.org_role, "insufficient_role", sprintf("%s may not assign role %s, above their own role %s", [input.subject.id, input.attributes.target_role, input.subject.org_role])) if {
	action.manages_members
	org_ranks[input.attributes.target_role] > org_ranks[input.subject.org_role]
} else := deny(input.subject.org_role, "insufficient_role", sprintf("only an owner may change or remove an owner; %s is %s", [input.subject.id, input.subject.org_role])) if {
	action.manages_members
	input.attributes.target_current_role == "owner"
	input.subject.org_role != "owner"
} else := allow(input.subject.org_role, "org_role", sprintf("%s is org %s of %s", [input.subject.id, input.subject.org_role, input.resource.org]))

# ---------------------------------------------------------------------------------------------
# Team actions: the effective team role decides, except where the catalog names org roles.

team_role := "admin" if {
	input.subject.org_role in {"owner", "manager"}
} else := "admin" if {
	input.subject.org_role == "admin"
	input.subject.team_roles[input.resource.team]
} else := r if {
	r := input.subject.team_roles[input.resource.team]
} else := "none"

team_decision := deny("none", "not_org_member", sprintf("%s is not a member of org %s", [input.subject.id, input.resource.org])) if {
	input.subject.org_role == "none"
} else := allow(team_role, "team_role", sprintf("%s is org %s of %s", [input.subject.id, input.subject.org_role, input.resource.org])) if {
	action.org_roles
	input.subject.org_role in action.org_roles
} else := deny(team_role, "insufficient_role", sprintf("%s needs org role %s; %s is %s", [input.action, concat(" or ", action.org_roles), input.subject.id, input.subject.org_role])) if {
	action.org_roles
} else := allow(team_role, "team_role", sprintf("%s is %s of team %s/%s", [input.subject.id, team_role, input.resource.org, input.resource.team])) if {
	ranks[team_role] >= ranks[action.role]
} else := deny(team_role, "insufficient_role", sprintf("%s needs %s in team %s/%s; %s has %s", [input.action, action.role, input.resource.org, input.resource.team, input.subject.id, team_role]))
