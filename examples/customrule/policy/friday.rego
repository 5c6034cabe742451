package teamgate.ext

import rego.v1

# No run is deleted on a Friday (UTC), whatever the role. time.now_ns() is the evaluation's
# clock; a test sets it with `with time.now_ns as ...`. Reading the clock makes the policy
# non-deterministic, so the engine caches none of its decisions.
deny contains "runs are not deleted on Fridays" if {
	input.action == "runs.delete"
	time.weekday(time.now_ns()) == "Friday"
}
