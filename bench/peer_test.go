package bench

import (
	"context"
	"testing"

	"github.com/casbin/casbin/v2"

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

// decider is a peer's decision on a request: its subject, action and project (the resource
// without "org/").
type decider func(subject, action, project string) (bool, error)

// The peers as deciders over the directory in st; ctx is what OPA evaluates under.
func opaStorePeer(ctx context.Context, st *store.Store) (decider, error) {
	p, err := newPeerOPA(ctx, st)
	if err != nil {
		return nil, err
	}
	return func(s, a, proj string) (bool, error) { return p.allow(ctx, s, a, proj) }, nil
}

func opaInputPeer(ctx context.Context, st *store.Store) (decider, error) {
	p, err := newPeerOPAInput(ctx, st)
	if err != nil {
		return nil, err
	}
	return func(s, a, proj string) (bool, error) { return p.allow(ctx, s, a, proj) }, nil
}

func cedarPeer(_ context.Context, st *store.Store) (decider, error) {
	p, err := newPeerCedar(st)
	if err != nil {
		return nil, err
	}
	return func(s, a, proj string) (bool, error) { return p.allow(s, a, proj), nil }, nil
}

func mapsPeer(_ context.Context, st *store.Store) (decider, error) {
	p, err := newPeerMaps(st)
	if err != nil {
		return nil, err
	}
	return func(s, a, proj string) (bool, error) { return p.allow(s, a, proj), nil }, nil
}

// agrees checks that a peer decides 2,000 random requests on a small directory exactly as
// teamgate does, so that the comparison measures the same work, and that the sample is not
// degenerate.
func agrees(t *testing.T, seed uint64, newPeer func(context.Context, *store.Store) (decider, error)) {
	t.Helper()
	ctx := t.Context()
	small, st, eng := tiny(t, seed)
	peer, err := newPeer(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	allowed := 0
	for _, r := range requests(small, 2000) {
		d, err := eng.Authorize(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := peer(r.Subject, r.Action, r.Resource[len("org/"):])
		if err != nil {
			t.Fatal(err)
		}
		if got != d.Allowed {
			t.Fatalf("%+v: teamgate %v (%+v), peer %v", r, d.Allowed, d.Reasons, got)
		}
		if d.Allowed {
			allowed++
		}
	}
	if allowed == 0 || allowed == 2000 {
		t.Fatalf("a degenerate sample: %d of 2000 allowed", allowed)
	}
}

// benchPeer times a peer over the Small directory on the benchmark's requests (timedFunc).
func benchPeer(b *testing.B, newPeer func(context.Context, *store.Store) (decider, error)) {
	st, _ := open(b, Small)
	peer, err := newPeer(b.Context(), st)
	if err != nil {
		b.Fatal(err)
	}
	timedPeer(b, peer)
}

// timedPeer times peer on the benchmark's requests.
func timedPeer(b *testing.B, peer decider) {
	timedFunc(b, func(r authz.Request) error {
		_, err := peer(r.Subject, r.Action, r.Resource[len("org/"):])
		return err
	})
}

// TestPeerOPAAgrees: the peer policy decides the benchmark's requests as teamgate does, so the
// comparison measures the same work.
func TestPeerOPAAgrees(t *testing.T) { agrees(t, 3, opaStorePeer) }

func TestPeerCedarAgrees(t *testing.T) { agrees(t, 4, cedarPeer) }

func TestPeerOPAInputAgrees(t *testing.T) { agrees(t, 5, opaInputPeer) }

func TestPeerMapsAgrees(t *testing.T) { agrees(t, 6, mapsPeer) }

func TestPeerCasbinAgrees(t *testing.T) {
	for name, mk := range casbinVariants() {
		t.Run(name, func(t *testing.T) {
			agrees(t, 7, func(_ context.Context, st *store.Store) (decider, error) {
				p, err := mk(st)
				if err != nil {
					return nil, err
				}
				return p.allow, nil
			})
		})
	}
}

// casbinVariants are Casbin's plain enforcer and its two caching ones, loaded alike.
func casbinVariants() map[string]func(*store.Store) (*peerCasbin, error) {
	return map[string]func(*store.Store) (*peerCasbin, error){
		"plain":         func(st *store.Store) (*peerCasbin, error) { return newPeerCasbin(st, casbin.NewEnforcer) },
		"cached":        func(st *store.Store) (*peerCasbin, error) { return newPeerCasbin(st, casbin.NewCachedEnforcer) },
		"synced-cached": func(st *store.Store) (*peerCasbin, error) { return newPeerCasbin(st, casbin.NewSyncedCachedEnforcer) },
	}
}

// BenchmarkPeerOPAInput: OPA evaluating SPEC §4's project role with the facts of each request as
// input, the same requests (SPEC §9's binding comparison for BenchmarkAuthorizeRego).
// TestPeerOPAInputAgrees checks it decides as teamgate does.
func BenchmarkPeerOPAInput(b *testing.B) { benchPeer(b, opaInputPeer) }

// BenchmarkPeerMaps: the plain-Go reference over maps, the same requests (the limit).
func BenchmarkPeerMaps(b *testing.B) { benchPeer(b, mapsPeer) }

// BenchmarkPeerCasbin: Casbin (RBAC with domains) uncached, and its CachedEnforcer and
// SyncedCachedEnforcer over the same 4,096 distinct requests (after the first round every one
// is a hit, as in BenchmarkAuthorizeCachedMix).
func BenchmarkPeerCasbin(b *testing.B) {
	st, _ := open(b, Small)
	for _, name := range []string{"plain", "cached", "synced-cached"} {
		b.Run(name, func(b *testing.B) {
			peer, err := casbinVariants()[name](st)
			if err != nil {
				b.Fatal(err)
			}
			timedPeer(b, peer.allow)
		})
	}
}
