package store_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/store"
)

// BenchmarkApply measures a write batch of n memberships on the path every batch that fits one
// Badger transaction takes, in memory and on disk (without fsync, which would dominate).
func BenchmarkApply(b *testing.B) {
	for _, mode := range []struct {
		name string
		disk bool
	}{{"memory", false}, {"disk", true}} {
		for _, n := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("%s/changes=%d", mode.name, n), func(b *testing.B) {
				opts := store.Options{NoSync: true}
				if mode.disk {
					opts.Dir = b.TempDir()
				}
				s, err := store.Open(b.Context(), opts)
				require.NoError(b, err)
				defer s.Close()
				_, err = s.Apply(b.Context(), store.PutOrg{Org: store.Org{Name: "bench"}})
				require.NoError(b, err)
				batch := make([]store.Change, n)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					for j := range batch {
						batch[j] = store.PutMember{Org: "bench", User: fmt.Sprintf("u%d", i), Role: "member"}
						i++
					}
					if _, err := s.Apply(b.Context(), batch...); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
