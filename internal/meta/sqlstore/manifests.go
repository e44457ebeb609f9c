package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
)

// manifestInsertCols are written by PutManifest; manifestCols are read.
const (
	manifestInsertCols = `repository_id, digest, media_type, artifact_type, subject_digest, size, body, pushed_at`
	manifestCols       = manifestInsertCols + `, deleted_at`
)

func scanManifest(row interface{ Scan(...any) error }) (meta.Manifest, error) {
	var m meta.Manifest
	var dg, subject string
	var pushed int64
	var deleted sql.NullInt64
	if err := row.Scan(&m.RepoID, &dg, &m.MediaType, &m.ArtifactType, &subject, &m.Size, &m.Body, &pushed, &deleted); err != nil {
		return m, err
	}
	m.Digest = digest.Digest(dg)
	m.Subject = digest.Digest(subject)
	m.PushedAt = fromUS(pushed)
	m.DeletedAt = fromNullUS(deleted)
	return m, nil
}

func (t *tx) Manifest(ctx context.Context, repoID int64, d digest.Digest, lock meta.Lock) (meta.Manifest, error) {
	m, err := scanManifest(t.queryRow(ctx, `SELECT `+manifestCols+` FROM manifest WHERE repository_id = ? AND digest = ?`+t.lock(lock),
		repoID, d.String()))
	if err != nil {
		return m, notFound(err, "manifest %s", d)
	}
	return m, nil
}

func (t *tx) PutManifest(ctx context.Context, m meta.Manifest, e meta.ManifestEdges) (bool, error) {
	res, err := t.exec(ctx, `INSERT INTO manifest (`+manifestInsertCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (repository_id, digest) DO NOTHING`,
		m.RepoID, m.Digest.String(), m.MediaType, m.ArtifactType, m.Subject.String(), m.Size, m.Body, us(m.PushedAt))
	if err != nil {
		return false, fmt.Errorf("inserting manifest %s: %w", m.Digest, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		// Already stored: the UPDATE locks it exclusively (the collector may
		// be deleting it right now; then retry the transaction, whose insert
		// will win), and a re-PUT refreshes the untagged grace and brings a
		// withdrawn manifest back. One exclusive lock, not a shared lock then
		// an update: two concurrent re-PUTs each holding the shared lock and
		// waiting to upgrade it deadlock on PostgreSQL.
		res, err := t.exec(ctx, `UPDATE manifest SET pushed_at = CASE WHEN pushed_at < ? THEN ? ELSE pushed_at END, deleted_at = NULL
			WHERE repository_id = ? AND digest = ?`,
			us(m.PushedAt), us(m.PushedAt), m.RepoID, m.Digest.String())
		if err != nil {
			return false, fmt.Errorf("refreshing manifest %s: %w", m.Digest, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return false, fmt.Errorf("manifest %s deleted concurrently: %w", m.Digest, meta.ErrConflict)
		}
		return false, nil
	}
	for _, c := range uniqueDigests(e.Children) {
		if _, err := t.exec(ctx, `INSERT INTO manifest_child (repository_id, parent_digest, child_digest) VALUES (?, ?, ?)`,
			m.RepoID, m.Digest.String(), c.String()); err != nil {
			return false, fmt.Errorf("recording child %s of %s: %w", c, m.Digest, err)
		}
	}
	t.noteManifest(m.RepoID, m.Digest, m.Size, 1)
	if blobs := uniqueDigests(e.Blobs); len(blobs) > 0 {
		if _, err := t.exec(ctx, `INSERT INTO manifest_blob (repository_id, manifest_digest, blob_digest) SELECT ?, ?, k.v FROM `+t.d.keyList()+` k`,
			m.RepoID, m.Digest.String(), jsonKeys(blobs)); err != nil {
			return false, fmt.Errorf("recording the blobs of %s: %w", m.Digest, err)
		}
		for _, b := range blobs {
			t.noteEdge(m.RepoID, b, -1, 1)
		}
	}
	keys := make([]string, 0, len(e.Labels))
	for k := range e.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys) // lock order: labels by key
	for _, k := range keys {
		var id int64
		// The no-op update makes the upsert return the row and lock it, so
		// the collector cannot delete the label before we link it.
		if err := t.queryRow(ctx, `INSERT INTO label (key, value) VALUES (?, ?)
			ON CONFLICT (key, value) DO UPDATE SET key = excluded.key RETURNING id`, k, e.Labels[k]).Scan(&id); err != nil {
			return false, fmt.Errorf("recording label %s of %s: %w", k, m.Digest, err)
		}
		if _, err := t.exec(ctx, `INSERT INTO manifest_label (repository_id, manifest_digest, label_id) VALUES (?, ?, ?)`,
			m.RepoID, m.Digest.String(), id); err != nil {
			return false, fmt.Errorf("linking label %s of %s: %w", k, m.Digest, err)
		}
	}
	return true, nil
}

func uniqueDigests(ds []digest.Digest) []digest.Digest {
	seen := make(map[digest.Digest]bool, len(ds))
	out := make([]digest.Digest, 0, len(ds))
	for _, d := range ds {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// DeleteManifest records what it removes for the usage counters: the
// manifest's size and each blob edge, with the blob's size.
func (t *tx) DeleteManifest(ctx context.Context, repoID int64, d digest.Digest) (meta.ManifestRefs, error) {
	var refs meta.ManifestRefs
	ds := d.String()
	children, err := scanDigests(t.query(ctx, `SELECT child_digest FROM manifest_child WHERE repository_id = ? AND parent_digest = ? ORDER BY child_digest`, repoID, ds))
	if err != nil {
		return refs, fmt.Errorf("reading children of %s: %w", d, err)
	}
	rows, err := t.query(ctx, `SELECT label_id FROM manifest_label WHERE repository_id = ? AND manifest_digest = ? ORDER BY label_id`, repoID, ds)
	if err != nil {
		return refs, fmt.Errorf("reading labels of %s: %w", d, err)
	}
	labels, err := scanInts(rows)
	if err != nil {
		return refs, err
	}
	refs = meta.ManifestRefs{Children: children, LabelIDs: labels}
	for _, q := range []string{
		`DELETE FROM manifest_child WHERE repository_id = ? AND parent_digest = ?`,
		`DELETE FROM manifest_label WHERE repository_id = ? AND manifest_digest = ?`,
	} {
		if _, err := t.exec(ctx, q, repoID, ds); err != nil {
			return refs, fmt.Errorf("deleting manifest %s: %w", d, err)
		}
	}
	edges, err := t.deleteEdges(ctx, `DELETE FROM manifest_blob WHERE repository_id = ? AND manifest_digest = ?`, repoID, ds)
	if err != nil {
		return refs, fmt.Errorf("deleting manifest %s: %w", d, err)
	}
	for _, e := range edges {
		refs.Blobs = append(refs.Blobs, e.Digest)
	}
	slices.Sort(refs.Blobs)
	if err := t.deleteManifestRows(ctx, `DELETE FROM manifest WHERE repository_id = ? AND digest = ?`, repoID, ds); err != nil {
		return refs, fmt.Errorf("deleting manifest %s: %w", d, err)
	}
	return refs, nil
}

// deleteEdges runs a DELETE of manifest_blob rows and records each edge it
// removed for the usage counters, with its blob's size: the blob row may be
// gone by the time the counters are applied (a collector transaction can
// delete the link and the blob after the manifest).
func (t *tx) deleteEdges(ctx context.Context, q string, args ...any) ([]meta.RepoDigest, error) {
	rows, err := t.query(ctx, q+` RETURNING repository_id, blob_digest, (SELECT b.size FROM blob b WHERE b.digest = manifest_blob.blob_digest)`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []meta.RepoDigest
	for rows.Next() {
		var k meta.RepoDigest
		var size sql.NullInt64
		if err := rows.Scan(&k.RepoID, &k.Digest, &size); err != nil {
			return nil, err
		}
		if !size.Valid {
			size.Int64 = -1
		}
		t.noteEdge(k.RepoID, k.Digest, size.Int64, -1)
		out = append(out, k)
	}
	return out, rows.Err()
}

// deleteManifestRows runs a DELETE of manifest rows and records each one
// for the usage counters.
func (t *tx) deleteManifestRows(ctx context.Context, q string, args ...any) error {
	rows, err := t.query(ctx, q+` RETURNING repository_id, digest, size`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k meta.RepoDigest
		var size int64
		if err := rows.Scan(&k.RepoID, &k.Digest, &size); err != nil {
			return err
		}
		t.noteManifest(k.RepoID, k.Digest, size, -1)
	}
	return rows.Err()
}

func (t *tx) WithdrawManifest(ctx context.Context, repoID int64, d digest.Digest, at time.Time) error {
	res, err := t.exec(ctx, `UPDATE manifest SET deleted_at = ? WHERE repository_id = ? AND digest = ? AND deleted_at IS NULL`,
		us(at), repoID, d.String())
	if err != nil {
		return fmt.Errorf("withdrawing manifest %s: %w", d, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("withdrawing manifest %s: no stored manifest: %w", d, meta.ErrNotFound)
	}
	return nil
}

func (t *tx) RestoreManifest(ctx context.Context, repoID int64, d digest.Digest) error {
	if _, err := t.exec(ctx, `UPDATE manifest SET deleted_at = NULL WHERE repository_id = ? AND digest = ?`, repoID, d.String()); err != nil {
		return fmt.Errorf("restoring manifest %s: %w", d, err)
	}
	if _, err := t.exec(ctx, `UPDATE repository_blob SET deleted_at = NULL WHERE repository_id = ? AND deleted_at IS NOT NULL AND blob_digest IN (
		SELECT blob_digest FROM manifest_blob WHERE repository_id = ? AND manifest_digest = ?)`, repoID, repoID, d.String()); err != nil {
		return fmt.Errorf("restoring the links of manifest %s: %w", d, err)
	}
	return nil
}

func (t *tx) ManifestChildren(ctx context.Context, repoID int64, d digest.Digest) ([]digest.Digest, error) {
	ds, err := scanDigests(t.query(ctx, `SELECT child_digest FROM manifest_child WHERE repository_id = ? AND parent_digest = ? ORDER BY child_digest`,
		repoID, d.String()))
	if err != nil {
		return nil, fmt.Errorf("reading children of %s: %w", d, err)
	}
	return ds, nil
}

func (t *tx) ManifestParents(ctx context.Context, repoID int64, d digest.Digest, withdrawn bool, limit int) ([]digest.Digest, error) {
	ds, err := scanDigests(t.query(ctx, `SELECT c.parent_digest FROM manifest_child c
		JOIN manifest m ON m.repository_id = c.repository_id AND m.digest = c.parent_digest
		WHERE c.repository_id = ? AND c.child_digest = ? AND (? OR m.deleted_at IS NULL) ORDER BY c.parent_digest LIMIT ?`,
		repoID, d.String(), withdrawn, limit))
	if err != nil {
		return nil, fmt.Errorf("reading parents of %s: %w", d, err)
	}
	return ds, nil
}

// Referrers repeats the partial index's predicate (a non-empty subject) so
// PostgreSQL can use manifest_subject under a generic plan too.
// Referrers reads through the partial index manifest_subject. The rows are
// sorted here, not by the statement: asked for ORDER BY digest, SQLite (no
// statistics) walks the repository's primary key in digest order instead,
// reading every manifest of the repository, on every manifest PUT.
// PostgreSQL keeps the ORDER BY, which is also the order its row locks are
// taken in (two writers locking one subject's referrers never cross).
func (t *tx) Referrers(ctx context.Context, repoID int64, subject digest.Digest, artifactType string, lock meta.Lock) ([]meta.Manifest, error) {
	order := ""
	if t.d.name() == "postgres" {
		order = ` ORDER BY digest`
	}
	rows, err := t.query(ctx, `SELECT `+manifestCols+` FROM manifest
		WHERE repository_id = ? AND subject_digest = ? AND subject_digest <> '' AND (? = '' OR artifact_type = ?)`+order+t.lock(lock),
		repoID, subject.String(), artifactType, artifactType)
	if err != nil {
		return nil, fmt.Errorf("listing referrers of %s: %w", subject, err)
	}
	defer rows.Close()
	var out []meta.Manifest
	for rows.Next() {
		m, err := scanManifest(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b meta.Manifest) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	return out, rows.Err()
}

func (t *tx) ManifestLabels(ctx context.Context, repoID int64, d digest.Digest) (map[string]string, error) {
	rows, err := t.query(ctx, `SELECT l.key, l.value FROM manifest_label ml JOIN label l ON l.id = ml.label_id
		WHERE ml.repository_id = ? AND ml.manifest_digest = ?`, repoID, d.String())
	if err != nil {
		return nil, fmt.Errorf("reading labels of %s: %w", d, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, rows.Err()
}

func (t *tx) RepoManifests(ctx context.Context, repoID int64, limit int) ([]digest.Digest, error) {
	ds, err := scanDigests(t.query(ctx, `SELECT m.digest FROM manifest m
		WHERE m.repository_id = ? AND NOT EXISTS (
			SELECT 1 FROM manifest_child c WHERE c.repository_id = m.repository_id AND c.child_digest = m.digest)
		ORDER BY m.digest LIMIT ?`, repoID, limit))
	if err != nil {
		return nil, fmt.Errorf("listing manifests of repository: %w", err)
	}
	return ds, nil
}

func (t *tx) LabelInUse(ctx context.Context, id int64) (exists, used bool, err error) {
	exists, err = t.exists(ctx, `SELECT 1 FROM label WHERE id = ?`+t.lock(meta.LockUpdate), id)
	if err != nil || !exists {
		return exists, false, err
	}
	used, err = t.exists(ctx, `SELECT 1 FROM manifest_label WHERE label_id = ? LIMIT 1`, id)
	return true, used, err
}

func (t *tx) DeleteLabel(ctx context.Context, id int64) error {
	if _, err := t.exec(ctx, `DELETE FROM label WHERE id = ?`, id); err != nil {
		return fmt.Errorf("deleting label %d: %w", id, err)
	}
	return nil
}

func scanDigests(rows *sql.Rows, err error) ([]digest.Digest, error) {
	if err != nil {
		return nil, err
	}
	ss, err := scanStrings(rows)
	if err != nil {
		return nil, err
	}
	out := make([]digest.Digest, len(ss))
	for i, s := range ss {
		out[i] = digest.Digest(s)
	}
	return out, nil
}

func scanInts(rows *sql.Rows) ([]int64, error) {
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
