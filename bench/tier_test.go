package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/store"
)

// The tier benchmarks measure memory in a child process (this test binary run again), so that
// what building the directory left behind does not count: the child opens the directory (or
// loads the data file) and nothing else. childEnv selects the child's job; the child prints its
// figures as one JSON object.
const (
	childEnv     = "TEAMGATE_BENCH_CHILD"     // "open" or "load"
	childDirEnv  = "TEAMGATE_BENCH_DIR"       // open: the Badger directory
	childTierEnv = "TEAMGATE_BENCH_SCENARIO"  // open: the Scenario, JSON
	childFileEnv = "TEAMGATE_BENCH_DATA_FILE" // load: the data file
	// profileEnv, when set, names a directory where the child writes a CPU profile of the open
	// or load (open.cpu, load.cpu) and a heap profile after it (open.heap, load.heap).
	profileEnv = "TEAMGATE_BENCH_PROFILE"
	// tierDirEnv, when set, names where a tier benchmark builds its directory, kept afterwards;
	// a directory that already exists is reused as it is (it must hold the same tier).
	tierDirEnv = "TEAMGATE_BENCH_TIER_DIR"
	// largeEnv must be set to 1 for BenchmarkLargeTier to run: it takes many minutes and
	// more than 10 GB while it builds the directory.
	largeEnv = "TEAMGATE_LARGE_TIER"
)

func TestMain(m *testing.M) {
	if job := os.Getenv(childEnv); job != "" {
		os.Exit(child(job))
	}
	os.Exit(m.Run())
}

// BenchmarkMediumTier builds Medium (a tenth of the large tier: 1M memberships) on disk once,
// then, in a fresh process, measures opening it and what the open store holds, and the uncached
// latencies on it beside the small tier's measured the same way.
func BenchmarkMediumTier(b *testing.B) { benchTier(b, Medium) }

// BenchmarkLargeTier is BenchmarkMediumTier on SPEC §9's large tier (10M memberships). It runs
// only with TEAMGATE_LARGE_TIER=1.
func BenchmarkLargeTier(b *testing.B) {
	if os.Getenv(largeEnv) != "1" {
		b.Skip("set " + largeEnv + "=1 to build the 10M-membership tier (many minutes, > 10 GB)")
	}
	benchTier(b, Large)
}

// BenchmarkMediumTierCrash measures opening Medium after a crash: a child process opens the
// directory, writes team memberships one by one from two goroutines with a background snapshot
// every 1,000 revisions, and kills itself (SIGKILL) 500 writes after its first background
// snapshot, writes still going; a fresh child then opens the directory (crash-open-s,
// crash-open-cpu-s: the snapshot and the records changed after it). The first child reports the
// snapshot's time (snapshot-s), the longest its copy of the state held the writers (its start or one step)
// (writes-held-ms) and the writes per second while it ran.
func BenchmarkMediumTierCrash(b *testing.B) { benchCrash(b, Medium) }

// BenchmarkLargeTierCrash is BenchmarkMediumTierCrash on the large tier (TEAMGATE_LARGE_TIER=1).
func BenchmarkLargeTierCrash(b *testing.B) {
	if os.Getenv(largeEnv) != "1" {
		b.Skip("set " + largeEnv + "=1 to build the 10M-membership tier (many minutes, > 10 GB)")
	}
	benchCrash(b, Large)
}

func benchCrash(b *testing.B, s Scenario) {
	dir := tierDir(b, s)
	spec, err := json.Marshal(s)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		cmd := exec.CommandContext(b.Context(), os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=crash", childDirEnv+"="+dir, childTierEnv+"="+string(spec))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			b.Fatalf("crash child: %v (want killed); printed %q", err, out)
		}
		m := map[string]float64{}
		if err := json.Unmarshal(out, &m); err != nil {
			b.Fatalf("crash child printed %q: %v", out, err)
		}
		for k, v := range runChild(b, "open", childDirEnv+"="+dir, childTierEnv+"="+string(spec)) {
			if strings.HasPrefix(k, "open") || k == "peak-rss-MiB" || k == "memberships" {
				m["crash-"+k] = v
			}
		}
		report(b, m)
	}
}

// tierDir returns the directory of tier s: tierDirEnv's when it exists, else one built now.
func tierDir(b *testing.B, s Scenario) string {
	dir := os.Getenv(tierDirEnv)
	if _, err := os.Stat(dir); dir == "" || err != nil {
		if dir == "" {
			dir = b.TempDir()
		}
		build(b, dir, s)
	}
	return dir
}

func benchTier(b *testing.B, s Scenario) {
	dir := os.Getenv(tierDirEnv)
	if _, err := os.Stat(dir); dir == "" || err != nil {
		if dir == "" {
			dir = b.TempDir()
		}
		build(b, dir, s)
	}
	spec, err := json.Marshal(s)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		report(b, runChild(b, "open", childDirEnv+"="+dir, childTierEnv+"="+string(spec)))
	}
	// The small tier, measured by the same procedure in this process, for the p99 ratio.
	_, compiled := open(b, Small, authz.WithDecisionCache(0))
	_, full := open(b, Small, authz.WithDecisionCache(0), authz.WithCompiledPath(false))
	m := map[string]float64{}
	for name, eng := range map[string]*authz.Engine{"small-compiled": compiled, "small-rego": full} {
		if err := latencies(b.Context(), m, name, eng, Small); err != nil {
			b.Fatal(err)
		}
	}
	report(b, m)
}

// build writes s to an on-disk store in batches (one Apply of 11M changes would hold them all).
func build(b *testing.B, dir string, s Scenario) {
	ctx := b.Context()
	st, err := store.Open(ctx, store.Options{Dir: dir, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	n := 0
	batch := make([]store.Change, 0, 100_000)
	flush := func() {
		if _, err := st.Apply(ctx, batch...); err != nil {
			b.Fatal(err)
		}
		n += len(batch)
		batch = batch[:0]
	}
	for c := range s.ChangeSeq() {
		if batch = append(batch, c); len(batch) == cap(batch) {
			flush()
		}
	}
	flush()
	b.Logf("build: %d changes in %v", n, time.Since(t0))
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDataFile loads a directory from one data file, YAML and JSON, into an empty store, in
// a fresh process: FileTier (100k org members) and Medium (1M team memberships, a file of tens of
// MB). load-s is store.LoadFile, parse-s ParseFile alone, peak-rss the process's peak resident
// memory.
func BenchmarkDataFile(b *testing.B) {
	for _, tier := range []struct {
		name string
		s    Scenario
	}{{"members=100k", FileTier}, {"memberships=1M", Medium}} {
		b.Run(tier.name, func(b *testing.B) {
			yml, js := dataFiles(b, tier.s)
			for _, f := range []struct {
				name string
				data []byte
			}{{"yaml", yml}, {"json", js}} {
				b.Run(f.name, func(b *testing.B) {
					path := filepath.Join(b.TempDir(), "data."+f.name)
					if err := os.WriteFile(path, f.data, 0o600); err != nil {
						b.Fatal(err)
					}
					for b.Loop() {
						m := runChild(b, "load", childFileEnv+"="+path)
						m["file-MB"] = float64(len(f.data)) / 1e6
						report(b, m)
					}
				})
			}
		})
	}
}

// dataFiles returns s as a YAML data file (Export) and as a JSON one.
func dataFiles(b *testing.B, s Scenario) (yml, js []byte) {
	st, err := store.Open(b.Context(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Apply(b.Context(), s.Changes()...); err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := st.Export(b.Context(), &buf); err != nil {
		b.Fatal(err)
	}
	if err := st.View(func(r store.Reader) error {
		js, err = json.Marshal(r.Snapshot())
		return err
	}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes(), js
}

// runChild runs this test binary as a child doing job and returns the figures it printed.
func runChild(b *testing.B, job string, env ...string) map[string]float64 {
	cmd := exec.CommandContext(b.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), childEnv+"="+job), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("child %s: %v", job, err)
	}
	m := map[string]float64{}
	if err := json.Unmarshal(out, &m); err != nil {
		b.Fatalf("child %s printed %q: %v", job, out, err)
	}
	return m
}

func report(b *testing.B, m map[string]float64) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b.ReportMetric(m[k], k)
	}
}

// child does a tier benchmark's job in this process and prints its figures; it returns the exit
// code.
func child(job string) int {
	m := map[string]float64{}
	var err error
	switch job {
	case "open":
		err = childOpen(m)
	case "load":
		err = childLoad(m)
	case "crash":
		err = childCrash(m)
	default:
		err = fmt.Errorf("unknown job %q", job)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	out, _ := json.Marshal(m)
	fmt.Println(string(out))
	return 0
}

func childOpen(m map[string]float64) error {
	ctx := context.Background()
	var s Scenario
	if err := json.Unmarshal([]byte(os.Getenv(childTierEnv)), &s); err != nil {
		return err
	}
	// Badger's own fixed allocations (memtable, caches) are measured on an empty store and
	// left out of the directory's figure.
	emptyDir, err := os.MkdirTemp("", "teamgate-empty-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(emptyDir)
	base := liveHeap()
	empty, err := store.Open(ctx, store.Options{Dir: emptyDir, NoSync: true})
	if err != nil {
		return err
	}
	fixed := liveHeap() - base
	_ = empty.Close()
	base = liveHeap()
	stop := profile("open")
	t0, c0 := time.Now(), cpuTime()
	st, err := store.Open(ctx, store.Options{Dir: os.Getenv(childDirEnv), NoSync: true})
	if err != nil {
		return err
	}
	defer st.Close()
	m["open-s"] = time.Since(t0).Seconds()
	m["open-cpu-s"] = cpuTime() - c0
	stop()
	proc := procStatus()
	m["peak-rss-MiB"] = proc["VmHWM"] / 1024 // during the open
	m["rss-MiB"] = proc["VmRSS"] / 1024
	heap := liveHeap() - base
	memberships := 0
	if err := st.View(func(r store.Reader) error {
		for _, t := range r.Teams("org") {
			memberships += len(r.TeamMembers("org", t))
		}
		return nil
	}); err != nil {
		return err
	}
	proc = procStatus()
	m["memberships"] = float64(memberships)
	m["rss-after-gc-MiB"] = proc["VmRSS"] / 1024
	m["rss-B/membership"] = proc["VmRSS"] * 1024 / float64(memberships)
	m["heap-B/membership"] = float64(heap) / float64(memberships)
	m["directory-B/membership"] = float64(heap-fixed) / float64(memberships)
	m["badger-fixed-MiB"] = float64(fixed) / (1 << 20)
	for _, mode := range []struct {
		name string
		opts []authz.Option
	}{{"compiled", []authz.Option{authz.WithDecisionCache(0)}}, {"rego", []authz.Option{authz.WithDecisionCache(0), authz.WithCompiledPath(false)}}} {
		eng, err := authz.New(ctx, st, mode.opts...)
		if err != nil {
			return err
		}
		if err := latencies(ctx, m, mode.name, eng, s); err != nil {
			return err
		}
	}
	return nil
}

// childCrash is the first child of benchCrash: it prints its figures and kills itself while
// writes go on, 500 writes after its first background snapshot; it returns only on an error.
func childCrash(m map[string]float64) error {
	ctx := context.Background()
	var s Scenario
	if err := json.Unmarshal([]byte(os.Getenv(childTierEnv)), &s); err != nil {
		return err
	}
	written := make(chan slog.Record, 1)
	st, err := store.Open(ctx, store.Options{Dir: os.Getenv(childDirEnv), NoSync: true, SnapshotRevisions: 1000,
		Logger: slog.New(recordHandler(func(r slog.Record) {
			if r.Message == "teamgate: membership snapshot written" {
				select {
				case written <- r:
				default:
				}
			}
		}))})
	if err != nil {
		return err
	}
	var writes atomic.Int64
	failed := make(chan error, 2)
	t0 := time.Now()
	for w := range 2 {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for {
				_, err := st.Apply(ctx, store.PutTeamMember{Org: "org", Team: fmt.Sprintf("t%d", rng.IntN(s.Teams)),
					User: fmt.Sprintf("u%d", rng.IntN(s.Users)), Role: store.TeamRoles()[rng.IntN(len(store.TeamRoles()))]})
				if err != nil {
					failed <- err
					return
				}
				writes.Add(1)
			}
		}()
	}
	var r slog.Record
	select {
	case r = <-written:
	case err := <-failed:
		return err
	}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "took":
			m["snapshot-s"] = a.Value.Duration().Seconds()
		case "writes_held":
			m["writes-held-ms"] = float64(a.Value.Duration().Microseconds()) / 1e3
		case "revision":
			m["snapshot-revision"] = float64(a.Value.Uint64())
		}
		return true
	})
	for n := writes.Load(); writes.Load() < n+500; {
		time.Sleep(time.Millisecond)
	}
	m["revision"] = float64(st.Revision())
	m["writes-per-s"] = float64(writes.Load()) / time.Since(t0).Seconds()
	out, _ := json.Marshal(m)
	fmt.Println(string(out))
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}

// recordHandler is a slog.Handler passing every record to f.
type recordHandler func(slog.Record)

func (recordHandler) Enabled(context.Context, slog.Level) bool        { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error { h(r); return nil }
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h recordHandler) WithGroup(string) slog.Handler                 { return h }

// latencies warms eng (the decision table's cells, the code) on one set of requests and reports
// the p50 and p99 of uncached decisions on another.
func latencies(ctx context.Context, m map[string]float64, name string, eng *authz.Engine, s Scenario) error {
	warm, reqs := requestsFrom(s, 2000, 1), requestsFrom(s, 10_000, 2)
	for _, r := range warm {
		if _, err := eng.Authorize(ctx, r); err != nil {
			return err
		}
	}
	lat := make([]time.Duration, 0, len(reqs))
	for _, r := range reqs {
		t0 := time.Now()
		if _, err := eng.Authorize(ctx, r); err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	m[name+"-p50-ns"] = float64(lat[len(lat)/2].Nanoseconds())
	m[name+"-p99-ns"] = float64(lat[len(lat)*99/100].Nanoseconds())
	return nil
}

func childLoad(m map[string]float64) error {
	ctx := context.Background()
	path := os.Getenv(childFileEnv)
	st, err := store.Open(ctx, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	stop := profile("load")
	t0, c0 := time.Now(), cpuTime()
	if _, err := st.LoadFile(ctx, path); err != nil {
		return err
	}
	m["load-s"] = time.Since(t0).Seconds()
	m["load-cpu-s"] = cpuTime() - c0
	stop()
	m["peak-rss-MiB"] = procStatus()["VmHWM"] / 1024
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	t0 = time.Now()
	if _, err := store.ParseFile(data); err != nil {
		return err
	}
	m["parse-s"] = time.Since(t0).Seconds()
	return nil
}

// cpuTime is the CPU time this process used so far (user and system), in seconds: on a busy
// machine a steadier figure than the wall clock.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// profile starts a CPU profile named name in profileEnv's directory, if set; the function it
// returns stops it and writes a heap profile.
func profile(name string) func() {
	dir := os.Getenv(profileEnv)
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, name+".cpu"))
	if err != nil {
		panic(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		panic(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
		h, err := os.Create(filepath.Join(dir, name+".heap"))
		if err != nil {
			panic(err)
		}
		defer h.Close()
		runtime.GC()
		_ = pprof.WriteHeapProfile(h)
	}
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// procStatus reads the kB figures of /proc/self/status (VmRSS, VmHWM, RssAnon, ...).
func procStatus() map[string]float64 {
	m := map[string]float64{}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.HasSuffix(v, " kB") {
			continue
		}
		if n, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(v, " kB")), 64); err == nil {
			m[k] = n
		}
	}
	return m
}
