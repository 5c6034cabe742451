package teamgate.ext

import rego.v1

import data.teamgate.ext.lib

deny contains "a team of this project is frozen" if {
	lib.frozen
	startswith(input.action, "runs.")
}
