package store

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/racedetect"
)

// TestWriteSpanHooksAllocateNothing: without Options.TracerProvider, Apply (the span hooks
// around the commit pipeline) allocates what the pipeline alone (apply) does: tracing off costs
// a write no allocation.
func TestWriteSpanHooksAllocateNothing(t *testing.T) {
	if racedetect.Enabled {
		t.Skip("allocation counts are not meaningful under the race detector; `go test ./...` runs this")
	}
	ctx := t.Context()
	s, err := Open(ctx, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	_, err = s.Apply(ctx, PutOrg{Org: Org{Name: "o"}}, PutMember{Org: "o", User: "u", Role: "member"})
	require.NoError(t, err)
	roles := [2]string{"admin", "member"}
	i := 0
	change := func() []Change { // alternates, so every write changes the record and the state keeps its size
		i++
		return []Change{PutMember{Org: "o", User: "u", Role: roles[i%2]}}
	}
	write := func(hooked bool) float64 {
		return testing.AllocsPerRun(200, func() {
			cs := change()
			if hooked {
				_, err = s.Apply(ctx, cs...)
			} else {
				_, err = s.apply(ctx, write{}, cs)
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	for range 3 { // warm up: the first writes grow the pipeline's and Badger's buffers
		write(false)
	}
	bare, hooked := write(false), write(true)
	require.Positive(t, bare)
	require.Equal(t, bare, hooked)
}
