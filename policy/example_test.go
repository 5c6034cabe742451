package policy_test

import (
	"fmt"

	"github.com/teamgate/teamgate/policy"
)

func ExampleMerge() {
	e := policy.Merge(policy.Inputs{
		Org:     policy.OrgDefaults{Queue: "cpu/default", ArchivedDeletionInterval: 30},
		Policy:  &policy.Named{Name: "gpu", Settings: policy.Settings{Queues: []string{"gpu/a100", "gpu/h100"}, Queue: "gpu/a100"}},
		Project: policy.Settings{Queues: []string{"gpu/h100"}},
	})
	fmt.Println(e.Queues.Values, e.Queues.Source)
	fmt.Println(e.Queue.Value, e.Queue.Source)
	fmt.Println(e.ArchivedDeletionInterval.Value, e.ArchivedDeletionInterval.Source)
	for _, c := range e.Conflicts {
		fmt.Println("conflict:", c.Message)
	}
	// Output:
	// [gpu/h100] policy:gpu∩project
	//  unset
	// 30 org
	// conflict: default queue gpu/a100 from policy:gpu skipped: not in queues [gpu/h100]
	// conflict: default queue cpu/default from org skipped: not in queues [gpu/h100]
}
