// Package conformance loads the conformance corpus shared by the Go API tests and the CLI
// tests: the shared corpus (testdata/conformance/cases.yaml, kept identical to the upstream
// copy) and teamgate's own regression cases (testdata/regression/cases.yaml, same format and
// data), as one list.
//
// Tests name the corpus only through Dir and DataFile (OpenStore: a store holding the data);
// the examples that embed acme.yaml (go:embed reads no file outside a package's directory)
// check their copy with RequireDataCopy. Every case runs through the Go API (authz) and the CLI
// (cmd/teamgate), and the CLI's messages are checked against the API's.
package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/teamgate/teamgate/internal/strict"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/store"
)

// Dir is the corpus directory.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "conformance")
}

// RegressionDir is the directory of teamgate's own regression cases.
func RegressionDir() string { return filepath.Join(Dir(), "..", "regression") }

// DataFile is the path of acme.yaml, the data of every case.
func DataFile() string { return filepath.Join(Dir(), "acme.yaml") }

// OpenStore opens a store with opts, closed when t ends, and loads the conformance data into it
// (revision 1): the directory every case runs against.
func OpenStore(t testing.TB, opts store.Options) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.LoadFile(t.Context(), DataFile())
	require.NoError(t, err)
	return st
}

// RequireDataCopy fails t unless data is acme.yaml byte for byte: the examples embed a copy of
// it (go:embed reads no file outside a package's directory), and a copy that drifted would show
// a reader what the corpus no longer says.
func RequireDataCopy(t testing.TB, data string) {
	t.Helper()
	want, err := os.ReadFile(DataFile())
	require.NoError(t, err)
	require.Equal(t, string(want), data, "the example's acme.yaml is a copy of %s: copy it again", DataFile())
}

// Authorize is one expected decision.
type Authorize struct {
	Subject    string         `yaml:"subject"`
	Action     string         `yaml:"action"`
	Resource   string         `yaml:"resource"`
	Attributes map[string]any `yaml:"attributes"`
	Allowed    bool           `yaml:"allowed"`
	Role       string         `yaml:"role"`
	Reason     string         `yaml:"reason"`
	Error      bool           `yaml:"error"`
	Note       string         `yaml:"note"`
}

// Admit is one expected admission.
type Admit struct {
	Subject    string         `yaml:"subject"`
	Project    string         `yaml:"project"`
	Run        map[string]any `yaml:"run"`
	Allowed    bool           `yaml:"allowed"`
	Queue      string         `yaml:"queue"`
	Presets    []string       `yaml:"presets"`
	Violations []string       `yaml:"violations"`
	Note       string         `yaml:"note"`
}

// List is one expected listing.
type List struct {
	Subject  string   `yaml:"subject"`
	Owner    string   `yaml:"owner"`
	Projects []string `yaml:"projects"`
	Note     string   `yaml:"note"`
}

// Field is one expected effective setting.
type Field struct {
	Restricted *bool    `yaml:"restricted"`
	Values     []string `yaml:"values"`
	Value      any      `yaml:"value"`
}

// Settings is one expected effective-settings read.
type Settings struct {
	Project  string           `yaml:"project"`
	User     string           `yaml:"user"`
	Settings map[string]Field `yaml:"settings"`
}

// Cases is the whole corpus.
type Cases struct {
	Authorize []Authorize `yaml:"authorize"`
	Admit     []Admit     `yaml:"admit"`
	List      []List      `yaml:"list"`
	Settings  []Settings  `yaml:"settings"`
}

// Load reads the shared corpus and the regression cases, in that order.
func Load() (*Cases, error) {
	var all Cases
	for _, file := range []string{filepath.Join(Dir(), "cases.yaml"), filepath.Join(RegressionDir(), "cases.yaml")} {
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		var c Cases
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true) // a misspelt field would silently weaken a case
		if err := dec.Decode(&c); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		all.Authorize = append(all.Authorize, c.Authorize...)
		all.Admit = append(all.Admit, c.Admit...)
		all.List = append(all.List, c.List...)
		all.Settings = append(all.Settings, c.Settings...)
	}
	return &all, nil
}

// Run converts a case's run document into a policy.Run the way the CLI does: through JSON,
// decoded under the strict rules (internal/strict).
func Run(doc map[string]any) (policy.Run, error) {
	raw, err := json.Marshal(doc)
	if err != nil {
		return policy.Run{}, err
	}
	var r policy.Run
	err = strict.JSON(raw, &r)
	return r, err
}

// CheckSettings compares the JSON of an effective-settings read (the §11 shape) with a case:
// every field of the case must match (allow-lists: restricted flag and sorted values).
func CheckSettings(t testing.TB, c Settings, raw []byte) {
	t.Helper()
	var got struct {
		Project  string `json:"project"`
		Settings map[string]struct {
			Restricted *bool  `json:"restricted"`
			Values     []any  `json:"values"`
			Value      any    `json:"value"`
			Source     string `json:"source"`
		} `json:"settings"`
	}
	require.NoError(t, json.Unmarshal(raw, &got), string(raw))
	for _, field := range []string{"connections", "agents", "queues", "namespaces", "presets", "teams", "projects",
		"excluded_runtimes", "excluded_features", "queue", "default_presets", "archived_deletion_interval", "rules", "namespace"} {
		require.Contains(t, got.Settings, field, "every field present")
	}
	for field, want := range c.Settings {
		g, ok := got.Settings[field]
		require.True(t, ok, "%s: field %s missing", c.Project, field)
		name := c.Project + " " + c.User + " " + field
		if want.Restricted != nil {
			require.NotNil(t, g.Restricted, name)
			require.Equal(t, *want.Restricted, *g.Restricted, name)
		}
		if field != "rules" {
			require.NotEmpty(t, g.Source, name)
		}
		if want.Values != nil {
			vals := []string{}
			for _, v := range g.Values {
				vals = append(vals, fmt.Sprint(v))
			}
			if want.Restricted != nil {
				slices.Sort(vals)
			}
			require.Equal(t, want.Values, vals, name)
		}
		if want.Value != nil {
			require.Equal(t, fmt.Sprint(want.Value), fmt.Sprint(g.Value), name)
		}
	}
}
