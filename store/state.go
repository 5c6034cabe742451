package store

import (
	"maps"
	"slices"

	"github.com/teamgate/teamgate/policy"
)

// state is the in-memory directory and its indexes. The Store's mutex guards it.
type state struct {
	rev   uint64
	orgs  map[string]*orgData
	users map[string]User
}

type orgData struct {
	org      Org
	members  map[string]string // user → org role
	teams    map[string]*teamData
	projects map[string]*projectData
	policies map[string]*policyData

	userTeams      map[string]map[string]string   // user → team → team role
	teamProjects   map[string]map[string]struct{} // team → projects whose effective teams hold it
	policyProjects map[string]map[string]struct{} // policy → connected projects
	userGrants     map[string]map[string]struct{} // user → projects they have a grant on
	openProjects   map[string]struct{}            // projects with no team restriction
	defaultUsers   map[string]map[string]struct{} // team → users whose default team it is

	// Sorted views of projects and openProjects for listings. They are replaced wholesale (never
	// modified) when a committed batch changed the sets, so a reader may keep them.
	sortedProjects []string
	sortedOpen     []string
}

// resort rebuilds the sorted views.
func (o *orgData) resort() {
	o.sortedProjects = sortedKeys(o.projects)
	o.sortedOpen = sortedKeys(o.openProjects)
}

type teamData struct {
	team    Team
	members map[string]string // user → team role
}

type projectData struct {
	p     Project
	teams policy.AllowList // effective teams: project teams narrowed by the policy's (SPEC §4 step 4)
	rules []*policy.Program
}

type policyData struct {
	p     Policy
	rules []*policy.Program
}

func newState() *state {
	return &state{orgs: map[string]*orgData{}, users: map[string]User{}}
}

func newOrgData(o Org) *orgData {
	return &orgData{
		org: o, members: map[string]string{}, teams: map[string]*teamData{},
		projects: map[string]*projectData{}, policies: map[string]*policyData{},
		userTeams: map[string]map[string]string{}, teamProjects: map[string]map[string]struct{}{},
		policyProjects: map[string]map[string]struct{}{}, userGrants: map[string]map[string]struct{}{},
		openProjects: map[string]struct{}{}, defaultUsers: map[string]map[string]struct{}{},
	}
}

// txn mutates state in place and logs each mutation with how to undo and redo it, so a batch
// that fails halfway leaves the state exactly as it was, and a valid batch can be taken out of
// memory while it commits to Badger and put back, unchanged, when it is durable (see "Writes" in
// the package doc). It only runs under the Store's write lock.
type txn struct {
	st       *state
	log      []func(undo bool)   // every mutation, in order: undone with true, redone with false
	dirty    map[string]struct{} // Badger keys whose records must be rewritten or deleted
	projects map[string]struct{} // projects whose record, policy or org changed, "org/project" (stamped)
	reached  map[string]struct{} // projects whose access a membership change affects (events only)
	subjects map[string]struct{} // subjects whose access may have changed, "org/user" (events only)
	kinds    []string
	loading  bool                  // replaying records at Open: no undo log, no write bookkeeping
	resort   map[*orgData]struct{} // orgs whose project or open-project sets changed
}

func newTxn(st *state, loading bool) *txn {
	return &txn{st: st, loading: loading, dirty: map[string]struct{}{}, projects: map[string]struct{}{},
		reached: map[string]struct{}{}, subjects: map[string]struct{}{}, resort: map[*orgData]struct{}{}}
}

// rollback undoes every mutation, last first. The log stays: redo puts them back.
func (t *txn) rollback() {
	for i := len(t.log) - 1; i >= 0; i-- {
		t.log[i](true)
	}
}

// redo repeats every mutation, first first, on the state rollback left.
func (t *txn) redo() {
	for _, f := range t.log {
		f(false)
	}
}

// assign sets *p to v, logged unless the txn cannot fail over (loading from disk).
func assign[V any](t *txn, p *V, v V) {
	if !t.loading {
		old := *p
		t.log = append(t.log, func(undo bool) {
			if undo {
				*p = old
			} else {
				*p = v
			}
		})
	}
	*p = v
}

func (t *txn) touch(key string) {
	if !t.loading {
		t.dirty[key] = struct{}{}
	}
}

func (t *txn) affect(org, project string) {
	if !t.loading {
		t.projects[org+"/"+project] = struct{}{}
	}
}

// reach reports projects whose access changed through a membership, not through their own
// record: the event names them, but their stamps stay (the membership's stamp covers the cached
// decisions that read it).
func (t *txn) reach(org string, projects map[string]struct{}) {
	if !t.loading {
		for p := range projects {
			t.reached[org+"/"+p] = struct{}{}
		}
	}
}

// subject reports a user whose access in org may have changed.
func (t *txn) subject(org, user string) {
	if !t.loading {
		t.subjects[org+"/"+user] = struct{}{}
	}
}

func (t *txn) affectAll(o *orgData) {
	for name := range o.projects {
		t.affect(o.org.Name, name)
	}
}

func set[K comparable, V any](t *txn, m map[K]V, k K, v V) {
	if !t.loading { // no closure at all while loading: one allocation less per record
		old, had := m[k]
		t.log = append(t.log, func(undo bool) {
			switch {
			case !undo:
				m[k] = v
			case had:
				m[k] = old
			default:
				delete(m, k)
			}
		})
	}
	m[k] = v
}

func del[K comparable, V any](t *txn, m map[K]V, k K) {
	old, had := m[k]
	if !had {
		return
	}
	if !t.loading {
		t.log = append(t.log, func(undo bool) {
			if undo {
				m[k] = old
			} else {
				delete(m, k)
			}
		})
	}
	delete(m, k)
}

// setIndex adds k2 under k1 in a two-level index, creating the inner map when needed.
func setIndex[V any](t *txn, m map[string]map[string]V, k1, k2 string, v V) {
	inner, ok := m[k1]
	if !ok {
		inner = map[string]V{}
		set(t, m, k1, inner)
	}
	set(t, inner, k2, v)
}

func delIndex[V any](t *txn, m map[string]map[string]V, k1, k2 string) {
	inner, ok := m[k1]
	if !ok {
		return
	}
	del(t, inner, k2)
	if len(inner) == 0 {
		del(t, m, k1)
	}
}

// setProjectTeams recomputes a project's effective teams and the team → projects index.
func (t *txn) setProjectTeams(o *orgData, pd *projectData) {
	var pol *policy.Named
	if pd.p.Policy != "" {
		if poly, ok := o.policies[pd.p.Policy]; ok {
			pol = &policy.Named{Name: poly.p.Name, Settings: poly.p.Settings}
		}
	}
	eff := policy.EffectiveTeams(pd.p.Teams, pol)
	for _, team := range pd.teams.Values {
		delIndex(t, o.teamProjects, team, pd.p.Name)
	}
	assign(t, &pd.teams, eff)
	for _, team := range eff.Values {
		setIndex(t, o.teamProjects, team, pd.p.Name, struct{}{})
	}
	_, wasOpen := o.openProjects[pd.p.Name]
	switch {
	case eff.Restricted && wasOpen:
		del(t, o.openProjects, pd.p.Name)
		t.resort[o] = struct{}{}
	case !eff.Restricted && !wasOpen:
		set(t, o.openProjects, pd.p.Name, struct{}{})
		t.resort[o] = struct{}{}
	}
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
