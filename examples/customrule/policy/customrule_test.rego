package teamgate.ext_test

import rego.v1

import data.teamgate.authz
import data.teamgate.testing

friday := time.parse_rfc3339_ns("2026-01-02T12:00:00Z")

thursday := time.parse_rfc3339_ns("2026-01-01T12:00:00Z")

# An owner may delete runs, but not on a Friday.
test_no_deletes_on_fridays if {
	d := authz.decision with input as testing.input_for({"org_role": "owner"}, "runs.delete", {})
		with time.now_ns as friday
	not d.allow
	d.reasons[0].code == "extension_deny"
	d.reasons[0].message == "runs are not deleted on Fridays"
}

test_deletes_on_thursdays if {
	authz.decision.allow with input as testing.input_for({"org_role": "owner"}, "runs.delete", {})
		with time.now_ns as thursday
}

test_fridays_stop_only_deletes if {
	authz.decision.allow with input as testing.input_for({"org_role": "owner"}, "runs.stop", {})
		with time.now_ns as friday
}

# ci-bot, a viewer of the org, stops runs in engineering's projects and nowhere else.
ci_bot := {"id": "ci-bot", "org_role": "viewer"}

test_service_account_stops_runs_in_its_team if {
	d := authz.decision with input as testing.input_for(ci_bot, "runs.stop", {"teams": ["engineering"], "restricted": true})
	print("ci-bot:", d)
	d.allow
	d.reasons[0].code == "extension_allow"
}

test_service_account_only_in_its_team if {
	not authz.decision.allow with input as testing.input_for(ci_bot, "runs.stop", {"teams": ["research"], "restricted": true})
}

test_service_account_only_its_actions if {
	not authz.decision.allow with input as testing.input_for(ci_bot, "runs.delete", {"teams": ["engineering"], "restricted": true})
		with time.now_ns as thursday
}

test_service_account_removed_from_the_org if {
	not authz.decision.allow with input as testing.input_for({"id": "ci-bot", "org_role": "none"}, "runs.stop", {"teams": ["engineering"]})
}

# A team admin approves runs, except on projects labelled approval=admin-only.
team_admin := {"id": "olga", "team_roles": {"engineering": "admin"}}

admin_only := {"teams": ["engineering"], "restricted": true, "labels": {"approval": "admin-only"}}

test_team_admin_approves if {
	authz.decision.allow with input as testing.input_for(team_admin, "runs.approve", {"teams": ["engineering"], "restricted": true})
}

test_team_admin_does_not_approve_admin_only if {
	d := authz.decision with input as testing.input_for(team_admin, "runs.approve", admin_only)
	not d.allow
	d.reasons[0].code == "extension_deny"
}

test_org_admins_approve_admin_only if {
	authz.decision.allow with input as testing.input_for(object.union(team_admin, {"org_role": "admin"}), "runs.approve", admin_only)
	authz.decision.allow with input as testing.input_for({"org_role": "owner"}, "runs.approve", admin_only)
}
