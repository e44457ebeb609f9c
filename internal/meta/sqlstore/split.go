package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/berth/berth/internal/meta"
)

// scopeFilter is the condition on repository r that selects the scope, and
// its one argument.
func scopeFilter(s meta.SplitScope) (string, int64, error) {
	switch {
	case s.RepoID != 0 && s.NamespaceID == 0:
		return "r.id = ?", s.RepoID, nil
	case s.NamespaceID != 0 && s.RepoID == 0:
		return "r.namespace_id = ?", s.NamespaceID, nil
	}
	return "", 0, errors.New("a split scope names exactly one repository or namespace")
}

func (t *tx) ScopeManifests(ctx context.Context, s meta.SplitScope, limit int) (int, error) {
	filter, id, err := scopeFilter(s)
	if err != nil {
		return 0, err
	}
	var n int
	if err := t.queryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM manifest m JOIN repository r ON r.id = m.repository_id
		WHERE `+filter+` LIMIT ?) c`, id, limit).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting the manifests of the scope: %w", err)
	}
	return n, nil
}

// splitQuery classifies a scope's manifests and blobs in one statement
// (docs/design/usage.md, "Splitting by reachability"), the classes numbered as
// meta.HeldClass. The roots are the tag rows of the scope, live (class 0) or
// ended inside their namespace's window (1), their end being the earlier of
// lifetime_end and a passed expiry, as the time machine reads it; and the
// manifests inside their untagged grace or pinned by collect_untagged: false
// (2). The recursive step follows what keeps a manifest in gc.md: an index
// keeps its children (a withdrawn index too), a manifest its referrers
// unless they were withdrawn. PostgreSQL allows one recursive reference, so
// both edges are taken in one step: each row of reach is paired with k = 0
// (children) and k = 1 (referrers), and only that edge's join matches. Every
// edge stays inside one repository, so the walk never leaves the scope. A
// manifest takes the first class of any root that reaches it (best), a blob
// the first class of the reached manifests that reference it (held_blob).
//
// The reclaimable class is what remains: the statement also answers the
// scope's totals as class 4, and UsageSplit subtracts. Every join scans a
// CTE and probes a table by its index, never the other way round: SQLite
// would probe a CTE through an automatic index at best, and by scanning it
// for every row at worst.
//
// Arguments: default window, scope id, now, now, grace, now, keep untagged.
const splitQuery = `WITH RECURSIVE
scope(id, ret) AS (
	SELECT r.id, COALESCE(n.tag_retention_us, ?) FROM repository r JOIN namespace n ON n.id = r.namespace_id
	WHERE {filter}
),
root(repository_id, digest, class) AS (
	SELECT repository_id, digest, CASE WHEN eff IS NULL OR eff > ? THEN 0 ELSE 1 END FROM (
		SELECT t.repository_id, t.manifest_digest AS digest, s.ret,
			CASE WHEN t.expires_at IS NOT NULL AND (t.lifetime_end IS NULL OR t.expires_at < t.lifetime_end)
				THEN t.expires_at ELSE t.lifetime_end END AS eff
		FROM scope s JOIN tag t ON t.repository_id = s.id
	) e
	WHERE eff IS NULL OR eff + ret > ?
	UNION ALL
	SELECT m.repository_id, m.digest, 2 FROM scope s JOIN manifest m ON m.repository_id = s.id
	WHERE m.deleted_at IS NULL AND (m.pushed_at + ? > ? OR (? = 1 AND m.subject_digest = ''
		AND NOT EXISTS (SELECT 1 FROM tag t WHERE t.repository_id = m.repository_id AND t.manifest_digest = m.digest)))
),
reach(repository_id, digest, class) AS (
	SELECT o.repository_id, o.digest, MIN(o.class) FROM root o
	JOIN manifest m ON m.repository_id = o.repository_id AND m.digest = o.digest
	GROUP BY o.repository_id, o.digest
	UNION
	SELECT p.repository_id, CASE WHEN k.k = 0 THEN c.child_digest ELSE r.digest END, p.class
	FROM reach p CROSS JOIN (SELECT 0 AS k UNION ALL SELECT 1) k
	LEFT JOIN manifest_child c ON k.k = 0 AND c.repository_id = p.repository_id AND c.parent_digest = p.digest
	LEFT JOIN manifest r ON k.k = 1 AND r.repository_id = p.repository_id AND r.subject_digest = p.digest
		AND r.subject_digest <> '' AND r.deleted_at IS NULL
	WHERE c.child_digest IS NOT NULL OR r.digest IS NOT NULL
),
best(repository_id, digest, class) AS (
	SELECT repository_id, digest, MIN(class) FROM reach GROUP BY repository_id, digest
),
held_blob(digest, class) AS (
	SELECT mb.blob_digest, MIN(b.class) FROM best b
	JOIN manifest_blob mb ON mb.repository_id = b.repository_id AND mb.manifest_digest = b.digest
	GROUP BY mb.blob_digest
),
scope_blob(digest) AS (
	SELECT DISTINCT mb.blob_digest FROM scope s JOIN manifest_blob mb ON mb.repository_id = s.id
)
SELECT 0, b.class, COUNT(*), CAST(COALESCE(SUM(m.size), 0) AS BIGINT) FROM best b
	JOIN manifest m ON m.repository_id = b.repository_id AND m.digest = b.digest GROUP BY b.class
UNION ALL
SELECT 0, 4, COUNT(*), CAST(COALESCE(SUM(m.size), 0) AS BIGINT) FROM scope s JOIN manifest m ON m.repository_id = s.id
UNION ALL
SELECT 1, x.class, COUNT(*), CAST(COALESCE(SUM(bl.size), 0) AS BIGINT) FROM held_blob x JOIN blob bl ON bl.digest = x.digest GROUP BY x.class
UNION ALL
SELECT 1, 4, COUNT(*), CAST(COALESCE(SUM(bl.size), 0) AS BIGINT) FROM scope_blob x JOIN blob bl ON bl.digest = x.digest`

// splitTotal is the pseudo-class of the scope's totals in splitQuery.
const splitTotal = 4

func (t *tx) UsageSplit(ctx context.Context, s meta.SplitScope, p meta.SplitPolicy) (meta.Split, error) {
	var out meta.Split
	filter, id, err := scopeFilter(s)
	if err != nil {
		return out, err
	}
	keep := 0
	if p.KeepUntagged {
		keep = 1
	}
	now := us(p.Now)
	rows, err := t.query(ctx, strings.Replace(splitQuery, "{filter}", filter, 1),
		p.Retention.Microseconds(), id, now, now, p.Grace.Microseconds(), now, keep)
	if err != nil {
		return out, fmt.Errorf("classifying the bytes of the scope: %w", err)
	}
	defer rows.Close()
	var total meta.Held
	for rows.Next() {
		var blob, class int
		var n, bytes int64
		if err := rows.Scan(&blob, &class, &n, &bytes); err != nil {
			return out, fmt.Errorf("classifying the bytes of the scope: %w", err)
		}
		h := &total
		if class != splitTotal {
			if class < 0 || class >= int(meta.HeldReclaimable) {
				return out, fmt.Errorf("classifying the bytes of the scope: class %d out of range", class)
			}
			h = &out[class]
		}
		if blob == 1 {
			h.Blobs, h.BlobBytes = n, bytes
		} else {
			h.Manifests, h.ManifestBytes = n, bytes
		}
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("classifying the bytes of the scope: %w", err)
	}
	held := out.Total()
	out[meta.HeldReclaimable] = meta.Held{
		Manifests: total.Manifests - held.Manifests, ManifestBytes: total.ManifestBytes - held.ManifestBytes,
		Blobs: total.Blobs - held.Blobs, BlobBytes: total.BlobBytes - held.BlobBytes,
	}
	return out, nil
}
