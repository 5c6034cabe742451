package teamgate.ext

import rego.v1

# Reads only the subject's org role and the action: the facts the decision table keys on.
deny contains "org members may not stop runs" if {
	input.subject.org_role == "member"
	input.action == "runs.stop"
}
