package teamgate.ext

import rego.v1

deny contains "olga is suspended" if {
	print("subject:", input.subject)
	input.subject.id == "olga"
}
