package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
)

// Check verifies that every in-memory index agrees with the records it is derived from
// (the member and project tables' names, team memberships, effective teams, team → projects, policy →
// projects, grants, open projects, users' default teams, the expiry indexes) and that every
// default team is one its user can enter. It is meant for tests and for operators after an
// incident; it takes the read lock and walks the whole directory.
//
// The expiry indexes the expiry loop scans (see "Expiry" in the package doc) are checked against
// the records: each grant's expires_at against the grant index, and, on disk, each team
// membership record's expires_at against the membership index (in memory the index is where a
// membership's expiry is kept, so only its entries' memberships can be checked). A disagreement
// is an *ExpiryIndexError. The disk comparison runs while no write is committed: Check waits for
// the commit in flight, if any, and writes queue behind it meanwhile; it is left out while a
// failed staged batch awaits completion (the records are then ahead of memory until the next
// write completes it).
func (s *Store) Check() error {
	err := s.View(func(r Reader) error {
		for name, o := range r.st.orgs {
			if err := o.check(); err != nil {
				return fmt.Errorf("store: org %s: %w", name, err)
			}
			if err := o.checkExpiries(name); err != nil {
				return err
			}
		}
		return r.st.checkDefaults()
	})
	if err != nil || !s.persistent {
		return err
	}
	return s.withoutWrites(s.checkMemberRecords)
}

// Problems an ExpiryIndexError reports.
const (
	// ExpiryOrphan: an index entry whose membership or grant does not exist, or does not expire.
	ExpiryOrphan = "index entry without an expiring record"
	// ExpiryUnindexed: a record's expires_at that the index does not hold: it would never be
	// revoked by a write.
	ExpiryUnindexed = "record's expires_at missing from the index"
	// ExpiryMismatch: the index holds another time than the record.
	ExpiryMismatch = "index and record disagree on expires_at"
)

// ExpiryIndexError is Check's report of an expiry index that disagrees with the records: the
// org, the entry (`team T member U` or `project P grant U`), the problem (ExpiryOrphan,
// ExpiryUnindexed, ExpiryMismatch) and the two times (zero where there is none).
type ExpiryIndexError struct {
	Org, Entry, Problem string
	Indexed, Recorded   time.Time
}

func (e *ExpiryIndexError) Error() string {
	at := func(t time.Time) string {
		if t.IsZero() {
			return "none"
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("store: org %s: %s: %s (index %s, record %s)", e.Org, e.Entry, e.Problem, at(e.Indexed), at(e.Recorded))
}

// unixTime is unixOrZero's inverse (zero for 0).
func unixTime(exp int64) time.Time {
	if exp == 0 {
		return time.Time{}
	}
	return time.Unix(0, exp).UTC()
}

// checkExpiries verifies the grant expiry index against the project records, and that every
// membership expiry entry is a membership's.
func (o *orgData) checkExpiries(org string) error {
	bad := func(entry, problem string, indexed int64, recorded time.Time) error {
		return &ExpiryIndexError{Org: org, Entry: entry, Problem: problem, Indexed: unixTime(indexed), Recorded: recorded}
	}
	for _, p := range sortedKeys(o.grantExpiry) {
		for _, u := range sortedKeys(o.grantExpiry[p]) {
			exp := o.grantExpiry[p][u]
			var g Grant
			if pd := o.project(p); pd != nil {
				g = pd.p.Grants[u]
			}
			switch {
			case g.ExpiresAt.IsZero():
				return bad("project "+p+" grant "+u, ExpiryOrphan, exp, time.Time{})
			case unixOrZero(g.ExpiresAt) != exp:
				return bad("project "+p+" grant "+u, ExpiryMismatch, exp, g.ExpiresAt)
			}
		}
	}
	for _, p := range o.projectNames() {
		grants := o.project(p).p.Grants
		for _, u := range sortedKeys(grants) {
			if g := grants[u]; !g.ExpiresAt.IsZero() {
				if _, ok := o.grantExpiry[p][u]; !ok {
					return bad("project "+p+" grant "+u, ExpiryUnindexed, 0, g.ExpiresAt)
				}
			}
		}
	}
	for key, exp := range o.memberExpiry {
		var td *teamData
		if int(key[0]) < len(o.teamByID) {
			td = o.teamByID[key[0]]
		}
		if td == nil || td.members[key[1]] == 0 {
			entry := fmt.Sprintf("team id %d member id %d", key[0], key[1])
			if td != nil && int(key[1]) < len(o.members.names) {
				entry = "team " + td.team.Name + " member " + o.members.names[key[1]]
			}
			return bad(entry, ExpiryOrphan, exp, time.Time{})
		}
		if exp <= 0 {
			return bad("team "+td.team.Name+" member "+o.members.names[key[1]], ExpiryMismatch, exp, time.Time{})
		}
	}
	return nil
}

// checkMemberRecords compares the team membership records on disk with the membership expiry
// index. It runs while no write is committed (withoutWrites), so the records and memory hold
// the same revision.
func (s *Store) checkMemberRecords() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return teamgate.ErrClosed
	}
	if s.unfinished || len(s.leftover) > 0 {
		return nil
	}
	st := s.st
	const prefix = prefixRecords + "tmember/"
	return s.db.View(func(txn *badger.Txn) error {
		recorded := map[string]bool{} // keys of the records that expire, compared already
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			key := string(it.Item().Key())
			val, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			m, err := decodeTeamMember(key, val)
			if err != nil {
				return err
			}
			if m.ExpiresAt.IsZero() {
				continue
			}
			recorded[key] = true
			entry := "team " + m.Team + " member " + m.User
			var exp int64
			has := false
			if o, ok := st.orgs[m.Org]; ok {
				if td, ok := o.teams[m.Team]; ok {
					if id, ok := o.members.id(m.User); ok {
						exp, has = o.memberExpiry[[2]uint32{td.id, id}]
					}
				}
			}
			switch {
			case !has:
				return &ExpiryIndexError{Org: m.Org, Entry: entry, Problem: ExpiryUnindexed, Recorded: m.ExpiresAt}
			case exp != unixOrZero(m.ExpiresAt):
				return &ExpiryIndexError{Org: m.Org, Entry: entry, Problem: ExpiryMismatch, Indexed: unixTime(exp), Recorded: m.ExpiresAt}
			}
		}
		for org, o := range st.orgs {
			for key, exp := range o.memberExpiry {
				td := o.teamByID[key[0]] // checkExpiries found it
				user := o.members.names[key[1]]
				if recorded[keyTeamMember(org, td.team.Name, user)] {
					continue
				}
				return &ExpiryIndexError{Org: org, Entry: "team " + td.team.Name + " member " + user, Problem: ExpiryOrphan, Indexed: unixTime(exp)}
			}
		}
		return nil
	})
}

// withoutWrites runs fn while no write is being committed: as a step of the commit pipeline
// (enqueue, a queued run), so writes queue until fn returns and the pipeline's own hand-over
// passes the lead on. ErrClosed once the store is closing.
func (s *Store) withoutWrites(fn func() error) error {
	var err error
	q := &queued{ctx: context.Background(), run: func() { err = fn() }}
	s.enqueue(q)
	if q.err != nil {
		return q.err
	}
	return err
}

// checkDefaults verifies the team → default users index and that each user can enter their
// default team.
func (st *state) checkDefaults() error {
	want := map[string]map[string]map[string]struct{}{} // org → team → users
	for id, u := range st.users {
		if u.DefaultTeam == "" {
			continue
		}
		org, team, _ := strings.Cut(u.DefaultTeam, "/")
		o, ok := st.orgs[org]
		if !ok {
			return fmt.Errorf("store: user %s: default team %s in a missing org", id, u.DefaultTeam)
		}
		td, ok := o.teams[team]
		if !ok {
			return fmt.Errorf("store: user %s: default team %s is missing", id, u.DefaultTeam)
		}
		if !canEnter(o, td, id) {
			return fmt.Errorf("store: user %s cannot enter their default team %s", id, u.DefaultTeam)
		}
		if want[org] == nil {
			want[org] = map[string]map[string]struct{}{}
		}
		if want[org][team] == nil {
			want[org][team] = map[string]struct{}{}
		}
		want[org][team][id] = struct{}{}
	}
	for name, o := range st.orgs {
		w := want[name]
		if w == nil {
			w = map[string]map[string]struct{}{}
		}
		if !reflect.DeepEqual(w, o.defaultUsers) {
			return fmt.Errorf("store: org %s: default team index differs: have %v, want %v", name, o.defaultUsers, w)
		}
	}
	return nil
}

func (o *orgData) check() error {
	if err := o.checkMembers(); err != nil {
		return err
	}
	teamProjects := map[string]map[string]struct{}{}
	policyProjects := map[string]map[string]struct{}{}
	userGrants := map[string]map[string]struct{}{}
	open := map[string]struct{}{}
	add := func(m map[string]map[string]struct{}, k1, k2 string) {
		if m[k1] == nil {
			m[k1] = map[string]struct{}{}
		}
		m[k1][k2] = struct{}{}
	}
	for pd := range o.projects.all {
		pn := pd.p.Name
		if o.project(pn) != pd { // its key bytes changed under the table (projectData.key), or a wrong put
			return fmt.Errorf("project %s is not found by its name", pn)
		}
		var pol *policy.Named
		if pd.p.Policy != "" {
			poly, ok := o.policies[pd.p.Policy]
			if !ok {
				return fmt.Errorf("project %s names missing policy %s", pn, pd.p.Policy)
			}
			pol = &policy.Named{Name: poly.p.Name, Settings: poly.p.Settings}
			add(policyProjects, pd.p.Policy, pn)
		}
		want := policy.EffectiveTeams(pd.p.Teams, pol)
		if !reflect.DeepEqual(want, pd.effective()) {
			return fmt.Errorf("project %s effective teams %v, want %v", pn, pd.effective(), want)
		}
		if !sameMap(pd.grants, pd.p.Grants) || !sameMap(pd.labels, pd.p.Labels) {
			return fmt.Errorf("project %s: the decision line's grants or labels are not the record's", pn)
		}
		if ids := o.teamIDs(want.Values); !reflect.DeepEqual(ids, pd.teamIDs) {
			return fmt.Errorf("project %s effective team ids %v, want %v", pn, pd.teamIDs, ids)
		}
		for _, t := range want.Values {
			add(teamProjects, t, pn)
		}
		if !want.Restricted {
			open[pn] = struct{}{}
		}
		for _, t := range pd.p.Teams {
			if _, ok := o.teams[t]; !ok {
				return fmt.Errorf("project %s names missing team %s", pn, t)
			}
		}
		for u := range pd.p.Grants {
			if o.members.get(u) == nil {
				return fmt.Errorf("project %s grantee %s is not an org member", pn, u)
			}
			add(userGrants, u, pn)
		}
	}
	for what, pair := range map[string][2]map[string]map[string]struct{}{
		"team → projects": {teamProjects, o.teamProjects}, "policy → projects": {policyProjects, o.policyProjects},
		"user → grants": {userGrants, o.userGrants},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			return fmt.Errorf("%s index differs: have %v, want %v", what, pair[1], pair[0])
		}
	}
	if !maps.Equal(open, o.openProjects) {
		return fmt.Errorf("open projects index differs: have %v, want %v", o.openProjects, open)
	}
	if !slices.Equal(o.sortedProjects, o.projectNames()) || !slices.Equal(o.sortedOpen, sortedKeys(open)) {
		return fmt.Errorf("sorted project views differ from the sets")
	}
	return nil
}

// checkMembers verifies the member and team tables: names, ids and entries agree, every
// membership is recorded on both sides (the team's members, the member's teams) with the same
// role, and free ids hold nothing.
func (o *orgData) checkMembers() error {
	p := &o.members
	if len(p.names) != len(p.byID) {
		return fmt.Errorf("member tables differ in length: %d names, %d members", len(p.names), len(p.byID))
	}
	if noMember.teams != nil || noMember.id != 0 || noMember.role != 0 || noMember.key != [len(noMember.key)]byte{} {
		return errors.New("the free member entry was written")
	}
	for m := range p.byName.all {
		id := m.id
		if int(id) >= len(p.names) || p.names[id] == "" || p.byID[id] != m || m.role == 0 || int(m.role) > len(orgRoles) {
			return fmt.Errorf("member id %d does not hold its entry", id)
		}
		if p.get(p.names[id]) != m { // its key bytes changed under the table (member.key), or a wrong put
			return fmt.Errorf("member %s is not found by its name", p.names[id])
		}
	}
	free := map[uint32]bool{}
	for _, id := range p.free {
		if int(id) >= len(p.names) || free[id] || p.names[id] != "" || p.byID[id] != &noMember {
			return fmt.Errorf("free member id %d is in use or listed twice", id)
		}
		free[id] = true
	}
	if p.count()+len(free) != len(p.names) {
		return fmt.Errorf("%d member ids, of which %d members and %d free", len(p.names), p.count(), len(free))
	}
	if err := p.list.check(); err != nil {
		return fmt.Errorf("sorted member list: %w", err)
	}
	if have, want := p.list.all(), p.sorted(); !slices.Equal(have, want) {
		return fmt.Errorf("sorted member list differs from the members: have %d names, want %d", len(have), len(want))
	}
	teams := 0
	for id, td := range o.teamByID {
		if td == nil {
			continue
		}
		teams++
		if td.id != uint32(id) || o.teams[td.team.Name] != td {
			return fmt.Errorf("team id %d does not hold team %s", id, td.team.Name)
		}
		for m, role := range td.members {
			if int(m) >= len(p.names) || p.byID[m].role == 0 {
				return fmt.Errorf("team %s member id %d is not an org member", td.team.Name, m)
			}
			if role == 0 || int(role) > len(teamRoles) {
				return fmt.Errorf("team %s member %s: bad role code %d", td.team.Name, p.names[m], role)
			}
			if i := slices.Index(p.byID[m].teams, teamRole{td.id, role}); i < 0 {
				return fmt.Errorf("team %s member %s: missing from the member's teams", td.team.Name, p.names[m])
			}
		}
	}
	if teams != len(o.teams) || teams+len(o.freeTeam) != len(o.teamByID) {
		return fmt.Errorf("%d teams but %d team ids, %d free", len(o.teams), len(o.teamByID), len(o.freeTeam))
	}
	for _, id := range o.freeTeam {
		if int(id) >= len(o.teamByID) || o.teamByID[id] != nil {
			return fmt.Errorf("free team id %d is in use", id)
		}
	}
	for m := range p.byID {
		list := p.byID[m].teams
		seen := map[uint32]bool{}
		for _, tr := range list {
			if int(tr.team) >= len(o.teamByID) || o.teamByID[tr.team] == nil || seen[tr.team] ||
				o.teamByID[tr.team].members[uint32(m)] != tr.role {
				return fmt.Errorf("member %s: team membership %v is not its team's", p.names[m], tr)
			}
			seen[tr.team] = true
		}
	}
	return nil
}

// sameMap reports whether a and b are the same map (or both nil).
func sameMap[K comparable, V any](a, b map[K]V) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}
