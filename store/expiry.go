package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/scope"
)

// Clock is the store's time: when an expiring team membership or grant ends (see "Expiry" in
// the package doc). Tests pass one they advance by hand; the default is the system clock.
type Clock interface {
	Now() time.Time
	// After sends once at least d has passed (time.After for the system clock).
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// ExpireTeamMember removes a team membership that has reached its expiry: the write the store
// makes by itself at ExpiresAt. It applies only while the membership still expires exactly at
// ExpiresAt (ErrConflict otherwise: it was renewed, removed or already expired), so a
// duplicate — a second cluster node expiring it too — fails without changing anything.
type ExpireTeamMember struct {
	Org, Team, User string
	ExpiresAt       time.Time
}

// ExpireGrant removes a project grant that has reached its expiry, under the same condition as
// ExpireTeamMember.
type ExpireGrant struct {
	Org, Project, User string
	ExpiresAt          time.Time
}

// EndBreakGlass ends a break-glass elevation before its expiry (authz.Engine.EndBreakGlass):
// it removes User's grant on the project, and applies only while that grant is a break-glass
// elevation ending exactly at ExpiresAt (ErrConflict otherwise: it was extended, replaced by an
// ordinary grant, or has ended), so it never removes an ordinary grant and never ends an
// elevation other than the one its caller saw. By is who ended it (a slug); the event keeps
// the change, and with it By.
type EndBreakGlass struct {
	Org, Project, User string
	ExpiresAt          time.Time
	By                 string
}

func (ExpireTeamMember) Kind() string { return "expire_team_member" }
func (ExpireGrant) Kind() string      { return "expire_grant" }
func (EndBreakGlass) Kind() string    { return "end_break_glass" }

func (c EndBreakGlass) apply(t *txn) error {
	if err := scope.CheckSlug("break-glass ended by", c.By); err != nil {
		return err
	}
	_, pd, err := t.project(c.Org, c.Project)
	if err != nil {
		return err
	}
	name := c.Org + "/" + c.Project + "/" + c.User
	g, ok := pd.p.Grants[c.User]
	switch {
	case !ok:
		return &teamgate.NotFoundError{What: "grant", Name: name}
	case g.BreakGlass == nil:
		return &teamgate.ConflictError{What: "grant", Name: name, Reason: "an ordinary " + g.Role + " grant, not a break-glass elevation: delete_grant removes it"}
	case !g.ExpiresAt.Equal(c.ExpiresAt):
		return &teamgate.ConflictError{What: "grant", Name: name,
			Reason: "the elevation does not end at " + c.ExpiresAt.UTC().Format(time.RFC3339Nano) + " (extended or replaced meanwhile)"}
	}
	return DeleteGrant{Org: c.Org, Project: c.Project, User: c.User}.apply(t)
}

func (c ExpireTeamMember) apply(t *txn) error {
	o, td, err := t.team(c.Org, c.Team)
	if err != nil {
		return err
	}
	id, ok := o.members.id(c.User)
	if exp, has := o.memberExpiry[[2]uint32{td.id, id}]; !ok || !has || c.ExpiresAt.IsZero() || exp != unixOrZero(c.ExpiresAt) {
		return &teamgate.ConflictError{What: "team membership", Name: c.Org + "/" + c.Team + "/" + c.User,
			Reason: "does not expire at " + c.ExpiresAt.UTC().Format(time.RFC3339Nano) + " (renewed, removed or already expired)"}
	}
	return DeleteTeamMember{Org: c.Org, Team: c.Team, User: c.User}.apply(t)
}

func (c ExpireGrant) apply(t *txn) error {
	_, pd, err := t.project(c.Org, c.Project)
	if err != nil {
		return err
	}
	if g, ok := pd.p.Grants[c.User]; !ok || g.ExpiresAt.IsZero() || !g.ExpiresAt.Equal(c.ExpiresAt) {
		return &teamgate.ConflictError{What: "grant", Name: c.Org + "/" + c.Project + "/" + c.User,
			Reason: "does not expire at " + c.ExpiresAt.UTC().Format(time.RFC3339Nano) + " (renewed, removed or already expired)"}
	}
	return DeleteGrant{Org: c.Org, Project: c.Project, User: c.User}.apply(t)
}

// MaxExpiry is the latest expires_at a membership or grant may carry (the store measures expiry
// in int64 unix nanoseconds): a later one is ErrInvalid, never a time that wraps around.
var MaxExpiry = time.Unix(0, math.MaxInt64).UTC()

// checkExpiry refuses an expires_at past MaxExpiry. Any earlier time is accepted, also one long
// past (revoked at once; see "Expiry" in the package doc).
func checkExpiry(what string, at time.Time) error {
	if at.After(MaxExpiry) {
		return teamgate.Invalid(what+" expires_at", at.Format(time.RFC3339Nano), "must be at or before "+MaxExpiry.Format(time.RFC3339Nano))
	}
	return nil
}

// epoch is the first instant unixOrZero keeps as is.
var epoch = time.Unix(0, 1)

// unixOrZero is t in unix nanoseconds, 0 for the zero time (never expires). A time at or before
// the epoch counts as 1: it has expired, and 0 would mean never (t.UnixNano would wrap around
// before 1678). t is at most MaxExpiry (checkExpiry).
func unixOrZero(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.Before(epoch):
		return 1
	}
	return t.UnixNano()
}

// setMemberExpiry records (or, for the zero time, forgets) when member id's membership of td
// ends.
func (t *txn) setMemberExpiry(o *orgData, td *teamData, id uint32, at time.Time) {
	key := [2]uint32{td.id, id}
	t.keep(o, id)
	if at.IsZero() {
		del(t, o.memberExpiry, key)
		return
	}
	if t.loading { // Open's parallel loaders never get here: loadRuns collects theirs
		o.memberExpiry[key] = unixOrZero(at)
		return
	}
	set(t, o.memberExpiry, key, unixOrZero(at))
	t.expiring = append(t.expiring, expiryEntry{at: unixOrZero(at), org: o.org.Name, team: td.id, member: id})
}

// setGrantExpiries makes the grant expiry index of project p match its grants.
func (t *txn) setGrantExpiries(o *orgData, p Project) {
	for u := range o.grantExpiry[p.Name] {
		if g, ok := p.Grants[u]; !ok || g.ExpiresAt.IsZero() {
			delIndex(t, o.grantExpiry, p.Name, u)
		}
	}
	for _, u := range sortedKeys(p.Grants) {
		if at := p.Grants[u].ExpiresAt; !at.IsZero() {
			setIndex(t, o.grantExpiry, p.Name, u, unixOrZero(at))
			if !t.loading {
				t.expiring = append(t.expiring, expiryEntry{at: unixOrZero(at), org: o.org.Name, project: p.Name, user: u})
			}
		}
	}
}

// now is the reader's clock in unix nanoseconds.
func (r Reader) now() int64 { return clockNanos(r.stamps.clock.Now()) }

// clockNanos is a clock's time in unix nanoseconds, held within what int64 holds: 0 at or
// before the epoch (no expiry has passed: every one is at least 1), math.MaxInt64 from
// MaxExpiry on (every one has passed), never a wrapped-around value.
func clockNanos(t time.Time) int64 {
	switch {
	case t.Before(epoch):
		return 0
	case t.After(MaxExpiry):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// live reports whether an entry ending at exp (unix nanoseconds; 0: never) is in force for this
// reader. An expired entry is absent for every reader, whether or not the store has written its
// revocation yet; a live one that ends makes a tracked read end with it (Deps.Current turns false
// at exp), so no cached value outlives an entry it read.
func (r Reader) live(exp int64) bool {
	if exp == 0 {
		return true
	}
	if exp <= r.now() {
		return false
	}
	if r.deps != nil && (r.deps.until == 0 || exp < r.deps.until) {
		r.deps.until = exp
	}
	return true
}

// liveTeams returns list without the memberships that have expired (list itself when none has).
func (r Reader) liveTeams(o *orgData, id uint32, list []teamRole) []teamRole {
	if len(o.memberExpiry) == 0 {
		return list
	}
	var out []teamRole
	for i, m := range list {
		if r.live(o.memberExpiry[[2]uint32{m.team, id}]) {
			if out != nil {
				out = append(out, m)
			}
		} else if out == nil {
			out = append(make([]teamRole, 0, len(list)), list[:i]...)
		}
	}
	if out == nil {
		return list
	}
	return out
}

// liveProject returns pd's project without the grants that have expired (pd's own when none
// has: no copy on the decision path).
func (r Reader) liveProject(o *orgData, pd *projectData) *Project {
	exps := o.grantExpiry[pd.p.Name]
	if len(exps) == 0 {
		return &pd.p
	}
	var dead []string
	for u, exp := range exps {
		if !r.live(exp) {
			dead = append(dead, u)
		}
	}
	if len(dead) == 0 {
		return &pd.p
	}
	p := pd.p
	p.Grants = make(map[string]Grant, len(pd.p.Grants))
	for u, g := range pd.p.Grants {
		if !slices.Contains(dead, u) {
			p.Grants[u] = g
		}
	}
	return &p
}

// Expiries returns the writes that revoke every team membership and grant whose expires_at is
// at or before now, in a stable order, and the earliest expires_at after now (zero when none).
// The store makes these writes by itself (see "Expiry" in the package doc); a cluster node
// publishes them.
func (r Reader) Expiries(now time.Time) (due []Change, next time.Time) {
	at := clockNanos(now)
	var nxt int64
	consider := func(exp int64) bool {
		if exp <= at {
			return true
		}
		if nxt == 0 || exp < nxt {
			nxt = exp
		}
		return false
	}
	r.dep('O', "", "")
	for _, org := range sortedKeys(r.st.orgs) {
		r.dep('x', org, "") // every membership and grant of the org
		o := r.st.orgs[org]
		var members []Change
		for key, exp := range o.memberExpiry {
			if consider(exp) {
				members = append(members, o.memberExpiryChange(org, key, exp))
			}
		}
		slices.SortFunc(members, func(a, b Change) int {
			x, y := a.(ExpireTeamMember), b.(ExpireTeamMember)
			return strings.Compare(x.Team+"/"+x.User, y.Team+"/"+y.User)
		})
		due = append(due, members...)
		for _, p := range sortedKeys(o.grantExpiry) {
			for _, u := range sortedKeys(o.grantExpiry[p]) {
				if exp := o.grantExpiry[p][u]; consider(exp) {
					due = append(due, o.grantExpiryChange(org, p, u, exp))
				}
			}
		}
	}
	if nxt != 0 {
		next = time.Unix(0, nxt).UTC()
	}
	return due, next
}

// expireDue makes the writes that revoke what has expired by the clock, with apply: one batch,
// or one write each when the batch fails (a duplicate or a renewal then fails alone). It
// returns the earliest expiry still ahead (zero when none) and whether every write succeeded.
func (s *Store) expireDue(ctx context.Context, apply func(context.Context, ...Change) (uint64, error)) (time.Time, bool) {
	var due []Change
	var next time.Time
	err := s.View(func(r Reader) error {
		// From the queue ordered by time: what is due and the next, without a scan of every
		// expiring entry (Reader.Expiries gives the same answer by scanning).
		var nxt int64
		due, nxt = s.expiries.due(r.st, clockNanos(s.clock.Now()))
		if nxt != 0 {
			next = time.Unix(0, nxt).UTC()
		}
		return nil
	})
	if err != nil {
		return time.Time{}, false
	}
	if len(due) == 0 {
		return next, true
	}
	if _, err := apply(ctx, due...); err == nil {
		return next, true
	} else if len(due) == 1 {
		s.log.Warn("teamgate: expiry write failed", "change", due[0].Kind(), "err", err)
		return next, errors.As(err, new(*teamgate.ConflictError))
	}
	ok := true
	for _, c := range due {
		if _, err := apply(ctx, c); err != nil && !errors.As(err, new(*teamgate.ConflictError)) {
			s.log.Warn("teamgate: expiry write failed", "change", c.Kind(), "err", err)
			ok = false
		}
	}
	return next, ok
}

// expiryRetry is how long the expiry loop waits after a failed write before trying again
// (readers treat the entry as absent meanwhile).
const expiryRetry = time.Second

// ExpireWith runs the store's expiry loop with apply as the writer until ctx ends or the store
// closes: at each expires_at, apply gets the revocations due (ExpireTeamMember, ExpireGrant).
// A store that is not a replica runs it by itself with Apply from Open on; a cluster node runs
// it on its replicated store with its own Apply, so the revocation goes through the log like
// any write (a duplicate from another node fails validation and changes nothing).
func (s *Store) ExpireWith(ctx context.Context, apply func(context.Context, ...Change) (uint64, error)) {
	s.expireLoop(ctx, apply, false)
}

// expireLoop is ExpireWith; own marks the store's own loop, which stands aside while the store
// is replicated (its node expires).
func (s *Store) expireLoop(ctx context.Context, apply func(context.Context, ...Change) (uint64, error), own bool) {
	for {
		s.mu.RLock()
		if s.closed {
			s.mu.RUnlock()
			return
		}
		changed, idle := s.changed, own && s.replicated
		s.mu.RUnlock()
		var wake <-chan time.Time
		if !idle {
			next, ok := s.expireDue(ctx, apply)
			switch {
			case !ok:
				wake = s.clock.After(expiryRetry)
			case !next.IsZero():
				wake = s.clock.After(max(next.Sub(s.clock.Now()), 0))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		case <-changed: // a write may have added, renewed or removed an expiry
		case <-wake:
		}
	}
}

// FileMember is a team member in a data file: the role alone (`bob: contributor`) or a map with
// an expiry (`bob: {role: contributor, expires_at: 2026-07-01T00:00:00Z}`).
type FileMember struct {
	Role      string    `json:"role" yaml:"role"`
	ExpiresAt time.Time `json:"expires_at,omitzero" yaml:"expires_at,omitempty"` // RFC 3339; zero: never
}

// fileMember is FileMember without its methods, to decode the map form.
type fileMember FileMember

// UnmarshalJSONFrom reads either form, under the decoder's (strict) options.
func (m *FileMember) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	if dec.PeekKind() == '"' {
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		*m = FileMember{Role: tok.String()}
		return nil
	}
	if k := dec.PeekKind(); k != '{' {
		kinds := map[jsontext.Kind]string{'[': "a list", 'n': "null", 't': "a boolean", 'f': "a boolean", '0': "a number"}
		return fmt.Errorf("expected a role or {role, expires_at}, got %s", kinds[k])
	}
	var v fileMember
	if err := jsonv2.UnmarshalDecode(dec, &v); err != nil {
		return err
	}
	*m = FileMember(v)
	return nil
}

// UnmarshalJSON reads either form (encoding/json).
func (m *FileMember) UnmarshalJSON(b []byte) error {
	return jsonv2.Unmarshal(b, m, jsonv2.RejectUnknownMembers(true))
}

// MarshalJSON writes the role alone when the membership does not expire.
func (m FileMember) MarshalJSON() ([]byte, error) {
	if m.ExpiresAt.IsZero() {
		return jsonv2.Marshal(m.Role)
	}
	return jsonv2.Marshal(fileMember(m))
}

// MarshalYAML writes the role alone when the membership does not expire.
func (m FileMember) MarshalYAML() (any, error) {
	if m.ExpiresAt.IsZero() {
		return m.Role, nil
	}
	return struct {
		Role      string `yaml:"role"`
		ExpiresAt string `yaml:"expires_at"`
	}{m.Role, m.ExpiresAt.UTC().Format(time.RFC3339Nano)}, nil
}

// encodeTeamMember is a team membership record's value: the role, then a space and the
// expiry (RFC 3339) when it has one.
func encodeTeamMember(role string, exp int64) []byte {
	if exp == 0 {
		return []byte(role)
	}
	return fmt.Appendf(nil, "%s %s", role, time.Unix(0, exp).UTC().Format(time.RFC3339Nano))
}

// splitTeamMember reads encodeTeamMember's value.
func splitTeamMember(val []byte) (role []byte, exp time.Time, err error) {
	role, at, ok := bytes.Cut(val, []byte{' '})
	if !ok {
		return role, time.Time{}, nil
	}
	exp, err = time.Parse(time.RFC3339Nano, string(at))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("bad expiry %q: %w", truncate(string(at)), err)
	}
	return role, exp, nil
}

// loadedExpiries collects the expiring memberships Open's parallel loaders read, to store them
// in their orgs once the loaders are done.
type loadedExpiries struct {
	mu   sync.Mutex // guards list
	list []loadedExpiry
}

type loadedExpiry struct {
	o   *orgData
	key [2]uint32
	exp int64
}

func (l *loadedExpiries) add(o *orgData, td *teamData, id uint32, at time.Time) {
	l.mu.Lock()
	l.list = append(l.list, loadedExpiry{o, [2]uint32{td.id, id}, unixOrZero(at)})
	l.mu.Unlock()
}

func (l *loadedExpiries) store() {
	for _, e := range l.list {
		e.o.memberExpiry[e.key] = e.exp
	}
}

// startExpiry applies the revocations that fell due while the store was closed, before Open
// returns (so no reader, no cache decoded from disk, ever meets them unrevoked on disk), then
// starts the store's expiry loop. A replicated store writes none (its node expires); its loop
// idles while it is one and starts writing after Detach, at the next write.
func (s *Store) startExpiry(ctx context.Context) error {
	if !s.Replicated() {
		if _, ok := s.expireDue(ctx, s.Apply); !ok {
			return fmt.Errorf("store: open: revoking expired memberships and grants failed")
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.expireLoop(context.Background(), s.Apply, true)
	}()
	return nil
}

// TeamMemberExpiry returns when user's membership of team ends: zero when it never does. ok is
// false when the user is not a member of the team for this reader (never was, or it expired).
func (r Reader) TeamMemberExpiry(org, team, user string) (at time.Time, ok bool) {
	r.dep('m', org, user)
	o, found := r.st.orgs[org]
	if !found {
		return time.Time{}, false
	}
	td, found := o.teams[team]
	if !found || o.teamRole(td, user) == 0 {
		return time.Time{}, false
	}
	exp := o.teamExpiry(td, user)
	if !r.live(exp) {
		return time.Time{}, false
	}
	if exp == 0 {
		return time.Time{}, true
	}
	return time.Unix(0, exp).UTC(), true
}

// Now is the store's clock (Options.Clock): the time expiries are measured by.
func (s *Store) Now() time.Time { return s.clock.Now() }

// hasMemberExpiry reports whether any team membership expires (the membership snapshot, which
// does not encode expiries, is then not written).
func (st *state) hasMemberExpiry() bool {
	for _, o := range st.orgs {
		if len(o.memberExpiry) > 0 {
			return true
		}
	}
	return false
}
