package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
)

// A fact "is there a row" is written (SELECT 1 … LIMIT 1), never EXISTS:
// PostgreSQL may plan an EXISTS in a select list as a hashed subplan, which
// reads and hashes the whole table (manifest, manifest_blob, manifest_label)
// at every execution — the first 10k-manifest benchmark on PostgreSQL took
// 262 s for that. A LIMIT 1 subquery is always an index probe per row.

// Locking first (PostgreSQL). A write transaction locks a set of candidates
// FOR UPDATE SKIP LOCKED in one statement and reads their facts in the
// next: under READ COMMITTED a statement's snapshot is taken when it starts,
// so facts read by the locking statement itself (its subqueries: a link's
// marker, a manifest's tags) could predate a writer that added an edge and
// committed while the statement waited to reach the row — the torture run
// that found it saw a link deleted 52 ms after an upload had committed its
// marker. The second statement starts after the locks are held: every
// writer that committed before is in its snapshot, and every later one
// waits for the collector (gc.md, "Deciding sets"). SQLite's single writer
// and a read-only dry run need no lock and read in one statement.

func (t *tx) locking() bool { return !t.readOnly && t.d.name() == "postgres" }

// keyTable names how a kind of candidate is found in its table: the key
// columns and the table expression reading a JSON set of keys.
type keyTable[K comparable] struct {
	table, cols string
	set         func(d dialect) string // keyList, keyIDs or keyPairs
	in          string                 // the key columns' match against the set
	encode      func(dialect, []K) string
	scan        func(*sql.Rows) ([]K, error)
}

// rows returns the keys of ks that have a row; with lock, only those this
// transaction could lock (on PostgreSQL; elsewhere ks itself).
func (kt keyTable[K]) rows(ctx context.Context, t *tx, ks []K, lock bool) ([]K, error) {
	if lock && !t.locking() {
		return ks, nil
	}
	q := `SELECT ` + kt.cols + ` FROM ` + kt.table + ` WHERE ` + kt.in + kt.set(t.d) + ` ORDER BY ` + kt.cols
	if lock {
		q += t.d.skipLocked()
	}
	rows, err := t.query(ctx, q, kt.encode(t.d, ks))
	if err != nil {
		return nil, fmt.Errorf("reading %s rows: %w", kt.table, err)
	}
	return kt.scan(rows)
}

func idTable(table string) keyTable[int64] {
	return keyTable[int64]{table: table, cols: "id", in: "id IN ", set: dialect.keyIDs,
		encode: func(_ dialect, ks []int64) string { return jsonKeys(ks) }, scan: scanInts}
}

func stringTable[K ~string](table, col string) keyTable[K] {
	return keyTable[K]{table: table, cols: col, in: col + " IN ", set: dialect.keyList,
		encode: func(_ dialect, ks []K) string { return jsonKeys(ks) },
		scan: func(rows *sql.Rows) ([]K, error) {
			ss, err := scanStrings(rows)
			out := make([]K, len(ss))
			for i, s := range ss {
				out[i] = K(s)
			}
			return out, err
		}}
}

func pairTable(table, col string) keyTable[meta.RepoDigest] {
	return keyTable[meta.RepoDigest]{table: table, cols: "repository_id, " + col, in: "(repository_id, " + col + ") IN ",
		set: func(d dialect) string { return `(SELECT r, d FROM ` + d.keyPairs() + ` k)` }, encode: pairsJSON, scan: scanPairs}
}

var (
	tagRows    = idTable("tag")
	labelRows  = idTable("label")
	uploadRows = stringTable[string]("upload", "id")
	blobRows   = stringTable[digest.Digest]("blob", "digest")
	manifests  = pairTable("manifest", "digest")
	links      = pairTable("repository_blob", "blob_digest")
	markers    = pairTable("uploaded_blob", "blob_digest")
)

// lockFacts is every Lock… method of meta.CollectTx: it locks the
// candidates of want it can (PostgreSQL), reads their facts with query
// (whose one parameter is the JSON set of locked keys, read where the query
// says {keys}) and names the candidates that exist but another transaction
// holds.
func lockFacts[K comparable, F any](ctx context.Context, t *tx, kt keyTable[K], want []K, query string,
	scan func(*sql.Rows) (F, K, error)) ([]F, []K, error) {
	if len(want) == 0 {
		return nil, nil, nil
	}
	keys, err := kt.rows(ctx, t, want, true)
	if err != nil {
		return nil, nil, err
	}
	rows, err := t.query(ctx, strings.Replace(query, "{keys}", kt.set(t.d), 1), kt.encode(t.d, keys))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the facts of %s rows: %w", kt.table, err)
	}
	defer rows.Close()
	var out []F
	locked := map[K]bool{}
	for rows.Next() {
		f, k, err := scan(rows)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, f)
		locked[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	rows.Close()
	if !t.locking() || len(locked) == len(want) {
		return out, nil, nil
	}
	// What was wanted and not read: absent, or held by another transaction.
	var missing []K
	for _, k := range want {
		if !locked[k] {
			missing = append(missing, k)
		}
	}
	skipped, err := kt.rows(ctx, t, missing, false)
	return out, skipped, err
}
