package teamgate.ext

import rego.v1

# Runs of a project labelled approval=admin-only are approved by org admins (owners and
# managers included) only: being the project's admin through a team or a grant is not enough.
deny contains "runs of a project labelled approval=admin-only are approved by org admins only" if {
	input.action == "runs.approve"
	input.resource.labels.approval == "admin-only"
	not input.subject.org_role in {"owner", "manager", "admin"}
}
