package authz_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/store"
)

func Example() {
	ctx := context.Background()
	st, _ := store.Open(ctx, store.Options{}) // in-memory Badger
	defer st.Close()
	_, _ = st.Load(ctx, strings.NewReader(`
orgs:
  - name: acme
    members: {alice: owner, bob: member, vera: viewer}
    teams:
      - name: engineering
        members: {vera: contributor}
    projects:
      - name: vision
        teams: [engineering]
`))
	eng, _ := authz.New(ctx, st)
	for _, who := range []string{"alice", "bob", "vera"} {
		d, _ := eng.Authorize(ctx, authz.Request{Subject: who, Action: "runs.stop", Resource: "acme/engineering/vision"})
		fmt.Println(who, d.Allowed, d.Role, d.Reasons[0].Code)
	}
	// Output:
	// alice true admin org_override
	// bob false none restricted
	// vera true contributor team_role
}
