package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/config"
	"github.com/berth/berth/internal/duration"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
)

// maxGCRounds bounds the RunOnce calls of one "berth gc": each call already
// decides everything due and its cascades; another round only picks up
// reviews a concurrent server made due meanwhile.
const maxGCRounds = 100

func newGCCommand(g *globals) *cobra.Command {
	var dryRun, asJSON, list bool
	var repo string
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Collect garbage now, or show what a collection would delete",
		Long: `gc runs the garbage collector once, in the foreground, until no review is
due: it applies the retention policies due (ending the tags they prune),
ends expired tags, decides every due review and what it cascades to
(manifests, links, blobs, labels, upload markers, upload sessions), finishes
interrupted purges and retries leftover tombstones. It is safe to run while
"berth serve" runs on the same --data/--db: both claim work with row locks.

--dry-run decides the same things inside one read-only transaction and lists
exactly what would be deleted, with the bytes it would free, and the tags
retention policies would prune; nothing is deleted or ended. --repo limits
the run to one repository's reviews (its policies included) and the blobs
and labels they free. The --gc-* windows apply as in serve.

On a terminal a progress line is kept on stderr. The summary goes to stdout:
a table, or with --json the collector's summary as JSON.`,
		Example: `  # Show what a collection would delete now
  berth gc --dry-run

  # Collect, listing every deletion
  berth gc --list

  # Collect only what library/nginx holds, machine-readable
  berth gc --repo library/nginx --json

  # Collect with a 10-minute grace instead of the configured one
  berth gc --gc-grace 10m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, closeSvc, err := g.openServices(cmd)
			if err != nil {
				return err
			}
			defer closeSvc()
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			progress := newProgress(cmd.ErrOrStderr())
			total := gc.Summary{DryRun: dryRun, Deleted: map[review.Kind]int{}}
			show := func(s gc.Summary) {
				progress.show("gc: %d reviews decided, %d objects deleted, %s freed", total.Reviews+s.Reviews, deletedCount(total)+deletedCount(s), humanBytes(total.BytesFreed+s.BytesFreed))
			}
			start := time.Now()
			for round := 0; round < maxGCRounds; round++ {
				s, err := svc.Collector.RunOnce(ctx, gc.RunOptions{DryRun: dryRun, Repo: repo, KeepDeletions: list, Progress: show})
				total.Add(s)
				if err != nil {
					progress.done()
					if repo != "" && errors.Is(err, meta.ErrNotFound) {
						return err // no such repository: running again would not help
					}
					return fmt.Errorf("gc: %w (what was committed before stays done; run gc again)", err)
				}
				if dryRun || s.Reviews == 0 {
					break
				}
				st, err := svc.Collector.Status(ctx, false)
				if err != nil || st.Due == 0 {
					break
				}
			}
			progress.done()
			total.Duration = time.Since(start)
			if asJSON {
				return printJSON(out, total)
			}
			return printGCSummary(out, total, list || dryRun)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&dryRun, "dry-run", false, "list what would be deleted and the bytes it would free; delete nothing")
	f.StringVar(&repo, "repo", "", "collect only this repository's reviews (and the blobs and labels they free)")
	f.BoolVar(&asJSON, "json", false, "print the summary as JSON")
	f.BoolVar(&list, "list", false, "list every deletion (always on with --dry-run)")
	config.BindFlags(cmd.PersistentFlags(), &g.flags, config.GCFlags)
	cmd.AddCommand(newGCStatusCommand(g))
	return cmd
}

func deletedCount(s gc.Summary) int {
	n := 0
	for v := range maps.Values(s.Deleted) {
		n += v
	}
	return n
}

// printGCSummary writes the tag ends and deletions (when listed) and the
// summary table.
func printGCSummary(w io.Writer, s gc.Summary, listDeletions bool) error {
	verb, ended := "deleted", "tags ended (restorable in the time machine for their window):"
	if s.DryRun {
		verb, ended = "would delete", "tags it would end (restorable in the time machine for their window):"
	}
	if listDeletions && len(s.Ends) > 0 {
		fmt.Fprintln(w, ended)
		rows := []string{"REPOSITORY\tTAG\tDIGEST\tCAUSE\tREASON"}
		for _, e := range s.Ends {
			rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%s", e.Repository, e.Tag, dash(e.Digest.String()), e.Cause, e.Reason))
		}
		if err := table(w, rows...); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	if listDeletions {
		if len(s.Deletions) == 0 {
			fmt.Fprintf(w, "nothing to delete now\n\n")
		} else {
			rows := []string{"KIND\tREPOSITORY\tTAG\tDIGEST\tSIZE\tREASON"}
			for _, d := range s.Deletions {
				size := "-"
				if d.Size > 0 {
					size = humanBytes(d.Size)
				}
				rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", d.Kind, dash(d.Repository), dash(d.Tag), dash(d.Digest.String()), size, d.Reason))
			}
			if err := table(w, rows...); err != nil {
				return err
			}
			fmt.Fprintln(w)
		}
	}
	freed := "bytes freed"
	if s.DryRun {
		freed = "bytes it would free"
	}
	rows := []string{
		fmt.Sprintf("reviews decided\t%d", s.Reviews),
		fmt.Sprintf("tags expired\t%d", s.Expired),
		fmt.Sprintf("tags pruned by policies\t%d", s.Pruned),
		fmt.Sprintf("attachment tags ended with their subject\t%d", s.AttachmentsEnded),
		verb + ":\t",
	}
	for _, k := range []struct {
		kind  review.Kind
		label string
	}{
		{review.KindTag, "tags"}, {review.KindManifest, "manifests"}, {review.KindLink, "links"},
		{review.KindBlob, "blobs"}, {review.KindLabel, "labels"}, {review.KindUploadedBlob, "upload markers"},
		{review.KindUpload, "uploads"}, {review.KindRepository, "repositories"},
	} {
		rows = append(rows, fmt.Sprintf("  %s\t%d", k.label, s.Deleted[k.kind]))
	}
	rows = append(rows,
		fmt.Sprintf("%s\t%s (%d bytes)", freed, humanBytes(s.BytesFreed), s.BytesFreed),
		fmt.Sprintf("errors (retried later)\t%d", s.Errors),
	)
	if !s.DryRun {
		rows = append(rows, fmt.Sprintf("transactions (sets decided)\t%d (%d)", s.Transactions, s.Rounds))
	}
	rows = append(rows, fmt.Sprintf("duration\t%s", roundDuration(s.Duration)))
	if err := table(w, rows...); err != nil {
		return err
	}
	if s.DryRun {
		fmt.Fprintln(w, "dry run: nothing was deleted")
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newGCStatusCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the collector's queue and the bytes reclaimable now",
		Long: `status reads the collector's review queue: reviews pending, due now, and
overdue (due for more than an hour, a sign the workers fall behind), when the
next review comes due, and tombstones whose bytes still wait for deletion.
It also runs a dry run (nothing is deleted) to report how many bytes a
collection would free now.`,
		Example: `  berth gc status
  berth gc status --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, closeSvc, err := g.openServices(cmd)
			if err != nil {
				return err
			}
			defer closeSvc()
			st, err := svc.Collector.Status(cmd.Context(), true)
			if err != nil {
				return fmt.Errorf("gc status: %w", err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, st)
			}
			next := "none"
			if !st.NextReview.IsZero() {
				next = fmt.Sprintf("%s (%s)", humanTime(&st.NextReview), relative(time.Until(st.NextReview)))
			}
			return table(out,
				fmt.Sprintf("reviews pending\t%d", st.Pending),
				fmt.Sprintf("reviews due\t%d", st.Due),
				fmt.Sprintf("reviews overdue\t%d", st.Overdue),
				fmt.Sprintf("next review\t%s", next),
				fmt.Sprintf("tombstones\t%d", st.Tombstones),
				fmt.Sprintf("reclaimable now\t%s (%d bytes)", humanBytes(st.ReclaimableNow), st.ReclaimableNow),
			)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

// relative says "in 5m" or "1d2h ago".
func relative(d time.Duration) string {
	d = d.Round(time.Second)
	if d < 0 {
		return duration.Format(-d) + " ago"
	}
	return "in " + duration.Format(d)
}
