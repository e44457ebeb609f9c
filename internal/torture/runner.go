// Package torture is berth's torture test: it runs berth as separate
// processes on real storage, drives many concurrent clients doing random
// registry operations from a seed, kills berth with SIGKILL at random
// moments (in the middle of collections and purges too) and restarts it on
// the same data, and checks that berth kept every promise it made
// (safety) and that, once writes stop and every window passes, the
// collector leaves exactly the reachable set (liveness). See
// docs/design/torture.md.
package torture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config is one torture run.
type Config struct {
	Backend   string // sqlite or postgres
	Blob      string // fs (under the data dir) or s3 (a versitygw started for the run)
	Replicas  int    // 1 or 2 (2 needs postgres)
	Duration  time.Duration
	Seed      uint64
	Clients   int
	KillEvery time.Duration // mean time between SIGKILLs; 0 = never
	// S3OutageEvery is the mean time between outages of the object store
	// (-blob s3): versitygw SIGKILLed, down for 0.2–2 s, restarted on the
	// same address; 0 = never.
	S3OutageEvery time.Duration
	Keep          bool // keep the work directory (and database)

	BerthBin    string // prebuilt berth; "" = go build ./cmd/berth
	ModuleDir   string // where to run go build
	WorkDir     string // parent of the run's directory; "" = os.TempDir()
	PostgresDSN string // admin DSN to create the run's database
	VersityGW   string // versitygw binary for -blob s3; "" = $BERTH_VERSITYGW, PATH, $(go env GOPATH)/bin

	Grace        time.Duration
	Retention    time.Duration
	UploadExpiry time.Duration
	GCInterval   time.Duration
	GCWorkers    int
	BatchSize    int
	GCEvery      time.Duration // mean time between "berth gc" runs; 0 = never
	Margin       time.Duration // clock slack on every promise
	KeepNewest   int           // N of the keep_newest rule of tort/keep

	Out io.Writer // progress and report
}

// Defaults fills the zero fields of c.
func (c *Config) Defaults() {
	if c.Backend == "" {
		c.Backend = "sqlite"
	}
	if c.Blob == "" {
		c.Blob = "fs"
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Duration == 0 {
		c.Duration = time.Minute
	}
	if c.Clients == 0 {
		c.Clients = 8
	}
	if c.Grace == 0 {
		c.Grace = 3 * time.Second
	}
	if c.Retention == 0 {
		c.Retention = 4 * time.Second
	}
	if c.UploadExpiry == 0 {
		c.UploadExpiry = 5 * time.Second
	}
	if c.GCInterval == 0 {
		c.GCInterval = 300 * time.Millisecond
	}
	if c.GCWorkers == 0 {
		c.GCWorkers = 2
	}
	if c.BatchSize == 0 {
		c.BatchSize = 20
	}
	if c.Margin == 0 {
		c.Margin = 50 * time.Millisecond
	}
	if c.KeepNewest == 0 {
		c.KeepNewest = 3
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
	if c.PostgresDSN == "" {
		c.PostgresDSN = os.Getenv("BERTH_TEST_POSTGRES_DSN")
	}
	if c.PostgresDSN == "" {
		c.PostgresDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
}

// readGrace is how long a HEAD/GET of a blob protects it for a client that
// skips its upload: a full grace (gc.md, scenario 29: a read whose review is
// due within the grace postpones it to 1.5 graces from now).
func (c *Config) readGrace() time.Duration { return c.Grace }

// Validate rejects impossible combinations.
func (c *Config) Validate() error {
	var errs []error
	if c.Backend != "sqlite" && c.Backend != "postgres" {
		errs = append(errs, fmt.Errorf("-backend: want sqlite or postgres, got %q", c.Backend))
	}
	if c.Blob != "fs" && c.Blob != "s3" {
		errs = append(errs, fmt.Errorf("-blob: want fs or s3, got %q", c.Blob))
	}
	if c.Replicas != 1 && c.Replicas != 2 {
		errs = append(errs, fmt.Errorf("-replicas: want 1 or 2, got %d", c.Replicas))
	}
	if c.Replicas == 2 && c.Backend != "postgres" {
		errs = append(errs, errors.New("-replicas 2 needs -backend postgres (replicas share one PostgreSQL)"))
	}
	if c.Clients < 1 {
		errs = append(errs, errors.New("-clients: at least 1"))
	}
	if c.KeepNewest < 1 {
		errs = append(errs, errors.New("-keep-newest: at least 1 (0 would mean no rule to the model)"))
	}
	return errors.Join(errs...)
}

// Report is the outcome of a run.
type Report struct {
	Seed        uint64
	Backend     string
	Blob        string
	Replicas    int
	Duration    time.Duration
	Ops         string // table of operations by kind
	Pushes      int    // acknowledged manifest PUTs
	Kills       int
	S3Outages   int
	GCRuns      int
	GCKilled    int
	Deletions   map[string]int // by kind, from the logs of serve and gc
	Violations  int
	ServerErrs  int
	Liveness    liveness
	Dir         string
	Unsupported []string
}

// runner is one run's shared state.
type runner struct {
	cfg       Config
	cl        *cluster
	m         *model
	hist      *history
	st        *stats
	repos     []string
	purgeable []string
	// relRepo holds the immutable tags (rule "^rel-"), keepRepo has a
	// keep_newest rule (worker_rules.go).
	relRepo  string
	keepRepo string
	layers   []blobData
	shared   []built

	seenMu sync.Mutex
	seen   map[string][]string // blob digest -> repositories it was confirmed in

	purgeMu   sync.Mutex
	lastPurge time.Time
	purgeHint chan struct{}

	httpClient *http.Client
	pending    []string // purges the end of the run interrupted

	// s3Mu is held for writing while the object store is down, and for
	// reading while a berth restarts: berth refuses to start without its
	// bucket, which would be the outage's fault, not berth's.
	s3Mu      sync.RWMutex
	s3Outages int

	gcMu     sync.Mutex
	gcRuns   int
	gcKilled int
	gcDel    map[string]int
	logMu    sync.Mutex

	relMu   sync.Mutex
	rel     map[string]string // immutable tag -> the digest it was pushed with
	checked map[string]bool   // history rows checkRuleEnds has checked
}

func (rn *runner) logf(format string, args ...any) {
	rn.logMu.Lock()
	defer rn.logMu.Unlock()
	fmt.Fprintf(rn.cfg.Out, "[%7.2fs] %s\n", time.Since(rn.hist.start).Seconds(), fmt.Sprintf(format, args...))
}

func (rn *runner) saw(d, repo string) {
	rn.seenMu.Lock()
	defer rn.seenMu.Unlock()
	if !slices.Contains(rn.seen[d], repo) {
		rn.seen[d] = append(rn.seen[d], repo)
	}
}

// seenIn returns another repository where d was confirmed, or "".
func (rn *runner) seenIn(d, not string, rng *rand.Rand) string {
	rn.seenMu.Lock()
	defer rn.seenMu.Unlock()
	var c []string
	for _, r := range rn.seen[d] {
		if r != not {
			c = append(c, r)
		}
	}
	if len(c) == 0 {
		return ""
	}
	return c[rng.IntN(len(c))]
}

func (rn *runner) purgeAllowed() bool {
	rn.purgeMu.Lock()
	defer rn.purgeMu.Unlock()
	if time.Since(rn.lastPurge) < 5*time.Second {
		return false
	}
	rn.lastPurge = time.Now()
	return true
}

// purgeRepo purges r to completion, holding its harness lock: it retries
// through crashes until berth answers that the repository is gone.
func (rn *runner) purgeRepo(ctx context.Context, client int, r *repoModel) string {
	r.lock.Lock()
	defer r.lock.Unlock()
	c := &client0{rn: rn}
	rng := rand.New(rand.NewPCG(rn.cfg.Seed, uint64(time.Now().UnixNano())))
	started := false
	for attempt := 0; ; attempt++ {
		base, err := rn.cl.base(ctx, rng)
		if err != nil {
			return ""
		}
		if !started {
			rn.m.beginPurge(r, time.Now())
			started = true
		}
		select {
		case rn.purgeHint <- struct{}{}:
		default:
		}
		x := c.http().purge(ctx, base, r.name)
		rn.hist.add(entry{client: client, op: "purge", keys: []string{r.name}, sent: x.sent, got: x.got, result: x.String(), detail: fmt.Sprintf("attempt %d", attempt+1)})
		switch {
		case x.status == 200:
			rn.m.ackPurge(r)
			rn.forget(r.name)
			return "ok"
		case x.status == 404 && x.code == "NAME_UNKNOWN":
			rn.m.ackPurge(r)
			rn.forget(r.name)
			return "ok"
		case x.status == 404 || x.status == 405:
			rn.logf("purge endpoint missing (%s); purges disabled", x.String())
			rn.purgeMu.Lock()
			rn.lastPurge = farFuture
			rn.purgeMu.Unlock()
			return "unsupported"
		}
		if ctx.Err() != nil {
			// The run ends: the final phase finishes the purge.
			rn.pendingPurge(r)
			return "unknown"
		}
		select {
		case <-ctx.Done():
			rn.pendingPurge(r)
			return "unknown"
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// client0 is a harness-level client (not one of the workers).
type client0 struct{ rn *runner }

func (c *client0) http() *client {
	return &client{http: c.rn.httpClient, cluster: c.rn.cl, stats: c.rn.st}
}

func (rn *runner) pendingPurge(r *repoModel) {
	rn.purgeMu.Lock()
	defer rn.purgeMu.Unlock()
	if !slices.Contains(rn.pending, r.name) {
		rn.pending = append(rn.pending, r.name)
	}
}

func (rn *runner) forget(repo string) {
	rn.seenMu.Lock()
	defer rn.seenMu.Unlock()
	for d, rs := range rn.seen {
		rn.seen[d] = slices.DeleteFunc(rs, func(x string) bool { return x == repo })
	}
}

// Run runs the torture test and reports; the error is about the harness
// itself (berth would not build or start), not about violations.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	parent := cfg.WorkDir
	if parent == "" {
		parent = os.TempDir()
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(parent, fmt.Sprintf("berth-torture-%s-%s-%d-", cfg.Backend, cfg.Blob, cfg.Seed))
	if err != nil {
		return nil, err
	}
	dir, _ = filepath.Abs(dir)
	rn := &runner{cfg: cfg, hist: newHistory(), st: newStats(), m: newModel(cfg.Grace, cfg.Retention, cfg.Margin),
		seen: map[string][]string{}, purgeHint: make(chan struct{}, 1), gcDel: map[string]int{}, httpClient: newHTTPClient(),
		rel: map[string]string{}, checked: map[string]bool{}}
	rn.relRepo, rn.keepRepo = "tort/app", "tort/keep"
	rn.repos = []string{rn.relRepo, "tort/lib", "shared/base/img", rn.keepRepo}
	rn.purgeable = []string{"scratch/p0", "scratch/p1"}
	rng := rand.New(rand.NewPCG(cfg.Seed, 1))
	for i := 0; i < 24; i++ {
		rn.layers = append(rn.layers, newBlob(randomBytes(rng, 16+rng.IntN(48<<10)), mediaLayer))
	}
	if cfg.Blob == "s3" {
		// Two layers larger than a part, so uploads (monolithic, chunked,
		// continued on another replica, abandoned) go through S3 multipart
		// uploads, not only single PUTs.
		for i := 0; i < 2; i++ {
			rn.layers = append(rn.layers, newBlob(randomBytes(rng, s3PartSize+rng.IntN(1<<20)), mediaLayer))
		}
	}
	for i := 0; i < 6; i++ {
		ls := []blobData{rn.layers[i%len(rn.layers)], rn.layers[(i*7+3)%len(rn.layers)]}
		rn.shared = append(rn.shared, buildImage(imageConfig(fmt.Sprintf("shared-%d", i), map[string]string{"shared": "yes"}), ls, nil))
	}
	for _, s := range rn.shared {
		s.rec.owner = -1
		s.rec.kind = "shared"
	}

	rn.logf("torture: seed %d, backend %s, blobs on %s, %d replica(s), %d clients, %s, kill every ~%s, S3 outage every ~%s, gc every ~%s; grace %s, retention %s, upload expiry %s; dir %s",
		cfg.Seed, cfg.Backend, cfg.Blob, cfg.Replicas, cfg.Clients, cfg.Duration, cfg.KillEvery, cfg.S3OutageEvery, cfg.GCEvery, cfg.Grace, cfg.Retention, cfg.UploadExpiry, dir)
	cl, err := newCluster(ctx, cfg, dir)
	if err != nil {
		return nil, err
	}
	rn.cl = cl
	defer func() {
		cl.stopAll()
		cl.s3.stop()
		if !cfg.Keep {
			cl.dropDatabase()
		}
	}()
	if !cl.hasGC {
		rn.logf("this berth has no \"gc\" command: only the workers in serve collect")
	}
	if err := cl.startAll(ctx); err != nil {
		return nil, err
	}
	if err := rn.ruleSetup(ctx); err != nil {
		return nil, err
	}

	// The run: clients, the killer, the gc runner.
	runCtx, stop := context.WithTimeout(ctx, cfg.Duration)
	defer stop()
	var wg sync.WaitGroup
	for i := 0; i < cfg.Clients; i++ {
		w := &worker{id: i, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(100+i))), r: rn,
			c: &client{http: rn.httpClient, cluster: cl, stats: rn.st}}
		wg.Go(func() { w.run(runCtx) })
	}
	var bg sync.WaitGroup
	if cfg.KillEvery > 0 {
		bg.Go(func() { rn.killer(runCtx, rand.New(rand.NewPCG(cfg.Seed, 2))) })
	}
	if cfg.S3OutageEvery > 0 && cl.s3 != nil {
		bg.Go(func() { rn.outager(runCtx, rand.New(rand.NewPCG(cfg.Seed, 4))) })
	}
	if cfg.GCEvery > 0 && cl.hasGC {
		bg.Go(func() { rn.gcRunner(runCtx, rand.New(rand.NewPCG(cfg.Seed, 3))) })
	}
	bg.Go(func() { rn.progress(runCtx) })
	wg.Wait()
	bg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	rep := rn.finish(ctx, dir)
	if cfg.Keep || rep.Violations > 0 {
		rep.Dir = dir
	} else {
		_ = os.RemoveAll(dir)
	}
	return rep, nil
}

func (rn *runner) progress(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rn.logf("progress: %d operations, %d acknowledged manifest PUTs, %d kills, %d violations",
				rn.hist.len(), rn.st.get("put-manifest", "ok"), rn.kills(), rn.hist.count())
		}
	}
}

func (rn *runner) kills() int {
	rn.cl.mu.Lock()
	defer rn.cl.mu.Unlock()
	n := 0
	for _, x := range rn.cl.nodes {
		n += x.kills
	}
	return n
}

// killer SIGKILLs a replica every ~KillEvery (and, now and then, right
// after a purge starts), then restarts it on the same data.
func (rn *runner) killer(ctx context.Context, rng *rand.Rand) {
	mean := rn.cfg.KillEvery
	for {
		wait := mean/2 + time.Duration(rng.Int64N(int64(mean)))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-rn.purgeHint:
			if rng.IntN(2) != 0 {
				continue
			}
			// Let the purge get going, then kill it mid-way.
			time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
		}
		n := rn.cl.nodes[rng.IntN(len(rn.cl.nodes))]
		rn.cl.kill(n)
		t := time.Now()
		rn.hist.add(entry{client: -1, op: "kill", keys: []string{fmt.Sprintf("node%d", n.idx)}, sent: t, got: t, result: "SIGKILL"})
		rn.logf("killed berth %d (SIGKILL)", n.idx)
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(100+rng.IntN(900)) * time.Millisecond):
		}
		rn.s3Mu.RLock()
		err := rn.cl.start(context.WithoutCancel(ctx), n)
		rn.s3Mu.RUnlock()
		if err != nil {
			rn.hist.violate("berth does not restart after SIGKILL", err.Error(), fmt.Sprintf("node%d", n.idx))
			rn.logf("VIOLATION: berth %d does not restart: %v", n.idx, err)
			return
		}
		t2 := time.Now()
		rn.hist.add(entry{client: -1, op: "restart", keys: []string{fmt.Sprintf("node%d", n.idx)}, sent: t2, got: t2, result: "up"})
	}
}

// outager takes the object store down now and then (-s3-outage-every):
// requests that need it fail (5xx: unknown outcomes to the model), the
// collector's byte deletes fail and keep their tombstones, uploads fail
// all-or-nothing. Nothing acknowledged may be lost, and at the fixed point
// the bucket must hold exactly the live blobs.
func (rn *runner) outager(ctx context.Context, rng *rand.Rand) {
	mean := rn.cfg.S3OutageEvery
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(mean/2 + time.Duration(rng.Int64N(int64(mean)))):
		}
		down := time.Duration(200+rng.IntN(1800)) * time.Millisecond
		t := time.Now()
		rn.s3Mu.Lock()
		rn.logf("S3 outage: versitygw killed (SIGKILL) for %s", down)
		err := rn.cl.s3.outage(context.WithoutCancel(ctx), down)
		if err == nil {
			rn.s3Outages++
		}
		rn.s3Mu.Unlock()
		res := "restarted"
		if err != nil {
			res = "error: " + err.Error()
		}
		rn.hist.add(entry{client: -1, op: "s3-outage", keys: []string{"s3"}, sent: t, got: time.Now(), result: res})
		if err != nil {
			// The harness's own failure: the rest of the run would only
			// measure a missing object store.
			rn.hist.violate("the object store does not restart after an outage (harness)", err.Error(), "s3")
			rn.logf("VIOLATION: %v", err)
			return
		}
	}
}

// gcRunner runs "berth gc --json" as a second process now and then, and
// sometimes kills it mid-run.
func (rn *runner) gcRunner(ctx context.Context, rng *rand.Rand) {
	mean := rn.cfg.GCEvery
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(mean/2 + time.Duration(rng.Int64N(int64(mean)))):
		}
		var killAfter time.Duration
		if rng.IntN(3) == 0 {
			killAfter = time.Duration(1+rng.IntN(300)) * time.Millisecond
		}
		rn.runGC(ctx, killAfter)
	}
}

func (rn *runner) runGC(ctx context.Context, killAfter time.Duration) (deleted int, err error) {
	t := time.Now()
	out, killed, err := rn.cl.cli(ctx, killAfter, "gc", "--json")
	res := "ok"
	switch {
	case killed:
		res = "SIGKILL"
	case err != nil:
		res = "error: " + err.Error()
	}
	rn.hist.add(entry{client: -1, op: "berth-gc", keys: []string{"gc"}, sent: t, got: time.Now(), result: res})
	rn.gcMu.Lock()
	defer rn.gcMu.Unlock()
	rn.gcRuns++
	if killed {
		rn.gcKilled++
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var s struct {
		Deleted map[string]int `json:"deleted"`
		Reviews int            `json:"reviews"`
		Expired int            `json:"tags_expired"`
	}
	if jerr := json.Unmarshal(out, &s); jerr != nil {
		return 0, fmt.Errorf("berth gc --json: %w: %.200s", jerr, out)
	}
	for k, v := range s.Deleted {
		rn.gcDel[k] += v
		deleted += v
	}
	return deleted + s.Expired, nil
}

var (
	gcDeletedRE = regexp.MustCompile(`msg="gc deleted" kind=(\w+)`)
	gcEndedRE   = regexp.MustCompile(`msg="gc ended tag" .*cause=(\w+)`)
)

// deletionsFromLogs counts the collector's deletions by kind in the logs
// of every berth process of the run (serve and gc log one line per
// deletion), and the tag lifetimes it ended on its own by cause
// ("tag-ended:expired", "tag-ended:subject_collected", "tag-ended:policy").
func deletionsFromLogs(dir string) map[string]int {
	out := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(dir, "berth-*.log"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, m := range gcDeletedRE.FindAllSubmatch(b, -1) {
			out[string(m[1])]++
		}
		for _, m := range gcEndedRE.FindAllSubmatch(b, -1) {
			out["tag-ended:"+string(m[1])]++
		}
	}
	return out
}

func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}
