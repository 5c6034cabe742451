package store_test

import (
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/store"
)

// TestOpenRefusesOtherBadgerData: Open refuses a Badger directory that holds keys outside the
// store's (a decision log's, another program's) rather than reading it as an empty store, which
// the CLI's `export --store LOG` printed as `{}` and `apply --store LOG` wrote a store into, mixed
// with the log (stop 23). The directory is left as it was; an empty directory, and a store, open.
func TestOpenRefusesOtherBadgerData(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"dl1/meta", "zzz", "v1"} { // before, after and beside the store's "v1/"
		dir := filepath.Join(t.TempDir(), "other")
		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
		require.NoError(t, err)
		require.NoError(t, db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(key), []byte("x")) }))
		require.NoError(t, db.Close())
		_, err = store.Open(t.Context(), store.Options{Dir: dir})
		require.ErrorIs(t, err, teamgate.ErrInvalid, key)
		require.ErrorContains(t, err, "holds other data, not a teamgate store", key)
		db, err = badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
		require.NoError(t, err)
		n := 0
		require.NoError(t, db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				n++
			}
			return nil
		}))
		require.NoError(t, db.Close())
		require.Equal(t, 1, n, "nothing written: %s", key)
	}
	dir := filepath.Join(t.TempDir(), "store")
	st, err := store.Open(t.Context(), store.Options{Dir: dir})
	require.NoError(t, err)
	_, err = st.Apply(t.Context(), store.PutOrg{Org: store.Org{Name: "acme"}})
	require.NoError(t, err)
	require.NoError(t, st.Close())
	st, err = store.Open(t.Context(), store.Options{Dir: dir})
	require.NoError(t, err)
	require.NoError(t, st.Close())
}
