package sqlstore

import (
	"context"

	"github.com/berth/berth/internal/meta"
)

// MigrateTo applies the pending migrations up to version.
func (s *Store) MigrateTo(ctx context.Context, version int) (int, error) {
	return s.migrateTo(ctx, version)
}

// QueryString runs q, which returns one text value, in mtx: tests read the
// session's state (its settings, its prepared statements) through it.
func QueryString(ctx context.Context, mtx meta.Tx, q string) (string, error) {
	var v string
	err := mtx.(*tx).queryRow(ctx, q).Scan(&v)
	return v, err
}

// StatementStats is what the SQLite statement cache did so far.
func (s *Store) StatementStats() (prepares, hits int64) {
	return s.stmts.prepares.Load(), s.stmts.hits.Load()
}
