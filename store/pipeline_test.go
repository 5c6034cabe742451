package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/store"
)

// gate is a commit hook: it records how many batches each Badger commit holds and can hold
// the next commit until released.
type gate struct {
	mu      sync.Mutex
	commits []int // batches per commit since the last holdNext
	hold    bool
	held    chan int      // receives the size of the held commit
	release chan struct{} // closed by open: lets the held commit go on
	once    *sync.Once
}

func (g *gate) hook(batches int) {
	g.mu.Lock()
	g.commits = append(g.commits, batches)
	hold, release := g.hold, g.release
	g.hold = false
	g.mu.Unlock()
	if hold {
		g.held <- batches
		<-release
	}
}

// holdNext makes the next commit wait for open, and forgets the commits counted so far.
func (g *gate) holdNext() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold, g.commits = true, nil
	g.release, g.once = make(chan struct{}), new(sync.Once)
}

// open lets a held commit go on.
func (g *gate) open() {
	g.mu.Lock()
	release, once := g.release, g.once
	g.mu.Unlock()
	once.Do(func() { close(release) })
}

func (g *gate) sizes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.commits)
}

// gated is a store holding the conformance data, with a gate on its commits.
type gated struct {
	s    *store.Store
	g    *gate
	opts store.Options
}

// gatedModes runs fn on an in-memory store and on an on-disk store written with fsync.
func gatedModes(t *testing.T, fn func(t *testing.T, gs gated)) {
	t.Helper()
	for _, disk := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory", true: "disk"}[disk], func(t *testing.T) {
			t.Parallel()
			g := &gate{held: make(chan int, 1), release: make(chan struct{}), once: new(sync.Once)}
			opts := store.Options{}
			if disk {
				opts.Dir = t.TempDir()
			}
			opts = store.WithCommitHook(opts, g.hook)
			s, err := store.Open(t.Context(), opts)
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			loadAcme(t, s)
			t.Cleanup(g.open) // runs first: a failed test must not leave a held commit blocking the others
			fn(t, gated{s: s, g: g, opts: opts})
		})
	}
}

type applied struct {
	rev uint64
	err error
}

func applyAsync(ctx context.Context, s *store.Store, cs ...store.Change) <-chan applied {
	out := make(chan applied, 1)
	go func() {
		rev, err := s.Apply(ctx, cs...)
		out <- applied{rev, err}
	}()
	return out
}

// within waits for done, failing the test if it has not come after a generous while: what it
// guards against is a reader blocked until the held commit is released, i.e. forever.
func within[T any](t *testing.T, done <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-done:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: still blocked while a commit is held", what)
		panic("unreachable")
	}
}

// TestReadersDoNotWaitForACommit holds a write's Badger commit and reads meanwhile: the reads
// complete, and see neither the batch nor its stamps until Apply has returned.
func TestReadersDoNotWaitForACommit(t *testing.T) {
	t.Parallel()
	gatedModes(t, func(t *testing.T, gs gated) {
		s, ctx := gs.s, t.Context()
		base := s.Revision()
		gs.g.holdNext()
		res := applyAsync(ctx, s, store.PutMember{Org: "acme", User: "zed", Role: "viewer"})
		require.Equal(t, 1, <-gs.g.held)

		var deps store.Deps
		viewed := make(chan error, 1)
		go func() {
			viewed <- s.View(func(r store.Reader) error {
				r = r.Track(&deps)
				if _, ok := r.OrgRole("acme", "zed"); ok || r.Revision() != base {
					return fmt.Errorf("a reader saw revision %d (member: %t) before the batch was durable", r.Revision(), ok)
				}
				return nil
			})
		}()
		require.NoError(t, within(t, viewed, "View"))
		require.True(t, deps.Current(), "stamps move only when the batch is published")
		require.Equal(t, base, s.Revision())
		disk, err := store.DiskRevision(s)
		require.NoError(t, err)
		require.Equal(t, base, disk)

		gs.g.open()
		got := <-res
		require.NoError(t, got.err)
		require.Equal(t, base+1, got.rev)
		require.False(t, deps.Current(), "the write moved the member's stamp")
		require.NoError(t, s.View(func(r store.Reader) error {
			role, ok := r.OrgRole("acme", "zed")
			require.True(t, ok, "the write is visible to the next read after Apply returns")
			require.Equal(t, "viewer", role)
			require.Equal(t, base+1, r.Revision())
			return nil
		}))
		disk, err = store.DiskRevision(s)
		require.NoError(t, err)
		require.Equal(t, base+1, disk)
	})
}

// TestNoReaderSeesABatchBeforeItIsDurable runs writers against a reader that, after each read,
// checks Badger already holds the revision it saw; each writer reads its own write back at once.
func TestNoReaderSeesABatchBeforeItIsDurable(t *testing.T) {
	t.Parallel()
	gatedModes(t, func(t *testing.T, gs gated) {
		s, ctx := gs.s, t.Context()
		const writers, writes = 3, 20
		stop := make(chan struct{})
		var readerErr error
		var reader sync.WaitGroup
		reader.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				rev := s.Revision()
				disk, err := store.DiskRevision(s)
				if err == nil && disk < rev {
					err = fmt.Errorf("a reader saw revision %d while Badger held %d", rev, disk)
				}
				if err != nil {
					readerErr = err
					return
				}
			}
		})
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for w := range writers {
			wg.Go(func() {
				user := fmt.Sprintf("w%d", w)
				for i := range writes {
					role := []string{"viewer", "member"}[i%2]
					rev, err := s.Apply(ctx, store.PutMember{Org: "acme", User: user, Role: role})
					if err == nil {
						err = s.View(func(r store.Reader) error {
							if got, _ := r.OrgRole("acme", user); got != role || r.Revision() < rev {
								return fmt.Errorf("after Apply returned %d: read %q at revision %d, want %q", rev, got, r.Revision(), role)
							}
							return nil
						})
					}
					if err != nil {
						errs[w] = err
						return
					}
				}
			})
		}
		wg.Wait()
		close(stop)
		reader.Wait()
		require.NoError(t, errors.Join(errs...))
		require.NoError(t, readerErr)
		require.NoError(t, s.Check())
	})
}

// TestConcurrentWritersShareACommit holds one commit while other writers queue: they are then
// committed together, in one Badger commit, each with its own revision and event, and an invalid
// batch among them fails alone.
func TestConcurrentWritersShareACommit(t *testing.T) {
	t.Parallel()
	const queued = 5
	for _, tc := range []struct {
		name    string
		invalid int // index of the queued write that is invalid, or -1
	}{{"all valid", -1}, {"one invalid", 2}, {"first invalid", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gatedModes(t, func(t *testing.T, gs gated) {
				s, ctx := gs.s, t.Context()
				base := s.Revision()
				changes := make([]store.Change, queued)
				for i := range changes {
					role := "viewer"
					if i == tc.invalid {
						role = "emperor"
					}
					changes[i] = store.PutMember{Org: "acme", User: fmt.Sprintf("q%d", i), Role: role}
				}
				first := store.PutMember{Org: "acme", User: "first", Role: "member"}

				gs.g.holdNext()
				firstRes := applyAsync(ctx, s, first)
				require.Equal(t, 1, <-gs.g.held)
				results := make([]applied, queued)
				var wg sync.WaitGroup
				for i := range queued {
					wg.Go(func() {
						rev, err := s.Apply(ctx, changes[i])
						results[i] = applied{rev, err}
					})
				}
				require.Eventually(t, func() bool { return store.QueuedWrites(s) == queued }, 30*time.Second, time.Millisecond)
				gs.g.open()
				wg.Wait()
				got := <-firstRes
				require.NoError(t, got.err)
				require.Equal(t, base+1, got.rev)

				valid := queued
				byRev := map[uint64]store.Change{got.rev: first}
				for i, r := range results {
					if i == tc.invalid {
						valid--
						require.ErrorIs(t, r.err, teamgate.ErrInvalid)
						require.Zero(t, r.rev)
						continue
					}
					require.NoError(t, r.err)
					require.NotContains(t, byRev, r.rev, "revisions are distinct")
					byRev[r.rev] = changes[i]
				}
				revs := slices.Sorted(func(yield func(uint64) bool) {
					for r := range byRev {
						if !yield(r) {
							return
						}
					}
				})
				want := make([]uint64, 0, valid+1)
				for r := base + 1; r <= base+1+uint64(valid); r++ {
					want = append(want, r)
				}
				require.Equal(t, want, revs, "consecutive revisions")
				require.Equal(t, []int{1, valid}, gs.g.sizes(), "the queued batches share one commit")
				require.Equal(t, base+1+uint64(valid), s.Revision())

				wctx, cancel := context.WithCancel(ctx)
				defer cancel()
				ch, err := s.Watch(wctx, base)
				require.NoError(t, err)
				for _, rev := range want {
					ev := <-ch
					require.NoError(t, ev.Err)
					require.Equal(t, rev, ev.Revision, "events in revision order")
					require.Equal(t, store.Changes{byRev[rev]}, ev.Changes, "each batch keeps its own event")
				}

				check := func(s *store.Store) {
					require.NoError(t, s.Check())
					require.NoError(t, s.View(func(r store.Reader) error {
						for i, c := range changes {
							role, ok := r.OrgRole("acme", fmt.Sprintf("q%d", i))
							require.Equal(t, i != tc.invalid, ok)
							if ok {
								require.Equal(t, c.(store.PutMember).Role, role)
							}
						}
						return nil
					}))
				}
				check(s)
				if gs.opts.Dir != "" {
					require.NoError(t, s.Close())
					re, err := store.Open(ctx, store.Options{Dir: gs.opts.Dir})
					require.NoError(t, err)
					defer re.Close()
					require.Equal(t, base+1+uint64(valid), re.Revision())
					check(re)
				}
			})
		})
	}
}

// TestCloseWaitsForQueuedWrites closes the store while a commit is held and writes are queued
// behind it: every accepted write is committed and answered before Close returns, and later
// writes are refused.
func TestCloseWaitsForQueuedWrites(t *testing.T) {
	t.Parallel()
	gatedModes(t, func(t *testing.T, gs gated) {
		s, ctx := gs.s, t.Context()
		base := s.Revision()
		gs.g.holdNext()
		res := []<-chan applied{applyAsync(ctx, s, store.PutMember{Org: "acme", User: "c0", Role: "viewer"})}
		<-gs.g.held
		for i := 1; i <= 3; i++ {
			res = append(res, applyAsync(ctx, s, store.PutMember{Org: "acme", User: fmt.Sprintf("c%d", i), Role: "viewer"}))
		}
		require.Eventually(t, func() bool { return store.QueuedWrites(s) == 3 }, 30*time.Second, time.Millisecond)
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		gs.g.open()
		for _, r := range res {
			got := <-r
			require.NoError(t, got.err)
			require.Greater(t, got.rev, base)
		}
		require.NoError(t, <-closed)
		_, err := s.Apply(ctx, store.PutMember{Org: "acme", User: "late", Role: "viewer"})
		require.ErrorIs(t, err, teamgate.ErrClosed)
		if gs.opts.Dir != "" {
			re, err := store.Open(ctx, store.Options{Dir: gs.opts.Dir})
			require.NoError(t, err)
			defer re.Close()
			require.Equal(t, base+4, re.Revision())
		}
	})
}

// TestGroupOverTheTransactionLimitIsAtomic commits two queued batches that together exceed a
// Badger transaction, so the group goes through the staged commit, and makes Badger fail at a
// step: before the commit marker both batches fail and nothing changes, memory or disk; after
// it both stand. Either way Badger ends as if the batches had been committed one by one.
func TestGroupOverTheTransactionLimitIsAtomic(t *testing.T) {
	t.Parallel()
	errInjected := errors.New("injected Badger failure")
	want := expectedDisk(t, 3)
	for _, tc := range []struct {
		step string // "" injects nothing
		kept bool
	}{{"", true}, {store.StepStaged, false}, {store.StepMarked, true}, {store.StepApplied, true}} {
		t.Run(fmt.Sprintf("fail-at-%q", tc.step), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			g := &gate{held: make(chan int, 1), release: make(chan struct{}), once: new(sync.Once)}
			var failed sync.Once
			hook := func(step string) error {
				if step != tc.step {
					return nil
				}
				err := error(nil)
				failed.Do(func() { err = errInjected })
				return err
			}
			opts := store.WithCommitHook(store.WithTestHooks(store.Options{Dir: t.TempDir(), NoSync: true}, smallTxn, hook), g.hook)
			s, err := store.Open(ctx, opts)
			require.NoError(t, err)
			defer func() { _ = s.Close() }()
			defer g.open()
			// Revision 1 (small: one transaction, no steps) is held while 2 and 3 queue in order.
			g.holdNext()
			first := applyAsync(ctx, s, bigBatch(1)...)
			<-g.held
			second := applyAsync(ctx, s, bigBatch(2)...)
			require.Eventually(t, func() bool { return store.QueuedWrites(s) == 1 }, 30*time.Second, time.Millisecond)
			third := applyAsync(ctx, s, bigBatch(3)...)
			require.Eventually(t, func() bool { return store.QueuedWrites(s) == 2 }, 30*time.Second, time.Millisecond)
			g.open()
			r1 := <-first
			require.NoError(t, r1.err)
			r2, r3 := <-second, <-third
			require.Equal(t, []int{1, 2}, g.sizes(), "the two big batches share one commit")

			if !tc.kept {
				require.ErrorIs(t, r2.err, errInjected)
				require.ErrorIs(t, r3.err, errInjected)
				require.Equal(t, uint64(1), s.Revision())
				require.NoError(t, s.Check())
				require.NoError(t, s.View(func(r store.Reader) error {
					_, ok := r.OrgRole("big", "r2u0")
					require.False(t, ok, "the failed group changed nothing in memory")
					return nil
				}))
				require.Equal(t, want[1], diskKeys(t, s), "the failed group left nothing on disk")
				return
			}
			require.NoError(t, r2.err)
			require.NoError(t, r3.err)
			require.Equal(t, []uint64{2, 3}, []uint64{r2.rev, r3.rev})
			// Both events are found at once, also when applying the group to its keys failed
			// and waits for the next write: they were committed with the marker.
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			ch, err := s.Watch(wctx, 1)
			require.NoError(t, err)
			for _, rev := range []uint64{2, 3} {
				ev := <-ch
				require.NoError(t, ev.Err)
				require.Equal(t, rev, ev.Revision)
			}
			require.NoError(t, s.Close())
			s, err = store.Open(ctx, store.WithTestHooks(store.Options{Dir: opts.Dir}, smallTxn, nil))
			require.NoError(t, err)
			require.NoError(t, s.Check())
			require.Equal(t, want[3], diskKeys(t, s), "records, stamps, events and revision as if committed one by one")
		})
	}
}

// TestGroupCommitEqualsOneByOne queues random batches (members, teams and team memberships
// added and removed, so ids are freed and reused; some batches invalid) behind a held commit,
// round after round, so they are validated, undone and redone as groups: the store ends equal to
// a replica that replays the same events one by one, and its indexes agree with its records.
func TestGroupCommitEqualsOneByOne(t *testing.T) {
	t.Parallel()
	gatedModes(t, func(t *testing.T, gs gated) {
		s, ctx := gs.s, t.Context()
		ref := memAcme(t)
		base := s.Revision()
		require.Equal(t, base, ref.Revision())
		rng := rand.New(rand.NewPCG(3, 9))
		users, teams := []string{"n1", "n2", "n3", "n4", "bob", "vera"}, []string{"x1", "x2"}
		pick := func(from []string) string { return from[rng.IntN(len(from))] }
		change := func() store.Change {
			switch rng.IntN(6) {
			case 0:
				return store.PutMember{Org: "acme", User: pick(users), Role: pick([]string{"member", "viewer", "admin"})}
			case 1:
				return store.DeleteMember{Org: "acme", User: pick(users)}
			case 2:
				return store.PutTeam{Team: store.Team{Org: "acme", Name: pick(teams)}}
			case 3:
				return store.DeleteTeam{Org: "acme", Name: pick(teams)}
			case 4:
				return store.PutTeamMember{Org: "acme", Team: pick(teams), User: pick(users), Role: pick([]string{"member", "admin"})}
			default:
				return store.DeleteTeamMember{Org: "acme", Team: pick(teams), User: pick(users)}
			}
		}
		const rounds, queued = 6, 8
		for range rounds {
			gs.g.holdNext()
			first := applyAsync(ctx, s, store.PutMember{Org: "acme", User: pick(users), Role: "member"})
			<-gs.g.held
			var wg sync.WaitGroup
			for i := range queued {
				batch := make([]store.Change, 1+rng.IntN(3))
				for j := range batch {
					batch[j] = change()
				}
				wg.Go(func() { _, _ = s.Apply(ctx, batch...) })
				require.Eventually(t, func() bool { return store.QueuedWrites(s) == i+1 }, 30*time.Second, time.Millisecond)
			}
			gs.g.open()
			wg.Wait()
			require.NoError(t, (<-first).err)
			require.NoError(t, s.Check())
		}
		require.Greater(t, s.Revision(), base+rounds, "some queued batches committed")

		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		ch, err := s.Watch(wctx, base)
		require.NoError(t, err)
		for ref.Revision() < s.Revision() {
			ev := <-ch
			require.NoError(t, ev.Err)
			_, err := ref.ApplyEvent(ctx, ev)
			require.NoError(t, err)
		}
		require.Equal(t, export(t, ref), export(t, s))
		if gs.opts.Dir != "" {
			require.NoError(t, s.Close())
			re, err := store.Open(ctx, store.Options{Dir: gs.opts.Dir})
			require.NoError(t, err)
			defer re.Close()
			require.NoError(t, re.Check())
			require.Equal(t, export(t, ref), export(t, re), "what was committed in groups reopens the same")
		}
	})
}
