package authz_test

import (
	"fmt"
	"testing"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/store"
)

// bigOrgMembers and bigOrgAllowed size issue 12's who-can case: an org of 200,000 members of
// which 200 (one in 1,000, spread over the names) are in the team of a restricted project.
const (
	bigOrgMembers = 200_000
	bigOrgAllowed = 200
)

// newBigOrg opens an in-memory store holding org "big" (bigOrgMembers members "u000000"...,
// role member; u000000 owner) and project "big/p" restricted to team "t", whose bigOrgAllowed
// members (every thousandth member, from u000500) are contributors.
func newBigOrg(b *testing.B) *authz.Engine {
	b.Helper()
	s, err := store.Open(b.Context(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	cs := []store.Change{store.PutOrg{Org: store.Org{Name: "big"}}, store.PutTeam{Team: store.Team{Org: "big", Name: "t"}}}
	for i := range bigOrgMembers {
		role := "member"
		if i == 0 {
			role = "owner"
		}
		cs = append(cs, store.PutMember{Org: "big", User: fmt.Sprintf("u%06d", i), Role: role})
		if len(cs) == 5000 {
			if _, err := s.Apply(b.Context(), cs...); err != nil {
				b.Fatal(err)
			}
			cs = cs[:0]
		}
	}
	for i := range bigOrgAllowed {
		cs = append(cs, store.PutTeamMember{Org: "big", Team: "t", User: fmt.Sprintf("u%06d", 500+1000*i), Role: "contributor"})
	}
	cs = append(cs, store.PutProject{Project: store.Project{Org: "big", Name: "p", Teams: []string{"t"}}})
	if _, err := s.Apply(b.Context(), cs...); err != nil {
		b.Fatal(err)
	}
	eng, err := authz.New(b.Context(), s)
	if err != nil {
		b.Fatal(err)
	}
	return eng
}

// BenchmarkListSubjectsBigOrgPaged measures paging who-can on the big org by 10 (issue 12): an
// op is the 21 pages of its 201 allowed subjects (the team and the owner). Skipped with -short
// (building the org takes seconds).
func BenchmarkListSubjectsBigOrgPaged(b *testing.B) {
	if testing.Short() {
		b.Skip("builds an org of 200,000 members")
	}
	eng := newBigOrg(b)
	ctx := b.Context()
	b.ReportAllocs()
	pages := 0
	for b.Loop() {
		n, pg := 0, authz.Page{Limit: 10}
		for {
			page, err := eng.ListSubjects(ctx, "runs.stop", "big/p", pg)
			if err != nil {
				b.Fatal(err)
			}
			n += len(page.Subjects)
			pages++
			if page.Next == "" {
				break
			}
			pg.After = page.Next
		}
		if n != bigOrgAllowed+1 {
			b.Fatalf("listed %d subjects, want %d", n, bigOrgAllowed+1)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(pages), "ns/page")
}
