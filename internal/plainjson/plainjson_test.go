package plainjson_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/plainjson"
)

type marshaler struct{ s string }

func (m marshaler) MarshalJSON() ([]byte, error) {
	return plainjson.Marshal(map[string]string{"m": m.s})
}

func TestHTMLCharactersStayUnlessTheCallerEscapes(t *testing.T) {
	t.Parallel()
	out, err := plainjson.Marshal(map[string]string{"msg": "gpu < 4 && x > 1"})
	require.NoError(t, err)
	require.Equal(t, `{"msg":"gpu < 4 && x > 1"}`, string(out))

	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(marshaler{"a<b"}))
	require.Equal(t, `{"m":"a<b"}`+"\n", b.String())

	escaped, err := json.Marshal(marshaler{"a<b"})
	require.NoError(t, err)
	require.Equal(t, `{"m":"a\u003cb"}`, string(escaped), "json.Marshal still escapes for HTML contexts")
}

// TestUnescape: Unescape turns json.Marshal's HTML escapes back into the characters and keeps
// every other escape, an escaped backslash before "u003c" included: the result decodes to the
// same value, for strings of every escape json.Marshal writes.
func TestUnescape(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"", "plain", "a<b>&c", `\u003c`, `\\u003c`, "\\", "\"<\"", "tab\tnl\n\u2028<", "é<✓>", "\x00<\x1f",
		`\u003c\u003e\u0026`, "<<>>&&", `\`, `x\`,
	} {
		v := map[string]any{"k<": s, "list": []any{s, 1.5, nil, true}}
		escaped, err := json.Marshal(v)
		require.NoError(t, err)
		got := plainjson.Unescape(escaped)
		plain, err := plainjson.Marshal(v)
		require.NoError(t, err)
		require.Equal(t, string(plain), string(got), "%q", s)
		var back map[string]any
		require.NoError(t, json.Unmarshal(got, &back), "%q", s)
		require.Equal(t, v, back)
	}
	// Only the three: other \u escapes and what follows a backslash stay.
	require.Equal(t, `"<\u00e9\\u003c\"&>"`, string(plainjson.Unescape([]byte(`"\u003c\u00e9\\u003c\"\u0026\u003E"`))))
}
