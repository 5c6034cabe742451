// Package conformance loads the conformance corpus shared by the Go API tests and the CLI
// tests: the shared corpus (testdata/conformance/cases.yaml, kept identical to the upstream
// copy) and teamgate's own regression cases (testdata/regression/cases.yaml, same format and
// data), as one list (Load); and the policy suites (testdata/regression/policies/<name>/: an
// author's .rego modules and .json data beside a cases.yaml of the same format, run under that
// policy, on acme.yaml or the suite's own data file), each a Suite after the corpus's (Suites).
// testdata/regression/policies/README.md describes a suite's files and the fields only a suite
// may set.
//
// Tests name the corpus only through Dir and DataFile (OpenStore: a store holding the data; a
// suite's runner opens Suite.Data, Suite.OpenStore, so that a suite may bring its own file);
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
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/teamgate/teamgate/internal/strict"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/rego"
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
	return openStore(t, opts, DataFile())
}

// OpenStore is OpenStore on the suite's data file (Data): the directory its cases run against.
func (s Suite) OpenStore(t testing.TB, opts store.Options) *store.Store {
	t.Helper()
	return openStore(t, opts, s.Data)
}

func openStore(t testing.TB, opts store.Options, file string) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, err = st.LoadFile(t.Context(), file)
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
	// Message, with Reason: that reason's message, byte for byte (teamgate's field; a message
	// that names a module's file, which differs between checkouts, is left out).
	Message string `yaml:"message"`
	Note    string `yaml:"note"`
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
	Note     string           `yaml:"note"`
}

// Cases is one file of cases, or the whole corpus.
type Cases struct {
	// Compiled, a policy suite's only (and required there unless LoadError is set): whether the
	// compiled path answers the suite's requests without attributes under its policy. The
	// corpus's policy is the default one, which it does.
	Compiled *bool `yaml:"compiled"`
	// LoadError, a policy suite's only: the policy fails to load (authz.New, `teamgate check
	// --policy`) with an error containing this text, an error matching teamgate.ErrInvalid; the
	// suite then has no cases.
	LoadError string `yaml:"load_error"`
	// Budget, a policy suite's only: the evaluation budget of the suite's engines
	// (authz.WithEvalBudget, `teamgate --eval-budget`), a positive Go duration ("20ms"); absent:
	// the engine's default. A suite about the budget sets a small one, so that its runaway
	// module denies in milliseconds instead of the default second per evaluation and path.
	Budget *time.Duration `yaml:"budget"`
	// Data, a policy suite's only: the suite's data file, a path relative to its directory and
	// ending in .yaml (a .json file there is the policy's data), loaded instead of acme.yaml by
	// both runners (Suite.OpenStore, `teamgate --data`). In a Suite, the resolved path, the
	// corpus's acme.yaml (DataFile) when the suite gives none.
	Data string `yaml:"data"`
	// DataError, a policy suite's only, with Data: the data file fails to load (store.LoadFile,
	// `teamgate --data`) with an error matching teamgate.ErrInvalid and containing this text (the
	// YAML path and line of the fault); the suite then has no cases, and its directory no policy.
	DataError string `yaml:"data_error"`
	// DefaultPolicy, a policy suite's only, with Data: the suite runs under the default policy
	// (Suite.Policy is ""), on its own data; its directory holds no module and no .json data.
	DefaultPolicy bool        `yaml:"default_policy"`
	Authorize     []Authorize `yaml:"authorize"`
	Admit         []Admit     `yaml:"admit"`
	List          []List      `yaml:"list"`
	Settings      []Settings  `yaml:"settings"`
}

// Load reads the shared corpus and the regression cases, in that order.
func Load() (*Cases, error) {
	var all Cases
	for _, file := range []string{filepath.Join(Dir(), "cases.yaml"), filepath.Join(RegressionDir(), "cases.yaml")} {
		c, err := decode(file)
		if err != nil {
			return nil, err
		}
		if c.Compiled != nil || c.LoadError != "" || c.Budget != nil || c.Data != "" || c.DataError != "" || c.DefaultPolicy {
			return nil, fmt.Errorf("%s: compiled, load_error, budget, data, data_error and default_policy belong to a policy suite's cases.yaml", file)
		}
		all.Authorize = append(all.Authorize, c.Authorize...)
		all.Admit = append(all.Admit, c.Admit...)
		all.List = append(all.List, c.List...)
		all.Settings = append(all.Settings, c.Settings...)
	}
	return &all, nil
}

// decode reads one file of cases (the corpus's, the regression cases', a suite's).
func decode(file string) (*Cases, error) {
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
	for i, a := range c.Authorize {
		if a.Message != "" && a.Reason == "" {
			return nil, fmt.Errorf("%s: authorize case %d: a message needs its reason", file, i)
		}
	}
	return &c, nil
}

// PoliciesDir is the directory of the policy suites, one subdirectory each.
func PoliciesDir() string { return filepath.Join(RegressionDir(), "policies") }

// Suite is a set of cases and the policy they run under: the corpus (Load) under the default
// policy, or a policy suite under its directory's modules and data.
type Suite struct {
	Name string // "corpus", or "policies/<directory>"
	// Policy is the suite's directory, the policy to load with authz.WithPolicyDir or
	// `teamgate check --policy` (rego.LoadDir: its .rego and .json files; cases.yaml is neither);
	// "" for the corpus and a suite with default_policy.
	Policy string
	// CompiledPath: the compiled path answers the suite's requests without attributes (the
	// corpus's; a suite's compiled).
	CompiledPath bool
	Cases
}

// Suites returns the corpus (Load) and then every policy suite, in directory order. A suite's
// cases.yaml must set compiled, or load_error or data_error and then hold no case; each of its
// cases carries a note saying what it guards. data names the suite's data file (Suite.Data is
// then its path; default_policy and data_error need one).
func Suites() ([]Suite, error) {
	corpus, err := Load()
	if err != nil {
		return nil, err
	}
	corpus.Data = DataFile()
	suites := []Suite{{Name: "corpus", CompiledPath: true, Cases: *corpus}}
	entries, err := os.ReadDir(PoliciesDir())
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(PoliciesDir(), e.Name())
		file := filepath.Join(dir, "cases.yaml")
		c, err := decode(file)
		if err != nil {
			return nil, err
		}
		s := Suite{Name: "policies/" + e.Name(), Policy: dir, Cases: *c}
		if err := s.check(); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if err := s.resolve(dir); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if c.Compiled != nil {
			s.CompiledPath = *c.Compiled
		}
		suites = append(suites, s)
	}
	return suites, nil
}

// resolve points the suite at its files in dir: Data at its data file (acme.yaml when it names
// none), Policy at nothing (the default policy) under default_policy or data_error, whose
// directory then holds no policy file.
func (s *Suite) resolve(dir string) error {
	if s.Data == "" {
		s.Data = DataFile()
	} else {
		s.Data = filepath.Join(dir, s.Data)
		if _, err := os.Stat(s.Data); err != nil {
			return fmt.Errorf("data: %w", err)
		}
	}
	if s.DefaultPolicy || s.DataError != "" {
		if files, err := rego.Files(dir); err == nil {
			return fmt.Errorf("default_policy or data_error, but the directory holds policy files: %v", files)
		}
		s.Policy = ""
	}
	return nil
}

// check enforces a suite's own rules (see Suites).
func (s *Suite) check() error {
	n := len(s.Authorize) + len(s.Admit) + len(s.List) + len(s.Settings)
	switch {
	case (s.DataError != "" || s.DefaultPolicy) && s.Data == "":
		return fmt.Errorf("data_error and default_policy need the suite's own data file (data)")
	case s.Data != "" && (filepath.Ext(s.Data) != ".yaml" || filepath.IsAbs(s.Data)):
		return fmt.Errorf("data %s: a .yaml path relative to the suite's directory (a .json file there is policy data)", s.Data)
	case s.DataError != "" && (n > 0 || s.Compiled != nil || s.Budget != nil || s.LoadError != "" || s.DefaultPolicy):
		return fmt.Errorf("a suite with data_error has neither cases, compiled, budget, load_error nor default_policy")
	case s.DataError != "":
		return nil
	case s.LoadError != "" && s.DefaultPolicy:
		return fmt.Errorf("the default policy loads: load_error needs the suite's own modules")
	case s.LoadError != "" && (n > 0 || s.Compiled != nil || s.Budget != nil):
		return fmt.Errorf("a suite with load_error has neither cases, compiled nor budget")
	case s.Budget != nil && *s.Budget <= 0:
		return fmt.Errorf("budget %s: must be positive (leave it out for the engine's default)", *s.Budget)
	case s.LoadError != "":
		return nil
	case s.Compiled == nil:
		return fmt.Errorf("compiled is missing: say whether the compiled path answers this policy")
	case n == 0:
		return fmt.Errorf("no case")
	}
	var notes []string
	for _, a := range s.Authorize {
		notes = append(notes, a.Note)
	}
	for _, a := range s.Admit {
		notes = append(notes, a.Note)
	}
	for _, l := range s.List {
		notes = append(notes, l.Note)
	}
	for _, x := range s.Settings {
		notes = append(notes, x.Note)
	}
	for i, n := range notes {
		if n == "" {
			return fmt.Errorf("case %d has no note saying what it guards", i)
		}
	}
	return nil
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
