package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The root's flags that say where a command works and how it decides. A command that reads
// none of some of them refuses them (a usage error, exit 2) rather than ignoring them: an
// operator's `test --store DIR` or `list --decision-log DIR` must not pass silently, answering
// from somewhere else or creating a log that nothing writes.
var (
	directoryFlags = []string{"data", "store", "nats", "stream"}                   // where the directory is
	engineFlags    = append(slices.Clone(directoryFlags), "policy", "eval-budget") // an engine over it
	loggingFlags   = append(slices.Clone(engineFlags), "decision-log")             // and it logs decisions
	allRootFlags   = loggingFlags
)

// rootFlagsOf is, for each runnable command, the root flags it reads. The commands that check
// these flags themselves, with their own message (decisions: only with --recheck; cluster serve
// and seed), take them all here. TestRootFlagsApplyOrAreRefused walks the command tree: every
// runnable command has an entry.
var rootFlagsOf = map[string][]string{
	"teamgate check":            loggingFlags,
	"teamgate explain":          loggingFlags,
	"teamgate bulk":             loggingFlags,
	"teamgate create-project":   loggingFlags,
	"teamgate bench":            loggingFlags,
	"teamgate break-glass":      loggingFlags,
	"teamgate break-glass end":  loggingFlags,
	"teamgate break-glass list": engineFlags, // lists; decides nothing
	"teamgate settings":         engineFlags,
	"teamgate list":             engineFlags, // a listing is not logged (authz.WithDecisionLog)
	"teamgate admit":            engineFlags, // nor an admission
	"teamgate who-can":          engineFlags, // nor an analysis
	"teamgate whatif":           engineFlags,
	"teamgate lint":             engineFlags,
	"teamgate diff":             engineFlags,
	"teamgate export":           directoryFlags,
	"teamgate apply":            directoryFlags,
	"teamgate access-diff":      directoryFlags, // roles from the store's history, no policy
	"teamgate test":             {"policy"},     // OPA's tester over modules: no directory
	"teamgate version":          nil,
	"teamgate decisions":        allRootFlags,
	"teamgate cluster":          nil, // a group: its help, or a mistyped subcommand's usage error
	"teamgate cluster serve":    allRootFlags,
	"teamgate cluster seed":     allRootFlags,
	// cobra's own commands, added when the tree runs: help and the completion scripts read
	// nothing; the shells' completion requests (__complete, alias __completeNoDesc) take the
	// line being completed, its flags included, as arguments.
	"teamgate help":                         nil,
	"teamgate completion bash":              nil,
	"teamgate completion zsh":               nil,
	"teamgate completion fish":              nil,
	"teamgate completion powershell":        nil,
	"teamgate " + cobra.ShellCompRequestCmd: allRootFlags,
}

// checkRootFlags refuses a root flag given to a command that does not read it.
func checkRootFlags(cmd *cobra.Command) error {
	takes, ok := rootFlagsOf[cmd.CommandPath()]
	if !ok {
		return fmt.Errorf("%s: no entry in rootFlagsOf", cmd.CommandPath()) // caught by the tests
	}
	var given []string
	cmd.Root().PersistentFlags().VisitAll(func(f *pflag.Flag) {
		if f.Changed && !slices.Contains(takes, f.Name) {
			given = append(given, "--"+f.Name)
		}
	})
	if len(given) == 0 {
		return nil
	}
	what := "does"
	if len(given) > 1 {
		what = "do"
	}
	takesOf := "none of the directory, policy or decision log flags"
	if len(takes) > 0 {
		takesOf = "--" + strings.Join(takes, ", --")
	}
	return fmt.Errorf("%s %s not apply to %s (it takes %s)", strings.Join(given, ", "), what, cmd.CommandPath(), takesOf)
}
