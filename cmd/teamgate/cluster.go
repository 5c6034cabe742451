package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/cluster"
	"github.com/teamgate/teamgate/cluster/embedded"
	"github.com/teamgate/teamgate/store"
)

// clusterFlags are the global flags that point a command at a cluster's stream instead of a
// data file.
type clusterFlags struct {
	nats     string // NATS server URL(s), comma-separated
	stream   string // the directory's stream; "" = cluster.DefaultStream
	replicas int    // the stream's replicas when seed creates it
}

// syncTimeout bounds connecting to NATS and catching up with the stream before a command
// answers: a CLI run must end, and a stream that takes longer to replay than this is better
// read through a long-lived node.
const syncTimeout = 30 * time.Second

func (e *env) addClusterFlags(root *cobra.Command) {
	root.PersistentFlags().StringVar(&e.nats, "nats", "", "NATS server URL: decide against the directory in --stream (instead of --data)")
	root.PersistentFlags().StringVar(&e.stream, "stream", "", "JetStream stream of the directory, with --nats (default TEAMGATE)")
}

// directory opens what the decision commands decide against: an in-memory store holding the
// --data file, the on-disk store of --store (ops.go), or, with --nats, a cluster node over an in-memory store that has applied the
// whole stream (everything written before the command started).
func (e *env) directory(ctx context.Context) (authz.Directory, func(), error) {
	switch {
	case e.exclusive() != "":
		return nil, nil, usageError{errors.New(e.exclusive())}
	case e.storeDir != "" && e.stream != "":
		return nil, nil, usageError{errors.New("--stream needs --nats URL")}
	case e.storeDir != "":
		st, err := e.openStore(ctx)
		if err != nil {
			return nil, nil, err
		}
		return st, func() { _ = st.Close() }, nil
	case e.nats != "":
		return e.node(ctx, false)
	case e.stream != "":
		return nil, nil, usageError{errors.New("--stream needs --nats URL")}
	case e.data == "":
		return nil, nil, usageError{errors.New("--data FILE, --store DIR or --nats URL is required")}
	}
	raw, err := e.readFlag("--data", e.data, false)
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Open(ctx, store.Options{})
	if err != nil {
		return nil, nil, err
	}
	if _, err := st.Load(ctx, bytes.NewReader(raw)); err != nil {
		_ = st.Close()
		return nil, nil, fmt.Errorf("--data %s: %w", e.data, err)
	}
	return st, func() { _ = st.Close() }, nil
}

// node connects to --nats and returns a node of --stream over an in-memory store, synced with
// the stream. Only a seed may create the stream: a decision command refuses a stream that does
// not exist (a typo would otherwise decide against an empty directory).
func (e *env) node(ctx context.Context, create bool) (*cluster.Node, func(), error) {
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	nc, err := nats.Connect(e.nats, nats.Name("teamgate cli"), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, nil, fmt.Errorf("--nats %s: %w", e.nats, err)
	}
	stream := e.stream
	if stream == "" {
		stream = cluster.DefaultStream
	}
	if !create {
		js, err := jetstream.New(nc)
		if err == nil {
			_, err = js.Stream(ctx, stream)
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			nc.Close()
			return nil, nil, &teamgate.NotFoundError{What: "stream", Name: stream,
				Reason: fmt.Sprintf("stream %s not found on %s: seed it first (teamgate cluster seed)", stream, e.nats)}
		}
		if err != nil {
			nc.Close()
			return nil, nil, fmt.Errorf("--nats %s: stream %s: %w", e.nats, stream, err)
		}
	}
	st, err := store.Open(ctx, store.Options{})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	node, err := cluster.New(ctx, nc, st, cluster.Options{Stream: stream, Replicas: e.replicas})
	if err != nil {
		_ = st.Close()
		nc.Close()
		return nil, nil, err
	}
	done := func() {
		_ = node.Close()
		_ = st.Close()
		nc.Close()
	}
	if _, err := node.Sync(ctx); err != nil {
		done()
		return nil, nil, fmt.Errorf("--nats %s: catch up with stream %s: %w", e.nats, stream, err)
	}
	return node, done, nil
}

func (e *env) clusterCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "cluster",
		Short: "Seed a directory's NATS JetStream stream, or run a NATS server to try cluster mode",
	}
	c.Args, c.RunE = group(c)
	c.AddCommand(e.seedCmd(), e.serveCmd())
	return c
}

// group is the Args and RunE of a command that only groups subcommands: alone it prints its
// help; an argument, which names no subcommand, is a usage error suggesting the nearest, as the
// root's is (cobra prints a group's help and succeeds, so a mistyped `cluster seeed` did nothing
// and exited 0). Arguments are checked before the root's flags.
func group(c *cobra.Command) (cobra.PositionalArgs, func(*cobra.Command, []string) error) {
	c.SuggestionsMinimumDistance = 2 // the root's default
	return func(_ *cobra.Command, a []string) error {
			if len(a) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q for %q", a[0], c.CommandPath())
			if s := c.SuggestionsFor(a[0]); len(s) > 0 {
				msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t") + "\n"
			}
			return usageError{errors.New(msg)}
		}, func(*cobra.Command, []string) error {
			return c.Help()
		}
}

// seedResult is the output of `cluster seed`.
type seedResult struct {
	Stream   string `json:"stream"`
	Revision uint64 `json:"revision"`
	Changed  bool   `json:"changed"`
}

func (e *env) seedCmd() *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "seed --nats URL [--stream NAME] --data FILE",
		Short: "Write a data file to a directory's stream as one batch (creating the stream); refuses a non-empty stream without --force",
		Args: args(func(cmd *cobra.Command, a []string) error {
			switch {
			case e.nats == "":
				return errors.New("--nats URL is required")
			case e.storeDir != "":
				return errors.New("seed writes a --data file: export the store first (teamgate export --store DIR)")
			case e.data == "":
				return errors.New("--data FILE is required")
			case e.replicas < 1 || e.replicas > 5:
				return fmt.Errorf("--replicas %d: must be 1 to 5", e.replicas)
			}
			return cobra.NoArgs(cmd, a)
		}),
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, err := e.readFlag("--data", e.data, false)
			if err != nil {
				return err
			}
			f, err := store.ParseFile(raw)
			if err != nil {
				return fmt.Errorf("%s: %w", e.data, err)
			}
			node, done, err := e.node(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer done()
			res, err := seed(cmd.Context(), node, f, force)
			if err != nil {
				return fmt.Errorf("%s: %w", e.data, err)
			}
			res.Stream = e.stream
			if res.Stream == "" {
				res.Stream = cluster.DefaultStream
			}
			return writeJSON(e.stdout, res)
		},
	}
	c.Flags().BoolVar(&force, "force", false, "write to a stream that already holds revisions: the orgs the file names become equal to it, others are kept")
	c.Flags().IntVar(&e.replicas, "replicas", 1, "replicas of the stream when seed creates it (3 on a 3-server NATS cluster)")
	return c
}

// seed writes f through node as one PutFile batch, like store.Load: the orgs the file names
// become equal to it, and a file equal to the directory writes nothing. A directory that
// already holds revisions is refused unless force: seeding twice, or over a live directory,
// is rarely what an operator means. The check and the write are two steps, so two seeds run
// at once may both write; the second then only makes the orgs equal to its file again.
func seed(ctx context.Context, node fileWriter, f *store.File, force bool) (seedResult, error) {
	res, _, err := putFile(ctx, node, f, force)
	return res, err
}

// fileWriter is a directory a data file is written to: a store or a cluster node.
type fileWriter interface {
	View(fn func(r store.Reader) error) error
	Apply(ctx context.Context, changes ...store.Change) (uint64, error)
}

// putFile is seed, also returning how many record changes the file made (0: it equals the
// directory, and nothing was written). apply --file uses it with force.
func putFile(ctx context.Context, node fileWriter, f *store.File, force bool) (seedResult, int, error) {
	var rev uint64
	var cs []store.Change
	err := node.View(func(r store.Reader) error {
		var err error
		rev = r.Revision()
		cs, err = f.Changes(r)
		return err
	})
	switch {
	case err != nil:
		return seedResult{}, 0, err
	case rev > 0 && !force:
		return seedResult{}, 0, &teamgate.ConflictError{What: "stream", Name: "revision " + strconv.FormatUint(rev, 10),
			Reason: "the stream already holds a directory; pass --force to make the orgs of the file equal to it on top"}
	case len(cs) == 0:
		return seedResult{Revision: rev}, 0, nil
	}
	rev, err = node.Apply(ctx, store.PutFile{File: *f})
	return seedResult{Revision: rev, Changed: true}, len(cs), err
}

func (e *env) serveCmd() *cobra.Command {
	var dir, host string
	var port int
	c := &cobra.Command{
		Use:   "serve --dir DIR [--port 4222]",
		Short: "Run a single-node NATS server with JetStream in this process (for trying cluster mode); prints its URL, stops on Ctrl-C",
		Args: args(func(cmd *cobra.Command, a []string) error {
			switch {
			case dir == "":
				return errors.New("--dir DIR (where JetStream keeps the streams) is required")
			case port < 0 || port > 65535:
				return fmt.Errorf("--port %d: must be 0 (any free port) to 65535", port)
			case e.data != "" || e.nats != "" || e.stream != "" || e.storeDir != "":
				return errors.New("serve runs a server: --data, --store, --nats and --stream do not apply")
			}
			return cobra.NoArgs(cmd, a)
		}),
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := embedded.Start(embedded.Options{Dir: dir, Host: host, Port: port})
			if err != nil {
				return err
			}
			defer srv.Close()
			// The URL alone on stdout, for scripts; the rest is for people.
			fmt.Fprintln(e.stdout, srv.URL())
			fmt.Fprintf(e.stderr, "teamgate: NATS with JetStream listening at %s (streams in %s); Ctrl-C stops it\n", srv.URL(), dir)
			<-cmd.Context().Done()
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "directory where JetStream keeps its streams (kept across restarts)")
	_ = c.MarkFlagDirname("dir")
	c.Flags().StringVar(&host, "host", "127.0.0.1", "address to listen on")
	c.Flags().IntVar(&port, "port", 4222, "client port (0: any free port)")
	return c
}
