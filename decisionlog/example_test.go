package decisionlog_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/decisionlog"
	"github.com/teamgate/teamgate/store"
)

func Example() {
	ctx := context.Background()
	st, _ := store.Open(ctx, store.Options{})
	defer st.Close()
	_, _ = st.Load(ctx, strings.NewReader(`
orgs:
  - name: acme
    members: {alice: owner, bob: member}
    teams:
      - name: engineering
        members: {bob: contributor}
    projects:
      - name: vision
        teams: [engineering]
`))
	dl, _ := decisionlog.Open(ctx, decisionlog.Options{}) // Dir "" keeps it in memory
	defer dl.Close()
	eng, _ := authz.New(ctx, st, authz.WithDecisionLog(dl))
	for _, who := range []string{"alice", "bob"} {
		_, _ = eng.Authorize(ctx, authz.Request{Subject: who, Action: "runs.stop", Resource: "acme/vision"})
	}
	_ = eng.Close(ctx) // flushes the log's queue into dl

	// bob leaves the team: his decision would now be a deny.
	_, _ = st.Apply(ctx, store.DeleteTeamMember{Org: "acme", Team: "engineering", User: "bob"})
	now, _ := authz.New(ctx, st) // no log: the rechecks are not logged
	_ = decisionlog.Recheck(ctx, dl, now, decisionlog.Query{}, func(c decisionlog.Change) error {
		fmt.Println(c.Record.Request.Subject, c.Record.Request.Action, c.Record.Decision.Allowed, "→", c.Now.Allowed, c.Now.Reasons[0].Code)
		return nil
	})
	_ = dl.Query(ctx, decisionlog.Query{Subject: "alice"}, func(r authz.DecisionRecord) error {
		fmt.Println(r.Request.Subject, r.Decision.Allowed, r.Path, r.Decision.Reasons[0].Code)
		return nil
	})
	// Output:
	// bob runs.stop true → false restricted
	// alice true compiled org_override
}
