package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/store"
)

// snapChunk is the snapshot chunk size of these tests: small, so that a snapshot spans chunks.
const snapChunk = 64

// churn applies n random membership changes (ids freed and reused, teams renamed, deleted and
// created); many fail, which is churn too.
func churn(t *testing.T, s *store.Store, rng *rand.Rand, n int) {
	t.Helper()
	users := []string{"ann", "ben", "cat", "dan", "eve", "fay"}
	teams := []string{"red", "blue", "green", "gold"}
	for i := range n {
		org, u, tm := []string{"o", "q"}[rng.IntN(2)], users[rng.IntN(len(users))], teams[rng.IntN(len(teams))]
		var c store.Change
		switch rng.IntN(10) {
		case 0:
			c = store.DeleteMember{Org: org, User: u}
		case 1, 2:
			c = store.PutMember{Org: org, User: u, Role: store.OrgRoles()[rng.IntN(len(store.OrgRoles()))]}
		case 3:
			c = store.DeleteTeamMember{Org: org, Team: tm, User: u}
		case 4:
			c = store.RenameTeam{Org: org, From: tm, To: teams[rng.IntN(len(teams))]}
		case 5:
			c = store.DeleteTeam{Org: org, Name: tm}
		case 6:
			c = store.PutTeam{Team: store.Team{Org: org, Name: tm}}
		default:
			c = store.PutTeamMember{Org: org, Team: tm, User: u, Role: store.TeamRoles()[rng.IntN(len(store.TeamRoles()))]}
		}
		_, _ = s.Apply(t.Context(), c)
		if i%50 == 0 {
			require.NoError(t, s.Check())
		}
	}
	require.NoError(t, s.Check())
}

// seen is everything readers and decisions see of a store: the export, every member's roles,
// every team's members, the stamps (what cached decisions are checked against), and the decisions of every user on every project for a few actions.
func seen(t *testing.T, s *store.Store) map[string]any {
	t.Helper()
	m := directory(t, s)
	m["revision"] = s.Revision()
	m["stamps"], m["absent stamps"] = store.Stamps(s)
	var reqs []authz.Request
	require.NoError(t, s.View(func(r store.Reader) error {
		users := []string{"ann", "ben", "cat", "dan", "eve", "fay", "zed"}
		for _, org := range r.Orgs() {
			for _, u := range users {
				for _, a := range []string{"members.list", "members.manage"} {
					reqs = append(reqs, authz.Request{Subject: u, Action: a, Resource: org})
				}
			}
			for _, tm := range r.Teams(org) {
				m[org+"#"+tm] = r.TeamMembers(org, tm)
			}
			for _, p := range r.Projects(org) {
				for _, u := range users {
					for _, a := range []string{"project.get", "runs.create", "project.update", "project.delete"} {
						reqs = append(reqs, authz.Request{Subject: u, Action: a, Resource: org + "/" + p})
					}
				}
			}
		}
		return nil
	}))
	eng, err := authz.New(t.Context(), s, authz.WithDecisionCache(0))
	require.NoError(t, err)
	for _, req := range reqs {
		d, err := eng.Authorize(t.Context(), req)
		require.NoError(t, err)
		m[fmt.Sprint(req.Subject, " ", req.Action, " ", req.Resource)] = d
	}
	return m
}

// openDir opens the store in dir with the tests' snapshot chunks.
func openDir(t *testing.T, dir string, opts ...func(store.Options) store.Options) *store.Store {
	t.Helper()
	o := store.WithSnapshotChunk(store.Options{Dir: dir, NoSync: true}, snapChunk)
	for _, f := range opts {
		o = f(o)
	}
	s, err := reopen(t, o)
	require.NoError(t, err)
	return s
}

// reopen opens a store whose directory this process just closed. A child process another test
// is starting holds a copy of every descriptor between its fork and its exec, Badger's
// directory lock among them: Open waits for it to let go.
func reopen(t *testing.T, o store.Options) (*store.Store, error) {
	t.Helper()
	s, err := store.Open(t.Context(), o)
	for i := 0; i < 100 && err != nil && strings.Contains(err.Error(), "Cannot acquire directory lock"); i++ {
		time.Sleep(10 * time.Millisecond)
		s, err = store.Open(t.Context(), o)
	}
	return s, err
}

// randomDir fills a new store directory with a random data file and membership churn, closes
// it (which writes the snapshot) and returns it with what the store showed before closing.
func randomDir(t *testing.T, rng *rand.Rand) (string, map[string]any) {
	t.Helper()
	dir := t.TempDir()
	s := openDir(t, dir)
	for {
		if _, err := s.Load(t.Context(), bytes.NewReader(encode(t, randomFile(rng)))); err == nil {
			break
		}
	}
	churn(t, s, rng, 150)
	want := seen(t, s)
	require.NoError(t, s.Close())
	return dir, want
}

// TestSnapshotOpenEqualsRecordsOpen: on random directories with membership churn, opening from
// the snapshot Close wrote gives what the store showed before closing and what opening from
// the records gives (export, roles, team members, decisions), with consistent indexes; writes
// after such an open behave as after a records open, and the next Close's snapshot does too.
func TestSnapshotOpenEqualsRecordsOpen(t *testing.T) {
	t.Parallel()
	for seed := range uint64(12) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 77))
			dir, want := randomDir(t, rng)
			for round := range 2 {
				records := openDir(t, dir, store.IgnoreSnapshot)
				require.False(t, store.FromSnapshot(records))
				require.NoError(t, records.Check())
				require.Equal(t, want, seen(t, records), "round %d: records open", round)
				store.SkipSnapshotAtClose(records)
				require.NoError(t, records.Close())

				s := openDir(t, dir)
				require.True(t, store.FromSnapshot(s), "round %d: the snapshot of the last Close is used", round)
				require.NoError(t, s.Check())
				require.Equal(t, want, seen(t, s), "round %d: snapshot open", round)
				churn(t, s, rng, 100) // writes on a snapshot-opened store
				want = seen(t, s)
				require.NoError(t, s.Close())
			}
		})
	}
}

// TestCloseWithoutWritesKeepsSnapshot: a store opened from its snapshot and closed without a
// write keeps the snapshot as it is (Close does not rewrite it), and it stays usable.
func TestCloseWithoutWritesKeepsSnapshot(t *testing.T) {
	t.Parallel()
	dir, want := randomDir(t, rand.New(rand.NewPCG(5, 5)))
	for range 2 {
		s := openDir(t, dir)
		require.True(t, store.FromSnapshot(s))
		require.Equal(t, want, seen(t, s))
		require.NoError(t, s.Close())
	}
}

// logged collects what the store logs.
type logged struct{ bytes.Buffer }

func (l *logged) opts(o store.Options) store.Options {
	o.Logger = slog.New(slog.NewTextHandler(&l.Buffer, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return o
}

// TestSnapshotIgnoredUnlessCurrentAndWhole: a snapshot that cannot be brought up to the
// records (an event after it trimmed, or too large to list its keys; a record written after it
// that no event names), that is ahead of them, corrupt, truncated, of another format version,
// or that disagrees with the other records is not used: Open reads the records and gives
// exactly what they hold.
func TestSnapshotIgnoredUnlessCurrentAndWhole(t *testing.T) {
	t.Parallel()
	flip := func(at func(data []byte) int) func(h, d []byte) ([]byte, []byte) {
		return func(h, d []byte) ([]byte, []byte) {
			d = bytes.Clone(d)
			d[at(d)] ^= 0x20
			return h, d
		}
	}
	for _, tc := range []struct {
		name string
		// spoil leaves a snapshot that must not be used in the open store s, whose state is
		// what the records hold; Close then writes none.
		spoil func(t *testing.T, s *store.Store)
		log   string
	}{
		{"older than the events kept", func(t *testing.T, s *store.Store) {
			require.NoError(t, store.WriteSnapshot(s))
			for _, u := range []string{"newbie", "other"} { // the store keeps one event
				_, err := s.Apply(t.Context(), store.PutMember{Org: "o", User: u, Role: "member"})
				require.NoError(t, err)
			}
		}, "snapshot of revision 1, records at 3, and the event of revision 2 is not kept"},
		{"followed by an event too large to list its keys", func(t *testing.T, s *store.Store) {
			require.NoError(t, store.WriteSnapshot(s))
			batch := make([]store.Change, store.MaxEventEntries+1)
			for i := range batch {
				batch[i] = store.PutMember{Org: "o", User: fmt.Sprint("u", i), Role: "member"}
			}
			_, err := s.Apply(t.Context(), batch...)
			require.NoError(t, err)
		}, "the event of revision 2 does not list all it wrote"},
		{"a record written after it behind the store's back", func(t *testing.T, s *store.Store) {
			require.NoError(t, store.WriteSnapshot(s))
			require.NoError(t, store.PutRawRecord(s, "v1/member/o/ann", []byte("owner"))) // what the store holds
		}, "v1/member/o/ann was written after the snapshot and no event names it"},
		{"a stamp written after it behind the store's back", func(t *testing.T, s *store.Store) {
			require.NoError(t, store.WriteSnapshot(s))
			stamps, _ := store.Stamps(s)
			require.NoError(t, store.PutRawRecord(s, "v1/stamp/m/o/ann", binary.BigEndian.AppendUint64(nil, stamps["m/o/ann"])))
		}, "v1/stamp/m/o/ann was written after the snapshot and no event names it"},
		{"a data byte flipped", func(t *testing.T, s *store.Store) {
			require.NoError(t, store.WriteSnapshot(s))
			require.NoError(t, store.EditSnapshot(s, false, flip(func(d []byte) int { return len(d) / 2 })))
		}, "checksum mismatch"},
		{"truncated", func(t *testing.T, s *store.Store) {
			require.NoError(t, store.WriteSnapshot(s))
			require.NoError(t, store.EditSnapshot(s, false, func(h, d []byte) ([]byte, []byte) { return h, d[:len(d)-3] }))
		}, "bytes of"},
		{"truncated, checksum matching", func(t *testing.T, s *store.Store) {
			require.NoError(t, store.WriteSnapshot(s))
			require.NoError(t, store.EditSnapshot(s, true, func(h, d []byte) ([]byte, []byte) { return h, d[:len(d)-3] }))
		}, "corrupt snapshot"},
		{"another format version", func(t *testing.T, s *store.Store) {
			require.NoError(t, store.WriteSnapshot(s))
			require.NoError(t, store.EditSnapshot(s, false, func(h, d []byte) ([]byte, []byte) {
				h = bytes.Clone(h)
				h[len(h)-33] = 9 // the low byte of the version
				return h, d
			}))
		}, "format version"},
		{"another revision", func(t *testing.T, s *store.Store) {
			require.NoError(t, store.WriteSnapshot(s))
			require.NoError(t, store.EditSnapshot(s, false, func(h, d []byte) ([]byte, []byte) {
				h = bytes.Clone(h)
				h[len(h)-25]++ // the low byte of the revision
				return h, d
			}))
		}, "snapshot of revision 2, ahead of the records at 1"},
		{"a team the records lack, checksum matching", func(t *testing.T, s *store.Store) {
			require.NoError(t, store.WriteSnapshot(s))
			require.NoError(t, store.EditSnapshot(s, true, flip(func(d []byte) int { return bytes.Index(d, []byte("\x03red")) + 1 })))
		}, "disagrees with the records"},
		{"a role code out of range, checksum matching", func(t *testing.T, s *store.Store) {
			require.NoError(t, store.WriteSnapshot(s))
			require.NoError(t, store.EditSnapshot(s, true, func(h, d []byte) ([]byte, []byte) {
				d = bytes.Clone(d)
				d[bytes.Index(d, []byte("\x01x\x01"))+3+4] = 200 // team x: name, 1 member, its id, its role
				return h, d
			}))
		}, "bad team role code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			// One event kept; no background snapshot, which would replace the spoilt one.
			s := openDir(t, dir, func(o store.Options) store.Options {
				o.SnapshotRevisions, o.SnapshotInterval = -1, -1
				return store.KeepEvents(o, 1)
			})
			_, err := s.Load(t.Context(), bytes.NewReader([]byte(spoilFile)))
			require.NoError(t, err)
			tc.spoil(t, s)
			want := seen(t, s)
			store.SkipSnapshotAtClose(s)
			require.NoError(t, s.Close())

			var log logged
			s = openDir(t, dir, log.opts)
			require.False(t, store.FromSnapshot(s), "the snapshot is not used")
			require.NoError(t, s.Check())
			require.Equal(t, want, seen(t, s))
			require.Contains(t, log.String(), tc.log)
			require.NoError(t, s.Close())
			s = openDir(t, dir)
			require.True(t, store.FromSnapshot(s), "Close wrote a usable snapshot")
			require.Equal(t, want, seen(t, s))
			require.NoError(t, s.Close())
		})
	}
}

// spoilFile is the directory of TestSnapshotIgnoredUnlessCurrentAndWhole: its team x has one
// member.
const spoilFile = `
orgs:
  - name: o
    members: {ann: owner, ben: member, cat: viewer}
    teams:
      - name: blue
        members: {ann: admin}
      - name: red
        members: {ben: member}
    projects:
      - name: p1
        teams: [red]
  - name: q
    members: {dan: member}
    teams:
      - name: x
        members: {dan: member}
users: {}
`

// TestOpenRefusesCorruptRecordBehindSnapshot: a record written after the snapshot, at the same
// revision (as by a tool writing Badger directly), makes Open read the records, and a corrupt
// one fails Open naming it, as without a snapshot.
func TestOpenRefusesCorruptRecordBehindSnapshot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openDir(t, dir)
	loadAcme(t, s)
	require.NoError(t, store.WriteSnapshot(s))
	require.NoError(t, store.PutRawRecord(s, "v1/tmember/acme/research/zed", []byte("member")))
	require.NoError(t, s.Close())
	_, err := reopen(t, store.Options{Dir: dir, NoSync: true})
	require.ErrorContains(t, err, "load record v1/tmember/acme/research/zed")
}

// snapWriterEnv makes the test binary reopen the store in its directory (written by
// TestSnapshotWriteKilled), apply snapBatch and close it, killing itself (SIGKILL) the
// snapKillAtEnv-th time the snapshot write reaches a step; it prints "closed" when it never
// does.
const (
	snapWriterEnv = "TEAMGATE_CRASH_SNAPSHOT_DIR"
	snapKillAtEnv = "TEAMGATE_CRASH_SNAPSHOT_AT"
)

// snapBatch is the second revision of TestSnapshotWriteKilled's store: it changes members and
// team members the first snapshot holds.
func snapBatch() []store.Change {
	return []store.Change{
		store.DeleteMember{Org: "acme", User: "bob"},
		store.PutMember{Org: "acme", User: "newbie", Role: "member"},
		store.PutTeamMember{Org: "acme", Team: "research", User: "newbie", Role: "admin"},
		store.PutTeamMember{Org: "acme", Team: "engineering", User: "vera", Role: "admin"},
	}
}

func snapWriter(dir string, at int) {
	ctx := context.Background()
	n := 0
	hook := func(step string) error {
		if n++; step == store.StepSnapshot && n == at {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
		return nil
	}
	s, err := store.Open(ctx, store.WithSnapshotChunk(store.WithTestHooks(store.Options{Dir: dir}, 0, hook), snapChunk))
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	if _, err := s.Apply(ctx, snapBatch()...); err != nil {
		fmt.Println("apply:", err)
		os.Exit(1)
	}
	n = 0 // count the snapshot's steps only
	if err := s.Close(); err != nil {
		fmt.Println("close:", err)
		os.Exit(1)
	}
	fmt.Println("closed")
}

// TestSnapshotWriteKilled kills a process at every step of writing its snapshot at Close (each
// chunk, the new head, removing the old chunks), over the snapshot of the revision before: the
// store reopens at the last revision with exactly its records' state, from the old snapshot and
// the records changed after it until the new head is written, from the new one after.
func TestSnapshotWriteKilled(t *testing.T) {
	t.Parallel()
	wantSeen := func() map[string]any {
		s, err := store.Open(t.Context(), store.Options{Dir: t.TempDir(), NoSync: true})
		require.NoError(t, err)
		loadAcme(t, s)
		_, err = s.Apply(t.Context(), snapBatch()...)
		require.NoError(t, err)
		defer s.Close()
		return seen(t, s)
	}()
	var used []uint64 // per step killed at: the revision of the snapshot the reopened store used
	for at := 1; ; at++ {
		dir := t.TempDir()
		s := openDir(t, dir)
		loadAcme(t, s)
		require.NoError(t, s.Close()) // the snapshot of revision 1

		cmd, sc := startWriter(t, snapWriterEnv+"="+dir, snapKillAtEnv+"="+strconv.Itoa(at))
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

		s = openDir(t, dir)
		require.Equal(t, uint64(2), s.Revision(), "step %d", at)
		require.NoError(t, s.Check(), "step %d", at)
		require.Equal(t, wantSeen, seen(t, s), "step %d", at)
		require.True(t, store.FromSnapshot(s), "step %d", at)
		used = append(used, store.SnapshotRevision(s))
		require.NoError(t, s.Close())
		if closed {
			break
		}
	}
	// Steps: the chunks, the new head, the old chunks' removal; then a run that is not killed.
	chunks := len(used) - 3
	require.Greater(t, chunks, 2, "the snapshot spans chunks")
	want := make([]uint64, len(used))
	for i := range want {
		want[i] = 1
		if i >= chunks {
			want[i] = 2
		}
	}
	require.Equal(t, want, used, "the old snapshot, with the change after it, is used until the new head is written")
}

// TestCloseRightAfterCacheWrites: CachePut commits in the background; Close, which then reads
// Badger's last version to decide on the snapshot, waits for those commits (under -race this
// was a data race between Badger's writer and Close).
func TestCloseRightAfterCacheWrites(t *testing.T) {
	t.Parallel()
	dir, want := randomDir(t, rand.New(rand.NewPCG(6, 6)))
	for range 3 {
		s := openDir(t, dir)
		require.True(t, store.FromSnapshot(s))
		for i := range 200 {
			s.CachePut(fmt.Sprint("k", i), []byte("v"))
		}
		require.NoError(t, s.Close())
	}
	s := openDir(t, dir)
	require.Equal(t, want, seen(t, s))
	require.NoError(t, s.Close())
}

// TestSnapshotIgnoredAfterDeleteBehindBack: a team membership, member or stamp record deleted
// after the snapshot without an event (as by a tool writing Badger directly) makes Open read the
// records, which no longer hold it, instead of installing the snapshot that does.
func TestSnapshotIgnoredAfterDeleteBehindBack(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"v1/tmember/o/red/ben", "v1/member/o/cat", "v1/stamp/m/o/ann"} {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := openDir(t, dir, func(o store.Options) store.Options {
				o.SnapshotRevisions, o.SnapshotInterval = -1, -1
				return o
			})
			_, err := s.Load(t.Context(), bytes.NewReader([]byte(spoilFile)))
			require.NoError(t, err)
			require.NoError(t, store.WriteSnapshot(s))
			require.NoError(t, store.DeleteRawRecord(s, key))
			require.NoError(t, s.Close()) // writes no snapshot after a raw write

			records := openDir(t, dir, store.IgnoreSnapshot)
			want := seen(t, records)
			store.SkipSnapshotAtClose(records)
			require.NoError(t, records.Close())
			var log logged
			s = openDir(t, dir, log.opts)
			require.False(t, store.FromSnapshot(s), "the snapshot is not used")
			require.Contains(t, log.String(), key+" was")
			require.Equal(t, want, seen(t, s))
			require.NoError(t, s.Close())
		})
	}
}
