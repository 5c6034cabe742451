package authz

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// attackToggle is a pair of writes that change the answers of collidingRequests back and forth.
var attackToggle = []store.Change{
	store.PutTeamMember{Org: "acme", Team: "engineering", User: "vera", Role: "contributor"},
	store.DeleteTeamMember{Org: "acme", Team: "engineering", User: "vera"},
}

// attackWants returns want[j], the uncached answers to reqs after attackToggle[j] (applied to st,
// which is left after attackToggle[0]).
func attackWants(t *testing.T, st *store.Store, reqs []Request, modules ...rego.Module) [2][]Decision {
	t.Helper()
	var want [2][]Decision
	for _, j := range []int{1, 0} {
		_, err := st.Apply(t.Context(), attackToggle[j])
		require.NoError(t, err)
		want[j] = answers(t, st, reqs, modules...)
	}
	require.NotEqual(t, want[0], want[1], "the writes change answers")
	return want
}

// TestAttackL1TinyCacheHammer: a cache far smaller than the requests (every miss evicts, words
// are rewritten, moved and stamped all the time) with every request in one probe run, readers
// racing writes that change answers: never a stale or foreign answer, no race.
func TestAttackL1TinyCacheHammer(t *testing.T) {
	t.Parallel()
	for _, size := range []int{1, 3, 9} {
		e := newAcmeInternal(t, WithDecisionCache(size))
		weakHashes(e)
		st := e.Directory().(*store.Store)
		reqs := collidingRequests()
		want := attackWants(t, st, reqs)
		hammer(t, e, reqs, func(s int) []Decision { return want[s%2] }, 60, func(s int) {
			_, err := st.Apply(t.Context(), attackToggle[s%2])
			require.NoError(t, err)
		})
	}
}

// TestAttackL1EraHammer: stamps narrowed to 2 bits of the epoch, so that every write enters a new
// era and readers' slow hits walk the index (advanceEra) while other readers take fast hits and
// stamp: never a stale answer, no race.
func TestAttackL1EraHammer(t *testing.T) {
	t.Parallel()
	for _, bits := range []uint{1, 2, 3} {
		e := newAcmeInternal(t)
		e.decisions.setEpochBits(bits)
		st := e.Directory().(*store.Store)
		reqs := collidingRequests()
		want := attackWants(t, st, reqs)
		hammer(t, e, reqs, func(s int) []Decision { return want[s%2] }, 60, func(s int) {
			_, err := st.Apply(t.Context(), attackToggle[s%2])
			require.NoError(t, err)
		})
	}
}

// TestAttackL1ManyAndNoReasons: decisions with more reasons than a word holds (never stamped),
// with none, and with a few, each answered as an uncached engine answers, on fast hits too and
// across writes that change them.
func TestAttackL1ManyAndNoReasons(t *testing.T) {
	t.Parallel()
	many := rego.Module{Name: "many.rego", Source: `package teamgate.ext

import rego.v1

deny contains sprintf("r%03d", [i]) if {
	input.subject.id == "bob"
	some i in numbers.range(1, 300)
}

deny contains sprintf("s%03d", [i]) if {
	input.subject.id == "vera"
	some i in numbers.range(1, 15)
}
`}
	e := newAcmeInternal(t, WithModules(many))
	st := e.Directory().(*store.Store)
	reqs := collidingRequests()
	want := attackWants(t, st, reqs, many)
	lens := map[int]bool{}
	for _, w := range want[0] {
		lens[len(w.Reasons)] = true
	}
	require.True(t, lens[300] && lens[maxFastReasons], "reason counts %v", lens)
	for s := range 6 {
		_, err := st.Apply(t.Context(), attackToggle[s%2])
		require.NoError(t, err)
		for round := range 3 {
			for i, r := range reqs {
				got, err := e.Authorize(t.Context(), r)
				require.NoError(t, err)
				require.True(t, sameDecision(got, want[s%2][i]), "write %d round %d %+v: got %d reasons, want %d", s, round, r, len(got.Reasons), len(want[s%2][i].Reasons))
				require.Equal(t, want[s%2][i].Reasons == nil, got.Reasons == nil, "nil reasons stay nil: %+v", r)
			}
		}
	}
	stamped := 0
	for _, r := range reqs {
		if stampedNow(e.decisions, fastKey(e, r)) {
			stamped++
		}
	}
	require.Positive(t, stamped, "fast hits happened")
}

// TestAttackL1ReasonsAppend: a caller appending to a decision's Reasons (its own copy of the
// slice header) must not write into the cached decision's array, on any kind of hit: the next
// caller's appended reason must not show through the first caller's decision.
func TestAttackL1ReasonsAppend(t *testing.T) {
	t.Parallel()
	e := newAcmeInternal(t)
	reqs := collidingRequests()
	for round := range 3 {
		for _, r := range reqs {
			a, err := e.Authorize(t.Context(), r)
			require.NoError(t, err)
			if len(a.Reasons) == 0 {
				continue
			}
			n := len(a.Reasons)
			a.Reasons = append(a.Reasons, Reason{Code: "mine", Message: "a"})
			b, err := e.Authorize(t.Context(), r)
			require.NoError(t, err)
			require.Len(t, b.Reasons, n, "round %d %+v", round, r)
			b.Reasons = append(b.Reasons, Reason{Code: "mine", Message: "b"})
			require.Equal(t, "a", a.Reasons[n].Message, "round %d %+v: the second caller's append wrote into the first's decision (cap %d, len %d)", round, r, cap(b.Reasons), n)
		}
	}
}

// TestAttackL1TwoEngines: two engines on one store, one of them swapping its policy: each answers
// as an uncached engine with its own policy, across writes and the other's swaps.
func TestAttackL1TwoEngines(t *testing.T) {
	t.Parallel()
	st := conformance.OpenStore(t, store.Options{})
	frozen := rego.Module{Name: "x.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\ndeny contains \"frozen\" if input.subject.id == \"bob\"\n"}
	a, err := New(t.Context(), st)
	require.NoError(t, err)
	b, err := New(t.Context(), st)
	require.NoError(t, err)
	reqs := collidingRequests()
	wantA := attackWants(t, st, reqs)
	wantB := attackWants(t, st, reqs, frozen)
	for s := range 8 {
		_, err := st.Apply(t.Context(), attackToggle[s%2])
		require.NoError(t, err)
		bFrozen := s%4 >= 2
		if bFrozen {
			require.NoError(t, b.SetPolicy(t.Context(), []rego.Module{frozen}))
		} else {
			require.NoError(t, b.SetPolicy(t.Context(), nil))
		}
		for range 3 {
			for i, r := range reqs {
				got, err := a.Authorize(t.Context(), r)
				require.NoError(t, err)
				require.True(t, sameDecision(got, wantA[s%2][i]), "a, step %d %+v", s, r)
				got, err = b.Authorize(t.Context(), r)
				require.NoError(t, err)
				w := wantA[s%2][i]
				if bFrozen {
					w = wantB[s%2][i]
				}
				require.True(t, sameDecision(got, w), "b, step %d %+v: got %+v want %+v", s, r, got, w)
			}
		}
	}
}

// TestAttackL1Restart: an on-disk store reopened: the Badger tier feeds L1 decisions recorded
// before the restart; they are stamped against the reopened store's epoch and never served
// after a write that changes them.
func TestAttackL1Restart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st := conformance.OpenStore(t, store.Options{Dir: dir, NoSync: true})
	reqs := collidingRequests()
	want := attackWants(t, st, reqs)
	e, err := New(t.Context(), st)
	require.NoError(t, err)
	for range 2 {
		for _, r := range reqs {
			_, err := e.Authorize(t.Context(), r)
			require.NoError(t, err)
		}
	}
	require.NoError(t, st.Close())
	for reopen := range 3 {
		st, err := store.Open(t.Context(), store.Options{Dir: dir, NoSync: true})
		require.NoError(t, err)
		e, err := New(t.Context(), st)
		require.NoError(t, err)
		s0 := reopen % 2 // the last write before this reopen
		for s := s0; s < s0+4; s++ {
			if s > s0 {
				_, err := st.Apply(t.Context(), attackToggle[s%2])
				require.NoError(t, err)
			}
			for round := range 3 {
				for i, r := range reqs {
					got, err := e.Authorize(t.Context(), r)
					require.NoError(t, err)
					require.True(t, sameDecision(got, want[s%2][i]), "reopen %d step %d round %d %+v: got %+v want %+v", reopen, s, round, r, got, want[s%2][i])
				}
			}
		}
		if reopen == 0 {
			require.Positive(t, e.Stats().CacheHits, "L1 hits")
		}
		// Leave it after toggle (s0+3)%2 = 1-s0: the next reopen starts there.
		require.NoError(t, st.Close())
	}
}

// TestAttackL1Replica: an engine on a replica store, whose only writes are a leader's (replayed
// with ApplyEvent) and snapshot restores (Restore: the whole directory in one batch, the revision
// jumping): fast hits never outlive either.
func TestAttackL1Replica(t *testing.T) {
	t.Parallel()
	leader := conformance.OpenStore(t, store.Options{})
	reqs := collidingRequests()
	want := attackWants(t, leader, reqs)
	var files [2]*store.File // the directory after attackToggle[j]
	for _, j := range []int{1, 0} {
		_, err := leader.Apply(t.Context(), attackToggle[j])
		require.NoError(t, err)
		require.NoError(t, leader.View(func(r store.Reader) error { files[j] = r.Snapshot(); return nil }))
	}
	st := conformance.OpenStore(t, store.Options{})
	_, err := st.Apply(t.Context(), attackToggle[0])
	require.NoError(t, err)
	rep, err := st.Replicate()
	require.NoError(t, err)
	e, err := New(t.Context(), st)
	require.NoError(t, err)
	check := func(s int, how string) {
		t.Helper()
		for round := range 3 {
			for i, r := range reqs {
				got, err := e.Authorize(t.Context(), r)
				require.NoError(t, err)
				require.True(t, sameDecision(got, want[s%2][i]), "%s (step %d) round %d %+v: got %+v want %+v", how, s, round, r, got, want[s%2][i])
			}
		}
	}
	check(0, "start")
	require.True(t, stampedNow(e.decisions, fastKey(e, reqs[0])), "hits are fast")
	for s := 1; s <= 6; s++ {
		if s%3 == 0 {
			_, err = rep.Restore(t.Context(), st.Revision()+10, files[s%2])
			require.NoError(t, err)
			check(s, "restore")
			continue
		}
		_, err = rep.ApplyEvent(t.Context(), store.Event{Revision: st.Revision() + 1, Changes: []store.Change{attackToggle[s%2]}})
		require.NoError(t, err)
		check(s, "replayed event")
	}
}

// attackSink keeps every record it is given.
type attackSink struct {
	mu   sync.Mutex
	recs []DecisionRecord
}

func (s *attackSink) Write(_ context.Context, records []DecisionRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, records...)
	return nil
}

// attackLine is what a decision log record says of a call, or what the call returned.
func attackLine(r Request, d Decision) string {
	return fmt.Sprintf("%s|%s|%s|%s|%v|%s|%v|%d", r.Subject, r.Action, r.Resource, r.Owner, d.Allowed, d.Role, d.Reasons, d.Revision)
}

// TestAttackL1DecisionLogHits: with a decision log, the records of fast and slow hits (made from
// the entry found at the hit's position, which a concurrent miss may have replaced meanwhile)
// are exactly the decisions the calls returned, revision included, under writes and evictions.
func TestAttackL1DecisionLogHits(t *testing.T) {
	t.Parallel()
	for _, size := range []int{7, 1000} {
		sink := &attackSink{}
		e := newAcmeInternal(t, WithDecisionCache(size), WithDecisionLog(sink), WithDecisionLogQueue(1<<16))
		weakHashes(e)
		st := e.Directory().(*store.Store)
		reqs := collidingRequests()
		var mu sync.Mutex
		returned := map[string]int{}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for g := range 2 {
			wg.Go(func() {
				for i := g; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					r := reqs[i%len(reqs)]
					d, err := e.Authorize(t.Context(), r)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					returned[attackLine(r, d)]++
					mu.Unlock()
				}
			})
		}
		for s := range 30 {
			_, err := st.Apply(t.Context(), attackToggle[s%2])
			require.NoError(t, err)
		}
		close(stop)
		wg.Wait()
		require.NoError(t, e.FlushDecisionLog(t.Context()))
		require.Zero(t, e.Stats().DecisionLogDropped)
		logged := map[string]int{}
		sink.mu.Lock()
		for _, rec := range sink.recs {
			logged[attackLine(rec.Request, rec.Decision)]++
		}
		sink.mu.Unlock()
		require.Equal(t, returned, logged, "size %d", size)
	}
}

// TestAttackL1ExpiryByTime: decisions that read an expiring team membership or grant, on every
// path (project and team space resources, org requests), stop being served at the expiry with
// nothing written, while the others stay hits; each call answers as an uncached engine does.
func TestAttackL1ExpiryByTime(t *testing.T) {
	t.Parallel()
	clock, st := expiryStore(t)
	e, err := New(t.Context(), st)
	require.NoError(t, err)
	plain, err := New(t.Context(), st, WithDecisionCache(0))
	require.NoError(t, err)
	var reqs []Request
	for _, u := range []string{"bob", "carl", "dave"} {
		for _, a := range []string{"project.get", "project.update", "project.delete", "runs.stop", "team.update", "org.get", "org.break_glass"} {
			for _, r := range []string{"a/p", "a/t/p", "a/t", "a"} {
				reqs = append(reqs, Request{Subject: u, Action: a, Resource: r})
			}
		}
	}
	changed := 0
	var first []Decision
	for step := range 8 { // half hours: the membership ends at 1h, the grant at 2h
		for round := range 3 {
			for i, r := range reqs {
				want, werr := plain.Authorize(t.Context(), r)
				got, gerr := e.Authorize(t.Context(), r)
				require.Equal(t, werr == nil, gerr == nil, "step %d %+v: %v, %v", step, r, werr, gerr)
				require.True(t, sameDecision(got, want), "step %d round %d %+v: got %+v, want %+v", step, round, r, got, want)
				if step == 0 && round == 0 {
					first = append(first, want)
				} else if round == 0 && !sameDecision(want, first[i]) {
					changed++
				}
			}
		}
		clock.Advance(30 * time.Minute)
	}
	require.Positive(t, changed, "the expiries change answers")
}

// TestAttackL1HitIsTheMissDecision: a fast hit returns the very Decision the miss returned (the
// revision aside), field for field — nil slices nil, empty ones empty — not just an equal verdict.
func TestAttackL1HitIsTheMissDecision(t *testing.T) {
	t.Parallel()
	e := newAcmeInternal(t)
	for _, r := range collidingRequests() {
		var ds [4]Decision
		for i := range ds {
			d, err := e.Authorize(t.Context(), r)
			require.NoError(t, err)
			d.Revision = 0
			ds[i] = d
		}
		require.True(t, stampedNow(e.decisions, fastKey(e, r)), "%+v", r)
		for i := 1; i < len(ds); i++ {
			require.Equal(t, ds[0], ds[i], "%+v: call %d", r, i)
			require.Equal(t, ds[0].Suggestions == nil, ds[i].Suggestions == nil, "%+v: call %d", r, i)
			require.Equal(t, ds[0].Reasons == nil, ds[i].Reasons == nil, "%+v: call %d", r, i)
		}
	}
}

// TestAttackL1LoadFile: data file loads (Load: every org the file names made equal to it, in one
// batch) that flip answers, and a load equal to the directory (which writes nothing): fast hits
// follow each.
func TestAttackL1LoadFile(t *testing.T) {
	t.Parallel()
	leader := conformance.OpenStore(t, store.Options{})
	reqs := collidingRequests()
	want := attackWants(t, leader, reqs)
	var files [2][]byte // the directory after attackToggle[j], exported
	for _, j := range []int{1, 0} {
		_, err := leader.Apply(t.Context(), attackToggle[j])
		require.NoError(t, err)
		var b bytes.Buffer
		require.NoError(t, leader.Export(t.Context(), &b))
		files[j] = b.Bytes()
	}
	e := newAcmeInternal(t)
	st := e.Directory().(*store.Store)
	for s := range 8 {
		j := s % 2
		if s%4 == 3 {
			j = (s - 1) % 2 // the same file again: nothing changes
		}
		_, err := st.Load(t.Context(), bytes.NewReader(files[j]))
		require.NoError(t, err)
		for round := range 3 {
			for i, r := range reqs {
				got, err := e.Authorize(t.Context(), r)
				require.NoError(t, err)
				require.True(t, sameDecision(got, want[j][i]), "load %d round %d %+v: got %+v want %+v", s, round, r, got, want[j][i])
			}
		}
	}
}
