package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is one registry process under test: berth serve or docker-registry
// serve, on a loopback port, with its data in dir.
type server struct {
	kind   string // "berth" or "distribution"
	mode   string // berth: modeProcess or modeServe
	dir    string
	bytes  string // directory holding the registry's bytes
	addr   string
	bin    string   // berth binary (berth only)
	env    []string // BERTH_* (berth only)
	gcCmd  []string // how berth's collector is run as a process
	cmd    *exec.Cmd
	exited chan struct{}
	log    *os.File
	cl     *client
}

const (
	kindBerth = "berth"
	kindDist  = "distribution"
)

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// newServer prepares (does not start) v's registry in dir over be. workers
// is BERTH_GC_WORKERS of serve outside a serve-mode collection.
func newServer(v variant, dir, berthBin string, gcCmd []string, workers int, interval string, be *backend) (*server, error) {
	kind := v.Kind
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "storage"), 0o755); err != nil {
		return nil, err
	}
	s := &server{kind: kind, mode: v.Mode, dir: dir, bytes: filepath.Join(dir, "storage"), addr: addr, bin: berthBin, gcCmd: gcCmd, cl: newClient(addr)}
	if be != nil {
		s.bytes = be.bytes
	}
	if kind == kindBerth {
		s.env = []string{
			"BERTH_ADDR=" + addr,
			"BERTH_DATA=" + dir,
			"BERTH_GC_GRACE=0s",
			"BERTH_TAG_RETENTION=0s",
			"BERTH_GC_WORKERS=" + strconv.Itoa(workers),
			"BERTH_GC_INTERVAL=" + interval,
			"BERTH_LOG_LEVEL=warn",
			"BERTH_METRICS=true",
		}
		if be != nil {
			s.env = append(s.env, be.env...)
		}
		s.env = append(s.env, berthEnv...)
	} else {
		cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
`, dir, addr)
		if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// berthEnv are the -berth-env settings, given to every berth serve and
// berth gc after the harness's own (a later setting wins).
var berthEnv []string

// environ is the process environment plus the server's BERTH_* settings
// (other BERTH_* variables of the caller are dropped: a benchmark's
// settings are its command line, -berth-env).
func (s *server) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BERTH_") {
			env = append(env, kv)
		}
	}
	return append(env, s.env...)
}

// start launches the server and waits until /v2/ answers.
func (s *server) start(ctx context.Context) error {
	var err error
	s.log, err = os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if s.kind == kindBerth {
		s.cmd = exec.Command(s.bin, "serve")
		s.cmd.Env = s.environ()
	} else {
		s.cmd = exec.Command("docker-registry", "serve", filepath.Join(s.dir, "config.yml"))
	}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if s.cl.up(ctx) {
			s.exited = exited
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited at start; see %s", s.kind, s.log.Name())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not answer within 60s", s.kind)
}

// stop sends SIGTERM and waits for the process (SIGKILL after 30 s).
func (s *server) stop() time.Duration {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	start := time.Now()
	// Connections the client's transport dialled but never used look new
	// to the server, and Go's http.Server.Shutdown waits up to 5 s for
	// them to send a request: close them first.
	s.cl.hc.CloseIdleConnections()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.log.Close()
	s.cmd = nil
	took := time.Since(start)
	if took > time.Second {
		log.Printf("%s took %.1fs to stop", s.kind, took.Seconds())
	}
	return took
}

// hwmKB is the server's peak RSS so far (VmHWM), in KiB.
func (s *server) hwmKB() int64 {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return procStatusKB(s.cmd.Process.Pid, "VmHWM:")
}

// rssKB is the server's resident set now (VmRSS), in KiB.
func (s *server) rssKB() int64 {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return procStatusKB(s.cmd.Process.Pid, "VmRSS:")
}

// setEnv sets one BERTH_* variable of the next start.
func (s *server) setEnv(key, value string) {
	s.env = slices.DeleteFunc(s.env, func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
	s.env = append(s.env, key+"="+value)
}

func procStatusKB(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// cpuSeconds is the server's user+system CPU time so far.
func (s *server) cpuSeconds() float64 {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100 // USER_HZ
}

// storageBytes sums the sizes of the files holding the registry's bytes
// (dir/storage, or the versitygw root with S3).
func (s *server) storageBytes() int64 {
	var n int64
	_ = filepath.WalkDir(s.bytes, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// gcTimeout bounds one collector process (-gc-timeout).
var gcTimeout time.Duration

var errTimeout = errors.New("collector timed out")

// gcRun is one collection.
type gcRun struct {
	Wall     time.Duration `json:"wall_ns"`                // reclaim time: see collect
	Process  time.Duration `json:"process_ns"`             // the collector process alone (serve mode: = Wall)
	Own      time.Duration `json:"collector_ns,omitempty"` // berth gc --json's own duration_ns
	Stop     time.Duration `json:"stop_ns"`                // distribution: stopping the registry
	Start    time.Duration `json:"start_ns"`               // distribution: restarting it; serve mode: exec → /v2/ answers (inside Wall)
	Unavail  time.Duration `json:"unavail_ns"`             // distribution: stop + gc + restart
	MaxRSSKB int64         `json:"max_rss_kb"`             // collector peak RSS (process: rusage; serve mode: serve's VmHWM)
	// serve mode: serve's VmRSS before the collection (the serve that took
	// the push, workers off) and after it (the serve whose workers collected).
	RSSBeforeKB int64          `json:"rss_before_kb,omitempty"`
	RSSAfterKB  int64          `json:"rss_after_kb,omitempty"`
	Reviews     int            `json:"reviews"` // berth: reviews decided
	Deleted     map[string]int `json:"deleted,omitempty"`
	Freed       int64          `json:"bytes_freed"` // berth summary
	DueAfter    int64          `json:"due_after"`   // berth: due reviews when done
	TimedOut    bool           `json:"timed_out,omitempty"`
}

// objects is the number of objects the collection deleted (tags,
// manifests, links, blobs, labels, markers...).
func (g gcRun) objects() int {
	n := 0
	for _, v := range g.Deleted {
		n += v
	}
	return n
}

// runProc runs a command to completion and returns its wall time, peak RSS
// (KiB, from wait4's rusage) and stdout.
func runProc(ctx context.Context, name string, args, env []string, logPath string, stdoutToLog bool) (time.Duration, int64, []byte, error) {
	if gcTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, gcTimeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	if env != nil {
		cmd.Env = env
	}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, 0, nil, err
	}
	defer lf.Close()
	var out strings.Builder
	if stdoutToLog {
		cmd.Stdout = lf
	} else {
		cmd.Stdout = &out
	}
	cmd.Stderr = lf
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start)
	var rss int64
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss
		}
	}
	if err != nil && ctx.Err() != nil {
		return took, rss, []byte(out.String()), fmt.Errorf("%w: %s did not finish within %s (log %s)", errTimeout, name, gcTimeout, logPath)
	}
	if err != nil {
		return took, rss, []byte(out.String()), fmt.Errorf("%s %s: %w (log %s)", name, strings.Join(args, " "), err, logPath)
	}
	return took, rss, []byte(out.String()), nil
}

// collect runs one collection and times it. probe (may be nil) is begun
// once the registry serves during the collection and ended when the
// collection is done.
//
// distribution: stop the registry, run garbage-collect --delete-untagged,
// start it again; Wall = Unavail = stop + gc + restart, Process = gc alone.
// The probe begins at once (it sees the registry stopped).
//
// berth, process mode: the registry keeps serving; "berth gc --json" runs
// as a separate process, started at once; Wall runs from its start until
// it has exited and the server reports zero due reviews.
//
// berth, serve mode: see collectServe.
func (s *server) collect(ctx context.Context, label string, probe *probeRun) (gcRun, error) {
	var r gcRun
	if s.kind == kindDist {
		probe.begin()
		start := time.Now()
		r.Stop = s.stop()
		took, rss, _, err := runProc(ctx, "docker-registry",
			[]string{"garbage-collect", "--delete-untagged", filepath.Join(s.dir, "config.yml")},
			nil, filepath.Join(s.dir, "gc-"+label+".log"), true)
		r.Process, r.MaxRSSKB = took, rss
		if err != nil {
			return r, err
		}
		t0 := time.Now()
		if err := s.start(ctx); err != nil {
			return r, err
		}
		r.Start = time.Since(t0)
		r.Wall = time.Since(start)
		r.Unavail = r.Wall
		return r, nil
	}
	if s.mode == modeServe {
		return s.collectServe(ctx, label, probe)
	}
	probe.begin()
	args := slices.Clone(s.gcCmd)
	for i := range args {
		args[i] = strings.ReplaceAll(args[i], "{label}", label)
	}
	start := time.Now()
	took, rss, out, err := runProc(ctx, args[0], args[1:], s.environ(), filepath.Join(s.dir, "gc-"+label+".log"), false)
	r.Process, r.MaxRSSKB = took, rss
	if errors.Is(err, errTimeout) {
		r.TimedOut, r.Wall = true, time.Since(start)
		r.DueAfter, _ = s.due(ctx)
		return r, err
	}
	if err != nil {
		return r, err
	}
	var sum struct {
		Reviews    int            `json:"reviews"`
		Deleted    map[string]int `json:"deleted"`
		BytesFreed int64          `json:"bytes_freed"`
		Duration   time.Duration  `json:"duration_ns"`
	}
	if err := json.Unmarshal(out, &sum); err != nil {
		return r, fmt.Errorf("berth gc output %q: %w", out, err)
	}
	r.Reviews, r.Deleted, r.Freed, r.Own = sum.Reviews, sum.Deleted, sum.BytesFreed, sum.Duration
	for {
		due, err := s.due(ctx)
		if err != nil {
			return r, err
		}
		r.DueAfter = due
		if due == 0 || time.Since(start) > 10*time.Minute {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.Wall = time.Since(start)
	return r, nil
}

// serveWorkers is BERTH_GC_WORKERS of serve during a serve-mode collection
// (-serve-workers).
var serveWorkers = 2

// collectServe is a serve-mode collection: the workers of berth serve
// collect.
//
// With BERTH_GC_GRACE=0s an uploaded blob is collectable at once, so
// workers running during a push collect blobs before their manifest PUT
// (RESULTS.md, finding 4). So serve takes pushes and deletions with its
// workers off; for a collection the harness stops it (not timed: no
// request is in flight, the probe has not started) and starts it again
// with -serve-workers workers. Wall runs from that start (exec, so it
// includes the process's start-up, also reported as Start) until
// berth_gc_runs_total ≥ 1 (a worker finished a whole RunOnce after the
// restart: expiry scan, every due review, purges), berth_gc_reviews_due is
// 0 and GET /berth/v1/gc/status reports no tombstone (every byte
// deleted), polled every 50 ms. Counts come from serve's counters
// (deletions_total by kind, decision_seconds_count = reviews decided).
// Then serve is restarted with its workers off again (not timed), so the
// next steps see a registry that does not collect behind their back.
func (s *server) collectServe(ctx context.Context, label string, probe *probeRun) (gcRun, error) {
	var r gcRun
	r.RSSBeforeKB = s.rssKB()
	s.stop()
	s.cl.hc.CloseIdleConnections()
	s.setEnv("BERTH_GC_WORKERS", strconv.Itoa(serveWorkers))
	start := time.Now()
	if err := s.start(ctx); err != nil {
		return r, fmt.Errorf("restarting serve with its workers on (%s): %w", label, err)
	}
	r.Start = time.Since(start)
	probe.begin()
	defer probe.end()
	for {
		m, err := s.gcMetrics(ctx)
		if err == nil && m.runs >= 1 && m.due == 0 {
			if tombs, err := s.tombstones(ctx); err == nil && tombs == 0 {
				r.Wall = time.Since(start)
				r.Reviews, r.Deleted, r.Freed, r.DueAfter = m.reviews, m.deleted, m.freed, m.due
				break
			}
		}
		if gcTimeout > 0 && time.Since(start) > gcTimeout {
			r.TimedOut, r.Wall = true, time.Since(start)
			r.DueAfter = m.due
			return r, fmt.Errorf("%w: serve's workers had %d reviews due after %s", errTimeout, m.due, gcTimeout)
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.Process = r.Wall
	r.MaxRSSKB, r.RSSAfterKB = s.hwmKB(), s.rssKB()
	probe.end()
	s.stop()
	s.cl.hc.CloseIdleConnections()
	s.setEnv("BERTH_GC_WORKERS", "0")
	if err := s.start(ctx); err != nil {
		return r, fmt.Errorf("restarting serve with its workers off (%s): %w", label, err)
	}
	return r, nil
}

// serveGC is what berth serve's /metrics says of its collector.
type serveGC struct {
	runs, due int64
	reviews   int
	deleted   map[string]int
	freed     int64
}

// gcMetrics reads serve's collector counters from /metrics.
func (s *server) gcMetrics(ctx context.Context) (serveGC, error) {
	resp, err := s.cl.do(ctx, "GET", s.cl.base+"/metrics", nil, nil)
	if err != nil {
		return serveGC{due: -1}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return serveGC{due: -1}, fmt.Errorf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	return parseGCMetrics(resp.Body)
}

// parseGCMetrics reads the berth_gc_* samples of a Prometheus text
// exposition.
func parseGCMetrics(r io.Reader) (serveGC, error) {
	m := serveGC{deleted: map[string]int{}, due: -1}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "berth_gc_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		name, labels, _ := strings.Cut(line[:i], "{")
		kind := ""
		if k, ok := strings.CutPrefix(labels, `kind="`); ok {
			kind, _, _ = strings.Cut(k, `"`)
		}
		switch name {
		case "berth_gc_runs_total":
			m.runs = int64(v)
		case "berth_gc_reviews_due":
			m.due = int64(v)
		case "berth_gc_bytes_freed_total":
			m.freed = int64(v)
		case "berth_gc_deletions_total":
			m.deleted[kind] += int(v)
		case "berth_gc_decision_seconds_count":
			m.reviews += int(v)
		}
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if m.due < 0 {
		return m, errors.New("/metrics has no berth_gc_reviews_due")
	}
	return m, nil
}

// tombstones is the tombstone count of GET /berth/v1/gc/status.
func (s *server) tombstones(ctx context.Context) (int, error) {
	resp, err := s.cl.do(ctx, "GET", s.cl.base+"/berth/v1/gc/status", nil, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("GET /berth/v1/gc/status: HTTP %d", resp.StatusCode)
	}
	var st struct {
		Tombstones int `json:"tombstones"`
	}
	return st.Tombstones, json.NewDecoder(resp.Body).Decode(&st)
}

// due is berth's count of due reviews, from GET /berth/v1/gc/status, else
// the berth_gc_reviews_due gauge on /metrics.
func (s *server) due(ctx context.Context) (int64, error) {
	resp, err := s.cl.do(ctx, "GET", s.cl.base+"/berth/v1/gc/status", nil, nil)
	if err == nil && resp.StatusCode == 200 {
		var st struct {
			Due *int64 `json:"reviews_due"`
		}
		err := json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err == nil && st.Due != nil {
			return *st.Due, nil
		}
	} else if err == nil {
		drain(resp)
	}
	resp, err = s.cl.do(ctx, "GET", s.cl.base+"/metrics", nil, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "berth_gc_reviews_due "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f), err
		}
	}
	return 0, errors.New("berth exposes neither /berth/v1/gc/status nor berth_gc_reviews_due")
}
