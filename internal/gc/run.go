package gc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
)

// RunOptions narrow one run.
type RunOptions struct {
	// DryRun decides everything in one transaction that is rolled back:
	// the summary lists exactly what a real run would delete now.
	DryRun bool
	// Repo limits the run to one repository's reviews and what they
	// cascade to (the blobs and labels they free). A repository that does
	// not exist is an error wrapping meta.ErrNotFound.
	Repo string
	// KeepDeletions lists every deletion in the summary (always on in a
	// dry run).
	KeepDeletions bool
	// Progress, if set, is called after each committed batch with the
	// running totals.
	Progress func(Summary)
}

// repoUnknownError is RunOnce's answer when RunOptions.Repo names no
// repository; it wraps meta.ErrNotFound.
type repoUnknownError struct {
	repo string
	err  error
}

func (e repoUnknownError) Error() string { return "no repository " + e.repo + " in this registry" }
func (e repoUnknownError) Unwrap() error { return e.err }

// RunOnce collects until no review is due: the expiry scan, every due
// review and what it cascades to, interrupted purges, and leftover
// tombstones.
func (c *Collector) RunOnce(ctx context.Context, ro RunOptions) (Summary, error) {
	start := c.opts.Now()
	filter := meta.ReviewFilter{ExcludeKinds: []review.Kind{review.KindPurge}}
	var repoID int64
	if ro.Repo != "" {
		err := c.store.View(ctx, func(tx meta.Tx) error {
			r, err := tx.Repository(ctx, ro.Repo, meta.LockNone)
			repoID = r.ID
			return err
		})
		if errors.Is(err, meta.ErrNotFound) {
			return Summary{}, repoUnknownError{repo: ro.Repo, err: err}
		}
		if err != nil {
			return Summary{}, fmt.Errorf("gc --repo %s: %w", ro.Repo, err)
		}
		filter.ObjectPrefix = review.RepoPrefix(repoID)
		filter.Kinds = []review.Kind{review.KindTag, review.KindManifest, review.KindLink, review.KindUploadedBlob}
	}
	if ro.DryRun {
		s, err := c.dryRun(ctx, filter, repoID)
		s.Duration = time.Since(start)
		return s, err
	}
	total := Summary{Deleted: map[review.Kind]int{}}
	keep := func(s Summary) {
		if !ro.KeepDeletions {
			s.Deletions = nil
		}
		total.Add(s)
		if ro.Progress != nil {
			ro.Progress(total)
		}
	}
	if err := c.flushTombstones(ctx); err != nil {
		return total, err
	}
	for {
		s, err := c.expireBatch(ctx, repoID)
		keep(s)
		if err != nil {
			return total, err
		}
		if s.Expired == 0 {
			break
		}
	}
	for {
		s, n, err := c.batch(ctx, filter, c.opts.BatchSize)
		keep(s)
		if err != nil {
			return total, err
		}
		if n == 0 {
			break
		}
	}
	if ro.Repo == "" {
		if err := c.resumePurges(ctx); err != nil {
			return total, err
		}
	}
	total.Duration = c.opts.Now().Sub(start)
	if total.Duration <= 0 {
		total.Duration = time.Since(start)
	}
	c.metrics.run(total)
	return total, nil
}

// expireBatch ends one batch of expired tags.
func (c *Collector) expireBatch(ctx context.Context, repoID int64) (Summary, error) {
	var p *pass
	err := c.store.Update(ctx, func(tx meta.Tx) error {
		p = c.newPass(tx, c.opts.Now())
		_, err := p.expire(ctx, c.opts.BatchSize, repoID)
		return err
	})
	if err != nil {
		return Summary{}, fmt.Errorf("expiring tags: %w", err)
	}
	c.afterCommit(ctx, p)
	return p.summary, nil
}

// batch decides up to limit due reviews, in transactions that each claim
// up to c.claimsPerTx reviews, decide them with their cascades and commit.
//
// On PostgreSQL a transaction claims one review. That is what keeps
// collectors and writers free of deadlocks: a transaction that held several
// claimed review rows while upserting follow-up reviews (in another order)
// formed cycles with a second collector or with a DELETE upserting the same
// rows (scenario 17, TestScenario17ConcurrentDeletesNoDeadlock). With a
// single claim, follow-ups only go down the graph (tag → manifest → child,
// referrer, link, label → blob), so two deciders never wait on each other.
// A store with a single writer (SQLite) cannot deadlock, and there each
// commit costs an fsync, so a transaction claims a few reviews at once
// (claimsPerSingleWriterTx: small enough to keep pushes waiting only
// briefly for the writer lock).
//
// A review whose decision fails is rescheduled with backoff in a
// transaction of its own, so one bad row never blocks the queue.
//
// The bytes of the blob rows the batch's transactions deleted are deleted
// once per batch (every deleteBatch keys at most), not after each
// transaction: one transaction frees a handful of blobs, and on S3 one
// DeleteObjects request of a hundred keys costs what one DeleteObject
// does. Their tombstones are committed with the rows, so deleting the
// bytes a batch later changes nothing but when the space comes back.
func (c *Collector) batch(ctx context.Context, filter meta.ReviewFilter, limit int) (Summary, int, error) {
	total := Summary{Deleted: map[review.Kind]int{}}
	var tombs []meta.Tombstone
	defer func() { c.deleteBytes(ctx, tombs) }()
	n := 0
	for n < limit {
		s, claimed, freed, err := c.decideClaims(ctx, filter, min(c.claimsPerTx, limit-n))
		total.Add(s)
		if tombs = append(tombs, freed...); len(tombs) >= deleteBatch {
			c.deleteBytes(ctx, tombs)
			tombs = nil
		}
		if err != nil {
			return total, n, err
		}
		if claimed == 0 {
			break
		}
		n += claimed
	}
	return total, n, nil
}

// claimsPerSingleWriterTx bounds the reviews one transaction decides on a
// single-writer store.
const claimsPerSingleWriterTx = 16

// singleWriter is the optional ability of a store whose write transactions
// are serialized (SQLite): no row-lock deadlock is possible there.
type singleWriter interface{ SingleWriter() bool }

// decideClaims claims up to n due reviews and decides them in one
// transaction. It returns the tombstones the transaction committed: the
// caller deletes their bytes (batch, once per batch).
func (c *Collector) decideClaims(ctx context.Context, filter meta.ReviewFilter, n int) (Summary, int, []meta.Tombstone, error) {
	var p *pass
	var failed *meta.Review
	var claimed int
	err := c.store.Update(ctx, func(tx meta.Tx) error {
		failed = nil
		p = c.newPass(tx, c.opts.Now())
		reviews, err := tx.ClaimReviews(ctx, p.now, filter, n)
		if err != nil {
			return err
		}
		claimed = len(reviews)
		for _, r := range reviews {
			began := time.Now()
			if err := p.decideAll(ctx, r); err != nil {
				failed = &r
				return err
			}
			c.metrics.decision(r.Kind, time.Since(began))
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil || failed == nil {
			return Summary{}, 0, nil, err
		}
		s, n, err := c.backoff(ctx, *failed, err)
		return s, n, nil, err
	}
	tombs := p.tombs
	p.tombs = nil
	c.afterCommit(ctx, p)
	return p.summary, claimed, tombs, nil
}

// backoff reschedules a review whose decision failed.
func (c *Collector) backoff(ctx context.Context, r meta.Review, cause error) (Summary, int, error) {
	c.metrics.errors.Inc()
	delay := time.Duration(1<<min(r.Attempts, 10)) * time.Second
	delay += time.Duration(rand.Int64N(int64(delay)/2 + 1))
	c.log.Error("gc decision failed; retrying later", "kind", r.Kind, "object", r.Object, "attempts", r.Attempts+1, "retry_in", delay, "err", cause)
	err := c.store.Update(ctx, func(tx meta.Tx) error {
		return tx.RescheduleReview(ctx, meta.Review{Kind: r.Kind, Object: r.Object, ReviewAfter: c.opts.Now().Add(delay),
			Cause: r.Cause, Reason: "error: " + cause.Error()})
	})
	if err != nil {
		return Summary{}, 0, fmt.Errorf("rescheduling failed review: %w (after %v)", err, cause)
	}
	return Summary{Errors: 1, Deleted: map[review.Kind]int{}}, 1, nil
}

// dryRun decides everything due in one transaction and rolls it back.
func (c *Collector) dryRun(ctx context.Context, filter meta.ReviewFilter, repoID int64) (Summary, error) {
	var p *pass
	err := c.store.Update(ctx, func(tx meta.Tx) error {
		p = c.newPass(tx, c.opts.Now())
		for {
			n, err := p.expire(ctx, c.opts.BatchSize, repoID)
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
		}
		for {
			reviews, err := tx.ClaimReviews(ctx, p.now, filter, c.opts.BatchSize)
			if err != nil {
				return err
			}
			if len(reviews) == 0 {
				return errDryRun
			}
			for _, r := range reviews {
				if err := p.decideAll(ctx, r); err != nil {
					return err
				}
			}
		}
	})
	if !errors.Is(err, errDryRun) {
		return Summary{}, fmt.Errorf("dry run: %w", err)
	}
	p.summary.DryRun = true
	return p.summary, nil
}

// afterCommit deletes the bytes of the blob rows the pass deleted (then
// their tombstones) unless the caller took them to delete with a batch's,
// the staging objects of collected uploads, and publishes the pass's
// deletions.
func (c *Collector) afterCommit(ctx context.Context, p *pass) {
	c.deleteBytes(ctx, p.tombs)
	for _, id := range p.aborts {
		if err := c.blobs.UploadAbort(ctx, id); err != nil && !errors.Is(err, blob.ErrNotFound) {
			c.log.Warn("deleting upload staging failed; sweep will retry", "upload", id, "err", err)
		}
	}
	for _, d := range p.summary.Deletions {
		c.log.Info("gc deleted", "kind", d.Kind, "repository", d.Repository, "digest", d.Digest, "tag", d.Tag, "size", d.Size, "reason", d.Reason)
		c.metrics.deleted(d)
	}
	for _, e := range p.events {
		c.hooks.emit(e)
	}
}

// deleteBatch bounds the keys of one batch delete: S3's DeleteObjects takes
// at most 1000 keys per request, and a tombstone transaction stays small.
const deleteBatch = 1000

// deleteBytes deletes the bytes of tombstones, in batches (blob.DeleteMany:
// one DeleteObjects request per batch on S3, one Delete per key on the
// filesystem), then, in one transaction per batch, the tombstones whose
// bytes are gone. It returns how many failed; only the keys whose delete
// succeeded lose their tombstone, the others stay and every later run
// retries them (a crash between the two steps leaves tombstones of deleted
// bytes: deleting bytes twice is harmless, keys are never reused).
//
// When ctx is done (the collector is stopping) it deletes nothing more and
// logs one line for all the tombstones it leaves, rather than a warning per
// key (up to deleteBatch) for requests a cancelled context fails anyway.
// Deleting them under context.WithoutCancel would hold up a shutdown for a
// storage round trip per batch to save nothing: the tombstones are
// committed, and the next run (of any replica) deletes them first.
func (c *Collector) deleteBytes(ctx context.Context, tombs []meta.Tombstone) (failed int) {
	stopped := func(left int) int {
		c.log.Info("gc stopping: left tombstones for the next run", "count", left, "err", context.Cause(ctx))
		return failed + left
	}
	for start := 0; start < len(tombs); start += deleteBatch {
		if ctx.Err() != nil {
			return stopped(len(tombs) - start)
		}
		batch := tombs[start:min(start+deleteBatch, len(tombs))]
		keys := make([]string, len(batch))
		for i, ts := range batch {
			keys[i] = ts.StorageKey
		}
		var done []string
		var interrupted int
		for i, err := range blob.DeleteMany(ctx, c.blobs, keys) {
			switch {
			case err == nil:
				done = append(done, keys[i])
			case ctx.Err() != nil:
				interrupted++
			default:
				c.log.Warn("deleting blob bytes failed; the tombstone will be retried", "key", keys[i], "err", err)
				failed++
			}
		}
		if len(done) > 0 {
			err := c.store.Update(ctx, func(tx meta.Tx) error {
				for _, key := range done {
					if err := tx.DeleteTombstone(ctx, key); err != nil {
						return err
					}
				}
				return nil
			})
			switch {
			case err != nil && ctx.Err() != nil:
				interrupted += len(done)
			case err != nil:
				c.log.Warn("clearing tombstones failed; they will be retried", "count", len(done), "err", err)
				failed += len(done)
			}
		}
		if interrupted > 0 {
			return stopped(interrupted + len(tombs) - (start + len(batch)))
		}
	}
	return failed
}

// flushTombstones retries bytes whose deletion a crash or an error
// interrupted, deleteBatch tombstones at a time. It stops at the first
// batch with a failure: those tombstones stay for the next run, which
// would list them first again.
func (c *Collector) flushTombstones(ctx context.Context) error {
	for {
		var ts []meta.Tombstone
		if err := c.store.View(ctx, func(tx meta.Tx) (err error) {
			ts, err = tx.Tombstones(ctx, deleteBatch)
			return err
		}); err != nil {
			return fmt.Errorf("listing tombstones: %w", err)
		}
		if failed := c.deleteBytes(ctx, ts); len(ts) < deleteBatch || failed > 0 {
			return nil
		}
	}
}

// Run collects in the background until ctx ends: Workers goroutines each
// run batches, sleeping Interval (with jitter) when nothing is due.
func (c *Collector) Run(ctx context.Context) error {
	workers := max(c.opts.Workers, 1)
	errs := make(chan error, workers)
	for i := 0; i < workers; i++ {
		go func() { errs <- c.worker(ctx) }()
	}
	var first error
	for i := 0; i < workers; i++ {
		if err := <-errs; err != nil && first == nil && ctx.Err() == nil {
			first = err
		}
	}
	return first
}

func (c *Collector) worker(ctx context.Context) error {
	for {
		s, err := c.RunOnce(ctx, RunOptions{})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			c.metrics.errors.Inc()
			c.log.Error("gc run failed", "err", err)
		} else if s.Reviews > 0 || s.Expired > 0 {
			c.log.Debug("gc run", "reviews", s.Reviews, "deleted", s.Deleted, "bytes_freed", s.BytesFreed, "duration", s.Duration)
		}
		sleep := c.opts.Interval/2 + time.Duration(rand.Int64N(int64(c.opts.Interval)))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(sleep):
		}
	}
}

// Status is what the management API and `berth gc --status` report.
type Status struct {
	Pending         int64     `json:"reviews_pending"`
	Due             int64     `json:"reviews_due"`
	Overdue         int64     `json:"reviews_overdue"`
	NextReview      time.Time `json:"next_review,omitzero"`
	Tombstones      int       `json:"tombstones"`
	ReclaimableNow  int64     `json:"bytes_reclaimable_now"`
	ReclaimableDone bool      `json:"bytes_reclaimable_computed"`
}

// Status reads the queue. With reclaimable, it also runs a dry run to
// report the bytes a collection would free now.
func (c *Collector) Status(ctx context.Context, reclaimable bool) (Status, error) {
	var st Status
	err := c.store.View(ctx, func(tx meta.Tx) error {
		rs, err := tx.ReviewStats(ctx, c.opts.Now(), c.opts.OverdueAfter)
		if err != nil {
			return err
		}
		st.Pending, st.Due, st.Overdue = rs.Pending, rs.Due, rs.Overdue
		next, err := tx.NextReview(ctx)
		if err != nil {
			return err
		}
		if next != nil {
			st.NextReview = *next
		}
		ts, err := tx.Tombstones(ctx, 10000)
		st.Tombstones = len(ts)
		return err
	})
	if err != nil || !reclaimable {
		return st, err
	}
	s, err := c.RunOnce(ctx, RunOptions{DryRun: true})
	if err != nil {
		return st, err
	}
	st.ReclaimableNow, st.ReclaimableDone = s.BytesFreed, true
	return st, nil
}
