package authz_test

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/store"
)

// TestRenamesAndReloadsNeverServeAStaleDecision: decisions and listings cached under a team's old
// name, or before a reload that revokes, are never served afterwards — neither from the memory
// tier nor from the Badger tier after a restart. Each step is compared with a fresh engine over a
// fresh store holding the same directory.
func TestRenamesAndReloadsNeverServeAStaleDecision(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	raw, err := os.ReadFile(conformance.DataFile())
	require.NoError(t, err)
	acme := strings.Replace(string(raw), "bob: {default_team: acme/engineering}", "bob: {}", 1)
	withoutBob := strings.Replace(acme, "members: {bob: contributor, olga: admin, vera: member, adam: viewer}",
		"members: {olga: admin, vera: member, adam: viewer}", 1)
	require.NotEqual(t, acme, withoutBob)
	relinked := strings.Replace(withoutBob, "policy: gpu-policy\n        members", "policy: research-only\n        members", 1)
	require.NotEqual(t, withoutBob, relinked)
	noGrant := strings.Replace(acme, "otto: {role: viewer}", "", 1)
	require.NotEqual(t, acme, noGrant)
	steps := []struct {
		name   string
		change store.Change // or
		file   string
	}{
		{name: "rename", change: store.RenameTeam{Org: "acme", From: "engineering", To: "eng"}},
		{name: "rename back", change: store.RenameTeam{Org: "acme", From: "eng", To: "engineering"}},
		{name: "reload without a team member", file: withoutBob},
		{name: "reload with a team link changed", file: relinked},
		{name: "reload without a grant", file: noGrant},
		{name: "rename again", change: store.RenameTeam{Org: "acme", From: "engineering", To: "eng"}},
		{name: "reload the original", file: acme},
	}

	subjects := []string{"alice", "adam", "bob", "vera", "olga", "beth", "otto", "bill"}
	projects := []string{"vision", "nlp", "labs", "open", "archive"}
	teams := []string{"engineering", "eng", "research"}
	decideAll := func(e *authz.Engine) map[string]string {
		out := map[string]string{}
		for _, u := range subjects {
			for _, tm := range teams {
				for _, a := range []string{"team.get", "team.update"} {
					d, err := e.Authorize(ctx, authz.Request{Subject: u, Action: a, Resource: "acme/" + tm})
					out[u+" "+a+" acme/"+tm] = fmt.Sprint(d.Allowed, d.Role, err)
				}
				for _, p := range projects {
					for _, res := range []string{"acme/" + tm + "/" + p, "acme/" + p} {
						d, err := e.Authorize(ctx, authz.Request{Subject: u, Action: "runs.create", Resource: res})
						out[u+" runs.create "+res] = fmt.Sprint(d.Allowed, d.Role, err)
					}
				}
				pg, err := e.ListProjects(ctx, u, "acme/"+tm, authz.Page{})
				out[u+" list acme/"+tm] = fmt.Sprint(pg.Projects, err)
			}
		}
		return out
	}
	dir := t.TempDir()
	open := func() (*store.Store, *authz.Engine) {
		st, err := store.Open(ctx, store.Options{Dir: dir, NoSync: true})
		require.NoError(t, err)
		eng, err := authz.New(ctx, st)
		require.NoError(t, err)
		return st, eng
	}
	st, eng := open()
	_, err = st.Load(ctx, strings.NewReader(acme))
	require.NoError(t, err)
	decideAll(eng) // fills both tiers
	for _, step := range steps {
		if step.change != nil {
			_, err = st.Apply(ctx, step.change)
		} else {
			_, err = st.Load(ctx, strings.NewReader(step.file))
		}
		require.NoError(t, err, step.name)

		var exported bytes.Buffer
		require.NoError(t, st.Export(ctx, &exported))
		fresh, err := store.Open(ctx, store.Options{})
		require.NoError(t, err)
		_, err = fresh.Load(ctx, &exported)
		require.NoError(t, err)
		ref, err := authz.New(ctx, fresh)
		require.NoError(t, err)
		want := decideAll(ref)
		require.NoError(t, fresh.Close())

		require.Equal(t, want, decideAll(eng), "%s: memory tier", step.name)
		require.NoError(t, st.Close())
		st, eng = open()
		require.Equal(t, want, decideAll(eng), "%s: Badger tier after a restart", step.name)
		require.NotZero(t, eng.Stats().CacheDiskHits, "%s: the Badger tier answered", step.name)
	}
	require.NoError(t, st.Close())
}
