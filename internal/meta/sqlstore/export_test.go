package sqlstore

import "context"

// MigrateTo applies the pending migrations up to version.
func (s *Store) MigrateTo(ctx context.Context, version int) (int, error) {
	return s.migrateTo(ctx, version)
}
