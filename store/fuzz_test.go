package store_test

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/store"
)

// FuzzLoad feeds arbitrary data files to a loaded store: no panic; an error is typed and changes
// nothing; a success leaves the directory equal to the file (loading it again writes nothing),
// its indexes consistent, and exports to a file that loads back to the same state.
func FuzzLoad(f *testing.F) {
	acmeData, err := os.ReadFile(acme)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(acmeData)
	f.Add([]byte("orgs: [{name: acme, members: {zed: owner}}]"))
	f.Add([]byte(`{"orgs": [{"name": "x", "teams": [{"name": "t", "members": {"a": "admin"}}]}]}`))
	f.Add([]byte("orgs: [{name: acme, projects: [{name: p, teams: [research], grants: {bob: {role: admin}}}]}]"))
	f.Add([]byte("users: {bob: {default_team: acme/engineering}}"))
	f.Add([]byte("orgs: [{name: acme, members: {alice: owner}}, {name: other}]"))
	for _, tc := range refusedFiles {
		f.Add([]byte(tc.doc))
	}
	f.Add([]byte("a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\norgs: *c\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := store.Open(t.Context(), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Load(t.Context(), bytes.NewReader(acmeData)); err != nil {
			t.Fatal(err)
		}
		var before bytes.Buffer
		if err := s.Export(t.Context(), &before); err != nil {
			t.Fatal(err)
		}
		rev := s.Revision()
		_, err = s.Load(t.Context(), bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, teamgate.ErrInvalid) && !errors.Is(err, teamgate.ErrNotFound) && !errors.Is(err, teamgate.ErrConflict) {
				t.Fatalf("untyped error: %v", err)
			}
			var after bytes.Buffer
			_ = s.Export(t.Context(), &after)
			if after.String() != before.String() || s.Revision() != rev {
				t.Fatalf("a failed load changed the store: %v", err)
			}
			return
		}
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
		rev = s.Revision()
		if _, err := s.Load(t.Context(), bytes.NewReader(data)); err != nil || s.Revision() != rev {
			t.Fatalf("loading the same file again wrote (revision %d → %d) or failed: %v", rev, s.Revision(), err)
		}
		var exported bytes.Buffer
		if err := s.Export(t.Context(), &exported); err != nil {
			t.Fatal(err)
		}
		s2, err := store.Open(t.Context(), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		if _, err := s2.Load(t.Context(), bytes.NewReader(exported.Bytes())); err != nil {
			t.Fatalf("export does not load back: %v\n%s", err, exported.String())
		}
		var again bytes.Buffer
		_ = s2.Export(t.Context(), &again)
		if again.String() != exported.String() {
			t.Fatalf("round trip differs:\n%s\n---\n%s", exported.String(), again.String())
		}
	})
}

// FuzzApply decodes bytes into batches of changes over a small vocabulary of names, applies
// them, and checks after every batch: no panic, a failed batch changes nothing, and every index
// agrees with the records.
func FuzzApply(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte{2, 0, 0, 3, 1, 1, 4, 2, 2, 6, 0, 1, 255, 7, 1, 2})
	f.Add([]byte("teamgate fuzzes its store"))
	users := []string{"ann", "ben", "cat", "dan"}
	teams := []string{"red", "blue", "green"}
	projects := []string{"p1", "p2", "p3"}
	policies := []string{"pa", "pb"}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := store.Open(t.Context(), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		pick := func(i int, v []string) string { return v[i%len(v)] }
		subset := func(bits int) []string { // the teams whose bit is set
			var ts []string
			for j, tm := range teams {
				if bits&(1<<j) != 0 {
					ts = append(ts, tm)
				}
			}
			return ts
		}
		var batch []store.Change
		for i := 0; i+2 < len(data); i += 3 {
			op, a, b := int(data[i]), int(data[i+1]), int(data[i+2])
			var c store.Change
			switch op % 17 {
			case 0:
				c = store.PutOrg{Org: store.Org{Name: "o", Queue: pick(a, []string{"", "cpu/a", "gpu/b"})}}
			case 1:
				c = store.PutMember{Org: "o", User: pick(a, users), Role: pick(b, store.OrgRoles())}
			case 2:
				c = store.DeleteMember{Org: "o", User: pick(a, users)}
			case 3:
				c = store.PutTeam{Team: store.Team{Org: "o", Name: pick(a, teams), Policy: pick(b, append([]string{""}, policies...))}}
			case 4:
				c = store.DeleteTeam{Org: "o", Name: pick(a, teams)}
			case 5:
				c = store.PutTeamMember{Org: "o", Team: pick(a, teams), User: pick(b, users), Role: pick(a+b, store.TeamRoles())}
			case 6:
				c = store.DeleteTeamMember{Org: "o", Team: pick(a, teams), User: pick(b, users)}
			case 7:
				c = store.PutProject{Project: store.Project{Org: "o", Name: pick(a, projects), Teams: subset(b), Policy: pick(b>>3, append([]string{""}, policies...))}}
			case 8:
				c = store.DeleteProject{Org: "o", Name: pick(a, projects)}
			case 9:
				c = store.PutGrant{Org: "o", Project: pick(a, projects), User: pick(b, users), Grant: store.Grant{Role: pick(a+b, store.TeamRoles())}}
			case 10:
				c = store.DeleteGrant{Org: "o", Project: pick(a, projects), User: pick(b, users)}
			case 11:
				c = store.PutPolicy{Policy: store.Policy{Org: "o", Name: pick(a, policies), Settings: policy.Settings{Teams: subset(b)}}}
			case 12:
				c = store.DeletePolicy{Org: "o", Name: pick(a, policies)}
			case 13:
				c = store.DeleteOrg{Name: "o"}
			case 14:
				c = store.PutUser{User: store.User{ID: pick(a, users), DefaultTeam: pick(b, []string{"", "o/red", "o/blue", "o/green"})}}
			case 15:
				c = store.RenameTeam{Org: "o", From: pick(a, teams), To: pick(b, teams)}
			case 16:
				c = store.CreateProject{Project: store.Project{Org: "o", Name: pick(a, projects)}, Team: pick(b, append([]string{""}, teams...))}
			}
			batch = append(batch, c)
			if b%3 != 0 && len(batch) > 0 { // end the batch here
				var before bytes.Buffer
				_ = s.Export(t.Context(), &before)
				rev := s.Revision()
				_, err := s.Apply(t.Context(), batch...)
				if err != nil {
					var after bytes.Buffer
					_ = s.Export(t.Context(), &after)
					if before.String() != after.String() || rev != s.Revision() {
						t.Fatalf("failed batch %v changed the store: %v", batch, err)
					}
				}
				if err := s.Check(); err != nil {
					t.Fatalf("after %v (%v): %v", batch, err, err)
				}
				batch = nil
			}
		}
	})
}
