# Helpers for Rego tests of teamgate policies: `teamgate test` and rego.Test / rego.RunTests
# load this module beside the default policy. It never decides (rego.New does not load it).
# rego/README.md ("Testing a rule") shows it in use.
package teamgate.testing

import rego.v1

# defaults is a request holding every fact of the input document (rego/README.md, "Input"): a
# member of org acme, in no team and without a grant, asks runs.get on project acme/p, which
# exists, is open to the org and carries no labels.
defaults := {
	"subject": {"id": "user", "org_role": "member", "grant": "", "break_glass": false, "team_roles": {}},
	"action": "runs.get",
	"resource": {
		"kind": "project", "org": "acme", "team": "", "project": "p",
		"teams": [], "restricted": false, "exists": true, "missing": "", "labels": {},
	},
	"attributes": {},
}

# request is defaults with patch merged over it key by key (object.union), so a test names only
# the facts it is about: request({"subject": {"org_role": "owner"}, "action": "runs.delete"}).
request(patch) := object.union(defaults, patch)

# input_for is request for what most tests set: the subject's facts, the action and the
# resource's facts, each merged over defaults:
# input_for({"id": "bob", "grant": "admin"}, "runs.approve", {"labels": {"approval": "admin-only"}}).
input_for(subject, action, resource) := request({"subject": subject, "action": action, "resource": resource})
