package sqlstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// TestReady: Ready answers nil on a current schema, even while a write
// transaction holds the writer, and the errors of CheckSchema on an older
// or a newer one; an error once the store is closed.
func TestReady(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) { testReady(t, b.DSN(t)) })
	}
}

func testReady(t *testing.T, dsn string) {
	s := sqltest.Open(t, dsn)
	ctx := t.Context()
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready on a migrated store: %v", err)
	}

	held, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Update(ctx, func(tx meta.Tx) error {
			if _, _, err := tx.CreateNamespace(ctx, "ready", nil); err != nil {
				return err
			}
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	quick, cancel := context.WithTimeout(ctx, time.Second)
	err := s.Ready(quick)
	cancel()
	close(release)
	if err != nil {
		t.Errorf("Ready while a write transaction is open: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Update: %v", err)
	}

	latest := s.LatestVersion()
	sqltest.Exec(t, dsn, `DELETE FROM schema_migration WHERE version = (SELECT MAX(version) FROM schema_migration)`)
	if err := s.Ready(ctx); !errors.Is(err, meta.ErrSchemaOutdated) {
		t.Errorf("Ready on an older schema: got %v, want meta.ErrSchemaOutdated", err)
	}
	sqltest.Exec(t, dsn, `INSERT INTO schema_migration (version, name, applied_at) VALUES (9999, 'future', 0)`)
	if err := s.Ready(ctx); !errors.Is(err, meta.ErrSchemaUnknown) {
		t.Errorf("Ready on a newer schema (this berth knows %d): got %v, want meta.ErrSchemaUnknown", latest, err)
	}
	s.Close()
	if err := s.Ready(ctx); err == nil {
		t.Errorf("Ready on a closed store: got nil, want an error")
	}
}
