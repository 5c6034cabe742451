package teamgate.ext

import rego.v1

stops if {
	input.subject.org_role == "member"
	input.action == "runs.stop"
}

deny contains "org members may not stop runs" if stops with input.subject.grant as ""
