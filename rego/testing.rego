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
# Its action must be in the catalog (data.teamgate.actions, with the policy's JSON merged over it).
request(patch) := r if {
	r := object.union(defaults, patch)
	catalog_action(r.action)
}

# catalog_action holds for an action of the catalog. Any other errors, failing the test that asked
# for it (also under `not`) with a message naming the action: the engine refuses such a request
# (ErrInvalid) before any rule runs, while the rules alone would just deny it, so a test that
# checks a deny would pass on a misspelt or missing action.
catalog_action(a) if data.teamgate.actions[a]

catalog_action(a) if {
	not data.teamgate.actions[a]
	fail(sprintf("action %v is not in the catalog (data.teamgate.actions): add it in a JSON file of the policy, or fix the name", [a]))
}

# fail(msg) fails the evaluation that reaches it. Under `teamgate test` (rego.RunTests) a call of
# it is the runner's built-in teamgate.test_error(msg), whose error is msg itself. Plain `opa
# test`, which has no such built-in and turns a built-in's error into undefined (a `not` would
# pass), evaluates these two definitions: msg is printed (OPA shows it with the failing test) and
# the two values conflict (eval_conflict_error, which OPA always raises).
fail(msg) := true if print(msg)

fail(_) := false

# input_for is request for what most tests set: the subject's facts, the action and the
# resource's facts, each merged over defaults:
# input_for({"id": "bob", "grant": "admin"}, "runs.approve", {"labels": {"approval": "admin-only"}}).
input_for(subject, action, resource) := request({"subject": subject, "action": action, "resource": resource})
