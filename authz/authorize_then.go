package authz

import (
	"context"
	"slices"

	"github.com/teamgate/teamgate/rego"
)

// thenFunc turns a decision into the one the caller acts on (a bulk version listing's feature
// check after its permission).
type thenFunc func(Decision, error) (Decision, error)

// authorizeThen is Authorize of req followed by then, observed and logged as one decision: the
// metrics, the span and the decision log record the decision then returns, not the permission
// alone (a run of list_component_versions allowed by the policy and denied by its project's
// excluded_features is logged as that deny). Not on the hot path: only BulkRuns' version
// listings call it.
func (e *Engine) authorizeThen(ctx context.Context, req *Request, then thenFunc) (Decision, error) {
	logged := e.logs(req)
	if e.obs != nil {
		return e.obs.authorizeThen(ctx, e, req, logged, then)
	}
	if !logged {
		d, err := e.authorize(ctx, req, nil)
		return then(d, err)
	}
	var t decisionTrace // decided, neither observed nor logged: t says how
	d, err := e.authorize(ctx, req, &t)
	d, err = thenOf(then, d, err, &t)
	if err != nil {
		t.path = PathNone
	}
	e.record(req, &d, &t, err)
	return d, err
}

// thenOf applies then to a decision made with trace t. When it changes the decision, the
// decision table's cell in t no longer describes it, so the log records the decision itself.
func thenOf(then thenFunc, d Decision, err error, t *decisionTrace) (Decision, error) {
	nd, nerr := then(d, err)
	if nerr != nil || nd.Allowed != d.Allowed || nd.Role != d.Role || !slices.Equal(nd.Reasons, d.Reasons) {
		t.verdict = rego.VerdictView{}
	}
	return nd, nerr
}
