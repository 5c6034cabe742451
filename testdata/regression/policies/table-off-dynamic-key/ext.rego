package teamgate.ext

import rego.v1

deny contains "org members may not stop runs" if {
	k := concat("_", ["org", "role"])
	input.subject[k] == "member"
	input.action == "runs.stop"
}
