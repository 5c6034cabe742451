package teamgate.ext

import rego.v1

allow contains "otto reads open" if {
	input.action == "project.get"
	input.subject.id == "otto"
	input.resource.project == "open"
}
