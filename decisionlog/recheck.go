package decisionlog

import (
	"context"
	"errors"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
)

// Change is a logged decision that the engine now decides differently.
type Change struct {
	Record authz.DecisionRecord `json:"record"` // as logged
	Now    authz.Decision       `json:"now"`    // the decision now
	Error  string               `json:"error,omitempty"`
}

// Recheck decides the request of each record q selects again with eng (its directory and
// policy as they are now) and calls fn with those whose outcome differs: allowed then and denied
// now, or the reverse. A request that failed, then or now, counts as denied; a change of role or
// reasons alone is not a change of outcome. MinRevision is not waited for again (the recheck is
// about the directory now). Give an engine without a decision log, or the rechecks are logged
// too. The context ending or the engine's directory closing stops the recheck with its error.
func Recheck(ctx context.Context, l *Log, eng *authz.Engine, q Query, fn func(Change) error) error {
	return l.Query(ctx, q, func(r authz.DecisionRecord) error {
		req := r.Request
		req.MinRevision = 0
		d, err := eng.Authorize(ctx, req)
		if err != nil && (ctx.Err() != nil || errors.Is(err, teamgate.ErrClosed)) {
			return err
		}
		before := r.Decision.Allowed && r.Path != authz.PathNone
		now := d.Allowed && err == nil
		if before == now {
			return nil
		}
		c := Change{Record: r, Now: d}
		if err != nil {
			c.Error = err.Error()
			c.Now = authz.Decision{Role: "none", Reasons: []authz.Reason{}}
		}
		if c.Now.Reasons == nil {
			c.Now.Reasons = []authz.Reason{}
		}
		return fn(c)
	})
}
