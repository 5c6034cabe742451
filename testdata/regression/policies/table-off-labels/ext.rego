package teamgate.ext

import rego.v1

deny contains "org members may not stop runs" if {
	input.subject.org_role == "member"
	input.action == "runs.stop"
	count(input.resource.labels) == 0
}
