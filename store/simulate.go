package store

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/teamgate/teamgate"
)

// Simulation is a batch validated and applied to a private copy of the directory, never to the
// store: the directory as it was (Before) and as the batch would leave it (After), with what the
// batch touches. Store.Simulate makes one.
//
// Both views hold every user record but only the orgs the batch reads or writes: an org the
// batch does not touch reads as absent in both (its facts are the same before and after). The
// copies are private and immutable, so a Simulation is safe for concurrent use and its views
// take no lock; nothing in them is stamped, so a tracking Reader over them records Deps that
// stay current.
type Simulation struct {
	// Revision is the revision the batch was checked against: Before is the directory at it,
	// After the directory at Revision+1, the revision Apply would have given the batch.
	Revision uint64
	// At is the store's clock (Options.Clock) when the batch was simulated: both views measure
	// expiry by it, so an entry that expires while the simulation is read is the same in both.
	At time.Time
	// Event is the event Apply would have produced (truncated like Apply's past MaxEventEntries).
	Event Event
	// Projects ("org/project", sorted) are the projects whose record, policy or org defaults
	// the batch changes: any member's access to them may change. Never truncated.
	Projects []string
	// Subjects ("org/user", sorted) are the users whose org membership, team memberships or
	// grants in org the batch changes: their access to any project of org may change. Never
	// truncated.
	Subjects []string

	before, after *state
	stamps        stamps // none: every Deps of the views stays current; its clock stands at At
}

// stoppedClock stands at one instant: a simulation's time.
type stoppedClock time.Time

func (c stoppedClock) Now() time.Time                     { return time.Time(c) }
func (stoppedClock) After(time.Duration) <-chan time.Time { return nil }

// ViewBefore runs fn with the directory as it was at Revision (only the orgs the batch touches;
// see Simulation).
func (sim *Simulation) ViewBefore(fn func(r Reader) error) error {
	return fn(Reader{st: sim.before, stamps: &sim.stamps})
}

// ViewAfter runs fn with the directory as the batch would leave it (only the orgs the batch
// touches; see Simulation).
func (sim *Simulation) ViewAfter(fn func(r Reader) error) error {
	return fn(Reader{st: sim.after, stamps: &sim.stamps})
}

// Simulate validates changes as Apply would and applies them to a private copy of the state
// instead of the store: nothing is written, no revision taken, no stamp bumped, no event
// published, and no reader of the store ever sees the batch. A batch Apply would refuse fails
// with the same error (ErrInvalid, ErrNotFound, ErrConflict, naming the change in a batch of
// several); a closed store fails with teamgate.ErrClosed. Simulating is a read: it is allowed
// on a replica, whose Apply refuses every batch.
//
// It holds the read lock while it copies each org the batch touches (the first time a change
// reads it), twice — once as it was, once to apply the batch to — so it costs time and memory
// linear in the size of those orgs plus the user records, never the whole directory; other
// writers wait for that, readers do not.
func (s *Store) Simulate(ctx context.Context, changes ...Change) (*Simulation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, teamgate.ErrClosed
	}
	live := s.st
	f := &fork{live: live, taken: map[string]struct{}{},
		before: &state{rev: live.rev, orgs: map[string]*orgData{}, users: maps.Clone(live.users)}}
	after := &state{rev: live.rev + 1, orgs: map[string]*orgData{}, users: maps.Clone(live.users)}
	sim := &Simulation{Revision: live.rev, At: s.clock.Now(), before: f.before, after: after, Projects: []string{}, Subjects: []string{}}
	sim.stamps.clock = stoppedClock(sim.At)
	if len(changes) == 0 {
		sim.after.rev = live.rev
		return sim, nil
	}
	t := newTxn(after, false)
	t.fork = f
	// A data file compares whole orgs (and a directory every org) by reading the state's maps
	// directly: copy them first.
	for _, c := range changes {
		switch c := c.(type) {
		case PutFile:
			f.takeFile(t, c.File)
		case *PutFile:
			if c != nil {
				f.takeFile(t, c.File)
			}
		case PutDirectory, *PutDirectory:
			for name := range live.orgs {
				f.take(t, name)
			}
		}
	}
	if err := t.applyAll(changes); err != nil {
		return nil, err
	}
	for o := range t.resort {
		o.resort()
	}
	for o, users := range t.joined {
		o.relist(users)
	}
	sim.Projects, sim.Subjects = eventList(t.projects), eventList(t.subjects)
	sim.Event = t.event(after.rev, changes)
	return sim, nil
}

// fork copies the orgs a simulated batch touches out of the live state, on first use, into the
// simulation's before and after states. It lives under the Store's read lock.
type fork struct {
	live   *state
	before *state
	taken  map[string]struct{} // orgs looked up already (copied, or absent from live)
}

// take copies org name (when live has it) into before and into the txn's state, once.
func (f *fork) take(t *txn, name string) {
	if _, ok := f.taken[name]; ok {
		return
	}
	f.taken[name] = struct{}{}
	if o, ok := f.live.orgs[name]; ok {
		f.before.orgs[name] = o.clone()
		t.st.orgs[name] = o.clone()
	}
}

func (f *fork) takeFile(t *txn, file File) {
	for _, o := range file.Orgs {
		f.take(t, o.Name)
	}
}

// orgOf returns the org name of the txn's state; a simulation's txn copies it there first.
// Every lookup of an org by a change goes through here.
func (t *txn) orgOf(name string) (*orgData, bool) {
	if t.fork != nil {
		t.fork.take(t, name)
	}
	o, ok := t.st.orgs[name]
	return o, ok
}

// clone returns a copy of o that a txn may change without changing o. What a txn only ever
// replaces whole (records, a member's team list, compiled rules, the sorted views) is shared.
func (o *orgData) clone() *orgData {
	c := &orgData{
		org:            o.org,
		members:        o.members.clone(),
		teams:          make(map[string]*teamData, len(o.teams)),
		teamByID:       make([]*teamData, len(o.teamByID)),
		freeTeam:       slices.Clone(o.freeTeam),
		policies:       make(map[string]*policyData, len(o.policies)),
		teamProjects:   cloneIndex(o.teamProjects),
		policyProjects: cloneIndex(o.policyProjects),
		userGrants:     cloneIndex(o.userGrants),
		openProjects:   maps.Clone(o.openProjects),
		defaultUsers:   cloneIndex(o.defaultUsers),
		memberExpiry:   maps.Clone(o.memberExpiry),
		grantExpiry:    make(map[string]map[string]int64, len(o.grantExpiry)),
		sortedProjects: o.sortedProjects,
		sortedOpen:     o.sortedOpen,
	}
	for id, td := range o.teamByID {
		if td != nil {
			c.teamByID[id] = &teamData{team: td.team, id: td.id, members: maps.Clone(td.members)}
		}
	}
	for name, td := range o.teams {
		c.teams[name] = c.teamByID[td.id]
	}
	c.projects = o.projects.clone(func(pd *projectData) *projectData {
		cp := *pd // its own key bytes, not o's object's
		return &cp
	})
	for name, pd := range o.policies {
		cp := *pd
		c.policies[name] = &cp
	}
	for p, users := range o.grantExpiry {
		c.grantExpiry[p] = maps.Clone(users)
	}
	return c
}

// clone returns a copy of p that a txn may change without changing p: entries of its own (their
// names its names' strings), the free ids' and the sorted list shared.
func (p *people) clone() people {
	c := people{names: make([]string, len(p.names)),
		byID: make([]*member, len(p.byID)), free: slices.Clone(p.free), list: p.list}
	entries := newEntries(p.count())
	for id, m := range p.byID {
		if m == &noMember {
			c.byID[id] = m
			continue
		}
		e := entries[0]
		entries = entries[1:]
		*e = *m
		c.names[id], c.byID[id] = e.ownName(p.names[id]), e
	}
	c.byName = p.byName.clone(func(m *member) *member { return c.byID[m.id] })
	return c
}

func cloneIndex(m map[string]map[string]struct{}) map[string]map[string]struct{} {
	c := make(map[string]map[string]struct{}, len(m))
	for k, inner := range m {
		c[k] = maps.Clone(inner)
	}
	return c
}
