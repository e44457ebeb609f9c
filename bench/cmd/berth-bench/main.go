// Command berth-bench compares berth with CNCF distribution 2.8 on the same
// logical dataset: push throughput, garbage collection (time to reclaim,
// no-op collection, fixed garbage on a growing registry, collector peak
// RSS), availability and manifest PUT latency during collection, and pull
// throughput. berth runs as one variant per collector mode (-berth-gc:
// `berth gc` as a process beside serve, or serve's own workers) and per
// backend (-berth-db: SQLite, PostgreSQL, PostgreSQL + S3), each over its
// own fresh copy of the dataset. See bench/RESULTS.md.
//
//	go run ./bench/cmd/berth-bench -scales 1000,10000 -out bench
//	go run ./bench/cmd/berth-bench -smoke            # CI: tiny, < 1 min
//	go run ./bench/cmd/berth-bench limits            # physical limits of this machine
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type options struct {
	scales     []int
	tagsPer    int
	seed       uint64
	clients    int
	fixed      int
	pullMax    int
	probeIdle  int
	bigMiB     int
	registries []string
	berthBin   string
	berthModes []string // -berth-gc: process, serve
	berthDBs   []string // -berth-db: sqlite, postgres, postgres-s3
	gcCmdKind  string   // -berth-gc-cmd: cli, inproc, auto
	pgDSN      string
	versitygw  string
	probeGC    bool
	probeRate  float64
	limits     bool
	limitsN    int
	workers    int
	interval   string
	out        string
	work       string
	keep       bool
	smoke      bool
	cpuprof    string
	onlineMax  int
}

func main() {
	if runSubcommand() {
		return
	}
	log.SetFlags(log.Ltime)
	log.SetPrefix("berth-bench: ")
	var o options
	var scales, regs, modes, dbs string
	flag.StringVar(&scales, "scales", "1000,10000", "registry sizes, in manifests (repos × tags), comma-separated")
	flag.IntVar(&o.tagsPer, "tags", 50, "tags per repository (repos = scale / tags)")
	flag.Uint64Var(&o.seed, "seed", 1, "dataset seed")
	flag.IntVar(&o.clients, "clients", 8, "concurrent clients for pushes, pulls and deletes")
	flag.IntVar(&o.fixed, "fixed-garbage", 100, "manifests deleted in the fixed-garbage step (same count at every scale)")
	flag.IntVar(&o.pullMax, "pull", 1000, "live images pulled and verified after the collection (pull throughput)")
	flag.IntVar(&o.probeIdle, "probe-idle", 300, "probe pushes measured on the idle registry (manifest PUT baseline)")
	flag.IntVar(&o.bigMiB, "big", 256, "size of the big blob in MiB (0 skips the big-blob test)")
	flag.StringVar(&regs, "registries", "distribution,berth", "registries to run, in order")
	flag.StringVar(&o.berthBin, "berth", "", "berth binary (default: go build ./cmd/berth into the work dir)")
	flag.StringVar(&modes, "berth-gc", modeProcess, "berth collector modes, comma-separated: process (berth gc beside serve), serve (serve's own workers, after a restart); cli, inproc or auto mean process with that -berth-gc-cmd")
	flag.StringVar(&dbs, "berth-db", dbSQLite, "berth backends, comma-separated: sqlite, postgres (a fresh database per run, dropped after), postgres-s3 (and blobs on a versitygw of its own)")
	flag.StringVar(&o.gcCmdKind, "berth-gc-cmd", "auto", "how process mode runs berth's collector: cli (berth gc --json), inproc (berth-bench gc-inproc, same packages), auto (cli if berth has it)")
	flag.StringVar(&o.pgDSN, "pg-dsn", "", "PostgreSQL admin DSN in which each run creates its database (default $BERTH_TEST_POSTGRES_DSN, else postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)")
	flag.StringVar(&o.versitygw, "versitygw", "", "versitygw binary for postgres-s3 (default $BERTH_VERSITYGW, else scripts/lib.sh's pinned build)")
	flag.IntVar(&serveWorkers, "serve-workers", 2, "BERTH_GC_WORKERS of berth serve during a serve-mode collection")
	flag.BoolVar(&o.probeGC, "probe-reclaim", true, "probe manifest PUTs during the main reclaim (PUT latency and failures while collecting)")
	flag.Float64Var(&o.probeRate, "probe-rate", 0, "the probe's manifest PUTs per second, sent at random times whatever the answers (open loop); 0: one client PUTting back to back (closed loop)")
	flag.BoolVar(&o.limits, "limits", true, "also measure the physical limits (berth-bench limits) of the backends used, for the throughput table")
	flag.IntVar(&o.limitsN, "limits-n", 20000, "rows, files and S3 keys (at most 5000) deleted by each limit measurement")
	flag.IntVar(&o.workers, "berth-workers", 0, "BERTH_GC_WORKERS of berth serve outside serve-mode collections (>0 makes pushes fail with BERTH_GC_GRACE=0s: see RESULTS.md)")
	flag.StringVar(&o.interval, "berth-interval", "10s", "BERTH_GC_INTERVAL of berth serve")
	flag.StringVar(&o.out, "out", "", "write results.json, results.md and gc-time.png here (default: print the table only)")
	flag.StringVar(&o.work, "work", "", "work directory for registry data (default: a temp dir, removed)")
	flag.BoolVar(&o.keep, "keep", false, "keep the registries' data directories")
	flag.BoolVar(&o.smoke, "smoke", false, "tiny run for CI: 20 images, 8 MiB big blob; distribution only if installed; fails on any safety or reclaim check")
	flag.IntVar(&o.onlineMax, "online-max", 0, "run the collection under probe load only at scales up to this (0: every scale)")
	flag.DurationVar(&gcTimeout, "gc-timeout", 12*time.Minute, "stop a collector process that runs longer (reported as timed out, > this)")
	flag.Func("berth-env", "a setting for every berth serve and berth gc, as `BERTH_NAME=value` (repeat the flag for more; the caller's own BERTH_* variables are not passed on)", func(kv string) error {
		if k, _, ok := strings.Cut(kv, "="); !ok || !strings.HasPrefix(k, "BERTH_") {
			return fmt.Errorf("want BERTH_NAME=value, got %q", kv)
		}
		berthEnv = append(berthEnv, kv)
		return nil
	})
	flag.StringVar(&o.cpuprof, "cpuprofile-dir", "", "with -berth-gc inproc: write a CPU profile of each berth collection here")
	flag.Parse()
	for _, s := range strings.Split(scales, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			log.Fatalf("bad -scales %q", scales)
		}
		o.scales = append(o.scales, n)
	}
	o.registries = strings.Split(regs, ",")
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, m := range strings.Split(modes, ",") {
		switch m = strings.TrimSpace(m); m {
		case "cli", "inproc", "auto": // the flag's meaning before the serve mode existed
			o.gcCmdKind, m = m, modeProcess
		}
		if !slices.Contains(o.berthModes, m) {
			o.berthModes = append(o.berthModes, m)
		}
	}
	for _, db := range strings.Split(dbs, ",") {
		o.berthDBs = append(o.berthDBs, strings.TrimSpace(db))
	}
	if o.pgDSN == "" {
		o.pgDSN = os.Getenv("BERTH_TEST_POSTGRES_DSN")
	}
	if o.pgDSN == "" {
		o.pgDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	if o.smoke {
		o.scales, o.tagsPer, o.fixed, o.pullMax, o.probeIdle, o.bigMiB = []int{20}, 10, 4, 20, 20, 8
		o.limitsN = 500
		if !set["berth-gc"] {
			o.berthModes = []string{modeProcess, modeServe}
		}
		if _, err := exec.LookPath("docker-registry"); err != nil {
			log.Printf("docker-registry not installed: smoke runs berth only")
			o.registries = []string{kindBerth}
		}
	}
	if err := run(context.Background(), o); err != nil {
		log.Fatal(err)
	}
}

// latStats summarises the manifest PUT latencies of the probe.
type latStats struct {
	N        int     `json:"n"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	Failures int     `json:"failures"`
	Retries  int     `json:"retries"`   // PUTs retried after MANIFEST_BLOB_UNKNOWN
	MaxGapS  float64 `json:"max_gap_s"` // longest time between two successful probe pushes
}

func stats(lat []time.Duration, failures, retries int, maxGap time.Duration) latStats {
	s := latStats{N: len(lat), Failures: failures, Retries: retries, MaxGapS: maxGap.Seconds()}
	if len(lat) == 0 {
		return s
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(lat)))) - 1
		return float64(lat[max(i, 0)].Microseconds()) / 1000
	}
	s.P50ms, s.P99ms = q(0.50), q(0.99)
	return s
}

// regResult is everything measured on one registry at one scale.
type regResult struct {
	Registry      string   `json:"registry"` // kind: berth or distribution
	Variant       string   `json:"variant,omitempty"`
	Mode          string   `json:"berth_gc,omitempty"`
	DB            string   `json:"berth_db,omitempty"`
	TotalSeconds  float64  `json:"total_seconds"` // the whole run of this variant at this scale, end to end
	Manifests     int      `json:"manifests"`
	PushImages    int      `json:"push_images"`
	PushSeconds   float64  `json:"push_seconds"`
	PushErrors    int      `json:"push_errors"`
	GarbageOps    int      `json:"garbage_ops"`
	BytesBefore   int64    `json:"storage_bytes_before_gc"`
	BytesAfter    int64    `json:"storage_bytes_after_gc"`
	Reclaim       gcRun    `json:"reclaim"`
	Noop          gcRun    `json:"noop"`
	Fixed         gcRun    `json:"fixed"`
	Online        gcRun    `json:"under_probe_load"`
	ProbeIdle     latStats `json:"probe_idle"`
	ProbeReclaim  latStats `json:"probe_during_reclaim"`
	ProbeGC       latStats `json:"probe_during_gc"` // during the fixed-size collection under probe load
	PullImages    int      `json:"pull_images"`
	PullSeconds   float64  `json:"pull_seconds"`
	PullBytes     int64    `json:"pull_bytes"`
	PullErrors    int      `json:"pull_errors"`
	PushCPUms     float64  `json:"push_server_cpu_ms_per_image"`
	PullCPUms     float64  `json:"pull_server_cpu_ms_per_image"`
	DeletedSeen   int      `json:"deleted_still_served"`
	FixedPullErrs int      `json:"pull_errors_after_fixed"`
	ServerHWMKB   int64    `json:"server_hwm_kb"`
	Transient     int64    `json:"blob_requests_retried_5xx"`
	Errors        []string `json:"errors,omitempty"`
}

func (r *regResult) pushIPS() float64 { return float64(r.PushImages) / r.PushSeconds }
func (r *regResult) pullIPS() float64 { return float64(r.PullImages) / r.PullSeconds }

type bigResult struct {
	Registry  string  `json:"registry"`
	SizeMiB   int     `json:"size_mib"`
	PushMBps  float64 `json:"push_mb_s"`
	PullMBps  float64 `json:"pull_mb_s"` // aggregate over the clients
	PullError string  `json:"pull_error,omitempty"`
}

type results struct {
	Date       string                  `json:"date"`
	Variants   []variant               `json:"variants,omitempty"` // columns, in order (older files: registries)
	Limits     []limitResult           `json:"limits,omitempty"`
	Options    map[string]any          `json:"options"`
	Env        map[string]string       `json:"env"`
	Scales     []map[string]*regResult `json:"scales"`
	Big        []bigResult             `json:"big_blob"`
	BerthGCCmd []string                `json:"berth_gc_cmd"`
}

func run(ctx context.Context, o options) error {
	work := o.work
	if work == "" {
		var err error
		work, err = os.MkdirTemp("", "berth-bench-")
		if err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(work)
		}
	}
	work, _ = filepath.Abs(work)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	res := &results{Date: time.Now().UTC().Format(time.RFC3339), Env: environment(), Options: map[string]any{
		"scales": o.scales, "tags_per_repo": o.tagsPer, "seed": o.seed, "clients": o.clients, "fixed_garbage": o.fixed,
		"pull": o.pullMax, "probe_idle": o.probeIdle, "big_mib": o.bigMiB, "registries": o.registries,
		"berth_workers": o.workers, "berth_interval": o.interval, "smoke": o.smoke,
		"berth_gc": o.berthModes, "berth_db": o.berthDBs, "serve_workers": serveWorkers, "probe_reclaim": o.probeGC, "probe_rate": o.probeRate,
	}}
	vs, err := variants(o.registries, o.berthModes, o.berthDBs)
	if err != nil {
		return err
	}
	res.Variants = vs
	if slices.Contains(o.registries, kindBerth) {
		if o.berthBin == "" {
			o.berthBin = filepath.Join(work, "berth")
			log.Printf("building berth")
			cmd := exec.Command("go", "build", "-o", o.berthBin, "./cmd/berth")
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("go build ./cmd/berth (run from the repository root): %w", err)
			}
		}
		gcCmd, err := berthGCCommand(o)
		if err != nil {
			return err
		}
		res.BerthGCCmd = gcCmd
		log.Printf("berth collector process: %s", strings.Join(gcCmd, " "))
	}
	var failures []string
	runs, done := len(o.scales)*len(vs), 0
	begin := time.Now()
	for _, scale := range o.scales {
		m := map[string]*regResult{}
		res.Scales = append(res.Scales, m)
		for _, v := range vs {
			dir := filepath.Join(work, fmt.Sprintf("%s-%d", strings.ReplaceAll(v.Name, "/", "-"), scale))
			log.Printf("=== run %d of %d: %s at %d manifests (%.0fs since the start)", done+1, runs, v.label(), scale, time.Since(begin).Seconds())
			t0 := time.Now()
			r, err := runVariant(ctx, o, v, dir, scale, res.BerthGCCmd)
			r.TotalSeconds = time.Since(t0).Seconds()
			m[v.Name] = r
			if err != nil {
				r.Errors = append(r.Errors, err.Error())
			}
			failures = append(failures, checks(o, r)...)
			if !o.keep {
				os.RemoveAll(dir)
			}
			done++
			printRow(r)
			log.Printf("=== %s at %d took %.0fs end to end (push %.0fs); %d of %d runs done", v.label(), scale, r.TotalSeconds, r.PushSeconds, done, runs)
			if o.out != "" { // so far, in case a later step dies
				j, _ := json.MarshalIndent(res, "", "  ")
				_ = os.MkdirAll(o.out, 0o755)
				_ = os.WriteFile(filepath.Join(o.out, "results.json"), j, 0o644)
			}
		}
	}
	if o.limits && len(o.scales) > 0 {
		lo := limitOptions{n: o.limitsN, s3n: min(o.limitsN, 5000), pgDSN: o.pgDSN, versitygw: o.versitygw, dir: filepath.Join(work, "limits")}
		for _, v := range vs {
			if v.Kind == kindBerth {
				lo.backends = appendNew(lo.backends, dbSQLite, "fs")
				if v.DB != dbSQLite {
					lo.backends = appendNew(lo.backends, dbPostgres)
				}
				if v.DB == dbPGS3 {
					lo.backends = appendNew(lo.backends, "s3")
				}
			}
		}
		if len(lo.backends) > 0 {
			log.Printf("physical limits: %s, %d rows/files", strings.Join(lo.backends, ", "), lo.n)
			lr, err := measureLimits(ctx, lo)
			res.Limits = lr
			if err != nil {
				failures = append(failures, "limits: "+err.Error())
			}
			if !o.keep {
				os.RemoveAll(lo.dir)
			}
		}
	}
	if o.bigMiB > 0 {
		for _, kind := range o.registries {
			dir := filepath.Join(work, kind+"-big")
			b, err := runBig(ctx, o, kind, dir)
			if err != nil {
				b.PullError = err.Error()
				failures = append(failures, kind+" big blob: "+err.Error())
			}
			res.Big = append(res.Big, b)
			log.Printf("%s big blob %d MiB: push %.0f MB/s, pull %.0f MB/s (%d clients)", kind, o.bigMiB, b.PushMBps, b.PullMBps, o.clients)
			if !o.keep {
				os.RemoveAll(dir)
			}
		}
	}
	md := report(o, res)
	fmt.Println(md)
	if o.out != "" {
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			return err
		}
		j, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(filepath.Join(o.out, "results.json"), j, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(o.out, "results.md"), []byte(md), 0o644); err != nil {
			return err
		}
		if len(o.scales) > 0 {
			if err := plotGC(res, res.Variants, filepath.Join(o.out, "gc-time.png")); err != nil {
				return fmt.Errorf("plot: %w", err)
			}
		}
	}
	if len(failures) > 0 {
		return fmt.Errorf("%d check(s) failed:\n  %s", len(failures), strings.Join(failures, "\n  "))
	}
	return nil
}

// berthGCCommand is the command that runs berth's collector once.
func berthGCCommand(o options) ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	inproc := []string{self, "gc-inproc"}
	cli := []string{o.berthBin, "gc", "--json"}
	switch o.gcCmdKind {
	case "cli":
		return cli, nil
	case "inproc":
		return inproc, nil
	case "auto":
		if exec.Command(o.berthBin, "gc", "--help").Run() == nil {
			return cli, nil
		}
		log.Printf("%s has no gc command: using the in-process equivalent", o.berthBin)
		return inproc, nil
	}
	return nil, fmt.Errorf("bad -berth-gc-cmd %q", o.gcCmdKind)
}

// checks are the safety and reclaim checks that fail the run.
func checks(o options, r *regResult) []string {
	var f []string
	add := func(format string, a ...any) {
		name := r.Variant
		if name == "" {
			name = r.Registry
		}
		f = append(f, name+fmt.Sprintf(" %d: ", r.Manifests)+fmt.Sprintf(format, a...))
	}
	for _, e := range r.Errors {
		add("%s", e)
	}
	if r.PushErrors > 0 {
		add("%d push errors", r.PushErrors)
	}
	if r.PullErrors > 0 || r.FixedPullErrs > 0 {
		add("%d pull errors after collection, %d after the fixed-garbage collection (live data lost?)", r.PullErrors, r.FixedPullErrs)
	}
	if r.DeletedSeen > 0 {
		add("%d deleted manifests still served", r.DeletedSeen)
	}
	if r.BytesAfter >= r.BytesBefore {
		add("collection reclaimed nothing (%d -> %d bytes)", r.BytesBefore, r.BytesAfter)
	}
	if r.ProbeReclaim.Failures > 0 && r.Registry == kindBerth {
		add("%d probe manifest PUTs failed during the reclaim", r.ProbeReclaim.Failures)
	}
	if r.Registry == kindBerth && r.Reclaim.DueAfter != 0 {
		add("%d reviews still due after the collection", r.Reclaim.DueAfter)
	}
	return f
}

// parallel runs fn(i) for i in [0,n) on k goroutines; it returns the
// number of errors and the first one.
func parallel(k, n int, fn func(i int) error) (int, error) {
	var next atomic.Int64
	var nerr atomic.Int64
	var first error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < k; w++ {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					nerr.Add(1)
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return int(nerr.Load()), first
}

// prober measures manifest PUTs: it pushes one anchor image into probe/p,
// then PUTs new manifests that reference the anchor's (live) blobs under
// new tags, each with a unique annotation. No probe push uploads blobs, so
// none can lose a race against the collector over a blob it uploaded
// itself (with BERTH_GC_GRACE=0s uploaded blobs are collectable at once):
// what is measured is the manifest PUT, its latency and whether it
// succeeds while the collector runs.
//
// With rate 0 it PUTs one after the other (closed loop: one client that
// never pauses, so every PUT meets whatever the collector is doing); with
// a rate it PUTs at that many per second on average, each at a time drawn
// independently of how the earlier ones went (open loop, runOpen).
type prober struct {
	d       dataset
	cl      *client
	anchor  *image
	counter int
	rate    float64 // PUTs per second, open loop; 0: back to back
}

func (p *prober) init(ctx context.Context) error {
	im, data := p.d.build(-1, 0, 0, "probe/p", "anchor")
	if _, _, err := p.cl.pushImage(ctx, im, data); err != nil {
		return fmt.Errorf("pushing the probe anchor: %w", err)
	}
	p.anchor = im
	return nil
}

func (p *prober) manifest() []byte {
	p.counter++
	var m map[string]any
	_ = json.Unmarshal(p.anchor.manifest, &m)
	m["annotations"] = map[string]string{"berth.bench.probe": strconv.Itoa(p.counter)}
	b, _ := json.Marshal(m)
	return b
}

func (p *prober) run(ctx context.Context, count int, stop <-chan struct{}) latStats {
	if p.rate > 0 {
		return p.runOpen(ctx, count, stop)
	}
	rec := newPutRecorder()
	for i := 0; count <= 0 || i < count; i++ {
		if stop != nil {
			select {
			case <-stop:
				return rec.stats(true)
			default:
			}
		}
		m := p.manifest()
		took, err := p.cl.putManifest(ctx, "probe/p", fmt.Sprintf("p%06d", p.counter), m)
		rec.record(took, err)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return rec.stats(false)
}

// putRecorder gathers the probe's answers, from one goroutine or several.
type putRecorder struct {
	mu       sync.Mutex
	lat      []time.Duration
	failures int
	last     time.Time // of the last successful PUT, or the start
	maxGap   time.Duration
}

func newPutRecorder() *putRecorder { return &putRecorder{last: time.Now()} }

// record counts a PUT that took took, or failed with err.
func (r *putRecorder) record(took time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failures++
		return
	}
	now := time.Now()
	r.maxGap = max(r.maxGap, now.Sub(r.last))
	r.last = now
	r.lat = append(r.lat, took)
}

// stats summarises what was recorded. With stopped (the probe was stopped
// while the registry was still being measured) the time since the last
// successful PUT counts as a gap too.
func (r *putRecorder) stats(stopped bool) latStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	gap := r.maxGap
	if stopped {
		gap = max(gap, time.Since(r.last))
	}
	return stats(r.lat, r.failures, 0, gap)
}

// probeRun is the prober running in the background during a collection:
// the collection begins it once the registry serves and ends it when it
// is done (before serve restarts with its workers off). A nil probeRun
// probes nothing.
type probeRun struct {
	ctx  context.Context
	pr   *prober
	stop chan struct{}
	done chan latStats
	res  latStats
}

func (p *probeRun) begin() {
	if p == nil || p.stop != nil {
		return
	}
	p.stop, p.done = make(chan struct{}), make(chan latStats, 1)
	go func() { p.done <- p.pr.run(p.ctx, 0, p.stop) }()
}

// end stops the probe and returns what it measured (zero if it never
// began); later calls return the same.
func (p *probeRun) end() latStats {
	if p == nil || p.stop == nil {
		return latStats{}
	}
	if p.done != nil {
		close(p.stop)
		p.res = <-p.done
		p.done = nil
	}
	return p.res
}

// runVariant measures v at one scale, in dir, over storage of its own.
func runVariant(ctx context.Context, o options, v variant, dir string, scale int, gcCmd []string) (*regResult, error) {
	kind := v.Kind
	tags := min(o.tagsPer, scale)
	d := dataset{seed: o.seed, repos: max(scale/tags, 1), tags: tags}
	r := &regResult{Registry: kind, Variant: v.Name, Mode: v.Mode, DB: v.DB, Manifests: d.manifests()}
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return r, err
	}
	be, err := newBackend(ctx, o, v, dir)
	if err != nil {
		return r, err
	}
	defer be.close()
	srv, err := newServer(v, dir, o.berthBin, gcCmd, o.workers, o.interval, be)
	if err != nil {
		return r, err
	}
	if w := os.Getenv("BERTH_BENCH_GC_WRAP"); w != "" && kind == kindBerth {
		// e.g. "strace -f -c -o /tmp/gc.strace": diagnostics only.
		srv.gcCmd = append(strings.Fields(w), srv.gcCmd...)
	}
	if o.cpuprof != "" && kind == kindBerth && len(gcCmd) == 2 {
		prof, _ := filepath.Abs(o.cpuprof)
		os.MkdirAll(prof, 0o755)
		srv.gcCmd = append(slices.Clone(gcCmd), "-cpuprofile", filepath.Join(prof, fmt.Sprintf("gc-%s-%d-{label}.pprof", strings.ReplaceAll(v.Name, "/", "-"), scale)))
	}
	if err := srv.start(ctx); err != nil {
		return r, err
	}
	defer srv.stop()
	cl := srv.cl
	log.Printf("%s: %d manifests (%d repos × %d tags) at %s", v.label(), d.manifests(), d.repos, d.tags, srv.addr)

	// 1. push the dataset.
	refs := make([]ref, 0, d.manifests())
	for rp := 0; rp < d.repos; rp++ {
		for t := 0; t < d.tags; t++ {
			refs = append(refs, ref{rp, t})
		}
	}
	push := func(list []ref, gen int) (int, error) {
		var pushed atomic.Int64
		stop := progress(fmt.Sprintf("%s: pushing", v.label()), len(list), &pushed)
		defer stop()
		return parallel(o.clients, len(list), func(i int) error {
			defer pushed.Add(1)
			x := list[i]
			im, data := d.build(x.repo, x.tag, gen, d.repoName(x.repo), d.tagName(x.tag))
			_, _, err := cl.pushImage(ctx, im, data)
			return err
		})
	}
	start := time.Now()
	cpu0 := srv.cpuSeconds()
	nerr, err := push(refs, 0)
	r.PushImages, r.PushSeconds, r.PushErrors = len(refs), time.Since(start).Seconds(), nerr
	r.PushCPUms = (srv.cpuSeconds() - cpu0) * 1000 / float64(len(refs))
	if err != nil {
		log.Printf("%s push: %d errors, first: %v", kind, nerr, err)
	}
	log.Printf("%s pushed %d images in %.1fs: %.0f images/s", kind, r.PushImages, r.PushSeconds, r.pushIPS())

	// 2. manifest PUT latency on the idle registry.
	pr := &prober{d: d, cl: cl, rate: o.probeRate}
	if err := pr.init(ctx); err != nil {
		return r, err
	}
	r.ProbeIdle = pr.run(ctx, o.probeIdle, nil)

	// 3. garbage: overwrite some tags, delete some manifests.
	pl := d.plan(o.fixed)
	if nerr, err := push(pl.overwrite, 1); err != nil {
		r.PushErrors += nerr
		log.Printf("%s overwrite: %d errors, first: %v", kind, nerr, err)
	}
	del := func(list []ref) (int, error) {
		return parallel(o.clients, len(list), func(i int) error {
			x := list[i]
			im, _ := d.build(x.repo, x.tag, 0, d.repoName(x.repo), d.tagName(x.tag))
			return cl.deleteManifest(ctx, im.repo, im.digest)
		})
	}
	if nerr, err := del(pl.del); err != nil {
		return r, fmt.Errorf("deleting: %d errors, first: %w", nerr, err)
	}
	r.GarbageOps = len(pl.overwrite) + len(pl.del)
	r.BytesBefore = srv.storageBytes()

	// 4. reclaim the garbage, with the probe PUTting manifests throughout
	// (from when the registry serves during the collection: at once, or
	// after serve's restart in serve mode).
	var probe *probeRun
	if o.probeGC {
		probe = &probeRun{ctx: ctx, pr: pr}
	}
	r.Reclaim, err = srv.collect(ctx, "reclaim", probe)
	r.ProbeReclaim = probe.end()
	if err != nil {
		r.BytesAfter = srv.storageBytes()
		r.ServerHWMKB = srv.hwmKB()
		return r, fmt.Errorf("reclaim: %w (%d reviews still due)", err, r.Reclaim.DueAfter)
	}
	r.BytesAfter = srv.storageBytes()
	log.Printf("%s reclaim: %.2fs (process %.2fs, rss %d MiB, %d objects deleted: %.0f/s); storage %d -> %d bytes; PUT during it p50 %.1fms p99 %.1fms n=%d failures=%d",
		v.label(), r.Reclaim.Wall.Seconds(), r.Reclaim.Process.Seconds(), r.Reclaim.MaxRSSKB>>10, r.Reclaim.objects(),
		float64(r.Reclaim.objects())/r.Reclaim.Wall.Seconds(), r.BytesBefore, r.BytesAfter,
		r.ProbeReclaim.P50ms, r.ProbeReclaim.P99ms, r.ProbeReclaim.N, r.ProbeReclaim.Failures)

	// 5. safety: pull live images, verified; deleted manifests are gone.
	cl.forget()
	cpu0 = srv.cpuSeconds()
	r.PullImages, r.PullSeconds, r.PullBytes, r.PullErrors, err = pullLive(ctx, o, d, cl, pl.live)
	r.PullCPUms = (srv.cpuSeconds() - cpu0) * 1000 / float64(max(r.PullImages, 1))
	if err != nil {
		log.Printf("%s pull: %d errors, first: %v", kind, r.PullErrors, err)
	}
	for _, x := range pl.del[:min(50, len(pl.del))] {
		im, _ := d.build(x.repo, x.tag, 0, d.repoName(x.repo), d.tagName(x.tag))
		if st, err := cl.manifestStatus(ctx, im.repo, im.digest); err != nil || st != 404 {
			r.DeletedSeen++
		}
	}

	// 6. a collection with nothing to collect.
	if r.Noop, err = srv.collect(ctx, "noop", nil); err != nil {
		return r, fmt.Errorf("no-op collection: %w", err)
	}
	// 7. a fixed amount of garbage, whatever the registry size.
	if nerr, err := del(pl.fixedDel); err != nil {
		return r, fmt.Errorf("deleting (fixed): %d errors, first: %w", nerr, err)
	}
	if r.Fixed, err = srv.collect(ctx, "fixed", nil); err != nil {
		return r, fmt.Errorf("fixed-garbage collection: %w", err)
	}
	// 8. the same again with the probe PUTting manifests throughout:
	// availability and PUT latency while collecting.
	if o.onlineMax > 0 && scale > o.onlineMax {
		r.ServerHWMKB = srv.hwmKB()
		return r, nil
	}
	if nerr, err := del(pl.probeDel); err != nil {
		return r, fmt.Errorf("deleting (probe): %d errors, first: %w", nerr, err)
	}
	online := &probeRun{ctx: ctx, pr: pr}
	r.Online, err = srv.collect(ctx, "online", online)
	r.ProbeGC = online.end()
	if err != nil {
		return r, fmt.Errorf("collection under probe load: %w", err)
	}
	log.Printf("%s collection under probe load: %.2fs; PUT p50 %.1fms p99 %.1fms n=%d failures=%d (idle p50 %.1fms p99 %.1fms)",
		v.label(), r.Online.Wall.Seconds(), r.ProbeGC.P50ms, r.ProbeGC.P99ms, r.ProbeGC.N, r.ProbeGC.Failures, r.ProbeIdle.P50ms, r.ProbeIdle.P99ms)
	cl.forget()
	sample := pl.live[:min(len(pl.live), 100)]
	_, _, _, r.FixedPullErrs, _ = pullLive(ctx, o, d, cl, sample)
	r.ServerHWMKB = srv.hwmKB()
	r.Transient = cl.transient.Load()
	return r, nil
}

// pullLive pulls and verifies up to o.pullMax live tags with o.clients
// clients.
func pullLive(ctx context.Context, o options, d dataset, cl *client, live []ref) (int, float64, int64, int, error) {
	ov := map[ref]bool{}
	for _, x := range d.plan(o.fixed).overwrite {
		ov[x] = true
	}
	list := live[:min(len(live), o.pullMax)]
	var bytes atomic.Int64
	start := time.Now()
	nerr, err := parallel(o.clients, len(list), func(i int) error {
		x := list[i]
		gen := 0
		if ov[x] {
			gen = 1
		}
		im, _ := d.build(x.repo, x.tag, gen, d.repoName(x.repo), d.tagName(x.tag))
		n, err := cl.pullImage(ctx, im.repo, im.tag, im.digest)
		bytes.Add(n)
		return err
	})
	return len(list), time.Since(start).Seconds(), bytes.Load(), nerr, err
}

// runBig pushes one big blob and pulls it with o.clients clients at once.
func runBig(ctx context.Context, o options, kind, dir string) (bigResult, error) {
	b := bigResult{Registry: kind, SizeMiB: o.bigMiB}
	os.RemoveAll(dir)
	srv, err := newServer(variant{Name: kind, Kind: kind}, dir, o.berthBin, nil, o.workers, o.interval, nil)
	if err != nil {
		return b, err
	}
	if err := srv.start(ctx); err != nil {
		return b, err
	}
	defer srv.stop()
	var seed [32]byte
	copy(seed[:], "berth-bench big blob")
	st := stream{seed: seed, size: int64(o.bigMiB) << 20}
	dg := st.digest()
	repo := "big/blob"
	start := time.Now()
	if err := srv.cl.uploadBlobFrom(ctx, repo, dg, st.size, st.reader); err != nil {
		return b, err
	}
	b.PushMBps = float64(st.size) / 1e6 / time.Since(start).Seconds()
	// A manifest keeps the blob alive whatever the collector does.
	cfg := []byte("{}")
	if err := srv.cl.uploadBlob(ctx, repo, sha(cfg), cfg); err != nil {
		return b, err
	}
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mtManifest,
		"config": map[string]any{"mediaType": mtConfig, "digest": sha(cfg), "size": len(cfg)},
		"layers": []any{map[string]any{"mediaType": mtLayer, "digest": dg, "size": st.size}}})
	if _, err := srv.cl.putManifest(ctx, repo, "latest", m); err != nil {
		return b, err
	}
	var total atomic.Int64
	start = time.Now()
	_, err = parallel(o.clients, o.clients, func(int) error {
		n, err := srv.cl.getCount(ctx, srv.cl.base+"/v2/"+repo+"/blobs/"+dg)
		total.Add(n)
		if err == nil && n != st.size {
			err = errors.New("short read")
		}
		return err
	})
	b.PullMBps = float64(total.Load()) / 1e6 / time.Since(start).Seconds()
	return b, err
}

// progress logs done/total every 15 s until the returned function is
// called: rate and the time left at that rate.
func progress(what string, total int, done *atomic.Int64) func() {
	stop := make(chan struct{})
	start := time.Now()
	go func() {
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				n := done.Load()
				rate := float64(n) / time.Since(start).Seconds()
				left := "?"
				if rate > 0 {
					left = time.Duration(float64(int64(total)-n) / rate * float64(time.Second)).Round(time.Second).String()
				}
				log.Printf("%s: %d of %d (%.0f/s, about %s left)", what, n, total, rate, left)
			}
		}
	}()
	return func() { close(stop) }
}

func appendNew(list []string, items ...string) []string {
	for _, x := range items {
		if !slices.Contains(list, x) {
			list = append(list, x)
		}
	}
	return list
}

func printRow(r *regResult) {
	log.Printf("%s %d: push %.0f img/s; reclaim %.2fs; noop %.2fs; fixed %.2fs; gc rss %d/%d/%d MiB; pull %.0f img/s; PUT idle p99 %.1fms gc p99 %.1fms; errors %v",
		cmp.Or(r.Variant, r.Registry), r.Manifests, r.pushIPS(), r.Reclaim.Wall.Seconds(), r.Noop.Wall.Seconds(), r.Fixed.Wall.Seconds(),
		r.Reclaim.MaxRSSKB>>10, r.Noop.MaxRSSKB>>10, r.Fixed.MaxRSSKB>>10, r.pullIPS(), r.ProbeIdle.P99ms, r.ProbeGC.P99ms, r.Errors)
}
