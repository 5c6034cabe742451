package store_test

import (
	"context"
	"fmt"

	"github.com/teamgate/teamgate/store"
)

func ExampleStore_Apply() {
	ctx := context.Background()
	st, _ := store.Open(ctx, store.Options{})
	defer st.Close()
	rev, _ := st.Apply(ctx,
		store.PutOrg{Org: store.Org{Name: "acme"}},
		store.PutMember{Org: "acme", User: "bob", Role: "member"},
		store.PutTeam{Team: store.Team{Org: "acme", Name: "eng"}},
		store.PutTeamMember{Org: "acme", Team: "eng", User: "bob", Role: "contributor"},
	)
	fmt.Println("revision", rev)

	// A batch that breaks the model changes nothing.
	_, err := st.Apply(ctx,
		store.PutMember{Org: "acme", User: "zoe", Role: "member"},
		store.PutTeamMember{Org: "acme", Team: "eng", User: "zed", Role: "viewer"},
	)
	fmt.Println(err)
	_ = st.View(func(r store.Reader) error {
		_, zoe := r.OrgRole("acme", "zoe")
		fmt.Println("revision", r.Revision(), "zoe is a member:", zoe, "bob's teams:", r.TeamRoles("acme", "bob").Map())
		return nil
	})
	// Output:
	// revision 1
	// change 1 (put_team_member): team member (must be a member of org acme) zed not found
	// revision 1 zoe is a member: false bob's teams: map[eng:contributor]
}
