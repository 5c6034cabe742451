package decisionlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/badgerdir"
	"github.com/teamgate/teamgate/internal/badgerlog"
)

// Defaults of Options.
const (
	DefaultMaxAge            = 7 * 24 * time.Hour
	DefaultMaxBytes          = 256 << 20
	DefaultRetentionInterval = time.Minute
	// MinMaxBytes is the smallest MaxBytes Open accepts: a bound below a few records' size
	// would delete each record as it is written.
	MinMaxBytes = 64 << 10
)

// Options configure Open.
type Options struct {
	// Dir is the Badger directory of the log, created when missing; "" keeps the log in memory
	// (tests).
	Dir string
	// MaxAge deletes records older than this. Default DefaultMaxAge; negative is an error.
	MaxAge time.Duration
	// MaxBytes bounds the records' size (keys and values). Default DefaultMaxBytes; below
	// MinMaxBytes is an error. Records are trimmed oldest first by their time: a record larger
	// than MaxBytes is written and trimmed at once, with those older than it.
	MaxBytes int64
	// RetentionInterval is the period of the background retention pass. Default
	// DefaultRetentionInterval; negative is an error.
	RetentionInterval time.Duration
	// Now is the retention clock. Default time.Now.
	Now func() time.Time
	// Logger receives Badger's warnings and failed retention passes. Nil discards them.
	Logger *slog.Logger
	// NoRetention turns retention off: nothing is deleted (at Open, by a pass, after a Write,
	// at Close) and queries hide nothing, MaxAge and MaxBytes are ignored. For a reader or an
	// occasional writer of a log whose bounds belong to its host (teamgate decisions,
	// --decision-log), which would otherwise apply its own bounds — the defaults — and delete
	// what the host keeps longer.
	NoRetention bool
}

// Log is a decision log in Badger. It implements authz.DecisionSink. It is safe for
// concurrent use.
type Log struct {
	db       *badger.DB
	dir      string
	maxAge   time.Duration
	maxBytes int64
	now      func() time.Time
	log      *slog.Logger
	memory   bool
	keepAll  bool // Options.NoRetention

	mu      sync.Mutex // guards seq, records, size and closed; held by Write and retention
	seq     uint64     // of the last record written
	records int64
	size    int64 // the records' keys and values, in bytes
	closed  bool

	// queries is held shared by each Query while it scans (without mu, so writes go on) and
	// exclusively by Close before it closes Badger.
	queries sync.RWMutex

	stop chan struct{}
	wg   sync.WaitGroup // the retention goroutine
}

var _ authz.DecisionSink = (*Log)(nil)

const (
	keyMeta    = "dl1/meta"
	metaValue  = "teamgate decision log v1"
	prefixRec  = "dl1/r/"
	keyLen     = len(prefixRec) + 16
	trimTarget = 0.9 // of MaxBytes, left after a trim
)

// Open opens (or creates) the log in opts.Dir and applies retention. A directory that holds
// anything but a decision log (a teamgate store, say) is an error matching teamgate.ErrInvalid,
// and so are bad options and a damaged directory Badger would empty or crash on (see the package
// doc); a directory Badger cannot open (locked by another process, corrupt) is an error naming
// it.
func Open(ctx context.Context, opts Options) (*Log, error) {
	switch {
	case opts.MaxAge < 0:
		return nil, teamgate.Invalid("decision log max age", opts.MaxAge.String(), "must be >= 0 (0: the default, 7 days)")
	case opts.MaxBytes != 0 && opts.MaxBytes < MinMaxBytes:
		return nil, teamgate.Invalid("decision log max bytes", fmt.Sprint(opts.MaxBytes), fmt.Sprintf("must be at least %d (0: the default, 256 MiB)", MinMaxBytes))
	case opts.RetentionInterval < 0:
		return nil, teamgate.Invalid("decision log retention interval", opts.RetentionInterval.String(), "must be >= 0 (0: the default, 1m)")
	}
	l := &Log{dir: opts.Dir, maxAge: opts.MaxAge, maxBytes: opts.MaxBytes, now: opts.Now, log: opts.Logger, memory: opts.Dir == "", keepAll: opts.NoRetention, stop: make(chan struct{})}
	if l.maxAge == 0 {
		l.maxAge = DefaultMaxAge
	}
	if l.maxBytes == 0 {
		l.maxBytes = DefaultMaxBytes
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	every := opts.RetentionInterval
	if every == 0 {
		every = DefaultRetentionInterval
	}
	if !l.memory {
		if err := badgerdir.Check("decision log", opts.Dir); err != nil {
			return nil, err
		}
	}
	bo := badger.DefaultOptions(opts.Dir).WithLogger(badgerlog.Logger{L: l.log}).WithLoggingLevel(badger.WARNING)
	if l.memory {
		bo = bo.WithInMemory(true)
	}
	db, err := badger.Open(bo)
	if err != nil {
		if strings.Contains(err.Error(), "Another process is using this Badger database") {
			return nil, fmt.Errorf("decision log %s is locked by another process: a Badger directory can be opened by one process at a time", opts.Dir)
		}
		return nil, fmt.Errorf("decision log %s: cannot open it as a Badger directory: %w", opts.Dir, err)
	}
	l.db = db
	if err := l.load(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := l.Retain(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	if !l.keepAll {
		l.wg.Add(1)
		go l.retainLoop(every)
	}
	return l, nil
}

// load checks the marker (writing it into an empty directory) and counts the records.
func (l *Log) load() error {
	return l.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyMeta))
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			it := txn.NewIterator(badger.IteratorOptions{})
			it.Rewind()
			other := it.Valid()
			it.Close()
			if other {
				return teamgate.Invalid("decision log", l.dir, "the directory holds other data, not a decision log (a teamgate store?)")
			}
			return txn.Set([]byte(keyMeta), []byte(metaValue))
		case err != nil:
			return fmt.Errorf("decision log %s: %w", l.dir, err)
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("decision log %s: %w", l.dir, err)
		}
		if string(v) != metaValue {
			return teamgate.Invalid("decision log", l.dir, fmt.Sprintf("unknown format %q (want %q)", v, metaValue))
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixRec)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if len(item.Key()) != keyLen {
				return teamgate.Invalid("decision log", l.dir, fmt.Sprintf("corrupt: key %q is not a record key", item.Key()))
			}
			l.records++
			l.size += item.KeySize() + item.ValueSize()
			l.seq = max(l.seq, binary.BigEndian.Uint64(item.Key()[keyLen-8:]))
		}
		return nil
	})
}

// Write stores records (authz.DecisionSink) in one batch, then trims the oldest records if the
// log has grown past MaxBytes.
func (l *Log) Write(ctx context.Context, records []authz.DecisionRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return teamgate.ErrClosed
	}
	wb := l.db.NewWriteBatch()
	defer wb.Cancel()
	seq, size := l.seq, int64(0)
	for i := range records {
		seq++
		k := recordKey(records[i].Time, seq)
		v, err := encodeRecord(&records[i])
		if err != nil {
			return fmt.Errorf("decision log: record of %s %s %s: %w", records[i].Request.Subject, records[i].Request.Action, records[i].Request.Resource, err)
		}
		if err := wb.Set(k, v); err != nil {
			return err
		}
		size += int64(len(k) + len(v))
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	l.seq, l.records, l.size = seq, l.records+int64(len(records)), l.size+size
	if l.size > l.maxBytes && !l.keepAll {
		return l.trimLocked(int64(float64(l.maxBytes) * trimTarget))
	}
	return nil
}

// Size returns how many records the log holds and their size in bytes (keys and values).
func (l *Log) Size() (records, bytes int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.records, l.size
}

// Retain applies retention now: records older than MaxAge are deleted, then the oldest until
// the records fit MaxBytes (nothing with Options.NoRetention). Open, the background pass and
// Close call it.
func (l *Log) Retain(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return teamgate.ErrClosed
	}
	if l.keepAll {
		return nil
	}
	cutoff := recordKey(l.now().Add(-l.maxAge), 0)
	if err := l.deleteWhile(func(k []byte, _ int64) bool { return bytes.Compare(k, cutoff) < 0 }); err != nil {
		return err
	}
	if l.size > l.maxBytes {
		return l.trimLocked(int64(float64(l.maxBytes) * trimTarget))
	}
	return nil
}

// trimLocked deletes the oldest records until the records' size is at most target.
func (l *Log) trimLocked(target int64) error {
	size := l.size
	return l.deleteWhile(func(_ []byte, n int64) bool {
		if size <= target {
			return false
		}
		size -= n
		return true
	})
}

// deleteWhile deletes records from the oldest while del says so, keeping the counts, in
// batches of deleteBatch keys (memory stays bounded however many records go). l.mu is held.
func (l *Log) deleteWhile(del func(key []byte, size int64) bool) error {
	for {
		var keys [][]byte
		var sizes []int64
		more := false
		err := l.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixRec)})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				if len(keys) == deleteBatch {
					more = true
					break
				}
				item := it.Item()
				n := item.KeySize() + item.ValueSize()
				if !del(item.Key(), n) {
					break
				}
				keys = append(keys, item.KeyCopy(nil))
				sizes = append(sizes, n)
			}
			return nil
		})
		if err != nil || len(keys) == 0 {
			return err
		}
		wb := l.db.NewWriteBatch()
		for _, k := range keys {
			if err := wb.Delete(k); err != nil {
				wb.Cancel()
				return err
			}
		}
		if err := wb.Flush(); err != nil {
			return err
		}
		for _, n := range sizes {
			l.size -= n
		}
		l.records -= int64(len(keys))
		if !more {
			return nil
		}
	}
}

// deleteBatch bounds the keys one retention batch deletes.
const deleteBatch = 10_000

func (l *Log) retainLoop(every time.Duration) {
	defer l.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		if err := l.Retain(context.Background()); err != nil && !errors.Is(err, teamgate.ErrClosed) {
			l.log.Warn("teamgate: decision log retention failed", "dir", l.dir, "error", err)
		}
		if !l.memory {
			for l.db.RunValueLogGC(0.5) == nil {
			}
		}
	}
}

// Close applies retention a last time (Retain: records past MaxAge are deleted, not only
// hidden, so a log reopened with a longer MaxAge does not show them again), stops the retention
// pass, waits for it and closes Badger. Further calls return teamgate.ErrClosed.
func (l *Log) Close() error {
	retained := l.Retain(context.Background())
	if errors.Is(retained, teamgate.ErrClosed) {
		return retained
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return teamgate.ErrClosed
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	l.wg.Wait()
	l.queries.Lock() // wait for the queries under way
	defer l.queries.Unlock()
	return errors.Join(retained, l.db.Close())
}

// recordKey is a record's key: the prefix, the time (sign bit flipped: byte order is time
// order) and the sequence number. A time Unix nanoseconds cannot hold (before 1678 or after
// 2262: UnixNano's result is undefined there, and wrapped around) is the first or last they can:
// a query's bound far in the past or future bounds nothing away.
func recordKey(t time.Time, seq uint64) []byte {
	ns := int64(math.MinInt64)
	switch {
	case t.After(lastNano):
		ns = math.MaxInt64
	case !t.Before(firstNano):
		ns = t.UnixNano()
	}
	k := make([]byte, keyLen)
	copy(k, prefixRec)
	binary.BigEndian.PutUint64(k[len(prefixRec):], uint64(ns)^(1<<63))
	binary.BigEndian.PutUint64(k[len(prefixRec)+8:], seq)
	return k
}

// The times Unix nanoseconds can hold.
var firstNano, lastNano = time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64)

// keyTime reads a record key's time and sequence number.
func keyTime(k []byte) (time.Time, uint64) {
	ns := int64(binary.BigEndian.Uint64(k[len(prefixRec):]) ^ (1 << 63))
	return time.Unix(0, ns).UTC(), binary.BigEndian.Uint64(k[len(prefixRec)+8:])
}
