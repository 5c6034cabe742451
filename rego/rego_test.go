package rego_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
)

func TestDefaultPolicyRegoTests(t *testing.T) {
	t.Parallel()
	results, err := rego.Test(t.Context(), rego.DefaultTests())
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(results), 15)
	for _, r := range results {
		require.True(t, r.Pass, "%s.%s failed %s", r.Package, r.Name, r.Error)
	}
}

func TestFailingAuthorTestIsReported(t *testing.T) {
	t.Parallel()
	results, err := rego.Test(t.Context(), []rego.Module{{Name: "x_test.rego", Source: "package x_test\n\ntest_fails if { 1 == 2 }\n"}})
	require.NoError(t, err)
	var failed []string
	for _, r := range results {
		if !r.Pass {
			failed = append(failed, r.Name)
		}
	}
	require.Equal(t, []string{"test_fails"}, failed)
}

func TestCatalogIsData(t *testing.T) {
	t.Parallel()
	p, err := rego.New(t.Context(), nil, map[string]any{"teamgate": map[string]any{"actions": map[string]any{
		"runs.export": map[string]any{"kind": "project", "role": "member"},
	}}})
	require.NoError(t, err)
	a, ok := p.Action("runs.export")
	require.True(t, ok)
	require.Equal(t, "member", a.Role)
	_, ok = p.Action("runs.get")
	require.True(t, ok, "author data merges over the default catalog")

	_, err = rego.New(t.Context(), nil, map[string]any{"teamgate": map[string]any{"actions": map[string]any{
		"x": map[string]any{"kind": "galaxy"},
	}}})
	require.ErrorContains(t, err, "galaxy")
}

// ext wraps rule lines in an extension module.
func ext(pkg string, lines ...string) string {
	return "package " + pkg + "\n\nimport rego.v1\n\n" + strings.Join(lines, "\n") + "\n"
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		modules []rego.Module
		want    bool
	}{
		{"default policy", nil, true},
		{"reads input only", []rego.Module{{Name: "x.rego", Source: ext("teamgate.ext", `deny contains "x" if input.subject.id == "bob"`)}}, true},
		{"deterministic built-in replaced by another", []rego.Module{{Name: "x.rego", Source: ext("teamgate.ext", `deny contains x if { x := upper("a") with upper as lower }`)}}, true},
		{"clock in a test module only", []rego.Module{{Name: "x_test.rego", Source: ext("teamgate.ext", `test_clock if time.now_ns() > 0`)}}, true},
		{"direct call", []rego.Module{{Name: "x.rego", Source: ext("teamgate.ext", `deny contains "night" if time.now_ns() > 0`)}}, false},
		{"assigned call", []rego.Module{{Name: "x.rego", Source: ext("teamgate.ext", "deny contains \"x\" if {\n\tt := time.now_ns()\n\tt > 5\n}")}}, false},
		// Verifies the chain at time.Now, unmarked by OPA: a cached "valid" would outlive the
		// certificate.
		{"certificate chain verified now", []rego.Module{{Name: "x.rego", Source: ext("teamgate.ext", `allow contains "cert" if crypto.x509.parse_and_verify_certificates(input.attributes.chain)[0]`)}}, false},
		{"certificate chain verified with options", []rego.Module{{Name: "x.rego", Source: ext("teamgate.ext", `allow contains "cert" if crypto.x509.parse_and_verify_certificates_with_options(input.attributes.chain, {})[0]`)}}, false},
		{"rand", []rego.Module{{Name: "x.rego", Source: ext("teamgate.ext", `allow contains "lucky" if rand.intn("x", 10) == 3`)}}, false},
		// The example: a built-in replaced by a non-deterministic one with `with`.
		{"with value is a non-deterministic built-in", []rego.Module{{Name: "x.rego", Source: ext("teamgate.ext", `deny contains x if { x := upper("a") with upper as uuid.rfc4122 }`)}}, false},
		{"with inside a function", []rego.Module{{Name: "x.rego", Source: ext("teamgate.ext",
			"f(s) := x if {\n\tx := upper(s) with upper as uuid.rfc4122\n}",
			`deny contains f("a") if input.subject.id != ""`)}}, false},
		{"with value is a function calling rand", []rego.Module{{Name: "x.rego", Source: ext("teamgate.ext",
			`g(s) := sprintf("%d", [rand.intn(s, 10)])`,
			`deny contains x if { x := upper("a") with upper as g }`)}}, false},
		{"with replaces the clock", []rego.Module{{Name: "x.rego", Source: ext("teamgate.ext", `deny contains "x" if { time.now_ns() > 0 with time.now_ns as 5 }`)}}, false},
		{"with input holds a call", []rego.Module{{Name: "x.rego", Source: ext("teamgate.ext",
			`late if input.t > 0`,
			`deny contains "x" if { late with input as {"t": time.now_ns()} }`)}}, false},
		{"inside every", []rego.Module{{Name: "x.rego", Source: ext("teamgate.ext", `deny contains "x" if { every i in [1, 2] { rand.intn("k", i) < 1 } }`)}}, false},
		{"inside a comprehension", []rego.Module{{Name: "x.rego", Source: ext("teamgate.ext", `deny contains "x" if count({u | some i in [1, 2]; u := uuid.rfc4122(sprintf("%d", [i]))}) > 1`)}}, false},
		{"in a subpackage the rules call", []rego.Module{
			{Name: "lib.rego", Source: ext("teamgate.ext.lib", `coin(s) := x if { x := upper(s) with upper as uuid.rfc4122 }`)},
			{Name: "x.rego", Source: ext("teamgate.ext", `import data.teamgate.ext.lib`, `deny contains lib.coin("a") if true`)},
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, err := rego.New(t.Context(), c.modules)
			require.NoError(t, err)
			require.Equal(t, c.want, p.Deterministic())
		})
	}
}

func TestModulePackages(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		modules []rego.Module
		errs    []string // each error message must contain these; nil: accepted
	}{
		{"ext", []rego.Module{{Name: "a.rego", Source: ext("teamgate.ext", `deny contains "x" if false`)}}, nil},
		{"ext subpackage", []rego.Module{{Name: "a.rego", Source: ext("teamgate.ext.lib", `x := 1`)}}, nil},
		{"test file in any package", []rego.Module{{Name: "a_test.rego", Source: ext("mine", `test_x if true`)}}, nil},
		{"test package in any file", []rego.Module{{Name: "a.rego", Source: ext("mine_test", `test_x if true`)}}, nil},
		{"default package", []rego.Module{{Name: "a.rego", Source: ext("teamgate.authz", `decision := {"allow": true}`)}}, []string{"a.rego:1", "package teamgate.authz", "teamgate.ext"}},
		{"other package", []rego.Module{{Name: "dir/b.rego", Source: ext("x", `y := 1`)}}, []string{"dir/b.rego:1", "package x"}},
		{"name prefix is not a subpackage", []rego.Module{{Name: "c.rego", Source: ext("teamgate.extra", `y := 1`)}}, []string{"c.rego:1", "package teamgate.extra"}},
		{"parent package", []rego.Module{{Name: "c.rego", Source: "\n" + ext("teamgate", `y := 1`)}}, []string{"c.rego:2", "package teamgate is not allowed"}},
		{"every bad module is named", []rego.Module{
			{Name: "one.rego", Source: ext("x", `y := 1`)},
			{Name: "two.rego", Source: ext("teamgate.ext", `deny contains "x" if false`)},
			{Name: "three.rego", Source: ext("z", `y := 1`)},
		}, []string{"one.rego", "three.rego"}},
		{"duplicate name", []rego.Module{
			{Name: "a.rego", Source: ext("teamgate.ext", `deny contains "x" if false`)},
			{Name: "a.rego", Source: ext("teamgate.ext", `allow contains "x" if false`)},
		}, []string{"a.rego: two modules have this name"}},
		{"default module's name", []rego.Module{{Name: rego.DefaultModules()[0].Name, Source: ext("teamgate.ext", `x := 1`)}}, []string{"two modules have this name"}},
		{"no name", []rego.Module{{Source: ext("teamgate.ext", `x := 1`)}}, []string{"module 1 has no name"}},
		// The test helper is loaded only when tests run: a rule using it would pass its tests and
		// then decide differently. Tests may use it.
		{"policy imports the test helper", []rego.Module{{Name: "h.rego", Source: ext("teamgate.ext", "import data.teamgate.testing", `deny contains "x" if testing.defaults.action == input.action`)}},
			[]string{"h.rego:5", "data.teamgate.testing is the test helper"}},
		{"policy reads the test helper", []rego.Module{{Name: "h.rego", Source: ext("teamgate.ext.lib", `x := data.teamgate.testing.defaults`)}},
			[]string{"h.rego:5", "data.teamgate.testing.defaults is the test helper"}},
		{"test uses the test helper", []rego.Module{{Name: "h_test.rego", Source: ext("teamgate.ext_test", "import data.teamgate.testing", `test_x if testing.defaults.action == "runs.get"`)}}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, newErr := rego.New(t.Context(), c.modules)
			_, testErr := rego.Test(t.Context(), c.modules)
			for _, err := range []error{newErr, testErr} {
				if c.errs == nil {
					require.NoError(t, err)
					continue
				}
				require.ErrorIs(t, err, teamgate.ErrInvalid)
				var re *rego.Error
				require.ErrorAs(t, err, &re)
				require.Equal(t, "compile", re.Op)
				for _, want := range c.errs {
					require.ErrorContains(t, err, want)
				}
			}
		})
	}
}

func TestTestModulesDoNotDecide(t *testing.T) {
	t.Parallel()
	// A test package's rules never reach the deciding policy, even in a file not named *_test.rego.
	p, err := rego.New(t.Context(), []rego.Module{{Name: "t.rego", Source: ext("teamgate.ext_test", `test_x if true`)}})
	require.NoError(t, err)
	require.True(t, p.Deterministic())
	// Nor do they take the decision table away: data and its tests are still the default rules.
	require.NotNil(t, p.Table(), "test modules do not decide, so the policy keeps its table")
	results, err := rego.Test(t.Context(), []rego.Module{{Name: "t.rego", Source: ext("teamgate.ext_test", `test_x if true`)}})
	require.NoError(t, err)
	require.Len(t, results, 1)
	require.True(t, results[0].Pass)
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		modules []rego.Module
		want    []string // substrings, each "file:line: OPA code and message"
	}{
		{"parse", []rego.Module{{Name: "bad.rego", Source: "package teamgate.ext\n\nallow if {"}}, []string{"bad.rego:3: rego_parse_error"}},
		{"empty", []rego.Module{{Name: "empty.rego", Source: "# nothing\n"}}, []string{"empty.rego:", "rego_parse_error: empty module"}},
		{"unsafe variable", []rego.Module{{Name: "u.rego", Source: ext("teamgate.ext", "deny contains msg if {", "\tinput.x == 1", "}")}}, []string{"u.rego:5: rego_unsafe_var_error: var msg is unsafe"}},
		{"undefined function", []rego.Module{{Name: "f.rego", Source: ext("teamgate.ext", "", `deny contains "x" if nope(1)`)}}, []string{"f.rego:6: rego_type_error: undefined function nope"}},
		{"undefined reference in a subpackage", []rego.Module{{Name: "l.rego", Source: ext("teamgate.ext.lib", `x := y`)}}, []string{"l.rego:5: rego_unsafe_var_error: var y is unsafe"}},
		{"one error per problem, in every file", []rego.Module{
			{Name: "a.rego", Source: ext("teamgate.ext", `deny contains m if true`)},
			{Name: "b.rego", Source: ext("teamgate.ext", "", `allow contains n if true`)},
		}, []string{"a.rego:5: rego_unsafe_var_error: var m is unsafe", "b.rego:6: rego_unsafe_var_error: var n is unsafe"}},
		// ext.deny and ext.allow are sets of messages; a boolean or string rule used to be refused
		// with the line of the default policy that reads it (teamgate/authz.rego:35).
		{"boolean deny", []rego.Module{{Name: "d.rego", Source: ext("teamgate.ext", "", `deny if input.subject.id == "bob"`)}}, []string{"d.rego:6: deny must be a set of messages"}},
		{"string deny", []rego.Module{{Name: "s.rego", Source: ext("teamgate.ext", `deny := "frozen"`)}}, []string{"s.rego:5: deny must be a set of messages"}},
		{"boolean allow with a default", []rego.Module{{Name: "a.rego", Source: ext("teamgate.ext", `default allow := false`, `allow if input.subject.id == "bob"`)}}, []string{"a.rego:5: allow must be", "a.rego:6: allow must be"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := rego.New(t.Context(), c.modules)
			require.NotContains(t, err.Error(), rego.DefaultModules()[0].Name, "the author's file is named, not the default policy")
			require.ErrorIs(t, err, teamgate.ErrInvalid)
			var re *rego.Error
			require.ErrorAs(t, err, &re)
			require.Equal(t, "compile", re.Op)
			require.Equal(t, c.modules[0].Name, re.File)
			for _, want := range c.want {
				require.ErrorContains(t, err, want)
			}
			_, err = rego.Test(t.Context(), c.modules)
			require.ErrorIs(t, err, teamgate.ErrInvalid)
			for _, want := range c.want {
				require.ErrorContains(t, err, want)
			}
		})
	}
}

func TestLoadDir(t *testing.T) {
	t.Parallel()
	write := func(t *testing.T, dir string, files map[string]string) {
		for name, content := range files {
			path := filepath.Join(dir, name)
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
			require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		}
	}
	t.Run("modules and data", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		write(t, dir, map[string]string{
			"freeze.rego":      ext("teamgate.ext", `deny contains "frozen" if input.resource.project == data.frozen`),
			"lib/helpers.rego": ext("teamgate.ext.lib", `x := 1`),
			"freeze_test.rego": ext("teamgate.ext_test", `test_frozen if data.frozen == "vision"`),
			"data.json":        `{"frozen": "vision"}`,
			"sub/actions.json": `{"teamgate": {"actions": {"runs.export": {"kind": "project", "role": "member"}}}}`,
			"README.md":        "ignored",
		})
		mods, data, err := rego.LoadDir(dir)
		require.NoError(t, err)
		require.Len(t, mods, 3)
		require.Len(t, data, 2)
		p, err := rego.New(t.Context(), mods, data...)
		require.NoError(t, err)
		_, ok := p.Action("runs.export")
		require.True(t, ok)
		results, err := rego.Test(t.Context(), mods, data...)
		require.NoError(t, err)
		require.Len(t, results, 1)
		require.True(t, results[0].Pass, results[0].Error)
	})
	// A policy directory reached through a symbolic link (a mounted volume, a "current" link) is
	// read, not skipped: skipping it would leave the default rules deciding without the author's
	// denials. An empty directory is an error for the same reason.
	t.Run("through a symbolic link", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		write(t, dir, map[string]string{"real/freeze.rego": ext("teamgate.ext", `deny contains "frozen" if true`), "real/data.json": `{"frozen": "vision"}`})
		link := filepath.Join(dir, "current")
		require.NoError(t, os.Symlink(filepath.Join(dir, "real"), link))
		mods, data, err := rego.LoadDir(link)
		require.NoError(t, err)
		require.Len(t, mods, 1)
		require.Equal(t, filepath.Join(link, "freeze.rego"), mods[0].Name)
		require.Len(t, data, 1)
	})
	t.Run("empty", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		write(t, dir, map[string]string{"README.md": "no policy here"})
		for _, path := range []string{t.TempDir(), dir, filepath.Join(dir, "README.md")} {
			_, _, err := rego.LoadDir(path)
			require.ErrorIs(t, err, teamgate.ErrInvalid, path)
			require.ErrorContains(t, err, path+": holds no .rego module or .json data file")
		}
	})
	t.Run("a module in another package", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		write(t, dir, map[string]string{"authz.rego": ext("teamgate.authz", `decision := {"allow": true}`)})
		mods, data, err := rego.LoadDir(dir)
		require.NoError(t, err)
		_, err = rego.New(t.Context(), mods, data...)
		require.ErrorIs(t, err, teamgate.ErrInvalid)
		require.ErrorContains(t, err, filepath.Join(dir, "authz.rego")+":1")
		require.ErrorContains(t, err, "package teamgate.authz")
	})
	for _, c := range []struct{ name, content, want string }{
		{"syntax", "{\n  \"a\": 1,\n  \"b\": \n}\n", "bad.json:4: invalid character '}'"},
		{"not an object", "[1, 2]", "bad.json:1: json: cannot unmarshal array"},
		{"two documents", "{\"a\": 1}\n{\"b\": 2}", "bad.json:2: invalid character '{' after top-level value"},
		{"null", "null", "bad.json:1: a data file holds one JSON object"},
		{"empty", "", "bad.json:1: unexpected end of JSON input"},
	} {
		t.Run("data "+c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			write(t, dir, map[string]string{"bad.json": c.content})
			_, _, err := rego.LoadDir(dir)
			require.ErrorIs(t, err, teamgate.ErrInvalid)
			var re *rego.Error
			require.ErrorAs(t, err, &re)
			require.Equal(t, filepath.Join(dir, "bad.json"), re.File)
			require.ErrorContains(t, err, c.want)
		})
	}
	t.Run("missing directory", func(t *testing.T) {
		t.Parallel()
		_, _, err := rego.LoadDir(filepath.Join(t.TempDir(), "nope"))
		require.ErrorIs(t, err, teamgate.ErrInvalid)
		require.ErrorIs(t, err, fs.ErrNotExist)
	})
}

func TestDataConflictingWithARuleIsInvalid(t *testing.T) {
	t.Parallel()
	mods := []rego.Module{{Name: "a.rego", Source: ext("teamgate.ext", `deny contains "x" if false`)}}
	_, err := rego.New(t.Context(), mods, map[string]any{"teamgate": map[string]any{"ext": map[string]any{"deny": []any{"x"}}}})
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	require.ErrorContains(t, err, "a.rego:5: rego_compile_error: conflicting rule for data path teamgate/ext/deny")
}

// TestDataIsChecked: data the default rules cannot use is refused when the policy loads, naming
// its path, instead of deciding with it. Before, a null org rank let a manager make owners
// (null compares below every number), an unranked role silently denied everyone, a misspelt
// destination_role dropped the destination check, a re-kinded project.get made listings differ
// from decisions, and `"deny": true` in data was ignored.
func TestDataIsChecked(t *testing.T) {
	t.Parallel()
	tg := func(doc map[string]any) map[string]any { return map[string]any{"teamgate": doc} }
	action := func(name string, spec map[string]any) map[string]any {
		return tg(map[string]any{"actions": map[string]any{name: spec}})
	}
	for _, c := range []struct {
		name string
		data map[string]any
		want string
	}{
		{"null org rank", tg(map[string]any{"org_ranks": map[string]any{"owner": nil}}), "teamgate.org_ranks.owner: missing: not a whole number"},
		{"text org rank", tg(map[string]any{"org_ranks": map[string]any{"owner": "top"}}), `teamgate.org_ranks.owner: "top": not a whole number`},
		{"unknown org rank", tg(map[string]any{"org_ranks": map[string]any{"king": 9}}), "teamgate.org_ranks.king: \"9\": not an org role"},
		{"org_base to an unranked role", tg(map[string]any{"org_base": map[string]any{"member": "superuser"}}), `teamgate.org_base.member: "superuser": not a role of teamgate.ranks`},
		{"org_base of a non-role", tg(map[string]any{"org_base": map[string]any{"guest": "viewer"}}), "teamgate.org_base.guest"},
		{"org_base null", tg(map[string]any{"org_base": map[string]any{"billing": nil}}), "teamgate.org_base.billing: missing"},
		{"org_override not a list", tg(map[string]any{"org_override": "owner"}), `teamgate.org_override: "owner": want a list of org roles`},
		{"org_override of a non-role", tg(map[string]any{"org_override": []any{"owner", "root"}}), `teamgate.org_override[1]: "root": not an org role`},
		{"unranked least role", action("runs.stop", map[string]any{"role": "superuser"}), `teamgate.actions.runs.stop.role: "superuser": not a role of teamgate.ranks`},
		{"misspelt field", action("runs.move", map[string]any{"kind": "project", "role": "admin", "destinaton_role": "contributor"}), "teamgate.actions.runs.move.destinaton_role: \"contributor\": not a field of a project action"},
		{"unranked destination role", action("runs.transfer", map[string]any{"destination_role": "boss"}), "teamgate.actions.runs.transfer.destination_role"},
		{"project action without a role", action("runs.x", map[string]any{"kind": "project"}), "teamgate.actions.runs.x.role: missing"},
		{"project action with org roles", action("runs.x", map[string]any{"kind": "project", "role": "viewer", "org_roles": []any{"member"}}), "teamgate.actions.runs.x.org_roles"},
		{"team action with both", action("team.update", map[string]any{"org_roles": []any{"owner"}}), "either a least team role (role) or the org roles"},
		{"org action without org roles", action("org.x", map[string]any{"kind": "org"}), "teamgate.actions.org.x.org_roles: missing"},
		{"org roles of a non-role", action("org.get", map[string]any{"org_roles": []any{"anyone"}}), `teamgate.actions.org.get.org_roles[0]: "anyone"`},
		// own_run allowed a contributor's own run with target_role admin: the limit was never asked.
		{"manages_members with own_run_role", action("runs.delete", map[string]any{"manages_members": true}), `teamgate.actions.runs.delete.own_run_role: "contributor": an action that manages members is not allowed by owning a run`},
		{"manages_members not a boolean", action("members.manage", map[string]any{"manages_members": "yes"}), "teamgate.actions.members.manage.manages_members"},
		{"re-kinded default action", action("project.get", map[string]any{"kind": "org", "role": nil, "org_roles": []any{"member"}}), "teamgate.actions.project.get.kind: \"org\": a default action keeps its kind project"},
		{"entry not an object", tg(map[string]any{"actions": map[string]any{"runs.x": "admin"}}), `teamgate.actions.runs.x: "admin": want an object`},
		{"ext deny as a boolean", tg(map[string]any{"ext": map[string]any{"deny": true}}), "teamgate.ext.deny: \"true\": want a list"},
		// Data in the rules' own package: an object or a list made New panic (folded into the
		// module's package path); a scalar gave OPA's conflicting-rule errors.
		{"data in the rules' package", tg(map[string]any{"authz": map[string]any{"decision": map[string]any{"allow": true}}}), "teamgate.authz: "},
		{"a list in the rules' package", tg(map[string]any{"authz": []any{1}}), "teamgate.authz: \"[1]\": the default rules' package"},
		{"a scalar in the rules' package", tg(map[string]any{"authz": 1}), "teamgate.authz: \"1\": the default rules' package"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := rego.New(t.Context(), nil, c.data)
			require.ErrorIs(t, err, teamgate.ErrInvalid)
			var re *rego.Error
			require.ErrorAs(t, err, &re)
			require.Equal(t, "load data", re.Op)
			require.ErrorContains(t, err, c.want)
			_, err = rego.Test(t.Context(), rego.DefaultTests(), c.data)
			require.ErrorContains(t, err, c.want, "tests run on the data New accepts")
		})
	}
	// What data may do: re-rank, remap, add and remove fields (null), open or close actions.
	for _, doc := range []map[string]any{
		tg(map[string]any{"org_base": map[string]any{"billing": "viewer"}, "org_override": []any{"owner"}}),
		action("team.update", map[string]any{"role": nil, "org_roles": []any{"owner"}}),
		action("runs.delete", map[string]any{"own_run_role": nil}),
		action("org.delete", map[string]any{"org_roles": []any{}}),
		action("runs.export", map[string]any{"kind": "project", "role": "none"}),
		tg(map[string]any{"ext": map[string]any{"deny": []any{"frozen"}}}),
	} {
		_, err := rego.New(t.Context(), nil, doc)
		require.NoError(t, err, "%v", doc)
	}
}

// TestExtDataAloneDecides: data.teamgate.ext given as data, with no module, takes part in every
// decision (rego.New folds the default rules' "not data.teamgate.ext" to true only when
// nothing defines it).
func TestExtDataAloneDecides(t *testing.T) {
	t.Parallel()
	in := rego.Input{Subject: rego.Subject{ID: "bob", OrgRole: "member"}, Action: "runs.get",
		Resource: rego.Resource{Kind: scope.KindProject, Org: "acme", Project: "vision", Exists: true}}
	for _, c := range []struct {
		ext  map[string]any
		want rego.Result
	}{
		{nil, rego.Result{Allow: true, Role: "contributor", Reasons: []rego.Reason{{Code: rego.CodeOrgRole}}}},
		{map[string]any{"deny": []any{"frozen"}}, rego.Result{Role: "contributor",
			Reasons: []rego.Reason{{Code: rego.CodeExtensionDeny, Message: "frozen"}}}},
		{map[string]any{}, rego.Result{Allow: true, Role: "contributor", Reasons: []rego.Reason{{Code: rego.CodeOrgRole}}}},
	} {
		var data []map[string]any
		if c.ext != nil {
			data = append(data, map[string]any{"teamgate": map[string]any{"ext": c.ext}})
		}
		p, err := rego.New(t.Context(), nil, data...)
		require.NoError(t, err)
		got, err := p.Eval(t.Context(), &in)
		require.NoError(t, err)
		require.Equal(t, c.want, got, "%v", c.ext)
	}
}

// TestReasonsNameTheirLimit: a member-management limit's insufficient_role reason carries the
// attribute and the role that crossed it (Result.Limits, by reason), the engine's message source;
// no other reason names one. A role that is not a string (only a hand-made input holds one)
// keeps its Rego text rather than failing the decision.
func TestReasonsNameTheirLimit(t *testing.T) {
	t.Parallel()
	p, err := rego.New(t.Context(), nil, map[string]any{"teamgate": map[string]any{"actions": map[string]any{
		"project.access": map[string]any{"role": "contributor"}}}})
	require.NoError(t, err)
	eval := func(attrs map[string]any) rego.Result {
		t.Helper()
		a, err := rego.NewAttributes(attrs)
		require.NoError(t, err)
		in := rego.Input{Subject: rego.Subject{ID: "bob", OrgRole: "member"}, Action: "project.access", Attributes: a,
			Resource: rego.Resource{Kind: scope.KindProject, Org: "acme", Project: "vision", Exists: true}}
		res, err := p.Eval(t.Context(), &in)
		require.NoError(t, err)
		return res
	}
	denied := rego.Result{Role: "contributor", Reasons: []rego.Reason{{Code: rego.CodeInsufficientRole}}}
	for _, c := range []struct {
		attrs map[string]any
		limit rego.Limit
	}{
		{map[string]any{"target_role": "admin"}, rego.Limit{Attribute: "target_role", Role: "admin"}},
		{map[string]any{"target_role": "viewer", "target_current_role": "admin"}, rego.Limit{Attribute: "target_current_role", Role: "admin"}},
		{map[string]any{"target_role": "admin", "target_current_role": "admin"}, rego.Limit{Attribute: "target_role", Role: "admin"}},
		{map[string]any{"target_role": 3}, rego.Limit{Attribute: "target_role", Role: "3"}},
	} {
		want := denied
		want.Limits = []rego.Limit{c.limit}
		got := eval(c.attrs)
		require.Equal(t, want, got, "%v", c.attrs)
		require.Equal(t, c.limit, got.LimitOf(0))
		require.Equal(t, rego.Limit{}, got.LimitOf(1), "past the reasons: none")
	}
	allowed := eval(map[string]any{"target_role": "contributor"})
	require.True(t, allowed.Allow)
	require.Nil(t, allowed.Limits)
	require.Equal(t, rego.Limit{}, allowed.LimitOf(0))
}
