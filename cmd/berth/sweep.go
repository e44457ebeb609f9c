package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/config"
	"github.com/berth/berth/internal/duration"
	"github.com/berth/berth/internal/gc"
)

// minSweepAge is the shortest --older-than sweep accepts: younger bytes may
// belong to an upload whose row is about to commit.
const minSweepAge = time.Minute

// minSweepSettle is the shortest --settle sweep accepts, so that no typo
// turns the wait for commits in flight off.
const minSweepSettle = time.Second

func newSweepCommand(g *globals) *cobra.Command {
	var dryRun, asJSON bool
	olderThan, settle := config.Duration(time.Hour), config.Duration(gc.DefaultSweepSettle)
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
refused. It is safe to run while "berth serve" runs on the same data.

Age alone does not prove that no row is coming: an upload commit can create an
object that already looks old (on AWS S3, an object completed from a multipart
upload is dated when the upload began) and insert its row a moment later. So
sweep first lists the candidates, then, if there are any, waits --settle for
the commits in flight, checks each candidate again and deletes only those that
still have no row (those a row claimed meanwhile are reported as spared). Keep
--settle longer than any upload commit transaction while "berth serve" runs;
a shorter one is only safe when nothing is serving the data. A dry run waits
too, so that it lists exactly what a real run would delete.`,
		Example: `  # See what would be reclaimed
  berth sweep --dry-run

  # Reclaim leftovers older than a day
  berth sweep --older-than 24h

  # Every server is stopped: no commit can be in flight
  berth sweep --settle 1s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if olderThan.Duration() < minSweepAge {
				return fmt.Errorf("--older-than %s is too short: bytes younger than %s may belong to an upload whose row is about to commit; use at least %s", olderThan, duration.Format(minSweepAge), duration.Format(minSweepAge))
			}
			if settle.Duration() < minSweepSettle {
				return fmt.Errorf("--settle %s is too short: sweep waits it for upload commits in flight before deleting; use at least %s", settle, duration.Format(minSweepSettle))
			}
			svc, closeSvc, err := g.openServices(cmd)
			if err != nil {
				return err
			}
			defer closeSvc()
			progress := newProgress(cmd.ErrOrStderr())
			s, err := svc.Collector.Sweep(cmd.Context(), gc.SweepOptions{OlderThan: olderThan.Duration(), Settle: settle.Duration(), DryRun: dryRun, Progress: func(s gc.SweepSummary) {
				switch s.Phase {
				case gc.SweepSettling:
					progress.last = time.Time{} // always drawn: it stays up for the whole wait
					progress.show("sweep: %d objects and %d staging uploads scanned; waiting %s for upload commits in flight before re-checking %d candidates",
						s.Objects, s.Uploads, roundDuration(s.Settle), s.Candidates)
				case gc.SweepDeleting:
					progress.show("sweep: re-checking and deleting %d candidates", s.Candidates)
				default:
					progress.show("sweep: %d objects scanned, %d candidates", s.Objects, s.Candidates)
				}
			}})
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
				for _, id := range s.UploadIDs {
					fmt.Fprintln(out, "upload "+id)
				}
			}
			waited := "no (no candidates)"
			if s.Settle > 0 {
				waited = roundDuration(s.Settle).String() + " (for upload commits in flight)"
			}
			err = table(out,
				fmt.Sprintf("objects scanned\t%d", s.Objects),
				fmt.Sprintf("staging uploads scanned\t%d", s.Uploads),
				fmt.Sprintf("candidates (no row when listed)\t%d", s.Candidates),
				fmt.Sprintf("waited before re-checking\t%s", waited),
				fmt.Sprintf("spared (a row committed meanwhile)\t%d", s.Spared),
				fmt.Sprintf("leaked objects %s\t%d (%s)", verb, s.Leaked, humanBytes(s.LeakedBytes)),
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
	f.Var(&olderThan, "older-than", "only bytes older than this (at least 1m)")
	f.Var(&settle, "settle", "wait this long for upload commits in flight before re-checking and deleting candidates (at least 1s; keep it above any commit transaction while berth serve runs)")
	f.BoolVar(&asJSON, "json", false, "print the summary as JSON")
	return cmd
}
