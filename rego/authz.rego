# The default teamgate policy (SPEC §4). The engine computes the facts of a request from its
# store and passes them as input (see README.md beside this file); every decision rule is here.
#
# Written for OPA's evaluator, where every rule reference, data read, negation and built-in call
# costs about a microsecond: branches test input fields with == where they can (OPA's rule index
# applies), data is read where it is used rather than through alias rules, each verdict builds
# its decision object directly, and the subject's highest team role is a fact the engine passes
# (input.subject.team_role). rego.New folds the data.teamgate documents these rules read into
# this module at load (README.md, "Speed"). A reason may carry its own "message"; the default
# rules leave it out and the engine writes the standard message for the code from the same facts
# and, where a member-management limit denied, from the "limit" the reason names (above_own).
package teamgate.authz

import rego.v1

default decision := {
	"allow": false,
	"role": "none",
	"reasons": [{"code": "error", "message": "the policy produced no decision"}],
}

# not_found is final: extensions neither allow nor annotate a resource that does not exist.
# Without an extension package (data.teamgate.ext) the default verdict is the decision. (The
# first branch is the third for the most common requests, taken one rule reference sooner.)
decision := project_verdict if {
	input.resource.kind == "project"
	input.resource.exists == true
	not data.teamgate.ext
} else := {"allow": false, "role": "none", "reasons": [{"code": "not_found", "message": input.resource.missing}]} if {
	not input.resource.exists
} else := verdict if {
	not data.teamgate.ext
} else := {"allow": false, "role": verdict.role, "reasons": [{"code": "extension_deny", "message": m} | some m in ext_deny]} if {
	count(ext_deny) > 0
} else := {"allow": true, "role": verdict.role, "reasons": [{"code": "extension_allow", "message": m} | some m in ext_allow]} if {
	verdict.allow == false
	count(ext_allow) > 0
} else := verdict

ext_deny contains msg if some msg in data.teamgate.ext.deny

ext_allow contains msg if some msg in data.teamgate.ext.allow

# The decision of the default rules. The resource's kind is the action's (the engine resolves the
# resource by the catalog's kind).
verdict := project_verdict if {
	input.resource.kind == "project"
} else := org_verdict if {
	input.resource.kind == "org"
} else := team_verdict if {
	input.resource.kind == "team"
}

# The subject's highest role, by data rank, among the resource's teams (a project's effective
# teams, a team resource's team); "none" when in none. The engine passes it as
# input.subject.team_role (rego.Policy.HighestRole, from the same data.teamgate.ranks); an input
# written by hand, in a test, may leave it out and it is found from team_roles.
team_role := r if {
	r := input.subject.team_role
} else := r if {
	input.resource.kind == "project"
	top := max([data.teamgate.ranks[input.subject.team_roles[t]] | some t in input.resource.teams])
	some r, n in data.teamgate.ranks
	n == top
} else := r if {
	input.resource.kind == "team"
	r := input.subject.team_roles[input.resource.team]
	data.teamgate.ranks[r] > 0
} else := "none"

# ---------------------------------------------------------------------------------------------
# The project role (SPEC §4 steps 1-6): the one role rule, [role, reason code]. It reads the
# subject's facts from input.subject and the project's from input.resource; the runs.transfer
# destination gets its role from this same rule with those two replaced by input.destination's
# (see destination_role). Ranks, the org-role mapping and the overriding org roles are data
# (data.json).

project_role := ["none", "not_org_member"] if {
	input.subject.org_role == "none"
} else := [data.teamgate.org_base[input.subject.org_role], "org_override"] if {
	input.subject.org_role in data.teamgate.org_override
} else := base if {
	not input.resource.restricted
} else := ["none", "restricted"] if {
	team_role == "none"
	input.subject.grant == ""
} else := [team_role, "team_role"] if {
	data.teamgate.ranks[team_role] > data.teamgate.ranks[base[0]]
} else := base

# The grant's role when there is one (reason break_glass for an emergency elevation, see
# README.md), else the org role's base role.
base := [input.subject.grant, "break_glass"] if {
	input.subject.grant != ""
	input.subject.break_glass == true
} else := [input.subject.grant, "grant"] if {
	input.subject.grant != ""
} else := [data.teamgate.org_base[input.subject.org_role], "org_role"]

project_verdict := {"allow": false, "role": "none", "reasons": [{"code": "not_org_member"}]} if {
	input.subject.org_role == "none"
} else := {"allow": false, "role": "none", "reasons": [{"code": "restricted"}]} if {
	project_role[1] == "restricted"
} else := {"allow": false, "role": project_limit[0], "reasons": [{"code": "insufficient_role", "limit": project_limit[1]}]} if {
	_ = input.attributes.target_role
	project_limit
} else := {"allow": false, "role": project_limit[0], "reasons": [{"code": "insufficient_role", "limit": project_limit[1]}]} if {
	_ = input.attributes.target_current_role
	project_limit
} else := {"allow": allow, "role": role, "reasons": [{"code": c}]} if {
	[role, code] := project_role
	a := data.teamgate.actions[input.action]
	data.teamgate.ranks[role] >= data.teamgate.ranks[a.role]
	[allow, c] := special_check(a, code)
} else := {"allow": true, "role": role, "reasons": [{"code": "own_run"}]} if {
	_ = input.attributes.run
	[role, _] := project_role
	data.teamgate.ranks[role] >= data.teamgate.ranks[data.teamgate.actions[input.action].own_run_role]
	is_object(input.attributes.run)
	input.attributes.run.created_by == input.subject.id
} else := {"allow": false, "role": role, "reasons": [{"code": "insufficient_role"}]} if {
	[role, _] := project_role
}

# [role, limit] of a request that manages members (project.access) with a project role that
# suffices for the action but not for the role it gives or changes (above_own). project_verdict
# asks for it only when the request names one of the two attributes: the test of the attribute
# is all a request without them costs (no allocation, no rule reference).
project_limit := [role, limit] if {
	[role, _] := project_role
	a := data.teamgate.actions[input.action]
	a.manages_members
	data.teamgate.ranks[role] >= data.teamgate.ranks[a.role]
	limit := above_own(role)
}

# [allowed, reason code] of a subject whose project role suffices (and, managing members, within
# project_limit): an action naming a destination_role (runs.transfer) also needs that role on
# the destination.
special_check(a, code) := [true, code] if {
	not a.destination_role
} else := [true, code] if {
	data.teamgate.ranks[destination_role] >= data.teamgate.ranks[a.destination_role]
} else := [false, "destination_denied"]

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

org_role := input.subject.org_role

action := data.teamgate.actions[input.action]

org_ranks := data.teamgate.org_ranks

org_verdict := {"allow": false, "role": "none", "reasons": [{"code": "not_org_member"}]} if {
	org_role == "none"
} else := {"allow": false, "role": org_role, "reasons": [{"code": "insufficient_role"}]} if {
	not org_role in action.org_roles
} else := {"allow": false, "role": org_role, "reasons": [{"code": "insufficient_role", "limit": {"attribute": "target_role", "role": r}}]} if {
	action.manages_members
	r := input.attributes.target_role
	not org_ranks_within(r, org_role)
} else := {"allow": false, "role": org_role, "reasons": [{"code": "insufficient_role", "limit": {"attribute": "target_current_role", "role": "owner"}}]} if {
	action.manages_members
	input.attributes.target_current_role == "owner"
	org_role != "owner"
} else := {"allow": true, "role": org_role, "reasons": [{"code": "org_role"}]}

# ---------------------------------------------------------------------------------------------
# Team actions: the effective team role decides, except where the catalog names org roles.

effective_team_role := data.teamgate.org_base[org_role] if {
	org_role in data.teamgate.org_override
} else := "admin" if {
	org_role == "admin"
	team_role != "none"
} else := team_role

team_verdict := {"allow": false, "role": "none", "reasons": [{"code": "not_org_member"}]} if {
	org_role == "none"
} else := {"allow": false, "role": effective_team_role, "reasons": [{"code": "insufficient_role"}]} if {
	not team_role_suffices
} else := {"allow": false, "role": effective_team_role, "reasons": [{"code": "insufficient_role", "limit": limit}]} if {
	action.manages_members
	limit := above_own(effective_team_role)
} else := {"allow": true, "role": effective_team_role, "reasons": [{"code": "team_role"}]}

# The team action's requirement: the org roles it names, else its least team role (by data
# rank). Undefined (a role the ranks do not know) is not met: it denies.
team_role_suffices if {
	action.org_roles
	org_role in action.org_roles
}

team_role_suffices if {
	not action.org_roles
	data.teamgate.ranks[effective_team_role] >= data.teamgate.ranks[action.role]
}

# ---------------------------------------------------------------------------------------------
# Nobody assigns a role above their own (SPEC §4): a project or team action that manages members
# (manages_members: project.access, team.members.manage) may not give a role (target_role) or
# change one (target_current_role) that ranks above the subject's own role there, by data rank.
# A target the ranks do not know is never within: it denies (the engine refuses it first, as an
# error naming the value). Absent attributes set no limit. A subject whose role does not suffice
# for the action anyway is denied by that, not by this limit.
#
# above_own is the limit a request crosses, {"attribute", "role"}: the attribute (target_role
# first) and the role it names. An insufficient_role reason carries it as "limit" (org_verdict's
# too: target_role above the org role by org_ranks, or target_current_role "owner" for a
# non-owner), and the engine writes the reason's message from it: the message says what the
# policy decided, not a second reading of the ranks.
above_own(role) := {"attribute": "target_role", "role": r} if {
	r := input.attributes.target_role
	not ranks_within(r, role)
} else := {"attribute": "target_current_role", "role": r} if {
	r := input.attributes.target_current_role
	not ranks_within(r, role)
}

# (A function, not `not ranks[r] <= ranks[role]` in place: for an r the ranks do not know, OPA
# leaves that negation undefined rather than true — test_limit_unknown_target_denies.)
ranks_within(r, role) if data.teamgate.ranks[r] <= data.teamgate.ranks[role]

# The same by org rank (members.manage): a target_role org_ranks does not know (or that is not
# a string) is never within either; the engine refuses it first, as an error naming the value.
org_ranks_within(r, role) if org_ranks[r] <= org_ranks[role]
