package store

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStampKeyRoundTrip(t *testing.T) {
	t.Parallel()
	for _, k := range []stampKey{{'O', "", ""}, {'U', "", ""}, {'o', "acme", ""}, {'x', "acme", ""},
		{'u', "bob", ""}, {'m', "acme", "bob"}, {'t', "acme", "ml"}, {'p', "acme", "nlp"}, {'y', "acme", "gpu"}} {
		got, ok := parseStampKey(k.String())
		require.True(t, ok, k.String())
		require.Equal(t, k, got)
	}
	for _, bad := range []string{"", "O/", "O/x", "o", "o/", "o/a/b", "m/a", "m/a/", "m//b", "m/a/b/c", "z/a", "oo/a", "p/a/b/"} {
		_, ok := parseStampKey(bad)
		require.False(t, ok, bad)
	}
}
