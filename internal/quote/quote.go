// Package quote bounds the user input that error messages repeat: an error names the offending
// value by a short prefix, so a megabyte-long input never becomes a megabyte-long error.
package quote

import (
	"fmt"
	"unicode/utf8"
)

// Max is how many bytes of a value an error message repeats.
const Max = 64

// Cut returns s when it is at most Max bytes long, otherwise its first Max bytes (cut on a rune
// boundary) followed by how many bytes were left out.
func Cut(s string) string { return CutAt(s, Max) }

// CutAt is Cut with a bound of max bytes.
func CutAt(s string, max int) string {
	if len(s) <= max {
		return s
	}
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%s…(%d more bytes)", s[:n], len(s)-n)
}

// Q is Cut in double quotes with Go escapes, for messages that quote the value.
func Q(s string) string { return fmt.Sprintf("%q", Cut(s)) }
