package rego

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/open-policy-agent/opa/v1/ast"
)

// MaxDataBytes bounds the JSON data files a policy directory holds together (LoadDir): decoded,
// merged and stored as OPA values, 57 MB of them took 2 to 2.3 s and 580 to 650 MB of memory.
const MaxDataBytes = 16 << 20

// dataBound returns the limit error of the data file at path (size bytes) when it brings the
// data files read before it (*total, to which it adds size) past MaxDataBytes, nil otherwise.
// The error names the line and column where the limit is crossed, read from the file's first
// bytes only: a file of gigabytes is never read whole.
func dataBound(path string, size int64, total *int64) error {
	before := *total
	*total += size
	if *total <= MaxDataBytes || before > MaxDataBytes {
		return nil // within, or reported at an earlier file
	}
	line, col := 1, 1
	if f, err := os.Open(path); err == nil {
		at, _ := io.ReadAll(io.LimitReader(f, MaxDataBytes-before))
		f.Close()
		line = bytes.Count(at, []byte("\n")) + 1
		col = len(at) - bytes.LastIndexByte(at, '\n')
	}
	err := limitError(&ast.Location{File: path, Row: line, Col: col},
		fmt.Sprintf("the policy's JSON data files hold more than %d bytes together (%d, this one %d)", MaxDataBytes, *total, size))
	err.(*Error).Op = "load data"
	return err
}
