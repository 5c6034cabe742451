// Command teamgate is the CLI for policy authors and operators: check and explain decisions,
// read effective settings, admit runs, list a user's projects, run Rego tests and measure
// decision latency, all against a data file loaded into an in-memory store.
//
//	teamgate check --data acme.yaml bob runs.stop acme/engineering/vision
//	teamgate check --data acme.yaml --requests reqs.jsonl
//	teamgate explain --data acme.yaml vera runs.get acme/labs
//	teamgate settings --data acme.yaml acme/vision --user beth
//	teamgate list --data acme.yaml bob acme/engineering
//	teamgate admit --data acme.yaml bob acme/vision --run run.json
//	teamgate test ./policies
//	teamgate bench --data acme.yaml
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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
