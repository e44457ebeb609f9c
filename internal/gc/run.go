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
	// DryRun decides everything in one read-only transaction (dryrun.go):
	// the summary lists exactly what a real run would delete now, and no
	// push waits for it.
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
	// Pushes go first on a single writer (meta.Background).
	ctx = meta.Background(ctx)
	start := c.opts.Now()
	var sc scope
	if ro.Repo != "" {
		err := c.store.View(ctx, func(tx meta.Tx) error {
			r, err := tx.Repository(ctx, ro.Repo, meta.LockNone)
			sc.repoID = r.ID
			return err
		})
		if errors.Is(err, meta.ErrNotFound) {
			return Summary{}, repoUnknownError{repo: ro.Repo, err: err}
		}
		if err != nil {
			return Summary{}, fmt.Errorf("gc --repo %s: %w", ro.Repo, err)
		}
		sc.prefix = review.RepoPrefix(sc.repoID)
	}
	if ro.DryRun {
		s, err := c.dryRun(ctx, sc)
		s.Duration = time.Since(start)
		return s, err
	}
	began := time.Now()
	s, err := c.run(ctx, sc, ro)
	if err == nil {
		s.Duration = c.opts.Now().Sub(start)
		if s.Duration <= 0 {
			s.Duration = time.Since(start)
		}
		c.metrics.run(s)
	}
	failure := err
	if ctx.Err() != nil {
		failure = nil // stopped, not failed
	}
	c.activity.ran(start, time.Since(began), s, failure)
	return s, err
}

// run is a real run of RunOnce, in scope sc.
func (c *Collector) run(ctx context.Context, sc scope, ro RunOptions) (Summary, error) {
	total := Summary{Deleted: map[review.Kind]int{}}
	keep := func(s Summary) {
		if !ro.KeepDeletions {
			s.Deletions, s.Ends = nil, nil
		}
		total.Add(s)
		if ro.Progress != nil {
			ro.Progress(total)
		}
	}
	if err := c.flushTombstones(ctx); err != nil {
		return total, err
	}
	c.analyzeReviews(ctx)
	for {
		s, err := c.expireBatch(ctx, sc.repoID)
		keep(s)
		if err != nil {
			return total, err
		}
		if s.Expired == 0 {
			break
		}
	}
	if err := c.collect(ctx, sc, keep); err != nil {
		return total, err
	}
	if ro.Repo == "" {
		if err := c.resumePurges(ctx); err != nil {
			return total, err
		}
	}
	// What the run reports is on disk before it says so.
	if err := c.store.SyncCommitted(ctx); err != nil {
		return total, fmt.Errorf("syncing the run's commits: %w", err)
	}
	return total, nil
}

// analyzeReviews lets the store refresh the statistics its claims are
// planned with, when a backlog made them stale (sqlstore on PostgreSQL).
// A failure costs speed, not safety: the run goes on.
func (c *Collector) analyzeReviews(ctx context.Context) {
	a, ok := c.store.(interface{ AnalyzeReviews(context.Context) error })
	if !ok {
		return
	}
	if err := a.AnalyzeReviews(ctx); err != nil {
		c.log.Warn("gc: refreshing the review table's statistics failed", "err", err)
	}
}

// scope narrows a run to one repository's reviews (the objects starting
// with review.RepoPrefix)
// and what they cascade to.
type scope struct {
	repoID int64
	prefix string
}

// repoScoped are the review kinds whose objects name a repository, in
// stage order.
var repoScoped = []review.Kind{review.KindPolicy, review.KindTag, review.KindManifest, review.KindUploadedBlob, review.KindLink}

// kinds lists the review kinds a run in scope claims, in stage order.
func (sc scope) kinds() []review.Kind {
	if sc.prefix != "" {
		return repoScoped
	}
	return stages
}

// collect decides due reviews, kind after kind in stage order, until a
// round over every kind decides nothing: a later stage can record reviews
// due now of an earlier one (an index's children, a candidate another
// transaction held).
func (c *Collector) collect(ctx context.Context, sc scope, keep func(Summary)) error {
	bytes := c.startDeletingBytes(ctx)
	defer bytes.wait()
	for {
		decided := 0
		for _, kind := range sc.kinds() {
			for {
				s, n, err := c.batch(ctx, kind, sc.prefix, bytes.send)
				keep(s)
				if err != nil {
					return err
				}
				decided += n
				if n == 0 {
					break
				}
			}
		}
		if decided == 0 {
			return nil
		}
	}
}

// byteDeleter deletes the bytes of committed tombstones in a goroutine of
// its own while the collector decides the next sets: deleting a blob's
// bytes (an unlink, an S3 request) costs about what deciding it does, and
// the two no longer take turns. A third goroutine clears the tombstones of
// the bytes deleted: that transaction waits for the collector's in flight
// (up to gc.tx_hold and its commit), and the deleter goes on with the next
// batch meanwhile.
type byteDeleter struct {
	ch   chan []meta.Tombstone
	done chan struct{}
}

func (c *Collector) startDeletingBytes(ctx context.Context) *byteDeleter {
	b := &byteDeleter{ch: make(chan []meta.Tombstone, 4), done: make(chan struct{})}
	cleared := make(chan []string, 4)
	clearerDone := make(chan struct{})
	go func() {
		defer close(clearerDone)
		for keys := range cleared {
			// Whatever else is queued goes in the same transaction.
			for more := true; more; {
				select {
				case k, ok := <-cleared:
					keys, more = append(keys, k...), ok
				default:
					more = false
				}
			}
			if _, stopped := c.clearTombstones(ctx, keys); stopped {
				c.log.Info("gc stopping: left tombstones of deleted bytes for the next run", "count", len(keys), "err", context.Cause(ctx))
			}
		}
	}()
	go func() {
		defer close(b.done)
		defer func() { close(cleared); <-clearerDone }()
		clear := func(keys []string) bool {
			cleared <- keys
			return true
		}
		for tombs := range b.ch {
			c.deleteBytesThen(ctx, tombs, clear)
		}
	}()
	return b
}

func (b *byteDeleter) send(tombs []meta.Tombstone) {
	if len(tombs) > 0 {
		b.ch <- tombs
	}
}

// wait returns once every batch sent is deleted and its tombstones cleared
// (or left to the next run if ctx ended).
func (b *byteDeleter) wait() {
	close(b.ch)
	<-b.done
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

// batch decides due reviews of one kind, in transactions that each claim up
// to the transaction's share (claims) and decide them as a set with their
// cascade, until none is due or BatchSize reviews were claimed. It returns
// how many reviews it decided (claims another transaction's locks made it
// leave for later do not count, so a round whose every claim was held ends).
//
// The bytes of the blob rows the batch's transactions deleted go to
// deleteBytes (the run's byteDeleter) once per batch (every deleteBatch keys
// at most), not after each transaction: on S3 one DeleteObjects request of a
// thousand keys costs what one DeleteObject does. Their tombstones are committed with the rows,
// so deleting the bytes a batch later changes nothing but when the space
// comes back.
func (c *Collector) batch(ctx context.Context, kind review.Kind, prefix string, deleteBytes func([]meta.Tombstone)) (Summary, int, error) {
	total := Summary{Deleted: map[review.Kind]int{}}
	var tombs []meta.Tombstone
	defer func() { deleteBytes(tombs) }()
	decide := c.decideClaims
	if kind == review.KindPolicy {
		decide = c.evaluateClaims
	}
	decided := 0
	for claimed := 0; claimed < c.opts.BatchSize; {
		s, n, freed, err := decide(ctx, kind, prefix, min(c.claims.size(), c.opts.BatchSize-claimed))
		total.Add(s)
		if tombs = append(tombs, freed...); len(tombs) >= deleteBatch {
			deleteBytes(tombs)
			tombs = nil
		}
		if err != nil {
			return total, decided, err
		}
		if n == 0 {
			break
		}
		claimed += n
		decided += n - s.Skipped
		if s.Skipped == n {
			break
		}
	}
	return total, decided, nil
}

// decideClaims claims up to n due reviews of kind and decides them, with
// their cascade, in one transaction. On a single writer it then decides
// further rounds of the same kind in the same transaction while no push
// waits (chainRounds). It returns how many reviews the transaction claimed
// and the tombstones it committed: the caller deletes their bytes (batch).
//
// A transaction whose decision fails is retried one review per transaction,
// so that the review at fault is found and rescheduled with backoff in a
// transaction of its own and one bad row never blocks the queue.
func (c *Collector) decideClaims(ctx context.Context, kind review.Kind, prefix string, n int) (Summary, int, []meta.Tombstone, error) {
	return c.decideRounds(ctx, kind, prefix, n, c.chainRounds(), 0)
}

// maxPreemptions is how many times in a row pushes may roll back a
// collector transaction (meta.Preemptible) before the next one is not
// preemptible: a push then waits for it, so the collection goes on under
// pushes that never leave a gap long enough for one round.
const maxPreemptions = 3

// preemptible reports whether the collector's transactions may be rolled
// back for a push: on a single writer that pushes of this process share
// (sqlstore on SQLite; docs/design/gc.md, "Preemptible collector
// transactions").
func (c *Collector) preemptible() bool {
	if c.opts.NoPreempt {
		return false
	}
	_, ok := c.store.(interface{ LastForeground() time.Time })
	return ok && singleWriter(c.store)
}

// splitStages reports whether a collector transaction decides one stage
// and records what it frees as reviews instead of deciding the cascade
// (docs/design/gc.md, "One stage per transaction under pushes"): on a
// preemptible store while pushes come — one arrived less than calmAfter
// ago, or pushes preempted the transaction's last attempt.
func (c *Collector) splitStages(preempted int) bool {
	if c.opts.splitAlways {
		return true
	}
	return c.preemptible() && (preempted > 0 || c.pushedLately())
}

// round is one set a collector transaction claimed and decided.
type round struct {
	p       *pass
	claimed int
	took    time.Duration
}

// chainRounds reports whether a collector transaction decides rounds
// while no push waits (docs/design/gc.md, "Chained rounds"): on a single
// writer that can tell, and with a hold longer than one budget.
func (c *Collector) chainRounds() bool {
	_, ok := c.store.(interface{ ForegroundWaiting() bool })
	return ok && singleWriter(c.store) && c.opts.TxHold > c.opts.TxBudget
}

// pushedLately reports whether a push of this process arrived less than
// calmAfter ago (sqlstore on SQLite: serve's own workers). Pushes that
// keep coming between the collector's transactions never wait for one, so
// calm alone would let transactions chain among them.
func (c *Collector) pushedLately() bool {
	lf, ok := c.store.(interface{ LastForeground() time.Time })
	return ok && time.Since(lf.LastForeground()) < calmAfter
}

// foregroundWaiting reports whether a push waits for the writer now.
func (c *Collector) foregroundWaiting() bool {
	fw, ok := c.store.(interface{ ForegroundWaiting() bool })
	return ok && fw.ForegroundWaiting()
}

// preempted counts the transactions pushes rolled back just before this
// one, which is preemptible while it is below maxPreemptions.
func (c *Collector) decideRounds(ctx context.Context, kind review.Kind, prefix string, n int, chain bool, preempted int) (Summary, int, []meta.Tombstone, error) {
	var rounds []round
	var claimed []meta.Review
	began := time.Now()
	var decided time.Time // when the last round ended
	uctx := ctx
	if preempted < maxPreemptions && c.preemptible() {
		uctx = meta.Preemptible(ctx)
	}
	split := c.splitStages(preempted)
	err := c.store.Update(uctx, func(tx meta.Tx) error {
		rounds, claimed = rounds[:0], claimed[:0] // Update may run fn again
		decided = time.Now()
		for want := n; ; want = min(c.claims.size(), c.opts.BatchSize) {
			r := round{p: c.newPass(tx, c.opts.Now())}
			r.p.split = split
			got, err := tx.ClaimDue(ctx, kind, r.p.now, prefix, want)
			if err != nil || len(got) == 0 {
				return err
			}
			claimed = append(claimed, got...)
			if err := r.p.decideClaimed(ctx, kind, got); err != nil {
				return err
			}
			roundBegan := decided
			decided = time.Now()
			r.claimed, r.took = len(got), decided.Sub(roundBegan)
			rounds = append(rounds, r)
			if !chain || len(got) < want || time.Since(began) >= c.opts.TxHold || ctx.Err() != nil || !c.claims.calm() || c.pushedLately() {
				return nil
			}
			if c.foregroundWaiting() {
				c.claims.sawPush()
				return nil
			}
			// The next round is sized on this one, which a push would
			// have waited for.
			c.claims.observe(r.claimed, r.took, false)
		}
	})
	if err != nil && errors.Is(err, meta.ErrPreempted) && ctx.Err() == nil {
		// Nothing was committed; every claim is still due. The push that
		// preempted it did not wait for it: the sizer halves once, here,
		// not again for the gate's record of a push during it.
		c.foregroundWaited()
		c.claims.preempted()
		c.metrics.preempted.Inc()
		c.log.DebugContext(ctx, "gc transaction preempted by a push", "kind", kind, "claimed", len(claimed),
			"rounds", len(rounds), "took", time.Since(began), "next_claims", c.claims.size())
		return c.decideRounds(ctx, kind, prefix, min(n, c.claims.size()), chain, preempted+1)
	}
	if err != nil {
		if ctx.Err() != nil || len(claimed) == 0 {
			return Summary{}, 0, nil, err
		}
		if len(claimed) > 1 {
			// Find the review at fault: one per transaction.
			total := Summary{Deleted: map[review.Kind]int{}}
			var tombs []meta.Tombstone
			for range claimed {
				s, m, freed, err := c.decideRounds(ctx, kind, prefix, 1, false, 0)
				total.Add(s)
				tombs = append(tombs, freed...)
				if err != nil || m == 0 {
					return total, len(claimed), tombs, err
				}
			}
			return total, len(claimed), tombs, nil
		}
		s, m, err := c.backoff(ctx, claimed[0], err)
		return s, m, nil, err
	}
	total := Summary{Deleted: map[review.Kind]int{}}
	if len(rounds) == 0 {
		return total, 0, nil, nil
	}
	// The last round counts the commit, which a push waits for too, and,
	// as before rounds, the wait for pushes before the transaction (the
	// first round then): a collector that had to let pushes go first
	// makes its next round smaller.
	commit := time.Since(decided)
	last := rounds[len(rounds)-1]
	took := time.Since(began)
	for _, r := range rounds[:len(rounds)-1] {
		took -= r.took
	}
	c.claims.observe(last.claimed, took, c.foregroundWaited())
	total.Transactions, total.Rounds = 1, len(rounds)
	var tombs []meta.Tombstone
	for _, r := range rounds {
		c.log.DebugContext(ctx, "gc round", "kind", kind, "claimed", r.claimed, "took", r.took, "deleted", r.p.summary.Deleted)
		total.Add(r.p.summary)
		tombs = append(tombs, r.p.tombs...)
		r.p.tombs = nil
		c.afterCommit(ctx, r.p)
	}
	c.log.DebugContext(ctx, "gc transaction", "kind", kind, "claimed", len(claimed), "rounds", len(rounds),
		"took", time.Since(began), "commit", commit, "split", split, "next_claims", c.claims.size())
	return total, len(claimed), tombs, nil
}

// foregroundWaited reports whether a push waited for the collector's last
// transaction (stores with a single writer: sqlstore on SQLite).
func (c *Collector) foregroundWaited() bool {
	fw, ok := c.store.(interface{ ForegroundWaited() bool })
	return ok && fw.ForegroundWaited()
}

// backoff reschedules a review whose decision failed.
func (c *Collector) backoff(ctx context.Context, r meta.Review, cause error) (Summary, int, error) {
	c.metrics.errors.Inc()
	delay := time.Duration(1<<min(r.Attempts, 10)) * time.Second
	delay += time.Duration(rand.Int64N(int64(delay)/2 + 1))
	c.log.Error("gc decision failed; retrying later", "kind", r.Kind, "object", r.Object, "attempts", r.Attempts+1, "retry_in", delay, "err", cause)
	c.activity.failed(fmt.Sprintf("deciding %s %s failed (attempt %d, retrying in %s): %v", r.Kind, r.Object, r.Attempts+1, delay.Round(time.Second), cause))
	err := c.store.Update(ctx, func(tx meta.Tx) error {
		return tx.RescheduleReview(ctx, meta.Review{Kind: r.Kind, Object: r.Object, ReviewAfter: c.opts.Now().Add(delay),
			Cause: r.Cause, Reason: "error: " + cause.Error()})
	})
	if err != nil {
		return Summary{}, 0, fmt.Errorf("rescheduling failed review: %w (after %v)", err, cause)
	}
	return Summary{Errors: 1, Deleted: map[review.Kind]int{}}, 1, nil
}

// afterCommit deletes the bytes of the blob rows the pass deleted (then
// their tombstones) unless the caller took them to delete with a batch's,
// the staging objects of collected uploads, and publishes the pass's
// tag ends and deletions.
func (c *Collector) afterCommit(ctx context.Context, p *pass) {
	c.deleteBytes(ctx, p.tombs)
	if len(p.aborts) > 0 && c.durable(ctx, "deleting the staging of %d collected uploads", len(p.aborts)) != nil {
		p.aborts = nil // sweep deletes them once their rows are gone for good
	}
	for _, id := range p.aborts {
		if err := c.blobs.UploadAbort(ctx, id); err != nil && !errors.Is(err, blob.ErrNotFound) {
			c.log.Warn("deleting upload staging failed; sweep will retry", "upload", id, "err", err)
		}
	}
	for _, e := range p.summary.Ends {
		c.log.Info("gc ended tag", "repository", e.Repository, "tag", e.Tag, "digest", e.Digest, "cause", e.Cause, "rule", e.Rule, "reason", e.Reason)
		c.metrics.ended(e)
	}
	for _, d := range p.summary.Deletions {
		c.log.Info("gc deleted", "kind", d.Kind, "repository", d.Repository, "digest", d.Digest, "tag", d.Tag, "size", d.Size, "cause", d.Cause, "reason", d.Reason)
		c.metrics.deleted(d)
	}
	c.activity.deleted(p.now, p.summary.Deletions)
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
	return c.deleteBytesThen(ctx, tombs, func(keys []string) bool {
		n, stopped := c.clearTombstones(ctx, keys)
		failed += n
		return !stopped
	})
}

// deleteBytesThen is deleteBytes with the clearing of each batch's
// tombstones left to clear, which reports whether to go on (false: ctx
// ended during it). The failures it returns are the bytes' only.
func (c *Collector) deleteBytesThen(ctx context.Context, tombs []meta.Tombstone, clear func(keys []string) bool) (failed int) {
	stopped := func(left int) int {
		c.log.Info("gc stopping: left tombstones for the next run", "count", left, "err", context.Cause(ctx))
		return failed + left
	}
	size := deleteBatch
	if c.opts.deleteBatch > 0 {
		size = c.opts.deleteBatch
	}
	// Every tombstone here was committed before the call: one sync covers
	// all the batches.
	if len(tombs) > 0 {
		if err := c.durable(ctx, "deleting the bytes of %d blobs", len(tombs)); err != nil {
			if ctx.Err() != nil {
				return stopped(len(tombs))
			}
			return len(tombs)
		}
	}
	for start := 0; start < len(tombs); start += size {
		if ctx.Err() != nil {
			return stopped(len(tombs) - start)
		}
		batch := tombs[start:min(start+size, len(tombs))]
		keys := make([]string, len(batch))
		for i, ts := range batch {
			keys[i] = ts.StorageKey
		}
		var done []string
		var interrupted, refused int
		var firstErr error
		for i, err := range blob.DeleteMany(ctx, c.blobs, keys) {
			switch {
			case err == nil:
				done = append(done, keys[i])
			case ctx.Err() != nil:
				interrupted++
			default:
				c.log.Warn("deleting blob bytes failed; the tombstone will be retried", "key", keys[i], "err", err)
				if refused == 0 {
					firstErr = err
				}
				refused++
			}
		}
		failed += refused
		if refused > 0 {
			c.activity.failed(fmt.Sprintf("deleting the bytes of %d of %d blobs failed; their tombstones are retried: %v", refused, len(batch), firstErr))
		}
		if len(done) > 0 && !clear(done) {
			interrupted += len(done)
		}
		if interrupted > 0 {
			return stopped(interrupted + len(tombs) - (start + len(batch)))
		}
	}
	return failed
}

// durable makes the commits so far durable (meta.Store.SyncCommitted)
// before the collector acts outside the database on what they wrote: a
// background commit may wait for no fsync, and bytes deleted for a
// tombstone a power loss then took back would leave its blob row naming
// nothing (docs/design/gc.md, "The collector's commits wait for no
// fsync"). A failure is logged and reported with what it holds back,
// described by format and args.
func (c *Collector) durable(ctx context.Context, format string, args ...any) error {
	err := c.store.SyncCommitted(ctx)
	if err != nil && ctx.Err() == nil {
		what := fmt.Sprintf(format, args...)
		c.log.Warn("gc: syncing its commits failed; holding back "+what+" for a later run", "err", err)
		c.activity.failed(fmt.Sprintf("syncing the collector's commits failed, so %s waits for a later run: %v", what, err))
	}
	return err
}

// clearTombstones deletes, in one transaction, the tombstones of keys whose
// bytes are gone. It returns how many it failed to clear (they stay: a
// later run deletes their bytes again, which is harmless, and then them),
// or stopped when ctx ended the transaction: its tombstones are then left
// like the bytes a stopping run does not delete, and the caller says so.
func (c *Collector) clearTombstones(ctx context.Context, keys []string) (failed int, stopped bool) {
	err := c.store.Update(ctx, func(tx meta.Tx) error {
		return tx.DeleteTombstones(ctx, keys)
	})
	switch {
	case err == nil:
		return 0, false
	case ctx.Err() != nil:
		return 0, true
	}
	c.log.Warn("clearing tombstones failed; they will be retried", "count", len(keys), "err", err)
	c.activity.failed(fmt.Sprintf("clearing %d tombstones of deleted bytes failed; they are retried: %v", len(keys), err))
	return len(keys), false
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
// report the bytes a collection would free now: a read-only transaction
// that holds no write lock and no row lock (dryrun.go), however long it
// takes.
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
