# An author's module: a change freeze on the archive project.
package teamgate.ext

import rego.v1

deny contains "acme/archive is frozen" if {
	input.resource.org == "acme"
	input.resource.project == "archive"
	not endswith(input.action, ".get")
}
