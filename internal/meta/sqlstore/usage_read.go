package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/berth/berth/internal/meta"
)

// Reading the usage counters and the quotas (docs/design/usage.md, "Reading
// usage" and "Quotas"): point reads of the counter rows, never a scan of the
// data model.

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
