package authz_test

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/store"
)

// scribble edits everything v reaches that a caller could edit: every string in a slice or a
// map's value, every map (a key added), through pointers, slices, arrays, maps and exported
// struct fields — what a careless caller of an answer might do to it.
func scribble(v reflect.Value, seen map[uintptr]bool) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return
		}
		if v.Kind() == reflect.Pointer {
			if seen[v.Pointer()] {
				return
			}
			seen[v.Pointer()] = true
		}
		scribble(v.Elem(), seen)
	case reflect.String:
		if v.CanSet() {
			v.SetString("scribbled")
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			scribble(v.Index(i), seen)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				scribble(v.Field(i), seen)
			}
		}
	case reflect.Map:
		if v.IsNil() {
			return
		}
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			scribble(e, seen)
			v.SetMapIndex(k, e)
		}
		if v.Type().Key().Kind() == reflect.String {
			v.SetMapIndex(reflect.ValueOf("scribbled").Convert(v.Type().Key()), reflect.New(v.Type().Elem()).Elem())
		}
	}
}

// TestAttack20cAnswersDoNotEditTheStore: every engine answer that carries a project's facts
// (Explain's input and suggestions, ListSubjects, EffectiveSettings, Admit, Elevations, Lint,
// Simulate, ListProjects, ProjectFilter, AuthorizeBatch) is scribbled over as a careless caller
// might: the store's records, its decisions' facts (Access: the project's first line) and Check
// are as before.
func TestAttack20cAnswersDoNotEditTheStore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	eng, st := newAcme(t)
	_, err := st.Apply(ctx, store.PutGrant{Org: "acme", Project: "vision", User: "vera",
		Grant: store.Grant{Role: "admin", ExpiresAt: time.Now().Add(time.Hour),
			BreakGlass: &store.BreakGlass{Actor: "alice", At: time.Now(), Justification: "incident"}}})
	require.NoError(t, err)
	setLabels(t, st, "acme", "nlp", map[string]string{"tier": "gold"})
	users := []string{"alice", "bob", "beth", "vera", "olga", "otto", "zed"}
	projects := []string{"vision", "nlp", "open", "labs", "archive"}
	facts := func() (string, []store.Access) {
		var file bytes.Buffer
		require.NoError(t, st.Export(ctx, &file))
		var out []store.Access
		require.NoError(t, st.View(func(r store.Reader) error {
			for _, team := range []string{"", "engineering", "research"} {
				for _, p := range projects {
					for _, u := range users {
						a := r.Access("acme", team, p, u)
						a.Teams, a.Labels = append([]string(nil), a.Teams...), cloneLabels(a.Labels)
						out = append(out, a)
					}
				}
			}
			return nil
		}))
		return file.String(), out
	}
	wantFile, wantFacts := facts()
	answered := 0
	answer := func(what string, v any, err error) {
		t.Helper()
		require.NoError(t, err, what)
		answered++
		scribble(reflect.ValueOf(v), map[uintptr]bool{})
		require.NoError(t, st.Check(), "after scribbling over %s", what)
		file, fs := facts()
		require.Equal(t, wantFile, file, "scribbling over %s edited the records", what)
		require.Equal(t, wantFacts, fs, "scribbling over %s edited the decisions' facts", what)
	}
	for _, u := range users {
		for _, res := range []string{"acme/vision", "acme/engineering/vision", "acme/nlp", "acme/research/nlp", "acme/open"} {
			x, err := eng.Explain(ctx, authz.Request{Subject: u, Action: "runs.stop", Resource: res})
			answer("Explain "+u+" "+res, &x, err)
		}
	}
	for _, res := range []string{"acme/vision", "acme/nlp", "acme/engineering"} {
		for _, act := range []string{"runs.get", "runs.stop"} {
			if res == "acme/engineering" {
				act = "team.get"
			}
			l, err := eng.ListSubjects(ctx, act, res, authz.Page{})
			answer("ListSubjects "+act+" "+res, &l, err)
		}
	}
	for _, u := range users[:4] {
		s, err := eng.EffectiveSettings(ctx, "acme/vision", u)
		answer("EffectiveSettings", &s, err)
		s, err = eng.EffectiveSettings(ctx, "acme/nlp", u)
		answer("EffectiveSettings", &s, err)
	}
	ad, err := eng.Admit(ctx, "bob", "acme/vision", policy.Run{Kind: "job", Queue: "gpu/a100", Presets: []string{"small"}})
	answer("Admit", &ad, err)
	el, err := eng.Elevations(ctx, "acme")
	answer("Elevations", &el, err)
	lr, err := eng.Lint(ctx, "acme")
	answer("Lint", &lr, err)
	wi, err := eng.Simulate(ctx, store.DeleteGrant{Org: "acme", Project: "vision", User: "beth"},
		store.PutProject{Project: store.Project{Org: "acme", Name: "nlp", Teams: []string{"research"}, Labels: map[string]string{"tier": "x"}}})
	answer("Simulate", &wi, err)
	lp, err := eng.ListProjects(ctx, "bob", "acme", authz.Page{})
	answer("ListProjects", &lp, err)
	pf, err := eng.ProjectFilter(ctx, "bob", "acme/engineering")
	answer("ProjectFilter", &pf, err)
	var batch []authz.Request
	for _, u := range users {
		batch = append(batch, authz.Request{Subject: u, Action: "runs.get", Resource: "acme/nlp", Suggest: true})
	}
	br, err := eng.AuthorizeBatch(ctx, batch)
	answer("AuthorizeBatch", &br, err)
	require.Greater(t, answered, 40)
}

func cloneLabels(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
