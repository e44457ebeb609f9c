package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
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
	within := map[int64]bool{}
	if t.inPlace(len(changes)) {
		rest = nil
		for _, u := range changes {
			if u.scope == "n" && u.Bytes > 0 {
				ok, err := t.gainWithin(ctx, u)
				if err != nil {
					return nil, err
				}
				if ok {
					within[u.id] = true
					continue
				}
			}
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
		c := meta.UsageChange{NamespaceID: u.id, Added: u.Usage, Within: within[u.id]}
		if u.Bytes > 0 && !c.Within {
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
	return t.updatedOne(ctx, "usage", `UPDATE usage SET bytes = bytes + ?, manifests = manifests + ?, blobs = blobs + ?
		WHERE scope = ? AND id = ? AND shard = ?`, u.Bytes, u.Manifests, u.Blobs, u.scope, u.id, u.shard)
}

// updatedOne runs an UPDATE of at most one row and reports whether it
// changed one: the in-place paths of the counters learn from it that the
// row was there and its guard held.
func (t *tx) updatedOne(ctx context.Context, table, q string, args ...any) (bool, error) {
	res, err := t.exec(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("updating %s: %w", table, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("updating %s: %w", table, err)
	}
	return n == 1, nil
}

// gainWithin adds a namespace's gain to its usage row if the row exists
// and the usage after it stays within the quota in force (its own, else the
// registry default: the quota rows by name, as namespaceGain) and crosses
// no warning threshold upwards (meta.Quota.WarnBytes, in integers the same
// way). The common manifest PUT thus checks its quota in the UPDATE it
// makes anyway; when the guard fails (no row, over the limit, a threshold
// crossed) nothing changed, and the caller updates the row and reads the
// usage and the quota (namespaceGain), which say which it was.
func (t *tx) gainWithin(ctx context.Context, u usageRow) (bool, error) {
	return t.updatedOne(ctx, "usage", `UPDATE usage SET bytes = bytes + ?, manifests = manifests + ?, blobs = blobs + ?
		WHERE scope = 'n' AND id = ? AND shard = 0 AND NOT EXISTS (
			SELECT 1 FROM (SELECT COALESCE(o.limit_bytes, d.limit_bytes) AS l,
					CASE WHEN o.namespace IS NULL THEN d.warn_percent ELSE o.warn_percent END AS w
				FROM namespace n LEFT JOIN quota o ON o.namespace = n.name LEFT JOIN quota d ON d.namespace = ''
				WHERE n.id = ?) q
			WHERE usage.bytes + ? > q.l
				OR usage.bytes < q.l / 100 * q.w + q.l % 100 * q.w / 100 AND usage.bytes + ? >= q.l / 100 * q.w + q.l % 100 * q.w / 100)`,
		u.Bytes, u.Manifests, u.Blobs, u.id, u.id, u.Bytes, u.Bytes)
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
