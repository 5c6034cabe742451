package teamgate.ext_test

import rego.v1

import data.teamgate.authz

owner := {"id": "alice", "org_role": "owner", "grant": "", "team_roles": {}}

archive := {"kind": "project", "org": "acme", "team": "", "project": "archive", "teams": [], "restricted": false, "exists": true}

test_archive_frozen_for_owners if {
	d := authz.decision with input as {"subject": owner, "action": "runs.create", "resource": archive, "attributes": {}}
	not d.allow
	d.reasons[0].code == "extension_deny"
}

test_archive_still_readable if {
	d := authz.decision with input as {"subject": owner, "action": "runs.get", "resource": archive, "attributes": {}}
	d.allow
}
