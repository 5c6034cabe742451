// Package badgerlog routes Badger's logging through slog (store and decisionlog open Badger).
package badgerlog

import (
	"fmt"
	"log/slog"
	"strings"
)

// Logger is a badger.Logger writing to l with the attribute component=badger.
type Logger struct{ L *slog.Logger }

// Errorf logs at error level.
func (b Logger) Errorf(f string, a ...any) {
	b.L.Error(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}

// Warningf logs at warning level.
func (b Logger) Warningf(f string, a ...any) {
	b.L.Warn(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}

// Infof logs at info level.
func (b Logger) Infof(f string, a ...any) {
	b.L.Info(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}

// Debugf logs at debug level.
func (b Logger) Debugf(f string, a ...any) {
	b.L.Debug(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}
