package authz_test

import "github.com/teamgate/teamgate/internal/racedetect"

// iterations is n, or raced (fewer) under the race detector. The differential property tests
// that call it check random directories against full Rego evaluation, their oracle, request by
// request on one goroutine; OPA's evaluator costs 20–50× more under the race detector, which
// made them most of authz's CI time (stop 19). `go test ./...` (README.md's test command, no
// -race) runs the full count n; CI's `go test -race` (.ci/run) runs raced, chosen by each caller
// so that every property and path is still exercised (its comment says how). The concurrency
// the race detector is there for is exercised by the tests that run goroutines, at their full
// count.
func iterations[N ~int | ~uint64](n, raced N) N {
	if racedetect.Enabled {
		return raced
	}
	return n
}
