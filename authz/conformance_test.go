package authz_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/store"
)

// newAcme opens an in-memory store with the conformance data and an engine over it.
func newAcme(t testing.TB, opts ...authz.Option) (*authz.Engine, *store.Store) {
	t.Helper()
	st, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.LoadFile(t.Context(), conformance.DataFile())
	require.NoError(t, err)
	eng, err := authz.New(t.Context(), st, opts...)
	require.NoError(t, err)
	return eng, st
}

func TestConformanceAuthorize(t *testing.T) {
	t.Parallel()
	cases, err := conformance.Load()
	require.NoError(t, err)
	require.NotEmpty(t, cases.Authorize)
	eng, _ := newAcme(t)
	for i, c := range cases.Authorize {
		name := fmt.Sprintf("%03d %s %s %s", i, c.Subject, c.Action, c.Resource)
		d, err := eng.Authorize(t.Context(), authz.Request{Subject: c.Subject, Action: c.Action, Resource: c.Resource, Attributes: c.Attributes})
		if c.Error {
			require.ErrorIs(t, err, teamgate.ErrInvalid, name)
			continue
		}
		require.NoError(t, err, name)
		require.Equal(t, c.Allowed, d.Allowed, "%s: %+v", name, d)
		require.Equal(t, c.Role, d.Role, "%s: %+v", name, d)
		if c.Reason != "" {
			require.True(t, d.Has(c.Reason), "%s: want reason %s in %+v", name, c.Reason, d.Reasons)
		}
		require.NotZero(t, d.Revision, name)
	}
}
