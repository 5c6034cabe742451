package authz

import (
	"encoding/json"
	"slices"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/scope"
	"github.com/teamgate/teamgate/store"
)

// settingsCacheSize bounds the in-memory tier of the effective-settings cache.
const settingsCacheSize = 4096

// settingsCache caches effective settings in memory (bounded LRU) and, when the Directory is a
// PersistentCache, on disk. An entry keeps the Deps of the read that merged it and is served only
// inside a snapshot in which they are current, so it equals what that snapshot would merge.
// Values are never handed out: callers get clones.
type settingsCache struct {
	mem  *lru.Cache[string, *settingsEntry]
	disk PersistentCache // nil without a persistent tier
}

type settingsEntry struct {
	eff  policy.Effective
	deps store.Deps
}

func newSettingsCache(disk PersistentCache) *settingsCache {
	mem, _ := lru.New[string, *settingsEntry](settingsCacheSize) // only fails for size <= 0
	return &settingsCache{mem: mem, disk: disk}
}

// settingsKey names the settings of project ref for user ("" for none): slugs hold no '/'.
func settingsKey(ref scope.Ref, user string) string {
	return "settings/" + ref.Org + "/" + ref.Project + "/" + user
}

// lookup returns the cached entry under key, from memory or disk, current or not: the caller
// checks it inside its snapshot (effective). It runs outside any View: the disk tier reads Badger.
func (c *settingsCache) lookup(key string) *settingsEntry {
	if e, ok := c.mem.Get(key); ok {
		return e
	}
	if c.disk == nil {
		return nil
	}
	raw, ok := c.disk.CacheGet(key)
	if !ok {
		return nil
	}
	deps, rest, err := c.disk.DecodeDeps(raw)
	if err != nil {
		return nil
	}
	e := &settingsEntry{deps: deps}
	if json.Unmarshal(rest, &e.eff) != nil {
		return nil
	}
	return e
}

// effective returns the project's effective settings in r's snapshot: hit's when its Deps are
// current (no write can run while r's View does, so they stay so), else merged by r, tracked and
// cached. A merged entry for the disk tier is returned as toDisk, to be written after the View.
func (c *settingsCache) effective(r store.Reader, ref scope.Ref, user string, hit *settingsEntry) (eff policy.Effective, toDisk *settingsEntry) {
	key := settingsKey(ref, user)
	if hit != nil && hit.deps.Current() {
		c.mem.Add(key, hit)
		return cloneEffective(hit.eff), nil
	}
	e := &settingsEntry{}
	merged, _ := r.Track(&e.deps).Settings(ref.Org, ref.Project, user)
	e.eff = cloneEffective(merged)
	c.mem.Add(key, e)
	if c.disk != nil {
		toDisk = e
	}
	return merged, toDisk
}

// store writes a merged entry to the disk tier without waiting for it.
func (c *settingsCache) store(ref scope.Ref, user string, e *settingsEntry) {
	if e == nil || c.disk == nil {
		return
	}
	raw, _ := e.deps.MarshalBinary()
	val, err := json.Marshal(e.eff)
	if err != nil {
		return
	}
	c.disk.CachePut(settingsKey(ref, user), append(raw, val...))
}

func cloneEffective(e policy.Effective) policy.Effective {
	for _, a := range []*policy.AllowList{&e.Connections, &e.Agents, &e.Queues, &e.Namespaces, &e.Presets, &e.Teams, &e.Projects} {
		a.Values = slices.Clone(a.Values)
	}
	for _, l := range []*policy.List{&e.ExcludedRuntimes, &e.ExcludedFeatures, &e.DefaultPresets} {
		l.Values = slices.Clone(l.Values)
	}
	e.Rules = slices.Clone(e.Rules)
	e.Conflicts = slices.Clone(e.Conflicts)
	return e
}
