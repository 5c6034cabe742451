package teamgate.ext

import rego.v1

# An author's rule on a label (rego/README.md's admin-only approval): runs of a project labelled
# approval=admin-only are approved by org admins (owners and managers included) only, not by the
# project's admins through a team. The message quotes the label, so a value the engine changed on
# the way would show.
deny contains sprintf("runs of a project labelled approval=%s are approved by org admins only", [input.resource.labels.approval]) if {
	input.action == "runs.approve"
	input.resource.labels.approval == "admin-only"
	not input.subject.org_role in {"owner", "manager", "admin"}
}

# Every label a project carries reaches the policy as written: the denial of runs.delete quotes
# them all (keys, the number key as the string "2024", values with '<', quotes and non-ASCII text).
deny contains sprintf("labels %v", [input.resource.labels]) if input.action == "runs.delete"

# A label's key is read by its string (YAML wrote it as the number 2024).
deny contains "2024's budget is spent" if {
	input.action == "runs.create"
	input.resource.labels["2024"] == "budget"
}
