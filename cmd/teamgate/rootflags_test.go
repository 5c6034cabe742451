package main

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/internal/conformance"
)

// runnable lists the command paths of the tree that run (not the groups such as cluster), cobra's
// own included: help and completion, which Execute adds as these calls do, and the shells'
// completion request __complete, which it adds only when that is the command asked for.
func runnable() []string {
	out := []string{"teamgate " + cobra.ShellCompRequestCmd}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() && c.HasParent() {
			out = append(out, c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	root := (&env{}).root()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	walk(root)
	return slices.Sorted(slices.Values(out))
}

// TestRootFlagsApplyOrAreRefused walks the command tree: every command says which of the root's
// flags (--data, --store, --nats, --stream, --policy, --eval-budget, --decision-log) it reads,
// and every flag it does not read is a usage error (exit 2) naming the flag and the command —
// never ignored (`test --store DIR` answered from somewhere else, `list --decision-log DIR` left
// an empty log behind). TestStoreAnswersLikeTheDataFile checks that the commands reading --store
// answer from it.
func TestRootFlagsApplyOrAreRefused(t *testing.T) {
	t.Parallel()
	require.Equal(t, runnable(), slices.Sorted(maps.Keys(rootFlagsOf)), "every runnable command, and only those, in rootFlagsOf")
	data := conformance.DataFile()
	st := storeDir(t)
	cliData := func(f string) string { return filepath.Join("..", "..", "testdata", "cli", f) }
	// Each command's invocation without the flag under test: valid, so that only that flag is wrong.
	base := map[string][]string{
		"teamgate check":                 {"check", "--data", data, "bob", "runs.get", "acme/vision"},
		"teamgate explain":               {"explain", "--data", data, "bob", "runs.get", "acme/vision"},
		"teamgate settings":              {"settings", "--data", data, "acme/vision"},
		"teamgate list":                  {"list", "--data", data, "bob", "acme"},
		"teamgate admit":                 {"admit", "--data", data, "bob", "acme/vision", "--run", cliData("run.json")},
		"teamgate who-can":               {"who-can", "--data", data, "runs.get", "acme/vision"},
		"teamgate whatif":                {"whatif", "--data", data, "--changes", cliData("whatif.yaml")},
		"teamgate lint":                  {"lint", "--data", data},
		"teamgate diff":                  {"diff", "--data", data, "--policy", cliData("candidate")},
		"teamgate break-glass list":      {"break-glass", "list", "--store", st},
		"teamgate export":                {"export", "--data", data},
		"teamgate apply":                 {"apply", "--store", st, "--changes", cliData("changes.yaml")},
		"teamgate access-diff":           {"access-diff", "--data", data, "--from", "0", "--to", "1"},
		"teamgate test":                  {"test", cliData("policies")},
		"teamgate version":               {"version"},
		"teamgate help":                  {"help", "check"},
		"teamgate completion bash":       {"completion", "bash"},
		"teamgate completion zsh":        {"completion", "zsh"},
		"teamgate completion fish":       {"completion", "fish"},
		"teamgate completion powershell": {"completion", "powershell"},
		"teamgate cluster":               {"cluster"},
	}
	value := map[string]string{
		"data": data, "store": st, "nats": "nats://127.0.0.1:1", "stream": "TEAMGATE",
		"policy": cliData("policies"), "eval-budget": "2s", "decision-log": filepath.Join(t.TempDir(), "log"),
	}
	refused := 0
	for cmd, takes := range rootFlagsOf {
		for _, flag := range allRootFlags {
			if slices.Contains(takes, flag) {
				continue
			}
			args, ok := base[cmd]
			require.True(t, ok, "%s refuses --%s: give it an invocation in base", cmd, flag)
			args = append(slices.Clone(args), "--"+flag, value[flag])
			out, stderr, code := cli(t, "", args...)
			require.Equal(t, 2, code, "%v: %s%s", args, stderr, out)
			require.Contains(t, stderr, "teamgate: --"+flag+" does not apply to "+cmd+" (it takes ", args)
			require.Empty(t, out, args)
			refused++
		}
	}
	require.Equal(t, 72, refused)
	require.NoDirExists(t, value["decision-log"], "a refused --decision-log creates no log")
	// Several at once are named together.
	_, stderr, code := cli(t, "", "version", "--data", data, "--decision-log", value["decision-log"])
	require.Equal(t, 2, code)
	require.True(t, strings.HasPrefix(stderr, "teamgate: --data, --decision-log do not apply to teamgate version"), stderr)
}

// TestCobraCommandsRun: the commands cobra adds work — `teamgate help` and `help COMMAND`
// (listed in --help's own command list), the completion scripts, and the completion requests
// the scripts send, flags of the line being completed included. They once all failed with
// "no entry in rootFlagsOf" (exit 2): the root-flag check knew only teamgate's commands.
func TestCobraCommandsRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"help"}, "Available Commands:"},
		{[]string{"help", "check"}, "teamgate check [SUBJECT ACTION RESOURCE] [flags]"},
		{[]string{"completion", "bash"}, "__start_teamgate"},
		{[]string{"completion", "zsh"}, "#compdef teamgate"},
		{[]string{"completion", "fish"}, "complete -c teamgate"},
		{[]string{"completion", "powershell"}, "Register-ArgumentCompleter"},
		{[]string{cobra.ShellCompRequestCmd, "check", "--da"}, "--data"},
		{[]string{cobra.ShellCompNoDescRequestCmd, "--data", "x.yaml", "who-"}, "who-can"},
		{[]string{cobra.ShellCompRequestCmd, "decisions", "--log", "d", "--out"}, "--outcome"},
	} {
		out, stderr, code := cli(t, "", tc.args...)
		require.Equal(t, 0, code, "%v: %s", tc.args, stderr)
		require.Contains(t, out, tc.want, tc.args)
	}
	// help reads no root flag, like version: one given is refused, not ignored.
	_, stderr, code := cli(t, "", "help", "check", "--store", t.TempDir())
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "--store does not apply to teamgate help")
}
