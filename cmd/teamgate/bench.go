package main

import (
	"fmt"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/spf13/cobra"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/store"
)

// benchModes are the decision paths `teamgate bench` measures, in order.
var benchModes = []struct {
	name string
	opts []authz.Option
}{
	{"rego (full evaluation)", []authz.Option{authz.WithDecisionCache(0), authz.WithCompiledPath(false)}},
	{"compiled (decision table)", []authz.Option{authz.WithDecisionCache(0)}},
	{"cached (decision cache)", nil},
}

func (e *env) benchCmd() *cobra.Command {
	var n int
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure Authorize latency on the --data directory (every member × project × sample action) on each decision path",
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
				err = benchOne(cmd, e, mode.name, eng, n)
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

func benchOne(cmd *cobra.Command, e *env, name string, eng *authz.Engine, n int) error {
	reqs, err := benchRequests(eng)
	if err != nil {
		return err
	}
	if len(reqs) == 0 {
		return fmt.Errorf("the data file has no member and project to ask about")
	}
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
	us := func(q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1e3 }
	fmt.Fprintf(e.stdout, "%s: %d decisions over %d distinct requests in %v (%.0f/s)\n", name, n, len(reqs), total.Round(time.Millisecond), float64(n)/total.Seconds())
	fmt.Fprintf(e.stdout, "  latency µs: p50 %.2f  p90 %.2f  p99 %.2f  max %.1f\n", us(50), us(90), us(99), float64(h.Max())/1e3)
	return nil
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
