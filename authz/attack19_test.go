package authz

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// slowProducer is a decision whose producer has reserved its ring slot and not yet published it
// (a goroutine descheduled between decisionLog.reserve and publish, as in Engine.record).
type slowProducer struct {
	l    *decisionLog
	s    *logSlot
	pos  uint64
	woke bool
	req  Request
}

func reserveSlow(t *testing.T, e *Engine) *slowProducer {
	t.Helper()
	s, pos, woke := e.declog.reserve()
	require.NotNil(t, s, "a slot is free")
	return &slowProducer{l: e.declog, s: s, pos: pos, woke: woke, req: Request{Subject: "slow", Action: "runs.get", Resource: "acme/vision"}}
}

// publish finishes the slow producer's record as Engine.record does.
func (p *slowProducer) publish(e *Engine) {
	d := Decision{Role: "none", Reasons: []Reason{}, Revision: 1}
	tr := decisionTrace{path: PathCompiled, policy: e.Policy()}
	p.s.set(&p.req, &d, tr.policy, &tr, nil)
	p.s.rev.Store(d.Revision)
	p.s.minRev.Store(p.req.MinRevision)
	p.l.publish(p.s, p.pos, p.woke)
}

// subjects are the subjects of recs.
func subjects(recs []DecisionRecord) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Request.Subject)
	}
	return out
}

// TestAttack19FlushWaitsForEarlierSlots: FlushDecisionLog promises every decision logged before
// the call, but the drainer stops at the first slot not yet published. A decision that returned
// (its record published) behind a producer still writing its slot is not in the sink when Flush
// returns.
func TestAttack19FlushWaitsForEarlierSlots(t *testing.T) {
	t.Parallel()
	sink := &attackSink{}
	e := newAcmeInternal(t, WithDecisionLog(sink), WithDecisionCache(0))
	slow := reserveSlow(t, e)
	req := Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	_, err := e.Authorize(t.Context(), req) // returned: its record is queued behind slow's slot
	require.NoError(t, err)
	done := make(chan []string, 1)
	go func() {
		err := e.FlushDecisionLog(t.Context())
		sink.mu.Lock()
		defer sink.mu.Unlock()
		if err != nil {
			t.Error(err)
		}
		done <- subjects(sink.recs)
	}()
	select {
	case got := <-done: // returned while slow's slot is unpublished
		slow.publish(e)
		require.Contains(t, got, "bob", "the record of a decision returned before FlushDecisionLog")
	case <-time.After(50 * time.Millisecond): // still waiting (or slow to start): let slow publish
		slow.publish(e)
		require.Contains(t, <-done, "bob", "the record of a decision returned before FlushDecisionLog")
	}
	require.NoError(t, e.Close(t.Context()))
}

// TestAttack19CloseAccountsForReservedSlots: a record reserved before Close and published after
// the drainer's last take is neither written nor counted as dropped, and so is every record
// queued behind it: Close returns with written+dropped+failed below the records queued.
func TestAttack19CloseAccountsForReservedSlots(t *testing.T) {
	t.Parallel()
	sink := &attackSink{}
	e := newAcmeInternal(t, WithDecisionLog(sink), WithDecisionCache(0))
	slow := reserveSlow(t, e)
	req := Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	_, err := e.Authorize(t.Context(), req)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- e.Close(t.Context()) }()
	select {
	case err := <-done: // Close returned with slow's slot unpublished
		require.NoError(t, err)
		slow.publish(e)
	case <-time.After(50 * time.Millisecond):
		slow.publish(e)
		require.NoError(t, <-done)
	}
	st := e.Stats()
	require.Equal(t, uint64(2), st.DecisionLogWritten+st.DecisionLogDropped+st.DecisionLogFailed,
		"both records queued before Close are written or counted: %+v", st)
	require.Equal(t, uint64(2), st.DecisionLogWritten, "Close writes the records queued before it")
	require.ElementsMatch(t, []string{"slow", "bob"}, subjects(sink.recs))
}

// waitHookDir is a store whose WaitRevision runs hook once (a MinRevision request waits there,
// between authorize's load of the policy and its cache lookup).
type waitHookDir struct {
	*store.Store
	hook func()
}

func (d *waitHookDir) WaitRevision(ctx context.Context, rev uint64) error {
	if h := d.hook; h != nil {
		d.hook = nil
		h()
	}
	return d.Store.WaitRevision(ctx, rev)
}

// TestAttack19HitLoggedWithServedPolicy: a SetPolicy that lands between authorize's load of the
// policy and its cache lookup, with the new policy's decision already cached and stamped, makes
// the call a fast hit on the new policy's decision. With metrics (the observed path) the record
// and the span said the old policy's fingerprint: `teamgate decisions --recheck` would recheck
// it under a policy that did not decide it. Without metrics the record is the entry's (right).
func TestAttack19HitLoggedWithServedPolicy(t *testing.T) {
	t.Parallel()
	frozen := rego.Module{Name: "x.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"frozen\" if input.subject.id == \"bob\"\n"}
	for _, metrics := range []bool{false, true} {
		sink := &attackSink{}
		dir := &waitHookDir{Store: conformance.OpenStore(t, store.Options{})}
		opts := []Option{WithDecisionLog(sink)}
		if metrics {
			opts = append(opts, WithMetrics(prometheus.NewRegistry()))
		}
		e, err := New(t.Context(), dir, opts...)
		require.NoError(t, err)
		old := e.Policy()
		r := Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision", MinRevision: 1}
		dir.hook = func() {
			require.NoError(t, e.SetPolicy(t.Context(), []rego.Module{frozen}))
			for range 3 { // a miss, a slow hit that stamps, a fast hit
				_, err := e.Authorize(t.Context(), r)
				require.NoError(t, err)
			}
		}
		d, err := e.Authorize(t.Context(), r)
		require.NoError(t, err)
		require.Nil(t, dir.hook, "the hook ran")
		require.False(t, d.Allowed, "the frozen policy's decision was served")
		require.NotEqual(t, old.Fingerprint(), e.Policy().Fingerprint())
		require.NoError(t, e.Close(t.Context()))
		require.Len(t, sink.recs, 4)
		last := sink.recs[3]
		require.Equal(t, attackLine(r, d), attackLine(last.Request, last.Decision))
		require.Equal(t, e.Policy().Fingerprint(), last.Policy, "metrics %v: the record names the policy that decided", metrics)
	}
}

// hammerLine is what a call returned, or what its record says: request, decision, error.
func hammerLine(r Request, d Decision, err string) string {
	if err != "" {
		d = Decision{} // a record's: role none, the store's revision (DecisionRecord)
	}
	return fmt.Sprintf("%s|%v|%v|%s", attackLine(r, d)+fmt.Sprintf("|%d|%v|%v", r.MinRevision, r.Suggest, r.Attributes), d.Suggestions, err != "", err)
}

// TestAttack19TinyRingHammer: the smallest rings (1, 2 and 4 slots) under goroutines deciding on
// every path at once — L1 hits (runs), compiled misses, full Rego with attributes, Suggest,
// MinRevision waits, errors — while the policy is swapped back and forth: every record written is
// exactly a decision some call returned (no torn or stale slot), under the policy that made it
// (a "frozen" reason only under the frozen policy's fingerprint), and every call is written or
// counted as dropped.
func TestAttack19TinyRingHammer(t *testing.T) {
	t.Parallel()
	frozen := rego.Module{Name: "x.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"frozen\" if input.subject.id == \"bob\"\n"}
	reqs := collidingRequests()
	reqs = append(reqs,
		Request{Subject: "bob", Action: "runs.delete", Resource: "acme/vision", Attributes: map[string]any{"run": map[string]any{"created_by": "bob"}}},
		Request{Subject: "vera", Action: "runs.delete", Resource: "acme/vision", Attributes: map[string]any{"run": map[string]any{"created_by": "bob"}}},
		Request{Subject: "olga", Action: "runs.stop", Resource: "acme/engineering/vision", Suggest: true},
		Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision", Suggest: true},
		Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision", MinRevision: 1},
		Request{Subject: "bob", Action: "no.such.action", Resource: "acme/vision"},
		Request{Subject: "bob", Action: "runs.get", Resource: "acme//"},
	)
	var pols [2]*rego.Policy // plain, frozen
	fps := map[string]bool{} // fingerprint → frozen
	for i, mods := range [][]rego.Module{nil, {frozen}} {
		var err error
		pols[i], err = rego.New(t.Context(), mods)
		require.NoError(t, err)
		fps[pols[i].Fingerprint()] = i == 1
	}
	for _, size := range []int{1, 2, 4} {
		for _, metrics := range []bool{false, true} {
			sink := &attackSink{}
			opts := []Option{WithDecisionLog(sink), WithDecisionLogQueue(size)}
			if metrics {
				opts = append(opts, WithMetrics(prometheus.NewRegistry()))
			}
			e := newAcmeInternal(t, opts...)
			e.setPolicy(pols[1])
			var mu sync.Mutex
			returned := map[string]int{}
			var calls atomic.Uint64
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for g := range 3 {
				wg.Go(func() {
					for i := g * 7; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						r := reqs[i%len(reqs)]
						d, err := e.Authorize(t.Context(), r)
						calls.Add(1)
						msg := ""
						if err != nil {
							msg = err.Error()
						}
						mu.Lock()
						returned[hammerLine(r, d, msg)]++
						mu.Unlock()
					}
				})
			}
			for s := range 40 {
				e.setPolicy(pols[s%2])       // as SetPolicy, without compiling each time
				time.Sleep(time.Millisecond) // let decisions run under each policy
			}
			close(stop)
			wg.Wait()
			require.NoError(t, e.Close(t.Context()))
			st := e.Stats()
			require.Zero(t, st.DecisionLogFailed)
			require.Equal(t, calls.Load(), st.DecisionLogWritten+st.DecisionLogDropped, "size %d: every call written or dropped", size)
			require.Equal(t, int(st.DecisionLogWritten), len(sink.recs))
			for _, rec := range sink.recs {
				frozenPolicy, known := fps[rec.Policy]
				require.True(t, known, "a policy in force: %q", rec.Policy)
				line := hammerLine(rec.Request, rec.Decision, rec.Error)
				require.Positive(t, returned[line], "size %d metrics %v: a record no call returned: %s (path %s)", size, metrics, line, rec.Path)
				returned[line]--
				hasFrozen := slices.ContainsFunc(rec.Decision.Reasons, func(r Reason) bool { return r.Message == "frozen" })
				if hasFrozen || rec.Request.Subject == "bob" && rec.Error == "" && (rec.Request.Resource == "acme/vision" || rec.Request.Resource == "acme/engineering/vision") {
					require.Equal(t, frozenPolicy, hasFrozen, "size %d metrics %v: %s under policy %s (frozen %v), path %s", size, metrics, line, rec.Policy, frozenPolicy, rec.Path)
				}
			}
		}
	}
}

// TestAttack19MemberEntriesEveryPath: members whose names sit at the edge of an entry's inline
// bytes (34, 35 and 36 bytes, pairs differing in their last byte only) join, leave, rejoin under
// the same name (and another takes the freed id), roll back a batch that failed halfway, are
// simulated (Simulate: DiffPolicy and Suggest write no member) between live writes of the same
// org, and come back
// from a snapshot after a reopen: after every step the compiled path, the cached path and full
// Rego give every decision alike, and the store checks.
func TestAttack19MemberEntriesEveryPath(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	name := func(n int, last byte) string { return strings.Repeat("u", n-1) + string(last) }
	users := []string{name(34, 'a'), name(35, 'a'), name(35, 'b'), name(36, 'a'), name(36, 'b'), "bob", "vera", "z"}
	var reqs []Request
	for _, u := range users {
		for _, a := range []string{"runs.get", "runs.stop", "runs.approve"} {
			for _, r := range []string{"acme/vision", "acme/nlp", "acme/engineering/vision"} {
				reqs = append(reqs, Request{Subject: u, Action: a, Resource: r})
			}
		}
		reqs = append(reqs, Request{Subject: u, Action: "members.manage", Resource: "acme"})
	}
	var st *store.Store
	var engines [3]*Engine // compiled, cached, full Rego
	open := func(s *store.Store) {
		st = s
		var err error
		for i, opts := range [][]Option{{WithDecisionCache(0)}, {}, {WithDecisionCache(0), WithCompiledPath(false)}} {
			engines[i], err = New(ctx, st, opts...)
			require.NoError(t, err)
		}
	}
	open(conformance.OpenStore(t, store.Options{Dir: dir, NoSync: true, SnapshotRevisions: 1}))
	check := func(step string) {
		t.Helper()
		require.NoError(t, st.Check(), step)
		for round := range 2 { // the cached engine: misses, then hits
			for _, r := range reqs {
				var got [3]Decision
				for i, e := range engines {
					var err error
					got[i], err = e.Authorize(ctx, r)
					require.NoError(t, err, "%s: %+v", step, r)
				}
				require.True(t, sameDecision(got[0], got[2]), "%s: compiled %+v: %+v, full Rego %+v", step, r, got[0], got[2])
				require.True(t, sameDecision(got[1], got[2]), "%s round %d: cached %+v: %+v, full Rego %+v", step, round, r, got[1], got[2])
			}
		}
	}
	apply := func(step string, cs ...store.Change) {
		t.Helper()
		_, err := st.Apply(ctx, cs...)
		require.NoError(t, err, step)
		check(step)
	}
	simulate := func(step string) {
		t.Helper()
		_, err := engines[0].Simulate(ctx, store.DeleteTeamMember{Org: "acme", Team: "engineering", User: users[1]},
			store.DeleteMember{Org: "acme", User: users[1]}, store.PutMember{Org: "acme", User: users[2], Role: "admin"},
			store.PutMember{Org: "acme", User: users[1], Role: "owner"})
		require.NoError(t, err, step)
		check(step + ", simulated")
	}
	check("start")
	var join []store.Change
	for i, u := range users[:5] {
		join = append(join, store.PutMember{Org: "acme", User: u, Role: string(teamgate.OrgRoles()[i%4+1])},
			store.PutTeamMember{Org: "acme", Team: "engineering", User: u, Role: string(teamgate.MemberRoles()[i%4])})
	}
	apply("join", join...)
	for _, u := range users[:5] { // not a test of non-members: each joined
		d, err := engines[0].Authorize(ctx, Request{Subject: u, Action: "runs.get", Resource: "acme/engineering/vision"})
		require.NoError(t, err)
		require.NotEqual(t, "none", d.Role, "%s: %+v", u, d)
	}
	simulate("joined")
	apply("leave", store.DeleteTeamMember{Org: "acme", Team: "engineering", User: users[1]}, store.DeleteMember{Org: "acme", User: users[1]})
	apply("another takes the id", store.PutMember{Org: "acme", User: users[2] + "x", Role: "viewer"})
	apply("rejoin", store.PutMember{Org: "acme", User: users[1], Role: "admin"},
		store.PutTeamMember{Org: "acme", Team: "engineering", User: users[1], Role: "viewer"})
	simulate("rejoined")
	apply("leave and rejoin in one batch", store.DeleteTeamMember{Org: "acme", Team: "engineering", User: users[3]},
		store.DeleteMember{Org: "acme", User: users[3]}, store.PutMember{Org: "acme", User: users[3], Role: "owner"},
		store.DeleteTeamMember{Org: "acme", Team: "engineering", User: users[4]}, store.DeleteMember{Org: "acme", User: users[4]},
		store.PutMember{Org: "acme", User: users[4], Role: "viewer"})
	_, err := st.Apply(ctx, store.DeleteTeamMember{Org: "acme", Team: "engineering", User: users[2]}, store.DeleteMember{Org: "acme", User: users[2]},
		store.PutMember{Org: "acme", User: users[2], Role: "owner"}, store.PutMember{Org: "acme", User: name(35, 'c'), Role: "member"},
		store.PutMember{Org: "acme", User: users[0], Role: "no-such-role"})
	require.Error(t, err, "the batch fails at its last change")
	check("rolled back")
	simulate("rolled back")
	require.NoError(t, st.Close()) // writes the membership snapshot
	s, err := store.Open(ctx, store.Options{Dir: dir, NoSync: true, SnapshotRevisions: 1})
	require.NoError(t, err)
	open(s)
	check("reopened from the snapshot")
	apply("after the snapshot", store.DeleteTeamMember{Org: "acme", Team: "engineering", User: users[0]}, store.DeleteMember{Org: "acme", User: users[0]},
		store.PutMember{Org: "acme", User: name(35, 'd'), Role: "member"})
	require.NoError(t, st.Close())
	s, err = store.Open(ctx, store.Options{Dir: dir, NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	open(s)
	check("reopened again")
	simulate("reopened")
	apply("rejoin after reopen", store.PutMember{Org: "acme", User: users[0], Role: "manager"},
		store.PutTeamMember{Org: "acme", Team: "engineering", User: users[0], Role: "admin"})
}

// TestAttack19MemberEntriesRace: readers decide on the compiled and cached paths for members
// with names at the edge of the inline bytes while a writer has them leave and rejoin (new
// entries, reused ids) and a third goroutine simulates the same org: every answer is one of the
// two states' full Rego answers, and the race detector sees no write to an entry a reader holds.
func TestAttack19MemberEntriesRace(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := conformance.OpenStore(t, store.Options{})
	a, b := strings.Repeat("u", 34)+"a", strings.Repeat("u", 35)+"b" // 35 bytes (inline), 36 (not)
	var reqs []Request
	for _, u := range []string{a, b, a + "x"} {
		for _, r := range []string{"acme/vision", "acme/engineering/vision"} {
			reqs = append(reqs, Request{Subject: u, Action: "runs.stop", Resource: r})
		}
	}
	toggle := [2][]store.Change{
		{store.PutMember{Org: "acme", User: a, Role: "admin"}, store.PutTeamMember{Org: "acme", Team: "engineering", User: b, Role: "contributor"}},
		{store.DeleteMember{Org: "acme", User: a}, store.DeleteTeamMember{Org: "acme", Team: "engineering", User: b}},
	}
	_, err := st.Apply(ctx, store.PutMember{Org: "acme", User: b, Role: "member"})
	require.NoError(t, err)
	full, err := New(ctx, st, WithDecisionCache(0), WithCompiledPath(false))
	require.NoError(t, err)
	var want [2][]Decision
	for _, j := range []int{0, 1} {
		_, err := st.Apply(ctx, toggle[j]...)
		require.NoError(t, err)
		for _, r := range reqs {
			d, err := full.Authorize(ctx, r)
			require.NoError(t, err)
			want[j] = append(want[j], d)
		}
	}
	require.NotEqual(t, want[0], want[1])
	compiled, err := New(ctx, st, WithDecisionCache(0))
	require.NoError(t, err)
	cached, err := New(ctx, st)
	require.NoError(t, err)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, e := range []*Engine{compiled, cached} {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := i % len(reqs)
				d, err := e.Authorize(ctx, reqs[k])
				if err != nil {
					t.Error(err)
					return
				}
				if !sameDecision(d, want[0][k]) && !sameDecision(d, want[1][k]) {
					t.Errorf("%+v: %+v, neither state's %+v / %+v", reqs[k], d, want[0][k], want[1][k])
					return
				}
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := compiled.Simulate(ctx, store.DeleteTeamMember{Org: "acme", Team: "engineering", User: b},
				store.PutMember{Org: "acme", User: a + "x", Role: "owner"}); err != nil && !errors.Is(err, teamgate.ErrNotFound) {
				t.Error(err)
				return
			}
		}
	})
	for s := range 200 {
		_, err := st.Apply(ctx, toggle[s%2]...)
		require.NoError(t, err)
	}
	close(stop)
	wg.Wait()
	require.NoError(t, st.Check())
}

// panicJSON is an attribute value the attributes' rules accept (its kind is a string) whose
// MarshalJSON panics: a host's type, say, that cannot be marshalled.
type panicJSON string

func (panicJSON) MarshalJSON() ([]byte, error) { panic("panicJSON cannot be marshalled") }

// TestAttack19AttributeMarshalerDoesNotWedgeTheLog: a logged request whose attributes hold a
// value with a MarshalJSON method is decided (the policy reads the value by its kind) and logged
// without calling the method: before, the record's copy of the attributes went through
// encoding/json, so Authorize panicked after reserving its ring slot, which was then never
// published — the drainer stopped there for good (every later record dropped) and Flush and
// Close waited on it.
func TestAttack19AttributeMarshalerDoesNotWedgeTheLog(t *testing.T) {
	t.Parallel()
	sink := &attackSink{}
	e := newAcmeInternal(t, WithDecisionLog(sink))
	req := Request{Subject: "bob", Action: "runs.delete", Resource: "acme/vision", Attributes: map[string]any{"run": map[string]any{"created_by": panicJSON("bob")}}}
	want, err := New(t.Context(), e.Directory())
	require.NoError(t, err)
	wd, err := want.Authorize(t.Context(), req) // unlogged: the value is read by its kind
	require.NoError(t, err)
	var d Decision
	require.NotPanics(t, func() { d, err = e.Authorize(t.Context(), req) })
	require.NoError(t, err)
	require.Equal(t, wd, d)
	after := Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	_, err = e.Authorize(t.Context(), after)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // bounds the failure, times nothing
	defer cancel()
	require.NoError(t, e.FlushDecisionLog(ctx))
	require.NoError(t, e.Close(ctx))
	require.Len(t, sink.recs, 2)
	require.Equal(t, map[string]any{"run": map[string]any{"created_by": "bob"}}, sink.recs[0].Request.Attributes, "the value as the policy read it")
	require.Equal(t, "runs.stop", sink.recs[1].Request.Action)
}

// panicErr is an error whose Error panics (a Directory's, say).
type panicErr struct{}

func (panicErr) Error() string { panic("panicErr has no text") }

// panicWaitDir is a store whose WaitRevision fails with panicErr.
type panicWaitDir struct{ *store.Store }

func (panicWaitDir) WaitRevision(context.Context, uint64) error { return panicErr{} }

// TestAttack19ForeignPanicReservesNoSlot: when code that is not the engine's panics while a call
// is logged (here the Error of a Directory's error), the panic reaches the caller before the
// record's slot is reserved: the log goes on, and Flush and Close return (they wait for every
// slot reserved before them, which a producer that panicked in between would never publish).
func TestAttack19ForeignPanicReservesNoSlot(t *testing.T) {
	t.Parallel()
	sink := &attackSink{}
	e, err := New(t.Context(), panicWaitDir{conformance.OpenStore(t, store.Options{})}, WithDecisionLog(sink))
	require.NoError(t, err)
	require.Panics(t, func() {
		_, _ = e.Authorize(t.Context(), Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision", MinRevision: 1})
	})
	after := Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	_, err = e.Authorize(t.Context(), after)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // bounds the failure, times nothing
	defer cancel()
	require.NoError(t, e.FlushDecisionLog(ctx))
	require.NoError(t, e.Close(ctx))
	require.Len(t, sink.recs, 1)
	require.Equal(t, after, sink.recs[0].Request)
}
