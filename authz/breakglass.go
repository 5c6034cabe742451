package authz

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/scope"
	"github.com/teamgate/teamgate/store"
)

// Break-glass bounds: an elevation lasts DefaultBreakGlass unless the request says otherwise,
// and never more than MaxBreakGlass.
const (
	DefaultBreakGlass = time.Hour
	MaxBreakGlass     = 24 * time.Hour
)

// BreakGlassRequest asks for an emergency elevation of Actor on one project.
type BreakGlassRequest struct {
	Actor   string
	Project string // `org/project` or `org/team/project`
	// Role is the project role granted; "" means admin.
	Role string
	// Justification says why; required: one line of printable UTF-8 text, at most
	// store.MaxJustification bytes (no control characters or bidirectional overrides, which
	// would forge or hide text where it is shown).
	Justification string
	// Duration is how long the elevation lasts: DefaultBreakGlass when 0, at most MaxBreakGlass.
	Duration time.Duration
}

// Elevation is the outcome of BreakGlass.
type Elevation struct {
	// Decision is the actor's org.break_glass decision; nothing was written unless it allows.
	Decision  Decision  `json:"decision"`
	Project   string    `json:"project"` // org/project
	Role      string    `json:"role"`
	At        time.Time `json:"at,omitzero"`         // left out on a deny
	ExpiresAt time.Time `json:"expires_at,omitzero"` // left out on a deny
	Revision  uint64    `json:"revision"`
}

// BreakGlass elevates req.Actor on a project for a bounded time: a grant of req.Role carrying
// store.BreakGlass (actor, time, justification) and expires_at, revoked by the store at expiry
// like any expiring grant. Decisions it allows carry the reason code break_glass, which the Rego
// policy gives (input.subject.break_glass). The actor must be allowed the org action
// org.break_glass (org owners, managers and admins under the default catalog, rego/data.json):
// nobody elevates someone else. Time comes from the Directory's clock when it has one (a
// store's Options.Clock), else the system clock.
//
// A missing justification, a bad role or duration is ErrInvalid; an actor who already holds an
// ordinary grant on the project is ErrConflict (the elevation would replace it, and its expiry
// remove it: change the grant instead). A break-glass grant already in force is replaced (the
// elevation is extended). An actor not allowed org.break_glass gets the deny in Decision and no
// error; nothing is written.
func (e *Engine) BreakGlass(ctx context.Context, req BreakGlassRequest) (el Elevation, err error) {
	ctx, sp := e.startSpan(ctx, "teamgate.BreakGlass", "teamgate.project", req.Project)
	defer func() { sp.endWrite(el.Decision.Allowed, el.Revision, err) }()
	if strings.TrimSpace(req.Justification) == "" {
		return Elevation{}, teamgate.Invalid("break-glass justification", req.Justification, "required: say why")
	}
	if req.Role == "" {
		req.Role = string(teamgate.RoleAdmin)
	}
	switch {
	case req.Duration == 0:
		req.Duration = DefaultBreakGlass
	case req.Duration < 0 || req.Duration > MaxBreakGlass:
		return Elevation{}, teamgate.Invalid("break-glass duration", req.Duration.String(), "must be above 0 and at most "+MaxBreakGlass.String())
	}
	ref, err := scope.ParseFullProject(req.Project)
	if err != nil {
		return Elevation{}, err
	}
	d, err := e.Authorize(ctx, Request{Subject: req.Actor, Action: "org.break_glass", Resource: ref.Org})
	if err != nil || !d.Allowed {
		return Elevation{Decision: d}, err
	}
	at := e.now()
	el = Elevation{Decision: d, Project: ref.Org + "/" + ref.Project, Role: req.Role, At: at, ExpiresAt: at.Add(req.Duration)}
	err = e.dir.View(func(r store.Reader) error {
		pv, ok := r.Project(ref.Org, ref.Project)
		if !ok {
			return &teamgate.NotFoundError{What: "project", Name: el.Project}
		}
		if ref.Team != "" && r.Access(ref.Org, ref.Team, ref.Project, req.Actor).Missing != store.Found {
			return &teamgate.NotFoundError{What: "project", Name: req.Project} // not in that team space
		}
		if g, ok := pv.Project.Grants[req.Actor]; ok && g.BreakGlass == nil {
			return &teamgate.ConflictError{What: "grant", Name: el.Project + "/" + req.Actor,
				Reason: "already holds a " + g.Role + " grant: a break-glass elevation would replace it and its expiry remove it"}
		}
		return nil
	})
	if err != nil {
		return el, err
	}
	g := store.Grant{Role: req.Role, ExpiresAt: el.ExpiresAt,
		BreakGlass: &store.BreakGlass{Actor: req.Actor, At: at, Justification: req.Justification}}
	el.Revision, err = e.dir.Apply(ctx, store.PutGrant{Org: ref.Org, Project: ref.Project, User: req.Actor, Grant: g})
	return el, err
}

// now is the Directory's clock when it has one (a store's Options.Clock, a cluster node's), else
// the system clock: the time expiries are measured by.
func (e *Engine) now() time.Time {
	if c, ok := e.dir.(interface{ Now() time.Time }); ok {
		return c.Now()
	}
	return time.Now()
}

// ActiveElevation is a break-glass elevation in force: a grant carrying store.BreakGlass.
type ActiveElevation struct {
	User          string    `json:"user"`  // whose access: the grant's holder
	Actor         string    `json:"actor"` // who made it (the holder, through BreakGlass)
	Project       string    `json:"project"`
	Role          string    `json:"role"`
	At            time.Time `json:"at"`
	ExpiresAt     time.Time `json:"expires_at"`
	Justification string    `json:"justification"`
}

// ElevationList is the result of Elevations.
type ElevationList struct {
	Elevations []ActiveElevation `json:"elevations"` // never nil
	Revision   uint64            `json:"revision"`
	// Now is the clock the list was read at: an elevation whose expires_at is at or before it
	// has ended, whether or not its revocation is written yet, and is not listed.
	Now time.Time `json:"now"`
}

// Elevations lists the break-glass elevations in force in orgs (every org when none is given),
// sorted by project and user: who holds each, who made it, the role, when, until when and why.
// Like Lint it is an operator's listing and decides nothing: the host chooses who may see it.
// An org name that is not a slug matches teamgate.ErrInvalid; an unknown org
// teamgate.ErrNotFound.
func (e *Engine) Elevations(ctx context.Context, orgs ...string) (ElevationList, error) {
	if err := checkOrgNames(orgs); err != nil {
		return ElevationList{}, err
	}
	out := ElevationList{Elevations: []ActiveElevation{}}
	err := e.dir.View(func(r store.Reader) error {
		out.Revision, out.Now = r.Revision(), e.now()
		names, err := listedOrgs(r, orgs)
		if err != nil {
			return err
		}
		for _, o := range names {
			for _, p := range r.Projects(o) {
				pv, _ := r.Project(o, p) // without the grants that have expired
				for u, g := range pv.Project.Grants {
					if b := g.BreakGlass; b != nil && g.ExpiresAt.After(out.Now) {
						out.Elevations = append(out.Elevations, ActiveElevation{User: u, Actor: b.Actor, Project: o + "/" + p,
							Role: g.Role, At: b.At, ExpiresAt: g.ExpiresAt, Justification: b.Justification})
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return ElevationList{}, err
	}
	slices.SortFunc(out.Elevations, func(a, b ActiveElevation) int {
		return cmp.Or(cmp.Compare(a.Project, b.Project), cmp.Compare(a.User, b.User))
	})
	return out, ctx.Err()
}

// EndBreakGlassRequest asks to end a break-glass elevation before its expiry.
type EndBreakGlassRequest struct {
	Actor   string // who ends it
	Project string // `org/project` or `org/team/project`
	User    string // whose elevation; "" means Actor's own
}

// EndedElevation is the outcome of EndBreakGlass.
type EndedElevation struct {
	// Decision is the actor's org.break_glass decision; nothing was written unless it allows.
	Decision  Decision         `json:"decision"`
	Elevation *ActiveElevation `json:"elevation"` // the elevation ended; nil when nothing was
	EndedAt   time.Time        `json:"ended_at,omitzero"`
	Revision  uint64           `json:"revision"`
}

// EndBreakGlass ends an elevation in force before its expiry (store.EndBreakGlass: the grant is
// removed, the event names who ended it). Who may: whoever may make one in the org — the actor
// must be allowed org.break_glass there, the same decision BreakGlass asks for — and they may
// end anyone's elevation in the org, as an incident lead or a security reviewer revokes an
// access request; the holder ends their own under the same rule (one who has lost
// org.break_glass since waits for the expiry, or asks someone who has it). An actor not allowed
// gets the deny in Decision and no error; nothing is written.
//
// A project or user that does not exist, or a user holding no elevation there, is
// teamgate.ErrNotFound; an ordinary grant is teamgate.ErrConflict (it is not an elevation: the
// grant is managed with project.access). An elevation extended or replaced between the read and
// the write is ErrConflict too (the end applies only to the elevation read).
func (e *Engine) EndBreakGlass(ctx context.Context, req EndBreakGlassRequest) (ended EndedElevation, err error) {
	ctx, sp := e.startSpan(ctx, "teamgate.EndBreakGlass", "teamgate.project", req.Project)
	defer func() { sp.endWrite(ended.Decision.Allowed, ended.Revision, err) }()
	if req.User == "" {
		req.User = req.Actor
	}
	if err := scope.CheckSlug("user", req.User); err != nil {
		return EndedElevation{}, err
	}
	ref, err := scope.ParseFullProject(req.Project)
	if err != nil {
		return EndedElevation{}, err
	}
	d, err := e.Authorize(ctx, Request{Subject: req.Actor, Action: "org.break_glass", Resource: ref.Org})
	if err != nil || !d.Allowed {
		return EndedElevation{Decision: d}, err
	}
	out := EndedElevation{Decision: d}
	name := ref.Org + "/" + ref.Project
	err = e.dir.View(func(r store.Reader) error {
		pv, ok := r.Project(ref.Org, ref.Project)
		if !ok {
			return &teamgate.NotFoundError{What: "project", Name: name}
		}
		g, ok := pv.Project.Grants[req.User]
		switch {
		case !ok:
			return &teamgate.NotFoundError{What: "break-glass elevation", Name: name + "/" + req.User,
				Reason: req.User + " holds no break-glass elevation on project " + name}
		case g.BreakGlass == nil:
			return &teamgate.ConflictError{What: "grant", Name: name + "/" + req.User,
				Reason: "an ordinary " + g.Role + " grant, not a break-glass elevation: manage it with project.access"}
		}
		b := g.BreakGlass
		out.Elevation = &ActiveElevation{User: req.User, Actor: b.Actor, Project: name, Role: g.Role, At: b.At,
			ExpiresAt: g.ExpiresAt, Justification: b.Justification}
		return nil
	})
	if err != nil {
		return EndedElevation{Decision: d}, err
	}
	out.EndedAt = e.now()
	out.Revision, err = e.dir.Apply(ctx, store.EndBreakGlass{Org: ref.Org, Project: ref.Project, User: req.User,
		ExpiresAt: out.Elevation.ExpiresAt, By: req.Actor})
	if err != nil {
		return EndedElevation{Decision: d}, err
	}
	return out, nil
}
