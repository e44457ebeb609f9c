package sqlstore_test

import (
	"testing"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// TestPreparedStatements: the store's statements are prepared once per
// connection and reused: by the store's cache on SQLite, by pgx's on
// PostgreSQL (the session then holds them in pg_prepared_statements).
// StatementCache -1 turns both off.
func TestPreparedStatements(t *testing.T) {
	for _, b := range sqltest.Backends() {
		for _, tt := range []struct {
			name     string
			capacity int
			prepared bool
		}{{"cached", 0, true}, {"off", -1, false}} {
			t.Run(b.Name+"/"+tt.name, func(t *testing.T) {
				s := sqltest.OpenWith(t, b.DSN(t), sqlstore.Options{StatementCache: tt.capacity})
				ctx := t.Context()
				p0, h0 := s.StatementStats()
				const lookups = 20
				var onSession string
				err := s.Update(ctx, func(tx meta.Tx) error {
					for range lookups {
						if _, err := tx.Namespace(ctx, "absent", meta.LockNone); err == nil {
							t.Fatalf("found namespace absent")
						}
					}
					if s.Dialect() != "postgres" {
						return nil
					}
					var err error
					onSession, err = sqlstore.QueryString(ctx, tx, `SELECT COUNT(*)::text FROM pg_prepared_statements WHERE statement LIKE '%FROM namespace WHERE name = $1%' AND statement NOT LIKE '%pg_prepared_statements%'`)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				p, h := s.StatementStats()
				p, h = p-p0, h-h0
				switch {
				case s.Dialect() == "postgres" && tt.prepared && onSession != "1":
					t.Errorf("pg_prepared_statements holds %s namespace lookups, want 1", onSession)
				case s.Dialect() == "postgres" && !tt.prepared && onSession != "0":
					t.Errorf("pg_prepared_statements holds %s namespace lookups, want 0", onSession)
				case s.Dialect() == "sqlite" && tt.prepared && (p != 1 || h != lookups-1):
					t.Errorf("got %d prepares and %d hits, want 1 and %d", p, h, lookups-1)
				case s.Dialect() == "sqlite" && !tt.prepared && (p != 0 || h != 0):
					t.Errorf("got %d prepares and %d hits, want none", p, h)
				}
			})
		}
	}
}
