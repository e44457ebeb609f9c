// Package sqlstore is the one SQL implementation of meta.Store, over
// database/sql with modernc's pure-Go SQLite driver or pgx's stdlib driver.
// Statements are written once with '?' placeholders; a small dialect handles
// what differs: placeholders, row-lock clauses, SKIP LOCKED and the
// transaction mode (see dialect.go).
//
// SQLite: one writer connection whose transactions begin IMMEDIATE (the
// single writer lock, held from the first statement), and a pool of reader
// connections in WAL mode. Every Update therefore serializes with every
// other Update, in this process and in any other process on the same file
// (busy_timeout), which satisfies every row lock the meta contract asks for.
//
// PostgreSQL: READ COMMITTED transactions with explicit row locks; Update
// retries a transaction that hit a deadlock, a serialization failure or a
// unique violation of a concurrent insert.
//
// Both: statements are prepared once per connection and reused (see
// stmtcache.go), and every Update and View is bounded in time (TxTimeout).
package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth/berth/internal/meta"
)

// Options tune the store.
type Options struct {
	Logger *slog.Logger
	// MaxConns bounds the connection pool (readers on SQLite); default 8.
	MaxConns int
	// BusyTimeout is how long a SQLite writer waits for another process's
	// write lock; default 30s.
	BusyTimeout time.Duration
	// Existing opens only a SQLite database file that exists: neither it
	// nor its directory is created, and a missing one is an error wrapping
	// fs.ErrNotExist. The operations commands open this way; serve and
	// migrate create. No effect on PostgreSQL, whose database must exist.
	Existing bool
	// BesideServe says this process runs beside a `berth serve` on the
	// same SQLite file (`berth gc` and the other operations commands): its
	// background transactions then wait for the pushes of every process
	// through <db>-gate (filegate.go). serve leaves it false: its own
	// collector orders with its own pushes through the in-process gate,
	// whose hand-over wakes a push at once, where a lock's wake-up in a
	// busy process waited for a free thread (PUT p99 39 against 25 ms
	// during a 10k reclaim, bench/RESULTS.md, session 9). Foreground
	// transactions take the gate either way.
	BesideServe bool
	// TxTimeout bounds every Update and View, from its start to its commit
	// (retries and the wait for SQLite's writer included); default 10s, the
	// bound of GitLab's online collector. A transaction that outlives it is
	// rolled back and its error wraps context.DeadlineExceeded. A caller's
	// earlier deadline wins; meta.WithTxTimeout sets another bound for the
	// transactions of one context. On PostgreSQL the sessions also carry
	// statement_timeout, lock_timeout and idle_in_transaction_session_timeout
	// of the same value (unless the DSN sets them), so that the server ends
	// a stuck statement, lock wait or abandoned transaction too.
	TxTimeout time.Duration
	// StatementCache is how many prepared statements each SQLite connection
	// keeps (default 256; negative: none). PostgreSQL uses pgx's own cache
	// (512 per connection, set by the DSN's statement_cache_capacity and
	// default_query_exec_mode). The environment variable
	// BERTH_SQL_NOPREPARE=1 turns both off: a benchmark switch to measure
	// what preparing saves, not a setting.
	StatementCache int
	// WriterCache is the page cache of SQLite's writer connection, in
	// bytes (default DefaultWriterCache; negative: SQLite's own 2 MiB).
	// Every write transaction runs on that connection; a collector's
	// decides thousands of deletions spread over the digest-keyed
	// b-trees, and with a cache smaller than the pages one transaction
	// dirties SQLite spills them to the WAL and reads them back
	// (docs/design/gc.md, "The writer's page cache"). Memory grows to it
	// as the database does, then stays. The readers keep SQLite's default.
	WriterCache int64
}

// DefaultWriterCache is Options.WriterCache's default.
const DefaultWriterCache = 32 << 20

// DefaultTxTimeout is TxTimeout's default.
const DefaultTxTimeout = 10 * time.Second

// envNoPrepare is the benchmark switch described at Options.StatementCache.
const envNoPrepare = "BERTH_SQL_NOPREPARE"

// checkpointFrames is the writer connection's wal_autocheckpoint: the
// commit that takes the WAL past this many frames copies them back into
// the database file, and whoever waits for the writer waits for that
// copy. SQLite's 1,000 frames made every fourth collector transaction
// under pushes a checkpoint of ~4 MB, and the pushes behind it waited
// 20–40 ms; 100 frames makes each copy a tenth of that (docs/design/gc.md,
// "Small checkpoints").
const checkpointFrames = 100

// envCheckpointFrames is a benchmark switch, not a setting: the writer
// connection's wal_autocheckpoint, in frames, instead of checkpointFrames.
const envCheckpointFrames = "BERTH_SQLITE_CHECKPOINT_FRAMES"

// Store implements meta.Store.
type Store struct {
	d      dialect
	db     *sql.DB // readers (SQLite) or the pool (PostgreSQL)
	writer *sql.DB // the single writer connection (SQLite); == db on PostgreSQL
	log    *slog.Logger
	// gate orders SQLite's writers: foreground first (priority.go); nil
	// on PostgreSQL, whose writers do not share one connection.
	gate *writerGate
	// fgate is gate across processes (filegate.go): SQLite database files
	// only; bgGate says background transactions take it too
	// (Options.BesideServe).
	fgate  *fileGate
	bgGate bool
	// wal is the SQLite database's write-ahead log, which SyncCommitted
	// fsyncs ("" for :memory: and on PostgreSQL).
	wal string

	txTimeout time.Duration
	stmts     *stmtStats // SQLite's statement cache
	metrics   *writeMetrics
}

var _ meta.Store = (*Store)(nil)

// Open connects to dsn: a postgres:// or postgresql:// URL selects
// PostgreSQL; anything else is a SQLite database file path.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 8
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 30 * time.Second
	}
	if opts.TxTimeout <= 0 {
		opts.TxTimeout = DefaultTxTimeout
	}
	if opts.StatementCache == 0 {
		opts.StatementCache = defaultStmtCache
	}
	if opts.WriterCache == 0 {
		opts.WriterCache = DefaultWriterCache
	}
	if os.Getenv(envNoPrepare) == "1" {
		opts.StatementCache = -1
	}
	s := &Store{log: opts.Logger, txTimeout: opts.TxTimeout, stmts: &stmtStats{}, bgGate: opts.BesideServe, metrics: newWriteMetrics()}
	var err error
	if isPostgres(dsn) {
		s.d = postgresDialect{rebound: &reboundCache{}}
		s.db, err = openPostgres(dsn, opts)
		s.writer = s.db
	} else {
		s.d = sqliteDialect{}
		s.db, s.writer, err = openSQLite(dsn, opts, s.stmts)
		s.gate = newWriterGate()
		if path := sqlitePath(dsn); err == nil && path != ":memory:" {
			s.wal = path + "-wal"
			// The gate orders writers; without it they still take turns
			// in SQLite's busy handler, only less promptly.
			var gerr error
			if s.fgate, gerr = openFileGate(path); gerr != nil {
				s.log.Warn("sqlite: pushes will not go first across processes", "err", gerr)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	// The writer first: on SQLite it creates the file and switches it to WAL.
	for _, db := range []*sql.DB{s.writer, s.db} {
		if err := db.PingContext(ctx); err != nil {
			s.Close()
			return nil, fmt.Errorf("connecting to %s database: %w", s.d.name(), err)
		}
	}
	return s, nil
}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// ForegroundWaited reports whether a foreground write transaction arrived
// while a background one ran since the last call (SQLite; always false on
// PostgreSQL, whose writers do not share a connection). The collector
// shrinks its transactions while pushes keep arriving (gc's claimSizer).
func (s *Store) ForegroundWaited() bool {
	return s.gate != nil && s.gate.contended.Swap(false)
}

// LastForeground is when the last foreground write transaction of this
// process arrived (SQLite; zero on PostgreSQL or before the first). The
// collector chains rounds only when none arrived for a while.
func (s *Store) LastForeground() time.Time {
	if s.gate == nil {
		return time.Time{}
	}
	if ns := s.gate.last.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// ForegroundWaiting reports whether a foreground write transaction of
// this process or another waits for the writer now (SQLite; always false
// on PostgreSQL). A collector transaction decides its next round only
// while none does (docs/design/gc.md, "Chained rounds").
func (s *Store) ForegroundWaiting() bool {
	if s.gate == nil {
		return false
	}
	return s.gate.waiting() || (s.fgate != nil && s.fgate.waiting())
}

// Dialect names the backend: "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.d.name() }

// SingleWriter reports whether write transactions are serialized (SQLite):
// the collector then decides several reviews per transaction, since no
// row-lock deadlock is possible and every commit costs an fsync.
func (s *Store) SingleWriter() bool { return s.d.name() == "sqlite" }

// DB exposes the underlying pool for tests and tools that count rows.
func (s *Store) DB() *sql.DB { return s.db }

// Close closes every connection.
func (s *Store) Close() error {
	var errs []error
	if s.fgate != nil {
		errs = append(errs, s.fgate.close())
	}
	if s.writer != nil && s.writer != s.db {
		errs = append(errs, s.writer.Close())
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	return errors.Join(errs...)
}

const maxAttempts = 8

// Update runs fn in a read-write transaction, retrying on conflicts, all
// within the transaction time bound (Options.TxTimeout).
func (s *Store) Update(parent context.Context, fn func(tx meta.Tx) error) (err error) {
	asked := time.Now() // for the writer: writeMetrics
	// A background transaction's wait for foreground ones (priority.go)
	// comes before its time bound starts.
	if s.gate != nil {
		if meta.IsBackground(parent) {
			if err := s.gate.wait(parent); err != nil {
				return err
			}
			defer s.gate.background()()
			if meta.IsPreemptible(parent) {
				var stop context.CancelCauseFunc
				parent, stop = context.WithCancelCause(parent)
				defer stop(nil)
				defer s.gate.preemptible(func() { stop(meta.ErrPreempted) })()
				defer func() {
					if err != nil && errors.Is(context.Cause(parent), meta.ErrPreempted) {
						err = fmt.Errorf("%w (%w)", meta.ErrPreempted, err)
					}
				}()
			}
		} else {
			defer s.gate.enter()()
		}
	}
	// Across processes too (filegate.go): a background transaction's
	// wait comes before its bound, a foreground one's within it.
	if s.fgate != nil && s.bgGate && meta.IsBackground(parent) {
		h, err := s.fgate.background(parent)
		if err != nil {
			return err
		}
		defer h.release()
	}
	ctx, cancel := s.bound(parent)
	defer cancel()
	if s.fgate != nil && !meta.IsBackground(parent) {
		h, err := s.fgate.foreground(ctx)
		if err != nil {
			return boundError(ctx, err)
		}
		defer h.release()
	}
	for attempt := 1; ; attempt++ {
		var began time.Time
		err = s.run(parent, ctx, s.writer, false, fn, &began)
		s.metrics.observe(meta.IsBackground(parent), asked, began)
		if err == nil || ctx.Err() != nil || !s.retryable(err) || attempt == maxAttempts {
			break
		}
		s.log.Debug("retrying transaction", "attempt", attempt, "err", err)
		backoff := time.Duration(attempt*attempt) * time.Millisecond
		backoff += time.Duration(rand.Int64N(int64(backoff)))
		select {
		case <-ctx.Done():
			return boundError(ctx, ctx.Err())
		case <-time.After(backoff):
		}
		asked = time.Now()
	}
	if err := boundError(ctx, err); err != nil && ctx.Err() != nil {
		return err
	}
	if err != nil && s.retryable(err) && !errors.Is(err, meta.ErrConflict) {
		return fmt.Errorf("%w: %w", meta.ErrConflict, err)
	}
	return err
}

// txTimeoutError is the cause of a transaction's context its time bound
// ended.
type txTimeoutError struct{ bound time.Duration }

func (e txTimeoutError) Error() string {
	return fmt.Sprintf("transaction exceeded its time bound of %v and was rolled back", e.bound)
}

func (e txTimeoutError) Unwrap() error { return context.DeadlineExceeded }

// bound gives ctx the transaction time bound: the store's, or the one
// meta.WithTxTimeout set; an earlier deadline of ctx stays.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	d := s.txTimeout
	if o, ok := meta.TxTimeoutFrom(ctx); ok {
		d = o
	}
	return context.WithTimeoutCause(ctx, d, txTimeoutError{bound: d})
}

// pastBound reports whether the time bound (not the caller) ended ctx.
func pastBound(ctx context.Context) bool {
	var te txTimeoutError
	return errors.As(context.Cause(ctx), &te)
}

type beginCtxKey struct{}

// beginContext is what BeginTx is given: ctx without its cancellation (see
// run), carrying ctx for the driver's BEGIN alone (cachingConn.BeginTx).
func beginContext(ctx context.Context) context.Context {
	return context.WithValue(context.WithoutCancel(ctx), beginCtxKey{}, ctx)
}

// boundError names the time bound in err when it is what ended ctx.
func boundError(ctx context.Context, err error) error {
	var te txTimeoutError
	if err == nil || errors.As(err, &te) {
		return err
	}
	if cause := context.Cause(ctx); errors.As(cause, &te) {
		return fmt.Errorf("%w: %w", cause, err)
	}
	return err
}

func (s *Store) retryable(err error) bool {
	return errors.Is(err, meta.ErrConflict) || s.d.retryable(err)
}

// View runs fn in a read-only transaction that reads one snapshot: every
// statement sees the database as of the first. Readers decide from several
// reads (a blob's link, then whether a review of it is pending); under
// PostgreSQL's default READ COMMITTED each statement had its own snapshot,
// and a collector committing between two of them could make a read see a
// link and no review of it — and skip the revival that protects what it
// read. PostgreSQL runs it REPEATABLE READ (a read-only transaction there
// never fails to serialize); a SQLite read transaction is a snapshot already.
//
// A View is bounded in time like an Update (Options.TxTimeout).
func (s *Store) View(parent context.Context, fn func(tx meta.Tx) error) error {
	ctx, cancel := s.bound(parent)
	defer cancel()
	return boundError(ctx, s.run(parent, ctx, s.db, true, fn, nil))
}

// run runs fn in one transaction on db. parent is the caller's context,
// which fn's statements are given; ctx is parent with the time bound. It
// sets *began, if given, to when the transaction began.
func (s *Store) run(parent, ctx context.Context, db *sql.DB, readOnly bool, fn func(tx meta.Tx) error, began *time.Time) (err error) {
	opts := &sql.TxOptions{}
	if readOnly && s.d.name() == "postgres" {
		opts = &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
	}
	// The transaction's own context is never cancelled by the caller's:
	// database/sql would then roll it back from a goroutine of its own,
	// racing the statement in flight, and a PostgreSQL session was seen
	// left idle in transaction with the collector's claimed rows locked
	// and no Go code using it (TestScenario03ReuploadDuringDelete). The
	// statements run under the caller's context (a cancellation ends the
	// one in flight), and the deferred Rollback or Commit below always
	// runs, on a live connection.
	//
	// The time bound still covers the waits before the transaction: for a
	// connection (SQLite's one writer) here, and for SQLite's write lock in
	// BEGIN IMMEDIATE, which the SQLite connection runs under the bounded
	// context (beginContext, cachingConn.BeginTx); it ends the transaction
	// at its commit (below) and its statements through stmtCtx.
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	defer conn.Close()
	if db == s.writer && !readOnly && s.d.name() == "sqlite" && meta.IsBackground(parent) {
		if err := relaxSync(ctx, conn); err != nil {
			return err
		}
		defer restoreSync(ctx, conn, s.log)
	}
	sqlTx, err := conn.BeginTx(beginContext(ctx), opts)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	if began != nil {
		*began = time.Now()
	}
	if d, ok := meta.TxTimeoutFrom(ctx); ok && d != s.txTimeout && s.d.name() == "postgres" {
		// The sessions' server-side timeouts are the store's bound; this
		// transaction has another.
		if err := setLocalTimeouts(ctx, sqlTx, d); err != nil {
			_ = sqlTx.Rollback()
			return err
		}
	}
	t := &tx{d: s.d, tx: sqlTx, readOnly: readOnly, parent: parent, ctx: ctx}
	defer func() {
		defer t.release()
		if p := recover(); p != nil {
			_ = sqlTx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = sqlTx.Rollback()
			return
		}
		// The counters a closure left unapplied go last, before the commit.
		if _, err = t.ApplyUsage(ctx); err != nil {
			_ = sqlTx.Rollback()
			return
		}
		if pastBound(ctx) {
			_ = sqlTx.Rollback()
			err = fmt.Errorf("committing transaction: %w", ctx.Err())
			return
		}
		if cerr := sqlTx.Commit(); cerr != nil {
			err = fmt.Errorf("committing transaction: %w", cerr)
		}
	}()
	return fn(t)
}

// relaxSync lets the background transaction about to begin on SQLite's
// writer connection commit without an fsync of the WAL: its frames reach
// the disk with the next foreground commit, checkpoint or SyncCommitted
// (docs/design/gc.md, "The collector's commits wait for no fsync").
func relaxSync(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous=NORMAL"); err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	return nil
}

// restoreSync gives the writer connection back its FULL synchronous
// setting after a background transaction, committed or not. The
// connection is every push's: if that fails, it is discarded (the next one
// opens with FULL) rather than let a push commit without an fsync.
func restoreSync(ctx context.Context, conn *sql.Conn, log *slog.Logger) {
	if _, err := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA synchronous=FULL"); err != nil {
		log.Warn("sqlite: restoring synchronous=FULL failed; discarding the writer connection", "err", err)
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
}

// SyncCommitted makes every commit so far durable. On SQLite, background
// transactions commit without an fsync (relaxSync): this fsyncs the WAL
// they appended to, whichever process wrote it. Frames a checkpoint copied
// back were fsynced by it before the WAL could start over, and with no WAL
// file everything is in the database file, fsynced by the last checkpoint.
// On PostgreSQL every commit already waited for its WAL flush.
func (s *Store) SyncCommitted(ctx context.Context) error {
	if s.wal == "" {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.Open(s.wal)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlite: syncing committed transactions: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sqlite: syncing committed transactions: %w", err)
	}
	return nil
}

// setLocalTimeouts sets PostgreSQL's timeouts (pgTimeouts) to d for the
// rest of the transaction; 0 lifts them.
func setLocalTimeouts(ctx context.Context, sqlTx *sql.Tx, d time.Duration) error {
	ms := strconv.FormatInt(d.Milliseconds(), 10)
	if _, err := sqlTx.ExecContext(ctx, `SELECT set_config($1, $4, true), set_config($2, $4, true), set_config($3, $4, true)`,
		pgTimeouts[0], pgTimeouts[1], pgTimeouts[2], ms); err != nil {
		return fmt.Errorf("setting transaction timeouts: %w", err)
	}
	return nil
}

// tx implements meta.Tx over one *sql.Tx.
type tx struct {
	d        dialect
	tx       *sql.Tx
	readOnly bool
	// parent is the context Update or View was given, ctx the same with
	// the transaction's time bound (Options.TxTimeout).
	parent, ctx context.Context

	mu    sync.Mutex
	stops []func() // of the contexts bound to ctx by stmtCtx

	// usage is what the transaction's writes changed in the usage
	// counters, not yet applied (usage.go); repoNS the namespaces of the
	// repositories it read.
	usage  *usageDelta
	repoNS map[int64]int64
}

var _ meta.Tx = (*tx)(nil)

// stmtCtx is the context a statement runs under: the one its caller gave,
// ended by the transaction's time bound too, so that the driver interrupts
// a statement (a lock wait, a long scan) the bound outlived. Callers nearly
// always pass the context they gave Update or View, or one that differs
// from it only by values (same Done channel, as with meta.WithTxTimeout):
// the driver reads no values, so the statement runs under the bounded
// context. Any other is joined to the bound until the transaction ends.
func (t *tx) stmtCtx(ctx context.Context) context.Context {
	if ctx == t.parent || ctx == t.ctx || ctx.Done() == t.parent.Done() {
		return t.ctx
	}
	joined, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(t.ctx, func() { cancel(context.Cause(t.ctx)) })
	t.mu.Lock()
	t.stops = append(t.stops, func() { stop(); cancel(nil) })
	t.mu.Unlock()
	return joined
}

// release ends the contexts stmtCtx joined to the bound.
func (t *tx) release() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, stop := range t.stops {
		stop()
	}
	t.stops = nil
}

func (t *tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(t.stmtCtx(ctx), t.d.rebind(q), args...)
}

func (t *tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(t.stmtCtx(ctx), t.d.rebind(q), args...)
}

func (t *tx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(t.stmtCtx(ctx), t.d.rebind(q), args...)
}

// lock returns the row-lock clause for a read; readers never lock.
func (t *tx) lock(l meta.Lock) string {
	if t.readOnly {
		return ""
	}
	return t.d.lockClause(l)
}

// exists runs a "SELECT 1 ... LIMIT 1" query.
func (t *tx) exists(ctx context.Context, q string, args ...any) (bool, error) {
	var one int
	err := t.queryRow(ctx, q, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// notFound maps sql.ErrNoRows to meta.ErrNotFound with a message.
func notFound(err error, format string, args ...any) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), meta.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
}

// Times are stored as unix microseconds.
func us(t time.Time) int64 { return t.UnixMicro() }

func fromUS(v int64) time.Time { return time.UnixMicro(v).UTC() }

func nullUS(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromNullUS(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromUS(v.Int64)
	return &t
}
