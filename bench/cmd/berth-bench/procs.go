package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
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
	dir    string
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

func newServer(kind, dir, berthBin string, gcCmd []string, workers int, interval string) (*server, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "storage"), 0o755); err != nil {
		return nil, err
	}
	s := &server{kind: kind, dir: dir, addr: addr, bin: berthBin, gcCmd: gcCmd, cl: newClient(addr)}
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

// environ is the process environment plus the server's BERTH_* settings
// (other BERTH_* variables of the caller are dropped).
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
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.log.Close()
	s.cmd = nil
	return time.Since(start)
}

// hwmKB is the server's peak RSS so far (VmHWM), in KiB.
func (s *server) hwmKB() int64 {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return procHWM(s.cmd.Process.Pid)
}

func procHWM(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
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

// storageBytes sums the sizes of the files under dir/storage.
func (s *server) storageBytes() int64 {
	var n int64
	_ = filepath.WalkDir(filepath.Join(s.dir, "storage"), func(_ string, d fs.DirEntry, err error) error {
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
	Wall     time.Duration  `json:"wall_ns"`    // reclaim time: see collect
	Process  time.Duration  `json:"process_ns"` // the collector process alone
	Stop     time.Duration  `json:"stop_ns"`    // distribution: stopping the registry
	Start    time.Duration  `json:"start_ns"`   // distribution: restarting it
	Unavail  time.Duration  `json:"unavail_ns"` // distribution: stop + gc + restart
	MaxRSSKB int64          `json:"max_rss_kb"` // collector process peak RSS (rusage)
	Reviews  int            `json:"reviews"`    // berth: reviews the process decided
	Deleted  map[string]int `json:"deleted,omitempty"`
	Freed    int64          `json:"bytes_freed"` // berth summary
	DueAfter int64          `json:"due_after"`   // berth: due reviews when done
	TimedOut bool           `json:"timed_out,omitempty"`
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

// collect runs one collection and times it.
//
// distribution: stop the registry, run garbage-collect --delete-untagged,
// start it again; Wall = Unavail = stop + gc + restart, Process = gc alone.
//
// berth: the registry keeps serving; "berth gc --json" runs as a separate
// process, started at once; Wall runs from its start until it has exited
// and the server reports zero due reviews (the background workers of serve
// also work the queue meanwhile).
func (s *server) collect(ctx context.Context, label string) (gcRun, error) {
	var r gcRun
	if s.kind == kindDist {
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
	}
	if err := json.Unmarshal(out, &sum); err != nil {
		return r, fmt.Errorf("berth gc output %q: %w", out, err)
	}
	r.Reviews, r.Deleted, r.Freed = sum.Reviews, sum.Deleted, sum.BytesFreed
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
