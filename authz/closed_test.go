package authz_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/store"
)

// TestClosedStoreAnswersNothing: once the store is closed, every Engine call fails with
// teamgate.ErrClosed — cached answers included (an in-memory hit, a Badger hit, cached settings).
func TestClosedStoreAnswersNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	req := authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"}
	run := policy.Run{Kind: "job"}

	// warm fills every cache an engine has, checking the call works while the store is open.
	warm := func(t *testing.T, eng *authz.Engine) {
		d, err := eng.Authorize(ctx, req)
		require.NoError(t, err)
		require.True(t, d.Allowed)
		_, err = eng.EffectiveSettings(ctx, "acme/vision", "bob")
		require.NoError(t, err)
		_, err = eng.Admit(ctx, "bob", "acme/vision", run)
		require.NoError(t, err)
	}
	calls := []struct {
		name string
		call func(eng *authz.Engine) error
	}{
		{"Authorize (cached)", func(eng *authz.Engine) error { _, err := eng.Authorize(ctx, req); return err }},
		{"Authorize (not cacheable)", func(eng *authz.Engine) error {
			_, err := eng.Authorize(ctx, authz.Request{Subject: "bob", Action: "runs.stop", Resource: "acme/vision", Attributes: map[string]any{"x": 1}})
			return err
		}},
		{"AuthorizeBatch", func(eng *authz.Engine) error {
			_, err := eng.AuthorizeBatch(ctx, []authz.Request{req, req})
			return err
		}},
		{"Explain", func(eng *authz.Engine) error { _, err := eng.Explain(ctx, req); return err }},
		{"EffectiveSettings", func(eng *authz.Engine) error { _, err := eng.EffectiveSettings(ctx, "acme/vision", "bob"); return err }},
		{"Admit", func(eng *authz.Engine) error { _, err := eng.Admit(ctx, "bob", "acme/vision", run); return err }},
		{"AdmitVersion", func(eng *authz.Engine) error {
			_, err := eng.AdmitVersion(ctx, "bob", "acme/vision", "model")
			return err
		}},
		{"ListProjects", func(eng *authz.Engine) error {
			_, err := eng.ListProjects(ctx, "bob", "acme", authz.Page{})
			return err
		}},
		{"ProjectFilter", func(eng *authz.Engine) error { _, err := eng.ProjectFilter(ctx, "bob", "acme"); return err }},
		{"BulkRuns", func(eng *authz.Engine) error {
			_, err := eng.BulkRuns(ctx, "bob", "acme", "stop_runs", []authz.RunRef{{UUID: "r1", Project: "vision"}}, "")
			return err
		}},
		{"CreateProject", func(eng *authz.Engine) error {
			_, err := eng.CreateProject(ctx, "alice", "acme", authz.NewProject{Name: "fresh"})
			return err
		}},
	}

	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		eng, st := newAcme(t)
		warm(t, eng)
		require.NoError(t, st.Close())
		for _, c := range calls {
			require.ErrorIs(t, c.call(eng), teamgate.ErrClosed, c.name)
		}
		require.Zero(t, eng.Stats().CacheHits, "no in-memory hit was served")
	})
	t.Run("Badger tier", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		st, eng := openDisk(t, dir)
		_, err := st.LoadFile(ctx, conformance.DataFile())
		require.NoError(t, err)
		warm(t, eng)
		time.Sleep(50 * time.Millisecond) // let the asynchronous Badger writes land
		require.NoError(t, st.Close())

		// After a restart the entries are on disk only; a Badger hit proves they are there.
		st, eng = openDisk(t, dir)
		_, err = eng.Authorize(ctx, req)
		require.NoError(t, err)
		require.Equal(t, uint64(1), eng.Stats().CacheDiskHits)
		// A fresh engine on the same store: its only cache is the Badger tier.
		cold, err := authz.New(ctx, st)
		require.NoError(t, err)
		require.NoError(t, st.Close())
		for _, eng := range []*authz.Engine{eng, cold} {
			for _, c := range calls {
				require.ErrorIs(t, c.call(eng), teamgate.ErrClosed, c.name)
			}
		}
		require.Zero(t, cold.Stats().CacheDiskHits, "no Badger hit was served")
	})
	t.Run("replica wrapper", func(t *testing.T) {
		t.Parallel()
		st, err := store.Open(ctx, store.Options{})
		require.NoError(t, err)
		eng, err := authz.New(ctx, wrapped{st})
		require.NoError(t, err)
		_, err = st.LoadFile(ctx, conformance.DataFile())
		require.NoError(t, err)
		warm(t, eng)
		require.NoError(t, st.Close())
		for _, c := range calls {
			require.ErrorIs(t, c.call(eng), teamgate.ErrClosed, c.name)
		}
	})
}

// wrapped is a Directory that is not a *store.Store and has no PersistentCache capability.
type wrapped struct{ *store.Store }

var _ authz.Directory = wrapped{}

func (wrapped) Persistent() {} // hides the store's: wrapped is no PersistentCache

// counting is a Directory that counts snapshots.
type counting struct {
	*store.Store
	views atomic.Int64
}

func (c *counting) View(fn func(r store.Reader) error) error {
	c.views.Add(1)
	return c.Store.View(fn)
}

// TestAdmissionReadsOneSnapshot: admission reads its decision, settings, rules and subject facts
// in one View, cold or with the settings cached.
func TestAdmissionReadsOneSnapshot(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, st := newAcme(t)
	dir := &counting{Store: st}
	eng, err := authz.New(ctx, dir)
	require.NoError(t, err)
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"Admit", func() error { _, err := eng.Admit(ctx, "bob", "acme/vision", policy.Run{Kind: "job"}); return err }},
		{"AdmitVersion", func() error { _, err := eng.AdmitVersion(ctx, "bob", "acme/vision", "model"); return err }},
		{"EffectiveSettings", func() error { _, err := eng.EffectiveSettings(ctx, "acme/vision", "bob"); return err }},
		{"Admit (missing project)", func() error { _, err := eng.Admit(ctx, "bob", "acme/nope", policy.Run{Kind: "job"}); return err }},
	} {
		for range 2 { // cold, then with the settings cached
			before := dir.views.Load()
			require.NoError(t, c.call(), c.name)
			require.Equal(t, int64(1), dir.views.Load()-before, c.name)
		}
	}
}
