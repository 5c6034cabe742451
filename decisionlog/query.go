package decisionlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/rego"
)

// Outcome selects records by their decision.
type Outcome string

// The outcomes of Query.Outcome; "" selects both. A request that failed (path error) is denied.
const (
	OutcomeAllow Outcome = "allow"
	OutcomeDeny  Outcome = "deny"
)

// ParseOutcome reads "allow" or "deny" ("" is any), or the metrics' outcome labels "allowed"
// and "denied" (teamgate_decisions_total{outcome}) for them.
func ParseOutcome(s string) (Outcome, error) {
	switch o := Outcome(s); o {
	case "", OutcomeAllow, OutcomeDeny:
		return o, nil
	case "allowed":
		return OutcomeAllow, nil
	case "denied":
		return OutcomeDeny, nil
	}
	return "", teamgate.Invalid("outcome", s, "want allow or deny")
}

// Query selects records. Every field set must match; the zero Query selects every record.
type Query struct {
	Subject  string              // the request's subject
	Action   string              // the request's action
	Resource string              // the request's resource, exactly as the request named it
	Outcome  Outcome             // allow or deny
	Reason   rego.Code           // a reason code the decision carries (e.g. restricted)
	Path     *authz.DecisionPath // how the decision was made (none: the call failed)
	Since    time.Time           // records at or after Since
	Until    time.Time           // records before Until
	Limit    int                 // at most this many records; 0: no limit
	Newest   bool                // newest first (default: oldest first)
}

func (q Query) check() error {
	switch {
	case q.Limit < 0:
		return teamgate.Invalid("limit", fmt.Sprint(q.Limit), "must be >= 0 (0: no limit)")
	case !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until):
		return teamgate.Invalid("time range", q.Since.Format(time.RFC3339Nano)+" .. "+q.Until.Format(time.RFC3339Nano), "since must be before until")
	}
	if q.Outcome != "" && q.Outcome != OutcomeAllow && q.Outcome != OutcomeDeny {
		return teamgate.Invalid("outcome", string(q.Outcome), "want OutcomeAllow or OutcomeDeny")
	}
	if q.Path != nil {
		if _, err := authz.ParseDecisionPath(q.Path.String()); err != nil {
			return err
		}
	}
	return nil
}

// Query calls fn with each record q selects, in time order (newest first with q.Newest), until
// q.Limit records or fn returns an error (returned as is). Records older than MaxAge are never
// selected, even before retention deletes them. A record that does not decode is an error
// naming its time and sequence number. The scan reads the time range [Since, Until) once; the
// other filters are checked on each record's header before its JSON is decoded.
func (l *Log) Query(ctx context.Context, q Query, fn func(authz.DecisionRecord) error) error {
	if err := q.check(); err != nil {
		return err
	}
	if oldest := l.now().Add(-l.maxAge); q.Since.Before(oldest) && !l.keepAll {
		q.Since = oldest
	}
	lo := recordKey(q.Since, 0)
	hi := []byte(prefixRec + "\xff") // past every record
	if !q.Until.IsZero() {
		hi = recordKey(q.Until, 0)
	}
	l.queries.RLock()
	defer l.queries.RUnlock()
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return teamgate.ErrClosed
	}
	n := 0
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixRec), Reverse: q.Newest, PrefetchValues: false})
		defer it.Close()
		seek := lo
		if q.Newest {
			seek = append(slices.Clone(hi), 0) // reverse Seek finds the last key <= seek: hi excluded below
		}
		for it.Seek(seek); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			k := it.Item().Key()
			switch {
			case q.Newest && string(k) < string(lo), !q.Newest && string(k) >= string(hi):
				return nil // past the range
			case string(k) >= string(hi):
				continue
			}
			var rec authz.DecisionRecord
			ok, err := func() (bool, error) {
				var ok bool
				err := it.Item().Value(func(v []byte) error {
					h, body, err := decodeHeader(v)
					if err != nil {
						return err
					}
					if !q.matches(&h) {
						return nil
					}
					ok = true
					return rec.UnmarshalJSON(body)
				})
				return ok, err
			}()
			if err != nil {
				t, seq := keyTime(k)
				return fmt.Errorf("decision log %s: record at %s #%d is corrupt: %w", l.dir, t.Format(time.RFC3339Nano), seq, err)
			}
			if !ok {
				continue
			}
			if err := fn(rec); err != nil {
				return err
			}
			if n++; q.Limit > 0 && n == q.Limit {
				return nil
			}
		}
		return nil
	})
	return err
}

// header is what the filters read of a record without decoding its JSON.
type header struct {
	allowed                   bool
	path                      authz.DecisionPath
	subject, action, resource string
	codes                     []string
}

const formatV1 = 1

func (q *Query) matches(h *header) bool {
	switch {
	case q.Subject != "" && h.subject != q.Subject,
		q.Action != "" && h.action != q.Action,
		q.Resource != "" && h.resource != q.Resource,
		q.Outcome == OutcomeAllow && !h.allowed,
		q.Outcome == OutcomeDeny && h.allowed,
		q.Path != nil && h.path != *q.Path,
		q.Reason != "" && !slices.Contains(h.codes, string(q.Reason)):
		return false
	}
	return true
}

// encodeRecord is a record's value: the header, then the record's JSON.
func encodeRecord(r *authz.DecisionRecord) ([]byte, error) {
	body, err := r.MarshalJSON()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 64+len(body))
	b = append(b, formatV1, 0, byte(r.Path))
	if r.Decision.Allowed {
		b[1] = 1
	}
	for _, s := range []string{r.Request.Subject, r.Request.Action, r.Request.Resource} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Decision.Reasons)))
	for _, rs := range r.Decision.Reasons {
		b = appendString(b, string(rs.Code))
	}
	return append(b, body...), nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

var errHeader = errors.New("bad record header")

// decodeHeader reads a value's header and returns the JSON after it.
func decodeHeader(v []byte) (header, []byte, error) {
	var h header
	if len(v) < 3 {
		return h, nil, errHeader
	}
	if v[0] != formatV1 {
		return h, nil, fmt.Errorf("unknown record format %d", v[0])
	}
	h.allowed, h.path = v[1] == 1, authz.DecisionPath(v[2])
	v = v[3:]
	str := func() (string, bool) {
		n, w := binary.Uvarint(v)
		if w <= 0 || n > uint64(len(v)-w) {
			return "", false
		}
		s := string(v[w : w+int(n)])
		v = v[w+int(n):]
		return s, true
	}
	var ok [3]bool
	h.subject, ok[0] = str()
	h.action, ok[1] = str()
	h.resource, ok[2] = str()
	if ok != [3]bool{true, true, true} {
		return h, nil, errHeader
	}
	n, w := binary.Uvarint(v)
	if w <= 0 || n > uint64(len(v)) {
		return h, nil, errHeader
	}
	v = v[w:]
	h.codes = make([]string, 0, n)
	for range n {
		c, ok := str()
		if !ok {
			return h, nil, errHeader
		}
		h.codes = append(h.codes, c)
	}
	return h, v, nil
}
