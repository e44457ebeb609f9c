package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
)

// The listings of the web interface (meta.BrowseTx; docs/design/web.md,
// "Cost"). Each page is read by an index in name order from its cursor, and
// what a page shows of each entry is read for the page's entries only: by
// correlated subqueries probing an index per entry, or, for a page of tags,
// one statement per kind of fact over the page's digests as one JSON
// parameter (the dialect's keyList, matched with IN, as the preview does).
//
// The ranges that bound a namespace's repositories and a tag prefix are
// byte-order ranges: they assume the database sorts names by their bytes, as
// SQLite does and PostgreSQL does under the C, C.UTF-8 or POSIX collation
// (names are ASCII). Each is backed by an exact filter, so another collation
// can only leave names out of a page, never add wrong ones.

// namespacePageStmt is NamespacePage's statement: it walks the name index
// of namespace from the cursor; a filter by names alone probes it per name.
// The repositories of each namespace listed are counted through the index
// repository_namespace, with a probe of their usage row each (a repository
// holds a manifest when its counter counts one; a scalar subquery, which
// SQLite cannot turn into a walk of every repository's counter row by the
// index usage_bytes): that count costs in proportion to the namespace's
// repositories.
func namespacePageStmt(d dialect, f meta.NamespaceFilter) (string, []any) {
	var filter string
	args := []any{f.After}
	switch {
	case f.Names != nil && f.PublicOnly:
		filter = ` AND (n.public = ? OR n.name IN ` + d.keyList() + `)`
		args = append(args, true, jsonKeys(f.Names))
	case f.Names != nil:
		filter = ` AND n.name IN ` + d.keyList()
		args = append(args, jsonKeys(f.Names))
	case f.PublicOnly:
		filter = ` AND n.public = ?`
		args = append(args, true)
	}
	return `SELECT n.id, n.name, n.state, n.tag_retention_us, n.public,
			COALESCE(u.bytes, 0), COALESCE(u.manifests, 0), COALESCE(u.blobs, 0),
			q.namespace, q.limit_bytes, q.warn_percent, q.created_at, q.created_by,
			(SELECT COUNT(*) FROM repository r WHERE r.namespace_id = n.id AND r.state = 'active'
				AND (SELECT ur.manifests FROM usage ur WHERE ur.scope = 'r' AND ur.id = r.id AND ur.shard = 0) > 0)
		FROM namespace n
		LEFT JOIN usage u ON u.scope = 'n' AND u.id = n.id AND u.shard = 0
		LEFT JOIN quota q ON q.namespace = n.name
		WHERE n.name > ?` + filter + ` ORDER BY n.name LIMIT ?`, append(args, f.Limit)
}

func (t *tx) NamespacePage(ctx context.Context, f meta.NamespaceFilter) ([]meta.NamespaceSummary, error) {
	q, args := namespacePageStmt(t.d, f)
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	var out []meta.NamespaceSummary
	err = eachRow(rows, func() error {
		var s meta.NamespaceSummary
		var ret, limit, warn, created sql.NullInt64
		var quotaNS, by sql.NullString
		if err := rows.Scan(&s.ID, &s.Name, &s.State, &ret, &s.Public, &s.Usage.Bytes, &s.Usage.Manifests, &s.Usage.Blobs,
			&quotaNS, &limit, &warn, &created, &by, &s.Repositories); err != nil {
			return err
		}
		if ret.Valid {
			d := time.Duration(ret.Int64) * time.Microsecond
			s.TagRetention = &d
		}
		if quotaNS.Valid {
			q := meta.Quota{Namespace: quotaNS.String, Limit: limit.Int64, CreatedAt: fromUS(created.Int64), CreatedBy: meta.Actor(by.String)}
			if warn.Valid {
				w := int(warn.Int64)
				q.WarnPercent = &w
			}
			s.Quota = &q
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	return out, nil
}

// repositoryPageStmt is RepositoryPage's statement. It reads the
// namespace's repositories through the name index: they are named ns or
// "ns/…" (a repository's namespace is its name's first component), which
// sort in [ns, ns+"0") ('0' follows '/'), so the range holds them and,
// besides, only the repositories of the few namespaces whose names extend ns
// with '-' or '.', which the exact test on the name drops. The first page
// starts at ns, a later one after its cursor. A repository holds a manifest
// when its usage counter counts one (a LEFT JOIN: SQLite would otherwise
// walk every repository's counter row by the index usage_bytes). For each repository listed, the tag
// count probes the partial index tag_live and stops at its cap, and the last
// tag start reads the repository's entries of the covering index
// tag_history.
func repositoryPageStmt(ns meta.Namespace, now time.Time, after string, limit, tagCap int) (string, []any) {
	lower, from := `r.name > ?`, after
	if after < ns.Name {
		lower, from = `r.name >= ?`, ns.Name
	}
	return `SELECT r.id, r.namespace_id, r.name, r.state, r.created_at,
			COALESCE(u.bytes, 0), COALESCE(u.manifests, 0), COALESCE(u.blobs, 0),
			(SELECT COUNT(*) FROM (SELECT 1 FROM tag t WHERE t.repository_id = r.id AND t.lifetime_end IS NULL
				AND (t.expires_at IS NULL OR t.expires_at > ?) AND t.hidden = ? LIMIT ?) x),
			(SELECT MAX(h.lifetime_start) FROM tag h WHERE h.repository_id = r.id)
		FROM repository r
		LEFT JOIN usage u ON u.scope = 'r' AND u.id = r.id AND u.shard = 0
		WHERE ` + lower + ` AND r.name < ? AND (r.name = ? OR substr(r.name, 1, ?) = ?) AND r.state = 'active' AND COALESCE(u.manifests, 0) > 0
		ORDER BY r.name LIMIT ?`, []any{us(now), false, tagCap + 1, from, ns.Name + "0", ns.Name, len(ns.Name) + 1, ns.Name + "/", limit}
}

func (t *tx) RepositoryPage(ctx context.Context, ns meta.Namespace, now time.Time, after string, limit, tagCap int) ([]meta.RepositorySummary, error) {
	q, args := repositoryPageStmt(ns, now, after, limit, tagCap)
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing the repositories of namespace %s: %w", ns.Name, err)
	}
	var out []meta.RepositorySummary
	err = eachRow(rows, func() error {
		var s meta.RepositorySummary
		var created int64
		var last sql.NullInt64
		if err := rows.Scan(&s.ID, &s.NamespaceID, &s.Name, &s.State, &created, &s.Usage.Bytes, &s.Usage.Manifests, &s.Usage.Blobs,
			&s.Tags, &last); err != nil {
			return err
		}
		s.CreatedAt = fromUS(created)
		s.LastTagged = fromNullUS(last)
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the repositories of namespace %s: %w", ns.Name, err)
	}
	return out, nil
}

// liveTagPageStmt is LiveTagPage's statement. It reads a page of live tags
// through the partial index tag_live (repository_id, name): one range, from
// the cursor, or from the prefix (or the cursor, when past it) to the first
// name past every name that starts with the prefix, in index order; the exact
// prefix test (substr) only filters that range.
func liveTagPageStmt(repoID int64, now time.Time, after, prefix string, limit int) (string, []any) {
	args := []any{repoID, us(now), false}
	var cond string
	switch end, ok := prefixEnd(prefix); {
	case prefix == "":
		cond = `name > ?`
		args = append(args, after)
	case !ok:
		cond = `name > ? AND substr(name, 1, ?) = ?`
		args = append(args, after, len(prefix), prefix)
	case after < prefix:
		cond = `name >= ? AND name < ? AND substr(name, 1, ?) = ?`
		args = append(args, prefix, end, len(prefix), prefix)
	default:
		cond = `name > ? AND name < ? AND substr(name, 1, ?) = ?`
		args = append(args, after, end, len(prefix), prefix)
	}
	return `SELECT ` + tagCols + ` FROM tag
		WHERE repository_id = ? AND lifetime_end IS NULL AND (expires_at IS NULL OR expires_at > ?) AND hidden = ? AND ` + cond + `
		ORDER BY name LIMIT ?`, append(args, limit)
}

// prefixEnd is the least string greater than every string that starts with
// p, in byte order: p with its last rune incremented, after dropping the
// runes that have no successor; ok is false when none has one.
func prefixEnd(p string) (end string, ok bool) {
	for p != "" {
		r, size := utf8.DecodeLastRuneInString(p)
		p = p[:len(p)-size]
		switch {
		case r == utf8.RuneError && size <= 1, r == utf8.MaxRune:
			continue
		case r == 0xD7FF: // the surrogates are not runes
			return p + string(rune(0xE000)), true
		}
		return p + string(r+1), true
	}
	return "", false
}

func (t *tx) LiveTagPage(ctx context.Context, repoID int64, now time.Time, after, prefix string, limit int) ([]meta.Tag, error) {
	q, args := liveTagPageStmt(repoID, now, after, prefix, limit)
	tags, err := scanTags(t.query(ctx, q, args...))
	if err != nil {
		return nil, fmt.Errorf("listing a page of tags: %w", err)
	}
	return tags, nil
}

// Statements of ManifestSummaries. The body is read for indexes only. The
// blobs statement reads the blob edges of the manifests and of their
// children, each probing its primary key per digest; the UNION counts a blob
// once per manifest, however many of its children share it.
const (
	manifestSummarySQL = `SELECT digest, media_type, artifact_type, size,
			CASE WHEN media_type IN ('application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json')
				THEN body END,
			deleted_at IS NOT NULL
		FROM manifest WHERE repository_id = ? AND digest IN %[1]s`
	childSummarySQL = `SELECT c.parent_digest, COUNT(*), COALESCE(SUM(m.size), 0) FROM manifest_child c
		JOIN manifest m ON m.repository_id = c.repository_id AND m.digest = c.child_digest
		WHERE c.repository_id = ? AND c.parent_digest IN %[1]s GROUP BY c.parent_digest`
	blobSummarySQL = `SELECT x.top, COALESCE(SUM(b.size), 0) FROM (
			SELECT mb.manifest_digest AS top, mb.blob_digest FROM manifest_blob mb
			WHERE mb.repository_id = ? AND mb.manifest_digest IN %[1]s
			UNION
			SELECT c.parent_digest, mb.blob_digest FROM manifest_child c
			JOIN manifest_blob mb ON mb.repository_id = c.repository_id AND mb.manifest_digest = c.child_digest
			WHERE c.repository_id = ? AND c.parent_digest IN %[1]s
		) x JOIN blob b ON b.digest = x.blob_digest GROUP BY x.top`
)

// ManifestSummaries reads the manifests, their children and their blobs in
// three statements.
func (t *tx) ManifestSummaries(ctx context.Context, repoID int64, ds []digest.Digest) ([]meta.ManifestSummary, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	set := jsonKeys(ds)
	rows, err := t.query(ctx, fmt.Sprintf(manifestSummarySQL, t.d.keyList()), repoID, set)
	if err != nil {
		return nil, fmt.Errorf("reading %d manifests: %w", len(ds), err)
	}
	var out []meta.ManifestSummary
	err = eachRow(rows, func() error {
		var m meta.ManifestSummary
		if err := rows.Scan(&m.Digest, &m.MediaType, &m.ArtifactType, &m.Size, &m.IndexBody, &m.Withdrawn); err != nil {
			return err
		}
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %d manifests: %w", len(ds), err)
	}
	// Sorted here: asked for ORDER BY digest, SQLite may walk the
	// repository's primary key rather than probe it per digest.
	slices.SortFunc(out, func(a, b meta.ManifestSummary) int {
		switch {
		case a.Digest < b.Digest:
			return -1
		case a.Digest > b.Digest:
			return 1
		}
		return 0
	})
	at := make(map[digest.Digest]*meta.ManifestSummary, len(out))
	for i := range out {
		at[out[i].Digest] = &out[i]
	}
	rows, err = t.query(ctx, fmt.Sprintf(childSummarySQL, t.d.keyList()), repoID, set)
	if err != nil {
		return nil, fmt.Errorf("reading the children of %d manifests: %w", len(ds), err)
	}
	err = eachRow(rows, func() error {
		var d digest.Digest
		var n int
		var bytes int64
		if err := rows.Scan(&d, &n, &bytes); err != nil {
			return err
		}
		if m := at[d]; m != nil {
			m.Children, m.ChildBytes = n, bytes
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the children of %d manifests: %w", len(ds), err)
	}
	rows, err = t.query(ctx, fmt.Sprintf(blobSummarySQL, t.d.keyList()), repoID, set, repoID, set)
	if err != nil {
		return nil, fmt.Errorf("reading the blobs of %d manifests: %w", len(ds), err)
	}
	err = eachRow(rows, func() error {
		var d digest.Digest
		var bytes int64
		if err := rows.Scan(&d, &bytes); err != nil {
			return err
		}
		if m := at[d]; m != nil {
			m.BlobBytes = bytes
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the blobs of %d manifests: %w", len(ds), err)
	}
	return out, nil
}

// referrerCountSQL counts through the partial index manifest_subject.
const referrerCountSQL = `SELECT subject_digest, artifact_type, media_type, COUNT(*) FROM manifest
	WHERE repository_id = ? AND subject_digest <> '' AND subject_digest IN %[1]s AND deleted_at IS NULL
	GROUP BY subject_digest, artifact_type, media_type`

func (t *tx) ReferrerCounts(ctx context.Context, repoID int64, ds []digest.Digest) ([]meta.ReferrerCount, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	rows, err := t.query(ctx, fmt.Sprintf(referrerCountSQL, t.d.keyList()), repoID, jsonKeys(ds))
	if err != nil {
		return nil, fmt.Errorf("counting the referrers of %d manifests: %w", len(ds), err)
	}
	var out []meta.ReferrerCount
	err = eachRow(rows, func() error {
		var c meta.ReferrerCount
		if err := rows.Scan(&c.Subject, &c.ArtifactType, &c.MediaType, &c.Count); err != nil {
			return err
		}
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("counting the referrers of %d manifests: %w", len(ds), err)
	}
	slices.SortFunc(out, func(a, b meta.ReferrerCount) int {
		for _, c := range [][2]string{{string(a.Subject), string(b.Subject)}, {a.ArtifactType, b.ArtifactType}, {a.MediaType, b.MediaType}} {
			switch {
			case c[0] < c[1]:
				return -1
			case c[0] > c[1]:
				return 1
			}
		}
		return 0
	})
	return out, nil
}
