package authz

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/rego"
)

type cells struct{ m sync.Map }

func (c *cells) Stamp(key string) *atomic.Uint64 {
	v, _ := c.m.LoadOrStore(key, new(atomic.Uint64))
	return v.(*atomic.Uint64)
}

func TestEntryEncoding(t *testing.T) {
	t.Parallel()
	p, err := rego.New(t.Context(), nil)
	require.NoError(t, err)
	d := Decision{Allowed: true, Role: "contributor", Reasons: []Reason{{Code: "team_role", Message: "vera is contributor"}}}
	raw := encodeEntry(p.Fingerprint(), []string{"o/acme", "m/acme/vera", "p/acme/nlp"}, []uint64{1, 7, 300}, d)
	st := &cells{}
	c, ok := decodeEntry(raw, p, st)
	require.True(t, ok)
	require.Equal(t, d, c.dec)
	require.Equal(t, 3, c.n)
	require.Equal(t, []uint64{1, 7, 300}, c.seen[:3])
	require.Same(t, st.Stamp("m/acme/vera"), c.cells[1])

	other, err := rego.New(t.Context(), []rego.Module{{Name: "x.rego", Source: "package x\n\ny := 1\n"}})
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
	f.Add(encodeEntry(p.Fingerprint(), []string{"o/a"}, []uint64{3}, Decision{Role: "none", Reasons: []Reason{{Code: "x"}}}))
	f.Add([]byte{0xff, 0xff, 0xff})
	st := &cells{}
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = decodeEntry(raw, p, st)
	})
}
