package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
)

// The collector's set-based statements (meta.CollectTx). A batch of keys is
// one JSON parameter read through the dialect's keyList, keyIDs or keyPairs
// table expression, so each statement's text is fixed (and prepared once)
// whatever the batch's size, and no statement binds a list of parameters.

func jsonKeys[T any](keys []T) string {
	if len(keys) == 0 {
		return "[]" // not null: an empty set
	}
	b, err := json.Marshal(keys)
	if err != nil {
		panic(err) // strings, integers and pairs always marshal
	}
	return string(b)
}

// pairsJSON encodes keys as the dialect's keyPairs reads them.
func pairsJSON(d dialect, keys []meta.RepoDigest) string {
	ps := make([]keyPair, len(keys))
	for i, k := range keys {
		ps[i] = keyPair{k.RepoID, k.Digest.String()}
	}
	return d.pairSet(ps)
}

// claimDueQuery reads a kind's due reviews in (review_after, object) order,
// the order of the index review_kind_due_object (PostgreSQL migration 10,
// SQLite migration 12): the scan stops after the claim, however many reviews
// are due at the same time (TestClaimDueWalksTheIndex).
const claimDueQuery = `SELECT object, review_after, attempts, cause, reason FROM review
		WHERE kind = ? AND review_after <= ? AND (? = '' OR substr(object, 1, ?) = ?)
		ORDER BY review_after, object LIMIT ?`

func (t *tx) ClaimDue(ctx context.Context, kind review.Kind, now time.Time, prefix string, limit int) ([]meta.Review, error) {
	rows, err := t.query(ctx, claimDueQuery+t.skip(), kind, us(now), prefix, len(prefix), prefix, limit)
	if err != nil {
		return nil, fmt.Errorf("claiming %s reviews: %w", kind, err)
	}
	defer rows.Close()
	var out []meta.Review
	for rows.Next() {
		r := meta.Review{Kind: kind}
		var after int64
		if err := rows.Scan(&r.Object, &after, &r.Attempts, &r.Cause, &r.Reason); err != nil {
			return nil, err
		}
		r.ReviewAfter = fromUS(after)
		out = append(out, r)
	}
	return out, rows.Err()
}

func (t *tx) StoredReviews(ctx context.Context, kind review.Kind, objects []string) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	if len(objects) == 0 {
		return out, nil
	}
	rows, err := t.query(ctx, `SELECT r.object, r.review_after FROM review r
		WHERE r.kind = ? AND r.object IN `+t.d.keyList(), kind, jsonKeys(objects))
	if err != nil {
		return nil, fmt.Errorf("reading %s reviews: %w", kind, err)
	}
	defer rows.Close()
	for rows.Next() {
		var o string
		var after int64
		if err := rows.Scan(&o, &after); err != nil {
			return nil, err
		}
		out[o] = fromUS(after)
	}
	return out, rows.Err()
}

func (t *tx) DeleteDueReviews(ctx context.Context, kind review.Kind, objects []string, now time.Time) error {
	if len(objects) == 0 {
		return nil
	}
	_, err := t.exec(ctx, `DELETE FROM review WHERE kind = ? AND object IN (
		SELECT object FROM review WHERE kind = ? AND review_after <= ? AND object IN `+t.d.keyList()+t.d.skipLocked()+`)`,
		kind, kind, us(now), jsonKeys(objects))
	if err != nil {
		return fmt.Errorf("deleting due %s reviews: %w", kind, err)
	}
	return nil
}

func (t *tx) DeleteReviews(ctx context.Context, kind review.Kind, objects []string) error {
	if len(objects) == 0 {
		return nil
	}
	if _, err := t.exec(ctx, `DELETE FROM review WHERE kind = ? AND object IN `+t.d.keyList(), kind, jsonKeys(objects)); err != nil {
		return fmt.Errorf("deleting %s reviews: %w", kind, err)
	}
	return nil
}

// ScheduleReviews upserts like AddReview: a pending review only ever moves
// later, and its cause and reason change only with its time. The rows go in the caller's order ((kind, object), sorted), so two
// transactions upserting overlapping sets lock them in the same order.
func (t *tx) ScheduleReviews(ctx context.Context, rs []meta.Review) error {
	if len(rs) == 0 {
		return nil
	}
	keys := make([][5]any, len(rs))
	for i, r := range rs {
		keys[i] = [5]any{r.Kind, r.Object, us(r.ReviewAfter), r.Cause, r.Reason}
	}
	var src string
	if t.d.name() == "postgres" {
		src = `SELECT e->>0, e->>1, (e->>2)::bigint, 0, e->>3, e->>4 FROM jsonb_array_elements(?::jsonb) WITH ORDINALITY AS x(e, n) ORDER BY n`
	} else {
		src = `SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), 0, json_extract(value, '$[3]'),
				json_extract(value, '$[4]')
			FROM json_each(?) WHERE true`
	}
	_, err := t.exec(ctx, `INSERT INTO review (kind, object, review_after, attempts, cause, reason) `+src+`
		ON CONFLICT (kind, object) DO UPDATE SET
			review_after = CASE WHEN excluded.review_after > review.review_after THEN excluded.review_after ELSE review.review_after END,
			cause = CASE WHEN excluded.review_after > review.review_after THEN excluded.cause ELSE review.cause END,
			reason = CASE WHEN excluded.review_after > review.review_after THEN excluded.reason ELSE review.reason END`,
		jsonKeys(keys))
	if err != nil {
		return fmt.Errorf("recording %d reviews: %w", len(rs), err)
	}
	return nil
}

func (t *tx) LockTagRows(ctx context.Context, ids []int64) ([]meta.TagRow, []int64, error) {
	return lockFacts(ctx, t, tagRows, ids, `SELECT t.id, t.repository_id, t.name, t.manifest_digest, t.lifetime_start, t.lifetime_end, r.name, n.tag_retention_us
		FROM tag t JOIN repository r ON r.id = t.repository_id JOIN namespace n ON n.id = r.namespace_id
		WHERE t.id IN {keys} ORDER BY t.id`,
		func(rows *sql.Rows) (meta.TagRow, int64, error) {
			var tr meta.TagRow
			var start int64
			var end, ret sql.NullInt64
			err := rows.Scan(&tr.ID, &tr.RepoID, &tr.Name, &tr.Manifest, &start, &end, &tr.Repository, &ret)
			tr.Start, tr.End, tr.Retention = fromUS(start), fromNullUS(end), retentionOf(ret)
			return tr, tr.ID, err
		})
}

func retentionOf(v sql.NullInt64) *time.Duration {
	if !v.Valid {
		return nil
	}
	d := time.Duration(v.Int64) * time.Microsecond
	return &d
}

func (t *tx) DeleteTagRows(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := t.exec(ctx, `DELETE FROM tag WHERE id IN `+t.d.keyIDs(), jsonKeys(ids)); err != nil {
		return fmt.Errorf("deleting %d tag rows: %w", len(ids), err)
	}
	return nil
}

func scanPairs(rows *sql.Rows) ([]meta.RepoDigest, error) {
	defer rows.Close()
	var out []meta.RepoDigest
	for rows.Next() {
		var k meta.RepoDigest
		if err := rows.Scan(&k.RepoID, &k.Digest); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

func (t *tx) LockManifestFacts(ctx context.Context, keys []meta.RepoDigest) ([]meta.ManifestFacts, []meta.RepoDigest, error) {
	return lockFacts(ctx, t, manifests, keys, `SELECT m.repository_id, m.digest, m.pushed_at, m.deleted_at, m.subject_digest, r.name, n.tag_retention_us,
			COALESCE((SELECT t.name FROM tag t WHERE t.repository_id = m.repository_id AND t.manifest_digest = m.digest
				AND t.lifetime_end IS NULL LIMIT 1), ''),
			(SELECT t.lifetime_end FROM tag t WHERE t.repository_id = m.repository_id AND t.manifest_digest = m.digest
				AND t.lifetime_end IS NOT NULL ORDER BY t.lifetime_end DESC LIMIT 1),
			COALESCE((SELECT t.name FROM tag t WHERE t.repository_id = m.repository_id AND t.manifest_digest = m.digest
				AND t.lifetime_end IS NOT NULL ORDER BY t.lifetime_end DESC LIMIT 1), ''),
			COALESCE((SELECT c.parent_digest FROM manifest_child c WHERE c.repository_id = m.repository_id AND c.child_digest = m.digest
				ORDER BY c.parent_digest LIMIT 1), ''),
			COALESCE((SELECT 1 FROM manifest s WHERE m.subject_digest <> ''
				AND s.repository_id = m.repository_id AND s.digest = m.subject_digest LIMIT 1), 0)
		FROM manifest m JOIN repository r ON r.id = m.repository_id JOIN namespace n ON n.id = r.namespace_id
		WHERE (m.repository_id, m.digest) IN {keys}
		ORDER BY m.repository_id, m.digest`,
		func(rows *sql.Rows) (meta.ManifestFacts, meta.RepoDigest, error) {
			var f meta.ManifestFacts
			var pushed int64
			var deleted, ret, lastEnd sql.NullInt64
			var subjectStored int
			err := rows.Scan(&f.RepoID, &f.Digest, &pushed, &deleted, &f.Subject, &f.Repository, &ret,
				&f.LiveTag, &lastEnd, &f.LastEndTag, &f.Parent, &subjectStored)
			f.PushedAt, f.DeletedAt, f.Retention, f.LastEnd = fromUS(pushed), fromNullUS(deleted), retentionOf(ret), fromNullUS(lastEnd)
			f.SubjectStored = subjectStored == 1
			return f, f.RepoDigest, err
		})
}

func (t *tx) DeleteManifests(ctx context.Context, keys []meta.RepoDigest) (meta.ManifestSetRefs, error) {
	refs, err := t.ManifestRefs(ctx, keys)
	if err != nil || len(keys) == 0 {
		return refs, err
	}
	set := pairsJSON(t.d, keys)
	in := ` IN (SELECT r, d FROM ` + t.d.keyPairs() + ` k)`
	for _, q := range []string{
		`DELETE FROM manifest_child WHERE (repository_id, parent_digest)` + in,
		`DELETE FROM manifest_label WHERE (repository_id, manifest_digest)` + in,
	} {
		if _, err := t.exec(ctx, q, set); err != nil {
			return refs, fmt.Errorf("deleting %d manifests: %w", len(keys), err)
		}
	}
	// Each records what it removes for the usage counters, applied once
	// for the whole transaction (usage.go).
	if _, err := t.deleteEdges(ctx, `DELETE FROM manifest_blob WHERE (repository_id, manifest_digest)`+in, set); err != nil {
		return refs, fmt.Errorf("deleting %d manifests: %w", len(keys), err)
	}
	if err := t.deleteManifestRows(ctx, `DELETE FROM manifest WHERE (repository_id, digest)`+in, set); err != nil {
		return refs, fmt.Errorf("deleting %d manifests: %w", len(keys), err)
	}
	return refs, nil
}

// tagsJSON encodes tags as the dialect's keyPairs reads them.
func tagsJSON(d dialect, tags []meta.RepoTag) string {
	ps := make([]keyPair, len(tags))
	for i, k := range tags {
		ps[i] = keyPair{k.RepoID, k.Name}
	}
	return d.pairSet(ps)
}

// liveTagsIn selects the rows of a JSON set of (repository, tag name) pairs
// (its first parameter) that are live at its second: through the partial
// unique index tag_live, one probe per pair.
func (t *tx) liveTagsIn() string {
	return `(repository_id, name) IN (SELECT r, d FROM ` + t.d.keyPairs() + ` k)
		AND lifetime_end IS NULL AND (expires_at IS NULL OR expires_at > ?)`
}

// EndLiveTags ends the rows in one statement. On PostgreSQL the rows are
// locked FOR UPDATE SKIP LOCKED, so the collector never waits for a
// writer: a writer holding a live row is moving, deleting or restoring it
// (it ends the row itself), or setting its expiry (docs/design/gc.md,
// "Attachments follow their subject").
func (t *tx) EndLiveTags(ctx context.Context, tags []meta.RepoTag, at time.Time, actor meta.Actor, cause meta.EndCause) ([]meta.Tag, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	ended, err := scanTags(t.query(ctx, `UPDATE tag SET lifetime_end = ?, end_actor = ?, end_cause = ?
		WHERE lifetime_end IS NULL AND id IN (SELECT id FROM tag WHERE `+t.liveTagsIn()+` ORDER BY id`+t.d.skipLocked()+`)
		RETURNING `+tagCols,
		us(at), string(actor), string(cause), tagsJSON(t.d, tags), us(at)))
	if err != nil {
		return nil, fmt.Errorf("ending live rows of %d tags: %w", len(tags), err)
	}
	slices.SortFunc(ended, func(a, b meta.Tag) int { return cmp.Compare(a.ID, b.ID) })
	return ended, nil
}

func (t *tx) LiveTagsNamed(ctx context.Context, tags []meta.RepoTag, now time.Time) ([]meta.Tag, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	live, err := scanTags(t.query(ctx, `SELECT `+tagCols+` FROM tag WHERE `+t.liveTagsIn()+` ORDER BY id`, tagsJSON(t.d, tags), us(now)))
	if err != nil {
		return nil, fmt.Errorf("reading live rows of %d tags: %w", len(tags), err)
	}
	return live, nil
}

func sortPairs(ks []meta.RepoDigest) {
	slices.SortFunc(ks, func(a, b meta.RepoDigest) int {
		if a.RepoID != b.RepoID {
			if a.RepoID < b.RepoID {
				return -1
			}
			return 1
		}
		switch {
		case a.Digest < b.Digest:
			return -1
		case a.Digest > b.Digest:
			return 1
		}
		return 0
	})
}

func (t *tx) LockUploadedBlobs(ctx context.Context, keys []meta.RepoDigest) ([]meta.UploadedBlobRow, []meta.RepoDigest, error) {
	return lockFacts(ctx, t, markers, keys, `SELECT u.repository_id, u.blob_digest, u.expires_at, r.name
		FROM uploaded_blob u JOIN repository r ON r.id = u.repository_id
		WHERE (u.repository_id, u.blob_digest) IN {keys} ORDER BY u.repository_id, u.blob_digest`,
		func(rows *sql.Rows) (meta.UploadedBlobRow, meta.RepoDigest, error) {
			var u meta.UploadedBlobRow
			var exp int64
			err := rows.Scan(&u.RepoID, &u.Digest, &exp, &u.Repository)
			u.ExpiresAt = fromUS(exp)
			return u, u.RepoDigest, err
		})
}

func (t *tx) DeleteUploadedBlobs(ctx context.Context, keys []meta.RepoDigest) error {
	if len(keys) == 0 {
		return nil
	}
	if _, err := t.exec(ctx, `DELETE FROM uploaded_blob WHERE (repository_id, blob_digest) IN (SELECT r, d FROM `+t.d.keyPairs()+` k)`,
		pairsJSON(t.d, keys)); err != nil {
		return fmt.Errorf("deleting %d upload markers: %w", len(keys), err)
	}
	return nil
}

func (t *tx) LockLinkFacts(ctx context.Context, keys []meta.RepoDigest) ([]meta.LinkFacts, []meta.RepoDigest, error) {
	return lockFacts(ctx, t, links, keys, `SELECT l.repository_id, l.blob_digest, r.name,
			COALESCE((SELECT 1 FROM manifest_blob mb WHERE mb.repository_id = l.repository_id AND mb.blob_digest = l.blob_digest LIMIT 1), 0),
			(SELECT u.expires_at FROM uploaded_blob u WHERE u.repository_id = l.repository_id AND u.blob_digest = l.blob_digest)
		FROM repository_blob l JOIN repository r ON r.id = l.repository_id
		WHERE (l.repository_id, l.blob_digest) IN {keys} ORDER BY l.repository_id, l.blob_digest`,
		func(rows *sql.Rows) (meta.LinkFacts, meta.RepoDigest, error) {
			var f meta.LinkFacts
			var used int
			var marker sql.NullInt64
			err := rows.Scan(&f.RepoID, &f.Digest, &f.Repository, &used, &marker)
			f.Used, f.Marker = used == 1, fromNullUS(marker)
			return f, f.RepoDigest, err
		})
}

func (t *tx) DeleteLinks(ctx context.Context, keys []meta.RepoDigest) error {
	if len(keys) == 0 {
		return nil
	}
	if err := t.DeleteUploadedBlobs(ctx, keys); err != nil {
		return err
	}
	if _, err := t.exec(ctx, `DELETE FROM repository_blob WHERE (repository_id, blob_digest) IN (SELECT r, d FROM `+t.d.keyPairs()+` k)`,
		pairsJSON(t.d, keys)); err != nil {
		return fmt.Errorf("deleting %d links: %w", len(keys), err)
	}
	return nil
}

func (t *tx) LockBlobFacts(ctx context.Context, ds []digest.Digest) ([]meta.BlobFacts, []digest.Digest, error) {
	return lockFacts(ctx, t, blobRows, ds, `SELECT b.digest, b.size, b.storage_key, b.created_at,
			COALESCE((SELECT 1 FROM repository_blob l WHERE l.blob_digest = b.digest LIMIT 1), 0)
		FROM blob b WHERE b.digest IN {keys} ORDER BY b.digest`,
		func(rows *sql.Rows) (meta.BlobFacts, digest.Digest, error) {
			var f meta.BlobFacts
			var created int64
			var linked int
			err := rows.Scan(&f.Digest, &f.Size, &f.StorageKey, &created, &linked)
			f.CreatedAt, f.Linked = fromUS(created), linked == 1
			return f, f.Digest, err
		})
}

func (t *tx) DeleteBlobs(ctx context.Context, ds []digest.Digest, tombs []meta.Tombstone) error {
	if len(ds) == 0 {
		return nil
	}
	if _, err := t.exec(ctx, `DELETE FROM blob WHERE digest IN `+t.d.keyList(), jsonKeys(ds)); err != nil {
		return fmt.Errorf("deleting %d blob rows: %w", len(ds), err)
	}
	if len(tombs) == 0 {
		return nil
	}
	keys := make([]string, len(tombs))
	for i, ts := range tombs {
		keys[i] = ts.StorageKey
	}
	if _, err := t.exec(ctx, `INSERT INTO tombstone (storage_key, since) SELECT k.v, ? FROM `+t.d.keyList()+` k WHERE true
		ON CONFLICT (storage_key) DO NOTHING`, us(tombs[0].Since), jsonKeys(keys)); err != nil {
		return fmt.Errorf("recording %d tombstones: %w", len(tombs), err)
	}
	return nil
}

func (t *tx) LockLabelFacts(ctx context.Context, ids []int64) ([]meta.LabelFacts, []int64, error) {
	return lockFacts(ctx, t, labelRows, ids, `SELECT l.id, COALESCE((SELECT 1 FROM manifest_label ml WHERE ml.label_id = l.id LIMIT 1), 0)
		FROM label l WHERE l.id IN {keys} ORDER BY l.id`,
		func(rows *sql.Rows) (meta.LabelFacts, int64, error) {
			var f meta.LabelFacts
			var used int
			err := rows.Scan(&f.ID, &used)
			f.Used = used == 1
			return f, f.ID, err
		})
}

func (t *tx) DeleteLabels(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := t.exec(ctx, `DELETE FROM label WHERE id IN `+t.d.keyIDs(), jsonKeys(ids)); err != nil {
		return fmt.Errorf("deleting %d labels: %w", len(ids), err)
	}
	return nil
}

func (t *tx) LockUploads(ctx context.Context, ids []string) ([]meta.Upload, []string, error) {
	return lockFacts(ctx, t, uploadRows, ids, `SELECT `+uploadCols+` FROM upload u WHERE u.id IN {keys} ORDER BY u.id`,
		func(rows *sql.Rows) (meta.Upload, string, error) {
			u, err := scanUpload(rows)
			return u, u.ID, err
		})
}

func (t *tx) DeleteUploads(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := t.exec(ctx, `DELETE FROM upload WHERE id IN `+t.d.keyList(), jsonKeys(ids)); err != nil {
		return fmt.Errorf("deleting %d uploads: %w", len(ids), err)
	}
	return nil
}

// skip is SKIP LOCKED for a claim in a write transaction; a read-only one
// (a dry run) locks nothing.
func (t *tx) skip() string {
	if t.readOnly {
		return ""
	}
	return t.d.skipLocked()
}

func (t *tx) ManifestRefs(ctx context.Context, keys []meta.RepoDigest) (meta.ManifestSetRefs, error) {
	var refs meta.ManifestSetRefs
	if len(keys) == 0 {
		return refs, nil
	}
	set := pairsJSON(t.d, keys)
	in := ` IN (SELECT r, d FROM ` + t.d.keyPairs() + ` k)`
	pairs := func(q string) ([]meta.RepoDigest, error) {
		rows, err := t.query(ctx, q, set)
		if err != nil {
			return nil, err
		}
		ks, err := scanPairs(rows)
		if err != nil {
			return nil, err
		}
		sortPairs(ks)
		return slices.Compact(ks), nil
	}
	var err error
	if refs.Referrers, err = pairs(`SELECT repository_id, digest FROM manifest WHERE subject_digest <> '' AND (repository_id, subject_digest)` + in); err != nil {
		return refs, fmt.Errorf("reading referrers of %d manifests: %w", len(keys), err)
	}
	if refs.Children, err = pairs(`SELECT repository_id, child_digest FROM manifest_child WHERE (repository_id, parent_digest)` + in); err != nil {
		return refs, fmt.Errorf("reading children of %d manifests: %w", len(keys), err)
	}
	if refs.Blobs, err = pairs(`SELECT repository_id, blob_digest FROM manifest_blob WHERE (repository_id, manifest_digest)` + in); err != nil {
		return refs, fmt.Errorf("reading blobs of %d manifests: %w", len(keys), err)
	}
	rows, err := t.query(ctx, `SELECT DISTINCT label_id FROM manifest_label WHERE (repository_id, manifest_digest)`+in+` ORDER BY label_id`, set)
	if err == nil {
		refs.Labels, err = scanInts(rows)
	}
	if err != nil {
		return refs, fmt.Errorf("reading labels of %d manifests: %w", len(keys), err)
	}
	going := map[meta.RepoDigest]bool{}
	for _, k := range keys {
		going[k] = true
	}
	refs.Referrers = slices.DeleteFunc(refs.Referrers, func(k meta.RepoDigest) bool { return going[k] })
	refs.Children = slices.DeleteFunc(refs.Children, func(k meta.RepoDigest) bool { return going[k] })
	return refs, nil
}

func (t *tx) LinkUsers(ctx context.Context, key meta.RepoDigest, limit int) ([]digest.Digest, error) {
	ds, err := scanDigests(t.query(ctx, `SELECT manifest_digest FROM manifest_blob WHERE repository_id = ? AND blob_digest = ? ORDER BY manifest_digest LIMIT ?`,
		key.RepoID, key.Digest.String(), limit))
	if err != nil {
		return nil, fmt.Errorf("reading the manifests using blob %s: %w", key.Digest, err)
	}
	return ds, nil
}

func (t *tx) BlobLinks(ctx context.Context, d digest.Digest, limit int) ([]int64, error) {
	rows, err := t.query(ctx, `SELECT repository_id FROM repository_blob WHERE blob_digest = ? ORDER BY repository_id LIMIT ?`, d.String(), limit)
	if err != nil {
		return nil, fmt.Errorf("reading the links of blob %s: %w", d, err)
	}
	return scanInts(rows)
}

func (t *tx) LabelUsers(ctx context.Context, id int64, limit int) ([]meta.RepoDigest, error) {
	rows, err := t.query(ctx, `SELECT repository_id, manifest_digest FROM manifest_label WHERE label_id = ? ORDER BY repository_id, manifest_digest LIMIT ?`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("reading the users of label %d: %w", id, err)
	}
	return scanPairs(rows)
}

// staleReviewRows is how many rows written since the review table's last
// ANALYZE make its statistics stale, together with a tenth of its rows
// (autovacuum's own rule, with a floor that skips a small queue).
const staleReviewRows = 1000

// AnalyzeReviews refreshes the planner's statistics of the review table
// when it changed by more than a tenth (and staleReviewRows) since its last
// ANALYZE, or was never analyzed (PostgreSQL; SQLite has nothing to do).
// Without statistics the planner takes a kind's due reviews for a handful
// of rows and claims them with a bitmap scan and a sort of every due
// review of the kind, for every claim; with them, an ordered index scan
// that stops after the claim (docs/design/gc.md, "Plans that do not depend
// on the table"). The collector calls it when a run starts: a backlog is
// what a bulk delete or purge leaves before autovacuum (if it runs at all)
// has looked at the table. ANALYZE reads a sample of at most 30,000 rows
// (about 30 ms at 13k) and blocks no writer.
func (s *Store) AnalyzeReviews(ctx context.Context) error {
	if s.d.name() != "postgres" {
		return nil
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var stale bool
	err := s.db.QueryRowContext(ctx, `SELECT n_mod_since_analyze >= $1 AND n_mod_since_analyze * 10 >= n_live_tup
		FROM pg_stat_user_tables WHERE relid = 'review'::regclass`, staleReviewRows).Scan(&stale)
	if err != nil {
		return fmt.Errorf("reading the review table's statistics: %w", err)
	}
	if !stale {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, `ANALYZE review`); err != nil {
		return fmt.Errorf("analyzing the review table: %w", err)
	}
	return nil
}
