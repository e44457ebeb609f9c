package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/gc"
)

// minSweepAge is the shortest --older-than sweep accepts: younger bytes may
// belong to an upload whose row is about to commit.
const minSweepAge = time.Minute

func newSweepCommand(g *globals) *cobra.Command {
	var dryRun, asJSON bool
	var olderThan time.Duration
	cmd := &cobra.Command{
		Use:   "sweep",
		Short: "Delete stored bytes that no metadata row names",
		Long: `sweep walks the whole byte store and deletes objects that have neither a blob
row nor a tombstone, and upload staging files without an upload session, when
they are older than --older-than. Such bytes are leftovers of a crash between
writing bytes and committing their row (bytes are always written first); the
collector never needs sweep to stay correct, and sweep is the one operation
whose cost follows the size of the registry rather than its garbage.

--older-than must exceed the longest upload commit in flight; less than 1m is
refused. It is safe to run while "berth serve" runs on the same data.`,
		Example: `  # See what would be reclaimed
  berth sweep --dry-run

  # Reclaim leftovers older than a day
  berth sweep --older-than 24h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if olderThan < minSweepAge {
				return fmt.Errorf("--older-than %s is too short: bytes younger than %s may belong to an upload whose row is about to commit; use at least %s", olderThan, minSweepAge, minSweepAge)
			}
			svc, closeSvc, err := g.openServices(cmd)
			if err != nil {
				return err
			}
			defer closeSvc()
			progress := newProgress(cmd.ErrOrStderr())
			s, err := svc.Collector.Sweep(cmd.Context(), olderThan, dryRun, func(s gc.SweepSummary) {
				progress.show("sweep: %d objects scanned, %d leaked (%s)", s.Objects, s.Leaked, humanBytes(s.LeakedBytes))
			})
			progress.done()
			if err != nil {
				return fmt.Errorf("sweep: %w", err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, s)
			}
			verb := "deleted"
			if dryRun {
				verb = "would delete"
				for _, k := range s.Keys {
					fmt.Fprintln(out, k)
				}
			}
			err = table(out,
				fmt.Sprintf("objects scanned\t%d", s.Objects),
				fmt.Sprintf("leaked objects %s\t%d (%s)", verb, s.Leaked, humanBytes(s.LeakedBytes)),
				fmt.Sprintf("staging files scanned\t%d", s.Uploads),
				fmt.Sprintf("abandoned staging %s\t%d (%s)", verb, s.LeakedUploads, humanBytes(s.UploadBytes)),
				fmt.Sprintf("duration\t%s", roundDuration(s.Duration)),
			)
			if err == nil && dryRun {
				fmt.Fprintln(out, "dry run: nothing was deleted")
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&dryRun, "dry-run", false, "list what would be deleted; delete nothing")
	f.DurationVar(&olderThan, "older-than", time.Hour, "only bytes older than this (at least 1m)")
	f.BoolVar(&asJSON, "json", false, "print the summary as JSON")
	return cmd
}
