package store_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/store"
)

// TestOpenRefusesADamagedDirectory: Open refuses a store directory whose MANIFEST is lost, or one
// of whose tables is cut short, with a *teamgate.InvalidError (ErrInvalid) that names the
// directory and what is damaged, and leaves every file as it was. (Badger opened the first as a
// new, empty store and deleted the tables it did not know: the whole directory; it panicked on
// the second on a goroutine of its own, ending the host's process.)
func TestOpenRefusesADamagedDirectory(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, want string
		hurt       func(dir string) error
	}{
		{"MANIFEST lost", "damaged: Badger's MANIFEST is missing beside 000001.sst",
			func(dir string) error { return os.Remove(filepath.Join(dir, "MANIFEST")) }},
		{"table cut in half", "damaged: table 000001.sst has a footer naming",
			func(dir string) error {
				p := filepath.Join(dir, "000001.sst")
				fi, err := os.Stat(p)
				if err != nil {
					return err
				}
				return os.Truncate(p, fi.Size()/2)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "store")
			st, err := store.Open(t.Context(), store.Options{Dir: dir})
			require.NoError(t, err)
			_, err = st.LoadFile(t.Context(), conformance.DataFile())
			require.NoError(t, err)
			require.NoError(t, st.Close())
			require.FileExists(t, filepath.Join(dir, "000001.sst"), "Close flushed the writes to a table")
			require.NoError(t, tc.hurt(dir))
			before := contents(t, dir)

			_, err = store.Open(t.Context(), store.Options{Dir: dir})
			var inv *teamgate.InvalidError
			require.ErrorAs(t, err, &inv)
			require.Equal(t, "store", inv.What)
			require.Equal(t, dir, inv.Value, "the error names the directory")
			require.ErrorContains(t, err, tc.want)
			require.Equal(t, before, contents(t, dir), "nothing deleted, created or changed")
		})
	}
}

// contents maps each file of dir to its bytes.
func contents(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out[e.Name()] = string(b)
	}
	return out
}
