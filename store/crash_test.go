package store_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
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

func TestMain(m *testing.M) {
	if dir := os.Getenv(writerEnv); dir != "" {
		crashWriter(dir)
		return
	}
	os.Exit(m.Run())
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
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), writerEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(out)
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
