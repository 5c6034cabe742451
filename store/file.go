package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/internal/quote"
	"github.com/teamgate/teamgate/internal/strict"
	"github.com/teamgate/teamgate/policy"
)

// File is the data file of SPEC §2, YAML or JSON. Field names are the JSON and YAML keys.
type File struct {
	Orgs  []FileOrg           `json:"orgs,omitempty" yaml:"orgs,omitempty"`
	Users map[string]FileUser `json:"users,omitempty" yaml:"users,omitempty"`
}

// FileOrg is an org with everything in it.
type FileOrg struct {
	Name                     string            `json:"name" yaml:"name"`
	Queue                    string            `json:"queue,omitempty" yaml:"queue,omitempty"`
	DefaultPresets           []string          `json:"default_presets,omitempty" yaml:"default_presets,omitempty,flow"`
	ArchivedDeletionInterval int               `json:"archived_deletion_interval,omitempty" yaml:"archived_deletion_interval,omitempty"`
	Members                  map[string]string `json:"members,omitempty" yaml:"members,omitempty"`
	Policies                 []FilePolicy      `json:"policies,omitempty" yaml:"policies,omitempty"`
	Teams                    []FileTeam        `json:"teams,omitempty" yaml:"teams,omitempty"`
	Projects                 []FileProject     `json:"projects,omitempty" yaml:"projects,omitempty"`
}

// FilePolicy is a policy: its name and settings side by side.
type FilePolicy struct {
	Name            string `json:"name" yaml:"name"`
	policy.Settings `json:",inline" yaml:",inline"`
}

// FileTeam is a team with its members.
type FileTeam struct {
	Name        string                `json:"name" yaml:"name"`
	Description string                `json:"description,omitempty" yaml:"description,omitempty"`
	Policy      string                `json:"policy,omitempty" yaml:"policy,omitempty"`
	Members     map[string]FileMember `json:"members,omitempty" yaml:"members,omitempty"`
}

// FileProject is a project with its grants.
type FileProject struct {
	Name      string               `json:"name" yaml:"name"`
	Teams     []string             `json:"teams,omitempty" yaml:"teams,omitempty,flow"`
	Policy    string               `json:"policy,omitempty" yaml:"policy,omitempty"`
	CreatedBy string               `json:"created_by,omitempty" yaml:"created_by,omitempty"`
	Settings  policy.Settings      `json:"settings,omitempty" yaml:"settings,omitempty"`
	Grants    map[string]FileGrant `json:"grants,omitempty" yaml:"grants,omitempty"`
	Labels    map[string]string    `json:"labels,omitempty" yaml:"labels,omitempty"`
}

// FileGrant is a grant in a data file.
type FileGrant struct {
	Role           string      `json:"role" yaml:"role"`
	Queue          string      `json:"queue,omitempty" yaml:"queue,omitempty"`
	Namespace      string      `json:"namespace,omitempty" yaml:"namespace,omitempty"`
	DefaultPresets []string    `json:"default_presets,omitempty" yaml:"default_presets,omitempty,flow"`
	ExpiresAt      time.Time   `json:"expires_at,omitzero" yaml:"expires_at,omitempty"` // RFC 3339; zero: never
	BreakGlass     *BreakGlass `json:"break_glass,omitempty" yaml:"break_glass,omitempty"`
}

// FileUser is a user record in a data file.
type FileUser struct {
	DefaultTeam string `json:"default_team,omitempty" yaml:"default_team,omitempty"`
}

// ParseFile decodes a YAML or JSON data file under the rules of the package doc (Data files): an
// unknown or duplicate key, a null key, a value of the wrong kind, a fraction where an integer is
// expected, a second YAML document or runaway aliases is an ErrInvalid naming the path and the
// line; so is a value the file can be checked for on its own (an unknown role, a bad label, an
// entry without a name; a name given twice is an ErrConflict), before anything is written.
func ParseFile(data []byte) (*File, error) {
	var f File
	if err := strict.YAML(data, &f); err != nil {
		var se *strict.Error
		if !errors.As(err, &se) {
			return nil, err
		}
		if se.Path == "" {
			return nil, teamgate.Invalid("data file", se.Position(), se.Problem)
		}
		return nil, teamgate.Invalid("data file", se.Path, se.Position()+": "+se.Problem)
	}
	if p := f.check(); p != nil {
		line, col := strict.Locate(data, p.path...)
		return nil, p.err((&strict.Error{Line: line, Column: col}).Position())
	}
	return &f, nil
}

// PutFile makes the directory hold a data file: every org the file names becomes equal to it —
// what the file no longer holds for that org (members, teams, team members, projects, grants,
// policies, fields) is deleted or reset — and the file's users are put. Orgs the file does not
// name and users it does not list are untouched. It works out what to write when it applies,
// under the store's write lock, so no other write can slip between reading the directory and
// writing the difference.
type PutFile struct{ File File }

// Kind names the change in events.
func (PutFile) Kind() string { return "put_file" }

func (c PutFile) apply(t *txn) error {
	if err := c.File.validate(); err != nil {
		return err
	}
	// Users are compared after the orgs are written: a write there may have changed a user
	// record (a default team the user can no longer enter), which the file then puts back or,
	// if the file is inconsistent, fails to.
	for _, step := range []func(*state) []Change{c.File.orgChanges, c.File.userChanges} {
		for _, ch := range step(t.st) {
			if err := ch.apply(t); err != nil {
				return fmt.Errorf("%s: %w", ch.Kind(), err)
			}
		}
	}
	return nil
}

// Changes returns the changes PutFile would make to the directory r reads: only what differs
// (none for a file equal to the directory), in an order that applies — members the file dropped
// first (their team memberships and grants go with them), then the file's members, policies,
// teams and their members, projects, and last the projects, teams and policies the file dropped,
// once nothing the file keeps refers to them; users last.
func (f *File) Changes(r Reader) ([]Change, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	return append(f.orgChanges(r.st), f.userChanges(r.st)...), nil
}

func (f *File) orgChanges(st *state) []Change {
	var cs []Change
	for _, o := range f.Orgs {
		cs = o.changes(st.orgs[o.Name], cs)
	}
	return cs
}

func (f *File) userChanges(st *state) []Change {
	var cs []Change
	for _, id := range sortedKeys(f.Users) {
		want := User{ID: id, DefaultTeam: f.Users[id].DefaultTeam}
		if cur, ok := st.users[id]; !ok || cur != want {
			cs = append(cs, PutUser{User: want})
		}
	}
	return cs
}

// changes appends the changes that make cur (nil: no such org yet) equal to o.
func (o FileOrg) changes(cur *orgData, cs []Change) []Change {
	if cur == nil {
		cur = newOrgData(Org{})
	}
	if want := (Org{Name: o.Name, Queue: o.Queue, DefaultPresets: o.DefaultPresets,
		ArchivedDeletionInterval: o.ArchivedDeletionInterval}); cur.org.Name == "" || !sameRecord(cur.org, want) {
		cs = append(cs, PutOrg{Org: want})
	}
	// A dropped member's team memberships and grants go with it (DeleteMember cascades), so
	// those that the file still holds are put again below, where validation refuses them.
	dropped := map[string]bool{}
	for _, u := range cur.members.sorted() {
		if _, keep := o.Members[u]; !keep {
			dropped[u] = true
			cs = append(cs, DeleteMember{Org: o.Name, User: u})
		}
	}
	for _, u := range sortedKeys(o.Members) {
		if _, role := cur.members.role(u); role == 0 || role.orgRole() != o.Members[u] {
			cs = append(cs, PutMember{Org: o.Name, User: u, Role: o.Members[u]})
		}
	}
	keepPolicies := map[string]bool{}
	for _, p := range o.Policies {
		keepPolicies[p.Name] = true
		want := Policy{Org: o.Name, Name: p.Name, Settings: p.Settings}
		if pd, ok := cur.policies[p.Name]; !ok || !sameRecord(pd.p, want) {
			cs = append(cs, PutPolicy{Policy: want})
		}
	}
	keepTeams := map[string]bool{}
	relinked := map[string]string{} // team → the policy it linked, for teams whose link changes
	for _, t := range o.Teams {
		keepTeams[t.Name] = true
		want := Team{Org: o.Name, Name: t.Name, Description: t.Description, Policy: t.Policy}
		td, ok := cur.teams[t.Name]
		if !ok || td.team != want {
			cs = append(cs, PutTeam{Team: want})
		}
		if ok && td.team.Policy != t.Policy {
			relinked[t.Name] = td.team.Policy
		}
		if ok {
			for _, u := range sortedKeys(cur.teamMemberMap(td)) {
				if _, keep := t.Members[u]; !keep && !dropped[u] {
					cs = append(cs, DeleteTeamMember{Org: o.Name, Team: t.Name, User: u})
				}
			}
		}
		for _, u := range sortedKeys(t.Members) {
			m := t.Members[u]
			if !ok || dropped[u] || cur.teamRole(td, u) == 0 || cur.teamRole(td, u).teamRole() != m.Role ||
				cur.teamExpiry(td, u) != unixOrZero(m.ExpiresAt) {
				cs = append(cs, PutTeamMember{Org: o.Name, Team: t.Name, User: u, Role: m.Role, ExpiresAt: m.ExpiresAt})
			}
		}
	}
	keepProjects := map[string]bool{}
	for _, p := range o.Projects {
		keepProjects[p.Name] = true
		want := Project{Org: o.Name, Name: p.Name, Teams: p.Teams, Policy: p.Policy, Settings: p.Settings, CreatedBy: p.CreatedBy, Labels: p.Labels}
		regrant := false
		if len(p.Grants) > 0 {
			want.Grants = make(map[string]Grant, len(p.Grants))
			for u, g := range p.Grants {
				want.Grants[u] = Grant(g)
				regrant = regrant || dropped[u]
			}
		}
		if pd := cur.project(p.Name); pd == nil || regrant || followsLink(pd.p, relinked) || !sameRecord(pd.p, want) {
			cs = append(cs, PutProject{Project: want})
		}
	}
	for _, name := range cur.projectNames() {
		if !keepProjects[name] {
			cs = append(cs, DeleteProject{Org: o.Name, Name: name})
		}
	}
	for _, name := range sortedKeys(cur.teams) {
		if !keepTeams[name] {
			cs = append(cs, DeleteTeam{Org: o.Name, Name: name})
		}
	}
	for _, name := range sortedKeys(cur.policies) {
		if !keepPolicies[name] {
			cs = append(cs, DeletePolicy{Org: o.Name, Name: name})
		}
	}
	return cs
}

// followsLink reports whether PutTeam, changing the links of the relinked teams, re-connects
// project p (see "Team policy links" in the package doc): the file then puts p back as it says,
// even where its record did not differ before.
func followsLink(p Project, relinked map[string]string) bool {
	for _, team := range p.Teams {
		if old, ok := relinked[team]; ok && p.Policy == old {
			return true
		}
	}
	return false
}

// sameRecord reports whether two records would be stored alike (the store keeps records as
// JSON, where a nil and an empty list are both left out).
func sameRecord(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// fileProblem is what check finds wrong at a place in a file: ParseFile adds the line.
type fileProblem struct {
	path     []string // keys and list indexes down to the offending value, for strict.Locate
	where    string   // the path as errors write it: orgs[0].members.bob
	problem  string
	conflict bool // a name given twice: ErrConflict rather than ErrInvalid
}

// err is the problem as an error naming its place and pos (its line and column; "" when
// unknown).
func (p *fileProblem) err(pos string) error {
	why := p.problem
	if pos != "" {
		why = pos + ": " + why
	}
	if p.conflict {
		return &teamgate.ConflictError{What: "data file entry", Name: p.where, Reason: why}
	}
	return teamgate.Invalid("data file", p.where, why)
}

// validate is check for a file built in Go: the error names the path, without a line.
func (f *File) validate() error {
	if p := f.check(); p != nil {
		return p.err("")
	}
	return nil
}

// check rejects what the file cannot mean or what is wrong whatever the directory holds, naming
// its place: an entry without a name (a null entry reads as one), a name given twice where the
// file lists entities (orgs, and policies, teams and projects of an org: the second would
// silently replace the first), a project's settings.teams, an unknown role and a bad label. The
// store checks the same rules again as each change applies (checkRole, Grant.validate,
// ValidateLabels: one copy of each); checking them here too lets ParseFile name the line.
func (f *File) check() *fileProblem {
	at := func(problem string, path ...any) *fileProblem {
		p := &fileProblem{problem: problem}
		for _, tok := range path {
			switch tok := tok.(type) {
			case int:
				p.path = append(p.path, strconv.Itoa(tok))
				p.where += "[" + strconv.Itoa(tok) + "]"
			case string:
				p.path = append(p.path, tok)
				if p.where != "" {
					p.where += "."
				}
				p.where += tok
			}
		}
		return p
	}
	failed := func(err error, path ...any) *fileProblem {
		if err == nil {
			return nil
		}
		return at(err.Error(), path...)
	}
	dup := func(names []string, path ...any) *fileProblem {
		seen := map[string]bool{}
		for i, n := range names {
			if seen[n] {
				p := at("duplicate name "+quote.Q(n), append(path, i)...)
				p.conflict = true
				return p
			}
			seen[n] = true
		}
		return nil
	}
	named := func(name string, path ...any) *fileProblem {
		if name == "" { // a null entry, or one without its name
			return at("missing: every entry needs a name", append(path, "name")...)
		}
		return nil
	}
	var orgs []string
	for i, o := range f.Orgs {
		if p := named(o.Name, "orgs", i); p != nil {
			return p
		}
		orgs = append(orgs, o.Name)
		for _, u := range sortedKeys(o.Members) {
			if p := failed(checkRole("org role", o.Members[u], orgRoles), "orgs", i, "members", u); p != nil {
				return p
			}
		}
		var pols, teams, projs []string
		for j, p := range o.Policies {
			if p := named(p.Name, "orgs", i, "policies", j); p != nil {
				return p
			}
			pols = append(pols, p.Name)
		}
		for j, t := range o.Teams {
			if p := named(t.Name, "orgs", i, "teams", j); p != nil {
				return p
			}
			teams = append(teams, t.Name)
			for _, u := range sortedKeys(t.Members) {
				if p := failed(checkRole("team role", t.Members[u].Role, teamRoles), "orgs", i, "teams", j, "members", u); p != nil {
					return p
				}
			}
		}
		for j, pr := range o.Projects {
			if p := named(pr.Name, "orgs", i, "projects", j); p != nil {
				return p
			}
			projs = append(projs, pr.Name)
			if len(pr.Settings.Teams) > 0 {
				return at("ambiguous: a project's teams are its top-level teams field", "orgs", i, "projects", j, "settings", "teams")
			}
			for _, u := range sortedKeys(pr.Grants) {
				if p := failed(Grant(pr.Grants[u]).validate("grant"), "orgs", i, "projects", j, "grants", u); p != nil {
					return p
				}
			}
			if key, err := checkLabels("label", pr.Labels); err != nil {
				path := []any{"orgs", i, "projects", j, "labels"}
				if key != "" {
					path = append(path, key)
				}
				return failed(err, path...)
			}
		}
		for _, p := range []*fileProblem{
			dup(pols, "orgs", i, "policies"), dup(teams, "orgs", i, "teams"), dup(projs, "orgs", i, "projects"),
		} {
			if p != nil {
				return p
			}
		}
	}
	return dup(orgs, "orgs")
}

// Load makes the directory hold a data file (YAML or JSON) in one atomic batch, a PutFile: every
// org the file names becomes equal to the file, in the same revision. A file equal to the
// directory writes nothing and returns the current revision; an invalid file changes nothing.
func (s *Store) Load(ctx context.Context, r io.Reader) (rev uint64, err error) {
	ctx, sp := s.startWrite(ctx, "teamgate.Load")
	n := 0 // the changes the file makes to the directory
	defer func() { endWrite(sp, n, rev, err) }()
	data, err := io.ReadAll(r)
	if err != nil {
		return 0, fmt.Errorf("store: read data file: %w", err)
	}
	f, err := ParseFile(data)
	if err != nil {
		return 0, err
	}
	err = s.View(func(r Reader) error {
		cs, err := f.Changes(r)
		if err != nil {
			return err
		}
		rev, n = r.Revision(), len(cs)
		return nil
	})
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return rev, nil
	}
	return s.apply(ctx, write{}, []Change{PutFile{File: *f}})
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

// Snapshot returns the whole directory as a data file. Expiring team members and grants are
// written with their expires_at, also those that have expired and whose revocation the store
// has yet to write: a snapshot is the state as written (a replica restored from it then
// replays that revocation like the primary).
func (r Reader) Snapshot() *File {
	f := &File{}
	r.dep('U', "", "")
	for _, name := range r.Orgs() {
		r.dep('x', name, "")
		od := r.st.orgs[name]
		fo := FileOrg{Name: name, Queue: od.org.Queue, DefaultPresets: od.org.DefaultPresets,
			ArchivedDeletionInterval: od.org.ArchivedDeletionInterval}
		if od.members.count() > 0 {
			fo.Members = od.memberMap()
		}
		for _, pn := range sortedKeys(od.policies) {
			fo.Policies = append(fo.Policies, FilePolicy{Name: pn, Settings: od.policies[pn].p.Settings})
		}
		for _, tn := range sortedKeys(od.teams) {
			td := od.teams[tn]
			ft := FileTeam{Name: tn, Description: td.team.Description, Policy: td.team.Policy}
			if len(td.members) > 0 {
				ft.Members = map[string]FileMember{}
				for u, role := range od.teamMembers(td) {
					m := FileMember{Role: role.teamRole()}
					if exp := od.teamExpiry(td, u); exp != 0 {
						m.ExpiresAt = time.Unix(0, exp).UTC()
					}
					ft.Members[u] = m
				}
			}
			fo.Teams = append(fo.Teams, ft)
		}
		for _, pn := range od.projectNames() {
			p := od.project(pn).p
			fp := FileProject{Name: pn, Teams: p.Teams, Policy: p.Policy, CreatedBy: p.CreatedBy, Settings: p.Settings, Labels: p.Labels}
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
