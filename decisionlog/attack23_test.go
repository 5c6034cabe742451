package decisionlog_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/decisionlog"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/store"
)

// TestAttack23RecheckNamesProjectWritesWhateverTheReference: a write that names only the
// project (its teams changed) is in CHANGED SINCE for every spelling of the project a request
// may use (SPEC §3): org/project, org/team/project, the dotted form, and a one-part reference
// with a context owner — and a two-part reference with an owner, which the owner does not
// change.
func TestAttack23RecheckNamesProjectWritesWhateverTheReference(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := conformance.OpenStore(t, store.Options{})
	l, err := decisionlog.Open(ctx, decisionlog.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	defer l.Close()
	eng, err := authz.New(ctx, st, authz.WithDecisionLog(l))
	require.NoError(t, err)
	reqs := []authz.Request{
		{Subject: "bob", Action: "runs.stop", Resource: "acme/vision"},
		{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"},
		{Subject: "bob", Action: "runs.stop", Resource: "acme.engineering.vision"},
		{Subject: "bob", Action: "runs.stop", Resource: "vision", Owner: "acme/engineering"},
		{Subject: "bob", Action: "runs.stop", Resource: "vision", Owner: "acme"},
		{Subject: "bob", Action: "runs.stop", Resource: "acme/vision", Owner: "acme"},
	}
	for _, r := range reqs {
		d, err := eng.Authorize(ctx, r)
		require.NoError(t, err)
		require.True(t, d.Allowed, "%+v", r)
	}
	require.NoError(t, eng.Close(ctx))
	// Only the project's record changes: bob's team no longer holds vision.
	rev, err := st.Apply(ctx, store.PutProject{Project: store.Project{Org: "acme", Name: "vision", Teams: []string{"research"}, Policy: "gpu-policy", CreatedBy: "bob"}})
	require.NoError(t, err)
	fresh, err := authz.New(ctx, st)
	require.NoError(t, err)
	var got []decisionlog.Change
	require.NoError(t, decisionlog.Recheck(ctx, l, fresh, decisionlog.Query{}, func(c decisionlog.Change) error {
		got = append(got, c)
		return nil
	}, decisionlog.WithEvents(st)))
	require.Len(t, got, len(reqs))
	for i, c := range got {
		require.Equal(t, reqs[i], c.Record.Request)
		require.False(t, c.Now.Allowed)
		require.Equal(t, []authz.Cause{{Revision: rev, Kind: "put_project"}}, c.Writes, "%+v: %s", c.Record.Request, strings.Repeat("", 0))
	}
}

