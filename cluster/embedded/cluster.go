package embedded

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/teamgate/teamgate"
)

// Cluster is a NATS cluster of embedded servers with JetStream, routed to each other on loopback
// ports: for tests and benchmarks of a replicated stream (Replicas: 3) on one machine. Servers can
// be stopped and restarted on the same ports and storage, as if a machine went away and came
// back. It is safe for concurrent use.
type Cluster struct {
	opts   Options
	names  []string
	dirs   []string
	routes []*url.URL // every server's route URL (each server routes to all of them)

	mu      sync.Mutex
	servers []*Server // nil while stopped
	ports   []int     // client ports, kept across restarts
}

// maxClusterSize bounds StartCluster: JetStream clusters have an odd size, and a machine running
// more embedded servers than this is not testing anything useful.
const maxClusterSize = 9

// StartCluster starts n servers (1 to 9) forming one NATS cluster with JetStream, and returns
// once the JetStream meta group has a leader that sees all n servers, so a stream of up to n
// replicas can be created at once. opts.Dir is the parent of the servers' storage (one
// directory per server); opts.Name names the cluster and, with a suffix "-i", its servers;
// opts.Port must be 0 (each server picks free ports). ReadyTimeout bounds the whole start.
func StartCluster(n int, opts Options) (*Cluster, error) {
	if n < 1 || n > maxClusterSize {
		return nil, teamgate.Invalid("embedded NATS cluster size", strconv.Itoa(n), fmt.Sprintf("must be 1 to %d", maxClusterSize))
	}
	if opts.Dir == "" {
		return nil, teamgate.Invalid("embedded NATS store directory", "", "required")
	}
	if opts.Port != 0 {
		return nil, teamgate.Invalid("embedded NATS cluster port", strconv.Itoa(opts.Port), "each server of a cluster picks free ports: leave it 0")
	}
	opts = opts.withDefaults()
	c := &Cluster{opts: opts, servers: make([]*Server, n), ports: make([]int, n)}
	// Every server lists every route (itself included, which NATS ignores), so JetStream expects
	// n peers from the start and a restarted server finds the others. The ports are reserved by
	// listening and released just before the servers take them.
	ls := make([]net.Listener, n)
	defer func() {
		for _, l := range ls {
			if l != nil {
				_ = l.Close()
			}
		}
	}()
	for i := range n {
		l, err := net.Listen("tcp", net.JoinHostPort(opts.Host, "0"))
		if err != nil {
			return nil, fmt.Errorf("embedded NATS cluster: reserve a route port: %w", err)
		}
		ls[i] = l
		c.routes = append(c.routes, &url.URL{Scheme: "nats", Host: l.Addr().String()})
		c.names = append(c.names, fmt.Sprintf("%s-%d", opts.Name, i))
		c.dirs = append(c.dirs, filepath.Join(opts.Dir, c.names[i]))
	}
	for _, l := range ls {
		_ = l.Close()
	}
	ls = nil
	deadline := time.Now().Add(opts.ReadyTimeout)
	for i := range n {
		if err := c.start(i, time.Until(deadline)); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.waitReady(deadline, n); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// start starts server i on its route port, its client port (a free one the first time) and
// its directory.
func (c *Cluster) start(i int, timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.servers[i] != nil {
		return nil
	}
	port := c.ports[i]
	if port == 0 {
		port = server.RANDOM_PORT
	}
	rh, rp, _ := net.SplitHostPort(c.routes[i].Host)
	rport, _ := strconv.Atoi(rp)
	s, err := startServer(&server.Options{
		ServerName: c.names[i], Host: c.opts.Host, Port: port,
		JetStream: true, StoreDir: c.dirs[i],
		Cluster: server.ClusterOpts{Name: c.opts.Name, Host: rh, Port: rport},
		Routes:  c.routes,
		NoLog:   true, NoSigs: true,
	}, timeout)
	if err != nil {
		return fmt.Errorf("embedded NATS cluster, server %s: %w", c.names[i], err)
	}
	c.servers[i], c.ports[i] = s, s.Port()
	return nil
}

// waitReady waits until a meta leader sees want JetStream servers and every running server is
// current with it.
func (c *Cluster) waitReady(deadline time.Time, want int) error {
	for {
		c.mu.Lock()
		var leader *server.Server
		current := true
		for _, s := range c.servers {
			if s == nil {
				continue
			}
			if s.ns.JetStreamIsLeader() {
				leader = s.ns
			}
			current = current && s.ns.JetStreamIsCurrent()
		}
		c.mu.Unlock()
		if leader != nil && current && len(leader.JetStreamClusterPeers()) >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("embedded NATS cluster: JetStream not ready with %d servers after %s", want, c.opts.ReadyTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Len is the number of servers, running or stopped.
func (c *Cluster) Len() int { return len(c.names) }

// Name is server i's name (what JetStream reports as a stream's leader or replica).
func (c *Cluster) Name(i int) string { return c.names[i] }

// Index is the index of the server named name, or -1.
func (c *Cluster) Index(name string) int {
	for i, n := range c.names {
		if n == name {
			return i
		}
	}
	return -1
}

// URL is server i's client URL; a stopped server comes back on the same one.
func (c *Cluster) URL(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return (&url.URL{Scheme: "nats", Host: net.JoinHostPort(c.opts.Host, strconv.Itoa(c.ports[i]))}).String()
}

// URLs are the client URLs of all servers, comma-separated as nats.Connect takes them (nats.go
// also learns the others from the server it reaches).
func (c *Cluster) URLs() string {
	var out string
	for i := range c.names {
		if i > 0 {
			out += ","
		}
		out += c.URL(i)
	}
	return out
}

// Stop shuts server i down and waits until it has stopped (its clients see a disconnect and
// reconnect to the others; the raft groups it leads step down first, as NATS does on shutdown).
// Stopping a stopped server does nothing.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

// Restart starts the stopped server i again, with its name, ports and storage, and waits until
// JetStream sees it among the running servers again. Restarting a running server does nothing.
func (c *Cluster) Restart(i int) error {
	deadline := time.Now().Add(c.opts.ReadyTimeout)
	if err := c.start(i, c.opts.ReadyTimeout); err != nil {
		return err
	}
	c.mu.Lock()
	running := 0
	for _, s := range c.servers {
		if s != nil {
			running++
		}
	}
	c.mu.Unlock()
	return c.waitReady(deadline, running)
}

// Close stops every server.
func (c *Cluster) Close() {
	for i := range c.names {
		c.Stop(i)
	}
}
