package quote_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/quote"
)

func TestCut(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"bob", "bob"},
		{strings.Repeat("a", quote.Max), strings.Repeat("a", quote.Max)},
		{strings.Repeat("a", 1<<20), strings.Repeat("a", quote.Max) + "…(1048512 more bytes)"},
		{"é" + strings.Repeat("é", quote.Max), strings.Repeat("é", quote.Max/2) + "…(66 more bytes)"},
		{"a" + strings.Repeat("é", quote.Max), "a" + strings.Repeat("é", quote.Max/2-1) + "…(66 more bytes)"},
	} {
		require.Equal(t, tc.want, quote.Cut(tc.in))
	}
	require.Equal(t, `"x\n"`, quote.Q("x\n"))
}
