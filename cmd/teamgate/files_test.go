package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/conformance"
)

// pathFlags lists every flag of the command tree marked as a path (cobra.MarkFlagFilename,
// MarkFlagDirname), as "COMMAND PATH --FLAG", and whether it is a directory flag.
func pathFlags() map[string]bool {
	out := map[string]bool{}
	root := (&env{}).root()
	mark := func(c *cobra.Command, fs *pflag.FlagSet) {
		fs.VisitAll(func(f *pflag.Flag) {
			_, file := f.Annotations[cobra.BashCompFilenameExt]
			_, dir := f.Annotations[cobra.BashCompSubdirsInDir]
			if file || dir {
				out[c.CommandPath()+" --"+f.Name] = dir
			}
		})
	}
	mark(root, root.PersistentFlags())
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		mark(c, c.LocalNonPersistentFlags())
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	for _, c := range root.Commands() {
		walk(c)
	}
	return out
}

// TestFileFlagErrorsNameFlagAndPath: every path flag of every command, given a path that does
// not exist, or one of the wrong kind (a directory for a file, a file for a directory, an empty
// policy directory), fails (exit 1) with an error that names the flag and the path, once each.
// A new path flag without a case here fails the test.
func TestFileFlagErrorsNameFlagAndPath(t *testing.T) {
	t.Parallel()
	data := conformance.DataFile()
	const P = "PATH" // where the path goes
	policy := regoDir(t, map[string]string{"x.rego": "package teamgate.ext\n"})
	type invocation struct {
		args    []string
		creates bool // the command creates a missing path: only the wrong kind is an error
	}
	cases := map[string]invocation{
		"teamgate --data":                    {args: []string{"check", "--data", P, "bob", "runs.get", "acme/vision"}},
		"teamgate --policy":                  {args: []string{"check", "--data", data, "--policy", P, "bob", "runs.get", "acme/vision"}},
		"teamgate --store":                   {args: []string{"check", "--store", P, "bob", "runs.get", "acme/vision"}},
		"teamgate --decision-log":            {args: []string{"check", "--data", data, "--decision-log", P, "bob", "runs.get", "acme/vision"}, creates: true},
		"teamgate check --requests":          {args: []string{"check", "--data", data, "--requests", P}},
		"teamgate admit --run":               {args: []string{"admit", "--data", data, "bob", "acme/vision", "--run", P}},
		"teamgate admit --requests":          {args: []string{"admit", "--data", data, "--requests", P}},
		"teamgate apply --changes":           {args: []string{"apply", "--store", storeDir(t), "--changes", P}},
		"teamgate apply --file":              {args: []string{"apply", "--store", storeDir(t), "--file", P}},
		"teamgate create-project --settings": {args: []string{"create-project", "--store", storeDir(t), "alice", "acme", "newp", "--settings", P}},
		"teamgate bulk --runs":               {args: []string{"bulk", "--data", data, "bob", "acme/engineering", "stop_runs", "--runs", P}},
		"teamgate whatif --changes":          {args: []string{"whatif", "--data", data, "--changes", P}},
		"teamgate diff --policy":             {args: []string{"diff", "--data", data, "--policy", P}},
		"teamgate diff --current-policy":     {args: []string{"diff", "--data", data, "--policy", policy, "--current-policy", P}},
		"teamgate decisions --log":           {args: []string{"decisions", "--log", P}},
		"teamgate cluster serve --dir":       {creates: true}, // runs a server: its --dir is JetStream's, created by it
	}
	flags := pathFlags()
	require.Equal(t, slices.Sorted(func(yield func(string) bool) {
		for k := range cases {
			if !yield(k) {
				return
			}
		}
	}), slices.Sorted(func(yield func(string) bool) {
		for k := range flags {
			if !yield(k) {
				return
			}
		}
	}), "every path flag has a case, every case a marked flag")

	file := writeFile(t, "a-file.txt", "not a directory\n")
	for name, c := range cases {
		if c.args == nil {
			continue
		}
		flag := name[strings.LastIndex(name, " ")+1:]
		paths := []string{filepath.Join(t.TempDir(), "missing")}
		if c.creates {
			paths = nil
		}
		switch {
		case flags[name]:
			paths = append(paths, file) // a file for a directory
		case strings.HasSuffix(flag, "policy"):
			paths = append(paths, t.TempDir()) // a directory holding no module
		default:
			paths = append(paths, t.TempDir()) // a directory for a file
		}
		for _, path := range paths {
			args := slices.Clone(c.args)
			args[slices.Index(args, P)] = path
			_, stderr, code := cli(t, "", args...)
			require.Equal(t, 1, code, "%v: %s", args, stderr)
			require.Contains(t, stderr, "teamgate: "+flag+" "+path+": ", "%v", args)
			require.Equal(t, 1, strings.Count(stderr, path), "%v: the path once: %s", args, stderr)
		}
	}
	// What a missing file says.
	missing := filepath.Join(t.TempDir(), "acme.yaml")
	_, stderr, _ := cli(t, "", "check", "--data", missing, "bob", "runs.get", "acme/vision")
	require.Equal(t, "teamgate: --data "+missing+": no such file or directory\n", stderr)
	_, stderr, _ = cli(t, "", "test", "--policy", missing)
	require.Equal(t, "teamgate: --policy "+missing+": no such file or directory\n", stderr)
	empty := t.TempDir()
	_, stderr, _ = cli(t, "", "lint", "--policy", empty)
	require.Equal(t, "teamgate: --policy "+empty+": holds no .rego module or .json data file\n", stderr)
	require.NoError(t, os.Remove(file))
}
