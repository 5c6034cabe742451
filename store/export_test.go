package store

// KeepEvents returns opts keeping the events of only the last n revisions, so the tests can
// trim the event log without 100,000 writes.
func KeepEvents(opts Options, n uint64) Options {
	opts.eventsKept = n
	return opts
}
