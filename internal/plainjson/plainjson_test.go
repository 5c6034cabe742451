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
