package authz

import (
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
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
// depend on more than the stamps below, so such requests are always evaluated).
type cacheKey struct {
	subject, action, resource, owner string
}

// maxDeps is the most stamps a decision depends on (org, member, team, project).
const maxDeps = 4

// cached is a decision with what it depends on: the policy it was made with and the stamp cells
// of the org, the subject's memberships, the team and the project, with the values they held.
// It is current exactly while the policy and every cell are unchanged.
type cached struct {
	dec    Decision
	policy *rego.Policy
	n      int
	cells  [maxDeps]*atomic.Uint64
	seen   [maxDeps]uint64
}

func (c *cached) current(p *rego.Policy) bool {
	if c.policy != p {
		return false
	}
	for i := range c.n {
		if c.cells[i].Load() != c.seen[i] {
			return false
		}
	}
	return true
}

// decisionCache is the bounded in-memory tier. The LRU is safe for concurrent use; entries are
// immutable once stored.
type decisionCache struct {
	lru          *lru.Cache[cacheKey, *cached]
	hits, misses atomic.Uint64
}

func newDecisionCache(size int) *decisionCache {
	if size == 0 {
		return nil
	}
	l, _ := lru.New[cacheKey, *cached](size) // fails only for size <= 0
	return &decisionCache{lru: l}
}

// captureDeps records, inside the snapshot that read the facts, the stamps a decision on q
// depends on.
func captureDeps(r store.Reader, q *query, e *cached) {
	add := func(key string) {
		c := r.Stamp(key)
		e.cells[e.n], e.seen[e.n] = c, c.Load()
		e.n++
	}
	subject := q.req.Subject
	switch q.res.Kind {
	case scope.KindProject:
		ref := q.res.Ref
		add("o/" + ref.Org)
		add("m/" + ref.Org + "/" + subject)
		add("p/" + ref.Org + "/" + ref.Project)
		if ref.Team != "" {
			add("t/" + ref.Org + "/" + ref.Team)
		}
	default:
		o := q.res.Owner
		add("o/" + o.Org)
		add("m/" + o.Org + "/" + subject)
		if o.Team != "" {
			add("t/" + o.Org + "/" + o.Team)
		}
	}
}
