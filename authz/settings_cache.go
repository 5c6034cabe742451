package authz

import (
	"encoding/json"
	"slices"
	"strconv"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/teamgate/teamgate/policy"
)

// settingsCacheSize bounds the in-memory tier of the effective-settings cache.
const settingsCacheSize = 4096

// persistentCache is the Badger tier (store.Store implements it).
type persistentCache interface {
	CacheGet(key string) ([]byte, bool)
	CachePut(key string, val []byte)
}

// settingsCache caches effective settings in memory (bounded LRU) and in Badger. Keys hold the
// project's revision, which every write to the project, its policy or its org's defaults bumps,
// so an entry can never be stale. Values are never handed out: callers get clones.
type settingsCache struct {
	mem  *lru.Cache[string, policy.Effective]
	disk persistentCache // nil when the directory cannot cache
}

func newSettingsCache(dir Directory) *settingsCache {
	mem, _ := lru.New[string, policy.Effective](settingsCacheSize) // only fails for size <= 0
	c := &settingsCache{mem: mem}
	c.disk = diskTier(dir)
	return c
}

// diskTier returns the directory's Badger cache when it persists across restarts.
func diskTier(dir Directory) persistentCache {
	disk, ok := dir.(persistentCache)
	if p, isP := dir.(interface{ Persistent() bool }); !ok || !isP || !p.Persistent() {
		return nil
	}
	return disk
}

func settingsKey(project string, rev uint64, user string) string {
	return "settings/" + project + "/" + strconv.FormatUint(rev, 10) + "/" + user
}

func (c *settingsCache) get(key string) (policy.Effective, bool) {
	if e, ok := c.mem.Get(key); ok {
		return cloneEffective(e), true
	}
	if c.disk == nil {
		return policy.Effective{}, false
	}
	raw, ok := c.disk.CacheGet(key)
	if !ok {
		return policy.Effective{}, false
	}
	var e policy.Effective
	if json.Unmarshal(raw, &e) != nil {
		return policy.Effective{}, false
	}
	c.mem.Add(key, e)
	return cloneEffective(e), true
}

func (c *settingsCache) put(key string, e policy.Effective) {
	e = cloneEffective(e)
	c.mem.Add(key, e)
	if c.disk != nil {
		if raw, err := json.Marshal(e); err == nil {
			c.disk.CachePut(key, raw)
		}
	}
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
