package sqlstore_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
)

// TestSQLiteWriterCache: the writer connection, which every write
// transaction runs on, has the page cache Options.WriterCache asks for
// (SQLite's negative cache_size counts KiB); the readers keep SQLite's
// default, and a negative option leaves the writer's at it too.
func TestSQLiteWriterCache(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name   string
		opt    int64
		writer string
	}{
		{"default", 0, "-32768"},
		{"8MiB", 8 << 20, "-8192"},
		{"SQLite's own", -1, "-2000"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "berth.db"), sqlstore.Options{WriterCache: tt.opt})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			read := func(update bool) string {
				return readString(t, ctx, s, update, `SELECT CAST(cache_size AS TEXT) FROM pragma_cache_size`)
			}
			if got := read(true); got != tt.writer {
				t.Errorf("writer cache_size = %s, want %s", got, tt.writer)
			}
			if got := read(false); got != "-2000" {
				t.Errorf("reader cache_size = %s, want SQLite's default -2000", got)
			}
		})
	}
}

// TestSQLiteCheckpointFrames: the writer connection checkpoints the WAL
// every 100 frames (gc.md, "Small checkpoints"), unless the benchmark
// switch BERTH_SQLITE_CHECKPOINT_FRAMES says otherwise; a switch that is
// not a number of frames fails the open.
func TestSQLiteCheckpointFrames(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct{ env, want string }{
		{"", "100"},
		{"1000", "1000"},
		{"0", "0"},
		{"many", ""},
	} {
		t.Run("env="+tt.env, func(t *testing.T) {
			s := openWithSwitch(t, "BERTH_SQLITE_CHECKPOINT_FRAMES", tt.env, filepath.Join(t.TempDir(), "berth.db"), tt.want == "")
			if s == nil {
				return
			}
			defer s.Close()
			if got := readString(t, ctx, s, true, `PRAGMA wal_autocheckpoint`); got != tt.want {
				t.Errorf("writer wal_autocheckpoint = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestSQLitePageSize: the benchmark switch BERTH_SQLITE_PAGE_SIZE sets the
// page size of a database file the open creates, in WAL mode; a file that
// exists keeps its own size, and a size SQLite cannot take fails the open.
func TestSQLitePageSize(t *testing.T) {
	ctx := context.Background()
	pageSize := func(t *testing.T, s *sqlstore.Store) string {
		return readString(t, ctx, s, true, `SELECT CAST(page_size AS TEXT) || ' ' || (SELECT journal_mode FROM pragma_journal_mode) FROM pragma_page_size`)
	}
	for _, tt := range []struct{ env, want string }{
		{"", "4096 wal"},
		{"1024", "1024 wal"},
		{"1000", ""},
		{"256", ""},
	} {
		t.Run("env="+tt.env, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "berth.db")
			s := openWithSwitch(t, "BERTH_SQLITE_PAGE_SIZE", tt.env, path, tt.want == "")
			if s == nil {
				return
			}
			if got := pageSize(t, s); got != tt.want {
				t.Errorf("page size and journal mode = %q, want %q", got, tt.want)
			}
			s.Close()
			// Reopened with another size, the file keeps its own.
			s = openWithSwitch(t, "BERTH_SQLITE_PAGE_SIZE", "2048", path, false)
			defer s.Close()
			if got := pageSize(t, s); got != tt.want {
				t.Errorf("reopened: page size and journal mode = %q, want %q", got, tt.want)
			}
		})
	}
}

// readString returns the one value q reads, in a write transaction of s
// (SQLite's writer connection) or a read-only one (a reader).
func readString(t *testing.T, ctx context.Context, s *sqlstore.Store, update bool, q string) string {
	t.Helper()
	var v string
	fn := func(tx meta.Tx) error {
		var err error
		v, err = sqlstore.QueryString(ctx, tx, q)
		return err
	}
	var err error
	if update {
		err = s.Update(ctx, fn)
	} else {
		err = s.View(ctx, fn)
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// openWithSwitch opens a SQLite store at path with the benchmark switch
// name set to value. A bad switch must fail the open: then it returns nil.
func openWithSwitch(t *testing.T, name, value, path string, bad bool) *sqlstore.Store {
	t.Helper()
	t.Setenv(name, value)
	s, err := sqlstore.Open(context.Background(), path, sqlstore.Options{})
	switch {
	case bad && err == nil:
		s.Close()
		t.Fatalf("opened with %s=%q", name, value)
	case bad:
		return nil
	case err != nil:
		t.Fatal(err)
	}
	return s
}
