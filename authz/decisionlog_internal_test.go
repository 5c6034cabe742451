package authz

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/rego"
)

// TestLogSlotRoundTrip: every field of a record goes through a ring slot (Engine.record, take)
// and comes back as it went in, on every path, for records kept in the slot and for those made
// whole: lengths and latencies at the slot's limits, nil and empty reasons, errors, attributes,
// Suggest and suggestions, a cell's (one line: compiled decisions, each traced with the table's
// cell that decided it) and long, reserved in one CAS or the long way; each field of either
// meta word at its limit alone and all at once (no bleed into a neighbour), every role, NUL and
// bytes that are not UTF-8. The ring has one slot, rewritten by each case and by a hit's run
// between cases (its second line): nothing of one record shows in the next, and a record is
// told from a run by its states alone.
func TestLogSlotRoundTrip(t *testing.T) {
	e := newAcmeInternal(t)
	p := e.Policy()
	e.declog = &decisionLog{} // a ring without its drainer: the test takes the records
	e.declog.ring.init(1)
	batch := make([]DecisionRecord, 0, 4)
	take := func() DecisionRecord {
		t.Helper()
		b := e.declog.ring.take(batch[:0], time.Time{})
		require.Len(t, b, 1)
		return b[0]
	}
	hit := &cacheEntry{logKey: "carol\x00runs.get\x00acme/nlp\x00acme", entry: cached{dec: Decision{Allowed: true, Role: "viewer", Reasons: []Reason{{Code: rego.CodeTeamRole, Message: "m"}}}, policy: p}}
	plain := Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	base := Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision", Owner: "acme", MinRevision: 7}
	reasons := []Reason{{Code: rego.CodeOrgRole, Message: "bob is an admin of acme"}}
	many := make([]Reason, 16)
	for i := range many {
		many[i] = Reason{Code: "c", Message: strings.Repeat("m", i)}
	}
	long := strings.Repeat("x", 70000)
	ff := strings.Repeat("\xff", 70000)
	lastRole := string(teamgate.OrgRoles()[len(teamgate.OrgRoles())-1])
	cells := tableCells(t, p) // each role a cell gives, allowed and denied, with 1 to 5 reasons
	cell := cells[0]
	cases := []struct {
		name    string
		req     Request
		d       Decision
		path    DecisionPath
		latency time.Duration
		err     error
		kind    uint64    // the slot's: a cell's (one line), long or made whole (full)
		cell    *cellCase // the compiled decision's cell (req.Action and d are the cell's)
	}{
		{name: "compiled", req: plain, d: Decision{Allowed: true, Role: "admin", Reasons: reasons, Revision: 42}, path: PathCompiled, kind: kindLong},
		{name: "compiled, owner", req: Request{Subject: "bob", Action: "runs.stop", Resource: "engineering/vision", Owner: "acme"}, d: Decision{Allowed: true, Role: "admin", Reasons: reasons, Revision: 42}, path: PathCompiled, kind: kindLong},
		{name: "compiled, MinRevision", req: Request{Subject: "bob", Action: "runs.stop", Resource: "acme/vision", MinRevision: 3}, d: Decision{Allowed: true, Role: "admin", Reasons: reasons, Revision: 42}, path: PathCompiled, kind: kindLong},
		{name: "compiled, an org role", req: plain, d: Decision{Role: "billing", Reasons: reasons, Revision: 1}, path: PathCompiled, kind: kindLong},
		{name: "denied, empty reasons", req: plain, d: Decision{Role: "none", Reasons: []Reason{}, Revision: 1}, path: PathCompiled, kind: kindLong},
		{name: "nil reasons", req: plain, d: Decision{Role: "none", Revision: 1}, path: PathCompiled, kind: kindLong},
		{name: "role no index names", req: plain, d: Decision{Role: "auditor", Reasons: reasons}, path: PathCompiled, kind: kindLong},
		{name: "empty role", req: base, d: Decision{Reasons: reasons}, path: PathCompiled, kind: kindLong},
		{name: "owner and MinRevision", req: base, d: Decision{Allowed: true, Role: "admin", Reasons: reasons, Revision: 42}, path: PathCompiled, kind: kindLong},
		{name: "rego, timed", req: plain, d: Decision{Role: "viewer", Reasons: reasons, Revision: 3}, path: PathRego, latency: 1<<25 - 1, kind: kindLong},
		{name: "cache_l2, timed", req: base, d: Decision{Allowed: true, Role: "admin", Reasons: reasons, Revision: 3}, path: PathCacheL2, latency: time.Microsecond, kind: kindLong},
		{name: "15 reasons", req: plain, d: Decision{Role: "none", Reasons: many[:15], Revision: 2}, path: PathCompiled, kind: kindLong},
		{name: "16 reasons", req: plain, d: Decision{Role: "none", Reasons: many, Revision: 2}, path: PathRego, kind: kindFull},
		{name: "role of 255 bytes", req: base, d: Decision{Role: long[:255], Reasons: reasons}, path: PathCompiled, kind: kindLong},
		{name: "role of 256 bytes", req: base, d: Decision{Role: long[:256], Reasons: reasons}, path: PathCompiled, kind: kindFull},
		{name: "longest request strings", req: Request{Subject: long[:255], Action: long[:255], Resource: long[:511], Owner: long[:65535]}, d: Decision{Role: "none", Reasons: reasons}, path: PathCompiled, kind: kindLong},
		{name: "subject of 256 bytes", req: Request{Subject: long[:256], Action: "runs.get", Resource: "acme/vision"}, d: Decision{Role: "none", Reasons: reasons}, path: PathCompiled, kind: kindFull},
		{name: "action of 256 bytes", req: Request{Subject: "bob", Action: long[:256], Resource: "acme/vision"}, d: Decision{Role: "none", Reasons: reasons}, path: PathCompiled, kind: kindFull},
		{name: "resource of 512 bytes", req: Request{Subject: "bob", Action: "runs.get", Resource: long[:512]}, d: Decision{Role: "none", Reasons: reasons}, path: PathCompiled, kind: kindFull},
		{name: "owner of 65,536 bytes", req: Request{Subject: "bob", Action: "runs.get", Resource: "vision", Owner: long[:65536]}, d: Decision{Role: "none", Reasons: reasons}, path: PathCompiled, kind: kindFull},
		{name: "no owner, no MinRevision, revision 0", req: Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision"}, d: Decision{Allowed: true, Role: "viewer", Reasons: reasons}, path: PathCompiled, kind: kindLong},
		{name: "latency of 2^25 ns", req: plain, d: Decision{Role: "none", Reasons: reasons}, path: PathRego, latency: 1 << 25, kind: kindFull},
		{name: "attributes", req: Request{Subject: "bob", Action: "runs.delete", Resource: "acme/vision", Attributes: map[string]any{"run": map[string]any{"created_by": "bob"}}}, d: Decision{Allowed: true, Role: "admin", Reasons: reasons}, path: PathRego, kind: kindFull},
		{name: "empty attributes", req: Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision", Attributes: map[string]any{}}, d: Decision{Allowed: true, Role: "admin", Reasons: reasons}, path: PathCompiled, kind: kindFull},
		{name: "suggest", req: Request{Subject: "bob", Action: "runs.get", Resource: "acme/vision", Suggest: true}, d: Decision{Role: "none", Reasons: reasons, Suggestions: []Suggestion{}}, path: PathRego, kind: kindFull},
		{name: "error", req: base, d: Decision{Role: "none", Reasons: []Reason{}, Revision: 9}, path: PathCompiled, err: errors.New("boom"), kind: kindFull},
		// Each field of a short record's meta at its limit alone, the others zero, then all at
		// once: no field bleeds into its neighbour (bytes 0xff, which no other case holds).
		{name: "short: subject of 255 bytes alone", req: Request{Subject: ff[:255]}, d: Decision{Role: "none"}, path: PathCompiled, kind: kindLong},
		{name: "short: resource of 511 bytes alone", req: Request{Resource: ff[:511]}, d: Decision{Role: "none"}, path: PathCompiled, kind: kindLong},
		{name: "short: action of 255 bytes alone", req: Request{Action: ff[:255]}, d: Decision{Role: "none"}, path: PathCompiled, kind: kindLong},
		{name: "short: 15 reasons alone", req: Request{}, d: Decision{Role: "none", Reasons: many[:15]}, path: PathCompiled, kind: kindLong},
		{name: "short: latency of 2^25-1 ns alone", req: Request{}, d: Decision{Role: "none"}, path: PathCompiled, latency: 1<<25 - 1, kind: kindLong},
		{name: "short: allowed alone", req: Request{}, d: Decision{Allowed: true, Role: "none"}, path: PathCompiled, kind: kindLong},
		{name: "short: every field at its limit", req: Request{Subject: ff[:255], Action: ff[:255], Resource: ff[:511]},
			d: Decision{Allowed: true, Role: lastRole, Reasons: many[:15], Revision: math.MaxUint64}, path: PathCompiled, latency: 1<<25 - 1, kind: kindLong},
		{name: "long: every field at its limit", req: Request{Subject: ff[:255], Action: ff[:255], Resource: ff[:511], Owner: ff[:65535], MinRevision: math.MaxUint64},
			d: Decision{Allowed: true, Role: ff[:255], Reasons: many[:15], Revision: math.MaxUint64}, path: PathCompiled, latency: 1<<25 - 1, kind: kindLong},
		{name: "short: NUL and bytes that are not UTF-8", req: Request{Subject: "a\x00b", Action: "\x00", Resource: "\xff\xfe\x00"}, d: Decision{Role: "none", Reasons: []Reason{{Code: "\x00", Message: "\xff"}}}, path: PathCompiled, kind: kindLong},
		{name: "long: NUL in owner and role", req: Request{Subject: "a", Action: "b", Resource: "c", Owner: "\x00\x00"}, d: Decision{Role: "x\x00y", Reasons: reasons}, path: PathCompiled, kind: kindLong},
		{name: "latency of 2^25+1 ns", req: plain, d: Decision{Role: "admin", Reasons: reasons}, path: PathCompiled, latency: 1<<25 + 1, kind: kindFull},
		{name: "cache_l1 with metrics", req: plain, d: Decision{Role: "admin", Reasons: reasons, Revision: 5}, path: PathCacheL1, latency: 300, kind: kindLong},

		// A cell's record: a compiled decision traced with its cell. Each field of its meta word
		// at its limit alone, then all at once, and one past each limit.
		{name: "cell", req: plain, d: Decision{Revision: 42}, kind: kindCell, cell: cell},
		{name: "cell: subject of 255 bytes alone", req: Request{Subject: ff[:255]}, kind: kindCell, cell: cell},
		{name: "cell: resource of 511 bytes alone", req: Request{Resource: ff[:511]}, kind: kindCell, cell: cell},
		{name: "cell: latency of 2^45-1 ns alone", latency: 1<<45 - 1, kind: kindCell, cell: cell},
		{name: "cell: revision 2^64-1 alone", d: Decision{Revision: math.MaxUint64}, kind: kindCell, cell: cell},
		{name: "cell: every field at its limit", req: Request{Subject: ff[:255], Resource: ff[:511]}, d: Decision{Revision: math.MaxUint64}, latency: 1<<45 - 1, kind: kindCell, cell: cell},
		{name: "cell: NUL and bytes that are not UTF-8", req: Request{Subject: "a\x00b", Resource: "\xff\xfe\x00"}, kind: kindCell, cell: cell},
		{name: "cell: empty strings, revision 0", kind: kindCell, cell: cell},
		{name: "cell: nil reasons", d: Decision{Revision: 3}, kind: kindCell, cell: &cellCase{v: cell.v, p: cell.p, nilReasons: true}},
		{name: "cell: subject of 256 bytes", req: Request{Subject: long[:256], Resource: "acme/vision"}, kind: kindFull, cell: cell},
		{name: "cell: resource of 512 bytes", req: Request{Subject: "bob", Resource: long[:512]}, kind: kindFull, cell: cell},
		{name: "cell: latency of 2^45 ns", req: plain, latency: 1 << 45, kind: kindFull, cell: cell},
		{name: "cell: latency of 2^25 ns", req: plain, latency: 1 << 25, kind: kindCell, cell: cell},
		{name: "cell: owner", req: Request{Subject: "bob", Resource: "vision", Owner: "acme"}, d: Decision{Revision: 4}, kind: kindLong, cell: cell},
		{name: "cell: MinRevision", req: Request{Subject: "bob", Resource: "acme/vision", MinRevision: 3}, d: Decision{Revision: 4}, kind: kindLong, cell: cell},
		{name: "cell: empty attributes", req: Request{Subject: "bob", Resource: "acme/vision", Attributes: map[string]any{}}, kind: kindFull, cell: cell},
		{name: "cell: error", req: plain, err: errors.New("boom"), kind: kindFull, cell: cell},
	}
	for _, c := range cells { // every cell kept: each role, allowed and denied, each number of reasons
		cases = append(cases, struct {
			name    string
			req     Request
			d       Decision
			path    DecisionPath
			latency time.Duration
			err     error
			kind    uint64
			cell    *cellCase
		}{name: "cell: " + c.String(), req: plain, d: Decision{Revision: 7}, kind: kindCell, cell: c})
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := decisionTrace{path: c.path, policy: p, latency: c.latency}
			if c.cell != nil { // as decideIn traces a compiled decision: d and the action are the cell's
				v := c.cell.v
				tr.path, tr.policy, tr.verdict, c.path, c.req.Action = PathCompiled, c.cell.p, v, PathCompiled, v.Action()
				c.d.Allowed, c.d.Role, c.d.Reasons = v.Allow(), v.Role(), nil
				if !c.cell.nilReasons {
					c.d.Reasons = make([]Reason, v.NumCodes())
					for j := range c.d.Reasons {
						c.d.Reasons[j] = Reason{Code: v.Code(j), Message: fmt.Sprintf("reason %d of %s", j, c.name)}
					}
				}
			}
			if c.cell == nil {
				require.Equal(t, c.kind != kindFull, inSlot(&c.req, &c.d, &tr, c.err), "kept in the slot")
			}
			if i%2 == 1 { // every other record reserved the long way (reserve, publish)
				e.declog.ring.alert.Store(0)
			}
			e.record(&c.req, &c.d, &tr, c.err)
			require.Equal(t, c.kind, e.declog.ring.slotAt(0).meta&kindMask, "kind")
			got := take()
			want := DecisionRecord{Request: c.req, Decision: c.d, Policy: tr.policy.Fingerprint(), Path: c.path, Latency: c.latency}
			if c.kind == kindCell {
				require.Equal(t, c.cell.v, *e.declog.ring.slotAt(0).cell(), "the cell kept")
			}
			if c.err != nil { // the call's error, and the decision a failed call returns
				want.Path, want.Error = PathNone, c.err.Error()
				want.Decision = Decision{Role: "none", Reasons: []Reason{}, Revision: e.dir.Revision()}
			}
			require.Equal(t, want, got)
			if c.d.Reasons == nil {
				require.Nil(t, got.Decision.Reasons)
			} else {
				require.NotNil(t, got.Decision.Reasons)
			}
			// A hit's run at the next lap, over the record's first line.
			e.declog.openRun(hit, &hit.logRun[i%logRunStripes], uint64(i+100), uint64(i))
			require.Equal(t, DecisionRecord{
				Request:  Request{Subject: "carol", Action: "runs.get", Resource: "acme/nlp", Owner: "acme", MinRevision: uint64(i)},
				Decision: Decision{Allowed: true, Role: "viewer", Reasons: hit.entry.dec.Reasons, Revision: uint64(i + 100)},
				Policy:   p.Fingerprint(), Path: PathCacheL1,
			}, take())
		})
	}
}

// cellCase is a decision table cell for TestLogSlotRoundTrip, of policy p.
type cellCase struct {
	v          rego.VerdictView
	p          *rego.Policy
	nilReasons bool // the decision's Reasons are nil (a compiled decision's never are)
}

func (c *cellCase) String() string {
	return fmt.Sprintf("%s allowed %v role %q, %d reasons, policy %.6s", c.v.Action(), c.v.Allow(), c.v.Role(), c.v.NumCodes(), c.p.Fingerprint())
}

// tableCells asks the tables of p and of an author's policy (extension reasons with their own
// messages, several at once; an action named with NUL) for cells of several actions and role
// facts, and returns one of each (policy, allowed, role, number of reasons) they gave, the first
// of p's runs.stop allowed.
func tableCells(t *testing.T, p *rego.Policy) []*cellCase {
	t.Helper()
	ext, err := rego.New(t.Context(), []rego.Module{{Name: "ext.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\n" +
		`deny contains "frozen" if input.subject.org_role == "viewer"` + "\n" +
		`deny contains "noted" if input.subject.org_role == "viewer"` + "\n" +
		`deny contains "logged" if input.subject.org_role == "viewer"` + "\n" +
		`deny contains "audited" if { input.subject.org_role == "viewer"; input.subject.team_role != "" }` + "\n" +
		`deny contains "held" if { input.subject.org_role == "viewer"; input.subject.grant != "" }` + "\n" +
		`allow contains "by grant" if { input.subject.org_role == "outsider"; input.subject.grant == "admin" }` + "\n"}},
		map[string]any{"teamgate": map[string]any{"actions": map[string]any{"runs.x\x00y": map[string]any{"kind": "project", "role": "viewer"}}}})
	require.NoError(t, err)
	require.NotNil(t, ext.Table(), ext.NoTable())
	seen := map[string]bool{}
	var out []*cellCase
	for _, pol := range []*rego.Policy{p, ext} {
		for _, action := range []string{"runs.stop", "runs.get", "project.delete", "org.update", "team.update", "runs.x\x00y"} {
			spec, ok := pol.Spec(action)
			if !ok && pol == p && action == "runs.x\x00y" {
				continue
			}
			require.True(t, ok, action)
			for org := range uint8(8) {
				for grant := range uint8(5) {
					for teams := range uint8(16) {
						for _, exists := range []bool{true, false} {
							v, err := pol.Table().VerdictOfCodes(t.Context(), spec, &rego.Codes{Exists: exists, OrgRole: org, Grant: grant, TeamRoles: teams}, 0)
							require.NoError(t, err)
							require.Equal(t, action, v.Action(), "the cell names its action")
							require.Equal(t, pol.Fingerprint(), v.Policy(), "the cell names its policy")
							c := &cellCase{v: v, p: pol}
							if k := fmt.Sprint(pol.Fingerprint(), v.Action() == "runs.x\x00y", v.Allow(), v.Role(), v.NumCodes()); !seen[k] {
								seen[k] = true
								out = append(out, c)
							}
						}
					}
				}
			}
		}
	}
	require.Equal(t, 5, slices.MaxFunc(out, func(a, b *cellCase) int { return a.v.NumCodes() - b.v.NumCodes() }).v.NumCodes(), "cells of 5 reasons")
	first := slices.IndexFunc(out, func(c *cellCase) bool { return c.v.Action() == "runs.stop" && c.v.Allow() })
	require.GreaterOrEqual(t, first, 0)
	out[0], out[first] = out[first], out[0]
	return out
}

// TestLogRunLostRace: a hit whose compare-and-swap lost to another core's hit on the same run
// (joins false: the state moved between its load and the CAS) joins that run through openRun
// rather than start one, so a hot request on several cores takes a slot per drain, not a slot
// per lost race; one the run no longer fits (sealed, another revision) starts a run.
func TestLogRunLostRace(t *testing.T) {
	p := newAcmeInternal(t).Policy()
	l := &decisionLog{} // a ring without its drainer: the test takes the records
	l.ring.init(8)
	q := &l.ring
	en := &cacheEntry{logKey: "bob\x00runs.stop\x00acme/vision\x00", entry: cached{dec: Decision{Allowed: true, Role: "member"}, policy: p}}
	hit := func(rev uint64) {
		if s, st, run := q.runOf(&en.logRun[0]); !s.joins(st, run, rev, 0) {
			l.openRun(en, &en.logRun[0], rev, 0)
		}
	}
	hit(5) // opens the run at position 0
	hit(5)
	require.EqualValues(t, 1, q.tail.Load(), "one run")
	s, st, run := q.runOf(&en.logRun[0])
	s.runState.Add(1) // another core's hit joins between this hit's load and its CAS
	require.False(t, s.joins(st, run, 5, 0), "the CAS lost")
	l.openRun(en, &en.logRun[0], 5, 0)
	require.EqualValues(t, 1, q.tail.Load(), "the hit that lost joined the run: no slot taken")
	hit(6) // another revision: a run of its own
	require.EqualValues(t, 2, q.tail.Load())
	recs := q.take(make([]DecisionRecord, 0, 16), time.Time{})
	require.Len(t, recs, 5, "the four hits at 5, the one at 6")
	for i, r := range recs {
		require.Equal(t, uint64(5+i/4), r.Decision.Revision, "record %d", i)
		require.Equal(t, "bob", r.Request.Subject)
	}
	hit(6) // the run at 6 is sealed (taken): a new one
	require.EqualValues(t, 3, q.tail.Load())
}
