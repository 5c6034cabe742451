package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
)

// File is the data file of SPEC §2, YAML or JSON.
type File struct {
	Orgs  []FileOrg           `yaml:"orgs,omitempty"`
	Users map[string]FileUser `yaml:"users,omitempty"`
}

// FileOrg is an org with everything in it.
type FileOrg struct {
	Name                     string            `yaml:"name"`
	Queue                    string            `yaml:"queue,omitempty"`
	DefaultPresets           []string          `yaml:"default_presets,omitempty,flow"`
	ArchivedDeletionInterval int               `yaml:"archived_deletion_interval,omitempty"`
	Members                  map[string]string `yaml:"members,omitempty"`
	Policies                 []FilePolicy      `yaml:"policies,omitempty"`
	Teams                    []FileTeam        `yaml:"teams,omitempty"`
	Projects                 []FileProject     `yaml:"projects,omitempty"`
}

// FilePolicy is a policy: its name and settings side by side.
type FilePolicy struct {
	Name            string `yaml:"name"`
	policy.Settings `yaml:",inline"`
}

// FileTeam is a team with its members.
type FileTeam struct {
	Name        string            `yaml:"name"`
	Description string            `yaml:"description,omitempty"`
	Policy      string            `yaml:"policy,omitempty"`
	Members     map[string]string `yaml:"members,omitempty"`
}

// FileProject is a project with its grants.
type FileProject struct {
	Name      string               `yaml:"name"`
	Teams     []string             `yaml:"teams,omitempty,flow"`
	Policy    string               `yaml:"policy,omitempty"`
	CreatedBy string               `yaml:"created_by,omitempty"`
	Settings  policy.Settings      `yaml:"settings,omitempty"`
	Grants    map[string]FileGrant `yaml:"grants,omitempty"`
}

// FileGrant is a grant in a data file.
type FileGrant struct {
	Role           string   `yaml:"role"`
	Queue          string   `yaml:"queue,omitempty"`
	Namespace      string   `yaml:"namespace,omitempty"`
	DefaultPresets []string `yaml:"default_presets,omitempty,flow"`
}

// FileUser is a user record in a data file.
type FileUser struct {
	DefaultTeam string `yaml:"default_team,omitempty"`
}

// ParseFile decodes a YAML or JSON data file. Unknown keys are errors naming the key and its
// path (a typo must not silently drop a restriction).
func ParseFile(data []byte) (*File, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, teamgate.Invalid("data file", firstLine(err.Error()), "does not parse as YAML or JSON")
	}
	var f File
	if root.Kind == 0 {
		return &f, nil
	}
	if err := checkKeys(&root, reflect.TypeOf(f), ""); err != nil {
		return nil, err
	}
	if err := root.Decode(&f); err != nil {
		return nil, teamgate.Invalid("data file", firstLine(err.Error()), "wrong type of value")
	}
	return &f, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// checkKeys walks a YAML node along a Go type and rejects mapping keys the type does not have.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			if err := checkKeys(c, t, path); err != nil {
				return err
			}
		}
		return nil
	}
	if n.Kind == yaml.AliasNode {
		return checkKeys(n.Alias, t, path)
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil // type errors are reported by Decode
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			ft, ok := fields[key]
			p := joinPath(path, key)
			if !ok {
				return teamgate.Invalid("data file key", p, fmt.Sprintf("unknown key %q (line %d)", key, n.Content[i].Line))
			}
			if err := checkKeys(n.Content[i+1], ft, p); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKeys(n.Content[i+1], t.Elem(), joinPath(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	}
	return nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps a struct's YAML keys to field types, following inline fields.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// Changes returns the changes that write the file's content, in dependency order: org, members,
// policies, teams and their members, projects with grants, users.
func (f *File) Changes() ([]Change, error) {
	if err := f.checkDuplicates(); err != nil {
		return nil, err
	}
	var cs []Change
	for i, o := range f.Orgs {
		cs = append(cs, PutOrg{Org: Org{Name: o.Name, Queue: o.Queue, DefaultPresets: o.DefaultPresets, ArchivedDeletionInterval: o.ArchivedDeletionInterval}})
		for _, u := range sortedKeys(o.Members) {
			cs = append(cs, PutMember{Org: o.Name, User: u, Role: o.Members[u]})
		}
		for _, p := range o.Policies {
			cs = append(cs, PutPolicy{Policy: Policy{Org: o.Name, Name: p.Name, Settings: p.Settings}})
		}
		for _, t := range o.Teams {
			cs = append(cs, PutTeam{Team: Team{Org: o.Name, Name: t.Name, Description: t.Description, Policy: t.Policy}})
			for _, u := range sortedKeys(t.Members) {
				cs = append(cs, PutTeamMember{Org: o.Name, Team: t.Name, User: u, Role: t.Members[u]})
			}
		}
		for j, p := range o.Projects {
			if len(p.Settings.Teams) > 0 {
				return nil, teamgate.Invalid("data file key", fmt.Sprintf("orgs[%d].projects[%d].settings.teams", i, j),
					"ambiguous: a project's teams are its top-level teams field")
			}
			var grants map[string]Grant
			if len(p.Grants) > 0 {
				grants = map[string]Grant{}
				for u, g := range p.Grants {
					grants[u] = Grant(g)
				}
			}
			cs = append(cs, PutProject{Project: Project{Org: o.Name, Name: p.Name, Teams: p.Teams, Policy: p.Policy,
				Settings: p.Settings, Grants: grants, CreatedBy: p.CreatedBy}})
		}
	}
	for _, id := range sortedKeys(f.Users) {
		cs = append(cs, PutUser{User: User{ID: id, DefaultTeam: f.Users[id].DefaultTeam}})
	}
	return cs, nil
}

// checkDuplicates rejects a name given twice where the file lists entities (orgs, and policies,
// teams and projects of an org): the second would silently replace the first.
func (f *File) checkDuplicates() error {
	dup := func(path string, names []string) error {
		seen := map[string]bool{}
		for i, n := range names {
			if seen[n] {
				return &teamgate.ConflictError{What: "data file entry", Name: fmt.Sprintf("%s[%d]", path, i), Reason: "duplicate name " + n}
			}
			seen[n] = true
		}
		return nil
	}
	var orgs []string
	for i, o := range f.Orgs {
		orgs = append(orgs, o.Name)
		var pols, teams, projs []string
		for _, p := range o.Policies {
			pols = append(pols, p.Name)
		}
		for _, t := range o.Teams {
			teams = append(teams, t.Name)
		}
		for _, p := range o.Projects {
			projs = append(projs, p.Name)
		}
		for _, e := range []error{
			dup(fmt.Sprintf("orgs[%d].policies", i), pols), dup(fmt.Sprintf("orgs[%d].teams", i), teams),
			dup(fmt.Sprintf("orgs[%d].projects", i), projs),
		} {
			if e != nil {
				return e
			}
		}
	}
	return dup("orgs", orgs)
}

// Load applies a data file (YAML or JSON) as one atomic batch: entities in the file are created
// or replaced, entities not in it are left as they are.
func (s *Store) Load(ctx context.Context, r io.Reader) (uint64, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return 0, fmt.Errorf("store: read data file: %w", err)
	}
	f, err := ParseFile(data)
	if err != nil {
		return 0, err
	}
	cs, err := f.Changes()
	if err != nil {
		return 0, err
	}
	return s.Apply(ctx, cs...)
}

// LoadFile loads the data file at path (see Load).
func (s *Store) LoadFile(ctx context.Context, path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	rev, err := s.Load(ctx, bytes.NewReader(data))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return rev, nil
}

// Snapshot returns the whole directory as a data file.
func (r Reader) Snapshot() *File {
	f := &File{}
	r.dep('U', "", "")
	for _, name := range r.Orgs() {
		r.dep('x', name, "")
		od := r.st.orgs[name]
		fo := FileOrg{Name: name, Queue: od.org.Queue, DefaultPresets: od.org.DefaultPresets,
			ArchivedDeletionInterval: od.org.ArchivedDeletionInterval}
		if len(od.members) > 0 {
			fo.Members = od.members
		}
		for _, pn := range sortedKeys(od.policies) {
			fo.Policies = append(fo.Policies, FilePolicy{Name: pn, Settings: od.policies[pn].p.Settings})
		}
		for _, tn := range sortedKeys(od.teams) {
			td := od.teams[tn]
			ft := FileTeam{Name: tn, Description: td.team.Description, Policy: td.team.Policy}
			if len(td.members) > 0 {
				ft.Members = td.members
			}
			fo.Teams = append(fo.Teams, ft)
		}
		for _, pn := range sortedKeys(od.projects) {
			p := od.projects[pn].p
			fp := FileProject{Name: pn, Teams: p.Teams, Policy: p.Policy, CreatedBy: p.CreatedBy, Settings: p.Settings}
			if len(p.Grants) > 0 {
				fp.Grants = map[string]FileGrant{}
				for u, g := range p.Grants {
					fp.Grants[u] = FileGrant(g)
				}
			}
			fo.Projects = append(fo.Projects, fp)
		}
		f.Orgs = append(f.Orgs, fo)
	}
	if len(r.st.users) > 0 {
		f.Users = map[string]FileUser{}
		for id, u := range r.st.users {
			f.Users[id] = FileUser{DefaultTeam: u.DefaultTeam}
		}
	}
	return f
}

// Export writes the whole directory as a YAML data file that Load reads back to the same state.
func (s *Store) Export(ctx context.Context, w io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var out []byte
	err := s.View(func(r Reader) error {
		var err error
		out, err = yaml.Marshal(r.Snapshot())
		return err
	})
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}
