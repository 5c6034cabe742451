package teamgate.ext

import rego.v1

# About nine million iterations (many seconds of OPA time), allocating almost nothing while it
# runs: only the evaluation budget (the suite's, cases.yaml) ends it.
deny contains "slow" if {
	count([1 | some i in numbers.range(1, 3000); some j in numbers.range(1, 3000); i == j + 10000000]) > 0
}
