// Package conformance loads the conformance corpus (testdata/conformance) shared by the Go API
// tests and the CLI tests.
package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"go.yaml.in/yaml/v3"
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
