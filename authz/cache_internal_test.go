package authz

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

// trackedDeps returns the store and the Deps of reading vera's facts on acme/nlp.
func trackedDeps(t testing.TB) (*store.Store, store.Deps) {
	st, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.LoadFile(t.Context(), "../testdata/conformance/acme.yaml")
	require.NoError(t, err)
	var d store.Deps
	require.NoError(t, st.View(func(r store.Reader) error {
		r = r.Track(&d)
		r.Org("acme")
		r.OrgRole("acme", "vera")
		r.Project("acme", "nlp")
		return nil
	}))
	return st, d
}

func TestEntryEncoding(t *testing.T) {
	t.Parallel()
	p, err := rego.New(t.Context(), nil)
	require.NoError(t, err)
	st, deps := trackedDeps(t)
	d := Decision{Allowed: true, Role: "contributor", Reasons: []Reason{{Code: "team_role", Message: "vera is contributor"}}}
	raw := encodeEntry(p.Fingerprint(), &deps, d)
	c, ok := decodeEntry(raw, p, st)
	require.True(t, ok)
	require.Equal(t, d, c.dec)
	require.Equal(t, 3, c.deps.Len())
	require.True(t, c.deps.Current())
	_, err = st.Apply(t.Context(), store.PutMember{Org: "acme", User: "vera", Role: "admin"})
	require.NoError(t, err)
	require.False(t, c.deps.Current(), "the decoded entry watches the stamps it was encoded with")

	other, err := rego.New(t.Context(), []rego.Module{{Name: "x.rego", Source: "package teamgate.ext\n\ny := 1\n"}})
	require.NoError(t, err)
	_, ok = decodeEntry(raw, other, st)
	require.False(t, ok, "another policy's entry")
	for i := range raw {
		_, _ = decodeEntry(raw[:i], p, st) // truncated: never panics
	}
}

func FuzzDecodeEntry(f *testing.F) {
	p, err := rego.New(f.Context(), nil)
	if err != nil {
		f.Fatal(err)
	}
	st, deps := trackedDeps(f)
	f.Add(encodeEntry(p.Fingerprint(), &deps, Decision{Role: "none", Reasons: []Reason{{Code: "x"}}}))
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = decodeEntry(raw, p, st)
	})
}
