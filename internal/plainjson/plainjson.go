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

// Unescape returns the JSON text b with its \u003c, \u003e and \u0026 escapes written as <, >
// and &, for JSON encoded by code that escapes them (OPA's test reporters). Every other escape,
// an escaped backslash before "u003c" included, is kept as it is, so valid JSON stays valid and
// means the same.
func Unescape(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 == len(b) {
			out = append(out, b[i])
			continue
		}
		n := 2 // an escape: a backslash and one character, or \uXXXX
		if b[i+1] == 'u' && i+6 <= len(b) {
			n = 6
			switch string(b[i+2 : i+6]) {
			case "003c", "003C":
				out = append(out, '<')
				i += 5
				continue
			case "003e", "003E":
				out = append(out, '>')
				i += 5
				continue
			case "0026":
				out = append(out, '&')
				i += 5
				continue
			}
		}
		out = append(out, b[i:min(i+n, len(b))]...)
		i += n - 1
	}
	return out
}
