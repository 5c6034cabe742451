// Command teamgate is the CLI for policy authors and operators: check and explain decisions,
// read effective settings, admit runs, list a user's projects, decide bulk run operations, run
// Rego tests and measure decision latency, against a data file loaded into an in-memory store,
// a host's on-disk store or a cluster's stream; apply changes, create projects and export the
// directory as a data file.
//
//	teamgate check --data acme.yaml bob runs.stop acme/engineering/vision
//	teamgate check --data acme.yaml --requests reqs.jsonl
//	teamgate explain --data acme.yaml vera runs.get acme/labs
//	teamgate settings --data acme.yaml acme/vision --user beth
//	teamgate list --data acme.yaml bob acme/engineering
//	teamgate admit --data acme.yaml bob acme/vision --run run.json
//	teamgate test ./policies
//	teamgate bench --data acme.yaml
//	teamgate bulk --data acme.yaml bob acme/engineering delete_runs --runs runs.json
//	teamgate lint --data acme.yaml --format pretty --strict
//	teamgate lint --policy ./policies --strict
//	teamgate version
//	teamgate apply --store /var/lib/host/store --changes changes.yaml
//	teamgate create-project --store /var/lib/host/store alice acme/ml vision
//	teamgate export --store /var/lib/host/store --format json
//	teamgate break-glass --store /var/lib/host/store --actor adam --project acme/labs --for 30m --justification INC-42
//	teamgate break-glass list --store /var/lib/host/store --format pretty
//	teamgate break-glass end --store /var/lib/host/store --actor alice --project acme/labs --user adam
//	teamgate check --data acme.yaml --decision-log /tmp/decisions bob runs.stop acme/vision
//	teamgate decisions --log /tmp/decisions --subject bob --outcome deny --since 24h --format pretty
//	teamgate decisions --log /tmp/decisions --recheck --data acme.yaml
//	teamgate cluster serve --port 4222 --dir /tmp/nats
//	teamgate cluster seed --nats nats://127.0.0.1:4222 --stream TEAMGATE --data acme.yaml
//	teamgate check --nats nats://127.0.0.1:4222 --stream TEAMGATE bob runs.stop acme/vision
//
// --nats URL --stream NAME (instead of --data) decides against the directory a cluster shares
// over NATS JetStream (package cluster), as of everything the stream held when the command
// started; cluster seed writes a data file to a stream, refusing one that already holds
// revisions unless --force; cluster serve runs a NATS server with JetStream in the process.
//
// --store DIR (instead of --data) works on a host's on-disk store, which Badger lets one process
// open at a time; apply, create-project and bulk take the Go API's JSON (store.Changes,
// authz.RunRef) and print its results; apply, create-project and break-glass (and its end) write,
// so they need --store or --nats. break-glass elevates --actor on a project for --for (an
// emergency grant that ends by itself, authz.Engine.BreakGlass); break-glass list prints the
// elevations in force and break-glass end ends one early (see breakglass.go for the exit codes). --format pretty|json chooses between text for people and JSON on explain, settings,
// list, export and version.
//
// A command refuses a global flag it does not read (rootflags.go), e.g. --store on test.
// help and completion (`source <(teamgate completion bash)`; zsh, fish, powershell) read none.
//
// --decision-log DIR appends the decisions a command makes to a decision log (package
// decisionlog); decisions --log DIR queries one, and with --recheck lists the logged decisions
// that the directory and policy now decide differently.
//
// A file or directory a flag names that is missing or cannot be read is an error naming the
// flag and the path (files.go).
//
// check and admit print one compact JSON object per input, in input order, and exit 0 when
// every input was answered (denials, violations and per-input errors included); usage, data-file
// and I/O errors go to stderr with exit code 2 (usage) or 1. A --requests line over 1 MiB, and a
// check line whose min_revision the store does not reach within --wait (default 1s), get an
// error on their own line and the run goes on.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// A write to a closed standard output fails (EPIPE) instead of killing the process, which
	// then stops cleanly with exit code 141 (run, exitBrokenPipe).
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
