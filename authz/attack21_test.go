package authz

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/store"
)

// TestAttack21DiskTierNeverServesAnInvalidRequest: a hit validates nothing, on the claim that a
// request gets an entry only once decided (validated). A miss consults the Badger tier before it
// validates, and the Badger key is the packed form, the parts joined by NUL bytes: an action may
// hold a NUL (an author's catalog names any string), so an invalid request whose parts, joined,
// are a cached valid request's (the NUL moved from the action into the resource or owner) was
// served its decision from Badger, then cached in memory under its own key and served by L1
// hits. Each must get its typed error and leave no entry, after a restart (Badger holding the
// valid request's entry) and in the engine that stored it.
func TestAttack21DiskTierNeverServesAnInvalidRequest(t *testing.T) {
	t.Parallel()
	data := map[string]any{"teamgate": map[string]any{"actions": map[string]any{
		"runs.x\x00y": map[string]any{"kind": "project", "role": "viewer"},
		"runs.x":      map[string]any{"kind": "project", "role": "viewer"},
	}}}
	valid := []Request{
		{Subject: "bob", Action: "runs.x\x00y", Resource: "acme/vision"},
		{Subject: "bob", Action: "runs.x\x00y", Resource: "vision", Owner: "acme"},
	}
	invalid := []Request{ // each joins to a valid one's packed form
		{Subject: "bob", Action: "runs.x", Resource: "y\x00acme/vision"},
		{Subject: "bob", Action: "runs.x", Resource: "y", Owner: "acme/vision\x00"},
		{Subject: "bob", Action: "runs.x", Resource: "y\x00vision", Owner: "acme"},
		{Subject: "bob", Action: "runs.x", Resource: "y", Owner: "vision\x00acme"},
		{Subject: "bob\x00runs.x", Action: "y", Resource: "acme/vision"},
	}
	dir := t.TempDir()
	open := func() (*store.Store, *Engine) {
		st, err := store.Open(t.Context(), store.Options{Dir: dir, NoSync: true})
		require.NoError(t, err)
		e, err := New(t.Context(), st, WithData(data))
		require.NoError(t, err)
		return st, e
	}
	st, e := open()
	_, err := st.LoadFile(t.Context(), conformance.DataFile())
	require.NoError(t, err)
	for _, r := range valid {
		d, err := e.Authorize(t.Context(), r)
		require.NoError(t, err, "%q", r)
		require.True(t, d.Allowed, "%q", r)
	}
	require.NoError(t, e.Close(t.Context()))
	require.NoError(t, st.Close()) // waits for the Badger tier's writes
	st, e = open()
	defer st.Close()
	for _, r := range invalid {
		for range 3 { // a miss (Badger), then what memory holds
			d, err := e.Authorize(t.Context(), r)
			require.ErrorIs(t, err, teamgate.ErrInvalid, "%q", r)
			require.Equal(t, Decision{}, d, "%q", r)
		}
	}
	require.Zero(t, e.Stats().CacheDiskHits, "an invalid request served from Badger")
	require.Zero(t, e.Stats().CacheHits, "an invalid request served from memory")
	for _, r := range valid {
		d, err := e.Authorize(t.Context(), r)
		require.NoError(t, err, "%q", r)
		require.True(t, d.Allowed, "%q", r)
	}
	require.Equal(t, uint64(len(valid)), e.Stats().CacheDiskHits, "the valid requests still come from Badger")
}
