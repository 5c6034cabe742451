// Package embedded runs NATS servers with JetStream inside the process: a single server (Start)
// for tests, examples and trying teamgate's cluster mode on one machine, and a cluster of servers
// routed on loopback ports (StartCluster) for tests and benchmarks of a replicated stream. Production points the cluster
// package at an existing NATS cluster instead; this package is the only one that links the NATS
// server.
package embedded

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/teamgate/teamgate"
)

// Options configure Start.
type Options struct {
	// Dir is where JetStream keeps its streams (file storage). Required.
	Dir string
	// Host is the address to listen on. Default "127.0.0.1" (loopback only).
	Host string
	// Port is the client port. Default 0: a free port the system picks (see Server.URL).
	Port int
	// Name is the server's name. Default "teamgate-embedded".
	Name string
	// ReadyTimeout bounds the wait for the server to accept connections. Default 10s.
	ReadyTimeout time.Duration
}

// Server is a running embedded NATS server. It is safe for concurrent use.
type Server struct {
	ns *server.Server
}

// Start starts the server and returns once it accepts connections.
func Start(opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, teamgate.Invalid("embedded NATS store directory", "", "required")
	}
	opts = opts.withDefaults()
	port := opts.Port
	if port == 0 {
		port = server.RANDOM_PORT
	} else if err := portFree(opts.Host, port); err != nil {
		return nil, err
	}
	return startServer(&server.Options{
		ServerName: opts.Name, Host: opts.Host, Port: port,
		JetStream: true, StoreDir: opts.Dir,
		NoLog: true, NoSigs: true, // the host owns logging and signals
	}, opts.ReadyTimeout)
}

func (o Options) withDefaults() Options {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Name == "" {
		o.Name = "teamgate-embedded"
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 10 * time.Second
	}
	return o
}

// portFree fails with ErrConflict when host:port cannot be listened on (another process holds
// it). The server would otherwise fail to listen without saying so (it logs nothing here) and
// Start would only report, after ReadyTimeout, that it never became ready.
func portFree(host string, port int) error {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return &teamgate.ConflictError{What: "embedded NATS address", Name: addr, Reason: fmt.Sprintf("cannot listen on it (another process may hold it): %v", err)}
	}
	return l.Close()
}

// startServer starts a server and waits up to timeout for it to accept connections.
func startServer(o *server.Options, timeout time.Duration) (*Server, error) {
	ns, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(timeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("embedded NATS: not ready for connections after %s", timeout)
	}
	return &Server{ns: ns}, nil
}

// URL is the client URL to connect to (nats://host:port).
func (s *Server) URL() string { return s.ns.ClientURL() }

// Port is the client port the server listens on (the one the system picked when Options.Port
// was 0): a server restarted on it with the same Dir is the same server to its clients.
func (s *Server) Port() int {
	if a, ok := s.ns.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// Close shuts the server down and waits until it has stopped. Clients see a disconnect.
func (s *Server) Close() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}
