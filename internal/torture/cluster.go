package torture

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// cluster is the berth processes under test: one or two "berth serve" on
// one data directory and one database, each on its own loopback port.
type cluster struct {
	cfg    Config
	bin    string
	dir    string // work directory: data/, logs
	data   string
	dsn    string    // "" = SQLite in data/
	dbName string    // PostgreSQL database created for the run
	s3     *s3Server // with -blob s3: the object store of the run

	mu    sync.Mutex
	nodes []*node
	rng   *rand.Rand

	hasGC, hasSweep, hasUsage bool
}

type node struct {
	idx    int
	addr   string
	cmd    *exec.Cmd
	up     bool
	done   chan struct{}
	starts int
	kills  int
}

func (n *node) base() string { return "http://" + n.addr }

// buildBerth builds cmd/berth into dir unless cfg names a binary.
func buildBerth(ctx context.Context, cfg Config, dir string) (string, error) {
	if cfg.BerthBin != "" {
		return filepath.Abs(cfg.BerthBin)
	}
	bin := filepath.Join(dir, "berth")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/berth/berth/cmd/berth")
	if cfg.ModuleDir != "" {
		cmd.Dir = cfg.ModuleDir
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/berth: %w\n%s", err, out.String())
	}
	return bin, nil
}

func newCluster(ctx context.Context, cfg Config, dir string) (*cluster, error) {
	bin, err := buildBerth(ctx, cfg, dir)
	if err != nil {
		return nil, err
	}
	c := &cluster{cfg: cfg, bin: bin, dir: dir, data: filepath.Join(dir, "data"), rng: rand.New(rand.NewPCG(uint64(cfg.Seed), 77))}
	if err := os.MkdirAll(c.data, 0o755); err != nil {
		return nil, err
	}
	if cfg.Backend == "postgres" {
		if err := c.createDatabase(ctx); err != nil {
			return nil, err
		}
	}
	if cfg.Blob == "s3" {
		if c.s3, err = startS3(ctx, cfg, dir); err != nil {
			c.dropDatabase()
			return nil, err
		}
	}
	c.hasGC = c.hasCommand(ctx, "gc")
	c.hasSweep = c.hasCommand(ctx, "sweep")
	c.hasUsage = c.hasCommand(ctx, "usage")
	for i := 0; i < cfg.Replicas; i++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, &node{idx: i, addr: fmt.Sprintf("127.0.0.1:%d", port)})
	}
	return c, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// hasCommand reports whether the berth binary has subcommand name.
func (c *cluster) hasCommand(ctx context.Context, name string) bool {
	cmd := exec.CommandContext(ctx, c.bin, name, "--help")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if cmd.Run() != nil {
		return false
	}
	return strings.Contains(out.String(), "berth "+name)
}

func (c *cluster) createDatabase(ctx context.Context) error {
	admin := c.cfg.PostgresDSN
	c.dbName = fmt.Sprintf("berth_torture_%d_%08x", os.Getpid(), rand.Uint32())
	db, err := openPG(admin)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE DATABASE "`+c.dbName+`"`); err != nil {
		return fmt.Errorf("creating database %s: %w", c.dbName, err)
	}
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		return err
	}
	// Rebuild the DSN with the new database name.
	u := admin
	if i := strings.Index(u, "?"); i >= 0 {
		q := u[i:]
		u = u[:i]
		u = u[:strings.LastIndex(u, "/")+1] + c.dbName + q
	} else {
		u = u[:strings.LastIndex(u, "/")+1] + c.dbName
	}
	_ = cfg
	c.dsn = u
	return nil
}

func (c *cluster) dropDatabase() {
	if c.dbName == "" {
		return
	}
	db, err := openPG(c.cfg.PostgresDSN)
	if err != nil {
		return
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = db.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+c.dbName+`" WITH (FORCE)`)
}

func openPG(dsn string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parsing PostgreSQL DSN: %w", err)
	}
	return stdlib.OpenDB(*cfg), nil
}

// env is the environment of every berth process of the run.
func (c *cluster) env(addr string) []string {
	cfg := c.cfg
	env := append(os.Environ(),
		"BERTH_DATA="+c.data,
		"BERTH_DB="+c.dsn,
		"BERTH_GC_GRACE="+cfg.Grace.String(),
		"BERTH_TAG_RETENTION="+cfg.Retention.String(),
		"BERTH_UPLOAD_EXPIRY="+cfg.UploadExpiry.String(),
		"BERTH_GC_WORKERS="+fmt.Sprint(cfg.GCWorkers),
		"BERTH_GC_INTERVAL="+cfg.GCInterval.String(),
		"BERTH_GC_BATCH_SIZE="+fmt.Sprint(cfg.BatchSize),
		"BERTH_LOG_LEVEL=info",
		"BERTH_LOG_FORMAT=text",
	)
	if c.s3 != nil {
		env = append(env, c.s3.env()...)
	}
	if addr != "" {
		env = append(env, "BERTH_ADDR="+addr)
	}
	return env
}

func (c *cluster) logFile(name string) (*os.File, error) {
	return os.OpenFile(filepath.Join(c.dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

// start starts node n and waits until it answers /v2/.
func (c *cluster) start(ctx context.Context, n *node) error {
	f, err := c.logFile(fmt.Sprintf("berth-%d.log", n.idx))
	if err != nil {
		return err
	}
	defer f.Close()
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		fmt.Fprintf(f, "=== torture: start %d (attempt %d) at %s\n", n.starts+1, attempt+1, time.Now().Format(time.RFC3339Nano))
		cmd := exec.Command(c.bin, "serve")
		cmd.Env = c.env(n.addr)
		cmd.Stdout, cmd.Stderr = f, f
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting berth: %w", err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		if err := waitHTTP(ctx, n.base()+"/v2/", done, 90*time.Second); err != nil {
			lastErr = err
			_ = cmd.Process.Kill()
			<-done
			if ctx.Err() != nil {
				return ctx.Err()
			}
			time.Sleep(200 * time.Millisecond) // the port may still be held; retry
			continue
		}
		c.mu.Lock()
		n.cmd, n.done, n.up = cmd, done, true
		n.starts++
		c.mu.Unlock()
		return nil
	}
	return fmt.Errorf("berth %d did not start: %w (see %s)", n.idx, lastErr, filepath.Join(c.dir, fmt.Sprintf("berth-%d.log", n.idx)))
}

func waitHTTP(ctx context.Context, url string, done <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("process exited")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if res, err := hc.Get(url); err == nil {
			res.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer on %s after %s", url, timeout)
}

// kill sends SIGKILL to node n and waits for it to die.
func (c *cluster) kill(n *node) {
	c.mu.Lock()
	if !n.up {
		c.mu.Unlock()
		return
	}
	n.up = false
	n.kills++
	cmd, done := n.cmd, n.done
	c.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	c.note(n, "killed (SIGKILL)")
}

// stop shuts node n down gracefully (SIGTERM, then SIGKILL after 40s).
func (c *cluster) stop(n *node) {
	c.mu.Lock()
	if !n.up {
		c.mu.Unlock()
		return
	}
	n.up = false
	cmd, done := n.cmd, n.done
	c.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(40 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
	c.note(n, "stopped (SIGTERM)")
}

func (c *cluster) note(n *node, what string) {
	if f, err := c.logFile(fmt.Sprintf("berth-%d.log", n.idx)); err == nil {
		fmt.Fprintf(f, "=== torture: %s at %s\n", what, time.Now().Format(time.RFC3339Nano))
		f.Close()
	}
}

func (c *cluster) stopAll() {
	for _, n := range c.nodes {
		c.stop(n)
	}
}

func (c *cluster) startAll(ctx context.Context) error {
	for _, n := range c.nodes {
		c.mu.Lock()
		up := n.up
		c.mu.Unlock()
		if !up {
			if err := c.start(ctx, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// base returns the URL of a replica that is up, waiting for one.
func (c *cluster) base(ctx context.Context, rng *rand.Rand) (string, error) {
	for {
		c.mu.Lock()
		var up []*node
		for _, n := range c.nodes {
			if n.up {
				up = append(up, n)
			}
		}
		c.mu.Unlock()
		if len(up) > 0 {
			return up[rng.IntN(len(up))].base(), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// cli runs "berth <args>" as a separate process; with killAfter > 0 it is
// killed with SIGKILL after that long if still running.
func (c *cluster) cli(ctx context.Context, killAfter time.Duration, args ...string) (stdout []byte, killed bool, err error) {
	f, err := c.logFile("berth-cli.log")
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	fmt.Fprintf(f, "=== torture: berth %s at %s\n", strings.Join(args, " "), time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env("")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, false, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var timer <-chan time.Time
	if killAfter > 0 {
		timer = time.After(killAfter)
	}
	select {
	case err = <-done:
	case <-timer:
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		killed, err = true, nil
		fmt.Fprintf(f, "=== torture: killed (SIGKILL) at %s\n", time.Now().Format(time.RFC3339Nano))
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		return nil, true, ctx.Err()
	}
	return out.Bytes(), killed, err
}
