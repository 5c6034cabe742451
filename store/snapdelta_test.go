package store_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/store"
)

// crashChange is a random write of the crash tests: the membership churn of churn, plus orgs
// deleted and created again, memberships that expire (far ahead), grants, and now and then a
// whole data file (one batch writing many records).
func crashChange(rng *rand.Rand) store.Change {
	users := []string{"ann", "ben", "cat", "dan", "eve", "fay"}
	teams := []string{"red", "blue", "green", "gold"}
	org, u, tm := []string{"o", "q", "r"}[rng.IntN(3)], users[rng.IntN(len(users))], teams[rng.IntN(len(teams))]
	switch rng.IntN(20) {
	case 0:
		return store.DeleteOrg{Name: org}
	case 1:
		return store.PutOrg{Org: store.Org{Name: org}}
	case 2:
		return store.PutFile{File: *randomFile(rng)}
	case 3, 4:
		return store.DeleteMember{Org: org, User: u}
	case 5, 6, 7:
		return store.PutMember{Org: org, User: u, Role: store.OrgRoles()[rng.IntN(len(store.OrgRoles()))]}
	case 8:
		return store.DeleteTeamMember{Org: org, Team: tm, User: u}
	case 9:
		return store.RenameTeam{Org: org, From: tm, To: teams[rng.IntN(len(teams))]}
	case 10:
		return store.DeleteTeam{Org: org, Name: tm}
	case 11, 12:
		return store.PutTeam{Team: store.Team{Org: org, Name: tm}}
	case 13:
		return store.PutGrant{Org: org, Project: "p1", User: u, Grant: store.Grant{Role: "viewer"}}
	case 14, 15:
		return store.PutTeamMember{Org: org, Team: tm, User: u, Role: store.TeamRoles()[rng.IntN(len(store.TeamRoles()))],
			ExpiresAt: time.Date(2100, 1, 1+rng.IntN(28), 0, 0, 0, 0, time.UTC)}
	}
	return store.PutTeamMember{Org: org, Team: tm, User: u, Role: store.TeamRoles()[rng.IntN(len(store.TeamRoles()))]}
}

// bothOpens opens dir from its snapshot and from its records alone, requires both to show the
// same (and consistent indexes), and returns whether the first used a snapshot. Neither writes a
// snapshot at Close, so the directory stays as it was found.
func bothOpens(t *testing.T, dir, what string) bool {
	t.Helper()
	s := openDir(t, dir)
	require.NoError(t, s.Check(), what)
	got, used := seen(t, s), store.FromSnapshot(s)
	store.SkipSnapshotAtClose(s)
	require.NoError(t, s.Close())
	records := openDir(t, dir, store.IgnoreSnapshot)
	require.NoError(t, records.Check(), what)
	require.Equal(t, seen(t, records), got, "%s: open from the snapshot (used: %v) and from the records", what, used)
	store.SkipSnapshotAtClose(records)
	require.NoError(t, records.Close())
	return used
}

// TestSnapshotAndChangesEqualRecords: on random directories and random write sequences, with
// snapshots written in the background every few revisions and by hand at random points, a store
// that stops without its Close snapshot (as after kill -9) opens from its newest snapshot and
// the records changed after it to exactly what opening from the records gives, and to what it
// showed before it stopped.
func TestSnapshotAndChangesEqualRecords(t *testing.T) {
	t.Parallel()
	seeds := uint64(16)
	if testing.Short() {
		seeds = 4
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 91))
			dir, _ := randomDir(t, rng)
			for round := range 3 {
				s := openDir(t, dir, func(o store.Options) store.Options {
					o.SnapshotRevisions = 1 + rng.IntN(8)
					return o
				})
				for range 60 {
					_, _ = s.Apply(t.Context(), crashChange(rng))
					if rng.IntN(25) == 0 {
						require.NoError(t, store.WriteSnapshot(s))
					}
				}
				require.NoError(t, s.Check())
				want := seen(t, s)
				store.SkipSnapshotAtClose(s) // stopped: the snapshots written while it ran are all there is
				require.NoError(t, s.Close())
				require.True(t, bothOpens(t, dir, fmt.Sprint("round ", round)), "round %d: a snapshot is used", round)
				s = openDir(t, dir)
				require.Equal(t, want, seen(t, s), "round %d", round)
				require.NoError(t, s.Close())
			}
		})
	}
}

// TestSnapshotRevisionsBounded: a snapshot every more revisions than the events kept could
// never be brought up to date, so Open refuses it.
func TestSnapshotRevisionsBounded(t *testing.T) {
	t.Parallel()
	_, err := store.Open(t.Context(), store.Options{Dir: t.TempDir(), SnapshotRevisions: 100_001})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	require.ErrorContains(t, err, "100001")
}

// TestBackgroundSnapshotCapture: background snapshots follow the writes (every SnapshotRevisions
// revisions, at most half the time), each begun while leading the commit pipeline and copied while writes go on,
// and a store stopped without its Close snapshot opens from the newest one.
func TestBackgroundSnapshotCapture(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openDir(t, dir, func(o store.Options) store.Options { o.SnapshotRevisions = 10; return o })
	var captures atomic.Int64
	store.OnSnapshotCapture(s, func(time.Duration) { captures.Add(1) })
	loadAcme(t, s)
	// Two rounds of writes, each waited for: on a loaded machine the writer may wake only after
	// all the writes of a round, so one round can make one capture however many revisions it has.
	for round, upTo := range []uint64{10, 30} {
		for i := range 20 {
			_, err := s.Apply(t.Context(), store.PutMember{Org: "acme", User: fmt.Sprint("u", round, "-", i), Role: "member"})
			require.NoError(t, err)
		}
		require.Eventually(t, func() bool { return store.SnapshotRevision(s) >= upTo }, 10*time.Second, 5*time.Millisecond)
		require.GreaterOrEqual(t, captures.Load(), int64(round+1), "round %d", round)
	}
	want := seen(t, s)
	store.SkipSnapshotAtClose(s)
	require.NoError(t, s.Close())
	s = openDir(t, dir)
	require.True(t, store.FromSnapshot(s))
	require.GreaterOrEqual(t, store.SnapshotRevision(s), uint64(30))
	require.Equal(t, want, seen(t, s))
	require.NoError(t, s.Close())
}

// bgWriterEnv makes the test binary open the store in its directory (written by
// TestBackgroundSnapshotKilled) with a snapshot every few revisions, apply bgWrites random
// writes (seeded by bgSeedEnv) and close it, killing itself (SIGKILL) at the bgKillAtEnv-th
// step: a group about to commit, or a commit of a snapshot or a staged batch. It prints "closed"
// when it never does.
const (
	bgWriterEnv = "TEAMGATE_CRASH_BG_DIR"
	bgKillAtEnv = "TEAMGATE_CRASH_BG_AT"
	bgSeedEnv   = "TEAMGATE_CRASH_BG_SEED"
	bgWrites    = 24
)

func bgWriter(dir string, at, seed int) {
	ctx := context.Background()
	var n atomic.Int64
	kill := func() {
		if int(n.Add(1)) == at {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
	o := store.WithSnapshotChunk(store.WithTestHooks(store.Options{Dir: dir}, 0, func(string) error { kill(); return nil }), 256)
	o = store.WithBackgroundSnapshotSteps(o)
	o = store.WithCommitHook(o, func(int) { kill() })
	o.SnapshotRevisions = 3
	s, err := store.Open(ctx, o)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 3))
	for range bgWrites {
		_, _ = s.Apply(ctx, crashChange(rng))
	}
	if err := s.Close(); err != nil {
		fmt.Println("close:", err)
		os.Exit(1)
	}
	fmt.Println("closed")
}

// TestBackgroundSnapshotKilled kills a writer process at every step of a random write sequence
// with background snapshots (before each group commit, after each commit of a snapshot chunk,
// head or cleanup, and of a staged batch): every time, the directory opens from its snapshot and
// the records changed after it to exactly what its records alone give.
func TestBackgroundSnapshotKilled(t *testing.T) {
	t.Parallel()
	seeds := []int{1, 2}
	if testing.Short() {
		seeds = seeds[:1]
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			used, kills := 0, 0
			for at := 1; ; at++ {
				rng := rand.New(rand.NewPCG(uint64(seed), 5))
				dir := t.TempDir()
				s := openDir(t, dir)
				for {
					if _, err := s.Load(t.Context(), bytes.NewReader(encode(t, randomFile(rng)))); err == nil {
						break
					}
				}
				require.NoError(t, s.Close()) // the first snapshot

				cmd, sc := startWriter(t, bgWriterEnv+"="+dir, bgKillAtEnv+"="+strconv.Itoa(at), bgSeedEnv+"="+strconv.Itoa(seed))
				var lines []string
				for sc.Scan() {
					lines = append(lines, sc.Text())
				}
				err := cmd.Wait()
				closed := err == nil
				if closed {
					require.Equal(t, []string{"closed"}, lines)
				} else {
					var exit *exec.ExitError
					require.ErrorAs(t, err, &exit, "output %q", lines)
					require.Equal(t, syscall.SIGKILL, exit.Sys().(syscall.WaitStatus).Signal(), "killed at step %d; output %q", at, lines)
				}
				if bothOpens(t, dir, fmt.Sprint("killed at step ", at)) {
					used++
				}
				if closed {
					require.Greater(t, kills, 10, "the writes and snapshots were steps")
					break
				}
				kills++
			}
			t.Logf("%d kills, %d opens from a snapshot", kills, used)
			require.Positive(t, used)
		})
	}
}

// TestSnapshotCaptureUnderWrites: a background snapshot copies the state a few entries at a
// time while writes go on, without holding the writers for the whole copy. On random
// directories, with random writes (members and team memberships joining, leaving, changing
// roles and expiries, teams renamed and deleted, orgs deleted and made again, whole data files)
// applied between the copy's steps and by a writer racing it, the copy equals the one taken at
// its revision while nothing wrote: member tables, team memberships, expiries and stamps.
func TestSnapshotCaptureUnderWrites(t *testing.T) {
	t.Parallel()
	seeds := uint64(6)
	if testing.Short() {
		seeds = 2
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 17))
			dir, _ := randomDir(t, rng)
			s := openDir(t, dir, func(o store.Options) store.Options {
				o.SnapshotRevisions, o.SnapshotInterval = -1, -1 // only this test's capture
				return o
			})
			for range 20 {
				_, _ = s.Apply(t.Context(), crashChange(rng))
			}
			rev := s.Revision()
			racer := rand.New(rand.NewPCG(seed, 18))
			stop, raced := make(chan struct{}), make(chan int)
			started := false
			between := func() {
				if !started {
					started = true
					go func() {
						n := 0
						for {
							select {
							case <-stop:
								raced <- n
								return
							default:
							}
							_, _ = s.Apply(t.Context(), crashChange(racer))
							n++
						}
					}()
				}
				for range 4 {
					_, _ = s.Apply(t.Context(), crashChange(rng))
				}
			}
			want, got, err := store.CaptureUnderWrites(s, between)
			close(stop)
			n := <-raced
			require.NoError(t, err)
			require.Equal(t, want, got)
			require.Greater(t, s.Revision(), rev+5, "writes went on during the copy (%d tried by the racer)", n)
			require.NoError(t, s.Check())
			require.NoError(t, s.Close())
		})
	}
}

// TestSnapshotWriteFails: a snapshot write that fails (the disk full: every commit of a
// snapshot fails, after its first chunk is down) is logged, in the background and at Close;
// the writes go on and are all kept, and the next Open uses the last whole snapshot with the
// records changed after it.
func TestSnapshotWriteFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openDir(t, dir)
	loadAcme(t, s)
	require.NoError(t, s.Close()) // the snapshot of revision 1
	var failures atomic.Int64
	var log logged
	s = openDir(t, dir, log.opts, func(o store.Options) store.Options {
		o = store.WithTestHooks(o, 0, func(step string) error {
			if step == "snapshot" {
				failures.Add(1)
				return fmt.Errorf("write: %w", syscall.ENOSPC)
			}
			return nil
		})
		o.SnapshotRevisions = 2
		return store.WithBackgroundSnapshotSteps(o)
	})
	for i := range 6 {
		_, err := s.Apply(t.Context(), store.PutMember{Org: "acme", User: fmt.Sprint("u", i), Role: "member"})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return failures.Load() > 0 }, 10*time.Second, 5*time.Millisecond)
	want := seen(t, s)
	require.NoError(t, s.Close())
	require.Contains(t, log.String(), "writing the membership snapshot in the background failed")
	require.Contains(t, log.String(), "writing the membership snapshot failed; the next Open reads the records")
	require.Contains(t, log.String(), "no space left on device")
	s = openDir(t, dir)
	require.True(t, store.FromSnapshot(s))
	require.Equal(t, uint64(1), store.SnapshotRevision(s), "the last whole snapshot")
	require.Equal(t, want, seen(t, s))
	require.NoError(t, s.Check())
	require.NoError(t, s.Close())
}

// TestSnapshotsConcurrent: snapshots written by hand while background ones are due after every
// revision and writes go on: one capture is live at a time, each the state of its revision, and
// the directory opens from the newest to what its records give.
func TestSnapshotsConcurrent(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(31, 7))
	dir, _ := randomDir(t, rng)
	s := openDir(t, dir, func(o store.Options) store.Options { o.SnapshotRevisions = 1; return o })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 150 {
			_, _ = s.Apply(t.Context(), crashChange(rng))
		}
	}()
	written := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			require.NoError(t, store.WriteSnapshot(s))
			written++
		}
	}
	require.NoError(t, s.Check())
	want := seen(t, s)
	store.SkipSnapshotAtClose(s)
	require.NoError(t, s.Close())
	require.Positive(t, written)
	require.True(t, bothOpens(t, dir, "after concurrent snapshots"))
	s = openDir(t, dir)
	require.Equal(t, want, seen(t, s))
	require.NoError(t, s.Close())
}
