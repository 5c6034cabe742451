package store

import (
	"cmp"
	"container/heap"
	"slices"
	"sync"
	"time"
)

// expiryEntry is a pending expiry: a team membership (project "") or a grant, due at at (unix
// nanoseconds). An entry is live while the state's index holds exactly at for it; writes that
// renew, remove or rename leave stale entries behind, dropped when met.
type expiryEntry struct {
	at           int64
	org          string
	team, member uint32 // a team membership: team id, member id (ids survive renames)
	project      string // a grant: project and user
	user         string
}

// expiryQueue holds the pending expiries ordered by time, so the expiry loop finds what is due
// and the next one without rescanning every expiring entry after each write. Each committed
// write adds the expiries it set (txn.expiring); Open seeds it from the state.
type expiryQueue struct {
	mu    sync.Mutex
	h     expiryHeap
	built int // entries after the last rebuild: a queue twice as long (mostly stale) is rebuilt
}

type expiryHeap []expiryEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// scanExpiries returns every expiry the state holds.
func scanExpiries(st *state) []expiryEntry {
	var out []expiryEntry
	for name, o := range st.orgs {
		for key, exp := range o.memberExpiry {
			out = append(out, expiryEntry{at: exp, org: name, team: key[0], member: key[1]})
		}
		for p, users := range o.grantExpiry {
			for u, exp := range users {
				out = append(out, expiryEntry{at: exp, org: name, project: p, user: u})
			}
		}
	}
	return out
}

// reset replaces the queue with the state's expiries (at Open, under the Store's lock).
func (q *expiryQueue) reset(st *state) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.h = scanExpiries(st)
	heap.Init(&q.h)
	q.built = len(q.h)
}

// add queues the expiries a committed write set (under the Store's write lock).
func (q *expiryQueue) add(st *state, es []expiryEntry) {
	if len(es) == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range es {
		heap.Push(&q.h, e)
	}
	if len(q.h) > 1024 && len(q.h) > 2*q.built { // stale entries pile up: start again from the state
		q.h = scanExpiries(st)
		heap.Init(&q.h)
		q.built = len(q.h)
	}
}

// change returns the revocation of a live entry; ok is false for a stale one.
func (e expiryEntry) change(st *state) (c Change, ok bool) {
	o := st.orgs[e.org]
	if o == nil {
		return nil, false
	}
	if e.project == "" {
		exp, has := o.memberExpiry[[2]uint32{e.team, e.member}]
		if !has || exp != e.at {
			return nil, false
		}
		return o.memberExpiryChange(e.org, [2]uint32{e.team, e.member}, exp), true
	}
	exp, has := o.grantExpiry[e.project][e.user]
	if !has || exp != e.at {
		return nil, false
	}
	return o.grantExpiryChange(e.org, e.project, e.user, exp), true
}

// due returns the revocations due at now (in Expiries' order) and the earliest live expiry
// after now (0 when none). It reads st, under the Store's read lock. Due entries stay queued
// until a write makes them stale (the revocation, or a renewal), so a failed write is retried.
func (q *expiryQueue) due(st *state, now int64) (due []Change, next int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var keep []expiryEntry
	seen := map[expiryEntry]bool{}
	for len(q.h) > 0 && q.h[0].at <= now {
		e := heap.Pop(&q.h).(expiryEntry)
		if seen[e] {
			continue
		}
		seen[e] = true
		if c, ok := e.change(st); ok {
			keep = append(keep, e)
			due = append(due, c)
		}
	}
	// The first live entry after now (every entry left is after now): stale ones are dropped.
	for len(q.h) > 0 {
		if _, ok := q.h[0].change(st); ok {
			next = q.h[0].at
			break
		}
		heap.Pop(&q.h)
	}
	for _, e := range keep {
		heap.Push(&q.h, e)
	}
	slices.SortFunc(due, compareExpiries)
	return due, next
}

// compareExpiries orders revocations as Expiries does: by org, team memberships (by team, then
// user) before grants (by project, then user).
func compareExpiries(a, b Change) int {
	key := func(c Change) (string, int, string, string) {
		switch c := c.(type) {
		case ExpireTeamMember:
			return c.Org, 0, c.Team, c.User
		case ExpireGrant:
			return c.Org, 1, c.Project, c.User
		}
		return "", 2, "", ""
	}
	ao, ak, a1, a2 := key(a)
	bo, bk, b1, b2 := key(b)
	return cmp.Or(cmp.Compare(ao, bo), cmp.Compare(ak, bk), cmp.Compare(a1+"/"+a2, b1+"/"+b2))
}

// memberExpiryChange is the revocation of the team membership key (team id, member id).
func (o *orgData) memberExpiryChange(org string, key [2]uint32, exp int64) Change {
	return ExpireTeamMember{Org: org, Team: o.teamByID[key[0]].team.Name, User: o.members.names[key[1]],
		ExpiresAt: time.Unix(0, exp).UTC()}
}

// grantExpiryChange is the revocation of user's grant on project, indexed as expiring at exp.
func (o *orgData) grantExpiryChange(org, project, user string, exp int64) Change {
	at := time.Unix(0, exp).UTC() // the record's when it has one (Check finds an index without)
	if pd := o.project(project); pd != nil && !pd.p.Grants[user].ExpiresAt.IsZero() {
		at = pd.p.Grants[user].ExpiresAt
	}
	return ExpireGrant{Org: org, Project: project, User: user, ExpiresAt: at}
}
