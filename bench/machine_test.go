//go:build linux

package bench

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/teamgate/teamgate/authz"
)

// BenchmarkMachineTail calibrates the machine's tail against full evaluation's (RESULTS.md,
// "Stop 21: the full path's tail"): jobs timed one call at a time exactly as
// BenchmarkAuthorizeRego times a decision (time.Now before, time.Since after, the first 65,536
// calls kept), so that a p99 ÷ p50 the jobs share is the machine's and not the policy's.
//
// Jobs:
//
//	none        nothing: the timer's own spread
//	spin        a fixed, deterministic CPU-bound loop over a 4 KiB array (in L1) taking about
//	            as long as a full evaluation; no allocation, no system call
//	spin-16us, spin-12us, spin-8us  the same loop, 2/3, 1/2 and 1/3 as long: how the tail
//	            scales with the length of the call
//	walk        a fixed number of steps of a pointer chase through 512 KiB (in L2, not L1: the
//	            order of what an evaluation touches, whose data and code each miss L1 ≈ 3k times
//	            per evaluation under callgrind), also about as long as a full evaluation; no
//	            allocation: a job that depends on warm caches as an evaluation does, where spin
//	            does not
//	walk-12us, walk-8us  the same chase, 1/2 and 1/3 as long
//	walk-32k    the same chase through 32 KiB (in L1), as long as walk: the working set's size
//	            alone
//	alloc       spin, with 145 allocations (8.1 KiB) spread through it: a full evaluation's count
//	            and bytes (bench's BenchmarkAuthorizeRego: 145 · 8.2 KiB)
//	alloc-heap  alloc beside a live heap of pointers about as large as BenchmarkAuthorizeRego's
//	            (ballastBytes), so that the collector runs about as often (its many small
//	            objects take longer to mark than the store: more calls overlap a collection)
//	rego        BenchmarkAuthorizeRego's decisions (the small tier's 4,096 random requests)
//	rego-kind   only the requests of one kind (allowed or not, and the reasons' codes): the
//	            slowest to evaluate among the kinds of at least 1 % of the requests, as a stream
//	            of its own
//	rego-one    the single slowest request, over and over
//
// Modes: plain (as BenchmarkAuthorizeRego, after a runtime.GC, with a read of the collector's
// pause count before and after each call, outside the timing), locked (the goroutine locked to its thread),
// gosched (runtime.Gosched before each call, outside the timing), tail (BenchmarkRegoTail's
// per-call attribution: thread CPU time, switches, faults, collections). GOMAXPROCS is the
// environment's. Metrics besides p50-ns and p99-ns:
//
//	tail-x     p99 ÷ p50
//	p999-ns    the 99.9th percentile
//	gc-%       calls that overlapped a collection (as BenchmarkRegoTail's gc-%)
//	gc-tail-%  of the calls at or above the p99, those that overlapped a collection
//	steal-%    the hypervisor's steal time over the run, as a share of both CPUs' time (/proc/stat)
//	busy-%     the machine's non-idle time over the run, both CPUs (this process and every other)
//	intr/op    interrupts serviced by both CPUs over the run, per call
//	live-MB    the live heap after the run's last collection
func BenchmarkMachineTail(b *testing.B) {
	type job struct {
		name  string
		setup func(b *testing.B) func() error
	}
	jobs := []job{
		{"none", func(*testing.B) func() error { return func() error { return nil } }},
		{"spin", spinJob(spinRounds)},
		{"spin-16us", spinJob(spinRounds * 2 / 3)},
		{"spin-12us", spinJob(spinRounds / 2)},
		{"spin-8us", spinJob(spinRounds / 3)},
		{"walk", walkJob(walkLines, walkSteps)},
		{"walk-12us", walkJob(walkLines, walkSteps/2)},
		{"walk-8us", walkJob(walkLines, walkSteps/3)},
		{"walk-32k", walkJob(512, walkL1Steps)},
		{"alloc", func(*testing.B) func() error { return allocJob }},
		{"alloc-heap", func(b *testing.B) func() error {
			ballast := newBallast(ballastBytes)
			b.Cleanup(func() { runtime.KeepAlive(ballast) })
			return allocJob
		}},
		{"rego", func(b *testing.B) func() error { return regoJob(b, "") }},
		{"rego-kind", func(b *testing.B) func() error { return regoJob(b, "kind") }},
		{"rego-one", func(b *testing.B) func() error { return regoJob(b, "one") }},
	}
	for _, j := range jobs {
		b.Run(j.name, func(b *testing.B) {
			for _, mode := range []string{"plain", "locked", "gosched", "tail"} {
				b.Run(mode, func(b *testing.B) {
					call := j.setup(b)
					if mode == "tail" {
						tail(b, func(authz.Request) error { return call() })
						return
					}
					calibrate(b, mode, call)
				})
			}
		})
	}
}

// calibrate times call as timedFunc times a decision, and reports the tail's attribution.
func calibrate(b *testing.B, mode string, call func() error) {
	if mode == "locked" {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	const keep = 1 << 16 // timedFunc's
	lat := make([]time.Duration, 0, keep)
	inGC := make([]bool, 0, keep)
	pauses := gcPauses()
	runtime.GC()
	stat0 := readCPUStat(b)
	b.ReportAllocs()
	for b.Loop() {
		if mode == "gosched" {
			runtime.Gosched()
		}
		p0 := pauses()
		t0 := time.Now()
		if err := call(); err != nil {
			b.Fatal(err)
		}
		w := time.Since(t0)
		p1 := pauses()
		if len(lat) < cap(lat) {
			lat, inGC = append(lat, w), append(inGC, p0 != p1 || p0%2 == 1)
		}
	}
	b.StopTimer()
	stat1 := readCPUStat(b)
	if total := stat1.total - stat0.total; total > 0 {
		b.ReportMetric(100*float64(stat1.steal-stat0.steal)/float64(total), "steal-%")
		b.ReportMetric(100*float64(total-(stat1.idle-stat0.idle))/float64(total), "busy-%")
	}
	b.ReportMetric(float64(stat1.intr-stat0.intr)/float64(b.N), "intr/op")
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(live)
	b.ReportMetric(float64(live[0].Value.Uint64())/(1<<20), "live-MB")
	if len(lat) == 0 {
		return
	}
	sorted := slices.Clone(lat)
	slices.Sort(sorted)
	p50, p99 := sorted[len(sorted)/2], sorted[len(sorted)*99/100]
	b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(p99.Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(sorted[len(sorted)*999/1000].Nanoseconds()), "p999-ns")
	b.ReportMetric(float64(p99)/float64(p50), "tail-x")
	ladder := ""
	for _, q := range []int{10, 25, 50, 75, 90, 95, 98, 99} {
		ladder += fmt.Sprintf(" p%d %.1f", q, float64(sorted[len(sorted)*q/100].Nanoseconds())/1e3)
	}
	b.Logf("µs:%s", ladder)
	var gc, slow, slowGC int
	for k, w := range lat {
		if inGC[k] {
			gc++
		}
		if w >= p99 {
			slow++
			if inGC[k] {
				slowGC++
			}
		}
	}
	b.ReportMetric(100*float64(gc)/float64(len(lat)), "gc-%")
	b.ReportMetric(100*float64(slowGC)/float64(slow), "gc-tail-%")
}

// gcPauses returns a probe of the collector's stop-the-world pauses so far: they come in pairs
// (a cycle's start and its mark termination), so an odd count means marking is under way.
func gcPauses() func() uint64 {
	s := []metrics.Sample{{Name: "/sched/pauses/total/gc:seconds"}}
	return func() uint64 {
		metrics.Read(s)
		var n uint64
		for _, c := range s[0].Value.Float64Histogram().Counts {
			n += c
		}
		return n
	}
}

type cpuStat struct{ total, idle, steal, intr uint64 }

// readCPUStat reads /proc/stat: the all-CPU line (user nice system idle iowait irq softirq steal
// ..., in clock ticks) and the interrupts serviced since boot (both CPUs).
func readCPUStat(b *testing.B) cpuStat {
	b.Helper()
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	var s cpuStat
	for line := range strings.Lines(string(raw)) {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch {
		case fields[0] == "cpu" && len(fields) >= 9:
			for k, f := range fields[1:9] { // guest time is already in user
				v := parseStat(b, f)
				s.total += v
				switch k {
				case 3, 4: // idle, iowait
					s.idle += v
				case 7:
					s.steal = v
				}
			}
		case fields[0] == "intr":
			s.intr = parseStat(b, fields[1])
		}
	}
	if s.total == 0 {
		b.Fatalf("/proc/stat: no cpu line in %q", raw)
	}
	return s
}

func parseStat(b *testing.B, f string) uint64 {
	v, err := strconv.ParseUint(f, 10, 64)
	if err != nil {
		b.Fatalf("/proc/stat: %v", err)
	}
	return v
}

// spinRounds makes spin take about as long as a full evaluation here (≈ 24 µs).
const spinRounds = 9000

var (
	spinData = func() (a [512]uint64) { // 4 KiB: stays in L1
		for k := range a {
			a[k] = uint64(k)*0x9E3779B97F4A7C15 + 1
		}
		return a
	}()
	spinSink uint64
)

func spinJob(rounds int) func(*testing.B) func() error {
	return func(*testing.B) func() error {
		return func() error { spinSink = spin(1, rounds); return nil }
	}
}

// spin is n rounds, from x, of a multiply and a load whose address depends on the previous
// round: the same instructions every call, one dependent chain (no overlapping), nothing outside
// the array.
func spin(x uint64, n int) uint64 {
	for range n {
		x = x*0x2545F4914F6CDD1D + spinData[(x>>32)&511]
	}
	return x
}

// walk's chain (8,192 lines: 512 KiB) and steps per call.
const (
	walkLines   = 8192
	walkSteps   = 3600  // about spin's time per call here
	walkL1Steps = 10000 // walk-32k's: the same time, its lines in L1
)

type walk struct {
	next []uint32 // next[k*16]: the line after line k; the rest of the line is padding
	at   uint32
}

func walkJob(lines, steps int) func(*testing.B) func() error {
	return func(*testing.B) func() error {
		w := newWalk(lines)
		return func() error { spinSink = w.steps(steps); return nil }
	}
}

// newWalk is a chain through lines lines of 64 bytes, one random cycle through all of them.
func newWalk(lines int) *walk {
	w := &walk{next: make([]uint32, lines*16)}
	order := rand.New(rand.NewPCG(3, 4)).Perm(lines)
	for k := range order {
		w.next[order[k]*16] = uint32(order[(k+1)%lines])
	}
	return w
}

// steps follows the chain n lines on from where the last call stopped, so that calls cover the
// whole chain in turn.
func (w *walk) steps(n int) uint64 {
	at := w.at
	for range n {
		at = w.next[at*16]
	}
	w.at = at
	return uint64(at)
}

// The alloc job's allocations: a full evaluation's count, and about its bytes in two size
// classes (48 and 64 B), each holding a pointer for the collector to follow.
const allocs = 145

type (
	cell48 struct {
		next any
		v    [4]uint64
	}
	cell64 struct {
		next any
		v    [6]uint64
	}
)

var allocSink any

// allocJob is spin's rounds in allocs slices, one allocation after each, linked into a list
// that stays reachable until the next call (an evaluation's garbage dies with it).
func allocJob() error {
	var head any
	x := uint64(1)
	for k := range allocs {
		x = spin(x, spinRounds/allocs)
		if k%2 == 0 {
			head = &cell64{next: head, v: [6]uint64{x}}
		} else {
			head = &cell48{next: head, v: [4]uint64{x}}
		}
	}
	allocSink = head
	return nil
}

// ballastBytes is about the live heap BenchmarkAuthorizeRego keeps (the small tier's store and
// the policy; live-MB of the rego job).
const ballastBytes = 96 << 20

// newBallast is a live heap of about n bytes: 64-byte cells, each with a pointer field, held
// by one slice (no chain: the collector marks them in parallel, as it marks a store's maps).
func newBallast(n int) []*cell64 {
	out := make([]*cell64, n/72)
	for k := range out {
		out[k] = &cell64{v: [6]uint64{uint64(k)}}
	}
	return out
}

// regoJob is BenchmarkAuthorizeRego's engine on the small tier, deciding its 4,096 requests
// (pick ""), only those of the slowest kind ("kind"), or only the slowest one ("one").
func regoJob(b *testing.B, pick string) func() error {
	_, eng := open(b, Small, authz.WithDecisionCache(0), authz.WithCompiledPath(false))
	ctx := b.Context()
	reqs := requests(Small, 4096)
	if pick != "" {
		kind, one := slowest(b, eng, reqs)
		reqs = kind
		if pick == "one" {
			reqs = []authz.Request{one}
		}
	}
	k := 0
	return func() error {
		_, err := eng.Authorize(ctx, reqs[k%len(reqs)])
		k++
		return err
	}
}

// slowest sorts reqs into kinds by their decision (allowed, and the reasons' codes), times each
// request's fastest of 16 decisions, and returns the requests of the kind with the highest
// median of those among the kinds of at least 1 % of reqs, and the single slowest request. Each kind's size and median are logged.
func slowest(b *testing.B, eng *authz.Engine, reqs []authz.Request) ([]authz.Request, authz.Request) {
	ctx := b.Context()
	kinds := map[string][]int{}
	fastest := make([]time.Duration, len(reqs))
	for round := range 16 {
		for k, r := range reqs {
			t0 := time.Now()
			d, err := eng.Authorize(ctx, r)
			w := time.Since(t0)
			if err != nil {
				b.Fatal(err)
			}
			if round == 0 {
				name := fmt.Sprintf("allowed=%v", d.Allowed)
				for _, r := range d.Reasons {
					name += " " + string(r.Code)
				}
				kinds[name] = append(kinds[name], k)
				fastest[k] = w
			}
			fastest[k] = min(fastest[k], w)
		}
	}
	median := func(idx []int) time.Duration {
		d := make([]time.Duration, len(idx))
		for k, i := range idx {
			d[k] = fastest[i]
		}
		slices.Sort(d)
		return d[len(d)/2]
	}
	names := slices.Collect(func(yield func(string) bool) {
		for n := range kinds {
			if !yield(n) {
				return
			}
		}
	})
	slices.SortFunc(names, func(x, y string) int { return cmp.Compare(median(kinds[y]), median(kinds[x])) })
	pick := ""
	for _, n := range names {
		b.Logf("kind %q: %d requests, fastest median %v", n, len(kinds[n]), median(kinds[n]))
		if pick == "" && len(kinds[n]) >= len(reqs)/100 { // a kind of at least 1 % of the stream
			pick = n
		}
	}
	var kind []authz.Request
	for _, i := range kinds[pick] {
		kind = append(kind, reqs[i])
	}
	one := slices.Index(fastest, slices.Max(fastest))
	b.Logf("slowest kind of ≥ 1 %% %q (%d requests); slowest request %+v (fastest %v)", pick, len(kind), reqs[one], fastest[one])
	return kind, reqs[one]
}
