// Command berth-torture tries hard to make berth's garbage collector delete
// something reachable: it runs berth as separate processes on real storage,
// drives concurrent clients doing random operations from a seed, kills
// berth with SIGKILL at random moments and restarts it on the same data,
// and checks every promise berth made (safety) and that the collector
// reaches a fixed point holding exactly the reachable set (liveness).
// It exits 1 when it found a violation, 2 when the harness itself failed.
// See docs/design/torture.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/berth/berth/internal/torture"
)

func main() {
	var cfg torture.Config
	var seed int64
	flag.StringVar(&cfg.Backend, "backend", "sqlite", "metadata backend: sqlite or postgres")
	flag.StringVar(&cfg.Blob, "blob", "fs", "blob storage: fs (under the data dir) or s3 (a versitygw started for the run, one bucket shared by the replicas)")
	flag.StringVar(&cfg.VersityGW, "versitygw", "", "versitygw binary for -blob s3 (default $BERTH_VERSITYGW, then PATH, then $(go env GOPATH)/bin)")
	flag.DurationVar(&cfg.S3OutageEvery, "s3-outage-every", 0, "with -blob s3: mean time between outages of the object store (versitygw SIGKILLed, down 0.2–2 s, restarted; 0: never)")
	flag.IntVar(&cfg.Replicas, "replicas", 1, "berth serve processes on one data dir and database (2 needs postgres)")
	flag.DurationVar(&cfg.Duration, "duration", time.Minute, "how long clients write (the final checks come after)")
	flag.Int64Var(&seed, "seed", 0, "random seed (0: from the clock; the report prints it)")
	flag.IntVar(&cfg.Clients, "clients", 8, "concurrent clients")
	flag.DurationVar(&cfg.KillEvery, "kill-every", 8*time.Second, "mean time between SIGKILLs of a berth serve (0: never)")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the work directory (data, logs) and the PostgreSQL database")
	flag.StringVar(&cfg.BerthBin, "berth", "", "berth binary to test (default: go build ./cmd/berth)")
	flag.StringVar(&cfg.WorkDir, "dir", "", "parent of the run's work directory (default: $TMPDIR)")
	flag.StringVar(&cfg.PostgresDSN, "pg-dsn", "", "PostgreSQL admin DSN to create the run's database in (default $BERTH_TEST_POSTGRES_DSN, else postgres://postgres@127.0.0.1:5432/postgres)")
	flag.DurationVar(&cfg.Grace, "grace", 3*time.Second, "berth's untagged/upload grace")
	flag.DurationVar(&cfg.Retention, "retention", 4*time.Second, "berth's removed-tag retention (time machine)")
	flag.DurationVar(&cfg.UploadExpiry, "upload-expiry", 5*time.Second, "berth's upload session expiry")
	flag.DurationVar(&cfg.GCInterval, "gc-interval", 300*time.Millisecond, "berth's gc worker poll interval")
	flag.IntVar(&cfg.GCWorkers, "gc-workers", 2, "gc workers per berth serve")
	flag.IntVar(&cfg.BatchSize, "gc-batch-size", 20, "berth's gc batch size")
	flag.DurationVar(&cfg.GCEvery, "gc-every", 5*time.Second, "mean time between `berth gc` runs as a second process (0: never)")
	flag.IntVar(&cfg.KeepNewest, "keep-newest", 3, "N of the keep_newest retention rule saved on tort/keep (at least 1)")
	flag.Parse()
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000
	}
	cfg.Seed = uint64(seed)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := torture.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-torture (seed %d): %v\n", seed, err)
		os.Exit(2)
	}
	if rep.Dir != "" {
		fmt.Printf("work directory kept: %s\n", rep.Dir)
	}
	if rep.Violations > 0 {
		os.Exit(1)
	}
}
