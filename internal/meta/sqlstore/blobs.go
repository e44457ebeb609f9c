package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
)

const blobCols = `digest, size, storage_key, created_at`

func scanBlob(row interface{ Scan(...any) error }) (meta.Blob, error) {
	var b meta.Blob
	var dg string
	var created int64
	if err := row.Scan(&dg, &b.Size, &b.StorageKey, &created); err != nil {
		return b, err
	}
	b.Digest = digest.Digest(dg)
	b.CreatedAt = fromUS(created)
	return b, nil
}

func (t *tx) Blob(ctx context.Context, d digest.Digest, lock meta.Lock) (meta.Blob, error) {
	b, err := scanBlob(t.queryRow(ctx, `SELECT `+blobCols+` FROM blob WHERE digest = ?`+t.lock(lock), d.String()))
	if err != nil {
		return b, notFound(err, "blob %s", d)
	}
	return b, nil
}

func (t *tx) InsertBlob(ctx context.Context, b meta.Blob) (meta.Blob, bool, error) {
	res, err := t.exec(ctx, `INSERT INTO blob (`+blobCols+`) VALUES (?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING`,
		b.Digest.String(), b.Size, b.StorageKey, us(b.CreatedAt))
	if err != nil {
		return b, false, fmt.Errorf("inserting blob %s: %w", b.Digest, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return b, true, nil
	}
	row, err := t.Blob(ctx, b.Digest, meta.LockShare)
	if errors.Is(err, meta.ErrNotFound) {
		// Deleted between our insert and our read: the collector won; a
		// retry inserts our row.
		return b, false, fmt.Errorf("blob %s deleted concurrently: %w", b.Digest, meta.ErrConflict)
	}
	return row, false, err
}

func (t *tx) DeleteBlob(ctx context.Context, d digest.Digest) error {
	if _, err := t.exec(ctx, `DELETE FROM blob WHERE digest = ?`, d.String()); err != nil {
		return fmt.Errorf("deleting blob %s: %w", d, err)
	}
	return nil
}

func (t *tx) BlobLinked(ctx context.Context, d digest.Digest) (bool, error) {
	ok, err := t.exists(ctx, `SELECT 1 FROM repository_blob WHERE blob_digest = ? LIMIT 1`, d.String())
	if err != nil {
		return false, fmt.Errorf("checking links of blob %s: %w", d, err)
	}
	return ok, nil
}

// RepoBlob locks the link row and then the blob row (lock order: link, blob).
func (t *tx) RepoBlob(ctx context.Context, repoID int64, d digest.Digest, lock meta.Lock) (meta.Blob, error) {
	found, err := t.exists(ctx, `SELECT 1 FROM repository_blob WHERE repository_id = ? AND blob_digest = ? AND deleted_at IS NULL`+t.lock(lock), repoID, d.String())
	if err != nil {
		return meta.Blob{}, fmt.Errorf("reading link of blob %s: %w", d, err)
	}
	if !found {
		return meta.Blob{}, fmt.Errorf("blob %s in repository: %w", d, meta.ErrNotFound)
	}
	return t.Blob(ctx, d, lock)
}

func (t *tx) Link(ctx context.Context, repoID int64, d digest.Digest, lock meta.Lock) (bool, error) {
	var deleted sql.NullInt64
	err := t.queryRow(ctx, `SELECT deleted_at FROM repository_blob WHERE repository_id = ? AND blob_digest = ?`+t.lock(lock), repoID, d.String()).Scan(&deleted)
	if err != nil {
		return false, notFound(err, "link of blob %s", d)
	}
	return deleted.Valid, nil
}

func (t *tx) LinkBlob(ctx context.Context, repoID int64, d digest.Digest, now time.Time) error {
	if _, err := t.exec(ctx, `INSERT INTO repository_blob (repository_id, blob_digest, created_at) VALUES (?, ?, ?)
		ON CONFLICT (repository_id, blob_digest) DO UPDATE SET deleted_at = NULL`, repoID, d.String(), us(now)); err != nil {
		return fmt.Errorf("linking blob %s: %w", d, err)
	}
	return nil
}

func (t *tx) WithdrawLink(ctx context.Context, repoID int64, d digest.Digest, at time.Time) error {
	res, err := t.exec(ctx, `UPDATE repository_blob SET deleted_at = ? WHERE repository_id = ? AND blob_digest = ? AND deleted_at IS NULL`,
		us(at), repoID, d.String())
	if err != nil {
		return fmt.Errorf("withdrawing link of blob %s: %w", d, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("withdrawing link of blob %s: %w", d, meta.ErrNotFound)
	}
	return nil
}

func (t *tx) BlobReferenced(ctx context.Context, repoID int64, d digest.Digest, withdrawn bool) (bool, error) {
	used, err := t.exists(ctx, `SELECT 1 FROM manifest_blob mb JOIN manifest m ON m.repository_id = mb.repository_id AND m.digest = mb.manifest_digest
		WHERE mb.repository_id = ? AND mb.blob_digest = ? AND (? OR m.deleted_at IS NULL) LIMIT 1`, repoID, d.String(), withdrawn)
	if err != nil {
		return false, fmt.Errorf("reading references to blob %s: %w", d, err)
	}
	return used, nil
}

func (t *tx) UnlinkBlob(ctx context.Context, repoID int64, d digest.Digest) error {
	if _, err := t.exec(ctx, `DELETE FROM repository_blob WHERE repository_id = ? AND blob_digest = ?`, repoID, d.String()); err != nil {
		return fmt.Errorf("unlinking blob %s: %w", d, err)
	}
	return nil
}

func (t *tx) LinkInUse(ctx context.Context, repoID int64, d digest.Digest, now time.Time) (bool, error) {
	used, err := t.exists(ctx, `SELECT 1 FROM manifest_blob WHERE repository_id = ? AND blob_digest = ? LIMIT 1`, repoID, d.String())
	if err != nil || used {
		return used, err
	}
	return t.exists(ctx, `SELECT 1 FROM uploaded_blob WHERE repository_id = ? AND blob_digest = ? AND expires_at > ?`, repoID, d.String(), us(now))
}

func (t *tx) RepoLinks(ctx context.Context, repoID int64, limit int) ([]digest.Digest, error) {
	ds, err := scanDigests(t.query(ctx, `SELECT blob_digest FROM repository_blob WHERE repository_id = ? ORDER BY blob_digest LIMIT ?`, repoID, limit))
	if err != nil {
		return nil, fmt.Errorf("listing links of repository: %w", err)
	}
	return ds, nil
}

func (t *tx) PutUploadedBlob(ctx context.Context, repoID int64, d digest.Digest, expiresAt time.Time) error {
	if _, err := t.exec(ctx, `INSERT INTO uploaded_blob (repository_id, blob_digest, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (repository_id, blob_digest) DO UPDATE SET expires_at =
			CASE WHEN excluded.expires_at > uploaded_blob.expires_at THEN excluded.expires_at ELSE uploaded_blob.expires_at END`,
		repoID, d.String(), us(expiresAt)); err != nil {
		return fmt.Errorf("recording uploaded blob %s: %w", d, err)
	}
	return nil
}

func (t *tx) UploadedBlobExpiry(ctx context.Context, repoID int64, d digest.Digest) (time.Time, error) {
	var v int64
	err := t.queryRow(ctx, `SELECT expires_at FROM uploaded_blob WHERE repository_id = ? AND blob_digest = ?`+t.lock(meta.LockUpdate),
		repoID, d.String()).Scan(&v)
	if err != nil {
		return time.Time{}, notFound(err, "uploaded blob %s", d)
	}
	return fromUS(v), nil
}

func (t *tx) DeleteUploadedBlob(ctx context.Context, repoID int64, d digest.Digest) error {
	if _, err := t.exec(ctx, `DELETE FROM uploaded_blob WHERE repository_id = ? AND blob_digest = ?`, repoID, d.String()); err != nil {
		return fmt.Errorf("deleting uploaded blob %s: %w", d, err)
	}
	return nil
}

func (t *tx) DeleteRepoUploadedBlobs(ctx context.Context, repoID int64) (int64, error) {
	res, err := t.exec(ctx, `DELETE FROM uploaded_blob WHERE repository_id = ?`, repoID)
	if err != nil {
		return 0, fmt.Errorf("deleting uploaded blobs of repository: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

func (t *tx) PutTombstone(ctx context.Context, ts meta.Tombstone) error {
	if _, err := t.exec(ctx, `INSERT INTO tombstone (storage_key, since) VALUES (?, ?) ON CONFLICT (storage_key) DO NOTHING`,
		ts.StorageKey, us(ts.Since)); err != nil {
		return fmt.Errorf("writing tombstone %s: %w", ts.StorageKey, err)
	}
	return nil
}

func (t *tx) Tombstones(ctx context.Context, limit int) ([]meta.Tombstone, error) {
	rows, err := t.query(ctx, `SELECT storage_key, since FROM tombstone ORDER BY since LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("listing tombstones: %w", err)
	}
	defer rows.Close()
	var out []meta.Tombstone
	for rows.Next() {
		var ts meta.Tombstone
		var since int64
		if err := rows.Scan(&ts.StorageKey, &since); err != nil {
			return nil, err
		}
		ts.Since = fromUS(since)
		out = append(out, ts)
	}
	return out, rows.Err()
}

func (t *tx) DeleteTombstones(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	if _, err := t.exec(ctx, `DELETE FROM tombstone WHERE storage_key IN `+t.d.keyList(), jsonKeys(keys)); err != nil {
		return fmt.Errorf("deleting %d tombstones: %w", len(keys), err)
	}
	return nil
}

func (t *tx) StorageKeyKnown(ctx context.Context, key string) (bool, error) {
	known, err := t.exists(ctx, `SELECT 1 FROM blob WHERE storage_key = ?`, key)
	if err != nil || known {
		return known, err
	}
	return t.exists(ctx, `SELECT 1 FROM tombstone WHERE storage_key = ?`, key)
}
