// Quickstart loads a sample organization into an embedded in-memory store, shows what it holds
// and how references resolve, then asks teamgate a handful of real questions.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/scope"
	"github.com/teamgate/teamgate/store"
)

//go:embed acme.yaml
var acme string

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer) error {
	st, err := store.Open(ctx, store.Options{}) // Dir "" = in-memory Badger
	if err != nil {
		return err
	}
	defer st.Close()
	rev, err := st.Load(ctx, strings.NewReader(acme))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "loaded acme.yaml at revision %d\n", rev)
	err = st.View(func(r store.Reader) error {
		for _, org := range r.Orgs() {
			fmt.Fprintf(w, "org %s: %d members, teams %v, projects %v\n", org, len(r.Members(org)), r.Teams(org), r.Projects(org))
		}
		pv, _ := r.Project("acme", "labs")
		fmt.Fprintf(w, "acme/labs effective teams: %v (restricted %v)\n", pv.Teams.Values, pv.Teams.Restricted)
		return nil
	})
	if err != nil {
		return err
	}

	for _, s := range []string{"acme/vision", "acme.engineering.vision", "acme//vision"} {
		ref, err := scope.ParseProject(s, scope.Owner{})
		if err != nil {
			fmt.Fprintf(w, "reference %-26q -> error: %v\n", s, err)
			continue
		}
		fmt.Fprintf(w, "reference %-26q -> org=%s team=%s project=%s\n", s, ref.Org, ref.Team, ref.Project)
	}

	eng, err := authz.New(ctx, st)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "\ndecisions:")
	for _, req := range []authz.Request{
		{Subject: "alice", Action: "runs.approve", Resource: "acme/labs"},          // owner override
		{Subject: "amir", Action: "runs.get", Resource: "acme/vision"},             // team restriction
		{Subject: "otto", Action: "runs.get", Resource: "acme/engineering/vision"}, // outsider grant
		{Subject: "vera", Action: "runs.stop", Resource: "acme/vision"},            // insufficient role
		{Subject: "vera", Action: "runs.stop", Resource: "acme/nlp"},               // team role raises
		{Subject: "bob", Action: "runs.delete", Resource: "acme/vision", Attributes: map[string]any{"run": map[string]any{"created_by": "bob"}}},
	} {
		d, err := eng.Authorize(ctx, req)
		if err != nil {
			return err
		}
		verdict := "deny "
		if d.Allowed {
			verdict = "allow"
		}
		fmt.Fprintf(w, "  %s %-5s %-12s %-24s role=%-11s %s: %s\n", verdict, req.Subject, req.Action, req.Resource, d.Role, d.Reasons[0].Code, d.Reasons[0].Message)
	}

	page, err := eng.ListProjects(ctx, "bob", "", authz.Page{})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nbob's default team space %s: %v\n", page.Owner, page.Projects)

	adm, err := eng.Admit(ctx, "bob", "acme/vision", policy.Run{Kind: "job", Resources: map[string]float64{"gpu": 16}})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "admit bob a 16-GPU job in acme/vision: allowed=%v queue=%s presets=%v\n", adm.Allowed, adm.Queue, adm.Presets)
	for _, v := range adm.Violations {
		fmt.Fprintf(w, "  violation %s: %s\n", v.Field, v.Message)
	}
	return nil
}
