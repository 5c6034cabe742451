package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/conformance"
)

// answer is the part of a check or admit output line these tests read.
type answer struct {
	Allowed bool    `json:"allowed"`
	Error   *string `json:"error"`
}

func answers(t *testing.T, out string) []answer {
	t.Helper()
	var got []answer
	for _, l := range lines(out) {
		var a answer
		require.NoError(t, json.Unmarshal([]byte(l), &a), l)
		got = append(got, a)
	}
	return got
}

// padded returns a request line of exactly size bytes: prefix, then an attribute string, then
// suffix.
func padded(prefix, suffix string, size int) string {
	return prefix + strings.Repeat("x", size-len(prefix)-len(suffix)) + suffix
}

// TestOverlongRequestLineGoesOn: a request line over the 1 MiB limit is answered on its line with
// an error naming the line, its size and the limit, and the lines after it are still answered
// (bufio.Scanner used to end the whole run there); a line of exactly the limit is decided.
func TestOverlongRequestLineGoesOn(t *testing.T) {
	t.Parallel()
	const big = 2_000_000
	for _, tc := range []struct {
		cmd, valid, prefix, suffix string
	}{
		{"check", `{"subject":"alice","action":"org.get","resource":"acme"}`,
			`{"subject":"alice","action":"org.get","resource":"acme","attributes":{"pad":"`, `"}}`},
		{"admit", `{"subject":"alice","project":"acme/vision","run":{"kind":"job"}}`,
			`{"subject":"alice","project":"acme/vision","run":{"kind":"job","labels":{"pad":"`, `"}}}`},
	} {
		for _, last := range []bool{false, true} {
			name := fmt.Sprintf("%s, long line last: %v", tc.cmd, last)
			in := tc.valid + "\n" + padded(tc.prefix, tc.suffix, big) + "\n" + padded(tc.prefix, tc.suffix, maxRequestLine) + "\n" + tc.valid
			if last {
				in = tc.valid + "\n" + padded(tc.prefix, tc.suffix, big) // no final newline
			}
			out, stderr, code := cli(t, in, tc.cmd, "--data", conformance.DataFile(), "--requests", "-")
			require.Equal(t, 0, code, "%s: %s", name, stderr)
			got := answers(t, out)
			if last {
				require.Len(t, got, 2, name)
			} else {
				require.Len(t, got, 4, name)
				require.Nil(t, got[2].Error, "%s: a line of exactly the limit is read", name)
				require.Nil(t, got[3].Error, name)
			}
			require.Nil(t, got[0].Error, name)
			require.NotNil(t, got[1].Error, name)
			require.False(t, got[1].Allowed)
			require.Contains(t, *got[1].Error, "bad request: line 2: invalid request line", name)
			require.Contains(t, *got[1].Error, fmt.Sprintf("%d bytes, over the limit of %d bytes (1 MiB)", big, maxRequestLine), name)
			require.Less(t, len(*got[1].Error), 300, "%s: the error quotes only a prefix of the line", name)
		}
	}
	// A file too, not only stdin.
	path := filepath.Join(t.TempDir(), "reqs.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(strings.Repeat(" ", big)+"\n{\"subject\":\"alice\",\"action\":\"org.get\",\"resource\":\"acme\"}\n"), 0o600))
	out, _, code := cli(t, "", "check", "--data", conformance.DataFile(), "--requests", path)
	require.Equal(t, 0, code)
	got := answers(t, out)
	require.Len(t, got, 2)
	require.Contains(t, *got[0].Error, "line 1")
	require.True(t, got[1].Allowed)
}

// TestMinRevisionWaitIsBounded: a request line's min_revision the store has not reached fails that
// line as stale after --wait (default one second) and the run goes on; a reached revision waits
// for nothing.
func TestMinRevisionWaitIsBounded(t *testing.T) {
	t.Parallel()
	in := `{"subject":"alice","action":"org.get","resource":"acme","min_revision":999}
{"subject":"alice","action":"org.get","resource":"acme","min_revision":1}
{"subject":"alice","action":"org.get","resource":"acme"}
`
	for _, flags := range [][]string{{"--wait", "10ms"}, {"--wait", "0"}, nil} {
		out, stderr, code := cli(t, in, append([]string{"check", "--data", conformance.DataFile(), "--requests", "-"}, flags...)...)
		require.Equal(t, 0, code, "%v: %s", flags, stderr)
		got := answers(t, out)
		require.Len(t, got, 3, flags)
		require.NotNil(t, got[0].Error, flags)
		require.False(t, got[0].Allowed)
		require.Contains(t, *got[0].Error, "min_revision 999 not reached within --wait", flags)
		require.Contains(t, *got[0].Error, "stale: store at revision 1, want 999", flags)
		require.Nil(t, got[1].Error, flags)
		require.True(t, got[1].Allowed, flags)
		require.True(t, got[2].Allowed, flags)
	}
	_, stderr, code := cli(t, in, "check", "--data", conformance.DataFile(), "--requests", "-", "--wait", "-1s")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "--wait -1s")
}
