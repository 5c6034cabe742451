package teamgate.authz_test

import rego.v1

import data.teamgate.authz

subject(org_role, grant, team_roles) := {"id": "u", "org_role": org_role, "grant": grant, "team_roles": team_roles}

project(teams, restricted) := {
	"kind": "project", "org": "acme", "team": "", "project": "p",
	"teams": teams, "restricted": restricted, "exists": true, "missing": "",
}

req(action, s, r) := {"subject": s, "action": action, "resource": r, "attributes": {}}

test_owner_overrides_restriction if {
	d := authz.decision with input as req("runs.approve", subject("owner", "", {}), project(["eng"], true))
	d.allow
	d.role == "admin"
	d.reasons[0].code == "org_override"
}

test_non_member_denied if {
	d := authz.decision with input as req("runs.get", subject("none", "", {}), project([], false))
	not d.allow
	d.role == "none"
	d.reasons[0].code == "not_org_member"
}

test_restricted_without_team_or_grant if {
	d := authz.decision with input as req("runs.get", subject("admin", "", {"other": "admin"}), project(["eng"], true))
	not d.allow
	d.reasons[0].code == "restricted"
	d.role == "none"
}

test_restricted_and_empty_is_closed if {
	d := authz.decision with input as req("runs.get", subject("member", "", {"eng": "admin"}), project([], true))
	not d.allow
	d.reasons[0].code == "restricted"
}

test_team_role_raises_base if {
	d := authz.decision with input as req("runs.stop", subject("viewer", "", {"eng": "contributor"}), project(["eng", "research"], true))
	d.allow
	d.role == "contributor"
	d.reasons[0].code == "team_role"
}

test_highest_team_role_wins if {
	d := authz.decision with input as req("runs.get", subject("viewer", "", {"eng": "member", "research": "admin"}), project(["eng", "research"], true))
	d.role == "admin"
}

test_team_role_not_above_base_keeps_base_reason if {
	d := authz.decision with input as req("runs.get", subject("member", "", {"eng": "viewer"}), project(["eng"], true))
	d.role == "contributor"
	d.reasons[0].code == "org_role"
}

test_grant_lowers_org_role if {
	d := authz.decision with input as req("runs.stop", subject("member", "viewer", {}), project([], false))
	not d.allow
	d.role == "viewer"
	d.reasons[0].code == "insufficient_role"
}

test_grant_opens_restricted if {
	d := authz.decision with input as req("runs.get", subject("outsider", "viewer", {}), project(["eng"], true))
	d.allow
	d.reasons[0].code == "grant"
}

test_billing_on_open_project if {
	d := authz.decision with input as req("runs.get", subject("billing", "", {}), project([], false))
	not d.allow
	d.role == "none"
	d.reasons[0].code == "insufficient_role"
}

test_own_run if {
	r := object.union(req("runs.delete", subject("member", "", {}), project([], false)), {"attributes": {"run": {"created_by": "u"}}})
	d := authz.decision with input as r
	d.allow
	d.reasons[0].code == "own_run"
}

test_own_run_ignores_non_object if {
	r := object.union(req("runs.delete", subject("member", "", {}), project([], false)), {"attributes": {"run": "u"}})
	d := authz.decision with input as r
	not d.allow
}

test_transfer_needs_destination if {
	d := authz.decision with input as req("runs.transfer", subject("admin", "", {}), project([], false))
	not d.allow
	d.role == "admin"
	d.reasons[0].code == "destination_denied"
}

test_not_found_for_owner if {
	r := req("runs.get", subject("owner", "", {}), object.union(project([], false), {"exists": false, "missing": "project p does not exist"}))
	d := authz.decision with input as r
	not d.allow
	d.role == "none"
	d.reasons[0].code == "not_found"
}

test_members_manage_limits if {
	r := {"subject": subject("manager", "", {}), "action": "members.manage", "resource": {"kind": "org", "org": "acme", "exists": true}, "attributes": {"target_role": "owner"}}
	d := authz.decision with input as r
	not d.allow
	d.reasons[0].code == "insufficient_role"
}

test_team_admin_by_org_admin_membership if {
	r := {"subject": subject("admin", "", {"eng": "viewer"}), "action": "team.update", "resource": {"kind": "team", "org": "acme", "team": "eng", "exists": true}, "attributes": {}}
	d := authz.decision with input as r
	d.allow
	d.role == "admin"
}

test_team_delete_needs_org_owner_or_manager if {
	r := {"subject": subject("member", "", {"eng": "admin"}), "action": "team.delete", "resource": {"kind": "team", "org": "acme", "team": "eng", "exists": true}, "attributes": {}}
	d := authz.decision with input as r
	not d.allow
	d.role == "admin"
}

test_extension_deny_beats_allow if {
	d := authz.decision with input as req("runs.get", subject("owner", "", {}), project([], false))
		with data.teamgate.ext.deny as {"frozen"}
		with data.teamgate.ext.allow as {"open"}
	not d.allow
	d.reasons[0].code == "extension_deny"
}

test_extension_allow if {
	d := authz.decision with input as req("runs.get", subject("billing", "", {}), project([], false))
		with data.teamgate.ext.allow as {"billing may read"}
	d.allow
	d.reasons[0].code == "extension_allow"
}
