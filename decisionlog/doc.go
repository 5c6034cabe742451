// Package decisionlog keeps the engine's decision log in Badger: Log is an authz.DecisionSink
// (pass it to authz.WithDecisionLog) with retention by age and by size, queried by subject,
// action, resource, outcome, reason code, path and time range (`teamgate decisions`), and
// Recheck re-decides logged requests against the current directory and policy to list those
// decided differently now, with what changed since: the policy, and (WithEvents) the writes that
// name the request's subject or project.
//
//	dl, err := decisionlog.Open(ctx, decisionlog.Options{Dir: "/var/lib/host/decisions"})
//	eng, err := authz.New(ctx, st, authz.WithDecisionLog(dl))
//	...
//	err = eng.Close(ctx) // flushes the queue into dl
//	err = dl.Close()
//
// # Layout
//
// One Badger directory per log (Badger locks it: one process at a time), holding only the log:
//
//	dl1/meta                      "teamgate decision log v1": marks the directory as a log
//	dl1/r/<time><seq>             one record
//
// <time> is the record's Time as 8 bytes big-endian (Unix nanoseconds with the sign bit
// flipped, so byte order is time order) and <seq> 8 bytes big-endian of a counter that
// continues after the last record at Open, so keys are unique and ordered by time: a time range
// is one range scan, oldest or newest first. A record's value is a small binary header — format
// version, outcome, path, subject, action, resource and reason codes — followed by the record's
// JSON (authz.DecisionRecord's MarshalJSON). The other filters are applied to the header while
// scanning the time range, and only the records that pass are decoded: there are no secondary
// indexes to keep in step, and a query costs one read of each record in its time range (give
// --since/--until to narrow a scan of a large log).
//
// # Retention
//
// Records older than MaxAge (default DefaultMaxAge, 7 days) are deleted at Open, by a
// background pass every RetentionInterval (default 1 minute) and at Close; queries never return
// them, even before the pass, and a log reopened with a longer MaxAge does not show them again
// (but after a crash, those that expired in the last RetentionInterval). The size of the records (keys and values) is kept at most MaxBytes (default
// DefaultMaxBytes, 256 MiB): a Write that takes it past MaxBytes deletes the oldest records
// until 90 % of MaxBytes is left, and Open does the same for a log written with a larger bound.
// The directory's size on disk follows the records' with a lag: Badger reclaims deleted
// records in its compactions (and the background pass runs its value-log GC).
//
// Options.NoRetention turns all of it off for a reader of a log whose bounds are a host's (the
// CLI opens logs so).
//
// Writes are not synced (Badger's default): a crash may lose the last records, never corrupt the
// log. A record that does not decode is an error naming its time and sequence number. Open
// refuses, leaving it as it is, a damaged directory that Badger would empty or crash on (table
// or value-log files without a MANIFEST; a table cut short, whose footer points past its end)
// with an error matching teamgate.ErrInvalid. Damage Badger cannot tell from a crash is not
// detected: a MANIFEST cut short loses the tables it no longer names, and a table whose blocks
// were overwritten reads short.
//
// A Log is safe for concurrent use.
package decisionlog
