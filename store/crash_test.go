package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/store"
)

// writerEnv makes the test binary act as a writer process: it applies one membership per
// revision and prints each acknowledged revision, until it is killed.
const writerEnv = "TEAMGATE_CRASH_WRITER_DIR"

// batchWriterEnv makes the test binary act as a writer of batches larger than one Badger
// transaction (batchWriter); batchStepEnv and batchAtEnv name the step of a staged commit at
// which it kills itself, and the how-manieth time.
const (
	batchWriterEnv = "TEAMGATE_CRASH_BATCH_DIR"
	batchStepEnv   = "TEAMGATE_CRASH_BATCH_STEP"
	batchAtEnv     = "TEAMGATE_CRASH_BATCH_AT"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(writerEnv); dir != "" {
		crashWriter(dir)
		return
	}
	if dir := os.Getenv(snapWriterEnv); dir != "" {
		at, _ := strconv.Atoi(os.Getenv(snapKillAtEnv))
		snapWriter(dir, at)
		return
	}
	if dir := os.Getenv(bgWriterEnv); dir != "" {
		at, _ := strconv.Atoi(os.Getenv(bgKillAtEnv))
		seed, _ := strconv.Atoi(os.Getenv(bgSeedEnv))
		bgWriter(dir, at, seed)
		return
	}
	if dir := os.Getenv(batchWriterEnv); dir != "" {
		at, _ := strconv.Atoi(os.Getenv(batchAtEnv))
		batchWriter(dir, os.Getenv(batchStepEnv), at)
		return
	}
	os.Exit(m.Run())
}

// startWriter runs this test binary as a writer process with env added, and returns it with a
// scanner of its output lines.
func startWriter(t *testing.T, env ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, bufio.NewScanner(out)
}

func crashWriter(dir string) {
	ctx := context.Background()
	s, err := store.Open(ctx, store.Options{Dir: dir})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	if _, err := s.Apply(ctx, store.PutOrg{Org: store.Org{Name: "crash"}}); err != nil {
		fmt.Println("apply:", err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		rev, err := s.Apply(ctx, store.PutMember{Org: "crash", User: fmt.Sprintf("u%d", i), Role: "member"})
		if err != nil {
			fmt.Println("apply:", err)
			os.Exit(1)
		}
		fmt.Println(rev) // acknowledged
	}
}

// TestAcknowledgedWritesSurviveKill9 kills a writer process mid-write and checks that the store
// reopens consistent with every acknowledged write in it.
func TestAcknowledgedWritesSurviveKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd, sc := startWriter(t, writerEnv+"="+dir)
	var acked uint64
	deadline := time.Now().Add(20 * time.Second)
	for sc.Scan() && time.Now().Before(deadline) {
		line := strings.TrimSpace(sc.Text())
		rev, err := strconv.ParseUint(line, 10, 64)
		require.NoError(t, err, line)
		acked = rev
		if acked >= 40 {
			break
		}
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	require.GreaterOrEqual(t, acked, uint64(40), "the writer acknowledged writes")

	s, err := store.Open(t.Context(), store.Options{Dir: dir})
	require.NoError(t, err)
	defer s.Close()
	rev := s.Revision()
	require.GreaterOrEqual(t, rev, acked, "every acknowledged write survived")
	require.NoError(t, s.View(func(r store.Reader) error {
		// Revision 1 created the org; revision k (k ≥ 2) added u(k-2): state and revision agree.
		require.Len(t, r.Members("crash"), int(rev-1))
		for i := range int(rev - 1) {
			_, ok := r.OrgRole("crash", fmt.Sprintf("u%d", i))
			require.True(t, ok, "u%d", i)
		}
		return nil
	}))
}

// smallTxn is the Badger memtable size of the batch tests: a transaction then holds about
// 150 KiB, which a batch of bigBatchUsers memberships exceeds several times over.
const (
	smallTxn      = 1 << 20
	bigBatchUsers = 4000
)

// bigBatch returns the changes of revision rev. Revision 1 creates the org, a team and a
// restricted project, with "victim" a member of both org and team; every later revision adds
// bigBatchUsers members and alternately revokes victim (DeleteMember cascades to the team) and
// grants it again, so a decision on victim cached before the batch depends on it.
func bigBatch(rev uint64) []store.Change {
	if rev == 1 {
		return []store.Change{
			store.PutOrg{Org: store.Org{Name: "big"}},
			store.PutTeam{Team: store.Team{Org: "big", Name: "ml"}},
			store.PutMember{Org: "big", User: "victim", Role: "member"},
			store.PutTeamMember{Org: "big", Team: "ml", User: "victim", Role: "member"},
			store.PutProject{Project: store.Project{Org: "big", Name: "labs", Teams: []string{"ml"}}},
		}
	}
	changes := make([]store.Change, 0, bigBatchUsers+2)
	for i := range bigBatchUsers {
		changes = append(changes, store.PutMember{Org: "big", User: fmt.Sprintf("r%du%d", rev, i), Role: "member"})
	}
	if rev%2 == 0 {
		return append(changes, store.DeleteMember{Org: "big", User: "victim"})
	}
	return append(changes,
		store.PutMember{Org: "big", User: "victim", Role: "member"},
		store.PutTeamMember{Org: "big", Team: "ml", User: "victim", Role: "member"})
}

// batchWriter applies bigBatch(1), bigBatch(2), … to the store in dir, printing each
// acknowledged revision. With a step, it kills itself (SIGKILL) the at-th time a staged commit
// reaches that step, and exits after revision 2 if it never does; without, it writes until it
// is killed.
func batchWriter(dir, step string, at int) {
	ctx := context.Background()
	seen := map[string]int{}
	hook := func(s string) error {
		if seen[s]++; s == step && seen[s] == at {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
		return nil
	}
	s, err := store.Open(ctx, store.WithTestHooks(store.Options{Dir: dir}, smallTxn, hook))
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	for rev := uint64(1); ; rev++ {
		got, err := s.Apply(ctx, bigBatch(rev)...)
		if err != nil || got != rev {
			fmt.Println("apply:", got, err)
			os.Exit(1)
		}
		fmt.Println(rev) // acknowledged
		if step != "" && rev == 2 {
			os.Exit(0)
		}
	}
}

// diskKeys is what s holds in Badger (store.DiskKeys).
func diskKeys(t *testing.T, s *store.Store) map[string]string {
	t.Helper()
	keys, err := store.DiskKeys(s)
	require.NoError(t, err)
	return keys
}

// expectedDisk returns what Badger must hold after each revision up to last, computed by an
// in-memory store (whose transactions are large enough for every batch): records, stamps,
// events and the revision, and nothing staged.
func expectedDisk(t *testing.T, last uint64) []map[string]string {
	t.Helper()
	s, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	defer s.Close()
	want := []map[string]string{{}}
	for rev := uint64(1); rev <= last; rev++ {
		_, err := s.Apply(t.Context(), bigBatch(rev)...)
		require.NoError(t, err)
		want = append(want, diskKeys(t, s))
	}
	return want
}

// requireRevision checks that the store in dir reopens at revision rev and holds exactly what
// the batches up to rev write, then that it takes the next batch.
func requireRevision(t *testing.T, dir string, rev uint64) {
	t.Helper()
	want := expectedDisk(t, rev+1)
	s, err := store.Open(t.Context(), store.WithTestHooks(store.Options{Dir: dir}, smallTxn, nil))
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, rev, s.Revision())
	require.NoError(t, s.Check())
	// Equal stamps mean a decision cached before a lost batch is still current and one cached
	// before a kept batch is not.
	require.Equal(t, want[rev], diskKeys(t, s), "records, stamps, events and revision of revision %d, nothing staged", rev)
	require.NoError(t, s.View(func(r store.Reader) error {
		_, ok := r.OrgRole("big", "victim")
		require.Equal(t, rev%2 == 1, ok, "victim is a member exactly after odd revisions")
		return nil
	}))

	next, err := s.Apply(t.Context(), bigBatch(rev+1)...)
	require.NoError(t, err)
	require.Equal(t, rev+1, next)
	require.Equal(t, want[rev+1], diskKeys(t, s), "the next batch over the transaction limit commits whole")
}

// TestBigBatchKilledMidCommit kills a writer at every step of committing a batch larger than
// one Badger transaction: after reopening, the store holds the whole batch when the kill came
// after its commit marker, and none of it before.
func TestBigBatchKilledMidCommit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		step string
		at   int
		kept bool
	}{
		{store.StepStaged, 1, false},
		{store.StepStaged, 2, false},
		{store.StepMarked, 1, true},
		{store.StepApplied, 1, true},
		{store.StepApplied, 2, true},
		{store.StepUnmarked, 1, true},
		{store.StepDone, 1, true},
	} {
		t.Run(fmt.Sprintf("%s-%d", tc.step, tc.at), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cmd, sc := startWriter(t, batchWriterEnv+"="+dir, batchStepEnv+"="+tc.step, batchAtEnv+"="+strconv.Itoa(tc.at))
			var lines []string
			for sc.Scan() {
				lines = append(lines, sc.Text())
			}
			err := cmd.Wait()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "output %q", lines)
			require.Equal(t, syscall.SIGKILL, exit.Sys().(syscall.WaitStatus).Signal(), "killed at the step; output %q", lines)
			require.Equal(t, []string{"1"}, lines, "revision 1 acknowledged, the big batch not")

			rev := uint64(1)
			if tc.kept {
				rev = 2
			}
			requireRevision(t, dir, rev)
		})
	}
}

// TestBigBatchesKilledAnytime kills a writer of big batches after a delay, wherever it is: the
// store reopens at a revision no older than the last acknowledged one and holds exactly the
// batches up to it.
func TestBigBatchesKilledAnytime(t *testing.T) {
	t.Parallel()
	for _, delay := range []time.Duration{0, 15 * time.Millisecond, 40 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cmd, sc := startWriter(t, batchWriterEnv+"="+dir)
			var acked uint64
			for acked < 2 && sc.Scan() {
				rev, err := strconv.ParseUint(sc.Text(), 10, 64)
				require.NoError(t, err, sc.Text())
				acked = rev
			}
			require.Equal(t, uint64(2), acked, "the writer acknowledged a big batch")
			time.Sleep(delay)
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			for sc.Scan() {
				rev, err := strconv.ParseUint(sc.Text(), 10, 64)
				require.NoError(t, err, sc.Text())
				acked = rev
			}
			_ = cmd.Wait()

			s, err := store.Open(t.Context(), store.WithTestHooks(store.Options{Dir: dir}, smallTxn, nil))
			require.NoError(t, err)
			rev := s.Revision()
			require.NoError(t, s.Close())
			require.GreaterOrEqual(t, rev, acked, "every acknowledged batch survived")
			requireRevision(t, dir, rev)
		})
	}
}

// TestReopensAfterKillLeftEmptyLog reopens a store in which a kill between creating a Badger
// log file and its first write left that file empty (dgraph-io/badger#2207: Badger refuses it).
func TestReopensAfterKillLeftEmptyLog(t *testing.T) {
	t.Parallel()
	for _, files := range [][]string{{"00099.mem"}, {"000099.vlog"}, {"00099.mem", "000099.vlog"}} {
		t.Run(strings.Join(files, "+"), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s, err := store.Open(t.Context(), store.Options{Dir: dir})
			require.NoError(t, err)
			rev, err := s.Apply(t.Context(), bigBatch(1)...)
			require.NoError(t, err)
			require.NoError(t, s.Close())
			for _, f := range files {
				require.NoError(t, os.WriteFile(filepath.Join(dir, f), nil, 0o600))
			}

			s, err = store.Open(t.Context(), store.Options{Dir: dir})
			require.NoError(t, err)
			defer s.Close()
			require.Equal(t, rev, s.Revision())
			require.NoError(t, s.View(func(r store.Reader) error {
				_, ok := r.OrgRole("big", "victim")
				require.True(t, ok)
				return nil
			}))
		})
	}
}

// TestBigBatchBadgerFails makes Badger fail at a step of committing a batch larger than one
// transaction: before the commit marker the batch fails and nothing changes, memory or disk;
// after it the batch is committed, and the next write or the next Open completes it on disk.
func TestBigBatchBadgerFails(t *testing.T) {
	t.Parallel()
	errInjected := errors.New("injected Badger failure")
	want := expectedDisk(t, 3)
	for _, tc := range []struct {
		step   string
		at     int
		kept   bool
		reopen bool // complete by reopening, else by the next write
	}{
		{store.StepStaged, 1, false, false},
		{store.StepStaged, 2, false, true},
		{store.StepMarked, 1, true, false},
		{store.StepMarked, 1, true, true},
		{store.StepApplied, 1, true, false},
		{store.StepApplied, 2, true, true},
		{store.StepUnmarked, 1, true, true},
	} {
		t.Run(fmt.Sprintf("%s-%d-reopen=%v", tc.step, tc.at, tc.reopen), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			seen := map[string]int{}
			hook := func(step string) error {
				if seen[step]++; step == tc.step && seen[step] == tc.at {
					return errInjected
				}
				return nil
			}
			opts := store.WithTestHooks(store.Options{Dir: dir, NoSync: true}, smallTxn, hook)
			s, err := store.Open(t.Context(), opts)
			require.NoError(t, err)
			defer func() { _ = s.Close() }()
			_, err = s.Apply(t.Context(), bigBatch(1)...)
			require.NoError(t, err)

			rev, err := s.Apply(t.Context(), bigBatch(2)...)
			if !tc.kept {
				require.ErrorIs(t, err, errInjected)
				require.Equal(t, uint64(1), s.Revision())
				require.NoError(t, s.View(func(r store.Reader) error {
					_, ok := r.OrgRole("big", "victim")
					require.True(t, ok, "the failed batch changed nothing in memory")
					return nil
				}))
				require.Equal(t, want[1], diskKeys(t, s), "the failed batch left nothing on disk")
				return
			}
			require.NoError(t, err, "committed at the marker")
			require.Equal(t, uint64(2), rev)
			if tc.reopen {
				require.NoError(t, s.Close())
				s, err = store.Open(t.Context(), opts)
				require.NoError(t, err)
				require.Equal(t, uint64(2), s.Revision())
				require.Equal(t, want[2], diskKeys(t, s), "Open completed the batch")
			}
			_, err = s.Apply(t.Context(), bigBatch(3)...)
			require.NoError(t, err)
			require.NoError(t, s.Check())
			require.Equal(t, want[3], diskKeys(t, s), "the batch was completed before the next one")
		})
	}
}

// TestBigBatchCommittedButNotAppliedIsWatched: a batch whose commit marker is written but whose
// keys Badger fails to write is acknowledged, so a watcher (a replica) must get its event at once,
// not an error until the next write completes the batch.
func TestBigBatchCommittedButNotAppliedIsWatched(t *testing.T) {
	t.Parallel()
	for _, step := range []string{store.StepMarked, store.StepApplied} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			fail := false
			hook := func(s string) error {
				if fail && s == step {
					fail = false
					return errors.New("injected Badger failure")
				}
				return nil
			}
			s, err := store.Open(t.Context(), store.WithTestHooks(store.Options{Dir: t.TempDir(), NoSync: true}, smallTxn, hook))
			require.NoError(t, err)
			defer s.Close()
			_, err = s.Apply(t.Context(), bigBatch(1)...)
			require.NoError(t, err)
			fail = true
			rev, err := s.Apply(t.Context(), bigBatch(2)...)
			require.NoError(t, err, "committed at the marker")
			require.False(t, fail, "the failure was injected")

			events, err := s.Watch(t.Context(), rev-1)
			require.NoError(t, err)
			ev := <-events
			require.NoError(t, ev.Err)
			require.Equal(t, rev, ev.Revision)
			require.Len(t, ev.Changes, len(bigBatch(2)))

			replica, err := store.Open(t.Context(), store.Options{})
			require.NoError(t, err)
			defer replica.Close()
			_, err = replica.Apply(t.Context(), bigBatch(1)...)
			require.NoError(t, err)
			_, err = replica.ApplyEvent(t.Context(), ev)
			require.NoError(t, err)
			require.Equal(t, export(t, s), export(t, replica))
		})
	}
}

// TestBigBatchStagingLeftByAFailedBatch: when a batch fails before its commit point and Badger
// also fails to remove its staging, the next batch — staged under the same revision, in fewer
// chunks — must not be mixed with the leftover chunks: it commits, and a reopen after its own
// post-commit failure completes it.
func TestBigBatchStagingLeftByAFailedBatch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	steps := map[string]int{}
	var fail map[string]int // step → the count at which it fails
	hook := func(s string) error {
		if steps[s]++; fail[s] == steps[s] {
			return errors.New("injected Badger failure")
		}
		return nil
	}
	opts := store.WithTestHooks(store.Options{Dir: dir, NoSync: true}, smallTxn, hook)
	s, err := store.Open(t.Context(), opts)
	require.NoError(t, err)
	defer func() { _ = s.Close() }()
	_, err = s.Apply(t.Context(), bigBatch(1)...)
	require.NoError(t, err)

	// A batch three times bigBatch(2) fails after five staging transactions, and removing what
	// they staged fails too.
	var big []store.Change
	for i := range 3 * bigBatchUsers {
		big = append(big, store.PutMember{Org: "big", User: fmt.Sprintf("huge%d", i), Role: "viewer"})
	}
	clear(steps)
	fail = map[string]int{store.StepStaged: 5, store.StepDiscard: 1}
	_, err = s.Apply(t.Context(), big...)
	require.Error(t, err)
	require.Equal(t, 5, steps[store.StepStaged])
	require.Equal(t, uint64(1), s.Revision())

	// bigBatch(2), staged in fewer chunks at the same revision, commits and then fails to apply:
	// Open must complete it.
	clear(steps)
	fail = map[string]int{store.StepMarked: 1}
	rev, err := s.Apply(t.Context(), bigBatch(2)...)
	require.NoError(t, err)
	require.Equal(t, uint64(2), rev)
	require.Less(t, steps[store.StepStaged], 5, "bigBatch(2) is staged in fewer chunks")
	require.NoError(t, s.Close())
	fail = nil
	s, err = store.Open(t.Context(), opts)
	require.NoError(t, err, "the failed batch's chunks were mixed into the committed one")
	require.Equal(t, uint64(2), s.Revision())
	require.Equal(t, expectedDisk(t, 2)[2], diskKeys(t, s))
	require.NoError(t, s.Check())
}
