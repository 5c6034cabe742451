package store_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/store"
)

const labelledFile = `orgs:
  - name: acme
    members: {bob: member}
    projects:
      - name: vision
        labels: {approval: admin-only, example.com/tier: gold, empty: ""}
      - name: open
`

func projectLabels(t *testing.T, s *store.Store, org, name string) map[string]string {
	t.Helper()
	var got map[string]string
	require.NoError(t, s.View(func(r store.Reader) error {
		pv, ok := r.Project(org, name)
		require.True(t, ok)
		got = pv.Project.Labels
		return nil
	}))
	return got
}

// TestProjectLabelsAreStored: labels come from the data file and the API, survive a reopen, an
// export and the wire form of events, and a reload without them removes them.
func TestProjectLabelsAreStored(t *testing.T) {
	t.Parallel()
	want := map[string]string{"approval": "admin-only", "example.com/tier": "gold", "empty": ""}
	dir := t.TempDir()
	s, err := store.Open(t.Context(), store.Options{Dir: dir})
	require.NoError(t, err)
	_, err = s.Load(t.Context(), strings.NewReader(labelledFile))
	require.NoError(t, err)
	require.Equal(t, want, projectLabels(t, s, "acme", "vision"))
	require.Nil(t, projectLabels(t, s, "acme", "open"))

	// Export reads back to the same labels; loading it again writes nothing.
	var out bytes.Buffer
	require.NoError(t, s.Export(t.Context(), &out))
	require.Contains(t, out.String(), "labels:")
	f, err := store.ParseFile(out.Bytes())
	require.NoError(t, err)
	require.Equal(t, want, f.Orgs[0].Projects[1].Labels)
	rev := s.Revision()
	again, err := s.Load(t.Context(), bytes.NewReader(out.Bytes()))
	require.NoError(t, err)
	require.Equal(t, rev, again, "an equal file writes nothing")

	// The API's writes keep what they are given, not the caller's map.
	mine := map[string]string{"approval": "anyone"}
	_, err = s.Apply(t.Context(), store.PutProject{Project: store.Project{Org: "acme", Name: "open", Labels: mine}})
	require.NoError(t, err)
	mine["approval"] = "changed behind the store's back"
	require.Equal(t, map[string]string{"approval": "anyone"}, projectLabels(t, s, "acme", "open"))

	// Events carry the labels to a replica.
	events, err := s.Watch(t.Context(), 0) // every event after revision 0
	require.NoError(t, err)
	replica, err := store.Open(t.Context(), store.Options{})
	require.NoError(t, err)
	defer replica.Close()
	for ev := range events {
		raw, err := json.Marshal(ev)
		require.NoError(t, err)
		var back store.Event
		require.NoError(t, json.Unmarshal(raw, &back))
		_, err = replica.ApplyEvent(t.Context(), back)
		require.NoError(t, err)
		if back.Revision == s.Revision() {
			break
		}
	}
	require.Equal(t, want, projectLabels(t, replica, "acme", "vision"))
	require.Equal(t, map[string]string{"approval": "anyone"}, projectLabels(t, replica, "acme", "open"))

	// A reopened store reads them from its records.
	require.NoError(t, s.Close())
	s, err = store.Open(t.Context(), store.Options{Dir: dir})
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, want, projectLabels(t, s, "acme", "vision"))

	// Loading is a sync: a file without the labels removes them.
	_, err = s.Load(t.Context(), strings.NewReader(strings.Replace(labelledFile, "        labels: {approval: admin-only, example.com/tier: gold, empty: \"\"}\n", "", 1)))
	require.NoError(t, err)
	require.Nil(t, projectLabels(t, s, "acme", "vision"))
}

// TestBadLabelsChangeNothing: the API refuses labels the data file refuses, naming the project
// and the key, and writes nothing.
func TestBadLabelsChangeNothing(t *testing.T) {
	t.Parallel()
	many := map[string]string{}
	for i := range store.MaxLabels + 1 {
		many[strings.Repeat("k", i+1)] = "v"
	}
	for name, tc := range map[string]struct {
		labels map[string]string
		want   string
	}{
		"key with a space":   {map[string]string{"ok": "1", "bad key": "x"}, `invalid project acme/vision label key "bad key"`},
		"empty key":          {map[string]string{"": "x"}, `label key "": must be 1 to 128 bytes`},
		"key ends in a dash": {map[string]string{"tier-": "x"}, "must start and end with a letter or digit"},
		"non-ASCII key":      {map[string]string{"tïer": "x"}, `'ï' at offset 1: a key holds ASCII letters`},
		"non-UTF-8 key":      {map[string]string{"t\xffer": "x"}, "byte 0xff (not UTF-8) at offset 1"},
		"space in key":       {map[string]string{"a b": "x"}, "' ' at offset 1"},
		"long value":         {map[string]string{"tier": strings.Repeat("v", store.MaxLabelValueBytes+1)}, "of key tier: longer than 256 bytes"},
		"invalid UTF-8":      {map[string]string{"tier": "\xff"}, "not UTF-8"},
		"newline in value":   {map[string]string{"tier": "a\nb"}, "control character U+000A"},
		"too many":           {many, "at most 64 labels per project"},
	} {
		s, err := store.Open(t.Context(), store.Options{})
		require.NoError(t, err)
		_, err = s.Load(t.Context(), strings.NewReader(labelledFile))
		require.NoError(t, err)
		rev := s.Revision()
		_, err = s.Apply(t.Context(), store.PutProject{Project: store.Project{Org: "acme", Name: "vision", Labels: tc.labels}})
		require.ErrorIs(t, err, teamgate.ErrInvalid, name)
		require.ErrorContains(t, err, tc.want, name)
		require.Equal(t, rev, s.Revision(), name)
		require.Equal(t, "admin-only", projectLabels(t, s, "acme", "vision")["approval"], name)
		require.NoError(t, s.Close())
	}
}
