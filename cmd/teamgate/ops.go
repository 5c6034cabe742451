package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/open-policy-agent/opa/v1/version"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/internal/strict"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/store"
)

// storeFlags point a command at a host's on-disk store instead of a data file.
type storeFlags struct {
	storeDir string // --store: a Badger directory
	writes   bool   // the command writes: --store may create the directory, --data is refused
}

func (e *env) addStoreFlags(root *cobra.Command) {
	root.PersistentFlags().StringVar(&e.storeDir, "store", "", "a host's on-disk store (Badger directory) to work on instead of --data; one process at a time")
	_ = root.MarkPersistentFlagDirname("store")
}

// badgerLocked is the text of Badger's directory-lock error, which it wraps without %w.
const badgerLocked = "Another process is using this Badger database"

// openStore opens --store. A command that only reads refuses a directory that does not exist
// or holds no store (a typo, or the wrong directory, would otherwise get Badger's files written
// into it and answers from an empty store); a write command creates the store in a missing or
// empty directory, and refuses one that holds other files. Badger locks its directory: while a
// host has the store open, the CLI cannot, and says so.
func (e *env) openStore(ctx context.Context) (*store.Store, error) {
	if st, err := os.Stat(e.storeDir); err == nil && !st.IsDir() {
		return nil, flagError("--store", e.storeDir, syscall.ENOTDIR)
	}
	if !e.writes {
		if _, err := os.Stat(e.storeDir); err != nil {
			return nil, &teamgate.NotFoundError{What: "store", Name: e.storeDir,
				Reason: fmt.Sprintf("--store %s: no such directory (only write commands create a store)", e.storeDir)}
		}
	}
	// Badger's MANIFEST is written when a store is created: without it the directory holds none.
	if _, err := os.Stat(filepath.Join(e.storeDir, "MANIFEST")); err != nil {
		entries, _ := os.ReadDir(e.storeDir)
		switch {
		case !e.writes:
			return nil, &teamgate.NotFoundError{What: "store", Name: e.storeDir,
				Reason: fmt.Sprintf("--store %s: holds no store (no Badger MANIFEST; only write commands create a store)", e.storeDir)}
		case len(entries) > 0:
			return nil, teamgate.Invalid("--store", e.storeDir, "holds files but no store: a write command creates a store only in a missing or empty directory")
		}
	}
	st, err := store.Open(ctx, store.Options{Dir: e.storeDir})
	if err != nil && strings.Contains(err.Error(), badgerLocked) {
		return nil, fmt.Errorf("--store %s is locked by another process: a Badger directory can be opened by one process at a time; stop the host that holds it, or ask its cluster with --nats", e.storeDir)
	}
	return st, err
}

// exclusive reports the usage error of --data, --nats and --store given together, "" when at
// most one is given.
func (e *env) exclusive() string {
	var given []string
	for _, f := range []struct{ name, v string }{{"--data", e.data}, {"--nats", e.nats}, {"--store", e.storeDir}} {
		if f.v != "" {
			given = append(given, f.name)
		}
	}
	if len(given) < 2 {
		return ""
	}
	return strings.Join(given, " and ") + " are exclusive: work on a data file, a cluster's stream or an on-disk store"
}

// writable refuses a write command on a --data file: the file is read into memory and a write
// there would be lost when the command ends.
func (e *env) writable(cmd *cobra.Command) error {
	e.writes = true
	if e.data != "" && e.nats == "" && e.storeDir == "" {
		return usageError{fmt.Errorf("%s writes: use --store DIR or --nats URL (a --data file is read into memory and not written back)", cmd.Name())}
	}
	return nil
}

// formats are the output formats of the commands people read.
const (
	formatPretty = "pretty"
	formatJSON   = "json"
)

// formatFlag registers --format with its default; pretty says what pretty prints.
func formatFlag(c *cobra.Command, p *string, def, pretty string) {
	c.Flags().StringVar(p, "format", def, "output format: pretty ("+pretty+") or json")
}

func checkFormat(f string) error {
	if f != formatPretty && f != formatJSON {
		return fmt.Errorf("--format %q: want pretty or json", f)
	}
	return nil
}

// withFormat wraps an Args validator with the check of --format.
func withFormat(f *string, v cobra.PositionalArgs) cobra.PositionalArgs {
	return args(func(cmd *cobra.Command, a []string) error {
		if err := checkFormat(*f); err != nil {
			return err
		}
		return v(cmd, a)
	})
}

// writeIndented writes v as indented JSON without HTML escaping.
func writeIndented(w io.Writer, v any, prefix string) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent(prefix, "  ")
	return enc.Encode(v)
}

// versionInfo is the output of `teamgate version`.
type versionInfo struct {
	Teamgate string `json:"teamgate"` // the module version; "(devel)" in a build from a checkout
	Go       string `json:"go"`
	OPA      string `json:"opa"`
}

func buildVersion() versionInfo {
	v := versionInfo{Teamgate: "(unknown)", Go: runtime.Version(), OPA: version.Version}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v.Teamgate = bi.Main.Version
	}
	return v
}

func (e *env) versionCmd() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the teamgate module version, the Go version and the OPA version",
		Args:  withFormat(&format, cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			v := buildVersion()
			if format == formatJSON {
				return writeJSON(e.stdout, v)
			}
			_, err := fmt.Fprintf(e.stdout, "teamgate %s\ngo       %s\nopa      %s\n", v.Teamgate, v.Go, v.OPA)
			return err
		},
	}
	formatFlag(c, &format, formatPretty, "one line each")
	return c
}

func (e *env) exportCmd() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "export",
		Short: "Print the whole directory (--store, --nats or --data) as a data file: YAML, or JSON with --format json",
		Args:  withFormat(&format, cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, done, err := e.directory(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			var f *store.File
			_ = dir.View(func(r store.Reader) error {
				f = r.Snapshot()
				return nil
			})
			if format == formatJSON {
				return writeIndented(e.stdout, f, "")
			}
			enc := yaml.NewEncoder(e.stdout)
			enc.SetIndent(2)
			if err := enc.Encode(f); err != nil {
				return err
			}
			return enc.Close()
		},
	}
	formatFlag(c, &format, formatPretty, "a YAML data file")
	return c
}

// readChanges reads and parses the change file at path (apply --changes, whatif --changes); a
// parse error names the file.
func (e *env) readChanges(path string) (store.Changes, error) {
	raw, err := e.readFlag("--changes", path, true)
	if err != nil {
		return nil, err
	}
	cs, err := store.ParseChanges(raw)
	if err != nil {
		return nil, fmt.Errorf("--changes %s: %w", path, err)
	}
	return cs, nil
}

// maxInputFile bounds a change or runs file read from stdin (64 MiB).
const maxInputFile = 64 << 20

// applied is the output of `teamgate apply`.
type applied struct {
	Revision uint64 `json:"revision"`
	Changes  int    `json:"changes"`
}

func (e *env) applyCmd() *cobra.Command {
	var changes, file string
	c := &cobra.Command{
		Use:   "apply --changes FILE | --file DATAFILE",
		Short: "Apply a YAML or JSON list of changes (the store's wire format), or a data file, as one atomic batch to --store or --nats",
		Args: args(func(cmd *cobra.Command, a []string) error {
			switch {
			case changes == "" && file == "":
				return errors.New("--changes FILE or --file DATAFILE is required")
			case changes != "" && file != "":
				return errors.New("--changes and --file are exclusive: apply a change file or a data file")
			}
			if err := e.writable(cmd); err != nil {
				return err
			}
			return cobra.NoArgs(cmd, a)
		}),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file != "" {
				return e.applyFile(cmd.Context(), file)
			}
			cs, err := e.readChanges(changes)
			if err != nil {
				return err
			}
			if len(cs) == 0 {
				return usageError{fmt.Errorf("--changes %s: no changes", changes)}
			}
			dir, done, err := e.directory(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			rev, err := dir.Apply(cmd.Context(), cs...)
			if err != nil {
				return fmt.Errorf("--changes %s: %w", changes, err)
			}
			return writeJSON(e.stdout, applied{Revision: rev, Changes: len(cs)})
		},
	}
	c.Flags().StringVar(&changes, "changes", "", `YAML or JSON list of {kind, change} (- = stdin), e.g. [{"kind": "put_member", "change": {"Org": "acme", "User": "bob", "Role": "member"}}]`)
	c.Flags().StringVar(&file, "file", "", "a data file (YAML or JSON, - = stdin; what export prints): the orgs it names become equal to it, as store.LoadFile")
	_ = c.MarkFlagFilename("changes", "yaml", "yml", "json")
	_ = c.MarkFlagFilename("file", "yaml", "yml", "json")
	return c
}

// applyFile writes a data file to the directory as store.Load does (one PutFile batch; a file
// equal to the directory writes nothing), so that what export printed restores a store. It
// prints {"revision","changes"}, changes being the records the file changed (0: none).
func (e *env) applyFile(ctx context.Context, file string) error {
	raw, err := e.readFlag("--file", file, true)
	if err != nil {
		return err
	}
	f, err := store.ParseFile(raw)
	if err != nil {
		return fmt.Errorf("--file %s: %w", file, err)
	}
	dir, done, err := e.directory(ctx)
	if err != nil {
		return err
	}
	defer done()
	w, ok := dir.(fileWriter)
	if !ok {
		return fmt.Errorf("--file %s: this directory takes no data file", file)
	}
	res, n, err := putFile(ctx, w, f, true)
	if err != nil {
		return fmt.Errorf("--file %s: %w", file, err)
	}
	return writeJSON(e.stdout, applied{Revision: res.Revision, Changes: n})
}

func (e *env) createProjectCmd() *cobra.Command {
	var settingsFile string
	var labels []string
	c := &cobra.Command{
		Use:   "create-project SUBJECT OWNER NAME [--settings FILE] [--label KEY=VALUE]...",
		Short: "Create project NAME in OWNER (org or org/team) as SUBJECT, if allowed; prints {decision, project, revision}",
		Args: args(func(cmd *cobra.Command, a []string) error {
			if err := e.writable(cmd); err != nil {
				return err
			}
			return cobra.ExactArgs(3)(cmd, a)
		}),
		RunE: e.withEngine(func(cmd *cobra.Command, a []string, eng *authz.Engine) error {
			np := authz.NewProject{Name: a[2]}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok {
					return usageError{fmt.Errorf("--label %q: want KEY=VALUE", l)}
				}
				if _, dup := np.Labels[k]; dup {
					return usageError{fmt.Errorf("--label %s: given twice", k)}
				}
				if np.Labels == nil {
					np.Labels = map[string]string{}
				}
				np.Labels[k] = v
			}
			if settingsFile != "" {
				raw, err := e.readFlag("--settings", settingsFile, false)
				if err != nil {
					return err
				}
				if err := strict.YAML(raw, &np.Settings); err != nil {
					return fmt.Errorf("--settings %s: %w", settingsFile, err)
				}
			}
			c, err := eng.CreateProject(cmd.Context(), a[0], a[1], np)
			if err != nil {
				return err
			}
			if c.Decision.Reasons == nil {
				c.Decision.Reasons = []authz.Reason{}
			}
			return writeJSON(e.stdout, c)
		}),
	}
	c.Flags().StringVar(&settingsFile, "settings", "", "YAML or JSON file of the project's settings (SPEC §6)")
	_ = c.MarkFlagFilename("settings", "yaml", "yml", "json")
	c.Flags().StringArrayVar(&labels, "label", nil, "a project label KEY=VALUE (input.resource.labels), repeatable")
	return c
}

// runLine is one line of `bulk` output: authz.RunDecision's JSON plus "error".
type runLine struct {
	authz.RunDecision
	Error *string `json:"error"`
}

func (e *env) bulkCmd() *cobra.Command {
	var runsFile, destination string
	c := &cobra.Command{
		Use:   "bulk SUBJECT OWNER OP --runs RUNS.json [--destination PROJECT]",
		Short: "Decide a bulk run operation (approve_runs, stop_runs, transfer_runs, ...) in a team space or org: one JSON line per run",
		Args: args(func(cmd *cobra.Command, a []string) error {
			if runsFile == "" {
				return errors.New("--runs RUNS.json is required")
			}
			if err := cobra.ExactArgs(3)(cmd, a); err != nil {
				return err
			}
			if _, ok := authz.BulkAction(a[2]); !ok {
				return fmt.Errorf("unknown bulk operation %q (approve_runs, archive_runs, restore_runs, delete_runs, stop_runs, skip_runs, invalidate_runs, bookmark_runs, tag_runs, transfer_runs, get_run, list_runs, list_versions, list_runs_artifacts_lineage, list_component_versions, list_model_versions, list_artifact_versions)", a[2])
			}
			return nil
		}),
		RunE: e.withEngine(func(cmd *cobra.Command, a []string, eng *authz.Engine) error {
			raw, err := e.readFlag("--runs", runsFile, true)
			if err != nil {
				return err
			}
			var runs []authz.RunRef
			if err := strict.YAML(raw, &runs); err != nil {
				return fmt.Errorf("--runs %s: %w", runsFile, err)
			}
			decs, err := eng.BulkRuns(cmd.Context(), a[0], a[1], a[2], runs, destination)
			if err != nil {
				return err
			}
			for _, d := range decs {
				line := runLine{RunDecision: d}
				if d.Err != nil {
					msg := d.Err.Error()
					line.Error = &msg
				}
				if line.Decision.Reasons == nil {
					line.Decision.Reasons = []authz.Reason{}
				}
				if err := writeJSON(e.stdout, line); err != nil {
					return err
				}
			}
			return nil
		}),
	}
	c.Flags().StringVar(&runsFile, "runs", "", `JSON or YAML list of {uuid, project, created_by} (- = stdin)`)
	c.Flags().StringVar(&destination, "destination", "", "destination project of transfer_runs")
	_ = c.MarkFlagFilename("runs", "yaml", "yml", "json")
	return c
}

// printSettings prints effective settings for people: one field a line with its source, then
// the conflicts.
func printSettings(w io.Writer, s authz.Settings) {
	fmt.Fprintf(w, "project %s", s.Project)
	if s.User != "" {
		fmt.Fprintf(w, " (user %s)", s.User)
	}
	fmt.Fprintf(w, " at revision %d\n", s.Revision)
	x := s.Effective
	allow := func(name string, a policy.AllowList) {
		v := "any"
		if a.Restricted {
			v = "only [" + strings.Join(a.Values, ", ") + "]"
		}
		row(w, name, v, a.Source)
	}
	list := func(name string, l policy.List) { row(w, name, "["+strings.Join(l.Values, ", ")+"]", l.Source) }
	allow("connections", x.Connections)
	allow("agents", x.Agents)
	allow("queues", x.Queues)
	allow("namespaces", x.Namespaces)
	allow("presets", x.Presets)
	allow("teams", x.Teams)
	allow("projects", x.Projects)
	list("excluded_runtimes", x.ExcludedRuntimes)
	list("excluded_features", x.ExcludedFeatures)
	list("default_presets", x.DefaultPresets)
	row(w, "queue", fmt.Sprint(x.Queue.Value), x.Queue.Source)
	row(w, "namespace", fmt.Sprint(x.Namespace.Value), x.Namespace.Source)
	row(w, "archived_deletion_interval", fmt.Sprint(x.ArchivedDeletionInterval.Value), x.ArchivedDeletionInterval.Source)
	for _, r := range x.Rules {
		row(w, "rule "+r.Name, r.Expression+"  ("+r.Message+")", r.Source)
	}
	for _, c := range x.Conflicts {
		fmt.Fprintf(w, "conflict: %s\n", c.Message)
	}
}

func row(w io.Writer, field, value, source string) {
	if source != "" {
		source = "from " + source
	}
	fmt.Fprintf(w, "  %-27s %-30s %s\n", field, value, source)
}
