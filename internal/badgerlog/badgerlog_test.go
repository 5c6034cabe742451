package badgerlog_test

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/badgerlog"
)

// Badger's log lines reach the caller's slog.Logger, tagged as Badger's.
func TestBadgerLoggerRoutesToSlog(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := badgerlog.Logger{L: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l.Errorf("disk %s\n", "full")
	l.Warningf("slow %d", 3)
	l.Infof("opened")
	l.Debugf("detail")
	out := buf.String()
	for _, want := range []string{`level=ERROR msg="disk full" component=badger`, `level=WARN msg="slow 3"`, `level=INFO msg=opened`, `level=DEBUG msg=detail`} {
		require.Contains(t, out, want)
	}
}
