package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/store"
)

// refusedFiles are data files ParseFile refuses, with the path and the line the error names.
// FuzzLoad starts from them too.
var refusedFiles = []struct {
	name, doc, path string
	line            int
	problem         string
}{
	{"null key", "orgs:\n  - name: a\n    members: {null: member}\n", "orgs[0].members", 3, "null key"},
	{"tilde key", "orgs:\n  - name: a\n    members:\n      ~: member\n", "orgs[0].members", 4, "null key"},
	{"fraction for an integer", "orgs:\n  - name: a\n    archived_deletion_interval: 1.5\n", "orgs[0].archived_deletion_interval", 3, "expected an integer, got the number 1.5"},
	{"fraction in settings", "orgs:\n  - name: a\n    projects:\n      - name: p\n        settings: {archived_deletion_interval: 7.5}\n", "orgs[0].projects[0].settings.archived_deletion_interval", 5, "expected an integer"},
	{"second document", "orgs: [{name: a}]\n---\norgs: [{name: b}]\n", "line 2", 2, "second YAML document"},
	{"duplicate member", "orgs:\n  - name: a\n    members:\n      bob: viewer\n      bob: owner\n", "orgs[0].members.bob", 5, "duplicate key (first at line 4)"},
	{"duplicate field", "orgs:\n  - name: a\n    queue: x\n    queue: y\n", "orgs[0].queue", 4, "duplicate key"},
	{"duplicate key in JSON", `{"orgs": [{"name": "a", "members": {"bob": "viewer", "bob": "owner"}}]}`, "orgs[0].members.bob", 1, "duplicate key"},
	{"case variant in JSON", `{"orgs": [{"name": "a", "Name": "b"}]}`, "orgs[0].Name", 1, "unknown key"},
	{"string for a list", "orgs:\n  - name: a\n    projects:\n      - name: p\n        teams: research\n", "orgs[0].projects[0].teams", 5, "expected a list, got a string"},
	{"list for a mapping", "orgs:\n  - name: a\n    members: [bob]\n", "orgs[0].members", 3, "expected a mapping, got a list"},
	{"mapping for a string", "orgs:\n  - name: {a: b}\n", "orgs[0].name", 2, "expected a string, got a mapping"},
	{"merge key", "base: &b {name: a}\norgs:\n  - <<: *b\n", "orgs[0]", 3, "merge keys"},
	{"self-containing alias", "orgs: &o\n  - name: a\n    teams: *o\n", "orgs[0].teams", 3, "contains it"},
	{"unknown key", "orgs:\n  - name: a\n    memebers: {}\n", "orgs[0].memebers", 3, "unknown key"},
	{"not YAML", "orgs: [name: [[[\n", "line 1", 1, "not YAML"},
	// Values of the wrong kind name their path and line like every other error.
	{"number for a list", "orgs:\n  - name: a\n    teams: 5\n", "orgs[0].teams", 3, "expected a list, got a number"},
	{"org role as a list", "orgs:\n  - name: a\n    members: {bob: [owner]}\n", "orgs[0].members.bob", 3, "expected a string, got a list"},
	{"team role as a list", "orgs:\n  - name: a\n    teams:\n      - name: t\n        members:\n          bob:\n            - admin\n", "orgs[0].teams[0].members.bob", 6, "expected a role or {role, expires_at}, got a list"},
	{"grant as a list", "orgs:\n  - name: a\n    projects:\n      - name: p\n        grants:\n          bob: [admin]\n", "orgs[0].projects[0].grants.bob", 6, "expected a mapping, got a list"},
	{"grant role as a number", "orgs:\n  - name: a\n    projects:\n      - name: p\n        grants:\n          bob: {role: 3}\n", "orgs[0].projects[0].grants.bob.role", 6, "expected a string, got a number"},
	{"users as a list", "users: [bob]\n", "users", 1, "expected a mapping, got a list"},
	{"labels as a list", "orgs:\n  - name: a\n    projects:\n      - name: p\n        labels: [tier]\n", "orgs[0].projects[0].labels", 5, "expected a mapping, got a list"},
	{"label value as a number", "orgs:\n  - name: a\n    projects:\n      - name: p\n        labels:\n          version: 2\n", "orgs[0].projects[0].labels.version", 6, "expected a string, got a number"},
	{"label value as a mapping", `{"orgs": [{"name": "a", "projects": [{"name": "p", "labels": {"tier": {"x": "y"}}}]}]}`, "orgs[0].projects[0].labels.tier", 1, "expected a string, got a mapping"},
	// So do values the file can be checked for on its own, before anything is written.
	{"unknown org role", "orgs:\n  - name: a\n    members:\n      bob: superuser\n", "orgs[0].members.bob", 4, `invalid org role "superuser"`},
	{"unknown team role", "orgs:\n  - name: a\n    members: {bob: member}\n    teams:\n      - name: t\n        members: {bob: owner}\n", "orgs[0].teams[0].members.bob", 6, `invalid team role "owner"`},
	{"unknown grant role", "orgs:\n  - name: a\n    projects:\n      - name: p\n        grants:\n          bob: {role: boss}\n", "orgs[0].projects[0].grants.bob", 6, `invalid grant role "boss"`},
	{"label key with a space", "orgs:\n  - name: a\n    projects:\n      - name: p\n        labels:\n          tier: gold\n          bad key: x\n", "orgs[0].projects[0].labels.bad key", 7, `invalid label key "bad key"`},
	{"label key with a dot last", "orgs:\n  - name: a\n    projects:\n      - name: p\n        labels: {example.com/: x}\n", "orgs[0].projects[0].labels.example.com/", 5, "must start and end with a letter or digit"},
	{"label value with a control character", "orgs:\n  - name: a\n    projects:\n      - name: p\n        labels: {tier: \"a\\tb\"}\n", "orgs[0].projects[0].labels.tier", 5, "control character"},
	{"label key too long", "orgs:\n  - name: a\n    projects:\n      - name: p\n        labels: {" + strings.Repeat("k", store.MaxLabelKeyBytes+1) + ": x}\n", "orgs[0].projects[0].labels." + strings.Repeat("k", store.MaxLabelKeyBytes+1), 5, "must be 1 to 128 bytes"},
	{"label value too long", "orgs:\n  - name: a\n    projects:\n      - name: p\n        labels: {tier: " + strings.Repeat("v", store.MaxLabelValueBytes+1) + "}\n", "orgs[0].projects[0].labels.tier", 5, "longer than 256 bytes"},
	{"too many labels", "orgs:\n  - name: a\n    projects:\n      - name: p\n        labels: {" + manyLabels(store.MaxLabels+1) + "}\n", "orgs[0].projects[0].labels", 5, "at most 64 labels"},
}

// manyLabels is n labels written as a YAML flow mapping's entries.
func manyLabels(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "k%d: v", i)
	}
	return b.String()
}

func TestParseFileRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range refusedFiles {
		_, err := store.ParseFile([]byte(tc.doc))
		require.ErrorIs(t, err, teamgate.ErrInvalid, tc.name)
		var ie *teamgate.InvalidError
		require.ErrorAs(t, err, &ie, tc.name)
		require.Equal(t, tc.path, ie.Value, "%s: %v", tc.name, err)
		require.Contains(t, err.Error(), fmt.Sprintf("line %d", tc.line), tc.name)
		require.Contains(t, err.Error(), tc.problem, tc.name)
	}
}

func TestParseFileUnknownKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ doc, path string }{
		{"orgs: [{name: a, memebers: {}}]", "orgs[0].memebers"},
		{"orgs: [{name: a, teams: [{name: t, polcy: p}]}]", "orgs[0].teams[0].polcy"},
		{"orgs: [{name: a, projects: [{name: p, settings: {queus: [x]}}]}]", "orgs[0].projects[0].settings.queus"},
		{"orgs: [{name: a, projects: [{name: p, grants: {bob: {role: viewer, qeue: x}}}]}]", "orgs[0].projects[0].grants.bob.qeue"},
		{"users: {bob: {default: x}}", "users.bob.default"},
		{`{"orgs": [{"name": "a", "policies": [{"name": "p", "rulez": []}]}]}`, "orgs[0].policies[0].rulez"},
	} {
		_, err := store.ParseFile([]byte(tc.doc))
		require.ErrorIs(t, err, teamgate.ErrInvalid, tc.doc)
		var ie *teamgate.InvalidError
		require.ErrorAs(t, err, &ie)
		require.Equal(t, tc.path, ie.Value)
	}
}

// TestParseFileAliasBombFailsFast: a few hundred bytes whose aliases would expand to 10⁹ list
// items are refused once aliases have written their budget, not after expanding them.
func TestParseFileAliasBombFailsFast(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 9; i++ {
		refs := slices.Repeat([]string{fmt.Sprintf("*a%d", i-1)}, 10)
		fmt.Fprintf(&b, "a%d: &a%d [%s]\n", i, i, strings.Join(refs, ", "))
	}
	b.WriteString("orgs: *a9\n")
	_, err := store.ParseFile([]byte(b.String()))
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	require.ErrorContains(t, err, "aliases expand to more than")
	require.ErrorContains(t, err, "line ")
}

// TestDataFileErrorsQuoteABoundedPrefix: a megabyte-long name is named by a short prefix, once,
// whether the parser or the store refuses it.
func TestDataFileErrorsQuoteABoundedPrefix(t *testing.T) {
	t.Parallel()
	huge := "HUGE" + strings.Repeat("x", 1<<20)
	for name, doc := range map[string]string{
		"unknown key":  "orgs:\n  - name: a\n    ? " + huge + "\n    : 1\n",
		"bad org name": "orgs:\n  - name: " + huge + "\n",
		"bad member":   "orgs:\n  - name: a\n    members:\n      ? " + huge + "\n      : member\n",
		"bad role":     "orgs:\n  - name: a\n    members: {bob: " + huge + "}\n",
		// Names the store looks up, and values made of parts, are quoted once too.
		"queue":            "orgs:\n  - name: a\n    queue: " + huge + "\n",
		"agent/queue":      "orgs:\n  - name: a\n    queue: a/" + huge + "\n",
		"project team":     "orgs:\n  - name: a\n    projects: [{name: p, teams: [" + huge + "]}]\n",
		"project policy":   "orgs:\n  - name: a\n    projects: [{name: p, policy: " + huge + "}]\n",
		"team policy":      "orgs:\n  - name: a\n    teams: [{name: t, policy: " + huge + "}]\n",
		"upstream project": "orgs:\n  - name: a\n    policies: [{name: p, projects: [a/" + huge + "]}]\n",
		"default team":     "orgs: [{name: a}]\nusers: {bob: {default_team: a/" + huge + "}}\n",
	} {
		s := memStore(t)
		_, err := s.Load(t.Context(), strings.NewReader(doc))
		require.Error(t, err, name) // ErrInvalid, or ErrNotFound for a name looked up
		require.Less(t, len(err.Error()), 400, "%s: %.400s", name, err)
		require.Equal(t, 1, strings.Count(err.Error(), "HUGE"), "%s: %s", name, err)
		require.Zero(t, s.Revision())
		require.NoError(t, s.Close())
	}
}

// TestDataFileEntriesAreNamedOnce: an entry named twice is a conflict, one without a name (a null
// entry) is invalid, naming its path.
func TestDataFileEntriesAreNamedOnce(t *testing.T) {
	t.Parallel()
	for doc, where := range map[string]string{
		"orgs: [{name: a}, {name: a}]":                                   "orgs[1]",
		"orgs: [{name: a, teams: [{name: t}, {name: t}]}]":               "orgs[0].teams[1]",
		"orgs: [{name: a, projects: [{name: p}, {name: q}, {name: p}]}]": "orgs[0].projects[2]",
		"orgs: [{name: a, policies: [{name: p}, {name: p}]}]":            "orgs[0].policies[1]",
	} {
		s := memStore(t)
		_, err := s.Load(t.Context(), strings.NewReader(doc))
		require.ErrorIs(t, err, teamgate.ErrConflict, doc)
		require.Contains(t, err.Error(), where+": line 1, column ", doc)
		require.NoError(t, s.Close())
	}
	for doc, path := range map[string]string{
		"orgs: [null]":                                  "orgs[0].name",
		"orgs: [{members: {bob: owner}}]":               "orgs[0].name",
		"orgs: [{name: a, teams: [{name: t}, ~]}]":      "orgs[0].teams[1].name",
		"orgs: [{name: a, policies: [{queue: q}]}]":     "orgs[0].policies[0].name",
		"orgs: [{name: a, projects: [{teams: [t]}]}]":   "orgs[0].projects[0].name",
		`{"orgs": [{"name": "a", "projects": [null]}]}`: "orgs[0].projects[0].name",
	} {
		s := memStore(t)
		_, err := s.Load(t.Context(), strings.NewReader(doc))
		require.ErrorIs(t, err, teamgate.ErrInvalid, doc)
		require.ErrorContains(t, err, path+`": line 1, column `, doc) // the entry's place: the name is missing
		require.ErrorContains(t, err, `: missing: every entry needs a name`, doc)
		require.NoError(t, s.Close())
	}
	s := memStore(t)
	_, err := s.Load(t.Context(), strings.NewReader("orgs: [{name: a, projects: [{name: p, settings: {teams: [x]}}]}]"))
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	require.ErrorContains(t, err, "orgs[0].projects[0].settings.teams")
}

// acmeFile parses the conformance data file for a test to edit.
func acmeFile(t *testing.T) *store.File {
	t.Helper()
	data, err := os.ReadFile(acme)
	require.NoError(t, err)
	f, err := store.ParseFile(data)
	require.NoError(t, err)
	return f
}

func encode(t *testing.T, f *store.File) []byte {
	t.Helper()
	out, err := yaml.Marshal(f)
	require.NoError(t, err)
	return out
}

func org(f *store.File, name string) *store.FileOrg {
	for i := range f.Orgs {
		if f.Orgs[i].Name == name {
			return &f.Orgs[i]
		}
	}
	panic("no org " + name)
}

func team(o *store.FileOrg, name string) *store.FileTeam {
	for i := range o.Teams {
		if o.Teams[i].Name == name {
			return &o.Teams[i]
		}
	}
	panic("no team " + name)
}

func fileProject(o *store.FileOrg, name string) *store.FileProject {
	for i := range o.Projects {
		if o.Projects[i].Name == name {
			return &o.Projects[i]
		}
	}
	panic("no project " + name)
}

// TestReloadRevokes: loading an edited file makes the org equal to it — whatever the file no
// longer holds is gone, in one batch — and a cached decision changes at once.
func TestReloadRevokes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		edit   func(f *store.File)
		req    authz.Request
		before bool
	}{
		{"org member", func(f *store.File) {
			a := org(f, "acme")
			delete(a.Members, "vera")
			delete(team(a, "engineering").Members, "vera")
			delete(team(a, "research").Members, "vera")
		}, authz.Request{Subject: "vera", Action: "project.get", Resource: "acme/nlp"}, true},
		{"team member", func(f *store.File) {
			delete(team(org(f, "acme"), "engineering").Members, "bob")
			f.Users["bob"] = store.FileUser{} // a default team must be one the user can enter
		}, authz.Request{Subject: "bob", Action: "runs.create", Resource: "acme/vision"}, true},
		{"team", func(f *store.File) {
			a := org(f, "acme")
			a.Teams = slices.DeleteFunc(a.Teams, func(t store.FileTeam) bool { return t.Name == "research" })
			fileProject(a, "nlp").Teams = []string{"engineering"}
		}, authz.Request{Subject: "beth", Action: "project.get", Resource: "acme/nlp"}, true},
		{"project", func(f *store.File) {
			a := org(f, "acme")
			a.Projects = slices.DeleteFunc(a.Projects, func(p store.FileProject) bool { return p.Name == "open" })
		}, authz.Request{Subject: "bob", Action: "project.get", Resource: "acme/open"}, true},
		{"grant", func(f *store.File) {
			delete(fileProject(org(f, "acme"), "vision").Grants, "otto")
		}, authz.Request{Subject: "otto", Action: "project.get", Resource: "acme/vision"}, true},
		{"policy", func(f *store.File) {
			a := org(f, "acme")
			a.Policies = slices.DeleteFunc(a.Policies, func(p store.FilePolicy) bool { return p.Name == "research-only" })
			fileProject(a, "labs").Policy = ""
		}, authz.Request{Subject: "bob", Action: "project.get", Resource: "acme/labs"}, false},
		{"project teams", func(f *store.File) {
			fileProject(org(f, "acme"), "nlp").Teams = nil
		}, authz.Request{Subject: "vera", Action: "runs.create", Resource: "acme/nlp"}, true},
		{"other org's member", func(f *store.File) {
			delete(org(f, "other").Members, "bob")
		}, authz.Request{Subject: "bob", Action: "project.get", Resource: "other/misc"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := memStore(t)
			rev := loadAcme(t, s)
			eng, err := authz.New(ctx, s)
			require.NoError(t, err)
			for range 2 { // the second answer comes from the decision cache
				d, err := eng.Authorize(ctx, tc.req)
				require.NoError(t, err)
				require.Equal(t, tc.before, d.Allowed, "before: %+v", d)
			}
			require.NotZero(t, eng.Stats().CacheHits)

			f := acmeFile(t)
			tc.edit(f)
			edited := encode(t, f)
			events, err := s.Watch(ctx, rev)
			require.NoError(t, err)
			got, err := s.Load(ctx, bytes.NewReader(edited))
			require.NoError(t, err)
			require.Equal(t, rev+1, got, "one batch, one revision")
			select {
			case ev := <-events:
				require.Equal(t, got, ev.Revision)
			case <-time.After(10 * time.Second):
				t.Fatal("no event")
			}

			d, err := eng.Authorize(ctx, tc.req)
			require.NoError(t, err)
			require.Equal(t, !tc.before, d.Allowed, "after: %+v", d)

			requireIsFile(t, s, edited)
		})
	}
}

// TestReloadResetsFields: fields the file drops or changes are reset in the directory too.
func TestReloadResetsFields(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := memAcme(t)
	f := acmeFile(t)
	a := org(f, "acme")
	a.Queue, a.DefaultPresets, a.ArchivedDeletionInterval = "", nil, 0
	team(a, "engineering").Policy = ""
	team(a, "research").Description = "reads papers"
	vision := fileProject(a, "vision")
	vision.CreatedBy, vision.Policy = "", ""
	vision.Settings.Presets = nil
	a.Policies[0].Queues = []string{"gpu/h100"}
	a.Policies[0].Queue = ""
	f.Users["bob"] = store.FileUser{}
	edited := encode(t, f)
	_, err := s.Load(ctx, bytes.NewReader(edited))
	require.NoError(t, err)
	requireIsFile(t, s, edited)
	require.NoError(t, s.View(func(r store.Reader) error {
		o, _ := r.Org("acme")
		require.Equal(t, store.Org{Name: "acme"}, o)
		pv, _ := r.Project("acme", "vision")
		require.Empty(t, pv.Project.Policy)
		require.Empty(t, pv.Project.Settings.Presets)
		return nil
	}))
}

func TestReloadOfTheSameFileWritesNothing(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, open func() *store.Store) {
		s := open()
		rev := loadAcme(t, s)
		again, err := s.LoadFile(t.Context(), acme)
		require.NoError(t, err)
		require.Equal(t, rev, again)
		require.Equal(t, rev, s.Revision())

		// Its own export is the same directory too.
		_, err = s.Load(t.Context(), strings.NewReader(export(t, s)))
		require.NoError(t, err)
		require.Equal(t, rev, s.Revision())
	})
}

func TestReloadThatFailsChangesNothing(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		edit func(f *store.File)
		is   error
	}{
		{"team member no longer an org member", func(f *store.File) {
			delete(org(f, "acme").Members, "vera")
		}, teamgate.ErrNotFound},
		{"grantee no longer an org member", func(f *store.File) {
			delete(org(f, "acme").Members, "otto")
		}, teamgate.ErrNotFound},
		{"project assigned to a dropped team", func(f *store.File) {
			a := org(f, "acme")
			a.Teams = slices.DeleteFunc(a.Teams, func(t store.FileTeam) bool { return t.Name == "research" })
		}, teamgate.ErrConflict},
		{"project connected to a dropped policy", func(f *store.File) {
			a := org(f, "acme")
			a.Policies = slices.DeleteFunc(a.Policies, func(p store.FilePolicy) bool { return p.Name == "research-only" })
		}, teamgate.ErrConflict},
		{"unknown role", func(f *store.File) {
			org(f, "acme").Members["bob"] = "emperor"
		}, teamgate.ErrInvalid},
	}
	modes(t, func(t *testing.T, open func() *store.Store) {
		s := open()
		rev := loadAcme(t, s)
		before := export(t, s)
		for _, tc := range cases {
			f := acmeFile(t)
			tc.edit(f)
			_, err := s.Load(t.Context(), bytes.NewReader(encode(t, f)))
			require.ErrorIs(t, err, tc.is, tc.name)
			require.Equal(t, rev, s.Revision(), tc.name)
			require.Equal(t, before, export(t, s), tc.name)
		}
		for _, tc := range refusedFiles {
			_, err := s.Load(t.Context(), strings.NewReader(tc.doc))
			require.ErrorIs(t, err, teamgate.ErrInvalid, tc.name)
			require.Equal(t, before, export(t, s), tc.name)
		}
	})
}

// TestLoadLeavesOtherOrgsAndUsers: orgs the file does not name and users it does not list stay;
// users it lists are put.
func TestLoadLeavesOtherOrgsAndUsers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := memAcme(t)
	_, err := s.Apply(ctx, store.PutUser{User: store.User{ID: "vera", DefaultTeam: "acme/research"}})
	require.NoError(t, err)
	_, err = s.Load(ctx, strings.NewReader("orgs: [{name: other, members: {zed: owner}}]\nusers: {bob: {}}\n"))
	require.NoError(t, err)
	require.NoError(t, s.View(func(r store.Reader) error {
		require.Equal(t, map[string]string{"zed": "owner"}, r.Members("other"))
		_, ok := r.Project("other", "misc")
		require.False(t, ok, "other holds only what the file gives it")
		require.Len(t, r.Members("acme"), 10, "acme is not named: untouched")
		_, ok = r.Project("acme", "vision")
		require.True(t, ok)
		bob, _ := r.User("bob")
		require.Empty(t, bob.DefaultTeam, "a listed user is put")
		vera, _ := r.User("vera")
		require.Equal(t, "acme/research", vera.DefaultTeam, "an unlisted user stays")
		return nil
	}))
}

// TestLoadWhileOthersWrite: a load works out its difference under the write lock, so a stream of
// other writes neither makes it fail nor is undone by it, and the org it names ends equal to the
// file.
func TestLoadWhileOthersWrite(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := memAcme(t)
	f := acmeFile(t)
	f.Orgs = f.Orgs[:1] // acme only
	acmeOnly := encode(t, f)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	var writes int
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			writes++
			if _, err := s.Apply(ctx, store.PutMember{Org: "other", User: fmt.Sprintf("u%d", writes), Role: "viewer"}); err != nil {
				return
			}
		}
	}()
	for i := range 20 {
		f := acmeFile(t)
		f.Orgs = f.Orgs[:1]
		if i%2 == 0 {
			delete(team(&f.Orgs[0], "engineering").Members, "bob")
			f.Users["bob"] = store.FileUser{}
		}
		_, err := s.Load(ctx, bytes.NewReader(encode(t, f)))
		require.NoError(t, err)
	}
	_, err := s.Load(ctx, bytes.NewReader(acmeOnly))
	require.NoError(t, err)
	cancel()
	wg.Wait()
	fresh := memAcme(t)
	require.NoError(t, s.View(func(r store.Reader) error {
		return fresh.View(func(want store.Reader) error {
			require.Equal(t, want.Members("acme"), r.Members("acme"))
			require.Equal(t, want.TeamRoles("acme", "bob").Map(), r.TeamRoles("acme", "bob").Map())
			require.GreaterOrEqual(t, len(r.Members("other")), writes-1, "the other writes stay")
			return nil
		})
	}))
}

// TestReloadReachesReplicas: a load's event carries the file, and a replica applying it reaches
// the same directory (the difference is worked out again against the same state).
func TestReloadReachesReplicas(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	primary, replica := memAcme(t), memStore(t)
	f := acmeFile(t)
	a := org(f, "acme")
	delete(a.Members, "otto")
	delete(fileProject(a, "vision").Grants, "otto")
	delete(team(a, "research").Members, "beth")
	a.Projects = slices.DeleteFunc(a.Projects, func(p store.FileProject) bool { return p.Name == "archive" })
	rev, err := primary.Load(ctx, bytes.NewReader(encode(t, f)))
	require.NoError(t, err)
	events, err := primary.Watch(ctx, 0)
	require.NoError(t, err)
	for ev := range events {
		require.Equal(t, "put_file", ev.Kind)
		raw, err := json.Marshal(ev)
		require.NoError(t, err)
		var decoded store.Event
		require.NoError(t, json.Unmarshal(raw, &decoded), "events travel as JSON")
		_, err = replica.ApplyEvent(ctx, decoded)
		require.NoError(t, err)
		if ev.Revision == rev {
			break
		}
	}
	require.Equal(t, export(t, primary), export(t, replica))
	require.NoError(t, replica.Check())
}

// TestReloadOfATeamLinkKeepsTheFilesProjects: a reload that changes a team's linked policy leaves
// the team's projects connected as the file says. PutTeam re-connects the projects that followed
// the old link; a project the file did not change must still end as the file has it, not
// re-connected behind it (which closed vision to its own team through research-only's teams).
func TestReloadOfATeamLinkKeepsTheFilesProjects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(a *store.FileOrg)
	}{
		{"relinked", func(a *store.FileOrg) { team(a, "engineering").Policy = "research-only" }},
		{"unlinked", func(a *store.FileOrg) { team(a, "engineering").Policy = "" }},
		{"linked", func(a *store.FileOrg) { team(a, "research").Policy = "gpu-policy" }},
		{"relinked, project re-connected by the file too", func(a *store.FileOrg) {
			team(a, "engineering").Policy = "research-only"
			fileProject(a, "nlp").Policy = "gpu-policy"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := memAcme(t)
			eng, err := authz.New(ctx, s)
			require.NoError(t, err)
			bobVision := authz.Request{Subject: "bob", Action: "runs.create", Resource: "acme/vision"}
			d, err := eng.Authorize(ctx, bobVision)
			require.NoError(t, err)
			require.True(t, d.Allowed)

			f := acmeFile(t)
			tc.edit(org(f, "acme"))
			edited := encode(t, f)
			_, err = s.Load(ctx, bytes.NewReader(edited))
			require.NoError(t, err)
			requireIsFile(t, s, edited)
			d, err = eng.Authorize(ctx, bobVision)
			require.NoError(t, err)
			require.True(t, d.Allowed, "vision is still connected to gpu-policy: %+v", d)
		})
	}
}
