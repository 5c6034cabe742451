package scope_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/scope"
)

func TestCheckSlug(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"acme", true}, {"Acme_1-x", true}, {"a", true}, {strings.Repeat("a", 128), true},
		{"", false}, {strings.Repeat("a", 129), false}, {"a--b", false}, {"a.b", false},
		{"a/b", false}, {"vi sion", false}, {"é", false}, {"-", true}, {"--", false},
	} {
		err := scope.CheckSlug("org", tc.in)
		if tc.ok {
			require.NoError(t, err, tc.in)
			continue
		}
		require.ErrorIs(t, err, teamgate.ErrInvalid, tc.in)
		var ie *teamgate.InvalidError
		require.True(t, errors.As(err, &ie))
		require.Equal(t, tc.in, ie.Value)
	}
}

func TestParseOwner(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want scope.Owner
		err  bool
	}{
		{in: "acme", want: scope.Owner{Org: "acme"}},
		{in: "acme/eng", want: scope.Owner{Org: "acme", Team: "eng"}},
		{in: "acme.eng", err: true}, // '.' never separates owners
		{in: "", err: true},
		{in: "acme/eng/x", err: true},
		{in: "acme/", err: true},
		{in: "/eng", err: true},
		{in: "ac--me", err: true},
	} {
		got, err := scope.ParseOwner(tc.in)
		if tc.err {
			require.ErrorIs(t, err, teamgate.ErrInvalid, tc.in)
			require.Contains(t, err.Error(), tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got)
		require.Equal(t, tc.in, got.String())
	}
}

func TestParseProject(t *testing.T) {
	t.Parallel()
	ctx := scope.Owner{Org: "acme", Team: "eng"}
	for _, tc := range []struct {
		in   string
		ctx  scope.Owner
		want scope.Ref
		err  bool
	}{
		{in: "acme/vision", want: scope.Ref{Org: "acme", Project: "vision"}},
		{in: "acme.vision", want: scope.Ref{Org: "acme", Project: "vision"}},
		{in: "acme/eng/vision", want: scope.Ref{Org: "acme", Team: "eng", Project: "vision"}},
		{in: "acme.eng.vision", want: scope.Ref{Org: "acme", Team: "eng", Project: "vision"}},
		{in: "acme/eng.vision", want: scope.Ref{Org: "acme", Team: "eng", Project: "vision"}},
		{in: "vision", ctx: ctx, want: scope.Ref{Org: "acme", Team: "eng", Project: "vision"}},
		{in: "vision", ctx: scope.Owner{Org: "acme"}, want: scope.Ref{Org: "acme", Project: "vision"}},
		{in: "vision", err: true},
		{in: "", err: true},
		{in: "acme/a/b/c", err: true},
		{in: "acme--x/vision", err: true},
		{in: "acme/vi sion", err: true},
		{in: "/vision", err: true},
		{in: "acme//vision", err: true},
		{in: "acme/vision/", err: true},
		{in: "acme..vision", err: true},
	} {
		got, err := scope.ParseProject(tc.in, tc.ctx)
		if tc.err {
			require.ErrorIs(t, err, teamgate.ErrInvalid, tc.in)
			var ie *teamgate.InvalidError
			require.ErrorAs(t, err, &ie)
			require.Equal(t, tc.in, ie.Value)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
}

func TestParseFullProject(t *testing.T) {
	t.Parallel()
	_, err := scope.ParseFullProject("open")
	require.ErrorIs(t, err, teamgate.ErrInvalid)
	r, err := scope.ParseFullProject("other/misc")
	require.NoError(t, err)
	require.Equal(t, "other/misc", r.String())
}

func TestParseResourceKindByShape(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind scope.Kind
		in   string
		ok   bool
	}{
		{scope.KindOrg, "acme", true},
		{scope.KindOrg, "acme/engineering", false},
		{scope.KindTeam, "acme/engineering", true},
		{scope.KindTeam, "acme", false},
		{scope.KindTeam, "acme.engineering", false},
		{scope.KindProject, "acme/vision", true},
		{scope.KindProject, "acme/eng/vision", true},
		{scope.KindProject, "acme", false},
		{scope.Kind("user"), "acme", false},
	} {
		_, err := scope.ParseResource(tc.kind, tc.in, scope.Owner{})
		if tc.ok {
			require.NoError(t, err, "%s %s", tc.kind, tc.in)
		} else {
			require.ErrorIs(t, err, teamgate.ErrInvalid, "%s %s", tc.kind, tc.in)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"acme", "acme/eng", "acme/eng/vision", "a.b.c", "a//b", "", "a--b", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if o, err := scope.ParseOwner(s); err == nil {
			back, err := scope.ParseOwner(o.String())
			if err != nil || back != o {
				t.Fatalf("owner round trip %q -> %q: %v", s, o.String(), err)
			}
		}
		if r, err := scope.ParseProject(s, scope.Owner{Org: "ctx"}); err == nil {
			back, err := scope.ParseProject(r.String(), scope.Owner{})
			if err != nil || back != r {
				t.Fatalf("project round trip %q -> %q: %v", s, r.String(), err)
			}
		} else if !errors.Is(err, teamgate.ErrInvalid) {
			t.Fatalf("untyped error for %q: %v", s, err)
		}
	})
}

// TestErrorsQuoteAHugeInputOnce: a megabyte-long part is named by position, and the input by a
// bounded prefix, once.
func TestErrorsQuoteAHugeInputOnce(t *testing.T) {
	t.Parallel()
	huge := "HUGE" + strings.Repeat("x", 1<<20)
	for _, parse := range []func() error{
		func() error { _, err := scope.ParseOwner("acme/" + huge); return err },
		func() error { _, err := scope.ParseProject("acme/"+huge+"/p", scope.Owner{}); return err },
		func() error { _, err := scope.ParseProject(huge+".p", scope.Owner{}); return err },
	} {
		err := parse()
		require.ErrorIs(t, err, teamgate.ErrInvalid)
		require.Less(t, len(err.Error()), 300, "%.300s", err)
		require.Equal(t, 1, strings.Count(err.Error(), "HUGE"), "%.300s", err)
		require.Contains(t, err.Error(), ": longer than 128 characters")
	}
}
