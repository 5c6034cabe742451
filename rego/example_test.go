package rego_test

import (
	"context"
	"fmt"

	"github.com/teamgate/teamgate/rego"
)

func ExampleTest() {
	author := rego.Module{Name: "freeze_test.rego", Source: `package freeze_test

import rego.v1

import data.teamgate.authz

test_owner_is_admin if {
	d := authz.decision with input as {
		"subject": {"id": "a", "org_role": "owner", "grant": "", "team_roles": {}},
		"action": "runs.get", "attributes": {},
		"resource": {"kind": "project", "org": "o", "project": "p", "teams": [], "restricted": false, "exists": true},
	}
	d.allow
	d.role == "admin"
}
`}
	results, _ := rego.Test(context.Background(), []rego.Module{author})
	for _, r := range results {
		fmt.Println(r.Name, r.Pass)
	}
	// Output:
	// test_owner_is_admin true
}
