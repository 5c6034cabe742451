package main

import (
	"fmt"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/spf13/cobra"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/store"
)

// The decision paths `teamgate bench` tells apart.
const (
	pathRego     = "rego (full evaluation)"
	pathCompiled = "compiled (decision table)"
	pathCached   = "cached (decision cache)"
)

// benchModes are the engine configurations `teamgate bench` measures, in order, each with the path
// it asks for. Whether that path is really taken depends on the policy (authors' modules may
// rule out the compiled path, a non-deterministic policy is never cached), so each run is
// labelled by the path the engine's counters say answered it.
var benchModes = []struct {
	path string
	opts []authz.Option
}{
	{pathRego, []authz.Option{authz.WithDecisionCache(0), authz.WithCompiledPath(false)}},
	{pathCompiled, []authz.Option{authz.WithDecisionCache(0)}},
	{pathCached, nil},
}

func (e *env) benchCmd() *cobra.Command {
	var n int
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure Authorize latency on the directory (--data, --store or --nats: every member × project × sample action) on each decision path",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n <= 0 {
				return usageError{fmt.Errorf("--n must be positive, got %d", n)}
			}
			for _, mode := range benchModes {
				eng, done, err := e.engine(cmd.Context(), mode.opts...)
				if err != nil {
					return err
				}
				err = benchOne(cmd, e, mode.path, eng, n)
				done()
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	c.Flags().IntVar(&n, "n", 20000, "number of decisions to time on each path")
	return c
}

// benchOne times n decisions after one untimed pass over the distinct requests (which fills the
// decision table and the cache, so the timed decisions measure the steady state of the path).
func benchOne(cmd *cobra.Command, e *env, requested string, eng *authz.Engine, n int) error {
	reqs, err := benchRequests(eng)
	if err != nil {
		return err
	}
	if len(reqs) == 0 {
		return fmt.Errorf("the data file has no member and project to ask about")
	}
	for _, r := range reqs {
		if _, err := eng.Authorize(cmd.Context(), r); err != nil {
			return err
		}
	}
	before := eng.Stats()
	h := hdrhistogram.New(1, int64(10*time.Second/time.Nanosecond), 3)
	start := time.Now()
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, err := eng.Authorize(cmd.Context(), reqs[i%len(reqs)]); err != nil {
			return err
		}
		_ = h.RecordValue(time.Since(t0).Nanoseconds())
	}
	total := time.Since(start)
	after := eng.Stats()
	cached := after.CacheHits + after.CacheDiskHits - before.CacheHits - before.CacheDiskHits
	compiled, evaluated := after.Compiled-before.Compiled, after.Evaluated-before.Evaluated
	label := pathLabel(cached, compiled, evaluated)
	if label != requested {
		label += " [" + requested + " requested, not used by this policy]"
	}
	us := func(q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1e3 }
	fmt.Fprintf(e.stdout, "%s: %d decisions over %d distinct requests in %v (%.0f/s)\n", label, n, len(reqs), total.Round(time.Millisecond), float64(n)/total.Seconds())
	fmt.Fprintf(e.stdout, "  latency µs: p50 %.2f  p90 %.2f  p99 %.2f  max %.1f\n", us(50), us(90), us(99), float64(h.Max())/1e3)
	fmt.Fprintf(e.stdout, "  answered by: %d cached, %d compiled, %d evaluated\n", cached, compiled, evaluated)
	if why := eng.Policy().NoTable(); requested == pathCompiled && why != "" {
		fmt.Fprintf(e.stdout, "  no decision table: %s\n", why) // which read of which module turned it off
	}
	return nil
}

// pathLabel names the path that answered most of a run's decisions.
func pathLabel(cached, compiled, evaluated uint64) string {
	switch {
	case cached > 0 && cached >= compiled && cached >= evaluated:
		return pathCached
	case compiled > 0 && compiled >= evaluated:
		return pathCompiled
	default:
		return pathRego
	}
}

// benchRequests builds every (member, project, action) combination of the loaded directory for a
// few representative actions.
func benchRequests(eng *authz.Engine) ([]authz.Request, error) {
	var reqs []authz.Request
	err := eng.Directory().View(func(r store.Reader) error {
		for _, org := range r.Orgs() {
			for user := range r.Members(org) {
				for _, p := range r.Projects(org) {
					for _, a := range []string{"runs.get", "runs.stop", "runs.approve"} {
						reqs = append(reqs, authz.Request{Subject: user, Action: a, Resource: org + "/" + p})
					}
				}
			}
		}
		return nil
	})
	return reqs, err
}
