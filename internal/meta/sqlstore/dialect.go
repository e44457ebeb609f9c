package sqlstore

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"

	"github.com/berth/berth/internal/datadir"
	"github.com/berth/berth/internal/meta"
)

// dialect is everything that differs between SQLite and PostgreSQL.
type dialect interface {
	name() string
	rebind(q string) string
	lockClause(l meta.Lock) string
	skipLocked() string
	retryable(err error) bool
	uniqueViolation(err error) bool
	// xactLock is a statement taking an exclusive lock on the key (class,
	// id) until the transaction ends, or "" when the writer is single
	// (SQLite), which already serializes every write transaction.
	xactLock() string
	// tableExists is a query counting the tables named by its one
	// parameter (0 or 1), so that reading the schema version creates
	// nothing.
	tableExists() string
	// keyList, keyIDs and keyPairs are table expressions over one JSON
	// parameter holding a batch of keys (docs/design/gc.md, "Deciding
	// sets"): a list of strings (column v), of integers (column v), of
	// (repository id, digest or tag name) pairs (columns r, d), encoded by
	// pairSet. One parameter keeps the statement's text the same whatever
	// the batch's size.
	keyList() string
	keyIDs() string
	keyPairs() string
	pairSet(ps []keyPair) string
}

// keyPair is one key of a keyPairs set.
type keyPair struct {
	r int64  // repository id
	d string // digest or tag name
}

type sqliteDialect struct{}

func (sqliteDialect) name() string                { return "sqlite" }
func (sqliteDialect) rebind(q string) string      { return q }
func (sqliteDialect) lockClause(meta.Lock) string { return "" }
func (sqliteDialect) skipLocked() string          { return "" }
func (sqliteDialect) xactLock() string            { return "" }
func (sqliteDialect) keyList() string             { return `(SELECT value AS v FROM json_each(?))` }
func (sqliteDialect) keyIDs() string              { return `(SELECT value AS v FROM json_each(?))` }

// keyPairs reads the pairs grouped by repository, {"id": ["d1", "d2"]}
// (pairSet): json_each gives every column as a scalar, the repository once
// for its keys. An array of [id, d] arrays read with json_extract per
// column, as PostgreSQL's, costs more than the statement's probes: json_each
// gives each element as text, rebuilt and parsed again for every column
// (callgrind, bench/RESULTS.md, issue 12). The outer jsonb_each gives each
// repository's array in SQLite's binary JSON, which the inner json_each
// reads without parsing it again.
func (sqliteDialect) keyPairs() string {
	return `(SELECT CAST(p.key AS INTEGER) AS r, c.value AS d FROM jsonb_each(?) p, json_each(p.value) c)`
}

func (sqliteDialect) pairSet(ps []keyPair) string {
	set := make(map[int64][]string)
	for _, p := range ps {
		set[p.r] = append(set[p.r], p.d)
	}
	b, err := json.Marshal(set)
	if err != nil {
		panic(err) // strings keyed by integers always marshal
	}
	return string(b)
}
func (sqliteDialect) tableExists() string {
	return `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`
}

const (
	sqliteBusy       = 5
	sqliteLocked     = 6
	sqliteConstraint = 19
	sqliteUnique     = 2067 // SQLITE_CONSTRAINT_UNIQUE
	sqlitePrimaryKey = 1555 // SQLITE_CONSTRAINT_PRIMARYKEY
)

func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

func (sqliteDialect) retryable(err error) bool {
	c := sqliteCode(err) & 0xff
	return c == sqliteBusy || c == sqliteLocked
}

func (sqliteDialect) uniqueViolation(err error) bool {
	c := sqliteCode(err)
	return c == sqliteUnique || c == sqlitePrimaryKey
}

type postgresDialect struct {
	rebound *reboundCache
}

func (postgresDialect) name() string { return "postgres" }

// rebind turns '?' placeholders into $1, $2, ... (statements never contain
// a literal '?'). The store's statements are a fixed set of texts, run
// again and again; each is rewritten once.
func (d postgresDialect) rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	if d.rebound != nil {
		if r, ok := d.rebound.m.Load(q); ok {
			return r.(string)
		}
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	r := b.String()
	if d.rebound != nil && d.rebound.n.Add(1) <= maxRebound {
		d.rebound.m.Store(q, r)
	}
	return r
}

// reboundCache memoizes rebind, up to maxRebound texts.
type reboundCache struct {
	m sync.Map // '?' text -> '$n' text
	n atomic.Int64
}

const maxRebound = 1024

func (postgresDialect) lockClause(l meta.Lock) string {
	switch l {
	case meta.LockShare:
		return " FOR SHARE"
	case meta.LockUpdate:
		return " FOR UPDATE"
	}
	return ""
}

func (postgresDialect) skipLocked() string { return " FOR UPDATE SKIP LOCKED" }

// keyList, keyIDs and keyPairs read the set as unnest(ARRAY(…)), so that
// the planner always expects a handful of keys and probes the table's index
// per key, whatever the table's size and statistics. The planner cannot see
// how many keys a JSON parameter holds: it takes any jsonb_array_elements
// for 100 rows, and once a table has about 10k rows (tag, label, review at
// 10k manifests) a hash semi join over a scan of the whole table costs less
// than 100 probes. A collector transaction then costs a scan per statement
// however few keys it claims, the claims shrink to one to meet the budget,
// and a backlog takes a scan per review (docs/design/gc.md, "Plans that do
// not depend on the table"). ANALYZE does not change that choice; an array
// that is not a constant is taken for 10 elements (unnest's row estimate),
// which puts the crossover at tables a scan of which costs about 10 probes.
// The set stays in FROM, never in the select list, which PostgreSQL plans
// as a hash semi join too.
func (postgresDialect) keyList() string {
	return `(SELECT e AS v FROM unnest(ARRAY(SELECT jsonb_array_elements_text(?::jsonb))) AS e)`
}
func (postgresDialect) keyIDs() string {
	return `(SELECT e::bigint AS v FROM unnest(ARRAY(SELECT jsonb_array_elements_text(?::jsonb))) AS e)`
}
func (postgresDialect) keyPairs() string {
	return `(SELECT (e->>0)::bigint AS r, e->>1 AS d FROM unnest(ARRAY(SELECT jsonb_array_elements(?::jsonb))) AS e)`
}

func (postgresDialect) pairSet(ps []keyPair) string {
	rows := make([][2]any, len(ps))
	for i, p := range ps {
		rows[i] = [2]any{p.r, p.d}
	}
	return jsonKeys(rows)
}

// xactLock is the two-key form of pg_advisory_xact_lock: released at commit
// or rollback, so it cannot leak past a transaction (and works behind a
// transaction-pooling proxy).
func (postgresDialect) xactLock() string { return "SELECT pg_advisory_xact_lock(?, ?)" }

// tableExists resolves the name as a query would, through search_path.
func (postgresDialect) tableExists() string {
	return `SELECT CASE WHEN to_regclass(?::text) IS NULL THEN 0 ELSE 1 END`
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func (postgresDialect) retryable(err error) bool {
	switch pgCode(err) {
	case "40001", "40P01": // serialization_failure, deadlock_detected
		return true
	case "23505": // unique_violation: a concurrent insert of the same key won
		return true
	case "23503": // foreign_key_violation: the row an edge points at was
		// deleted by a transaction that committed while this one waited
		// on its lock; the retry sees the truth.
		return true
	}
	return false
}

func (postgresDialect) uniqueViolation(err error) bool { return pgCode(err) == "23505" }

// pgTimeouts are the server's timeouts set to the transaction bound.
var pgTimeouts = []string{"statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"}

func openPostgres(dsn string, opts Options) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parsing postgres DSN: %w", err)
	}
	// pgx prepares each statement on first use and keeps it per connection
	// (QueryExecModeCacheStatement, 512 statements), unless the DSN chose
	// another default_query_exec_mode (e.g. for a transaction-pooling
	// proxy): the store's statement text never varies with its arguments'
	// values, so that cache hits.
	if opts.StatementCache < 0 {
		cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	}
	// The server ends what outlives the transaction bound too: a statement,
	// a lock wait, a transaction whose client went quiet. Migrations lift
	// these for their own transactions (Store.apply).
	ms := strconv.FormatInt(opts.TxTimeout.Milliseconds(), 10)
	for _, p := range pgTimeouts {
		if _, set := cfg.RuntimeParams[p]; !set {
			cfg.RuntimeParams[p] = ms
		}
	}
	// No JIT: berth's statements are short index probes, and a plan whose
	// cost estimate passes jit_above_cost (a batch's facts statement, whose
	// set of keys the planner guesses at 100 rows) spent tens of
	// milliseconds compiling at every execution. The DSN can turn it on.
	if _, set := cfg.RuntimeParams["jit"]; !set {
		cfg.RuntimeParams["jit"] = "off"
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(opts.MaxConns * 2)
	db.SetMaxIdleConns(opts.MaxConns)
	return db, nil
}

// sqlitePath is the database file a SQLite DSN names.
func sqlitePath(dsn string) string {
	path := strings.TrimPrefix(dsn, "sqlite://")
	path = strings.TrimPrefix(path, "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	return path
}

// envPageSize is a benchmark switch, not a setting: the page size of a
// database created by this open (an existing one keeps its own).
const envPageSize = "BERTH_SQLITE_PAGE_SIZE"

// setPageSize gives the empty database file at path the page size the
// benchmark switch envPageSize names, if it names one. The driver runs a
// DSN's pragmas in lexicographic order, journal_mode before page_size, and
// switching to WAL writes the first page, which fixes the size; so the
// size is set, and fixed, by a connection of its own before any other.
func setPageSize(path string) error {
	v := os.Getenv(envPageSize)
	if v == "" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 512 || n > 65536 || n&(n-1) != 0 {
		return fmt.Errorf("%s=%q: want a power of two from 512 to 65536", envPageSize, v)
	}
	c, err := sqlite.NewConnector("file:" + path + "?" + url.Values{"_pragma": {fmt.Sprintf("page_size(%d)", n)}}.Encode())
	if err != nil {
		return fmt.Errorf("opening sqlite %s: %w", path, err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	if _, err := db.Exec(`PRAGMA journal_mode=WAL`); err != nil {
		return fmt.Errorf("setting the page size of %s: %w", path, err)
	}
	return nil
}

// openSQLite opens the reader pool and the single writer connection.
func openSQLite(path string, opts Options, stats *stmtStats) (readers, writer *sql.DB, err error) {
	path = sqlitePath(path)
	if path == "" {
		return nil, nil, errors.New("sqlite: empty database path")
	}
	params := url.Values{}
	switch {
	case path == ":memory:":
	case opts.Existing:
		if _, err := os.Stat(path); err != nil {
			return nil, nil, fmt.Errorf("opening sqlite %s: %w", path, err)
		}
		// mode=rw: SQLite fails rather than creates a file deleted since.
		params.Set("mode", "rw")
	default:
		if dir := filepath.Dir(path); dir != "" {
			if err := datadir.MkdirAll(dir); err != nil {
				return nil, nil, fmt.Errorf("creating database directory: %w", err)
			}
		}
		// SQLite would create the file 0644; created here it is private, and
		// SQLite gives the -wal and -shm files the mode of the database file.
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, datadir.FileMode)
		if err != nil {
			return nil, nil, fmt.Errorf("creating sqlite %s: %w", path, err)
		}
		st, _ := f.Stat()
		f.Close()
		if st != nil && st.Size() == 0 {
			if err := setPageSize(path); err != nil {
				return nil, nil, err
			}
		}
	}
	params.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", opts.BusyTimeout.Milliseconds()))
	params.Add("_pragma", "journal_mode(WAL)")
	params.Add("_pragma", "foreign_keys(1)")
	// FULL: a commit is on disk before berth acknowledges a push.
	params.Add("_pragma", "synchronous(FULL)")
	base := "file:" + path + "?" + params.Encode()

	wbase := base + "&_txlock=immediate"
	if opts.WriterCache > 0 {
		// A negative cache_size is in KiB.
		wbase += "&" + url.Values{"_pragma": {fmt.Sprintf("cache_size(-%d)", max(1, opts.WriterCache>>10))}}.Encode()
	}
	frames := checkpointFrames
	if v := os.Getenv(envCheckpointFrames); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, nil, fmt.Errorf("%s=%q: want a number of WAL frames", envCheckpointFrames, v)
		}
		frames = n
	}
	wbase += "&" + url.Values{"_pragma": {fmt.Sprintf("wal_autocheckpoint(%d)", frames)}}.Encode()
	wc, err := sqlite.NewConnector(wbase)
	if err != nil {
		return nil, nil, fmt.Errorf("opening sqlite %s: %w", path, err)
	}
	writer = sql.OpenDB(cachingConnector{Connector: wc, capacity: opts.StatementCache, stats: stats})
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)

	rc, err := sqlite.NewConnector(base + "&_pragma=query_only(1)")
	if err != nil {
		writer.Close()
		return nil, nil, fmt.Errorf("opening sqlite %s: %w", path, err)
	}
	readers = sql.OpenDB(cachingConnector{Connector: rc, capacity: opts.StatementCache, stats: stats})
	readers.SetMaxOpenConns(opts.MaxConns)
	readers.SetMaxIdleConns(opts.MaxConns)
	return readers, writer, nil
}
