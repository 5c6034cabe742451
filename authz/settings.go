package authz

import (
	"context"
	"encoding/json"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/scope"
	"github.com/teamgate/teamgate/store"
)

// Settings are a project's effective settings, optionally for one user. Its JSON is the
// `teamgate settings` output of SPEC §11.
type Settings struct {
	Project  string // "org/project"
	User     string
	Revision uint64 // store revision the settings were read at
	policy.Effective
}

// EffectiveSettings merges a project's settings (SPEC §6) with their sources and conflicts. With
// a non-empty user, that user's grant defaults apply. A project that does not exist (or is not
// in the named team space) is an error matching teamgate.ErrNotFound.
//
// When the store can cache (store.Store can), results are cached in Badger under a key holding
// the project's revision: any write to the project, its policy or its org's defaults changes that
// revision, so a stale entry is never read.
func (e *Engine) EffectiveSettings(ctx context.Context, project, user string) (Settings, error) {
	if err := ctx.Err(); err != nil {
		return Settings{}, err
	}
	ref, err := scope.ParseFullProject(project)
	if err != nil {
		return Settings{}, err
	}
	if user != "" {
		if err := scope.CheckSlug("user", user); err != nil {
			return Settings{}, err
		}
	}
	s, _, err := e.settings(ref, user)
	return s, err
}

// settings reads effective settings and the compiled rules of one project, through the cache.
func (e *Engine) settings(ref scope.Ref, user string) (Settings, []*policy.Program, error) {
	out := Settings{Project: ref.Org + "/" + ref.Project, User: user}
	var rules []*policy.Program
	var projRev uint64
	err := e.dir.View(func(r store.Reader) error {
		_, f := resolveProject(r, user, ref)
		if !f.Exists {
			return &teamgate.NotFoundError{What: "project", Name: ref.String(), Reason: f.Missing}
		}
		projRev = r.ProjectRevision(ref.Org, ref.Project)
		out.Revision = r.Revision()
		rules = r.Rules(ref.Org, ref.Project)
		return nil
	})
	if err != nil {
		return Settings{}, nil, err
	}
	key := settingsKey(out.Project, projRev, user)
	if eff, ok := e.settingsCache.get(key); ok {
		out.Effective = eff
		return out, rules, nil
	}
	err = e.dir.View(func(r store.Reader) error {
		if _, ok := r.Project(ref.Org, ref.Project); !ok {
			return &teamgate.NotFoundError{What: "project", Name: ref.String()}
		}
		if rev := r.ProjectRevision(ref.Org, ref.Project); rev != projRev { // changed in between: read everything at the new revision
			projRev, out.Revision, rules = rev, r.Revision(), r.Rules(ref.Org, ref.Project)
			key = settingsKey(out.Project, projRev, user)
		}
		out.Effective, _ = r.Settings(ref.Org, ref.Project, user)
		return nil
	})
	if err != nil {
		return Settings{}, nil, err
	}
	e.settingsCache.put(key, out.Effective)
	return out, rules, nil
}

type fieldJSON struct {
	Restricted *bool    `json:"restricted,omitempty"`
	Values     []string `json:"values"`
	Source     string   `json:"source"`
}

// MarshalJSON writes {"project", "user", "settings": {FIELD: {...}}, "conflicts": [...]}, every
// field present.
func (s Settings) MarshalJSON() ([]byte, error) {
	allow := func(a policy.AllowList) fieldJSON {
		r := a.Restricted
		return fieldJSON{Restricted: &r, Values: nonNil(a.Values), Source: a.Source}
	}
	list := func(l policy.List) fieldJSON { return fieldJSON{Values: nonNil(l.Values), Source: l.Source} }
	e := s.Effective
	rules := make([]map[string]string, 0, len(e.Rules))
	for _, r := range e.Rules {
		rules = append(rules, map[string]string{"name": r.Name, "expression": r.Expression, "message": r.Message, "source": r.Source})
	}
	conflicts := e.Conflicts
	if conflicts == nil {
		conflicts = []policy.Conflict{}
	}
	type valueJSON struct {
		Value  any    `json:"value"`
		Source string `json:"source"`
	}
	type rulesJSON struct {
		Values []map[string]string `json:"values"`
	}
	return json.Marshal(struct {
		Project   string            `json:"project"`
		User      string            `json:"user,omitempty"`
		Settings  map[string]any    `json:"settings"`
		Conflicts []policy.Conflict `json:"conflicts"`
	}{
		Project: s.Project, User: s.User, Conflicts: conflicts,
		Settings: map[string]any{
			"connections": allow(e.Connections), "agents": allow(e.Agents), "queues": allow(e.Queues),
			"namespaces": allow(e.Namespaces), "presets": allow(e.Presets), "teams": allow(e.Teams),
			"projects": allow(e.Projects), "excluded_runtimes": list(e.ExcludedRuntimes),
			"excluded_features": list(e.ExcludedFeatures), "default_presets": list(e.DefaultPresets),
			"queue":                      valueJSON{e.Queue.Value, e.Queue.Source},
			"namespace":                  valueJSON{e.Namespace.Value, e.Namespace.Source},
			"archived_deletion_interval": valueJSON{e.ArchivedDeletionInterval.Value, e.ArchivedDeletionInterval.Source},
			"rules":                      rulesJSON{Values: rules},
		},
	})
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}
