package decisionlog

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
	"github.com/teamgate/teamgate/store"
)

// Change is a logged decision that the engine now decides differently, and what changed since.
type Change struct {
	Record authz.DecisionRecord `json:"record"` // as logged
	Now    authz.Decision       `json:"now"`    // the decision now
	Error  string               `json:"error,omitempty"`
	// PolicyChanged is set when the policy in force now is not the one that decided then (the
	// record's policy fingerprint differs from the engine's).
	PolicyChanged bool `json:"policy_changed"`
	// Writes are the directory's writes after the logged decision's revision that name its
	// subject or its project (store.Event's Subjects and Projects; a truncated event names
	// everything), in order, when Recheck has the directory's event log (WithEvents); null
	// without one, or when the events since that revision are no longer kept.
	Writes []authz.Cause `json:"writes"`
}

// RecheckOption configures Recheck.
type RecheckOption func(*recheckConfig)

type recheckConfig struct{ events authz.EventLog }

// WithEvents gives Recheck the change log of the directory whose revisions the records carry
// (the host's *store.Store, opened again: the directory the log was written against), so that
// each Change lists the writes since its decision that name its subject or project. Events of
// another directory would name unrelated writes: leave it out then.
func WithEvents(log authz.EventLog) RecheckOption {
	return func(c *recheckConfig) { c.events = log }
}

// Recheck decides the request of each record q selects again with eng (its directory and
// policy as they are now) and calls fn with those whose outcome differs: allowed then and denied
// now, or the reverse. A request that failed, then or now, counts as denied; a change of role or
// reasons alone is not a change of outcome. MinRevision is not waited for again (the recheck is
// about the directory now). Each Change says whether the policy changed and, WithEvents, which
// writes since the decision touched its subject or project. Give an engine without a decision
// log, or the rechecks are logged too. The context ending or the engine's directory closing
// stops the recheck with its error.
func Recheck(ctx context.Context, l *Log, eng *authz.Engine, q Query, fn func(Change) error, opts ...RecheckOption) error {
	var c recheckConfig
	for _, o := range opts {
		o(&c)
	}
	writes := &eventCache{log: c.events}
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
		ch := Change{Record: r, Now: d, PolicyChanged: r.Policy != eng.Policy().Fingerprint()}
		if err != nil {
			ch.Error = err.Error()
			ch.Now = authz.Decision{Role: "none", Reasons: []authz.Reason{}}
		}
		if ch.Now.Reasons == nil {
			ch.Now.Reasons = []authz.Reason{}
		}
		if ch.Writes, err = writes.naming(ctx, eng.Policy(), r); err != nil {
			return err
		}
		return fn(ch)
	})
}

// eventCache holds the writes after the smallest revision asked for so far (their revision and
// kind: an event's changes are not kept), indexed by the subjects and projects they name.
// Records come in time order, oldest or newest first: newest first, each older revision would
// read the events again from it, so a reload reads from twice as far back as asked (a few
// reloads for the whole log, not one per revision: 3,000 records at distinct revisions took
// 85 s). The index makes a record's writes cost the writes that name it, not every event since
// its revision.
type eventCache struct {
	log    authz.EventLog // nil: no events
	from   uint64         // writes holds every event after from, up to the log's revision when read
	writes []authz.Cause
	by     map[string][]int // "org/user" subjects and "p:org/project" projects → indexes into writes, ascending
	broad  []int            // the indexes of truncated events, which name everything
	loaded bool
	gone   uint64 // the events after revisions below this are trimmed (0: none seen)
}

// naming returns the writes after r's revision that name r's subject or project; nil without a
// log or when those events are trimmed.
func (c *eventCache) naming(ctx context.Context, p *rego.Policy, r authz.DecisionRecord) ([]authz.Cause, error) {
	rev := r.Decision.Revision
	if c.log == nil || rev < c.gone {
		return nil, nil
	}
	if !c.loaded || rev < c.from {
		from := rev
		if c.loaded { // going back: read twice as far back as asked
			from -= min(rev, c.from-rev+uint64(len(c.writes)))
		}
		// The store's trimmed end, when it says: revisions before it are gone, and a reload near it
		// reads all that is kept rather than once per revision.
		var te *store.TrimmedError
		err := c.load(ctx, from)
		if errors.Is(err, teamgate.ErrStale) && from < rev {
			from = rev
			if errors.As(err, &te) && te.Oldest > 0 && te.Oldest-1 < rev {
				from = te.Oldest - 1
			}
			err = c.load(ctx, from)
		}
		if errors.Is(err, teamgate.ErrStale) {
			c.gone = rev + 1
			if errors.As(err, &te) && te.Oldest > 0 {
				c.gone = max(c.gone, te.Oldest-1)
			}
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
	org, project := orgProject(p, r.Request)
	first := sort.Search(len(c.writes), func(i int) bool { return c.writes[i].Revision > rev })
	lists := [][]int{c.broad, c.by[org+"/"+r.Request.Subject]}
	if project != "" {
		lists = append(lists, c.by["p:"+org+"/"+project])
	}
	var idx []int
	for _, l := range lists {
		idx = append(idx, l[sort.SearchInts(l, first):]...)
	}
	slices.Sort(idx)
	out := []authz.Cause{}
	for _, i := range slices.Compact(idx) {
		out = append(out, c.writes[i])
	}
	return out, nil
}

// load reads the log's events after revision from, up to its revision now, into the cache,
// indexing each as it comes (the events are not kept: a 100,000-event store's took hundreds of
// MB). On an error the cache is left empty.
func (c *eventCache) load(ctx context.Context, from uint64) error {
	c.writes, c.by, c.broad, c.loaded = nil, map[string][]int{}, nil, false
	to := c.log.Revision()
	if from < to {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		ch, err := c.log.Watch(wctx, from)
		if err != nil {
			return err
		}
		for done := false; !done; {
			ev, ok := <-ch
			switch {
			case !ok:
				return errors.Join(ctx.Err(), teamgate.ErrClosed)
			case ev.Err != nil:
				return ev.Err
			}
			i := len(c.writes)
			c.writes = append(c.writes, authz.Cause{Revision: ev.Revision, Kind: ev.Kind})
			if ev.Truncated {
				c.broad = append(c.broad, i)
			}
			for _, s := range ev.Subjects {
				c.by[s] = append(c.by[s], i)
			}
			for _, p := range ev.Projects {
				c.by["p:"+p] = append(c.by["p:"+p], i)
			}
			done = ev.Revision >= to
		}
	}
	c.from, c.loaded = from, true
	return nil
}

// orgProject is the org of a request and the project it names ("" for an org or team request),
// parsed as the engine parses it (SPEC §3: any spelling of a project reference, a context
// owner), by the kind of resource its action takes in the policy now (a project reference when
// the action is no longer in the catalog). A request that does not parse (it failed) names its
// first `/`-separated part as its org and no project.
func orgProject(p *rego.Policy, req authz.Request) (org, project string) {
	var owner scope.Owner
	if req.Owner != "" {
		if o, err := scope.ParseOwner(req.Owner); err == nil {
			owner = o
		}
	}
	kind := scope.KindProject
	if spec, ok := p.Spec(req.Action); ok {
		kind = spec.Kind()
	}
	if res, err := scope.ParseResource(kind, req.Resource, owner); err == nil {
		if kind == scope.KindProject {
			return res.Ref.Org, res.Ref.Project
		}
		return res.Owner.Org, ""
	}
	org, _, _ = strings.Cut(req.Resource, "/")
	return org, ""
}
