package teamgate.ext_test

import rego.v1

import data.teamgate.authz

test_owner_reads if {
	d := authz.decision with input as {"subject": {"id": "a", "org_role": "owner", "grant": "", "team_roles": {}}, "action": "org.get", "resource": {"kind": "org", "org": "acme", "exists": true}, "attributes": {}}
	d.allow
}
