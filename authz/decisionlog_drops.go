package authz

import "time"

// DecisionLogDropReportInterval is how often at most the decision log writes a log line (to
// WithLogger's logger) about records it dropped: the first drop is reported at the drainer's
// next pass, later ones at most once per interval (when the interval ends, even if no decision
// follows), and those not yet reported when the engine closes at Close. Records dropped after
// Close (decisions are still answered, not logged) are counted, not said. The count is
// Stats.DecisionLogDropped (and the metric teamgate_decision_log_dropped_total); the line makes
// a full queue visible without them.
const DecisionLogDropReportInterval = 10 * time.Second

// dropReport is what the drainer last logged of the drops (its own: only it reads or writes it).
type dropReport struct {
	reported uint64    // dropped as of the last line
	at       time.Time // when it was written; zero: never
}

// reportDrops logs the records dropped since the last line, if any, unless a line was written
// less than DecisionLogDropReportInterval ago (final: the log is closing, write it anyway). Run
// by the drainer only, after a drain, never by a producer.
func (l *decisionLog) reportDrops(final bool) {
	d := l.dropped.Load()
	if d == l.drops.reported {
		return
	}
	now := time.Now()
	if !final && !l.drops.at.IsZero() && now.Sub(l.drops.at) < l.dropEvery {
		return
	}
	l.log.Warn("teamgate: decision log: queue full, records dropped (a slow sink, or a queue too small: WithDecisionLogQueue)",
		"dropped", d-l.drops.reported, "dropped_total", d, "queue", len(l.ring.slots))
	l.drops = dropReport{reported: d, at: now}
}

// lateTimer is lateDrops' timer; a nil one never fires.
type lateTimer struct{ t *time.Timer }

// C is the timer's channel, nil for a nil timer (a receive from it blocks for ever).
func (t lateTimer) C() <-chan time.Time {
	if t.t == nil {
		return nil
	}
	return t.t.C
}

// Stop stops the timer, if any.
func (t lateTimer) Stop() {
	if t.t != nil {
		t.t.Stop()
	}
}

// lateDrops is the timer of an idle drainer that owes a line about drops it did not report
// (reportDrops held them back: a line was written less than an interval ago): it fires when
// the interval has passed, so the drainer wakes and writes the line, rather than at the next
// decision, which may come hours later, or at Close. None when no line is owed.
func (l *decisionLog) lateDrops() lateTimer {
	if l.dropped.Load() == l.drops.reported {
		return lateTimer{}
	}
	return lateTimer{time.NewTimer(l.dropEvery - time.Since(l.drops.at))}
}
