package sqlstore

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Checkpoints off the commit path (SQLite).
//
// In WAL mode SQLite copies committed pages back into the database file in
// a checkpoint, which by default runs in the connection whose commit took
// the WAL past 1,000 frames, before that commit returns. berth has one
// writer connection, so every write transaction, a push's included, waited
// for it; and a collector's chained transaction, which writes thousands of
// frames, paid one at nearly every commit (docs/design/gc.md, "Where a
// transaction's time goes now"). Here a goroutine with a connection of its
// own runs PASSIVE checkpoints, which neither wait for nor block the writer
// or readers, a short while after commits; the writer keeps SQLite's
// automatic checkpoint only as a bound, at walBoundFrames.
//
// Why the bound: SQLite starts the WAL over only when a write transaction
// begins with every frame already copied. Under back-to-back pushes
// another commit nearly always lands while a background checkpoint runs,
// so the WAL would grow for as long as pushes keep coming. Past
// walBoundFrames the writer checkpoints itself after its commit, as it
// used to at 1,000 frames (cheaply: the background has copied most of
// them), and its next transaction starts the WAL over.

// walBoundFrames is the writer's wal_autocheckpoint: the WAL's length, in
// frames (a page each, 4 KiB by default), past which the writer
// checkpoints after its own commit. SQLite's default is 1,000. A variable
// for the tests only.
var walBoundFrames = 8000

const (
	// checkpointDelay is how long after a commit the background
	// checkpoint starts: the commits of that while share one checkpoint
	// and its two fsyncs (at most 1/checkpointDelay checkpoints a second).
	checkpointDelay = 200 * time.Millisecond
)

// checkpointer runs PASSIVE checkpoints on its own connection after
// commits (kick).
type checkpointer struct {
	db    *sql.DB
	log   *slog.Logger
	delay time.Duration

	kicks    chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	done     sync.WaitGroup
	runs     atomic.Int64 // checkpoints run (tests)
	failed   atomic.Int64
	// The WAL's length and how much of it was copied back, as the last
	// checkpoint that ran reported them (tests).
	lastFrames, lastCopied atomic.Int64
}

func newCheckpointer(db *sql.DB, log *slog.Logger, delay time.Duration) *checkpointer {
	c := &checkpointer{db: db, log: log, delay: delay, kicks: make(chan struct{}, 1), stop: make(chan struct{})}
	c.done.Go(c.loop)
	return c
}

// kick tells the checkpointer that a write transaction committed; it never
// blocks.
func (c *checkpointer) kick() {
	select {
	case c.kicks <- struct{}{}:
	default:
	}
}

func (c *checkpointer) loop() {
	t := time.NewTimer(0)
	<-t.C
	for {
		select {
		case <-c.stop:
			return
		case <-c.kicks:
		}
		t.Reset(c.delay)
		select {
		case <-c.stop:
			t.Stop()
			return
		case <-t.C:
		}
		c.checkpoint()
	}
}

// checkpoint copies what it can of the WAL into the database file. A
// failure is logged (the first, then every 100th) and left to the next
// commit's kick or to the writer's bound: nothing is lost by a checkpoint
// that did not run, the WAL only stays longer.
func (c *checkpointer) checkpoint() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var busy, frames, copied int64
	err := c.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied)
	defer c.runs.Add(1)
	if err != nil {
		if n := c.failed.Add(1); n == 1 || n%100 == 0 {
			c.log.Warn("sqlite: background checkpoint failed; the writer's own checkpoint bounds the WAL meanwhile", "err", err, "failures", n)
		}
		return
	}
	c.lastFrames.Store(frames)
	c.lastCopied.Store(copied)
	c.log.Debug("sqlite: background checkpoint", "wal_frames", frames, "copied", copied)
}

// close stops the goroutine, then closes its connection. Store.Close may
// call it twice.
func (c *checkpointer) close() error {
	c.stopOnce.Do(func() { close(c.stop) })
	c.done.Wait()
	return c.db.Close()
}
