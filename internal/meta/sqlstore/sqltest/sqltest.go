// Package sqltest opens fresh, migrated metadata stores for tests: a SQLite
// file in a temp dir, and a PostgreSQL database of its own per test created
// from the admin DSN in BERTH_TEST_POSTGRES_DSN (skipped when unset, and
// required when CI=true so CI never silently tests one backend).
package sqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"

	"github.com/berth/berth/internal/meta/sqlstore"
)

// EnvPostgres names the admin DSN tests create their databases from.
const EnvPostgres = "BERTH_TEST_POSTGRES_DSN"

// Backend is one metadata backend under test.
type Backend struct {
	Name string
	// DSN returns a DSN for a fresh, empty database owned by the test.
	DSN func(t testing.TB) string
}

// Backends lists SQLite and, when configured, PostgreSQL.
func Backends() []Backend {
	return []Backend{
		{Name: "sqlite", DSN: func(t testing.TB) string { return filepath.Join(t.TempDir(), "berth.db") }},
		{Name: "postgres", DSN: PostgresDSN},
	}
}

// Open opens and migrates a store on dsn, closed at cleanup.
func Open(t testing.TB, dsn string) *sqlstore.Store {
	t.Helper()
	return OpenWith(t, dsn, sqlstore.Options{})
}

// OpenWith is Open with options.
func OpenWith(t testing.TB, dsn string, opts sqlstore.Options) *sqlstore.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, dsn, opts)
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	return s
}

// ForEach runs fn as a subtest on a fresh store of every backend.
func ForEach(t *testing.T, fn func(t *testing.T, s *sqlstore.Store)) {
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) {
			fn(t, Open(t, b.DSN(t)))
		})
	}
}

// PostgresDSN creates a database for the test and drops it at cleanup.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvPostgres)
	if admin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set; CI must test PostgreSQL", EnvPostgres)
		}
		t.Skipf("%s not set; skipping PostgreSQL", EnvPostgres)
	}
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatalf("parsing %s: %v", EnvPostgres, err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	var b [6]byte
	rand.Read(b[:])
	name := "berth_t_" + hex.EncodeToString(b[:])
	if _, err := db.Exec(`CREATE DATABASE ` + name); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		db := stdlib.OpenDB(*cfg)
		defer db.Close()
		dropDatabase(db, name)
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("parsing %s: %v", EnvPostgres, err)
	}
	u.Path = "/" + name
	return u.String()
}

func dropDatabase(db *sql.DB, name string) {
	_, _ = db.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`)
}

// Exec runs query on the database at dsn through a connection of its own,
// behind the back of any store open on it: tests use it to set up what
// berth would never write (a schema version from the future, a missing
// migration).
func Exec(t testing.TB, dsn, query string) {
	t.Helper()
	var db *sql.DB
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			t.Fatalf("parsing %s: %v", dsn, err)
		}
		db = stdlib.OpenDB(*cfg)
	} else {
		c, err := sqlite.NewConnector("file:" + dsn)
		if err != nil {
			t.Fatal(err)
		}
		db = sql.OpenDB(c)
	}
	defer db.Close()
	if _, err := db.ExecContext(context.Background(), query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}
