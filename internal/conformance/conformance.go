// Package conformance loads the conformance corpus (testdata/conformance) shared by the Go API
// tests and the CLI tests.
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

	"github.com/teamgate/teamgate/policy"
)

// Dir is the corpus directory.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "conformance")
}

// DataFile is the path of acme.yaml.
func DataFile() string { return filepath.Join(Dir(), "acme.yaml") }

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

// Load reads cases.yaml.
func Load() (*Cases, error) {
	raw, err := os.ReadFile(filepath.Join(Dir(), "cases.yaml"))
	if err != nil {
		return nil, err
	}
	var c Cases
	if err := yaml.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("cases.yaml: %w", err)
	}
	return &c, nil
}

// Run converts a case's run document into a policy.Run the way the CLI does: through JSON.
func Run(doc map[string]any) (policy.Run, error) {
	raw, err := json.Marshal(doc)
	if err != nil {
		return policy.Run{}, err
	}
	var r policy.Run
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return r, dec.Decode(&r)
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
