package authz

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/rego"
)

// TestLogSlotRoundTrip: every field of a record goes through a ring slot (logSlot.set, record)
// and comes back as it went in, on every path, for records kept in the slot and for those made
// whole: lengths and latencies at the slot's limits, nil and empty reasons, errors, attributes,
// Suggest and suggestions. The slot is rewritten by each case, and by a hit's run between
// cases (as the ring's laps do): nothing of one record shows in the next.
func TestLogSlotRoundTrip(t *testing.T) {
	p, err := rego.New(t.Context(), nil)
	require.NoError(t, err)
	base := Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision", Owner: "acme", MinRevision: 7}
	reasons := []Reason{{Code: rego.CodeOrgRole, Message: "bob is an admin of acme"}}
	many := make([]Reason, 255)
	for i := range many {
		many[i] = Reason{Code: "c", Message: strings.Repeat("m", i)}
	}
	long := strings.Repeat("x", 300)
	cases := []struct {
		name    string
		req     Request
		d       Decision
		path    DecisionPath
		latency time.Duration
		err     error
		inSlot  bool // kept in the slot, not made whole
	}{
		{name: "compiled", req: base, d: Decision{Allowed: true, Role: "admin", Reasons: reasons, Revision: 42}, path: PathCompiled, inSlot: true},
		{name: "denied, empty reasons", req: base, d: Decision{Role: "none", Reasons: []Reason{}, Revision: 1}, path: PathCompiled, inSlot: true},
		{name: "nil reasons", req: base, d: Decision{Role: "none", Revision: 1}, path: PathCompiled, inSlot: true},
		{name: "rego, timed", req: base, d: Decision{Role: "viewer", Reasons: reasons, Revision: 3}, path: PathRego, latency: 1<<32 - 1, inSlot: true},
		{name: "cache_l2, timed", req: base, d: Decision{Allowed: true, Role: "admin", Reasons: reasons, Revision: 3}, path: PathCacheL2, latency: time.Microsecond, inSlot: true},
		{name: "255 reasons", req: base, d: Decision{Role: "none", Reasons: many, Revision: 2}, path: PathRego, inSlot: true},
		{name: "256 reasons", req: base, d: Decision{Role: "none", Reasons: append(many, reasons...), Revision: 2}, path: PathRego},
		{name: "role of 255 bytes", req: base, d: Decision{Role: long[:255], Reasons: reasons}, path: PathCompiled, inSlot: true},
		{name: "role of 256 bytes", req: base, d: Decision{Role: long[:256], Reasons: reasons}, path: PathCompiled},
		{name: "long request strings", req: Request{Subject: long, Action: long[:255], Resource: long, Owner: long}, d: Decision{Role: "none", Reasons: reasons}, path: PathCompiled, inSlot: true},
		{name: "action of 256 bytes", req: Request{Subject: "bob", Action: long[:256], Resource: "acme/vision"}, d: Decision{Role: "none", Reasons: reasons}, path: PathCompiled},
		{name: "no owner, no MinRevision, revision 0", req: Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision"}, d: Decision{Allowed: true, Role: "viewer", Reasons: reasons}, path: PathCompiled, inSlot: true},
		{name: "latency of 2^32 ns", req: base, d: Decision{Role: "none", Reasons: reasons}, path: PathRego, latency: 1 << 32},
		{name: "attributes", req: Request{Subject: "bob", Action: "runs.delete", Resource: "acme/vision", Attributes: map[string]any{"run": map[string]any{"created_by": "bob"}}}, d: Decision{Allowed: true, Role: "admin", Reasons: reasons}, path: PathRego},
		{name: "empty attributes", req: Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision", Attributes: map[string]any{}}, d: Decision{Allowed: true, Role: "admin", Reasons: reasons}, path: PathCompiled},
		{name: "suggest", req: Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision", Suggest: true}, d: Decision{Role: "none", Reasons: reasons, Suggestions: []Suggestion{}}, path: PathRego},
		{name: "error", req: base, d: Decision{Role: "none", Reasons: []Reason{}, Revision: 9}, path: PathCompiled, err: errors.New("boom")},
	}
	var s logSlot // one slot, rewritten by each case (as the ring's laps do)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := decisionTrace{path: c.path, policy: p, latency: c.latency}
			require.Equal(t, c.inSlot, inSlot(&c.req, &c.d, &tr, c.err), "kept in the slot")
			if c.inSlot {
				s.set(&c.req, &c.d, &tr)
			} else {
				s.setFull(&c.req, &c.d, p, &tr, c.err)
			}
			s.state.Store(recordState(uint64(i)))
			got := s.record()
			want := DecisionRecord{Request: c.req, Decision: c.d, Policy: p.Fingerprint(), Path: c.path, Latency: c.latency}
			if c.err != nil {
				want.Path, want.Error = PathNone, c.err.Error()
			}
			require.Equal(t, want, got)
			if c.d.Reasons == nil {
				require.Nil(t, got.Decision.Reasons)
			} else {
				require.NotNil(t, got.Decision.Reasons)
			}
			// A hit's run at the next lap writes the first line only, and is told apart by its
			// state alone: the record's second line stays, unread.
			s.fill(&cacheEntry{}, 1, 2)
			s.state.Store(published(uint64(i) + 1))
			require.NotEqual(t, uint64(countMask), s.state.Load()&countMask, "a run is not a record")
		})
	}
}
