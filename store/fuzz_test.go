package store_test

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/store"
)

// FuzzLoad feeds arbitrary data files to a loaded store: no panic; an error is typed and changes
// nothing; a success exports to a file that loads back to the same state.
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
