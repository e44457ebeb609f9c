package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
)

const policyCols = `id, namespace, repository, name, kind, count, span_us, tag_pattern, pattern_matches, created_at, created_by`

func scanPolicy(row interface{ Scan(...any) error }) (meta.TagPolicy, error) {
	var p meta.TagPolicy
	var kind, by string
	var count, span, created int64
	if err := row.Scan(&p.ID, &p.Namespace, &p.Repository, &p.Name, &kind, &count, &span, &p.TagPattern, &p.PatternMatches, &created, &by); err != nil {
		return p, err
	}
	p.Kind, p.Count, p.Span = meta.PolicyKind(kind), int(count), time.Duration(span)*time.Microsecond
	p.CreatedAt, p.CreatedBy = fromUS(created), meta.Actor(by)
	return p, nil
}

func scanPolicies(rows *sql.Rows, err error) ([]meta.TagPolicy, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []meta.TagPolicy
	for rows.Next() {
		p, err := scanPolicy(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// PutPolicy upserts on the scope and name. A new row's id is the one
// RETURNING gives; an existing row keeps its id and takes the new rule.
func (t *tx) PutPolicy(ctx context.Context, p meta.TagPolicy) (meta.TagPolicy, bool, error) {
	_, err := t.Policy(ctx, p.Namespace, p.Repository, p.Name)
	created := errors.Is(err, meta.ErrNotFound)
	if err != nil && !created {
		return meta.TagPolicy{}, false, err
	}
	row, err := scanPolicy(t.queryRow(ctx, `INSERT INTO policy (namespace, repository, name, kind, count, span_us, tag_pattern, pattern_matches, created_at, created_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (namespace, repository, name) DO UPDATE SET kind = excluded.kind, count = excluded.count,
			span_us = excluded.span_us, tag_pattern = excluded.tag_pattern, pattern_matches = excluded.pattern_matches,
			created_at = excluded.created_at, created_by = excluded.created_by
		RETURNING `+policyCols,
		p.Namespace, p.Repository, p.Name, string(p.Kind), p.Count, p.Span.Microseconds(), p.TagPattern, p.PatternMatches,
		us(p.CreatedAt), string(p.CreatedBy)))
	if err != nil {
		return meta.TagPolicy{}, false, fmt.Errorf("saving policy %s: %w", p.Ref(), err)
	}
	return row, created, nil
}

func (t *tx) DeletePolicy(ctx context.Context, namespace, repository, name string) (meta.TagPolicy, error) {
	p, err := scanPolicy(t.queryRow(ctx, `DELETE FROM policy WHERE namespace = ? AND repository = ? AND name = ? RETURNING `+policyCols,
		namespace, repository, name))
	if err != nil {
		return p, notFound(err, "policy %s", meta.TagPolicy{Namespace: namespace, Repository: repository, Name: name}.Ref())
	}
	return p, nil
}

func (t *tx) Policy(ctx context.Context, namespace, repository, name string) (meta.TagPolicy, error) {
	p, err := scanPolicy(t.queryRow(ctx, `SELECT `+policyCols+` FROM policy WHERE namespace = ? AND repository = ? AND name = ?`,
		namespace, repository, name))
	if err != nil {
		return p, notFound(err, "policy %s", meta.TagPolicy{Namespace: namespace, Repository: repository, Name: name}.Ref())
	}
	return p, nil
}

func (t *tx) ListPolicies(ctx context.Context, f meta.PolicyFilter) ([]meta.TagPolicy, error) {
	ps, err := scanPolicies(t.query(ctx, `SELECT `+policyCols+` FROM policy
		WHERE ? = ''
		   OR (namespace = ? AND (repository = '' OR repository = ? OR ? = ''))
		   OR (? AND namespace = '')
		ORDER BY namespace, repository, name`,
		f.Namespace, f.Namespace, f.Repository, f.Repository, f.Registry))
	if err != nil {
		return nil, fmt.Errorf("listing policies: %w", err)
	}
	return ps, nil
}

// PoliciesFor reads the three scopes in one statement and keeps the
// registry's only when the other two are empty: the registry's policies
// are few, and one round trip beats two on the push path. Every tag write
// runs it, so it is three index searches in a UNION ALL, sorted here: as
// one WHERE with an OR of the scopes and an ORDER BY, SQLite merged two
// index searches and sorted through a temporary b-tree, about 1.5 times
// the cost of a point read on an empty table (IN lists were no better).
func (t *tx) PoliciesFor(ctx context.Context, namespace, repository string) ([]meta.TagPolicy, error) {
	ps, err := scanPolicies(t.query(ctx, `SELECT `+policyCols+` FROM policy WHERE namespace = ''
		UNION ALL SELECT `+policyCols+` FROM policy WHERE namespace = ? AND repository = ''
		UNION ALL SELECT `+policyCols+` FROM policy WHERE namespace = ? AND repository = ?`, namespace, namespace, repository))
	if err != nil {
		return nil, fmt.Errorf("reading the policies of %s: %w", repository, err)
	}
	slices.SortFunc(ps, func(a, b meta.TagPolicy) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Repository, b.Repository), strings.Compare(a.Name, b.Name))
	})
	own := 0
	for _, p := range ps {
		if p.Namespace != "" {
			own++
		}
	}
	if own == 0 {
		return ps, nil
	}
	return ps[len(ps)-own:], nil
}

// LiveTags reads only the columns a live row can hold (its repository is
// repoID; the end columns are set only with lifetime_end, by EndTag) and
// orders the rows by id here, not in SQL: a policy evaluation reads every
// live tag of a repository, and at 10,000 tags SQLite took about twice as
// long to read and sort the 13 columns (a temporary B-tree over the
// tag_live index's name order) as to read these 8.
func (t *tx) LiveTags(ctx context.Context, repoID int64, now time.Time) ([]meta.Tag, error) {
	rows, err := t.query(ctx, `SELECT id, name, manifest_digest, lifetime_start, expires_at, hidden, start_actor, pulled_at FROM tag
		WHERE repository_id = ? AND lifetime_end IS NULL AND (expires_at IS NULL OR expires_at > ?)`,
		repoID, us(now))
	if err != nil {
		return nil, fmt.Errorf("listing live tags: %w", err)
	}
	defer rows.Close()
	var out []meta.Tag
	// Scanned into the same variables row after row: per row, only the
	// strings and the times set are allocated.
	var id, start int64
	var exp, pulled sql.NullInt64
	var name, dg, actor string
	var hidden bool
	for rows.Next() {
		if err := rows.Scan(&id, &name, &dg, &start, &exp, &hidden, &actor, &pulled); err != nil {
			return nil, fmt.Errorf("listing live tags: %w", err)
		}
		out = append(out, meta.Tag{ID: id, RepoID: repoID, Name: name, Manifest: digest.Digest(dg), Start: fromUS(start),
			ExpiresAt: fromNullUS(exp), Hidden: hidden, StartActor: meta.Actor(actor), PulledAt: fromNullUS(pulled)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing live tags: %w", err)
	}
	slices.SortFunc(out, func(a, b meta.Tag) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

func (t *tx) EndTags(ctx context.Context, ids []int64, at time.Time, actor meta.Actor, cause meta.EndCause, rule string) ([]meta.Tag, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	tags, err := scanTags(t.query(ctx, `UPDATE tag SET lifetime_end = ?, end_actor = ?, end_cause = ?, end_rule = ?
		WHERE id IN `+t.d.keyIDs()+` AND lifetime_end IS NULL RETURNING `+tagCols,
		us(at), string(actor), string(cause), rule, jsonKeys(ids)))
	if err != nil {
		return nil, fmt.Errorf("ending %d tag rows: %w", len(ids), err)
	}
	return tags, nil
}

func (t *tx) RecordPull(ctx context.Context, id int64, at time.Time, interval time.Duration) (bool, error) {
	res, err := t.exec(ctx, `UPDATE tag SET pulled_at = ?
		WHERE id = ? AND lifetime_end IS NULL AND (pulled_at IS NULL OR pulled_at <= ?)`,
		us(at), id, us(at.Add(-interval)))
	if err != nil {
		return false, fmt.Errorf("recording a pull of tag row %d: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

func (t *tx) RepositoryIDs(ctx context.Context, namespace, repository string, after int64, limit int) ([]int64, error) {
	rows, err := t.query(ctx, `SELECT r.id FROM repository r JOIN namespace n ON n.id = r.namespace_id
		WHERE r.state = ? AND (? = '' OR n.name = ?) AND (? = '' OR r.name = ?) AND r.id > ?
		ORDER BY r.id LIMIT ?`, meta.RepoActive, namespace, namespace, repository, repository, after, limit)
	if err != nil {
		return nil, fmt.Errorf("listing repositories: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
