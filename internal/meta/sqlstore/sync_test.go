package sqlstore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
)

// TestBackgroundCommitsDoNotSync: on SQLite a background write
// transaction (the collector's) runs at synchronous NORMAL, and every
// other transaction on the shared writer connection, before and after it —
// after one that failed too — at FULL, so that no push is acknowledged
// before its commit is on disk (docs/design/gc.md, "The collector's
// commits wait for no fsync"). SyncCommitted then makes the background
// commits durable; with no WAL file there is nothing to sync.
func TestBackgroundCommitsDoNotSync(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "berth.db")
	s, err := sqlstore.Open(ctx, path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const normal, full = "1", "2"
	setting := func(ctx context.Context, update bool, fail error) string {
		t.Helper()
		var v string
		fn := func(tx meta.Tx) error {
			var err error
			if v, err = sqlstore.QueryString(ctx, tx, `SELECT CAST(synchronous AS TEXT) FROM pragma_synchronous`); err != nil {
				return err
			}
			return fail
		}
		if update {
			err = s.Update(ctx, fn)
		} else {
			err = s.View(ctx, fn)
		}
		if !errors.Is(err, fail) {
			t.Fatalf("transaction: %v, want %v", err, fail)
		}
		return v
	}
	bg := meta.Background(ctx)
	failed := errors.New("decision failed")
	for _, step := range []struct {
		name   string
		ctx    context.Context
		update bool
		fail   error
		want   string
	}{
		{"push", ctx, true, nil, full},
		{"collector", bg, true, nil, normal},
		{"push after the collector", ctx, true, nil, full},
		{"collector that fails", bg, true, failed, normal},
		{"push after a failed collector transaction", ctx, true, nil, full},
		{"reader", ctx, false, nil, full},
		{"background reader", bg, false, nil, full},
	} {
		if got := setting(step.ctx, step.update, step.fail); got != step.want {
			t.Errorf("%s: synchronous = %s, want %s (1 NORMAL, 2 FULL)", step.name, got, step.want)
		}
	}
	if err := s.SyncCommitted(ctx); err != nil {
		t.Fatalf("SyncCommitted: %v", err)
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Fatalf("the WAL SyncCommitted syncs: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.SyncCommitted(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("SyncCommitted with a cancelled context: %v, want context.Canceled", err)
	}
	// Closed, the database has no WAL (its frames are in the file).
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("WAL after close: %v", err)
	}
	if err := s.SyncCommitted(ctx); err != nil {
		t.Errorf("SyncCommitted with no WAL file: %v", err)
	}
}
