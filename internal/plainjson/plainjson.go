// Package plainjson encodes JSON like encoding/json.Marshal but without escaping <, > and & as
// \u003c, \u003e and \u0026. MarshalJSON methods use it so that the caller's encoder decides:
// json.Marshal escapes a Marshaler's output again, an Encoder with SetEscapeHTML(false) (the
// CLI's) prints "<" as "<".
package plainjson

import (
	"bytes"
	"encoding/json"
)

// Marshal returns the JSON encoding of v, HTML characters unescaped, without a trailing newline.
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
