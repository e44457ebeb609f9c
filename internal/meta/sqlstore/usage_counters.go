package sqlstore

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
)

// The per-blob counter tables of the usage counters (docs/design/usage.md,
// "Counters"): usage_repository_blob, usage_namespace_blob and usage_blob,
// one level a statement (or, on SQLite, one plain UPDATE a row).

// jsonRows is a table expression over one JSON parameter, an array of
// arrays, with columns c0..c(n-1) (as text or bigint by kinds: 't' or 'i'),
// in the array's order. On SQLite the elements are read by jsonb_each,
// whose value of an array is SQLite's binary JSON: each json_extract reads
// its column from it directly. json_each would give each element as text,
// rebuilt and parsed again for every column (six times a row of
// upsertUsageRows; callgrind, bench/RESULTS.md, issue 12).
func (t *tx) jsonRows(kinds string) string {
	var cols []string
	for i, k := range kinds {
		if t.d.name() == "postgres" {
			c := fmt.Sprintf("e->>%d", i)
			if k == 'i' {
				c = "(" + c + ")::bigint"
			}
			cols = append(cols, fmt.Sprintf("%s AS c%d", c, i))
		} else {
			cols = append(cols, fmt.Sprintf("json_extract(value, '$[%d]') AS c%d", i, i))
		}
	}
	if t.d.name() == "postgres" {
		return `(SELECT ` + strings.Join(cols, ", ") + `, n FROM jsonb_array_elements(?::jsonb) WITH ORDINALITY AS x(e, n))`
	}
	return `(SELECT ` + strings.Join(cols, ", ") + `, key AS n FROM jsonb_each(?))`
}

// counterStep is one level of transitions: the change of each key's count,
// and its count after the statement, or kept: the count was above zero and
// stays so (updateInPlace), no transition.
type counterStep struct {
	id    int64
	d     digest.Digest
	n     int64
	after int64
	kept  bool
}

// crossed reports whether the count went from none to some (1) or from some
// to none (-1).
func (c counterStep) crossed() int64 {
	if c.kept {
		return 0
	}
	before := c.after - c.n
	switch {
	case before <= 0 && c.after > 0:
		return 1
	case before > 0 && c.after <= 0:
		return -1
	}
	return 0
}

// inPlaceSteps bounds the changes a SQLite transaction applies one plain
// UPDATE at a time (updateInPlace) before the set-based statements.
const inPlaceSteps = 8

// inPlace reports whether n changes of one level are applied one UPDATE at
// a time. On SQLite a statement costs its work and no round trip, and an
// upsert over json_each with RETURNING costs several plain UPDATEs (a
// manifest PUT's two edges and three usage rows: about 250 µs against 60);
// a single writer also makes the lock order moot. PostgreSQL keeps one
// statement per level: a statement there is a round trip, and its row locks
// are taken in the order of the sorted set.
func (t *tx) inPlace(n int) bool { return t.d.name() != "postgres" && n <= inPlaceSteps }

// applyCounters applies the changes of one per-blob counter table (steps
// sorted by key): those that leave a row above zero in place, the others
// set-based, filling in each step's count after and deleting the rows that
// reached zero (upsertCounters: an upsert then a delete on PostgreSQL; on
// SQLite applyCountersSQLite's read and writes). idCol is "" for
// usage_blob, keyed by digest alone.
func (t *tx) applyCounters(ctx context.Context, table, idCol, countCol string, steps []counterStep) error {
	if len(steps) == 0 {
		return nil
	}
	rest, err := t.updateInPlace(ctx, table, idCol, countCol, steps)
	if err != nil {
		return err
	}
	return t.upsertCounters(ctx, table, idCol, countCol, rest)
}

// updateInPlace adds each change to its row with a plain UPDATE when the
// row's count is above zero and stays so (no transition), marking the step
// kept; it returns the steps it did not apply. On PostgreSQL, or for more
// than inPlaceSteps changes, it applies none.
func (t *tx) updateInPlace(ctx context.Context, table, idCol, countCol string, steps []counterStep) ([]*counterStep, error) {
	rest := make([]*counterStep, 0, len(steps))
	if !t.inPlace(len(steps)) {
		for i := range steps {
			rest = append(rest, &steps[i])
		}
		return rest, nil
	}
	key := `blob_digest = ?`
	if idCol != "" {
		key = idCol + ` = ? AND ` + key
	}
	q := `UPDATE ` + table + ` SET ` + countCol + ` = ` + countCol + ` + ? WHERE ` + key + ` AND ` + countCol + ` > 0 AND ` + countCol + ` + ? > 0`
	for i := range steps {
		s := &steps[i]
		args := []any{s.n, s.d.String(), s.n}
		if idCol != "" {
			args = []any{s.n, s.id, s.d.String(), s.n}
		}
		kept, err := t.updatedOne(ctx, table, q, args...)
		if err != nil {
			return nil, err
		}
		if kept {
			s.kept = true
		} else {
			rest = append(rest, s)
		}
	}
	return rest, nil
}

// upsertCounters upserts the changes of one per-blob counter table in one
// statement, fills in each step's count after, and deletes the rows that
// reached zero.
func (t *tx) upsertCounters(ctx context.Context, table, idCol, countCol string, steps []*counterStep) error {
	if len(steps) == 0 {
		return nil
	}
	if t.d.name() != "postgres" {
		return t.applyCountersSQLite(ctx, table, idCol, countCol, steps)
	}
	var q, del string
	var arg string
	if idCol == "" {
		rows := make([][2]any, len(steps))
		for i, s := range steps {
			rows[i] = [2]any{s.d.String(), s.n}
		}
		arg = jsonKeys(rows)
		q = `INSERT INTO ` + table + ` (blob_digest, ` + countCol + `) SELECT c0, c1 FROM ` + t.jsonRows("ti") + ` k WHERE true ORDER BY n
			ON CONFLICT (blob_digest) DO UPDATE SET ` + countCol + ` = ` + table + `.` + countCol + ` + excluded.` + countCol + `
			RETURNING 0, blob_digest, ` + countCol
		del = `DELETE FROM ` + table + ` WHERE ` + countCol + ` = 0 AND blob_digest IN ` + t.d.keyList()
	} else {
		rows := make([][3]any, len(steps))
		for i, s := range steps {
			rows[i] = [3]any{s.id, s.d.String(), s.n}
		}
		arg = jsonKeys(rows)
		q = `INSERT INTO ` + table + ` (` + idCol + `, blob_digest, ` + countCol + `) SELECT c0, c1, c2 FROM ` + t.jsonRows("iti") + ` k WHERE true ORDER BY n
			ON CONFLICT (` + idCol + `, blob_digest) DO UPDATE SET ` + countCol + ` = ` + table + `.` + countCol + ` + excluded.` + countCol + `
			RETURNING ` + idCol + `, blob_digest, ` + countCol
		del = `DELETE FROM ` + table + ` WHERE ` + countCol + ` = 0 AND (` + idCol + `, blob_digest) IN (SELECT r, d FROM ` + t.d.keyPairs() + ` k)`
	}
	rows, err := t.query(ctx, q, arg)
	if err != nil {
		return fmt.Errorf("updating %s: %w", table, err)
	}
	after := make(map[meta.RepoDigest]int64, len(steps))
	for rows.Next() {
		var k meta.RepoDigest
		var v int64
		if err := rows.Scan(&k.RepoID, &k.Digest, &v); err != nil {
			rows.Close()
			return fmt.Errorf("updating %s: %w", table, err)
		}
		after[k] = v
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("updating %s: %w", table, err)
	}
	var zero []meta.RepoDigest
	for _, s := range steps {
		k := meta.RepoDigest{RepoID: s.id, Digest: s.d}
		s.after = after[k]
		if s.after == 0 {
			zero = append(zero, k)
		}
	}
	if len(zero) == 0 {
		return nil
	}
	if idCol == "" {
		ds := make([]string, len(zero))
		for i, k := range zero {
			ds[i] = k.Digest.String()
		}
		arg = jsonKeys(ds)
	} else {
		arg = pairsJSON(t.d, zero)
	}
	if _, err := t.exec(ctx, del, arg); err != nil {
		return fmt.Errorf("deleting %s rows at zero: %w", table, err)
	}
	return nil
}

// applyCountersSQLite is applyCounters on SQLite: it reads the rows the
// changes name, works out each count after in Go, and writes only what
// changes, each kind of write one statement when there is any: a delete of
// the rows reaching zero, an update of the others, an insert of the keys
// not there (counterStatements). A collector transaction, which counts
// every row it touches down to zero, thus runs a read and a delete; a push
// of new blobs a read and an insert. The upsert this replaces (INSERT … ON
// CONFLICT DO UPDATE … RETURNING, then the delete) cost more than the rows
// it changed: a conflict on every row, and a temporary b-tree for the
// RETURNING at every execution. A single writer makes the read and the
// writes one atomic step (no other transaction can insert a key between
// them) and the lock order of the sorted set moot (usage.md, "Hot rows and
// lock order", concerns PostgreSQL). The sets are JSON objects,
// {"id": {"digest": n}} ({"digest": n} for usage_blob), whose members
// json_each reads as scalars: one parse per id, not one per column per row.
func (t *tx) applyCountersSQLite(ctx context.Context, table, idCol, countCol string, steps []*counterStep) error {
	st := counterStatementsSQLite(table, idCol, countCol)
	set, err := counterSet(idCol, steps, func(s *counterStep) int64 { return s.n })
	if err != nil {
		return fmt.Errorf("updating %s: %w", table, err)
	}
	rows, err := t.query(ctx, st.read, set)
	if err != nil {
		return fmt.Errorf("reading %s: %w", table, err)
	}
	before := make(map[meta.RepoDigest]int64, len(steps))
	for rows.Next() {
		var count int64
		var k meta.RepoDigest
		if err := rows.Scan(&k.RepoID, &k.Digest, &count); err != nil {
			rows.Close()
			return fmt.Errorf("reading %s: %w", table, err)
		}
		before[k] = count
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("reading %s: %w", table, err)
	}
	var zero, changed []*counterStep
	var added []*counterStep
	for _, s := range steps {
		count, ok := before[meta.RepoDigest{RepoID: s.id, Digest: s.d}]
		s.after = count + s.n
		switch {
		case !ok:
			// A key not held: the change inserts it. (A negative change here
			// is a counter already wrong; it is kept, as the upsert kept it,
			// for VerifyUsage to report.)
			added = append(added, s)
		case s.after == 0:
			zero = append(zero, s)
		default:
			changed = append(changed, s)
		}
	}
	if len(zero) > 0 {
		set, err := counterSet(idCol, zero, func(s *counterStep) int64 { return 0 })
		if err != nil {
			return fmt.Errorf("deleting %s rows at zero: %w", table, err)
		}
		if _, err := t.exec(ctx, st.del, set); err != nil {
			return fmt.Errorf("deleting %s rows at zero: %w", table, err)
		}
	}
	if len(changed) > 0 {
		set, err := updateSet(idCol, changed)
		if err != nil {
			return fmt.Errorf("updating %s: %w", table, err)
		}
		if _, err := t.exec(ctx, st.update, set); err != nil {
			return fmt.Errorf("updating %s: %w", table, err)
		}
	}
	if len(added) > 0 {
		set, err := counterSet(idCol, added, func(s *counterStep) int64 { return s.after })
		if err != nil {
			return fmt.Errorf("inserting %s: %w", table, err)
		}
		if _, err := t.exec(ctx, st.insert, set); err != nil {
			return fmt.Errorf("inserting %s: %w", table, err)
		}
	}
	return nil
}

// counterStatements are applyCountersSQLite's statements for one table:
// the read of the rows a set names, the delete of the rows a set names
// (those reaching zero), the update of each row a set names to its value,
// and the insert of the keys not held. Each searches the table by its whole
// key, the primary key of a WITHOUT ROWID table (SQLite migration 13,
// TestCounterPlans), one probe per member of the set.
type counterStatements struct{ read, del, update, insert string }

func counterStatementsSQLite(table, idCol, countCol string) counterStatements {
	if idCol == "" {
		return counterStatements{
			read:   `SELECT 0, t.blob_digest, t.` + countCol + ` FROM json_each(?) c CROSS JOIN ` + table + ` t ON t.blob_digest = c.key`,
			del:    `DELETE FROM ` + table + ` AS t WHERE t.blob_digest IN (SELECT c.key FROM json_each(?) c)`,
			update: `UPDATE ` + table + ` AS t SET ` + countCol + ` = c.value FROM json_each(?) c WHERE t.blob_digest = c.key`,
			insert: `INSERT INTO ` + table + ` (blob_digest, ` + countCol + `) SELECT c.key, c.value FROM json_each(?) c`,
		}
	}
	// CROSS JOIN fixes the order: SQLite would otherwise search t by the id
	// alone, every row of the repository or namespace, and scan the set once
	// per row. jsonb_each hands each id's object on as binary JSON, which
	// json_each reads without parsing text again.
	return counterStatements{
		read: `SELECT t.` + idCol + `, t.blob_digest, t.` + countCol + ` FROM jsonb_each(?) p CROSS JOIN json_each(p.value) c
			CROSS JOIN ` + table + ` t ON t.` + idCol + ` = CAST(p.key AS INTEGER) AND t.blob_digest = c.key`,
		del: `DELETE FROM ` + table + ` AS t WHERE (t.` + idCol + `, t.blob_digest) IN
			(SELECT CAST(p.key AS INTEGER), c.key FROM jsonb_each(?) p CROSS JOIN json_each(p.value) c)`,
		// The update reads one array of [id, digest, value] (updateSet): with
		// the two functions of the others the planner searched t by the id
		// alone, as it did the read before its CROSS JOIN.
		update: `UPDATE ` + table + ` AS t SET ` + countCol + ` = c.value ->> 2 FROM json_each(?) c
			WHERE t.` + idCol + ` = c.value ->> 0 AND t.blob_digest = c.value ->> 1`,
		insert: `INSERT INTO ` + table + ` (` + idCol + `, blob_digest, ` + countCol + `)
			SELECT CAST(p.key AS INTEGER), c.key, c.value FROM jsonb_each(?) p, json_each(p.value) c`,
	}
}

// updateSet encodes steps as counterStatements' update reads them: as
// counterSet does without an id, an array of [id, digest, count after]
// with one.
func updateSet(idCol string, steps []*counterStep) (string, error) {
	if idCol == "" {
		return counterSet(idCol, steps, func(s *counterStep) int64 { return s.after })
	}
	rows := make([][3]any, len(steps))
	for i, s := range steps {
		rows[i] = [3]any{s.id, s.d.String(), s.after}
	}
	b, err := json.Marshal(rows)
	return string(b), err
}

// counterSet encodes steps as the JSON object applyCountersSQLite's
// statements read, {"id": {"digest": v}} ({"digest": v} when idCol is "",
// usage_blob), v the value of each step.
func counterSet(idCol string, steps []*counterStep, v func(*counterStep) int64) (string, error) {
	var arg []byte
	var err error
	if idCol == "" {
		set := make(map[string]int64, len(steps))
		for _, s := range steps {
			set[s.d.String()] = v(s)
		}
		arg, err = json.Marshal(set)
	} else {
		set := map[int64]map[string]int64{}
		for _, s := range steps {
			if set[s.id] == nil {
				set[s.id] = map[string]int64{}
			}
			set[s.id][s.d.String()] = v(s)
		}
		arg, err = json.Marshal(set)
	}
	return string(arg), err
}

func sortSteps(steps []counterStep) {
	slices.SortFunc(steps, func(a, b counterStep) int {
		return cmp.Or(cmp.Compare(a.id, b.id), strings.Compare(string(a.d), string(b.d)))
	})
}
