package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"github.com/berth/berth/internal/app"
	"github.com/berth/berth/internal/config"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/review"
)

// gcInproc is "berth-bench gc-inproc": the equivalent of "berth gc --json"
// built from the same packages (app.OpenStores, gc.New, Collector.RunOnce)
// with the configuration read from BERTH_* exactly as berth reads it. It is
// used when the berth binary has no gc command, and with -cpuprofile to
// profile a collection (berth serve exposes no pprof).
func gcInproc(args []string) error {
	fl := flag.NewFlagSet("gc-inproc", flag.ContinueOnError)
	cpuprofile := fl.String("cpuprofile", "", "write a CPU profile of the collection to this file")
	debug := fl.Bool("debug", false, "log the collector's debug lines (one per transaction and round) to stderr")
	if err := fl.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load("", os.Environ())
	if err != nil {
		return err
	}
	ctx := context.Background()
	stores, err := app.OpenStores(ctx, cfg)
	if err != nil {
		return err
	}
	defer stores.Close()
	level := slog.LevelWarn
	if *debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	policy, err := app.Policy(cfg)
	if err != nil {
		return err
	}
	c := gc.New(stores.Meta, stores.Blobs, app.GCOptions(cfg, policy, logger))
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	start := time.Now()
	total := gc.Summary{Deleted: map[review.Kind]int{}}
	for round := 0; round < 100; round++ {
		s, err := c.RunOnce(ctx, gc.RunOptions{})
		total.Add(s)
		if err != nil {
			return err
		}
		if s.Reviews == 0 {
			break
		}
		st, err := c.Status(ctx, false)
		if err != nil || st.Due == 0 {
			break
		}
	}
	total.Duration = time.Since(start)
	return json.NewEncoder(os.Stdout).Encode(total)
}

var subcommands = map[string]func([]string) error{"gc-inproc": gcInproc, "report": reportCmd, "limits": limitsCmd, "probe": probeCmd}

func runSubcommand() bool {
	if len(os.Args) < 2 {
		return false
	}
	f, ok := subcommands[os.Args[1]]
	if !ok {
		return false
	}
	if err := f(os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "berth-bench "+os.Args[1]+":", err)
		os.Exit(1)
	}
	return true
}
