package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
)

const namespaceCols = `id, name, state, tag_retention_us, public`

func scanNamespace(row interface{ Scan(...any) error }) (meta.Namespace, error) {
	var ns meta.Namespace
	var ret sql.NullInt64
	if err := row.Scan(&ns.ID, &ns.Name, &ns.State, &ret, &ns.Public); err != nil {
		return ns, err
	}
	if ret.Valid {
		d := time.Duration(ret.Int64) * time.Microsecond
		ns.TagRetention = &d
	}
	return ns, nil
}

func (t *tx) Namespace(ctx context.Context, name string, lock meta.Lock) (meta.Namespace, error) {
	ns, err := scanNamespace(t.queryRow(ctx, `SELECT `+namespaceCols+` FROM namespace WHERE name = ?`+t.lock(lock), name))
	if err != nil {
		return ns, notFound(err, "namespace %s", name)
	}
	return ns, nil
}

func nullRetention(retention *time.Duration) sql.NullInt64 {
	if retention == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: retention.Microseconds(), Valid: true}
}

func (t *tx) CreateNamespace(ctx context.Context, name string, retention *time.Duration) (meta.Namespace, bool, error) {
	res, err := t.exec(ctx, `INSERT INTO namespace (name, state, tag_retention_us) VALUES (?, 'active', ?) ON CONFLICT (name) DO NOTHING`,
		name, nullRetention(retention))
	if err != nil {
		return meta.Namespace{}, false, fmt.Errorf("creating namespace %s: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return meta.Namespace{}, false, fmt.Errorf("creating namespace %s: %w", name, err)
	}
	ns, err := t.Namespace(ctx, name, meta.LockNone)
	return ns, n == 1, err
}

func (t *tx) SetNamespaceRetention(ctx context.Context, name string, retention *time.Duration) (meta.Namespace, error) {
	res, err := t.exec(ctx, `UPDATE namespace SET tag_retention_us = ? WHERE name = ?`, nullRetention(retention), name)
	if err != nil {
		return meta.Namespace{}, fmt.Errorf("setting retention of namespace %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return meta.Namespace{}, fmt.Errorf("namespace %s: %w", name, meta.ErrNotFound)
	}
	return t.Namespace(ctx, name, meta.LockNone)
}

func (t *tx) SetNamespaceState(ctx context.Context, id int64, state string) error {
	if _, err := t.exec(ctx, `UPDATE namespace SET state = ? WHERE id = ?`, state, id); err != nil {
		return fmt.Errorf("setting namespace state: %w", err)
	}
	return nil
}

// DeleteNamespace deletes the namespace's usage counters with it (all zero
// once its repositories are gone), so that no other namespace inherits them
// with the id.
func (t *tx) DeleteNamespace(ctx context.Context, id int64) error {
	for _, q := range []string{
		`DELETE FROM namespace WHERE id = ?`,
		`DELETE FROM usage_namespace_blob WHERE namespace_id = ?`,
		`DELETE FROM usage WHERE scope = 'n' AND id = ?`,
	} {
		if _, err := t.exec(ctx, q, id); err != nil {
			return fmt.Errorf("deleting namespace: %w", err)
		}
	}
	return nil
}

const repoCols = `id, namespace_id, name, state, created_at`

func scanRepo(row interface{ Scan(...any) error }) (meta.Repository, error) {
	var r meta.Repository
	var created int64
	if err := row.Scan(&r.ID, &r.NamespaceID, &r.Name, &r.State, &created); err != nil {
		return r, err
	}
	r.CreatedAt = fromUS(created)
	return r, nil
}

func (t *tx) NamespaceRepositories(ctx context.Context, nsID int64, limit int) ([]meta.Repository, error) {
	rows, err := t.query(ctx, `SELECT `+repoCols+` FROM repository WHERE namespace_id = ? ORDER BY name LIMIT ?`, nsID, limit)
	if err != nil {
		return nil, fmt.Errorf("listing repositories of namespace: %w", err)
	}
	defer rows.Close()
	var out []meta.Repository
	for rows.Next() {
		r, err := scanRepo(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (t *tx) Repository(ctx context.Context, name string, lock meta.Lock) (meta.Repository, error) {
	r, err := scanRepo(t.queryRow(ctx, `SELECT `+repoCols+` FROM repository WHERE name = ?`+t.lock(lock), name))
	if err != nil {
		return r, notFound(err, "repository %s", name)
	}
	return r, nil
}

func (t *tx) RepositoryByID(ctx context.Context, id int64, lock meta.Lock) (meta.Repository, error) {
	r, err := scanRepo(t.queryRow(ctx, `SELECT `+repoCols+` FROM repository WHERE id = ?`+t.lock(lock), id))
	if err != nil {
		return r, notFound(err, "repository %d", id)
	}
	return r, nil
}

func (t *tx) EnsureRepository(ctx context.Context, name string, now time.Time) (meta.Repository, error) {
	nsName, _, _ := strings.Cut(name, "/")
	ns, err := t.Namespace(ctx, nsName, meta.LockShare)
	if errors.Is(err, meta.ErrNotFound) {
		if _, err := t.exec(ctx, `INSERT INTO namespace (name, state) VALUES (?, 'active') ON CONFLICT (name) DO NOTHING`, nsName); err != nil {
			return meta.Repository{}, fmt.Errorf("creating namespace %s: %w", nsName, err)
		}
		ns, err = t.Namespace(ctx, nsName, meta.LockShare)
	}
	if err != nil {
		return meta.Repository{}, err
	}
	if ns.State != meta.RepoActive {
		return meta.Repository{}, fmt.Errorf("namespace %s: %w", nsName, meta.ErrRepoDeleting)
	}
	r, err := t.Repository(ctx, name, meta.LockShare)
	if errors.Is(err, meta.ErrNotFound) {
		if _, err := t.exec(ctx, `INSERT INTO repository (namespace_id, name, state, created_at) VALUES (?, ?, 'active', ?) ON CONFLICT (name) DO NOTHING`,
			ns.ID, name, us(now)); err != nil {
			return meta.Repository{}, fmt.Errorf("creating repository %s: %w", name, err)
		}
		r, err = t.Repository(ctx, name, meta.LockShare)
	}
	if err != nil {
		return meta.Repository{}, err
	}
	if r.State != meta.RepoActive {
		return meta.Repository{}, fmt.Errorf("repository %s: %w", name, meta.ErrRepoDeleting)
	}
	t.rememberNamespace(r)
	return r, nil
}

func (t *tx) Repositories(ctx context.Context, prefix, last string, n int) ([]string, error) {
	// The filter is in the statement, not applied to a page afterwards, so
	// that n and last page through exactly the listed repositories.
	rows, err := t.query(ctx, `SELECT name FROM repository r WHERE state = 'active' AND name > ? AND substr(name, 1, ?) = ?
		AND EXISTS (SELECT 1 FROM manifest m WHERE m.repository_id = r.id) ORDER BY name LIMIT ?`,
		last, len(prefix), prefix, n)
	if err != nil {
		return nil, fmt.Errorf("listing repositories: %w", err)
	}
	return scanStrings(rows)
}

func (t *tx) SetRepositoryState(ctx context.Context, id int64, state string) error {
	if _, err := t.exec(ctx, `UPDATE repository SET state = ? WHERE id = ?`, state, id); err != nil {
		return fmt.Errorf("setting repository state: %w", err)
	}
	return nil
}

func (t *tx) DeleteRepository(ctx context.Context, id int64) error {
	if _, err := t.exec(ctx, `DELETE FROM review WHERE kind = ? AND object = ?`, review.KindPurge, review.RepoPurgeObject(id)); err != nil {
		return fmt.Errorf("deleting repository: %w", err)
	}
	// Its usage counters (all zero once its manifests are gone) go with
	// it: SQLite may give its id to the next repository.
	for _, q := range []string{
		`DELETE FROM repository WHERE id = ?`,
		`DELETE FROM usage_repository_blob WHERE repository_id = ?`,
		`DELETE FROM usage WHERE scope = 'r' AND id = ?`,
	} {
		if _, err := t.exec(ctx, q, id); err != nil {
			return fmt.Errorf("deleting repository: %w", err)
		}
	}
	return nil
}

func (t *tx) RepositoryIsEmpty(ctx context.Context, id int64) (bool, error) {
	for _, table := range []string{"tag", "manifest", "repository_blob", "uploaded_blob", "upload"} {
		found, err := t.exists(ctx, `SELECT 1 FROM `+table+` WHERE repository_id = ? LIMIT 1`, id)
		if err != nil {
			return false, fmt.Errorf("checking %s rows of repository: %w", table, err)
		}
		if found {
			return false, nil
		}
	}
	return true, nil
}

func scanStrings(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
