//go:build !race

// Package racedetect says whether the race detector is built in: allocation counts are not
// meaningful under it (sync.Pool drops items at random and instrumentation allocates), so the
// tests that count allocations run without it (`go test ./...`) and skip under `-race`.
package racedetect

// Enabled reports whether the race detector is built in.
const Enabled = false
