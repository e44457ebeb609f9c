package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/pflag"

	"github.com/berth/berth/internal/meta/sqlstore"
)

func TestSQLiteWriterCacheSources(t *testing.T) {
	if got := Default().SQLite.WriterCache; got != DefaultSQLiteWriterCache || got.Bytes() != sqlstore.DefaultWriterCache {
		t.Errorf("default: got %s, want %s (sqlstore's %d bytes)", got, Size(DefaultSQLiteWriterCache), sqlstore.DefaultWriterCache)
	}
	path := filepath.Join(t.TempDir(), "berth.yaml")
	if err := os.WriteFile(path, []byte("sqlite:\n  writer_cache: 64MiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		want Size
	}{
		{"file", nil, nil, 64 * MiB},
		{"env over file", []string{"BERTH_SQLITE_WRITER_CACHE=16MiB"}, nil, 16 * MiB},
		{"flag over env", []string{"BERTH_SQLITE_WRITER_CACHE=16MiB"}, []string{"--sqlite-writer-cache", "0"}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("gc", pflag.ContinueOnError)
			d := Default()
			BindFlags(fs, &d, SharedFlags)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			c, err := LoadWithFlags(path, tt.env, fs)
			if err != nil {
				t.Fatal(err)
			}
			if c.SQLite.WriterCache != tt.want {
				t.Errorf("got %s, want %s", c.SQLite.WriterCache, tt.want)
			}
		})
	}
}

func TestSQLiteWriterCacheValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		size Size
		want []string
	}{
		{"SQLite's default", 0, nil},
		{"large", 4 * GiB, nil},
		{"negative", -1, []string{"sqlite.writer_cache: want 0 (SQLite's default, 2MiB) to 16GiB, got -1"}},
		{"past the bound", 17 * GiB, []string{"sqlite.writer_cache: want 0 (SQLite's default, 2MiB) to 16GiB, got 17GiB"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checkValidate(t, func(c *Config) { c.SQLite.WriterCache = tt.size }, tt.want)
		})
	}
}
