package teamgate.ext

import rego.v1

# Service accounts: for each, the team space it serves and the actions it may take there
# whatever its role. A team space org/team is every project of org whose effective teams
# include team.
service_accounts := {"ci-bot": {"team_space": "acme/engineering", "actions": {"runs.stop"}}}

allow contains sprintf("service account %s may %s in %s", [input.subject.id, input.action, account.team_space]) if {
	account := service_accounts[input.subject.id]
	input.subject.org_role != "none" # removed from the org, it loses this too
	input.action in account.actions
	[org, team] := split(account.team_space, "/")
	input.resource.org == org
	team in input.resource.teams
}
