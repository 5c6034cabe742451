package authz_test

import (
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/clocktest"
	"github.com/teamgate/teamgate/internal/conformance"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/store"
)

var update = flag.Bool("update", false, "rewrite the golden files of the lint tests")

// lintDir is testdata/lint: one directory per finding kind (named by its code) and clean/.
func lintDir() string { return filepath.Join(conformance.Dir(), "..", "lint") }

// lintCases are the data files the lint tests run: each directory's, and the conformance data
// (golden file conformance.json).
func lintCases(t *testing.T) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(lintDir())
	require.NoError(t, err)
	out := map[string]string{"conformance": conformance.DataFile()}
	for _, e := range entries {
		if e.IsDir() {
			out[e.Name()] = filepath.Join(lintDir(), e.Name(), "data.yaml")
		}
	}
	return out
}

func golden(name string) string {
	if name == "conformance" {
		return filepath.Join(lintDir(), "conformance.json")
	}
	return filepath.Join(lintDir(), name, "want.json")
}

func lintEngine(t *testing.T, data string, opts ...authz.Option) (*store.Store, *authz.Engine) {
	t.Helper()
	st, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	_, err = st.LoadFile(t.Context(), data)
	require.NoError(t, err)
	eng, err := authz.New(t.Context(), st, opts...)
	require.NoError(t, err)
	return st, eng
}

// noopModule is an author's module that changes no decision: it reads the subject's id, which
// the decision table does not key on, so the policy has none and every check takes the
// evaluation path.
var noopModule = rego.Module{Name: "noop.rego", Source: "package teamgate.ext\n\ndeny contains msg if {\n\tinput.subject.id == \"never.a.subject\"\n\tmsg := \"never\"\n}\n"}

// keyOnlyNoopModule changes no decision either, reading only facts of the table's key: the
// policy keeps a table whose cells are the author's policy's. (org.delete is an org action, so
// the resource is never a project; an action outside the catalog would be a lint finding.)
var keyOnlyNoopModule = rego.Module{Name: "noop.rego", Source: "package teamgate.ext\n\ndeny contains msg if {\n\tinput.action == \"org.delete\"\n\tinput.resource.kind == \"project\"\n\tmsg := \"never\"\n}\n"}

// TestLintFindings: each directory's findings are its golden file's, of its own kind only (clean/
// has none), the same with an author's module (no decision table); the conformance data's are
// conformance.json. Every kind has a directory.
func TestLintFindings(t *testing.T) {
	t.Parallel()
	cases := lintCases(t)
	for _, code := range []authz.LintCode{authz.LintProjectUnreachable, authz.LintTeamWithoutAdmin, authz.LintTeamAdminExpiring, authz.LintGrantRedundant,
		authz.LintDefaultTeamEmpty, authz.LintOutsiderWithoutAccess, authz.LintPolicyUnconnected, authz.LintSettingsConflict,
		authz.LintDefaultQueueSkipped} {
		require.Contains(t, cases, string(code), "testdata/lint has no directory for %s", code)
	}
	require.Contains(t, cases, "clean")
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, eng := lintEngine(t, data)
			rep, err := eng.Lint(t.Context())
			require.NoError(t, err)
			got, err := json.MarshalIndent(rep.Findings, "", "  ")
			require.NoError(t, err)
			got = append(got, '\n')
			if *update {
				require.NoError(t, os.WriteFile(golden(name), got, 0o644))
			}
			want, err := os.ReadFile(golden(name))
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
			switch name {
			case "conformance":
				require.NotEmpty(t, rep.Findings)
			case "clean":
				require.Empty(t, rep.Findings)
			default:
				require.NotEmpty(t, rep.Findings)
				for _, f := range rep.Findings {
					require.Equal(t, authz.LintCode(name), f.Code, "%s: %s", f.Object, f.Message)
				}
			}

			_, evaluated := lintEngine(t, data, authz.WithModules(noopModule))
			require.Nil(t, evaluated.Policy().Table())
			again, err := evaluated.Lint(t.Context())
			require.NoError(t, err)
			require.Equal(t, rep.Findings, again.Findings, "the evaluation path finds the same")

			_, authored := lintEngine(t, data, authz.WithModules(keyOnlyNoopModule))
			require.NotNil(t, authored.Policy().Table())
			again, err = authored.Lint(t.Context())
			require.NoError(t, err)
			require.Equal(t, rep.Findings, again.Findings, "the table of an author's key-only module finds the same")
		})
	}
}

// TestLintFixesRemoveFindings: applying a finding's fix to the directory it was found in removes
// it (no finding of that code on that object remains); a fix without changes says what to do.
func TestLintFixesRemoveFindings(t *testing.T) {
	t.Parallel()
	for name, data := range lintCases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, eng := lintEngine(t, data)
			rep, err := eng.Lint(t.Context())
			require.NoError(t, err)
			for _, f := range rep.Findings {
				require.NotEmpty(t, f.Fix.Summary)
				require.NotNil(t, f.Fix.Changes)
				if len(f.Fix.Changes) == 0 {
					continue
				}
				// Through the wire form `teamgate apply --changes` reads.
				raw, err := json.Marshal(f.Fix.Changes)
				require.NoError(t, err)
				var changes store.Changes
				require.NoError(t, json.Unmarshal(raw, &changes))
				st, fixed := lintEngine(t, data)
				_, err = st.Apply(t.Context(), changes...)
				require.NoError(t, err, "%s %s: %s", f.Code, f.Object, raw)
				after, err := fixed.Lint(t.Context())
				require.NoError(t, err)
				require.False(t, slices.ContainsFunc(after.Findings, func(g authz.Finding) bool {
					return g.Code == f.Code && g.Object == f.Object
				}), "%s %s remains after its fix %s: %v", f.Code, f.Object, raw, after.Findings)
			}
		})
	}
}

func TestLintScope(t *testing.T) {
	t.Parallel()
	_, eng := lintEngine(t, conformance.DataFile())
	all, err := eng.Lint(t.Context())
	require.NoError(t, err)
	acme, err := eng.Lint(t.Context(), "acme")
	require.NoError(t, err)
	require.Equal(t, all, acme, "every finding of the conformance data is in acme")
	twice, err := eng.Lint(t.Context(), "acme", "acme")
	require.NoError(t, err)
	require.Equal(t, acme, twice, "an org named twice is reported once")
	other, err := eng.Lint(t.Context(), "other")
	require.NoError(t, err)
	require.Equal(t, []authz.Finding{}, other.Findings)
	require.Equal(t, uint64(1), other.Revision)

	_, err = eng.Lint(t.Context(), "acme", "no.such")
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	require.ErrorContains(t, err, "no.such")
	_, err = eng.Lint(t.Context(), "nosuch")
	require.ErrorIs(t, err, teamgate.ErrNotFound)
	require.ErrorContains(t, err, "nosuch")
}

// TestLintReportsThePolicysWarnings: an author's module's warnings (rego.Policy.Warnings) are
// findings too, first, at FILE:LINE:COL, whatever orgs are linted, with the fix the warning gives
// and no changes; the default policy has none.
func TestLintReportsThePolicysWarnings(t *testing.T) {
	t.Parallel()
	mod := rego.Module{Name: "policies/typo.rego", Source: "package teamgate.ext\n\nimport rego.v1\n\n" +
		"deny contains \"no deletes\" if input.action == \"runs.delte\"\n\n" +
		"deny contains \"gated\" if input.resource.lables.gate == \"closed\"\n"}
	_, eng := lintEngine(t, conformance.DataFile(), authz.WithModules(mod))
	want := []authz.Finding{
		{Code: authz.LintPolicyUnknownValue, Object: "policies/typo.rego:5:47",
			Message: `input.action is compared with "runs.delte", which is not an action of the catalog (data.teamgate.actions), so this comparison never holds; did you mean "runs.delete"?`,
			Fix:     authz.Fix{Summary: `write "runs.delete", or add the action to the catalog in a JSON file of the policy`, Changes: store.Changes{}}},
		{Code: authz.LintPolicyUnknownField, Object: "policies/typo.rego:7:41",
			Message: `input.resource has no field "lables" (the input document: rego/README.md, "Input"), so input.resource.lables.gate is never defined and an expression reading it never holds; did you mean input.resource.labels?`,
			Fix:     authz.Fix{Summary: "write input.resource.labels", Changes: store.Changes{}}},
	}
	for _, orgs := range [][]string{nil, {"acme"}, {"other"}} {
		rep, err := eng.Lint(t.Context(), orgs...)
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(rep.Findings), 2, orgs)
		require.Equal(t, want, rep.Findings[:2], orgs)
		for _, f := range rep.Findings[2:] {
			require.NotContains(t, string(f.Code), "policy_")
		}
	}
}

// TestLintAsksThePolicy: what the policy allows decides the findings: an author's ext.allow
// that lets bob read acme/orphan makes it reachable.
func TestLintAsksThePolicy(t *testing.T) {
	t.Parallel()
	mod := rego.Module{Name: "ext.rego", Source: `package teamgate.ext

allow contains "bob reads orphan" if {
	input.subject.id == "bob"
	input.action == "project.get"
	input.resource.project == "orphan"
}
`}
	_, eng := lintEngine(t, filepath.Join(lintDir(), "project_unreachable", "data.yaml"), authz.WithModules(mod))
	rep, err := eng.Lint(t.Context())
	require.NoError(t, err)
	objects := []string{}
	for _, f := range rep.Findings {
		objects = append(objects, f.Object)
	}
	require.Equal(t, []string{"acme/projects/secrets"}, objects)
}

// TestLintFollowsExpiry: lint reads expiring facts as they stand by the store's clock — a team
// whose only admin's membership expires is reported with when, then as a team without an admin
// once it has expired; an outsider whose only access is an expiring grant is reported once it
// has ended, not before.
func TestLintFollowsExpiry(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := clocktest.New(t0)
	st, err := store.Open(ctx, store.Options{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.Apply(ctx,
		store.PutOrg{Org: store.Org{Name: "a"}},
		store.PutMember{Org: "a", User: "alice", Role: "owner"},
		store.PutMember{Org: "a", User: "vera", Role: "member"},
		store.PutMember{Org: "a", User: "otto", Role: "outsider"},
		store.PutTeam{Team: store.Team{Org: "a", Name: "t"}},
		store.PutTeamMember{Org: "a", Team: "t", User: "vera", Role: "admin", ExpiresAt: t0.Add(time.Hour)},
		store.PutProject{Project: store.Project{Org: "a", Name: "p", Teams: []string{"t"}, CreatedBy: "vera"}},
		store.PutGrant{Org: "a", Project: "p", User: "otto", Grant: store.Grant{Role: "viewer", ExpiresAt: t0.Add(2 * time.Hour)}})
	require.NoError(t, err)
	eng, err := authz.New(ctx, st)
	require.NoError(t, err)
	findings := func() map[string]authz.Finding {
		rep, err := eng.Lint(ctx)
		require.NoError(t, err)
		out := map[string]authz.Finding{}
		for _, f := range rep.Findings {
			out[string(f.Code)+" "+f.Object] = f
		}
		return out
	}
	codes := func(m map[string]authz.Finding) []string { return slices.Sorted(maps.Keys(m)) }

	got := findings()
	require.Equal(t, []string{"team_admin_expiring a/teams/t"}, codes(got))
	require.Contains(t, got["team_admin_expiring a/teams/t"].Message, "(vera until 2030-01-01T01:00:00Z): from 2030-01-01T01:00:00Z only alice may")

	clock.Advance(time.Hour)
	got = findings()
	require.Contains(t, codes(got), "team_without_admin a/teams/t", "vera's membership has ended")
	require.NotContains(t, codes(got), "team_admin_expiring a/teams/t")
	require.NotContains(t, codes(got), "outsider_without_access a/members/otto", "otto's grant still stands")

	clock.Advance(time.Hour)
	got = findings()
	require.Contains(t, codes(got), "outsider_without_access a/members/otto", "otto's grant has ended")
}
