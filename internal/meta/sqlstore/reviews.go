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

// AddReview is the upsert of gc.md: a new row, or review_after moved later.
func (t *tx) AddReview(ctx context.Context, r meta.Review) error {
	_, err := t.ScheduleReview(ctx, r)
	return err
}

func (t *tx) ScheduleReview(ctx context.Context, r meta.Review) (time.Time, error) {
	var after int64
	err := t.queryRow(ctx, `INSERT INTO review (kind, object, review_after, attempts, cause, reason) VALUES (?, ?, ?, 0, ?, ?)
		ON CONFLICT (kind, object) DO UPDATE SET
			review_after = CASE WHEN excluded.review_after > review.review_after THEN excluded.review_after ELSE review.review_after END,
			cause = CASE WHEN excluded.review_after > review.review_after THEN excluded.cause ELSE review.cause END,
			reason = CASE WHEN excluded.review_after > review.review_after THEN excluded.reason ELSE review.reason END
		RETURNING review_after`,
		r.Kind, r.Object, us(r.ReviewAfter), r.Cause, r.Reason).Scan(&after)
	if err != nil {
		return time.Time{}, fmt.Errorf("recording %s review of %s: %w", r.Kind, r.Object, err)
	}
	return fromUS(after), nil
}

func (t *tx) ExpediteReview(ctx context.Context, r meta.Review) error {
	if _, err := t.exec(ctx, `INSERT INTO review (kind, object, review_after, attempts, cause, reason) VALUES (?, ?, ?, 0, ?, ?)
		ON CONFLICT (kind, object) DO UPDATE SET
			review_after = CASE WHEN excluded.review_after < review.review_after THEN excluded.review_after ELSE review.review_after END,
			cause = CASE WHEN excluded.review_after < review.review_after THEN excluded.cause ELSE review.cause END,
			reason = CASE WHEN excluded.review_after < review.review_after THEN excluded.reason ELSE review.reason END`,
		r.Kind, r.Object, us(r.ReviewAfter), r.Cause, r.Reason); err != nil {
		return fmt.Errorf("expediting %s review of %s: %w", r.Kind, r.Object, err)
	}
	return nil
}

func (t *tx) RescheduleReview(ctx context.Context, r meta.Review) error {
	if _, err := t.exec(ctx, `INSERT INTO review (kind, object, review_after, attempts, cause, reason) VALUES (?, ?, ?, 1, ?, ?)
		ON CONFLICT (kind, object) DO UPDATE SET review_after = excluded.review_after, attempts = review.attempts + 1,
			cause = excluded.cause, reason = excluded.reason`,
		r.Kind, r.Object, us(r.ReviewAfter), r.Cause, r.Reason); err != nil {
		return fmt.Errorf("rescheduling %s review of %s: %w", r.Kind, r.Object, err)
	}
	return nil
}

func (t *tx) PostponeReview(ctx context.Context, kind review.Kind, object string, until time.Time) (bool, error) {
	res, err := t.exec(ctx, `UPDATE review SET review_after = ? WHERE kind = ? AND object = ? AND review_after < ?`,
		us(until), kind, object, us(until))
	if err != nil {
		return false, fmt.Errorf("postponing %s review of %s: %w", kind, object, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return true, nil
	}
	_, pending, err := t.PendingReview(ctx, kind, object)
	return pending, err
}

func (t *tx) PendingReview(ctx context.Context, kind review.Kind, object string) (time.Time, bool, error) {
	var after int64
	err := t.queryRow(ctx, `SELECT review_after FROM review WHERE kind = ? AND object = ?`, kind, object).Scan(&after)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("reading %s review of %s: %w", kind, object, err)
	}
	return fromUS(after), true, nil
}

func (t *tx) ClaimReviews(ctx context.Context, now time.Time, f meta.ReviewFilter, limit int) ([]meta.Review, error) {
	q := `SELECT kind, object, review_after, attempts, cause, reason FROM review WHERE review_after <= ?`
	args := []any{us(now)}
	if len(f.Kinds) > 0 {
		q += ` AND kind IN (` + strings.TrimSuffix(strings.Repeat("?, ", len(f.Kinds)), ", ") + `)`
		for _, k := range f.Kinds {
			args = append(args, k)
		}
	}
	q += ` ORDER BY review_after LIMIT ?` + t.d.skipLocked()
	args = append(args, limit)
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("claiming reviews: %w", err)
	}
	defer rows.Close()
	var out []meta.Review
	for rows.Next() {
		var r meta.Review
		var after int64
		if err := rows.Scan(&r.Kind, &r.Object, &after, &r.Attempts, &r.Cause, &r.Reason); err != nil {
			return nil, err
		}
		r.ReviewAfter = fromUS(after)
		out = append(out, r)
	}
	return out, rows.Err()
}

func (t *tx) DeleteReview(ctx context.Context, kind review.Kind, object string) error {
	if _, err := t.exec(ctx, `DELETE FROM review WHERE kind = ? AND object = ?`, kind, object); err != nil {
		return fmt.Errorf("deleting %s review of %s: %w", kind, object, err)
	}
	return nil
}

func (t *tx) ReviewStats(ctx context.Context, now time.Time, overdue time.Duration) (meta.ReviewStats, error) {
	var st meta.ReviewStats
	err := t.queryRow(ctx, `SELECT COUNT(*),
			COALESCE(SUM(CASE WHEN review_after <= ? THEN 1 ELSE 0 END), 0),
			COALESCE(SUM(CASE WHEN review_after <= ? THEN 1 ELSE 0 END), 0)
		FROM review`, us(now), us(now.Add(-overdue))).Scan(&st.Pending, &st.Due, &st.Overdue)
	if err != nil {
		return st, fmt.Errorf("reading review stats: %w", err)
	}
	return st, nil
}

func (t *tx) NextReview(ctx context.Context) (*time.Time, error) {
	var v sql.NullInt64
	if err := t.queryRow(ctx, `SELECT MIN(review_after) FROM review`).Scan(&v); err != nil {
		return nil, fmt.Errorf("reading next review: %w", err)
	}
	return fromNullUS(v), nil
}
