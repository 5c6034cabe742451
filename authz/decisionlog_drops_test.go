package authz_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/syncbuf"
)

// TestDecisionLogDropsAreLogged: records dropped because the queue was full are not only
// counted (Stats, the metric) but said in a log line on WithLogger's logger, with how many,
// once the drainer runs again; the count the lines add up to is Stats.DecisionLogDropped.
func TestDecisionLogDropsAreLogged(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var out syncbuf.Buffer
	logger := slog.New(slog.NewTextHandler(&out, nil))
	sink := newGateSink()
	const queue, more = 4, 10
	eng, _ := newAcme(t, authz.WithDecisionLog(sink), authz.WithDecisionLogQueue(queue), authz.WithDecisionCache(0),
		authz.WithLogger(logger))
	req := authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	_, err := eng.Authorize(ctx, req)
	require.NoError(t, err)
	<-sink.entered // the sink is stuck: the queue fills, then drops
	for range more {
		_, err := eng.Authorize(ctx, req)
		require.NoError(t, err)
	}
	require.Equal(t, uint64(more-queue), eng.Stats().DecisionLogDropped)
	require.NotContains(t, out.String(), "dropped", "the drainer is stuck in the sink: nothing said yet")
	close(sink.release)
	require.NoError(t, eng.Close(ctx))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 1, out.String())
	require.Contains(t, lines[0], "level=WARN")
	require.Contains(t, lines[0], "records dropped")
	require.Contains(t, lines[0], "dropped=6 dropped_total=6 queue=4")
}
