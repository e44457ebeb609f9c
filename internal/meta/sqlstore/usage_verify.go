package sqlstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/berth/berth/internal/meta"
)

// Verification (docs/design/usage.md, "Verification"): each counter is
// recomputed from the rows with a grouped query and compared with the stored
// one; a fix deletes the scope's counter rows and inserts the recomputed
// ones. The queries name repositories and namespaces, so that a difference
// reads as "team/app@sha256:…".

// usageQuery reads (key, usage) rows: a key and up to three counts.
type usageQuery struct {
	q    string
	args []any
}

func (t *tx) readUsages(ctx context.Context, uq usageQuery) (map[string]meta.Usage, error) {
	rows, err := t.query(ctx, uq.q, uq.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]meta.Usage{}
	for rows.Next() {
		var k string
		var u meta.Usage
		if err := rows.Scan(&k, &u.Bytes, &u.Manifests, &u.Blobs); err != nil {
			return nil, err
		}
		out[k] = out[k].Add(u)
	}
	return out, rows.Err()
}

// compareUsage reads what the rows want and what the counters hold and
// returns the differences.
func (t *tx) compareUsage(ctx context.Context, c meta.UsageCounter, want, got usageQuery) ([]meta.UsageDiff, error) {
	w, err := t.readUsages(ctx, want)
	if err != nil {
		return nil, fmt.Errorf("recomputing %s counters: %w", c, err)
	}
	g, err := t.readUsages(ctx, got)
	if err != nil {
		return nil, fmt.Errorf("reading %s counters: %w", c, err)
	}
	var out []meta.UsageDiff
	for k, wu := range w {
		if g[k] != wu {
			out = append(out, meta.UsageDiff{Counter: c, Key: k, Got: g[k], Want: wu})
		}
	}
	for k, gu := range g {
		if _, ok := w[k]; !ok && gu != (meta.Usage{}) {
			out = append(out, meta.UsageDiff{Counter: c, Key: k, Got: gu})
		}
	}
	slices.SortFunc(out, func(a, b meta.UsageDiff) int { return cmp.Compare(a.Key, b.Key) })
	return out, nil
}

// Recomputations, per namespace (one parameter: its id) or for the registry.
const (
	wantRepoBlobs = `SELECT r.name || '@' || mb.blob_digest, COUNT(*), 0, 0 FROM manifest_blob mb
		JOIN repository r ON r.id = mb.repository_id WHERE r.namespace_id = ? GROUP BY r.name, mb.blob_digest`
	gotRepoBlobs = `SELECT r.name || '@' || u.blob_digest, u.refs, 0, 0 FROM usage_repository_blob u
		JOIN repository r ON r.id = u.repository_id WHERE r.namespace_id = ?`
	wantNamespaceBlobs = `SELECT n.name || '@' || mb.blob_digest, COUNT(DISTINCT mb.repository_id), 0, 0 FROM manifest_blob mb
		JOIN repository r ON r.id = mb.repository_id JOIN namespace n ON n.id = r.namespace_id
		WHERE r.namespace_id = ? GROUP BY n.name, mb.blob_digest`
	gotNamespaceBlobs = `SELECT n.name || '@' || u.blob_digest, u.repos, 0, 0 FROM usage_namespace_blob u
		JOIN namespace n ON n.id = u.namespace_id WHERE u.namespace_id = ?`
	// The usage of the namespace's repositories: their manifests, then
	// the distinct blobs of each.
	wantRepoUsage = `SELECT r.name, SUM(m.size), COUNT(*), 0 FROM manifest m JOIN repository r ON r.id = m.repository_id
			WHERE r.namespace_id = ? GROUP BY r.name
		UNION ALL
		SELECT r.name, SUM(b.size), 0, COUNT(*) FROM (SELECT DISTINCT repository_id, blob_digest FROM manifest_blob) mb
			JOIN repository r ON r.id = mb.repository_id JOIN blob b ON b.digest = mb.blob_digest
			WHERE r.namespace_id = ? GROUP BY r.name`
	gotRepoUsage = `SELECT r.name, u.bytes, u.manifests, u.blobs FROM usage u JOIN repository r ON r.id = u.id
		WHERE u.scope = 'r' AND r.namespace_id = ?`
	wantNamespaceUsage = `SELECT n.name, SUM(m.size), COUNT(*), 0 FROM manifest m JOIN repository r ON r.id = m.repository_id
			JOIN namespace n ON n.id = r.namespace_id WHERE n.id = ? GROUP BY n.name
		UNION ALL
		SELECT n.name, SUM(b.size), 0, COUNT(*) FROM (SELECT DISTINCT r.namespace_id, mb.blob_digest FROM manifest_blob mb
				JOIN repository r ON r.id = mb.repository_id WHERE r.namespace_id = ?) nb
			JOIN namespace n ON n.id = nb.namespace_id JOIN blob b ON b.digest = nb.blob_digest GROUP BY n.name`
	gotNamespaceUsage = `SELECT n.name, u.bytes, u.manifests, u.blobs FROM usage u JOIN namespace n ON n.id = u.id
		WHERE u.scope = 'n' AND u.id = ?`

	wantBlobHolders = `SELECT mb.blob_digest, COUNT(DISTINCT r.namespace_id), 0, 0 FROM manifest_blob mb
		JOIN repository r ON r.id = mb.repository_id GROUP BY mb.blob_digest`
	gotBlobHolders = `SELECT blob_digest, holders, 0, 0 FROM usage_blob`
	wantRegistry   = `SELECT '', COALESCE(SUM(size), 0), COUNT(*), 0 FROM manifest
		UNION ALL
		SELECT '', COALESCE(SUM(b.size), 0), 0, COUNT(*) FROM (SELECT DISTINCT blob_digest FROM manifest_blob) mb
			JOIN blob b ON b.digest = mb.blob_digest`
	gotRegistry = `SELECT '', COALESCE(SUM(bytes), 0), COALESCE(SUM(manifests), 0), COALESCE(SUM(blobs), 0) FROM usage WHERE scope = 'g'`
	// Counter rows of repositories and namespaces that are gone: none
	// wanted.
	gotOrphans = `SELECT 'repository #' || u.repository_id || '@' || u.blob_digest, u.refs, 0, 0 FROM usage_repository_blob u
			WHERE NOT EXISTS (SELECT 1 FROM repository r WHERE r.id = u.repository_id)
		UNION ALL
		SELECT 'namespace #' || u.namespace_id || '@' || u.blob_digest, u.repos, 0, 0 FROM usage_namespace_blob u
			WHERE NOT EXISTS (SELECT 1 FROM namespace n WHERE n.id = u.namespace_id)
		UNION ALL
		SELECT 'repository #' || u.id, u.bytes, u.manifests, u.blobs FROM usage u
			WHERE u.scope = 'r' AND NOT EXISTS (SELECT 1 FROM repository r WHERE r.id = u.id)
		UNION ALL
		SELECT 'namespace #' || u.id, u.bytes, u.manifests, u.blobs FROM usage u
			WHERE u.scope = 'n' AND NOT EXISTS (SELECT 1 FROM namespace n WHERE n.id = u.id)`
	wantNothing = `SELECT '', 0, 0, 0 FROM usage WHERE 1 = 0`
)

func (t *tx) VerifyNamespaceUsage(ctx context.Context, nsID int64, fix bool) ([]meta.UsageDiff, error) {
	if fix {
		// The namespace's usage row first: every writer of the namespace's
		// counters changes it, so none commits a change under the fix.
		if _, err := t.applyUsageRows(ctx, []usageRow{{scope: "n", id: nsID}}); err != nil {
			return nil, err
		}
	}
	var out []meta.UsageDiff
	for _, c := range []struct {
		counter   meta.UsageCounter
		want, got usageQuery
	}{
		{meta.CounterRepositoryBlob, usageQuery{wantRepoBlobs, []any{nsID}}, usageQuery{gotRepoBlobs, []any{nsID}}},
		{meta.CounterNamespaceBlob, usageQuery{wantNamespaceBlobs, []any{nsID}}, usageQuery{gotNamespaceBlobs, []any{nsID}}},
		{meta.CounterRepository, usageQuery{wantRepoUsage, []any{nsID, nsID}}, usageQuery{gotRepoUsage, []any{nsID}}},
		{meta.CounterNamespace, usageQuery{wantNamespaceUsage, []any{nsID, nsID}}, usageQuery{gotNamespaceUsage, []any{nsID}}},
	} {
		diffs, err := t.compareUsage(ctx, c.counter, c.want, c.got)
		if err != nil {
			return nil, err
		}
		out = append(out, diffs...)
	}
	if fix && len(out) > 0 {
		if err := t.rewriteNamespaceUsage(ctx, nsID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// rewriteNamespaceUsage replaces the namespace's counters with the
// recomputed ones.
func (t *tx) rewriteNamespaceUsage(ctx context.Context, nsID int64) error {
	for _, q := range []string{
		`DELETE FROM usage_repository_blob WHERE repository_id IN (SELECT id FROM repository WHERE namespace_id = ?)`,
		`INSERT INTO usage_repository_blob (repository_id, blob_digest, refs)
			SELECT mb.repository_id, mb.blob_digest, COUNT(*) FROM manifest_blob mb JOIN repository r ON r.id = mb.repository_id
			WHERE r.namespace_id = ? GROUP BY mb.repository_id, mb.blob_digest`,
		`DELETE FROM usage_namespace_blob WHERE namespace_id = ?`,
		`INSERT INTO usage_namespace_blob (namespace_id, blob_digest, repos)
			SELECT ?, blob_digest, COUNT(*) FROM usage_repository_blob u JOIN repository r ON r.id = u.repository_id
			WHERE r.namespace_id = ? GROUP BY blob_digest`,
		`DELETE FROM usage WHERE scope = 'r' AND id IN (SELECT id FROM repository WHERE namespace_id = ?)`,
		`INSERT INTO usage (scope, id, shard, bytes, manifests, blobs)
			SELECT 'r', s.id, 0, SUM(s.bytes), SUM(s.manifests), SUM(s.blobs) FROM (
				SELECT m.repository_id AS id, SUM(m.size) AS bytes, COUNT(*) AS manifests, 0 AS blobs
				FROM manifest m JOIN repository r ON r.id = m.repository_id WHERE r.namespace_id = ? GROUP BY m.repository_id
				UNION ALL
				SELECT u.repository_id, SUM(b.size), 0, COUNT(*) FROM usage_repository_blob u
				JOIN repository r ON r.id = u.repository_id JOIN blob b ON b.digest = u.blob_digest
				WHERE r.namespace_id = ? GROUP BY u.repository_id
			) s GROUP BY s.id`,
		`UPDATE usage SET bytes = (
				SELECT COALESCE(SUM(m.size), 0) FROM manifest m JOIN repository r ON r.id = m.repository_id WHERE r.namespace_id = usage.id
			) + (
				SELECT COALESCE(SUM(b.size), 0) FROM usage_namespace_blob u JOIN blob b ON b.digest = u.blob_digest WHERE u.namespace_id = usage.id
			), manifests = (
				SELECT COUNT(*) FROM manifest m JOIN repository r ON r.id = m.repository_id WHERE r.namespace_id = usage.id
			), blobs = (
				SELECT COUNT(*) FROM usage_namespace_blob u WHERE u.namespace_id = usage.id
			) WHERE scope = 'n' AND id = ?`,
	} {
		args := make([]any, countParams(q))
		for i := range args {
			args[i] = nsID
		}
		if _, err := t.exec(ctx, q, args...); err != nil {
			return fmt.Errorf("rewriting the usage counters of namespace %d: %w", nsID, err)
		}
	}
	return nil
}

func countParams(q string) int {
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
		}
	}
	return n
}

func (t *tx) VerifyRegistryUsage(ctx context.Context, fix bool) ([]meta.UsageDiff, error) {
	if fix {
		// The registry's rows first, like a namespace's (sorted by shard).
		rows := make([]usageRow, registryShards)
		for i := range rows {
			rows[i] = usageRow{scope: "g", shard: i}
		}
		if _, err := t.applyUsageRows(ctx, rows); err != nil {
			return nil, err
		}
	}
	var out []meta.UsageDiff
	for _, c := range []struct {
		counter   meta.UsageCounter
		want, got usageQuery
	}{
		{meta.CounterBlob, usageQuery{q: wantBlobHolders}, usageQuery{q: gotBlobHolders}},
		{meta.CounterRegistry, usageQuery{q: wantRegistry}, usageQuery{q: gotRegistry}},
		{meta.CounterRepository, usageQuery{q: wantNothing}, usageQuery{q: gotOrphans}},
	} {
		diffs, err := t.compareUsage(ctx, c.counter, c.want, c.got)
		if err != nil {
			return nil, err
		}
		out = append(out, diffs...)
	}
	if fix && len(out) > 0 {
		for _, q := range []string{
			`DELETE FROM usage_repository_blob WHERE NOT EXISTS (SELECT 1 FROM repository r WHERE r.id = usage_repository_blob.repository_id)`,
			`DELETE FROM usage_namespace_blob WHERE NOT EXISTS (SELECT 1 FROM namespace n WHERE n.id = usage_namespace_blob.namespace_id)`,
			`DELETE FROM usage WHERE scope = 'r' AND NOT EXISTS (SELECT 1 FROM repository r WHERE r.id = usage.id)`,
			`DELETE FROM usage WHERE scope = 'n' AND NOT EXISTS (SELECT 1 FROM namespace n WHERE n.id = usage.id)`,
			`DELETE FROM usage_blob`,
			`INSERT INTO usage_blob (blob_digest, holders)
				SELECT mb.blob_digest, COUNT(DISTINCT r.namespace_id) FROM manifest_blob mb JOIN repository r ON r.id = mb.repository_id
				GROUP BY mb.blob_digest`,
			`UPDATE usage SET bytes = 0, manifests = 0, blobs = 0 WHERE scope = 'g' AND shard > 0`,
			`UPDATE usage SET bytes = (SELECT COALESCE(SUM(size), 0) FROM manifest)
					+ (SELECT COALESCE(SUM(b.size), 0) FROM usage_blob u JOIN blob b ON b.digest = u.blob_digest),
				manifests = (SELECT COUNT(*) FROM manifest), blobs = (SELECT COUNT(*) FROM usage_blob)
				WHERE scope = 'g' AND shard = 0`,
		} {
			if _, err := t.exec(ctx, q); err != nil {
				return nil, fmt.Errorf("rewriting the registry's usage counters: %w", err)
			}
		}
	}
	return out, nil
}

func (t *tx) VerifyUsage(ctx context.Context, fix bool) ([]meta.UsageDiff, error) {
	var out []meta.UsageDiff
	after := ""
	for {
		nss, err := t.Namespaces(ctx, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, ns := range nss {
			diffs, err := t.VerifyNamespaceUsage(ctx, ns.ID, fix)
			if err != nil {
				return nil, err
			}
			out = append(out, diffs...)
		}
		if len(nss) < 1000 {
			break
		}
		after = nss[len(nss)-1].Name
	}
	diffs, err := t.VerifyRegistryUsage(ctx, fix)
	if err != nil {
		return nil, err
	}
	out = append(out, diffs...)
	slices.SortStableFunc(out, func(a, b meta.UsageDiff) int { return cmp.Compare(a.Counter, b.Counter) })
	return out, nil
}
