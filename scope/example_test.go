package scope_test

import (
	"fmt"

	"github.com/teamgate/teamgate/scope"
)

func ExampleParseProject() {
	r, _ := scope.ParseProject("acme.engineering.vision", scope.Owner{})
	fmt.Println(r.Org, r.Team, r.Project)

	// A one-part reference takes its org and team from the context owner.
	ctx, _ := scope.ParseOwner("acme/research")
	r, _ = scope.ParseProject("nlp", ctx)
	fmt.Println(r)

	_, err := scope.ParseProject("acme//vision", scope.Owner{})
	fmt.Println(err)
	// Output:
	// acme engineering vision
	// acme/research/nlp
	// invalid project reference "acme//vision": part 2: empty name
}
