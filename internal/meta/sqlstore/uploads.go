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

// lockClassUploads is the first key of the advisory locks of
// LockRepoUploads ("bert" in ASCII), so they never meet another use of
// advisory locks on the same database.
const lockClassUploads int32 = 0x62657274

func (t *tx) LockRepoUploads(ctx context.Context, repoID int64) error {
	q := t.d.xactLock()
	if q == "" {
		return nil
	}
	// The second key is 32 bits: ids past 2^32 share a lock with another
	// repository's, which only serializes the two a little more.
	if _, err := t.exec(ctx, q, lockClassUploads, int32(repoID)); err != nil {
		return fmt.Errorf("locking the upload sessions of repository %d: %w", repoID, err)
	}
	return nil
}

func (t *tx) CountUploads(ctx context.Context, repoID int64, since time.Time, limit int) (int, error) {
	// The LIMIT inside bounds the work of a count near the cap; the
	// indexes of migration 0002 make it an index range scan.
	q := `SELECT COUNT(*) FROM (SELECT 1 FROM upload WHERE updated_at > ? LIMIT ?) AS active`
	args := []any{us(since), limit}
	if repoID != 0 {
		q = `SELECT COUNT(*) FROM (SELECT 1 FROM upload WHERE repository_id = ? AND updated_at > ? LIMIT ?) AS active`
		args = []any{repoID, us(since), limit}
	}
	var n int
	if err := t.queryRow(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting upload sessions: %w", err)
	}
	return n, nil
}
