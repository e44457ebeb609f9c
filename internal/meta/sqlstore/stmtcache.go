package sqlstore

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
)

// SQLite prepares every statement it runs: modernc's driver parses and
// plans the text on each ExecContext/QueryContext and finalizes it after,
// which was a third of the collector's CPU. cachingConnector keeps each
// connection's prepared statements, keyed by their text, in a small LRU:
// the same thing pgx's stdlib driver does on PostgreSQL by default
// (QueryExecModeCacheStatement, 512 statements per connection), so the two
// backends behave alike and the tx helpers stay plain ExecContext and
// QueryContext calls. A prepared statement belongs to one connection, so a
// per-connection cache is the natural scope: the writer's single connection
// keeps every write statement prepared for its lifetime.
//
// database/sql serializes the use of a driver connection (every call and
// every Rows method holds the connection's lock), so a cachingConn needs no
// locking of its own.

// defaultStmtCache bounds the statements cached per connection: berth's
// store issues about 150 distinct texts (counting the lock-clause and
// IN-list variants); the bound only matters for text that varies with its
// arguments, which is then evicted least recently used first.
const defaultStmtCache = 256

// stmtStats counts, across a connector's connections, what the cache did.
type stmtStats struct {
	prepares atomic.Int64 // statements prepared for the cache
	hits     atomic.Int64 // executions of an already prepared statement
}

type cachingConnector struct {
	driver.Connector
	capacity int
	stats    *stmtStats
}

// innerConn is what cachingConn needs of the connection it wraps; modernc's
// SQLite connection provides all of it.
type innerConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// cachedStmt is what a cached statement must provide.
type cachedStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

func (c cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ic, ok := conn.(innerConn)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("sqlstore: driver connection %T cannot cache statements", conn)
	}
	return &cachingConn{innerConn: ic, capacity: c.capacity, stats: c.stats, byQuery: map[string]*list.Element{}, lru: list.New()}, nil
}

type cachingConn struct {
	innerConn
	capacity int
	stats    *stmtStats
	byQuery  map[string]*list.Element // of *cacheEntry
	lru      *list.List               // front: most recently used
}

type cacheEntry struct {
	query string
	stmt  cachedStmt
	// busy: rows of this statement are open. SQLite cannot run a statement
	// again before its rows are reset, so a second use meanwhile runs
	// unprepared.
	busy bool
	// evicted while busy: closed when its rows are.
	evicted bool
}

var (
	_ driver.Connector = cachingConnector{}
	_ innerConn        = (*cachingConn)(nil)
)

// cacheable: only the statements of transactions; schema changes, pragmas
// and scripts (a migration) run as they are.
func cacheable(q string) bool {
	q = strings.TrimLeft(q, " \t\r\n(")
	if len(q) < 6 {
		return false
	}
	switch strings.ToUpper(q[:4]) {
	case "SELE", "INSE", "UPDA", "DELE", "WITH":
		return true
	}
	return false
}

// entry returns the cached statement for q, preparing it on a miss, or nil
// when q is not to be cached or its statement is in use.
func (c *cachingConn) entry(ctx context.Context, q string) (*cacheEntry, error) {
	if c.capacity <= 0 || !cacheable(q) {
		return nil, nil
	}
	if el, ok := c.byQuery[q]; ok {
		e := el.Value.(*cacheEntry)
		if e.busy {
			return nil, nil
		}
		c.lru.MoveToFront(el)
		c.stats.hits.Add(1)
		return e, nil
	}
	ds, err := c.innerConn.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	st, ok := ds.(cachedStmt)
	if !ok {
		ds.Close()
		return nil, nil
	}
	c.stats.prepares.Add(1)
	e := &cacheEntry{query: q, stmt: st}
	c.byQuery[q] = c.lru.PushFront(e)
	for c.lru.Len() > c.capacity {
		c.evict(c.lru.Back())
	}
	return e, nil
}

func (c *cachingConn) evict(el *list.Element) {
	e := c.lru.Remove(el).(*cacheEntry)
	delete(c.byQuery, e.query)
	if e.busy {
		e.evicted = true
		return
	}
	_ = e.stmt.Close()
}

// BeginTx runs the BEGIN under the context beginContext carries, bounded
// by the transaction's deadline, so that a wait for SQLite's write lock
// ends with it; database/sql keeps the uncancellable context it was given
// for the transaction itself (Store.run). modernc's transaction also ends a
// COMMIT's wait for a lock with that context.
func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if bctx, ok := ctx.Value(beginCtxKey{}).(context.Context); ok {
		ctx = bctx
	}
	return c.innerConn.BeginTx(ctx, opts)
}

func (c *cachingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	e, err := c.entry(ctx, q)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return c.innerConn.ExecContext(ctx, q, args)
	}
	return e.stmt.ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	e, err := c.entry(ctx, q)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return c.innerConn.QueryContext(ctx, q, args)
	}
	rows, err := e.stmt.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	e.busy = true
	return &cachedRows{Rows: rows, e: e}, nil
}

// cachedRows frees its statement for the next use when closed.
type cachedRows struct {
	driver.Rows
	e *cacheEntry
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	if r.e != nil {
		r.e.busy = false
		if r.e.evicted {
			err = errors.Join(err, r.e.stmt.Close())
		}
		r.e = nil
	}
	return err
}

// Close finalizes the cached statements, then closes the connection.
func (c *cachingConn) Close() error {
	var errs []error
	for el := c.lru.Front(); el != nil; el = el.Next() {
		if e := el.Value.(*cacheEntry); !e.busy {
			errs = append(errs, e.stmt.Close())
		}
	}
	c.lru.Init()
	clear(c.byQuery)
	errs = append(errs, c.innerConn.Close())
	return errors.Join(errs...)
}
