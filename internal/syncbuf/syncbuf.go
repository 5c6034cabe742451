// Package syncbuf is a bytes.Buffer that goroutines may write while a test reads it: the
// destination of a logger that a library's background goroutine writes to (the decision log's
// drop reports), read by tests of the engine's and of its internals.
package syncbuf

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer is a bytes.Buffer behind a mutex. The zero value is empty and ready.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (w *Buffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// String is what was written so far.
func (w *Buffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// Lines is what was written so far, split into lines without the last newline ([""] when
// nothing was).
func (w *Buffer) Lines() []string {
	return strings.Split(strings.TrimSpace(w.String()), "\n")
}
