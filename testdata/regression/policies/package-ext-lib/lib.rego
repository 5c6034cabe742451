package teamgate.ext.lib

import rego.v1

# A rule of a subpackage of teamgate.ext, read by the deciding module.
frozen_teams := {"research"}

frozen if {
	some t in input.resource.teams
	t in frozen_teams
}
