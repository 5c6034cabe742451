// Package bench holds teamgate's cross-package benchmarks on generated directories. It is its
// own module so that peer engines measured beside teamgate never enter the library's
// dependencies. Results live in RESULTS.md.
package bench

import (
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"

	"github.com/teamgate/teamgate/store"
)

// Scenario sizes a generated directory.
type Scenario struct {
	Users, Teams, Projects int
	Restricted             float64 // share of projects assigned to teams
	TeamsPerUser           int     // memberships per org member
	Outsiders              int     // outsiders, each with one grant
	Seed                   uint64
}

// Small is SPEC §9's small tier: 10k users, 200 teams, 2k projects, 40% restricted.
var Small = Scenario{Users: 10_000, Teams: 200, Projects: 2_000, Restricted: 0.4, TeamsPerUser: 3, Outsiders: 500, Seed: 1}

// Wide is a listing tier: 10k users, 1,000 teams, 100k projects, 40% restricted (SPEC §9's
// ListProjects target is set at 100k projects).
var Wide = Scenario{Users: 10_000, Teams: 1_000, Projects: 100_000, Restricted: 0.4, TeamsPerUser: 3, Outsiders: 500, Seed: 2}

// Large is SPEC §9's large tier: 1M users, 10k teams, 100k projects, 10M team memberships (a
// little fewer: a user drawn twice into one team is a member once).
var Large = Scenario{Users: 1_000_000, Teams: 10_000, Projects: 100_000, Restricted: 0.4, TeamsPerUser: 10, Outsiders: 10_000, Seed: 5}

// Medium is a tenth of the large tier: 100k users, 1,000 teams, 10k projects, 1M team
// memberships.
var Medium = Scenario{Users: 100_000, Teams: 1_000, Projects: 10_000, Restricted: 0.4, TeamsPerUser: 10, Outsiders: 1_000, Seed: 5}

// FileTier is the data-file tier: 100k org members (and 100k team memberships, 10k projects),
// written as one YAML or JSON data file.
var FileTier = Scenario{Users: 100_000, Teams: 1_000, Projects: 10_000, Restricted: 0.4, TeamsPerUser: 1, Outsiders: 1_000, Seed: 6}

// Changes generates the directory as store changes: one org "org", users u0…, teams t0…,
// projects p0…; outsiders o0… with a viewer grant each.
func (s Scenario) Changes() []store.Change { return slices.Collect(s.ChangeSeq()) }

// ChangeSeq yields Changes one at a time, so the large tier is written without holding all of
// its changes at once.
func (s Scenario) ChangeSeq() iter.Seq[store.Change] {
	return s.generate
}

func (s Scenario) generate(yield func(store.Change) bool) {
	rng := rand.New(rand.NewPCG(s.Seed, 42))
	roles := []string{"admin", "member", "member", "member", "viewer", "viewer", "billing"}
	if !yield(store.PutOrg{Org: store.Org{Name: "org", Queue: "cpu/default"}}) {
		return
	}
	for i := range s.Users {
		role := roles[rng.IntN(len(roles))]
		if i < 5 {
			role = "owner"
		}
		if !yield(store.PutMember{Org: "org", User: fmt.Sprintf("u%d", i), Role: role}) {
			return
		}
	}
	for i := range s.Outsiders {
		if !yield(store.PutMember{Org: "org", User: fmt.Sprintf("o%d", i), Role: "outsider"}) {
			return
		}
	}
	for i := range s.Teams {
		if !yield(store.PutTeam{Team: store.Team{Org: "org", Name: fmt.Sprintf("t%d", i)}}) {
			return
		}
	}
	teamRoles := []string{"viewer", "member", "contributor", "admin"}
	for i := range s.Users {
		for range s.TeamsPerUser {
			if !yield(store.PutTeamMember{Org: "org", Team: fmt.Sprintf("t%d", rng.IntN(s.Teams)),
				User: fmt.Sprintf("u%d", i), Role: teamRoles[rng.IntN(4)]}) {
				return
			}
		}
	}
	for i := range s.Projects {
		p := store.Project{Org: "org", Name: fmt.Sprintf("p%d", i)}
		if rng.Float64() < s.Restricted {
			p.Teams = []string{fmt.Sprintf("t%d", rng.IntN(s.Teams))}
			if rng.IntN(3) == 0 {
				p.Teams = append(p.Teams, fmt.Sprintf("t%d", rng.IntN(s.Teams)))
				if p.Teams[0] == p.Teams[1] {
					p.Teams = p.Teams[:1]
				}
			}
		}
		if !yield(store.PutProject{Project: p}) {
			return
		}
	}
	for i := range s.Outsiders {
		if !yield(store.PutGrant{Org: "org", Project: fmt.Sprintf("p%d", rng.IntN(s.Projects)),
			User: fmt.Sprintf("o%d", i), Grant: store.Grant{Role: "viewer"}}) {
			return
		}
	}
}
