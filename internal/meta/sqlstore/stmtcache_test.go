package sqlstore

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"modernc.org/sqlite"
)

// openCaching opens a SQLite database of one connection whose statements
// are cached, up to capacity, with a table t of the rows 1, 2, 3.
func openCaching(t *testing.T, capacity int) (*sql.Conn, *stmtStats) {
	t.Helper()
	c, err := sqlite.NewConnector("file:" + filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	stats := &stmtStats{}
	db := sql.OpenDB(cachingConnector{Connector: c, capacity: capacity, stats: stats})
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	for _, q := range []string{`CREATE TABLE t (x INTEGER)`, `INSERT INTO t VALUES (1), (2), (3)`} {
		if _, err := conn.ExecContext(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	stats.prepares.Store(0) // what setting up t did
	stats.hits.Store(0)
	return conn, stats
}

// query runs q on conn and returns its rows.
func query(t *testing.T, conn *sql.Conn, q string, args ...any) *sql.Rows {
	t.Helper()
	rows, err := conn.QueryContext(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return rows
}

func readAll(t *testing.T, rows *sql.Rows) []int {
	t.Helper()
	defer rows.Close()
	var out []int
	for rows.Next() {
		var x int
		if err := rows.Scan(&x); err != nil {
			t.Fatal(err)
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// TestStatementCacheReuses: a statement is prepared once per connection and
// reused, whatever its arguments.
func TestStatementCacheReuses(t *testing.T) {
	conn, stats := openCaching(t, 8)
	ctx := t.Context()
	for i := range 20 {
		if got := readAll(t, query(t, conn, `SELECT x FROM t WHERE x >= ? ORDER BY x`, i%3+1)); len(got) != 3-i%3 {
			t.Fatalf("x >= %d: got %v", i%3+1, got)
		}
		if _, err := conn.ExecContext(ctx, `UPDATE t SET x = x WHERE x = ?`, i); err != nil {
			t.Fatal(err)
		}
	}
	if p, h := stats.prepares.Load(), stats.hits.Load(); p != 2 || h != 38 {
		t.Errorf("got %d prepares and %d hits, want 2 and 38", p, h)
	}
}

// TestStatementCacheOpenRows: a statement whose rows are still open runs
// again unprepared rather than resetting them, and a statement evicted
// while its rows are open is closed with them.
func TestStatementCacheOpenRows(t *testing.T) {
	conn, stats := openCaching(t, 1)
	const q = `SELECT x FROM t ORDER BY x`
	outer := query(t, conn, q)
	if !outer.Next() {
		t.Fatal("no first row")
	}
	var first int
	if err := outer.Scan(&first); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, query(t, conn, q)); sum(got) != 6 {
		t.Errorf("the same query while its rows are open: got %v, want [1 2 3]", got)
	}
	// Evicts q's statement (capacity 1) while outer still reads it.
	if got := readAll(t, query(t, conn, `SELECT x FROM t WHERE x > ?`, 1)); sum(got) != 5 {
		t.Errorf("another query: got %v, want [2 3]", got)
	}
	if rest := readAll(t, outer); first+sum(rest) != 6 {
		t.Errorf("rows of an evicted statement: got %d then %v, want 1 then [2 3]", first, rest)
	}
	if got := readAll(t, query(t, conn, q)); sum(got) != 6 {
		t.Errorf("the query again: got %v, want [1 2 3]", got)
	}
	if p := stats.prepares.Load(); p != 3 {
		t.Errorf("got %d prepares, want 3 (q, the other, q again after its eviction)", p)
	}
}

// TestStatementCacheOff: a negative capacity prepares nothing.
func TestStatementCacheOff(t *testing.T) {
	conn, stats := openCaching(t, -1)
	for range 3 {
		if got := readAll(t, query(t, conn, `SELECT x FROM t`)); len(got) != 3 {
			t.Fatalf("got %v", got)
		}
	}
	if p, h := stats.prepares.Load(), stats.hits.Load(); p != 0 || h != 0 {
		t.Errorf("got %d prepares and %d hits, want none", p, h)
	}
}
