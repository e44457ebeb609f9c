package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
)

// The reads of a policy preview (meta.PreviewTx). Like the collector's,
// each statement reads its batch of keys from one JSON parameter through
// the dialect's keyList, matched with IN: SQLite then probes the index per
// key (or filters one range scan of the repository with a Bloom filter),
// where a join with json_each would be planned as its inner loop, once
// per row of the repository.

// ManifestNodes reads the manifests, then each kind of edge, in five
// statements.
func (t *tx) ManifestNodes(ctx context.Context, repoID int64, ds []digest.Digest) ([]meta.ManifestNode, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	set := jsonKeys(ds)
	rows, err := t.query(ctx, `SELECT m.digest, m.size, m.deleted_at IS NOT NULL, m.subject_digest,
			COALESCE((SELECT 1 FROM manifest s WHERE m.subject_digest <> ''
				AND s.repository_id = m.repository_id AND s.digest = m.subject_digest LIMIT 1), 0)
		FROM manifest m WHERE m.repository_id = ? AND m.digest IN `+t.d.keyList()+`
		ORDER BY m.digest`, repoID, set)
	if err != nil {
		return nil, fmt.Errorf("reading %d manifests: %w", len(ds), err)
	}
	var nodes []meta.ManifestNode
	at := map[digest.Digest]int{}
	err = eachRow(rows, func() error {
		var n meta.ManifestNode
		var stored int
		if err := rows.Scan(&n.Digest, &n.Size, &n.Withdrawn, &n.Subject, &stored); err != nil {
			return err
		}
		n.SubjectStored = stored == 1
		at[n.Digest] = len(nodes)
		nodes = append(nodes, n)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %d manifests: %w", len(ds), err)
	}
	edges := []struct {
		what  string
		query string
		add   func(n *meta.ManifestNode, d digest.Digest)
	}{
		{"parents", `SELECT c.child_digest, c.parent_digest FROM manifest_child c
			WHERE c.repository_id = ? AND c.child_digest IN ` + t.d.keyList(),
			func(n *meta.ManifestNode, d digest.Digest) { n.Parents = append(n.Parents, d) }},
		{"children", `SELECT c.parent_digest, c.child_digest FROM manifest_child c
			WHERE c.repository_id = ? AND c.parent_digest IN ` + t.d.keyList(),
			func(n *meta.ManifestNode, d digest.Digest) { n.Children = append(n.Children, d) }},
		{"referrers", `SELECT m.subject_digest, m.digest FROM manifest m
			WHERE m.repository_id = ? AND m.subject_digest <> '' AND m.subject_digest IN ` + t.d.keyList(),
			func(n *meta.ManifestNode, d digest.Digest) { n.Referrers = append(n.Referrers, d) }},
	}
	for _, e := range edges {
		rows, err := t.query(ctx, e.query, repoID, set)
		if err != nil {
			return nil, fmt.Errorf("reading the %s of %d manifests: %w", e.what, len(ds), err)
		}
		err = eachRow(rows, func() error {
			var from, to digest.Digest
			if err := rows.Scan(&from, &to); err != nil {
				return err
			}
			if i, ok := at[from]; ok {
				e.add(&nodes[i], to)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading the %s of %d manifests: %w", e.what, len(ds), err)
		}
	}
	rows, err = t.query(ctx, `SELECT mb.manifest_digest, b.digest, b.size FROM manifest_blob mb
		JOIN blob b ON b.digest = mb.blob_digest
		WHERE mb.repository_id = ? AND mb.manifest_digest IN `+t.d.keyList(), repoID, set)
	if err != nil {
		return nil, fmt.Errorf("reading the blobs of %d manifests: %w", len(ds), err)
	}
	err = eachRow(rows, func() error {
		var m digest.Digest
		var b meta.Blob
		if err := rows.Scan(&m, &b.Digest, &b.Size); err != nil {
			return err
		}
		if i, ok := at[m]; ok {
			nodes[i].Blobs = append(nodes[i].Blobs, b)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the blobs of %d manifests: %w", len(ds), err)
	}
	for i := range nodes {
		n := &nodes[i]
		slices.Sort(n.Parents)
		slices.Sort(n.Children)
		slices.Sort(n.Referrers)
		slices.SortFunc(n.Blobs, func(a, b meta.Blob) int {
			switch {
			case a.Digest < b.Digest:
				return -1
			case a.Digest > b.Digest:
				return 1
			}
			return 0
		})
	}
	return nodes, nil
}

// BlobUses reaches the manifests that reference a blob through its links:
// manifest_blob is indexed by (repository, blob), repository_blob by blob,
// and every manifest_blob row has its link (a foreign key).
func (t *tx) BlobUses(ctx context.Context, blobs []digest.Digest) (map[digest.Digest]int, error) {
	out := map[digest.Digest]int{}
	if len(blobs) == 0 {
		return out, nil
	}
	rows, err := t.query(ctx, `SELECT rb.blob_digest, COUNT(*) FROM repository_blob rb
		JOIN manifest_blob mb ON mb.repository_id = rb.repository_id AND mb.blob_digest = rb.blob_digest
		WHERE rb.blob_digest IN `+t.d.keyList()+` GROUP BY rb.blob_digest`, jsonKeys(blobs))
	if err != nil {
		return nil, fmt.Errorf("counting the users of %d blobs: %w", len(blobs), err)
	}
	err = eachRow(rows, func() error {
		var d digest.Digest
		var n int
		if err := rows.Scan(&d, &n); err != nil {
			return err
		}
		out[d] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("counting the users of %d blobs: %w", len(blobs), err)
	}
	return out, nil
}

// eachRow calls scan for each row, then closes rows.
func eachRow(rows *sql.Rows, scan func() error) error {
	defer rows.Close()
	for rows.Next() {
		if err := scan(); err != nil {
			return err
		}
	}
	return rows.Err()
}
