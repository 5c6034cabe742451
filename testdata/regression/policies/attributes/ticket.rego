package teamgate.ext

import rego.v1

deny contains "stopping a run needs a ticket" if {
	input.action == "runs.stop"
	not input.attributes.ticket
}
