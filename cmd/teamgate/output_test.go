package main

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/conformance"
)

// TestOutputLineShapes: every check and admit line, answered or failed, has exactly the keys of
// SPEC §11, and its arrays are [] when empty, never null.
func TestOutputLineShapes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, cmd, stdin string
		keys, arrays     []string
	}{
		{"check", "check",
			`{"subject":"bob","action":"runs.get","resource":"acme/vision"}` + "\n" + `{"subject":"bob","action":"nope","resource":"acme/vision"}` + "\n",
			[]string{"allowed", "error", "reasons", "role"}, []string{"reasons"}},
		{"admit", "admit",
			`{"subject":"bob","project":"acme/vision","run":{"kind":"job","queue":"gpu/a100"}}` + "\n" + `{"subject":"bob","project":"acme/vision","run":{"kind":"nope"}}` + "\n",
			[]string{"allowed", "error", "presets", "queue", "violations"}, []string{"presets", "violations"}},
	} {
		out, stderr, code := cli(t, tc.stdin, tc.cmd, "--data", conformance.DataFile(), "--requests", "-")
		require.Equal(t, 0, code, stderr)
		got := lines(out)
		require.Len(t, got, 2, tc.name)
		for i, line := range got {
			var m map[string]json.RawMessage
			require.NoError(t, json.Unmarshal([]byte(line), &m), line)
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			require.Equal(t, tc.keys, keys, "%s line %d: %s", tc.name, i+1, line)
			for _, a := range tc.arrays {
				require.Equal(t, byte('['), m[a][0], "%s line %d: %s is an array: %s", tc.name, i+1, a, line)
			}
			require.Equal(t, i == 1, string(m["error"]) != "null", "%s line %d answers or fails: %s", tc.name, i+1, line)
		}
	}
}
