package authz

import (
	"context"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/plainjson"
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
// Results are cached (in memory, and on disk when the Directory is a PersistentCache) with what
// they were merged from: any write to the project, its policy or its org's defaults makes the
// entry stale, so a stale entry is never served. Settings.Revision is the revision read at.
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
	hit := e.settingsCache.lookup(settingsKey(ref, user))
	var out Settings
	var toDisk *settingsEntry
	err = e.dir.View(func(r store.Reader) error {
		var err error
		out, _, toDisk, err = e.settingsIn(r, ref, user, hit)
		return err
	})
	if err != nil {
		return Settings{}, err
	}
	e.settingsCache.store(ref, user, toDisk)
	return out, nil
}

// settingsIn reads a project's effective settings (through the cache: hit is what lookup found)
// and its compiled rules in r's snapshot. The entry to write to the disk tier, if any, is returned
// for the caller to store once the View is over.
func (e *Engine) settingsIn(r store.Reader, ref scope.Ref, user string, hit *settingsEntry) (Settings, []*policy.Program, *settingsEntry, error) {
	if a := r.Access(ref.Org, ref.Team, ref.Project, user); a.Missing != store.Found {
		return Settings{}, nil, nil, &teamgate.NotFoundError{What: "project", Name: ref.String(), Reason: missing(a.Missing, ref.Org, ref.Team, ref.Project)}
	}
	out := Settings{Project: ref.Org + "/" + ref.Project, User: user, Revision: r.Revision()}
	var toDisk *settingsEntry
	out.Effective, toDisk = e.settingsCache.effective(r, ref, user, hit)
	return out, r.Rules(ref.Org, ref.Project), toDisk, nil
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
	return plainjson.Marshal(struct {
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
