package teamgate.ext

import rego.v1

allow contains "billing reads open projects" if {
	input.subject.org_role == "billing"
	input.action == "runs.get"
}

allow contains "olga reads open" if {
	input.subject.id == "olga"
	input.resource.project == "open"
}

deny contains "olga is suspended" if input.subject.id == "olga"
