package authz

import (
	"encoding/binary"
	"errors"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// DefaultDecisionCacheSize is the number of decisions the in-memory cache keeps by default.
const DefaultDecisionCacheSize = 100_000

// WithDecisionCache sets how many decisions the in-memory cache keeps; 0 turns it off.
// Default DefaultDecisionCacheSize.
func WithDecisionCache(size int) Option {
	return func(c *config) error {
		if size < 0 {
			return errInvalidSize(size)
		}
		c.cacheSize = size
		c.cacheSet = true
		return nil
	}
}

// cacheKey identifies a cacheable request: one without attributes (attributes make decisions
// depend on more than the facts the store tracks, so such requests are always evaluated).
type cacheKey struct {
	subject, action, resource, owner string
}

// cached is a decision with what it depends on: the policy it was made with and the Deps of the
// snapshot that read its facts (store.Reader.Track records them as the facts are read; nothing
// here knows which facts a decision reads). It is current exactly while the policy is in force
// and the Deps are current — never once the store is closed.
type cached struct {
	dec    Decision
	policy *rego.Policy
	deps   store.Deps
}

func (c *cached) current(p *rego.Policy) bool { return c.policy == p && c.deps.Current() }

// decisionCache is the bounded in-memory tier. The LRU is safe for concurrent use; entries are
// immutable once stored.
type decisionCache struct {
	lru                    *lru.Cache[cacheKey, *cached]
	hits, diskHits, misses atomic.Uint64
}

func newDecisionCache(size int) *decisionCache {
	if size == 0 {
		return nil
	}
	l, _ := lru.New[cacheKey, *cached](size) // fails only for size <= 0
	return &decisionCache{lru: l}
}

// diskKey is the Badger key of a request's entry (below the store's cache prefix). Only
// requests that were decided are stored, and their parts are slugs, references and action names,
// none of which holds a NUL byte.
func diskKey(k cacheKey) string {
	return "decision/" + k.subject + "\x00" + k.action + "\x00" + k.resource + "\x00" + k.owner
}

// encodeEntry writes an entry as the Badger tier stores it: the policy fingerprint, the Deps
// (their own encoding) and the decision (length-prefixed strings and uvarints; compact and
// several times faster to read than JSON).
func encodeEntry(fingerprint string, deps *store.Deps, d Decision) []byte {
	b := make([]byte, 0, 128)
	str := func(s string) { b = binary.AppendUvarint(b, uint64(len(s))); b = append(b, s...) }
	str(fingerprint)
	b, _ = deps.AppendBinary(b) // never fails
	if d.Allowed {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	str(d.Role)
	b = binary.AppendUvarint(b, uint64(len(d.Reasons)))
	for _, r := range d.Reasons {
		str(string(r.Code))
		str(r.Message)
	}
	return b
}

// entryReader decodes encodeEntry's format; any malformed input sets err.
type entryReader struct {
	b   []byte
	err error
}

func (r *entryReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *entryReader) str() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errors.New("bad string")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// fromDisk returns the Badger tier's entry for k when it is current for policy p, as an L1
// entry.
func (e *Engine) fromDisk(k cacheKey, p *rego.Policy) (*cached, bool) {
	if e.disk == nil {
		return nil, false
	}
	raw, ok := e.disk.CacheGet(diskKey(k))
	if !ok {
		return nil, false
	}
	c, ok := decodeEntry(raw, p, e.disk)
	if !ok || !c.current(p) {
		return nil, false
	}
	return c, true
}

// decodeEntry reads encodeEntry's format for policy p, binding the Deps to disk's stamps; it fails
// on another policy's entry or any malformed input.
func decodeEntry(raw []byte, p *rego.Policy, disk PersistentCache) (*cached, bool) {
	r := &entryReader{b: raw}
	if r.str() != p.Fingerprint() || r.err != nil {
		return nil, false
	}
	c := &cached{policy: p}
	var err error
	c.deps, r.b, err = disk.DecodeDeps(r.b)
	if err != nil || len(r.b) == 0 {
		return nil, false
	}
	c.dec.Allowed = r.b[0] == 1
	r.b = r.b[1:]
	c.dec.Role = r.str()
	nr := r.uvarint()
	if r.err != nil || nr > uint64(len(r.b)) {
		return nil, false
	}
	c.dec.Reasons = make([]Reason, 0, nr)
	for range nr {
		c.dec.Reasons = append(c.dec.Reasons, Reason{Code: rego.Code(r.str()), Message: r.str()})
	}
	if r.err != nil {
		return nil, false
	}
	return c, true
}

// toDisk stores an entry in the Badger tier without waiting for the write.
func (e *Engine) toDisk(k cacheKey, c *cached) {
	if e.disk == nil {
		return
	}
	e.disk.CachePut(diskKey(k), encodeEntry(c.policy.Fingerprint(), &c.deps, c.dec))
}
