package sqlstore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth/berth/internal/datadir"
	"github.com/berth/berth/internal/meta/sqlstore"
)

// TestSQLiteFileModes: the SQLite database, its -wal, -shm and -gate files and
// the directory Open creates for them are their owner's only.
func TestSQLiteFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	dsn := filepath.Join(dir, "berth.db")
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A write, so that the WAL holds something while the store is open.
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		want os.FileMode
	}{
		{dir, datadir.DirMode},
		{dsn, datadir.FileMode},
		{dsn + "-wal", datadir.FileMode},
		{dsn + "-shm", datadir.FileMode},
		{dsn + "-gate", datadir.FileMode},
	} {
		fi, err := os.Stat(tt.path)
		if err != nil {
			t.Errorf("stat: %v", err)
			continue
		}
		if got := fi.Mode().Perm(); got != tt.want {
			t.Errorf("%s: got mode %v, want %v", tt.path, got, tt.want)
		}
	}
}
