// Package expirytest is the directory with expiring entries that the store's and the engine's
// expiry tests share, and the moment their manual clocks (clocktest) start at.
package expirytest

import (
	"time"

	"github.com/teamgate/teamgate/store"
)

// Start is the moment the tests' clocks start at: the expiries of Org are an hour and two after.
func Start() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }

// Org is org a: bob and carl members, dave a viewer; team t with bob as admin until Start+1h and
// carl as contributor for good; project p restricted to t, with an admin grant for dave until
// Start+2h.
func Org() []store.Change {
	t0 := Start()
	return []store.Change{
		store.PutOrg{Org: store.Org{Name: "a"}},
		store.PutMember{Org: "a", User: "bob", Role: "member"},
		store.PutMember{Org: "a", User: "carl", Role: "member"},
		store.PutMember{Org: "a", User: "dave", Role: "viewer"},
		store.PutTeam{Team: store.Team{Org: "a", Name: "t"}},
		store.PutTeamMember{Org: "a", Team: "t", User: "bob", Role: "admin", ExpiresAt: t0.Add(time.Hour)},
		store.PutTeamMember{Org: "a", Team: "t", User: "carl", Role: "contributor"},
		store.PutProject{Project: store.Project{Org: "a", Name: "p", Teams: []string{"t"}}},
		store.PutGrant{Org: "a", Project: "p", User: "dave", Grant: store.Grant{Role: "admin", ExpiresAt: t0.Add(2 * time.Hour)}},
	}
}
