package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
)

// Usage counters (docs/design/usage.md). The writers of manifest rows and
// manifest_blob edges record what they add and remove in the transaction's
// usageDelta; ApplyUsage (or run, just before the commit) turns it into the
// counter transitions, level by level, each level one statement over a
// sorted JSON set: usage_repository_blob, usage_namespace_blob, usage_blob,
// then the usage rows (r, n, g). Every transaction thus takes the counter
// rows last and in one order, and never holds one while it waits for a row
// of the data model.

// registryShards is the number of the registry's usage rows; a blob or
// manifest digest picks one (shardOf).
const registryShards = 16

// shardOf picks the registry usage row of a digest: its last hex digit.
func shardOf(d digest.Digest) int {
	s := string(d)
	if s == "" {
		return 0
	}
	return max(strings.IndexByte("0123456789abcdef", s[len(s)-1]), 0)
}

// edgeDelta is the change of the manifest_blob edges of one (repository,
// blob) pair, and the blob's size when the writer knew it (-1 otherwise:
// ApplyUsage reads it).
type edgeDelta struct {
	n    int64
	size int64
}

// usageDelta is what a transaction's writes changed, not yet applied.
type usageDelta struct {
	manifests map[int64]meta.Usage // by repository: manifest bytes and count
	shards    [registryShards]meta.Usage
	edges     map[meta.RepoDigest]edgeDelta
}

func (u *usageDelta) empty() bool { return u == nil || len(u.manifests) == 0 && len(u.edges) == 0 }

func (t *tx) delta() *usageDelta {
	if t.usage == nil {
		t.usage = &usageDelta{manifests: map[int64]meta.Usage{}, edges: map[meta.RepoDigest]edgeDelta{}}
	}
	return t.usage
}

// noteManifest records a manifest row inserted (sign 1) or deleted (-1).
func (t *tx) noteManifest(repoID int64, d digest.Digest, size int64, sign int64) {
	u := t.delta()
	v := meta.Usage{Bytes: sign * size, Manifests: sign}
	u.manifests[repoID] = u.manifests[repoID].Add(v)
	s := shardOf(d)
	u.shards[s] = u.shards[s].Add(v)
}

// noteEdge records a manifest_blob edge inserted (sign 1) or deleted (-1);
// size is the blob's, or -1 when unknown.
func (t *tx) noteEdge(repoID int64, blob digest.Digest, size int64, sign int64) {
	u := t.delta()
	k := meta.RepoDigest{RepoID: repoID, Digest: blob}
	e, ok := u.edges[k]
	if !ok || e.size < 0 {
		e.size = size
	}
	e.n += sign
	u.edges[k] = e
}

// rememberNamespace caches the namespace of a repository the transaction
// read, for ApplyUsage.
func (t *tx) rememberNamespace(r meta.Repository) {
	if t.repoNS == nil {
		t.repoNS = map[int64]int64{}
	}
	t.repoNS[r.ID] = r.NamespaceID
}

// namespacesOf returns the namespace of each repository, reading those the
// transaction has not seen.
func (t *tx) namespacesOf(ctx context.Context, repos []int64) (map[int64]int64, error) {
	var missing []int64
	for _, r := range repos {
		if _, ok := t.repoNS[r]; !ok {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		rows, err := t.query(ctx, `SELECT id, namespace_id FROM repository WHERE id IN `+t.d.keyIDs(), jsonKeys(missing))
		if err != nil {
			return nil, fmt.Errorf("reading namespaces of %d repositories: %w", len(missing), err)
		}
		defer rows.Close()
		for rows.Next() {
			var r meta.Repository
			if err := rows.Scan(&r.ID, &r.NamespaceID); err != nil {
				return nil, err
			}
			t.rememberNamespace(r)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	for _, r := range repos {
		if _, ok := t.repoNS[r]; !ok {
			return nil, fmt.Errorf("repository %d of a usage change: %w", r, meta.ErrNotFound)
		}
	}
	return t.repoNS, nil
}

// jsonRows is a table expression over one JSON parameter, an array of
// arrays, with columns c0..c(n-1) (as text or bigint by kinds: 't' or 'i'),
// in the array's order.
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
	return `(SELECT ` + strings.Join(cols, ", ") + `, key AS n FROM json_each(?))`
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
// with one upsert that fills in each step's count after, then a delete of
// the rows that reached zero. idCol is "" for usage_blob, keyed by digest
// alone.
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
		res, err := t.exec(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("updating %s: %w", table, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("updating %s: %w", table, err)
		}
		if n == 1 {
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
		arg = pairsJSON(zero)
	}
	if _, err := t.exec(ctx, del, arg); err != nil {
		return fmt.Errorf("deleting %s rows at zero: %w", table, err)
	}
	return nil
}

// applyCountersSQLite is applyCounters on SQLite, where decoding the set
// costs more than the rows it changes (a collector transaction deletes
// every row it counts down): json_extract of each column of an array of
// arrays re-parses each element, three times per row. The changes are sent
// as an object, {"id": {"digest": n}} (or {"digest": n} for usage_blob), whose
// members json_each reads as scalars, a parse per id rather than three per
// row; the rows at zero are deleted by the rowids the upsert returned, one
// integer per row. A single writer makes the lock order of the sorted set
// moot (usage.md, "Hot rows and lock order", concerns PostgreSQL).
func (t *tx) applyCountersSQLite(ctx context.Context, table, idCol, countCol string, steps []*counterStep) error {
	var q string
	var arg []byte
	var err error
	if idCol == "" {
		set := make(map[string]int64, len(steps))
		for _, s := range steps {
			set[s.d.String()] = s.n
		}
		arg, err = json.Marshal(set)
		q = `INSERT INTO ` + table + ` (blob_digest, ` + countCol + `) SELECT c.key, c.value FROM json_each(?) c WHERE true
			ON CONFLICT (blob_digest) DO UPDATE SET ` + countCol + ` = ` + table + `.` + countCol + ` + excluded.` + countCol + `
			RETURNING rowid, 0, blob_digest, ` + countCol
	} else {
		set := map[int64]map[string]int64{}
		for _, s := range steps {
			if set[s.id] == nil {
				set[s.id] = map[string]int64{}
			}
			set[s.id][s.d.String()] = s.n
		}
		arg, err = json.Marshal(set)
		q = `INSERT INTO ` + table + ` (` + idCol + `, blob_digest, ` + countCol + `)
			SELECT CAST(p.key AS INTEGER), c.key, c.value FROM json_each(?) p, json_each(p.value) c WHERE true
			ON CONFLICT (` + idCol + `, blob_digest) DO UPDATE SET ` + countCol + ` = ` + table + `.` + countCol + ` + excluded.` + countCol + `
			RETURNING rowid, ` + idCol + `, blob_digest, ` + countCol
	}
	if err != nil {
		return fmt.Errorf("updating %s: %w", table, err)
	}
	rows, err := t.query(ctx, q, string(arg))
	if err != nil {
		return fmt.Errorf("updating %s: %w", table, err)
	}
	after := make(map[meta.RepoDigest]int64, len(steps))
	var zero []int64
	for rows.Next() {
		var rowid, v int64
		var k meta.RepoDigest
		if err := rows.Scan(&rowid, &k.RepoID, &k.Digest, &v); err != nil {
			rows.Close()
			return fmt.Errorf("updating %s: %w", table, err)
		}
		after[k] = v
		if v == 0 {
			zero = append(zero, rowid)
		}
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("updating %s: %w", table, err)
	}
	for i := range steps {
		k := meta.RepoDigest{RepoID: steps[i].id, Digest: steps[i].d}
		a, ok := after[k]
		if !ok {
			return fmt.Errorf("updating %s: no row returned for %d %s", table, k.RepoID, k.Digest)
		}
		steps[i].after = a
	}
	if len(zero) == 0 {
		return nil
	}
	if _, err := t.exec(ctx, `DELETE FROM `+table+` WHERE rowid IN `+t.d.keyIDs(), jsonKeys(zero)); err != nil {
		return fmt.Errorf("deleting %s rows at zero: %w", table, err)
	}
	return nil
}

// usageRow is one change of a usage row.
type usageRow struct {
	scope string
	id    int64
	shard int
	meta.Usage
}

// scopeRank is the lock order of the usage rows' scopes: r, n, g.
func scopeRank(s string) int { return strings.Index("rng", s) }

// ApplyUsage runs the transitions of docs/design/usage.md, "Counters".
func (t *tx) ApplyUsage(ctx context.Context) ([]meta.UsageChange, error) {
	u := t.usage
	t.usage = nil
	if u.empty() {
		return nil, nil
	}
	var repos []int64
	for r := range u.manifests {
		repos = append(repos, r)
	}
	for k := range u.edges {
		repos = append(repos, k.RepoID)
	}
	slices.Sort(repos)
	repos = slices.Compact(repos)
	nsOf, err := t.namespacesOf(ctx, repos)
	if err != nil {
		return nil, err
	}
	rowsBy := map[[2]int64]meta.Usage{} // (scope rank, id) -> change, for r and n
	for r, v := range u.manifests {
		rowsBy[[2]int64{0, r}] = rowsBy[[2]int64{0, r}].Add(v)
		rowsBy[[2]int64{1, nsOf[r]}] = rowsBy[[2]int64{1, nsOf[r]}].Add(v)
	}
	shards := u.shards

	// Level 1: the edges of each (repository, blob).
	var steps []counterStep
	sizes := map[digest.Digest]int64{}
	for k, e := range u.edges {
		if e.n != 0 {
			steps = append(steps, counterStep{id: k.RepoID, d: k.Digest, n: e.n})
		}
		if e.size >= 0 {
			sizes[k.Digest] = e.size
		}
	}
	sortSteps(steps)
	if err := t.applyCounters(ctx, "usage_repository_blob", "repository_id", "refs", steps); err != nil {
		return nil, err
	}
	var crossed []counterStep
	for _, s := range steps {
		if c := s.crossed(); c != 0 {
			crossed = append(crossed, counterStep{id: s.id, d: s.d, n: c})
		}
	}
	if err := t.blobSizes(ctx, crossed, sizes); err != nil {
		return nil, err
	}
	// Level 2: the repositories of each (namespace, blob).
	nsSteps := map[meta.RepoDigest]int64{}
	for _, c := range crossed {
		rowsBy[[2]int64{0, c.id}] = rowsBy[[2]int64{0, c.id}].Add(meta.Usage{Bytes: c.n * sizes[c.d], Blobs: c.n})
		nsSteps[meta.RepoDigest{RepoID: nsOf[c.id], Digest: c.d}] += c.n
	}
	steps = steps[:0]
	for k, n := range nsSteps {
		if n != 0 {
			steps = append(steps, counterStep{id: k.RepoID, d: k.Digest, n: n})
		}
	}
	sortSteps(steps)
	if err := t.applyCounters(ctx, "usage_namespace_blob", "namespace_id", "repos", steps); err != nil {
		return nil, err
	}
	// Level 3: the namespaces of each blob.
	blobSteps := map[digest.Digest]int64{}
	for _, s := range steps {
		if c := s.crossed(); c != 0 {
			rowsBy[[2]int64{1, s.id}] = rowsBy[[2]int64{1, s.id}].Add(meta.Usage{Bytes: c * sizes[s.d], Blobs: c})
			blobSteps[s.d] += c
		}
	}
	steps = steps[:0]
	for d, n := range blobSteps {
		if n != 0 {
			steps = append(steps, counterStep{d: d, n: n})
		}
	}
	sortSteps(steps)
	if err := t.applyCounters(ctx, "usage_blob", "", "holders", steps); err != nil {
		return nil, err
	}
	for _, s := range steps {
		if c := s.crossed(); c != 0 {
			sh := shardOf(s.d)
			shards[sh] = shards[sh].Add(meta.Usage{Bytes: c * sizes[s.d], Blobs: c})
		}
	}
	// Level 4: the usage rows, r then n then g.
	var rows []usageRow
	for k, v := range rowsBy {
		if v != (meta.Usage{}) {
			rows = append(rows, usageRow{scope: string("rn"[k[0]]), id: k[1], Usage: v})
		}
	}
	for i, v := range shards {
		if v != (meta.Usage{}) {
			rows = append(rows, usageRow{scope: "g", shard: i, Usage: v})
		}
	}
	slices.SortFunc(rows, func(a, b usageRow) int {
		return cmp.Or(cmp.Compare(scopeRank(a.scope), scopeRank(b.scope)), cmp.Compare(a.id, b.id), cmp.Compare(a.shard, b.shard))
	})
	return t.applyUsageRows(ctx, rows)
}

func sortSteps(steps []counterStep) {
	slices.SortFunc(steps, func(a, b counterStep) int {
		return cmp.Or(cmp.Compare(a.id, b.id), strings.Compare(string(a.d), string(b.d)))
	})
}

// blobSizes reads the sizes of the crossing blobs the writers did not know.
func (t *tx) blobSizes(ctx context.Context, crossed []counterStep, sizes map[digest.Digest]int64) error {
	var missing []string
	for _, c := range crossed {
		if _, ok := sizes[c.d]; !ok {
			missing = append(missing, c.d.String())
		}
	}
	if len(missing) == 0 {
		return nil
	}
	rows, err := t.query(ctx, `SELECT digest, size FROM blob WHERE digest IN `+t.d.keyList(), jsonKeys(missing))
	if err != nil {
		return fmt.Errorf("reading sizes of %d blobs: %w", len(missing), err)
	}
	defer rows.Close()
	for rows.Next() {
		var d digest.Digest
		var size int64
		if err := rows.Scan(&d, &size); err != nil {
			return err
		}
		sizes[d] = size
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, d := range missing {
		if _, ok := sizes[digest.Digest(d)]; !ok {
			return fmt.Errorf("size of blob %s: %w", d, meta.ErrNotFound)
		}
	}
	return nil
}

// applyUsageRows adds the changes to the usage rows (sorted): the rows
// that exist in place (inPlace), the others with one upsert. It reports the
// namespaces' changes, with the usage after and the quota in force for
// those that gained bytes (namespaceGain).
func (t *tx) applyUsageRows(ctx context.Context, changes []usageRow) ([]meta.UsageChange, error) {
	rest := changes
	if t.inPlace(len(changes)) {
		rest = nil
		for _, u := range changes {
			ok, err := t.updateUsageRow(ctx, u)
			if err != nil {
				return nil, err
			}
			if !ok {
				rest = append(rest, u)
			}
		}
	}
	if err := t.upsertUsageRows(ctx, rest); err != nil {
		return nil, err
	}
	var out []meta.UsageChange
	for _, u := range changes {
		if u.scope != "n" {
			continue
		}
		c := meta.UsageChange{NamespaceID: u.id, Added: u.Usage}
		if u.Bytes > 0 {
			if err := t.namespaceGain(ctx, &c); err != nil {
				return nil, err
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// updateUsageRow adds a change to its usage row if the row exists.
func (t *tx) updateUsageRow(ctx context.Context, u usageRow) (bool, error) {
	res, err := t.exec(ctx, `UPDATE usage SET bytes = bytes + ?, manifests = manifests + ?, blobs = blobs + ?
		WHERE scope = ? AND id = ? AND shard = ?`, u.Bytes, u.Manifests, u.Blobs, u.scope, u.id, u.shard)
	if err != nil {
		return false, fmt.Errorf("updating usage: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("updating usage: %w", err)
	}
	return n == 1, nil
}

// upsertUsageRows adds the changes to the usage rows (sorted) in one
// statement.
func (t *tx) upsertUsageRows(ctx context.Context, changes []usageRow) error {
	if len(changes) == 0 {
		return nil
	}
	keys := make([][6]any, len(changes))
	for i, c := range changes {
		keys[i] = [6]any{c.scope, c.id, c.shard, c.Bytes, c.Manifests, c.Blobs}
	}
	if _, err := t.exec(ctx, `INSERT INTO usage (scope, id, shard, bytes, manifests, blobs)
		SELECT c0, c1, c2, c3, c4, c5 FROM `+t.jsonRows("tiiiii")+` k WHERE true ORDER BY n
		ON CONFLICT (scope, id, shard) DO UPDATE SET bytes = usage.bytes + excluded.bytes,
			manifests = usage.manifests + excluded.manifests, blobs = usage.blobs + excluded.blobs`, jsonKeys(keys)); err != nil {
		return fmt.Errorf("updating usage: %w", err)
	}
	return nil
}

// namespaceGain reads, for a namespace that gained bytes, its usage after
// the change (its counter row, which the transaction now holds) and the
// quota in force on it (its own, else the registry default, as
// EffectiveQuota), in one statement of point reads: the manifest PUT's
// quota check needs no statement of its own. (Returned by the UPDATE, the
// same read cost SQLite more: RETURNING opens a temporary b-tree.)
func (t *tx) namespaceGain(ctx context.Context, c *meta.UsageChange) error {
	var ns sql.NullString
	var limit, warn sql.NullInt64
	err := t.queryRow(ctx, `SELECT u.bytes, u.manifests, u.blobs, COALESCE(o.namespace, d.namespace), COALESCE(o.limit_bytes, d.limit_bytes),
			CASE WHEN o.namespace IS NULL THEN d.warn_percent ELSE o.warn_percent END
		FROM usage u JOIN namespace n ON n.id = u.id
			LEFT JOIN quota o ON o.namespace = n.name
			LEFT JOIN quota d ON d.namespace = ''
		WHERE u.scope = 'n' AND u.id = ? AND u.shard = 0`, c.NamespaceID).
		Scan(&c.After.Bytes, &c.After.Manifests, &c.After.Blobs, &ns, &limit, &warn)
	if err != nil {
		return notFound(err, "reading the usage and quota of namespace #%d", c.NamespaceID)
	}
	c.Quota = nil
	if limit.Valid {
		c.Quota = &meta.Quota{Namespace: ns.String, Limit: limit.Int64}
		if warn.Valid {
			w := int(warn.Int64)
			c.Quota.WarnPercent = &w
		}
	}
	return nil
}

func (t *tx) usageOf(ctx context.Context, scope string, id int64) (meta.Usage, error) {
	var u meta.Usage
	err := t.queryRow(ctx, `SELECT COALESCE(SUM(bytes), 0), COALESCE(SUM(manifests), 0), COALESCE(SUM(blobs), 0) FROM usage
		WHERE scope = ? AND id = ?`, scope, id).Scan(&u.Bytes, &u.Manifests, &u.Blobs)
	if err != nil {
		return u, fmt.Errorf("reading usage: %w", err)
	}
	return u, nil
}

func (t *tx) RepositoryUsage(ctx context.Context, repoID int64) (meta.Usage, error) {
	return t.usageOf(ctx, "r", repoID)
}

func (t *tx) NamespaceUsage(ctx context.Context, nsID int64) (meta.Usage, error) {
	return t.usageOf(ctx, "n", nsID)
}

func (t *tx) RegistryUsage(ctx context.Context) (meta.Usage, error) {
	return t.usageOf(ctx, "g", 0)
}

func (t *tx) NamespacesUsageSum(ctx context.Context) (meta.Usage, error) {
	var u meta.Usage
	err := t.queryRow(ctx, `SELECT COALESCE(SUM(bytes), 0), COALESCE(SUM(manifests), 0), COALESCE(SUM(blobs), 0) FROM usage
		WHERE scope = 'n'`).Scan(&u.Bytes, &u.Manifests, &u.Blobs)
	if err != nil {
		return u, fmt.Errorf("summing namespace usage: %w", err)
	}
	return u, nil
}

func scanNamespaceUsages(rows *sql.Rows, err error) ([]meta.NamespaceUsage, error) {
	if err != nil {
		return nil, fmt.Errorf("listing namespace usage: %w", err)
	}
	defer rows.Close()
	var out []meta.NamespaceUsage
	for rows.Next() {
		var n meta.NamespaceUsage
		if err := rows.Scan(&n.ID, &n.Name, &n.Bytes, &n.Manifests, &n.Blobs); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// TopNamespaces reads the largest rows through the index usage_bytes (the
// namespaces' rows only: migration 11 on SQLite, 12 on PostgreSQL).
func (t *tx) TopNamespaces(ctx context.Context, limit int) ([]meta.NamespaceUsage, error) {
	return scanNamespaceUsages(t.query(ctx, topNamespacesQuery, limit))
}

const topNamespacesQuery = `SELECT n.id, n.name, u.bytes, u.manifests, u.blobs
	FROM usage u JOIN namespace n ON n.id = u.id
	WHERE u.scope = 'n' AND u.bytes > 0 ORDER BY u.bytes DESC, n.name LIMIT ?`

func (t *tx) Namespaces(ctx context.Context, after string, limit int) ([]meta.NamespaceUsage, error) {
	return scanNamespaceUsages(t.query(ctx, `SELECT n.id, n.name, COALESCE(u.bytes, 0), COALESCE(u.manifests, 0), COALESCE(u.blobs, 0)
		FROM namespace n LEFT JOIN usage u ON u.scope = 'n' AND u.id = n.id AND u.shard = 0
		WHERE n.name > ? ORDER BY n.name LIMIT ?`, after, limit))
}

const quotaCols = `namespace, limit_bytes, warn_percent, created_at, created_by`

func scanQuota(row interface{ Scan(...any) error }) (meta.Quota, error) {
	var q meta.Quota
	var warn sql.NullInt64
	var created int64
	var by string
	if err := row.Scan(&q.Namespace, &q.Limit, &warn, &created, &by); err != nil {
		return q, err
	}
	if warn.Valid {
		w := int(warn.Int64)
		q.WarnPercent = &w
	}
	q.CreatedAt, q.CreatedBy = fromUS(created), meta.Actor(by)
	return q, nil
}

func (t *tx) PutQuota(ctx context.Context, q meta.Quota) error {
	var warn sql.NullInt64
	if q.WarnPercent != nil {
		warn = sql.NullInt64{Int64: int64(*q.WarnPercent), Valid: true}
	}
	if _, err := t.exec(ctx, `INSERT INTO quota (`+quotaCols+`) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (namespace) DO UPDATE SET limit_bytes = excluded.limit_bytes, warn_percent = excluded.warn_percent,
			created_at = excluded.created_at, created_by = excluded.created_by`,
		q.Namespace, q.Limit, warn, us(q.CreatedAt), string(q.CreatedBy)); err != nil {
		return fmt.Errorf("saving the quota of namespace %q: %w", q.Namespace, err)
	}
	return nil
}

func (t *tx) DeleteQuota(ctx context.Context, namespace string) error {
	res, err := t.exec(ctx, `DELETE FROM quota WHERE namespace = ?`, namespace)
	if err != nil {
		return fmt.Errorf("deleting the quota of namespace %q: %w", namespace, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("quota of namespace %q: %w", namespace, meta.ErrNotFound)
	}
	return nil
}

func (t *tx) Quota(ctx context.Context, namespace string) (meta.Quota, error) {
	q, err := scanQuota(t.queryRow(ctx, `SELECT `+quotaCols+` FROM quota WHERE namespace = ?`, namespace))
	if err != nil {
		return q, notFound(err, "quota of namespace %q", namespace)
	}
	return q, nil
}

// EffectiveQuota reads both rows in one probe: the namespace's sorts first.
func (t *tx) EffectiveQuota(ctx context.Context, namespace string) (meta.Quota, error) {
	q, err := scanQuota(t.queryRow(ctx, `SELECT `+quotaCols+` FROM quota WHERE namespace IN (?, '') ORDER BY namespace DESC LIMIT 1`, namespace))
	if err != nil {
		return q, notFound(err, "quota of namespace %q", namespace)
	}
	return q, nil
}

func (t *tx) Quotas(ctx context.Context) ([]meta.Quota, error) {
	rows, err := t.query(ctx, `SELECT `+quotaCols+` FROM quota ORDER BY namespace`)
	if err != nil {
		return nil, fmt.Errorf("listing quotas: %w", err)
	}
	defer rows.Close()
	var out []meta.Quota
	for rows.Next() {
		q, err := scanQuota(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, rows.Err()
}
