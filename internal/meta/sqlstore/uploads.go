package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/berth/berth/internal/meta"
)

const uploadCols = `id, repository_id, size, started_at, updated_at`

func scanUpload(row interface{ Scan(...any) error }) (meta.Upload, error) {
	var u meta.Upload
	var started, updated int64
	if err := row.Scan(&u.ID, &u.RepoID, &u.Size, &started, &updated); err != nil {
		return u, err
	}
	u.StartedAt, u.UpdatedAt = fromUS(started), fromUS(updated)
	return u, nil
}

func (t *tx) CreateUpload(ctx context.Context, u meta.Upload) error {
	if _, err := t.exec(ctx, `INSERT INTO upload (`+uploadCols+`) VALUES (?, ?, ?, ?, ?)`,
		u.ID, u.RepoID, u.Size, us(u.StartedAt), us(u.UpdatedAt)); err != nil {
		return fmt.Errorf("creating upload %s: %w", u.ID, err)
	}
	return nil
}

func (t *tx) Upload(ctx context.Context, id string, lock meta.Lock) (meta.Upload, error) {
	u, err := scanUpload(t.queryRow(ctx, `SELECT `+uploadCols+` FROM upload WHERE id = ?`+t.lock(lock), id))
	if err != nil {
		return u, notFound(err, "upload %s", id)
	}
	return u, nil
}

func (t *tx) SetUploadSize(ctx context.Context, id string, size int64, now time.Time) error {
	res, err := t.exec(ctx, `UPDATE upload SET size = ?, updated_at = ? WHERE id = ?`, size, us(now), id)
	if err != nil {
		return fmt.Errorf("updating upload %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("upload %s: %w", id, meta.ErrNotFound)
	}
	return nil
}

func (t *tx) DeleteUpload(ctx context.Context, id string) error {
	if _, err := t.exec(ctx, `DELETE FROM upload WHERE id = ?`, id); err != nil {
		return fmt.Errorf("deleting upload %s: %w", id, err)
	}
	return nil
}

func (t *tx) RepoUploads(ctx context.Context, repoID int64, limit int) ([]meta.Upload, error) {
	rows, err := t.query(ctx, `SELECT `+uploadCols+` FROM upload WHERE repository_id = ? ORDER BY id LIMIT ?`, repoID, limit)
	if err != nil {
		return nil, fmt.Errorf("listing uploads of repository: %w", err)
	}
	defer rows.Close()
	var out []meta.Upload
	for rows.Next() {
		u, err := scanUpload(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

func (t *tx) UploadKnown(ctx context.Context, id string) (bool, error) {
	return t.exists(ctx, `SELECT 1 FROM upload WHERE id = ?`, id)
}
