package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// A variant is one registry configuration measured as its own column: CNCF
// distribution, or berth with one collector mode over one backend. Every
// variant pushes its own copy of the dataset into fresh storage: nothing is
// shared between variants.
type variant struct {
	Name string `json:"name"` // results key: "distribution" or "berth/<mode>/<db>"
	Kind string `json:"kind"` // kindBerth or kindDist
	Mode string `json:"mode,omitempty"`
	DB   string `json:"db,omitempty"`
}

// berth collector modes (-berth-gc) and backends (-berth-db).
const (
	modeProcess = "process" // `berth gc --json` beside `berth serve`, whose workers are off
	modeServe   = "serve"   // the workers of `berth serve` itself
	dbSQLite    = "sqlite"
	dbPostgres  = "postgres"
	dbPGS3      = "postgres-s3" // PostgreSQL metadata, blobs on S3 (versitygw)
)

// label is how tables name the variant.
func (v variant) label() string {
	if v.Kind != kindBerth {
		return v.Kind
	}
	if v.Mode == "" { // results.json written before the variants existed
		return "berth"
	}
	db := map[string]string{dbSQLite: "SQLite", dbPostgres: "PostgreSQL", dbPGS3: "PostgreSQL + S3"}[v.DB]
	if v.Mode == modeServe {
		return "berth serve workers, " + db
	}
	return "berth gc process, " + db
}

// variants expands -registries, -berth-gc and -berth-db, in that order:
// distribution first (when listed), then berth per backend, per mode.
func variants(regs, modes, dbs []string) ([]variant, error) {
	var out []variant
	for _, r := range regs {
		switch r {
		case kindDist:
			out = append(out, variant{Name: kindDist, Kind: kindDist})
		case kindBerth:
			for _, db := range dbs {
				if db != dbSQLite && db != dbPostgres && db != dbPGS3 {
					return nil, fmt.Errorf("bad -berth-db %q (want sqlite, postgres or postgres-s3)", db)
				}
				for _, m := range modes {
					if m != modeProcess && m != modeServe {
						return nil, fmt.Errorf("bad -berth-gc %q (want process or serve)", m)
					}
					out = append(out, variant{Name: kindBerth + "/" + m + "/" + db, Kind: kindBerth, Mode: m, DB: db})
				}
			}
		default:
			return nil, fmt.Errorf("bad -registries entry %q", r)
		}
	}
	return out, nil
}

// backend is the storage of one berth run beyond its data directory: the
// BERTH_* settings that select it, where its bytes live, and how to tear
// it down (drop the database, stop versitygw).
type backend struct {
	env     []string
	bytes   string // directory holding the registry's bytes (storage size)
	dsn     string // PostgreSQL database of this run, if any
	closers []func()
}

func (b *backend) close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
	b.closers = nil
}

// newBackend prepares the storage of one run of v in dir: for PostgreSQL a
// fresh database (dropped by close), for S3 a versitygw of its own over
// dir/s3 (stopped by close).
func newBackend(ctx context.Context, o options, v variant, dir string) (*backend, error) {
	b := &backend{bytes: filepath.Join(dir, "storage")}
	if v.Kind != kindBerth || v.DB == dbSQLite || v.DB == "" {
		return b, nil
	}
	dsn, drop, err := createDatabase(ctx, o.pgDSN)
	if err != nil {
		return nil, err
	}
	b.dsn = dsn
	b.closers = append(b.closers, drop)
	b.env = append(b.env, "BERTH_DB="+dsn)
	if v.DB == dbPGS3 {
		gw, err := startVersitygw(ctx, o.versitygw, filepath.Join(dir, "s3"), "berth-bench")
		if err != nil {
			b.close()
			return nil, err
		}
		b.closers = append(b.closers, gw.stop)
		b.bytes = gw.root
		b.env = append(b.env, gw.berthEnv()...)
	}
	return b, nil
}

var dbCounter atomic.Int64

// createDatabase creates a fresh database on the server of adminDSN and
// returns its DSN and a function that drops it.
func createDatabase(ctx context.Context, adminDSN string) (string, func(), error) {
	u, err := url.Parse(adminDSN)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, fmt.Errorf("bad -pg-dsn %q: want a postgres:// URL", adminDSN)
	}
	name := fmt.Sprintf("berth_bench_%d_%d_%d", os.Getpid(), time.Now().Unix(), dbCounter.Add(1))
	admin := func(stmt string) error {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		c, err := pgx.Connect(ctx, adminDSN)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, stmt)
		return err
	}
	if err := admin("CREATE DATABASE " + name); err != nil {
		return "", nil, fmt.Errorf("creating database %s: %w", name, err)
	}
	u.Path = "/" + name
	drop := func() {
		if err := admin("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			fmt.Fprintf(os.Stderr, "berth-bench: dropping database %s: %v\n", name, err)
		}
	}
	return u.String(), drop, nil
}

// versitygw is an S3 server (posix backend) of this run, on loopback.
type versitygw struct {
	root, bucket, endpoint string
	cmd                    *exec.Cmd
	exited                 chan struct{}
}

const (
	s3AccessKey = "berth"
	s3SecretKey = "berthsecret"
)

// versitygwBin is -versitygw, else $BERTH_VERSITYGW, else the pinned build
// of scripts/lib.sh (built into the cache on first use).
func versitygwBin(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if p := os.Getenv("BERTH_VERSITYGW"); p != "" {
		return p, nil
	}
	out, err := exec.Command("bash", "-c", ". scripts/lib.sh && ensure_versitygw").Output()
	if err != nil {
		return "", fmt.Errorf("no versitygw (set -versitygw or BERTH_VERSITYGW, or run from the repository root): %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func startVersitygw(ctx context.Context, bin, root, bucket string) (*versitygw, error) {
	bin, err := versitygwBin(bin)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(root, bucket), 0o755); err != nil {
		return nil, err
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	lf, err := os.Create(root + ".log")
	if err != nil {
		return nil, err
	}
	g := &versitygw{root: root, bucket: bucket, endpoint: "http://" + addr, exited: make(chan struct{})}
	g.cmd = exec.Command(bin, "--port", addr, "posix", root)
	g.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s3AccessKey, "ROOT_SECRET_KEY="+s3SecretKey)
	g.cmd.Stdout, g.cmd.Stderr = lf, lf
	if err := g.cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("starting versitygw: %w", err)
	}
	go func() { _ = g.cmd.Wait(); lf.Close(); close(g.exited) }()
	hc := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		// Any answer (403 to an unsigned request) means it listens.
		if resp, err := hc.Get(g.endpoint + "/"); err == nil {
			resp.Body.Close()
			return g, nil
		}
		select {
		case <-g.exited:
			return nil, fmt.Errorf("versitygw exited at start; see %s.log", root)
		case <-ctx.Done():
			g.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	g.stop()
	return nil, fmt.Errorf("versitygw did not answer within 30s; see %s.log", root)
}

func (g *versitygw) stop() {
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(10 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.exited
	}
}

// berthEnv is the configuration that puts berth's blobs in g's bucket.
func (g *versitygw) berthEnv() []string {
	return []string{
		"BERTH_STORAGE=s3", "BERTH_S3_BUCKET=" + g.bucket, "BERTH_S3_REGION=us-east-1",
		"BERTH_S3_ENDPOINT=" + g.endpoint, "BERTH_S3_PATH_STYLE=true",
		"BERTH_S3_ACCESS_KEY=" + s3AccessKey, "BERTH_S3_SECRET_KEY=" + s3SecretKey,
	}
}
