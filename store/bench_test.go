package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/teamgate/teamgate/store"
)

// BenchmarkApply measures a write batch of n memberships on the path every batch that fits one
// Badger transaction takes, in memory and on disk (without fsync, which would dominate), and in
// memory with a span per write (spans: an SDK provider that samples every span and exports none).
func BenchmarkApply(b *testing.B) {
	for _, mode := range []struct {
		name        string
		disk, spans bool
	}{{"memory", false, false}, {"disk", true, false}, {"spans", false, true}} {
		for _, n := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("%s/changes=%d", mode.name, n), func(b *testing.B) {
				opts := store.Options{NoSync: true}
				if mode.disk {
					opts.Dir = b.TempDir()
				}
				if mode.spans {
					tp := sdktrace.NewTracerProvider()
					defer func() { _ = tp.Shutdown(context.Background()) }()
					opts.TracerProvider = tp
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

// BenchmarkOpen opens an on-disk directory of 200k team memberships (20k members, 10 teams each
// of 100) three ways: from the snapshot its Close wrote (clean), from its newest background
// snapshot and the records changed after it when the process stopped 1,000 single-membership
// writes later without its Close snapshot (crash: as after kill -9), and from the records alone
// (records: what the crash cost before background snapshots). crash also reports the longest
// time a background snapshot held the writers: its start or one step of its copy (hold-max-µs).
func BenchmarkOpen(b *testing.B) {
	const members, teams, perMember = 20_000, 100, 10
	dir := b.TempDir()
	s, err := store.Open(b.Context(), store.Options{Dir: dir, NoSync: true})
	require.NoError(b, err)
	batch := []store.Change{store.PutOrg{Org: store.Org{Name: "o"}}}
	for t := range teams {
		batch = append(batch, store.PutTeam{Team: store.Team{Org: "o", Name: fmt.Sprint("t", t)}})
	}
	for u := range members {
		batch = append(batch, store.PutMember{Org: "o", User: fmt.Sprint("u", u), Role: "member"})
		for k := range perMember {
			batch = append(batch, store.PutTeamMember{Org: "o", Team: fmt.Sprint("t", (u+k*7)%teams), User: fmt.Sprint("u", u), Role: "member"})
		}
		if len(batch) >= 10_000 {
			_, err = s.Apply(b.Context(), batch...)
			require.NoError(b, err)
			batch = batch[:0]
		}
	}
	_, err = s.Apply(b.Context(), batch...)
	require.NoError(b, err)
	require.NoError(b, s.Close())
	open := func(b *testing.B, opts store.Options) {
		b.ReportAllocs()
		for b.Loop() {
			s, err := store.Open(b.Context(), opts)
			if err != nil {
				b.Fatal(err)
			}
			store.SkipSnapshotAtClose(s)
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("clean", func(b *testing.B) { open(b, store.Options{Dir: dir, NoSync: true}) })
	b.Run("crash", func(b *testing.B) {
		o := store.Options{Dir: dir, NoSync: true, SnapshotRevisions: 100}
		s, err := store.Open(b.Context(), o)
		require.NoError(b, err)
		var hold atomic.Int64
		store.OnSnapshotCapture(s, func(d time.Duration) {
			for old := hold.Load(); int64(d) > old && !hold.CompareAndSwap(old, int64(d)); old = hold.Load() {
			}
		})
		for i := range 1000 {
			_, err := s.Apply(b.Context(), store.PutTeamMember{Org: "o", Team: fmt.Sprint("t", i%teams), User: fmt.Sprint("u", i*13%members), Role: "admin"})
			require.NoError(b, err)
		}
		store.SkipSnapshotAtClose(s)
		require.NoError(b, s.Close())
		s, err = store.Open(b.Context(), o)
		require.NoError(b, err)
		require.True(b, store.FromSnapshot(s))
		after := s.Revision() - store.SnapshotRevision(s)
		store.SkipSnapshotAtClose(s)
		require.NoError(b, s.Close())
		open(b, o)
		b.ReportMetric(float64(after), "revisions-after-snapshot")
		b.ReportMetric(float64(hold.Load())/1e3, "hold-max-µs")
	})
	b.Run("records", func(b *testing.B) { open(b, store.IgnoreSnapshot(store.Options{Dir: dir, NoSync: true})) })
}
