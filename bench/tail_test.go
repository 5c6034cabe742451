//go:build linux

package bench

import (
	"runtime"
	"runtime/metrics"
	"slices"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/teamgate/teamgate/authz"
)

// BenchmarkRegoTail takes the full Rego tail apart (RESULTS.md, "Stop 15: the full Rego tail"):
// the stream of BenchmarkAuthorizeRego and of BenchmarkPeerOPAInput, each decision timed twice,
// by the wall clock and by the deciding thread's CPU clock (the goroutine locked to its thread).
// The difference is time the decision spent off the CPU (other processes, the collector's
// stop-the-world pauses, waiting for a P); CPU time includes the collector's work done on the
// deciding thread (mark assists, write barriers). Run it with GOGC=off (and a GOMEMLIMIT) to
// take the collector out. Metrics, besides ns/op and allocations:
//
//	p50-ns, p99-ns          wall clock per decision
//	cpu-p50-ns, cpu-p99-ns  thread CPU time per decision
//	wait-p99-ns             p99 of wall minus CPU time
//	fast-p50-ns, fast-p99-ns  over the 4096 distinct requests, each one's fastest CPU time in the
//	                        run: the policy's own variance (inputs that evaluate more rules),
//	                        with the collector and the scheduler mostly filtered out
//	gc/kop                  collections per 1000 decisions
//	assist-%                mark-assist CPU as a share of the run's user CPU (runtime estimate)
//	gcstw-max-ns            longest stop-the-world pause of the collector during the run
//	timer-ns                what one time.Now/time.Since pair costs (in every wall figure)
//	csw-%                   decisions during which the thread was switched out (getrusage)
//	gc-%                    decisions that overlapped a collection (begun or ended during it, or
//	                        started in its mark phase: the collector's stop-the-world pauses
//	                        come in pairs, an odd count means marking is under way)
//	flt-%                   decisions during which the thread took a page fault (fresh heap
//	                        memory, first touched)
//	quiet-p50-ns, quiet-p99-ns  wall clock of the decisions with none of the three
//	quiet-cpu-p99-ns        their thread CPU time: a quiet p99 well above it is time the
//	                        virtual CPU itself was taken away (the hypervisor, interrupts)
//	calm-p50-ns, calm-p99-ns  wall clock of the quiet decisions whose thread was not switched
//	                        out between the previous decision and this one either: another
//	                        process run in that gap leaves this one's caches cold
//	precsw-%                decisions whose thread was switched out in that gap
//	gcquiet-p99-ns          wall clock of the decisions that overlapped a collection but were
//	                        neither switched out nor faulted
//	flt/op                  minor page faults per decision
//
// It needs at least a few rounds of the 4096 requests for the fast-* figures: -benchtime 40000x.
func BenchmarkRegoTail(b *testing.B) {
	b.Run("teamgate", func(b *testing.B) {
		_, eng := open(b, Small, authz.WithDecisionCache(0), authz.WithCompiledPath(false))
		ctx := b.Context()
		tail(b, func(r authz.Request) error {
			_, err := eng.Authorize(ctx, r)
			return err
		})
	})
	b.Run("opa-input", func(b *testing.B) {
		st, _ := open(b, Small)
		peer, err := newPeerOPAInput(b.Context(), st)
		if err != nil {
			b.Fatal(err)
		}
		ctx := b.Context()
		tail(b, func(r authz.Request) error {
			_, err := peer.allow(ctx, r.Subject, r.Action, r.Resource[len("org/"):])
			return err
		})
	})
}

func tail(b *testing.B, decide func(authz.Request) error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	reqs := requests(Small, 4096)
	const keep = 1 << 18
	wall := make([]time.Duration, 0, keep)
	cpu := make([]time.Duration, 0, keep)
	wait := make([]time.Duration, 0, keep)
	fastest := make([]time.Duration, len(reqs))
	timer := timerCost()
	samples := []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/cpu/classes/gc/mark/assist:cpu-seconds"},
		{Name: "/cpu/classes/user:cpu-seconds"},
		{Name: "/sched/pauses/total/gc:seconds"},
	}
	runtime.GC()
	metrics.Read(samples)
	before := [3]float64{float64(samples[0].Value.Uint64()), samples[1].Value.Float64(), samples[2].Value.Float64()}
	pausesBefore := slices.Clone(samples[3].Value.Float64Histogram().Counts)
	stw := []metrics.Sample{{Name: "/sched/pauses/total/gc:seconds"}}
	pauses := func() uint64 {
		metrics.Read(stw)
		var n uint64
		for _, c := range stw[0].Value.Float64Histogram().Counts {
			n += c
		}
		return n
	}
	var quiet, quietCPU, gcQuiet, calm []time.Duration
	var switched, overlapped, faulted, preSwitched int
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(rusageThread, &ru0)
	faults0 := ru0.Minflt
	ru1 = ru0
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p0 := pauses()
		prev := ru1.Nvcsw + ru1.Nivcsw
		_ = syscall.Getrusage(rusageThread, &ru0)
		pre := ru0.Nvcsw+ru0.Nivcsw != prev
		if pre {
			preSwitched++
		}
		c0 := threadCPU()
		t0 := time.Now()
		if err := decide(reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		w := time.Since(t0)
		c := threadCPU() - c0
		_ = syscall.Getrusage(rusageThread, &ru1)
		p1 := pauses()
		sw := ru1.Nvcsw+ru1.Nivcsw != ru0.Nvcsw+ru0.Nivcsw
		gc := p0 != p1 || p0%2 == 1
		if sw {
			switched++
		}
		if gc {
			overlapped++
		}
		flt := ru1.Minflt != ru0.Minflt
		if flt {
			faulted++
		}
		if len(wall) < keep {
			wall, cpu, wait = append(wall, w), append(cpu, c), append(wait, max(w-c, 0))
			switch {
			case !sw && !gc && !flt:
				quiet, quietCPU = append(quiet, w), append(quietCPU, c)
				if !pre {
					calm = append(calm, w)
				}
			case !sw && !flt:
				gcQuiet = append(gcQuiet, w)
			}
		}
		if f := &fastest[i%len(reqs)]; *f == 0 || c < *f {
			*f = c
		}
		i++
	}
	b.StopTimer()
	metrics.Read(samples)
	n := float64(b.N)
	b.ReportMetric(float64(ru1.Minflt-faults0)/n, "flt/op")
	b.ReportMetric(100*float64(switched)/n, "csw-%")
	b.ReportMetric(100*float64(overlapped)/n, "gc-%")
	b.ReportMetric(100*float64(faulted)/n, "flt-%")
	b.ReportMetric(100*float64(preSwitched)/n, "precsw-%")
	percentiles(b, "quiet-", quiet)
	percentiles(b, "calm-", calm)
	if len(quietCPU) > 0 {
		slices.Sort(quietCPU)
		b.ReportMetric(float64(quietCPU[len(quietCPU)*99/100].Nanoseconds()), "quiet-cpu-p99-ns")
	}
	if len(gcQuiet) > 0 {
		slices.Sort(gcQuiet)
		b.ReportMetric(float64(gcQuiet[len(gcQuiet)*99/100].Nanoseconds()), "gcquiet-p99-ns")
	}
	b.ReportMetric((float64(samples[0].Value.Uint64())-before[0])/n*1000, "gc/kop")
	if user := samples[2].Value.Float64() - before[2]; user > 0 {
		b.ReportMetric(100*(samples[1].Value.Float64()-before[1])/user, "assist-%")
	}
	h := samples[3].Value.Float64Histogram()
	longest := 0.0
	for k, c := range h.Counts {
		if c > pausesBefore[k] {
			longest = h.Buckets[k+1] // upper bound of the bucket
		}
	}
	b.ReportMetric(longest*1e9, "gcstw-max-ns")
	b.ReportMetric(float64(timer.Nanoseconds()), "timer-ns")
	percentiles(b, "", wall)
	percentiles(b, "cpu-", cpu)
	slices.Sort(wait)
	b.ReportMetric(float64(wait[len(wait)*99/100].Nanoseconds()), "wait-p99-ns")
	if i >= 2*len(reqs) {
		percentiles(b, "fast-", fastest)
	}
}

func percentiles(b *testing.B, prefix string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Nanoseconds()), prefix+"p50-ns")
	b.ReportMetric(float64(d[len(d)*99/100].Nanoseconds()), prefix+"p99-ns")
}

const rusageThread = 1 // RUSAGE_THREAD

// threadCPU is the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID).
func threadCPU() time.Duration {
	var ts syscall.Timespec
	const clockThreadCPUTimeID = 3
	_, _, _ = syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}

// timerCost is the median cost of one time.Now/time.Since pair.
func timerCost() time.Duration {
	d := make([]time.Duration, 101)
	for k := range d {
		t0 := time.Now()
		for range 100 {
			_ = time.Since(time.Now())
		}
		d[k] = time.Since(t0) / 100
	}
	slices.Sort(d)
	return d[len(d)/2]
}
