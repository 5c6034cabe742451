package teamgate.ext

import rego.v1

deny contains "org members may not stop runs" if {
	print("a stop is asked")
	input.subject.org_role == "member"
	input.action == "runs.stop"
}
