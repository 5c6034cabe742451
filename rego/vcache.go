package rego

import (
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// vcache is OPA's virtual document cache (topdown.VirtualCache) for one evaluation at a time,
// kept in a pool with the evaluation's stopper so that a decision allocates neither: OPA's own
// cache builds a tree of hash maps per evaluation, a sixth of a decision's allocations. It
// behaves as OPA's (TestVCacheMatchesOPA compares them): frames pushed and popped, only the
// top frame read, a reference put undefined stays undefined, keys matched term by term with
// ast.Term.Equal among those of the same hashes.
//
// Entries live in one slice, their references' terms copied into another (OPA passes a scratch
// slice it reuses), and a map from (frame, hash of the reference) to the latest entry with that
// hash chains them, so a lookup costs one hash of the reference whatever the number of entries.
type vcache struct {
	entries []vcEntry
	terms   []*ast.Term   // the entries' references, back to back
	frames  []int         // index of each frame's first entry; the last is the top
	index   map[vcKey]int // (frame, hash) → 1 + the newest entry with it
}

type vcEntry struct {
	start, n  int // the reference: terms[start : start+n]
	hash      int
	next      int // 1 + the previous entry of the same key; 0 for none
	value     *ast.Term
	undefined bool
}

type vcKey struct {
	frame, hash int
}

var _ topdown.VirtualCache = (*vcache)(nil)

func (c *vcache) reset() {
	clear(c.entries) // drop the values: a pooled cache keeps no evaluation's terms alive
	clear(c.terms)
	c.entries, c.terms, c.frames = c.entries[:0], c.terms[:0], append(c.frames[:0], 0)
	clear(c.index)
}

func refHash(ref ast.Ref) int {
	h := len(ref)
	for _, t := range ref {
		h = h*31 + t.Hash()
	}
	return h
}

// find returns the top frame's entry for ref, or nil.
func (c *vcache) find(ref ast.Ref, hash int) *vcEntry {
	for i := c.index[vcKey{len(c.frames), hash}]; i > 0; {
		e := &c.entries[i-1]
		if e.n == len(ref) && e.hash == hash && equalRefs(c.terms[e.start:e.start+e.n], ref) {
			return e
		}
		i = e.next
	}
	return nil
}

func equalRefs(a, b []*ast.Term) bool {
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

func (c *vcache) Push() { c.frames = append(c.frames, len(c.entries)) }

func (c *vcache) Pop() {
	top := len(c.frames)
	first := c.frames[top-1]
	for i := first; i < len(c.entries); i++ {
		delete(c.index, vcKey{top, c.entries[i].hash})
	}
	if first < len(c.entries) {
		start := c.entries[first].start
		clear(c.terms[start:])
		c.terms = c.terms[:start]
	}
	clear(c.entries[first:])
	c.entries, c.frames = c.entries[:first], c.frames[:top-1]
}

func (c *vcache) Get(ref ast.Ref) (*ast.Term, bool) {
	e := c.find(ref, refHash(ref))
	switch {
	case e == nil:
		return nil, false
	case e.undefined:
		return nil, true
	}
	return e.value, false
}

func (c *vcache) Put(ref ast.Ref, value *ast.Term) {
	hash := refHash(ref)
	e := c.find(ref, hash)
	if e == nil {
		k := vcKey{len(c.frames), hash}
		c.entries = append(c.entries, vcEntry{start: len(c.terms), n: len(ref), hash: hash, next: c.index[k]})
		c.terms = append(c.terms, ref...)
		c.index[k] = len(c.entries)
		e = &c.entries[len(c.entries)-1]
	}
	if value != nil {
		e.value = value
	} else {
		e.undefined = true
	}
}

// Keys returns the top frame's references that have a value.
func (c *vcache) Keys() []ast.Ref {
	var out []ast.Ref
	for _, e := range c.entries[c.frames[len(c.frames)-1]:] {
		if e.value != nil {
			out = append(out, append(ast.Ref(nil), c.terms[e.start:e.start+e.n]...))
		}
	}
	return out
}

// evalState is what one evaluation needs besides its input, pooled: the stopper, the virtual
// cache, and the options that hand them to OPA (made once per state, not per evaluation).
type evalState struct {
	stop  stopper
	cache vcache
	opts  [6]rego.EvalOption // the last two, the policy's transaction and the input, set per evaluation
}

// maxPooledEntries bounds what a pooled state keeps: an evaluation that cached more (an
// author's function called with thousands of arguments) leaves its state to the collector.
const maxPooledEntries = 1024

var evalStates sync.Pool

func getEvalState() *evalState {
	if s, _ := evalStates.Get().(*evalState); s != nil {
		return s
	}
	s := &evalState{cache: vcache{index: map[vcKey]int{}}}
	s.cache.reset()
	s.opts = [6]rego.EvalOption{rego.EvalExternalCancel(&s.stop), rego.EvalVirtualCache(&s.cache), evalKeepAST, evalNoMetrics}
	return s
}

func putEvalState(s *evalState) {
	if s.reset() {
		evalStates.Put(s)
	}
}

// reset clears the state for the next evaluation, and reports whether it is worth keeping.
func (s *evalState) reset() bool {
	if len(s.cache.entries) > maxPooledEntries {
		return false
	}
	s.stop = stopper{}
	s.cache.reset()
	s.opts[4], s.opts[5] = nil, nil
	return true
}

// The options every evaluation passes: no metrics, the result term read as AST.
var (
	evalKeepAST   = rego.EvalGenerateJSON(keepAST)
	evalNoMetrics = rego.EvalMetrics(noMetrics)
)
