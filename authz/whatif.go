package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/scope"
	"github.com/teamgate/teamgate/store"
)

// Simulator is an optional capability of a Directory: validating a batch and applying it to a
// private copy instead of the directory (store.Store.Simulate). Simulate needs it; *store.Store
// implements it.
type Simulator interface {
	Simulate(ctx context.Context, changes ...store.Change) (*store.Simulation, error)
}

var _ Simulator = (*store.Store)(nil)

// WhatIf is what a batch of changes would change, found by Simulate without applying it. Its
// JSON is the `teamgate whatif` output; arrays are never null.
type WhatIf struct {
	// Revision is the revision the batch was checked against: "before" is the directory at it.
	Revision uint64 `json:"revision"`
	// Projects and Subjects are what the batch touches (store.Simulation): projects whose
	// record, policy or org defaults change, and "org/user" subjects whose memberships or grants
	// change. Pairs is how many (subject, project) pairs they make (see Simulate).
	Projects []string `json:"projects"`
	Subjects []string `json:"subjects"`
	Pairs    int      `json:"pairs"`
	// Decisions, Settings and Admissions are what changes, in order of subject (settings:
	// project), project and action.
	Decisions  []DecisionChange  `json:"decisions"`
	Settings   []SettingsChange  `json:"settings"`
	Admissions []AdmissionChange `json:"admissions"`
}

// DecisionChange is one decision a batch (Simulate) or a policy (DiffPolicy) changes: Allowed,
// Role or the reason codes differ. Project names the resource of a project action; Resource,
// that of an org or team action (DiffPolicy only).
type DecisionChange struct {
	Subject  string   `json:"subject"`
	Project  string   `json:"project,omitempty"`  // "org/project"
	Resource string   `json:"resource,omitempty"` // "org" or "org/team"
	Action   string   `json:"action"`
	Before   Decision `json:"before"`
	After    Decision `json:"after"`
}

// SettingsChange is a project whose effective settings (SPEC §6, for no particular user) a batch
// changes. Before or After is nil where the project does not exist.
type SettingsChange struct {
	Project string    `json:"project"` // "org/project"
	Before  *Settings `json:"before"`
	After   *Settings `json:"after"`
}

// AdmissionDefaults is what Admit picks for a run that names no queue and no presets.
type AdmissionDefaults struct {
	Queue   string   `json:"queue"`
	Presets []string `json:"presets"`
}

// AdmissionChange is a (subject, project) pair whose admission defaults a batch changes.
type AdmissionChange struct {
	Subject string            `json:"subject"`
	Project string            `json:"project"` // "org/project"
	Before  AdmissionDefaults `json:"before"`
	After   AdmissionDefaults `json:"after"`
}

// Simulate reports what applying changes would change — project decisions subject by subject,
// effective settings project by project, admission defaults — without applying them: the batch
// goes through the store's validation on a private copy (store.Store.Simulate), so nothing is
// written and no reader ever sees it. A batch Apply would refuse returns Apply's error (same
// type, same text). The Directory must be a Simulator (ErrInvalid otherwise).
//
// It is exact for what the batch touches: every project whose record, policy or org defaults
// change is compared for every member of its org (before or after), and every subject whose org
// role, team memberships or grants change is compared on every project of its org (before or
// after), for every project action of the catalog, on requests without attributes, with the
// policy in force; nothing else can change (default rules or authors' modules: the policy input
// of any other pair is the same). Subjects who are members of the org neither before nor after
// are not listed. A decision counts as changed when Allowed, Role or its reason codes differ.
// Settings are compared for every project of those pairs, admission defaults (Admit on a run that
// names no queue and no presets) for every pair. Both sides measure expiry at one instant, the
// store's clock when the batch was simulated (store.Simulation.At), so an entry expiring
// meanwhile changes no decision by itself. The cost is the store's copy of the orgs the batch
// touches plus (actions + 2) decisions per pair, twice; no cache is read or filled.
func (e *Engine) Simulate(ctx context.Context, changes ...store.Change) (WhatIf, error) {
	sr, ok := e.dir.(Simulator)
	if !ok {
		return WhatIf{}, teamgate.Invalid("directory", "", "it cannot simulate a batch (not a store.Store)")
	}
	sim, err := sr.Simulate(ctx, changes...)
	if err != nil {
		return WhatIf{}, err
	}
	before, after := e.frozen(sim.ViewBefore, sim.Revision), e.frozen(sim.ViewAfter, sim.Revision+1)
	out := WhatIf{Revision: sim.Revision, Projects: sim.Projects, Subjects: sim.Subjects,
		Decisions: []DecisionChange{}, Settings: []SettingsChange{}, Admissions: []AdmissionChange{}}
	pairs, projects := affectedPairs(sim)
	out.Pairs = len(pairs)
	actions := actionsOf(e.policy.Load(), scope.KindProject)
	for _, pr := range pairs {
		for _, a := range actions {
			req := Request{Subject: pr.subject, Action: a, Resource: pr.project}
			b, err := before.Authorize(ctx, req)
			if err != nil {
				return WhatIf{}, err
			}
			f, err := after.Authorize(ctx, req)
			if err != nil {
				return WhatIf{}, err
			}
			if decisionChanged(b, f) {
				out.Decisions = append(out.Decisions, DecisionChange{Subject: pr.subject, Project: pr.project, Action: a, Before: b, After: f})
			}
		}
		b, err := before.admissionDefaults(ctx, pr)
		if err != nil {
			return WhatIf{}, err
		}
		f, err := after.admissionDefaults(ctx, pr)
		if err != nil {
			return WhatIf{}, err
		}
		if b.Queue != f.Queue || !slices.Equal(b.Presets, f.Presets) {
			out.Admissions = append(out.Admissions, AdmissionChange{Subject: pr.subject, Project: pr.project, Before: b, After: f})
		}
	}
	for _, p := range projects {
		b, err := before.settingsOrNil(ctx, p)
		if err != nil {
			return WhatIf{}, err
		}
		f, err := after.settingsOrNil(ctx, p)
		if err != nil {
			return WhatIf{}, err
		}
		if settingsChanged(b, f) {
			out.Settings = append(out.Settings, SettingsChange{Project: p, Before: b, After: f})
		}
	}
	return out, nil
}

// decisionChanged is what Simulate and DiffPolicy count as a changed decision.
func decisionChanged(a, b Decision) bool {
	return a.Allowed != b.Allowed || a.Role != b.Role ||
		!slices.EqualFunc(a.Reasons, b.Reasons, func(x, y Reason) bool { return x.Code == y.Code })
}

func settingsChanged(a, b *Settings) bool {
	if a == nil || b == nil {
		return a != b
	}
	x, errA := json.Marshal(a.Effective)
	y, errB := json.Marshal(b.Effective)
	return errA != nil || errB != nil || string(x) != string(y)
}

// pair is a subject and an "org/project".
type pair struct{ subject, project string }

// affectedPairs are the (subject, project) pairs a simulated batch may change, sorted, and the
// projects they name, sorted.
func affectedPairs(sim *store.Simulation) ([]pair, []string) {
	set := map[pair]struct{}{}
	both := func(fn func(r store.Reader) []string) []string {
		var out []string
		for _, view := range []func(func(store.Reader) error) error{sim.ViewBefore, sim.ViewAfter} {
			_ = view(func(r store.Reader) error { // a simulation's views never fail
				out = append(out, fn(r)...)
				return nil
			})
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	for _, p := range sim.Projects {
		org, _, _ := strings.Cut(p, "/")
		for _, u := range both(func(r store.Reader) []string { return slices.Collect(maps.Keys(r.Members(org))) }) {
			set[pair{u, p}] = struct{}{}
		}
	}
	for _, s := range sim.Subjects {
		org, user, _ := strings.Cut(s, "/")
		for _, p := range both(func(r store.Reader) []string { return r.Projects(org) }) {
			set[pair{user, org + "/" + p}] = struct{}{}
		}
	}
	pairs := slices.SortedFunc(maps.Keys(set), func(a, b pair) int {
		return cmpPair(a, b)
	})
	projects := make([]string, 0, len(pairs))
	for _, pr := range pairs {
		projects = append(projects, pr.project)
	}
	slices.Sort(projects)
	return pairs, slices.Compact(projects)
}

func cmpPair(a, b pair) int {
	if c := strings.Compare(a.subject, b.subject); c != 0 {
		return c
	}
	return strings.Compare(a.project, b.project)
}

// frozen returns an engine with e's policy and options over one fixed snapshot (a simulation's
// view) and no decision cache: what it answers is that snapshot's, nothing else's.
func (e *Engine) frozen(view func(func(store.Reader) error) error, rev uint64) *Engine {
	f := &Engine{dir: frozenDir{view: view, rev: rev}, log: e.log, compiled: e.compiled, budget: e.budget}
	f.settingsCache = newSettingsCache(nil)
	f.setPolicy(e.policy.Load())
	return f
}

func (e *Engine) admissionDefaults(ctx context.Context, pr pair) (AdmissionDefaults, error) {
	// A run that names no queue and no presets: Admit picks them.
	a, err := e.Admit(ctx, pr.subject, pr.project, policy.Run{Kind: "job"})
	if err != nil {
		return AdmissionDefaults{}, err
	}
	return AdmissionDefaults{Queue: a.Queue, Presets: a.Presets}, nil
}

func (e *Engine) settingsOrNil(ctx context.Context, project string) (*Settings, error) {
	s, err := e.EffectiveSettings(ctx, project, "")
	switch {
	case errors.Is(err, teamgate.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &s, nil
}

// frozenDir is a Directory over one fixed snapshot that never changes and takes no write.
type frozenDir struct {
	view func(func(store.Reader) error) error
	rev  uint64
}

var _ Directory = frozenDir{}

func (d frozenDir) View(fn func(r store.Reader) error) error { return d.view(fn) }
func (d frozenDir) Revision() uint64                         { return d.rev }

func (d frozenDir) WaitRevision(_ context.Context, rev uint64) error {
	if rev > d.rev {
		return fmt.Errorf("revision %d: a simulated snapshot stays at %d: %w", rev, d.rev, teamgate.ErrStale)
	}
	return nil
}

func (d frozenDir) Apply(context.Context, ...store.Change) (uint64, error) {
	return 0, teamgate.Invalid("write", "", "a simulated snapshot is read-only")
}
