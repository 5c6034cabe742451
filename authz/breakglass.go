package authz

import (
	"context"
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
	At        time.Time `json:"at"`
	ExpiresAt time.Time `json:"expires_at"`
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
func (e *Engine) BreakGlass(ctx context.Context, req BreakGlassRequest) (Elevation, error) {
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
	at := time.Now()
	if c, ok := e.dir.(interface{ Now() time.Time }); ok {
		at = c.Now()
	}
	el := Elevation{Decision: d, Project: ref.Org + "/" + ref.Project, Role: req.Role, At: at, ExpiresAt: at.Add(req.Duration)}
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
