package authz

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/store"
)

// EventLog is the kept change log AccessDiff replays: *store.Store (Watch streams the events it
// keeps, see the store package doc on events and their retention).
type EventLog interface {
	Watch(ctx context.Context, fromRevision uint64) (<-chan store.Event, error)
	Revision() uint64
}

// AccessDiff is how effective project roles changed between two revisions.
type AccessDiff struct {
	From    uint64         `json:"from"`
	To      uint64         `json:"to"`
	Changes []AccessChange `json:"changes"` // by project, then subject; never nil
}

// AccessChange is one (subject, project) whose effective role differs between the revisions.
type AccessChange struct {
	Subject string `json:"subject"`
	Project string `json:"project"` // org/project
	Before  string `json:"before"`  // the effective role at From ("none" when none)
	After   string `json:"after"`   // the effective role at To
	// Causes are the writes in (From, To] at which the pair's role changed, in order.
	Causes []Cause `json:"causes"`
}

// Cause is one write: its revision and its event's kind, and when the write made the pair's
// grant a break-glass elevation (authz.Engine.BreakGlass), who made it, when and why.
type Cause struct {
	Revision   uint64            `json:"revision"`
	Kind       string            `json:"kind"`
	BreakGlass *store.BreakGlass `json:"break_glass,omitempty"`
}

// breakGlassOf returns the break-glass record a replayed write gave pair p's grant, if any
// (nil also when the event's changes were not kept).
func breakGlassOf(ev store.Event, p accessPair) *store.BreakGlass {
	var out *store.BreakGlass
	for _, c := range ev.Changes {
		var g store.Grant
		switch c := c.(type) {
		case store.PutGrant:
			if c.Org != p.org || c.Project != p.project || c.User != p.user {
				continue
			}
			g = c.Grant
		case store.PutProject:
			if c.Project.Org != p.org || c.Project.Name != p.project {
				continue
			}
			g = c.Project.Grants[p.user]
		default:
			continue
		}
		out = g.BreakGlass // the last write of the batch to the grant is the one in force
	}
	return out
}

// frozenClock stands at the zero time: a replayed directory is the state as written, and an
// expiry counts at the revision that wrote it, not by today's clock.
type frozenClock struct{}

func (frozenClock) Now() time.Time                       { return time.Time{} }
func (frozenClock) After(time.Duration) <-chan time.Time { return nil }

// DiffAccess computes which (subject, project) effective roles — the role a project.get
// decision reports, under the default policy plus opts — differ between revisions from and to
// of log, and which writes caused each. It replays the kept events from revision 1 into an
// in-memory directory and decides every pair at from; then, after each write of (from, to], it
// decides again the pairs that write can have changed (a subject its event names with every
// project of the subject's org, a project it names with every member of its org), so an
// AccessChange's Causes are exactly the writes at which its role changed. It needs every event
// since revision 1 (ErrStale when the oldest were trimmed: the store keeps the last 100,000) and
// events that carry their changes; from <= to <= the log's revision (ErrInvalid otherwise).
// Expiries count at the revision of their revocation write (the replay's clock stands still).
// The engine opts configure is closed on return; its decisions, on a replayed directory, are an
// analysis and are not logged (WithDecisionLog).
func DiffAccess(ctx context.Context, log EventLog, from, to uint64, opts ...Option) (AccessDiff, error) {
	out := AccessDiff{From: from, To: to, Changes: []AccessChange{}}
	if rev := log.Revision(); from > to || to > rev {
		return out, teamgate.Invalid("revision range", fmt.Sprintf("%d..%d", from, to),
			"needs from <= to <= the current revision "+strconv.FormatUint(rev, 10))
	}
	if from == to {
		return out, nil
	}
	replay, err := store.Open(ctx, store.Options{Clock: frozenClock{}})
	if err != nil {
		return out, err
	}
	defer func() { _ = replay.Close() }()
	rep, err := replay.Replicate()
	if err != nil {
		return out, err
	}
	eng, err := New(ctx, replay, opts...)
	if err != nil {
		return out, err
	}
	defer func() { _ = eng.Close(ctx) }() // its metrics unregistered, its log's goroutine ended
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := log.Watch(wctx, 0)
	if err != nil {
		return out, fmt.Errorf("access-diff replays the events since revision 1: %w", err)
	}
	// cur holds the roles at the replay's revision: every pair with a role at from, then each
	// pair a replayed write touched; causes, the writes at which a pair's role changed.
	var cur map[accessPair]string
	causes := map[accessPair][]Cause{}
	replayTo := func(upto uint64) error {
		for replay.Revision() < upto {
			ev, ok := <-events
			if !ok {
				return ctx.Err()
			}
			if ev.Err != nil {
				return fmt.Errorf("access-diff replays the events since revision 1: %w", ev.Err)
			}
			if _, err := rep.ApplyEvent(ctx, ev); err != nil {
				return fmt.Errorf("access-diff: replay revision %d: %w", ev.Revision, err)
			}
			if cur == nil {
				continue
			}
			pairs, err := touched(replay, ev, cur)
			if err != nil {
				return err
			}
			now, err := roles(ctx, eng, replay, pairs)
			if err != nil {
				return err
			}
			for _, p := range pairs {
				if r := cmp.Or(now[p], "none"); r != cmp.Or(cur[p], "none") {
					cur[p] = r
					causes[p] = append(causes[p], Cause{Revision: ev.Revision, Kind: ev.Kind, BreakGlass: breakGlassOf(ev, p)})
				}
			}
		}
		return nil
	}
	if err := replayTo(from); err != nil {
		return out, err
	}
	before, err := roles(ctx, eng, replay, nil)
	if err != nil {
		return out, err
	}
	cur = maps.Clone(before)
	if err := replayTo(to); err != nil {
		return out, err
	}
	for p := range causes {
		if b, a := cmp.Or(before[p], "none"), cmp.Or(cur[p], "none"); a != b {
			out.Changes = append(out.Changes, AccessChange{Subject: p.user, Project: p.org + "/" + p.project, Before: b, After: a, Causes: causes[p]})
		}
	}
	slices.SortFunc(out.Changes, func(a, b AccessChange) int {
		return cmp.Or(strings.Compare(a.Project, b.Project), strings.Compare(a.Subject, b.Subject))
	})
	return out, nil
}

type accessPair struct{ org, project, user string }

// roles decides project.get for pairs (nil: every member of every org with every project of
// it) and returns the roles that are not none.
func roles(ctx context.Context, eng *Engine, dir *store.Store, pairs []accessPair) (map[accessPair]string, error) {
	if pairs == nil {
		if err := dir.View(func(r store.Reader) error {
			for _, org := range r.Orgs() {
				for u := range r.Members(org) {
					for _, p := range r.Projects(org) {
						pairs = append(pairs, accessPair{org, p, u})
					}
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	out := map[accessPair]string{}
	for _, p := range pairs {
		d, err := eng.Authorize(ctx, Request{Subject: p.user, Action: "project.get", Resource: p.org + "/" + p.project, unlogged: true})
		if err != nil {
			return nil, err
		}
		if d.Role != "none" && d.Role != "" {
			out[p] = d.Role
		}
	}
	return out, nil
}

// touched lists the pairs a replayed event may have changed: a subject it names with every
// project of its org, a project it names with every member of its org (a truncated event: every
// pair of every org), as the directory holds them after the event or with a role before it.
func touched(dir *store.Store, ev store.Event, before map[accessPair]string) ([]accessPair, error) {
	subjects, projects, all := map[string]bool{}, map[string]bool{}, ev.Truncated
	for _, s := range ev.Subjects {
		subjects[s] = true
	}
	for _, p := range ev.Projects {
		projects[p] = true
	}
	set := map[accessPair]bool{}
	for p := range before {
		if all || subjects[p.org+"/"+p.user] || projects[p.org+"/"+p.project] {
			set[p] = true
		}
	}
	err := dir.View(func(r store.Reader) error {
		for _, org := range r.Orgs() {
			members := r.Members(org)
			for _, p := range r.Projects(org) {
				for u := range members {
					if all || subjects[org+"/"+u] || projects[org+"/"+p] {
						set[accessPair{org, p, u}] = true
					}
				}
			}
		}
		return nil
	})
	return slices.Collect(maps.Keys(set)), err
}
