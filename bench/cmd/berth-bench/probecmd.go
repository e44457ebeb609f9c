package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// probeCmd is "berth-bench probe": the benchmark's probe (prober) alone,
// against a registry that runs already. It pushes the anchor image, then
// PUTs manifests one after the other (or, with -rate, at that rate whatever
// the answers) until the duration ends or it is interrupted, and prints what
// it measured as JSON (latStats). With a data directory that
// TestGCBenchDataDir generated and a `berth serve` on it,
// it gives a collection under pushes in a minute, where the whole benchmark
// first pushes its dataset through HTTP:
//
//	berth-bench probe -addr 127.0.0.1:5000 -duration 30s &
//	berth gc --data DIR --gc-grace 0s --tag-retention 0s
func probeCmd(args []string) error {
	fl := flag.NewFlagSet("probe", flag.ContinueOnError)
	addr := fl.String("addr", "127.0.0.1:5000", "the registry's host:port (plain HTTP)")
	duration := fl.Duration("duration", 30*time.Second, "how long to push (0: until interrupted)")
	rate := fl.Float64("rate", 0, "PUTs per second, sent at random times whatever the answers (open loop: many clients); 0: one after the other (closed loop: one client that never pauses)")
	seed := fl.Uint64("seed", 1, "the anchor image's seed; the tags PUT are p<seed-1><6 digits>, so that runs of other seeds retag none of them")
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "Usage: berth-bench probe [flags]\n\nPUT manifests one after the other (or -rate per second, open loop) into probe/p\nof a running registry and print their latency (JSON) when the duration ends or\non SIGINT.\n\nExamples:\n  berth-bench probe -addr 127.0.0.1:5000 -duration 1m\n  berth-bench probe -addr 127.0.0.1:5000 -duration 1m -rate 50\n\nFlags:\n")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *seed == 0 {
		return fmt.Errorf("-seed must be 1 or more")
	}
	if *rate < 0 {
		return fmt.Errorf("-rate %v: want 0 (back to back) or PUTs per second", *rate)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	p := &prober{d: dataset{seed: *seed, repos: 1, tags: 1}, cl: newClient(*addr), counter: int(*seed-1) * 1_000_000, rate: *rate}
	if err := p.init(ctx); err != nil {
		return err
	}
	stop := make(chan struct{})
	go func() {
		var timeout <-chan time.Time
		if *duration > 0 {
			timeout = time.After(*duration)
		}
		select {
		case <-ctx.Done():
		case <-timeout:
		}
		close(stop)
	}()
	began := time.Now()
	s := p.run(context.Background(), 0, stop)
	fmt.Fprintf(os.Stderr, "berth-bench probe: %d manifest PUTs in %v (%.0f/s), p50 %.1f ms, p99 %.1f ms, %d failed\n",
		s.N, time.Since(began).Round(time.Millisecond), float64(s.N)/time.Since(began).Seconds(), s.P50ms, s.P99ms, s.Failures)
	return json.NewEncoder(os.Stdout).Encode(s)
}
