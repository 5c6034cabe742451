package teamgate.ext

import rego.v1

# to_number fails on a subject id that is not a number: the evaluation fails, which denies.
deny contains msg if {
	input.subject.id != "bob"
	msg := sprintf("%d", [to_number(input.subject.id)])
}
