package bench

import (
	"testing"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/store"
)

// tiny is a scenario small enough to check a peer against teamgate request by request.
func tiny(t *testing.T, seed uint64) (Scenario, *store.Store, *authz.Engine) {
	t.Helper()
	sc := Scenario{Users: 300, Teams: 20, Projects: 100, Restricted: 0.4, TeamsPerUser: 3, Outsiders: 30, Seed: seed}
	st, err := store.Open(t.Context(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Apply(t.Context(), sc.Changes()...); err != nil {
		t.Fatal(err)
	}
	eng, err := authz.New(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	return sc, st, eng
}

// TestPeerOPAAgrees: the peer policy decides the benchmark's requests as teamgate does, so the
// comparison measures the same work.
func TestPeerOPAAgrees(t *testing.T) {
	ctx := t.Context()
	small, st, eng := tiny(t, 3)
	peer, err := newPeerOPA(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range requests(small, 2000) {
		d, err := eng.Authorize(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := peer.allow(ctx, r.Subject, r.Action, r.Resource[len("org/"):])
		if err != nil {
			t.Fatal(err)
		}
		if got != d.Allowed {
			t.Fatalf("%+v: teamgate %v (%+v), peer %v", r, d.Allowed, d.Reasons, got)
		}
	}
}

func TestPeerCedarAgrees(t *testing.T) {
	ctx := t.Context()
	small, st, eng := tiny(t, 4)
	peer, err := newPeerCedar(st)
	if err != nil {
		t.Fatal(err)
	}
	allowed := 0
	for _, r := range requests(small, 2000) {
		d, err := eng.Authorize(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if got := peer.allow(r.Subject, r.Action, r.Resource[len("org/"):]); got != d.Allowed {
			t.Fatalf("%+v: teamgate %v (%+v), cedar %v", r, d.Allowed, d.Reasons, got)
		}
		if d.Allowed {
			allowed++
		}
	}
	if allowed == 0 || allowed == 2000 {
		t.Fatalf("a degenerate sample: %d of 2000 allowed", allowed)
	}
}
